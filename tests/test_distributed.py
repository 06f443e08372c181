"""Data-parallel training with 2 gloo processes on 127.0.0.1 (tests/distributed_worker.py is one process)."""

import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from brainlearn.algorithms import ForwardForwardConfig
from brainlearn.cli import main, without_option
from brainlearn.pipeline import check_pipeline
from brainlearn.experiments.scaling import run_case
from brainlearn.train import CHECKPOINT, TrainConfig, fit, load_checkpoint, make_learner

WORKER = Path(__file__).with_name("distributed_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ranks(out: Path, *worker_args: str, size: int = 2) -> list[subprocess.Popen]:
    """The variables torchrun sets, without torchrun: so a rank's own failure stays visible."""
    port = str(free_port())
    processes = []
    for rank in range(size):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(size),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
        processes.append(subprocess.Popen([sys.executable, str(WORKER), str(out), *worker_args], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def finish(processes: list[subprocess.Popen], timeout: float = 300) -> list[tuple[int, str]]:
    return [(p.wait(timeout), p.communicate()[1]) for p in processes]


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    results = finish(start_ranks(out, "bp", "eqprop", "ff", "dbn"))
    for code, stderr in results:
        assert code == 0, stderr
    return out


@pytest.mark.parametrize("algorithm", ["bp", "eqprop", "ff", "dbn"])
def test_two_processes_end_with_identical_weights(two_rank_run, algorithm):
    rank0 = torch.load(two_rank_run / f"{algorithm}_rank0.pt", weights_only=True)
    rank1 = torch.load(two_rank_run / f"{algorithm}_rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name


def first_400(digits):
    """The worker's training set: 8 whole batches of 50."""
    return replace(digits, x_train=digits.x_train[:400], y_train=digits.y_train[:400])


@pytest.mark.parametrize("algorithm", ["bp", "eqprop"])
def test_two_processes_equal_one_process_with_the_same_global_batch(two_rank_run, digits, algorithm):
    """BP and EP sample nothing, so half a batch on each of 2 ranks, averaged, is the whole batch on one.
    Tolerance: the weights differ by under 1e-4 of how far training moved them (the all-reduce sums in
    another order than one process's batch mean; measured 3e-6 to 4e-6 after these 8 steps)."""
    learner = make_learner(algorithm, digits.n_features, digits.n_classes, seed=0)
    initial = {name: tensor.clone() for name, tensor in learner.state_dict().items()}
    history = fit(learner, first_400(digits), TrainConfig(epochs=1, batch_size=50), progress=False)
    distributed = torch.load(two_rank_run / f"{algorithm}_rank0.pt", weights_only=True)
    for name, tensor in learner.state_dict().items():
        moved = (tensor - initial[name]).norm()
        assert (tensor - distributed[name]).norm() < 1e-4 * moved, name
    logged = load_checkpoint(two_rank_run / algorithm / CHECKPOINT)["history"][0]
    assert logged["error"] == pytest.approx(history[0]["error"], abs=1e-6)
    assert logged["loss"] == pytest.approx(history[0]["loss"], rel=1e-4)


def test_a_two_process_checkpoint_resumes_in_one_process(two_rank_run, digits):
    """Rank 0 alone wrote the checkpoint; it holds nothing rank-specific, so one process continues it."""
    learner = make_learner("bp", digits.n_features, digits.n_classes, seed=0)
    history = fit(learner, first_400(digits), TrainConfig(epochs=2, batch_size=50), run_dir=two_rank_run / "bp", resume=True,
                  progress=False)
    assert [row["epoch"] for row in history] == [1, 2] and history[1]["error"] < history[0]["error"]


def test_a_dead_rank_makes_the_other_stop_with_a_clear_error(tmp_path):
    start = time.perf_counter()
    (code0, stderr0), (code1, _) = finish(start_ranks(tmp_path, "bp", "--die", "--timeout", "10"), timeout=120)
    assert code1 == 3 and code0 != 0
    assert "DistributedError" in stderr0 and "another process died or stopped answering" in stderr0
    assert time.perf_counter() - start < 60  # stopped, did not hang


@pytest.mark.parametrize("stages", [2, 3])
def test_layer_pipeline_equals_sequential_ff(tmp_path, digits, stages):
    """Each stage trains its layer on the activities the layer below computed before its own step, as in
    sequential training, whatever the timing; so the weights are bit for bit the same (one thread in
    every process, as in the workers)."""
    for code, stderr in finish(start_ranks(tmp_path, "--pipeline", size=stages)):
        assert code == 0, stderr
    torch.set_num_threads(1)
    config = ForwardForwardConfig(hidden=(32,) * stages, negatives="random")
    learner = make_learner("ff", digits.n_features, digits.n_classes, config, seed=0)
    fit(learner, first_400(digits), TrainConfig(epochs=1, batch_size=50, lr_schedule="cooldown"), progress=False)
    piped = torch.load(tmp_path / "pipeline.pt", weights_only=True)
    for name, tensor in learner.state_dict().items():
        assert torch.equal(tensor, piped[name]), name


def test_layer_pipeline_refuses_hard_negatives_and_a_wrong_stage_count():
    learner = make_learner("ff", 64, 10, ForwardForwardConfig(hidden=(8, 8)))
    with pytest.raises(ValueError, match="negatives='random'"):
        check_pipeline(learner, 2)
    learner.config.negatives = "random"
    with pytest.raises(ValueError, match="2 layers need 2 processes, not 3"):
        check_pipeline(learner, 3)


def test_global_batch_must_divide_among_the_processes(digits):
    from brainlearn.distributed import World

    learner = make_learner("bp", digits.n_features, digits.n_classes)
    with pytest.raises(ValueError, match="must divide among 2 processes"):
        fit(learner, digits, TrainConfig(epochs=1, batch_size=51), progress=False, world=World(0, 2))


def test_cli_nproc_starts_torchrun(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", "bp", "--dataset", "digits", "--epochs", "1", "--nproc", "2", "--run-dir", str(run_dir)])
    assert code == 0
    assert load_checkpoint(run_dir / CHECKPOINT)["epoch"] == 1 and (run_dir / "model.safetensors").exists()


def test_cli_refuses_a_bad_process_count():
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "bp", "--nproc", "0"])
    assert exit_info.value.code == 2


def test_without_option_drops_the_flag_and_its_value():
    assert without_option(["train", "--nproc", "2", "ff", "--nproc=3", "--epochs", "1"], "--nproc") == [
        "train", "ff", "--epochs", "1"]


def test_scaling_case_times_two_processes_and_their_all_reduce():
    run = run_case("bp", 2, 1, "digits", None, train_size=200, epochs=1)
    assert run["processes"] == 2 and run["samples_per_s"] > 0 and run["allreduce_s"] > 0


def test_scaling_benchmark_refuses_a_tiny_training_set():
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "scaling", "--dataset", "digits", "--train-size", "10"])
    assert exit_info.value.code == 2
