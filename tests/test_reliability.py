"""What a user's mistakes get: one line on stderr, exit code 1 or 2, no traceback, and nothing lost.
Also what a run folder guarantees: one writer, no clobbering, files readable by the user's group."""

import fcntl
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from brainlearn.cli import main
from brainlearn.runfolder import CHECKPOINT, LOCK, METRICS, WEIGHTS, RunFolder, RunFolderError
from brainlearn.train import chance_warning, load_checkpoint

TINY = ["--hidden", "16", "--batch-size", "200"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 1-epoch bp run on the digits."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "bp", *TINY, "--epochs", "1", "--run-dir", str(run)]) == 0
    return run


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/brainlearn-pwned",))


def plain_state_dict(tmp: Path, trained: Path) -> Path:
    path = tmp / "state.pt"
    torch.save(load_checkpoint(trained / CHECKPOINT)["state"]["model"], path)
    return path


def unknown_algorithm(tmp: Path, trained: Path) -> Path:
    checkpoint = load_checkpoint(trained / CHECKPOINT)
    path = tmp / "unknown.pt"
    torch.save({**checkpoint, "algorithm": "telepathy"}, path)
    return path


def evil_pickle(tmp: Path, trained: Path) -> Path:
    path = tmp / "evil.pt"
    path.write_bytes(pickle.dumps({"algorithm": "bp", "state": Evil()}))
    return path


def garbage(tmp: Path, trained: Path) -> Path:
    path = tmp / "garbage.safetensors"
    path.write_bytes(b"\x00not safetensors at all")
    return path


def a_file(tmp: Path, trained: Path) -> Path:
    path = tmp / "a-file"
    path.write_text("not a folder")
    return path


# (case, argv built from tmp_path and the trained run, expected exit code, words the one line must hold)
CASES = [
    ("data dir is a file", lambda t, r: ["train", "bp", "--dataset", "mnist", "--data-dir", str(a_file(t, r))],
     1, "Not a directory"),
    ("run dir under a file", lambda t, r: ["train", "bp", *TINY, "--run-dir", str(a_file(t, r) / "run")],
     1, "cannot create the run folder"),
    ("run dir is a file", lambda t, r: ["train", "bp", *TINY, "--run-dir", str(a_file(t, r))],
     1, "a file of that name exists"),
    ("run dir cannot be created", lambda t, r: ["train", "bp", *TINY, "--run-dir", "/proc/brainlearn/run"],
     1, "cannot create the run folder"),
    ("resume with another architecture", lambda t, r: ["train", "bp", "--resume", "--hidden", "32", "--epochs", "2",
                                                        "--run-dir", str(r)], 2, "hidden: [16] -> [32]"),
    ("resume with another learning rate", lambda t, r: ["train", "bp", "--resume", "--lr", "1e15", "--epochs", "2",
                                                         "--run-dir", str(r)], 2, "lr: 0.001 -> 1000000000000000.0"),
    ("resume with another batch size", lambda t, r: ["train", "bp", "--resume", "--batch-size", "50", "--epochs", "2",
                                                      "--run-dir", str(r)], 2, "batch_size: 200 -> 50"),
    ("resume to fewer epochs", lambda t, r: ["train", "bp", "--resume", "--epochs", "0", "--run-dir", str(r)],
     2, "positive"),
    ("resume another algorithm's run", lambda t, r: ["train", "ff", "--resume", "--epochs", "2", "--run-dir", str(r)],
     2, "holds a 'bp' run"),
    ("resume with nothing there", lambda t, r: ["train", "bp", "--resume", "--run-dir", str(t / "empty")],
     1, "nothing to resume"),
    ("fresh run into an occupied folder", lambda t, r: ["train", "bp", *TINY, "--epochs", "1", "--run-dir", str(r)],
     1, "already holds a run"),
    ("global batch does not divide", lambda t, r: ["train", "bp", "--nproc", "3", "--run-dir", str(t / "r")],
     2, "must divide among --nproc 3"),
    ("blow-up without NaN", lambda t, r: ["train", "bp", "--lr", "1e6", "--epochs", "2", "--run-dir", str(t / "r")],
     1, "diverged at epoch 1"),
    ("eval a plain state dict", lambda t, r: ["eval", str(plain_state_dict(t, r))], 1, "not a brainlearn checkpoint"),
    ("eval an unknown algorithm", lambda t, r: ["eval", str(unknown_algorithm(t, r))], 1, "'telepathy'"),
    ("eval a code-running pickle", lambda t, r: ["eval", str(evil_pickle(t, r))], 1, "could run code"),
    ("eval a file that is not safetensors", lambda t, r: ["eval", str(garbage(t, r))], 1, "not a readable"),
    ("eval a missing file", lambda t, r: ["eval", str(t / "missing.pt")], 1, "No such file"),
    ("eval a folder", lambda t, r: ["eval", str(r)], 1, "Is a directory"),
    ("dream from a bp run", lambda t, r: ["dream", str(r / CHECKPOINT)], 2, "needs a 'dbn' or 'rbm' one"),
    ("bad device name", lambda t, r: ["train", "bp", "--device", "tpu", "--run-dir", str(t / "r")], 2, "device"),
]
if not torch.cuda.is_available():
    CASES.append(("cuda without a GPU", lambda t, r: ["train", "bp", "--device", "cuda", "--run-dir", str(t / "r")],
                  2, "no CUDA GPU"))


@pytest.mark.parametrize("case, argv, code, words", CASES, ids=[case[0] for case in CASES])
def test_a_mistake_gets_one_line_and_an_exit_code(case, argv, code, words, tmp_path, trained, capsys):
    before = {path.name: path.read_bytes() for path in trained.iterdir() if path.name != LOCK}
    try:
        got = main(argv(tmp_path, trained))
    except SystemExit as exit_info:
        got = exit_info.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code, err
    assert len(lines) == 1 and "error:" in lines[0] and words in lines[0], err
    assert "Traceback" not in err and "weights_only=False" not in err
    assert {path.name: path.read_bytes() for path in trained.iterdir() if path.name != LOCK} == before
    assert not Path("/tmp/brainlearn-pwned").exists()


def test_eval_of_the_exported_weights_equals_eval_of_the_checkpoint(trained, capsys):
    assert main(["eval", str(trained / CHECKPOINT)]) == 0
    from_checkpoint = capsys.readouterr().out
    assert main(["eval", str(trained / WEIGHTS)]) == 0
    assert capsys.readouterr().out == from_checkpoint and "error:" in from_checkpoint


def test_eval_checks_the_data_set_against_the_net(trained, shared_mnist_dir, capsys):
    assert main(["eval", str(trained / WEIGHTS), "--dataset", "mnist", "--data-dir", str(shared_mnist_dir)]) == 1
    assert "expects 64 inputs and 10 classes, but mnist has 784" in capsys.readouterr().err


def test_a_held_run_folder_refuses_a_second_writer_and_is_released_after(tmp_path, capsys):
    run = tmp_path / "run"
    with RunFolder(run):
        assert main(["train", "bp", *TINY, "--epochs", "1", "--run-dir", str(run)]) == 1
        assert f"in use by another run (process {os.getpid()})" in capsys.readouterr().err
        assert not (run / METRICS).exists()
    assert main(["train", "bp", *TINY, "--epochs", "1", "--run-dir", str(run)]) == 0


def test_a_second_process_cannot_take_the_lock(tmp_path):
    """flock is per open file: the lock also holds against another process (and another open of the file)."""
    with RunFolder(tmp_path):
        fd = os.open(tmp_path / LOCK, os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
        with pytest.raises(RunFolderError, match="in use"):
            RunFolder(tmp_path).__enter__()


def lock_is_free(run: Path) -> bool:
    try:
        with RunFolder(run):
            return True
    except RunFolderError:
        return False


def test_the_lock_is_released_on_ctrl_c_and_on_divergence(tmp_path, monkeypatch, capsys):
    from brainlearn.algorithms.backprop import Backprop

    run = tmp_path / "run"

    def interrupted(self, x, y):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Backprop, "train_step", interrupted)
        assert main(["train", "bp", *TINY, "--run-dir", str(run)]) == 130
    assert lock_is_free(run)
    assert main(["train", "bp", "--lr", "1e6", "--epochs", "2", "--run-dir", str(run), "--overwrite"]) == 1
    assert "diverged" in capsys.readouterr().err and lock_is_free(run)


def test_overwrite_replaces_the_old_run(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "bp", *TINY, "--epochs", "2", "--run-dir", str(run)]) == 0
    assert main(["train", "bp", *TINY, "--epochs", "1", "--run-dir", str(run), "--overwrite"]) == 0
    assert len((run / METRICS).read_text().splitlines()) == 1 and load_checkpoint(run / CHECKPOINT)["epoch"] == 1


def test_resume_keeps_the_run_settings_and_records_more_epochs(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "bp", "--hidden", "16", "--batch-size", "200", "--lr", "0.01", "--epochs", "1",
                 "--run-dir", str(run)]) == 0
    assert main(["train", "bp", "--resume", "--epochs", "2", "--run-dir", str(run)]) == 0  # no --hidden, --lr
    checkpoint = load_checkpoint(run / CHECKPOINT)
    assert checkpoint["learner_config"]["hidden"] == (16,) and checkpoint["learner_config"]["lr"] == 0.01
    assert checkpoint["train_config"]["epochs"] == 2 and checkpoint["resumed"] == [{"at_epoch": 1, "epochs": [1, 2]}]
    capsys.readouterr()
    assert main(["train", "bp", "--resume", "--run-dir", str(run)]) == 0
    assert "nothing to train" in capsys.readouterr().err
    assert [json.loads(line)["epoch"] for line in (run / METRICS).read_text().splitlines()] == [1, 2]


def test_run_files_get_the_umask_permissions(trained):
    expected = 0o666 & ~current_umask()
    for name in (CHECKPOINT, WEIGHTS, METRICS):
        assert (trained / name).stat().st_mode & 0o777 == expected, name


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_chance_level_is_warned_about():
    assert "chance level" in chance_warning([{"epoch": 1, "error": 0.9}], 10)
    assert chance_warning([{"epoch": 1, "error": 0.5}], 10) is None
