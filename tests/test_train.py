import dataclasses
import json
import pickle

import pytest
import torch
from safetensors import safe_open

from brainlearn.algorithms import ForwardForwardConfig
from brainlearn.train import (CHECKPOINT, METRICS, WEIGHTS, DivergedError, TrainConfig, apply_lr_schedule, fit,
                              learner_from_checkpoint, load_checkpoint, make_learner, minibatches,
                              resolve_device, save_checkpoint)

CONFIG = ForwardForwardConfig(hidden=(32, 32))
TRAIN = TrainConfig(epochs=3, batch_size=64, lr_schedule="cooldown", eval_every=1)


def new_learner(digits):
    return make_learner("ff", digits.n_features, 10, CONFIG, seed=TRAIN.seed)


@pytest.mark.parametrize("jitter", [0, 2])
def test_resume_continues_to_the_uninterrupted_result(digits, tmp_path, monkeypatch, jitter):
    train = dataclasses.replace(TRAIN, jitter=jitter)
    whole = new_learner(digits)
    whole_history = fit(whole, digits, train, run_dir=tmp_path / "whole", progress=False)

    interrupted = new_learner(digits)
    calls = {"n": 0}
    original_step = interrupted.train_step

    def step_then_die(x, y):
        calls["n"] += 1
        if calls["n"] == 25:  # in epoch 2 (22 steps per epoch)
            raise KeyboardInterrupt
        return original_step(x, y)

    monkeypatch.setattr(interrupted, "train_step", step_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, digits, train, run_dir=tmp_path / "cut", progress=False)
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT)["epoch"] == 1

    resumed = new_learner(digits)  # a fresh process: weights from scratch, then the checkpoint
    resumed_history = fit(resumed, digits, train, run_dir=tmp_path / "cut", resume=True, progress=False)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    drop_time = lambda h: [{k: v for k, v in row.items() if k not in ("seconds", "samples_per_s")} for row in h]
    assert drop_time(resumed_history) == drop_time(whole_history)
    logged = [json.loads(line) for line in (tmp_path / "cut" / METRICS).read_text().splitlines()]
    assert [row["epoch"] for row in logged] == [1, 2, 3]


def test_checkpoint_rebuilds_the_learner(digits, tmp_path):
    learner = new_learner(digits)
    fit(learner, digits, TrainConfig(epochs=1), run_dir=tmp_path, progress=False)
    rebuilt = learner_from_checkpoint(load_checkpoint(tmp_path / CHECKPOINT))
    assert torch.equal(rebuilt.predict(digits.x_test), learner.predict(digits.x_test))


def test_final_weights_are_exported_as_safetensors(digits, tmp_path):
    learner = new_learner(digits)
    fit(learner, digits, TrainConfig(epochs=1), run_dir=tmp_path, progress=False)
    with safe_open(tmp_path / WEIGHTS, framework="pt") as f:
        assert f.metadata()["algorithm"] == "ff" and json.loads(f.metadata()["config"])["hidden"] == [32, 32]
        loaded = {name: f.get_tensor(name) for name in f.keys()}
    state = learner.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_diverging_run_stops_clearly_and_keeps_last_good_checkpoint(digits, tmp_path, monkeypatch):
    learner = new_learner(digits)
    original_step = learner.train_step
    calls = {"n": 0}

    def blow_up_in_epoch_two(x, y):
        calls["n"] += 1
        return original_step(x * float("nan") if calls["n"] > 22 else x, y)

    monkeypatch.setattr(learner, "train_step", blow_up_in_epoch_two)
    with pytest.raises(DivergedError, match=r"diverged at epoch 2.*last good checkpoint.*epoch 1"):
        fit(learner, digits, TRAIN, run_dir=tmp_path, progress=False)
    checkpoint = load_checkpoint(tmp_path / CHECKPOINT)
    assert checkpoint["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in checkpoint["state"]["model"].values())
    assert len((tmp_path / METRICS).read_text().splitlines()) == 1


class Payload:
    def __reduce__(self):
        return (print, ("this code must never run",))


def test_checkpoint_loading_never_executes_code(tmp_path):
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"state": Payload()}))
    with pytest.raises(ValueError, match="refuses to load it, because loading it could run code") as refused:
        load_checkpoint(path)
    assert "weights_only=False" not in str(refused.value) and "\n" not in str(refused.value)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT
    save_checkpoint(path, {"w": torch.ones(2)})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, {"w": torch.zeros(2)})
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(2))  # the old one is intact
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT]  # and no temporary file is left


def test_resume_without_checkpoint_is_refused(digits, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        fit(new_learner(digits), digits, TRAIN, run_dir=tmp_path, resume=True, progress=False)


def test_cooldown_schedule_is_flat_then_linear_to_zero():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)

    def lr_at(schedule, progress):
        apply_lr_schedule([optimizer], schedule, progress)
        return optimizer.param_groups[0]["lr"]

    assert [lr_at("cooldown", p) for p in (0.0, 0.5, 0.75, 1.0)] == pytest.approx([0.2, 0.2, 0.1, 0.0])
    assert lr_at("constant", 0.9) == 0.2


def test_same_seed_same_numbers_other_seed_other_numbers(digits):
    def run(seed):
        learner = make_learner("ff", digits.n_features, 10, CONFIG, seed=seed)
        return fit(learner, digits, TrainConfig(epochs=1, seed=seed), progress=False)[-1]["loss"]

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_jitter_shows_the_learner_shifted_images(digits, monkeypatch):
    learner = new_learner(digits)
    seen = []
    monkeypatch.setattr(learner, "train_step", lambda x, y: seen.append(x) or {"loss": 0.0})
    fit(learner, digits, dataclasses.replace(TRAIN, epochs=1, jitter=1), progress=False)
    original = digits.x_train[torch.cat(minibatches(len(digits.x_train), TRAIN, 0))]
    changed = (torch.cat(seen) != original).any(1).float().mean().item()
    assert 0.7 < changed < 1.0  # 8 of the 9 positions move the image


def test_each_process_of_a_run_gets_its_own_gpu_or_the_cpu(monkeypatch):
    """NCCL needs one GPU per process: with 2 processes on a 1-GPU machine 'auto' falls back to the CPU and
    'cuda' is refused before anything starts; with 2 GPUs each rank takes cuda:LOCAL_RANK."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto", processes=1) == torch.device("cuda")
    assert resolve_device("auto", processes=2) == torch.device("cpu")
    with pytest.raises(ValueError, match="need a GPU each and it has 1"):
        resolve_device("cuda", processes=2)
    with pytest.raises(ValueError, match="cannot share one GPU"):
        resolve_device("cuda:0", processes=2)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="has 2 GPU"):
        resolve_device("cuda:2", processes=1)


def test_cuda_is_refused_where_there_is_no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", processes=4) == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")
