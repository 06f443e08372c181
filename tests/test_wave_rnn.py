import json
import math

import pytest
import torch

from brainlearn.cli import main
from brainlearn.wave_rnn import (IdentityRNN, SequenceTrainConfig, WaveRNN, adding_batch, copy_batch, ring_states,
                                 train_on_task)


def test_initial_wave_kernel_shifts_a_one_hot_state_one_position_per_step_round_the_ring():
    model = WaveRNN(2, channels=3, positions=7, n_outputs=1)
    ring = torch.zeros(1, 3, 7)
    ring[0, 1, 5] = 1.0  # channel 1, position 5
    h = ring.flatten(1)
    for step in range(1, 4):
        h = model.recurrence(h)
        moved = h.view(3, 7)
        expected = torch.zeros(3, 7)
        expected[1, (5 + step) % 7] = 1.0  # 6, then 0 (wrapped round), then 1
        assert torch.equal(moved, expected)


def test_wave_encoder_writes_the_input_into_position_zero_of_every_channel():
    model = WaveRNN(2, channels=3, positions=5, n_outputs=1)
    x = torch.tensor([[[0.7, 1.0]]])  # one step, one sequence: value 0.7 with its marker
    states = ring_states(model, x)  # (channels, steps, positions)
    assert torch.allclose(states[:, 0, 0], torch.full((3,), 1.7)) and states[:, 0, 1:].abs().sum() == 0


def test_identity_rnn_starts_with_the_identity():
    model = IdentityRNN(2, 6, 1)
    h = torch.rand(4, 6)
    assert torch.equal(model.recurrence(h), h)


def test_adding_task_targets_are_the_sum_of_the_two_marked_values():
    x, y = adding_batch(20, 64, torch.Generator().manual_seed(0))
    assert x.shape == (20, 64, 2) and y.shape == (64, 1)
    markers = x[..., 1]
    assert torch.equal(markers.sum(0), torch.full((64,), 2.0))
    assert (markers[:10].sum(0) == 1).all() and (markers[10:].sum(0) == 1).all()  # one marker in each half
    assert torch.allclose(y[:, 0], (x[..., 0] * markers).sum(0))
    with pytest.raises(ValueError, match="length >= 2"):
        adding_batch(1, 4, torch.Generator())


def test_copy_task_asks_for_the_symbols_after_the_delimiter():
    x, y = copy_batch(delay=6, batch=5, generator=torch.Generator().manual_seed(1), symbols=4, length=3)
    assert x.shape == (12, 5, 6) and y.shape == (12, 5)
    shown = x.argmax(-1)
    assert ((shown[:3] >= 1) & (shown[:3] <= 4)).all() and (shown[3:8] == 0).all()
    assert (shown[8] == 5).all() and (shown[9:] == 0).all()  # the delimiter on the last blank step
    assert torch.equal(y[9:], shown[:3]) and (y[:9] == 0).all()


def test_both_models_learn_the_adding_task_at_a_small_length():
    config = SequenceTrainConfig(steps=400, batch_size=64, lr=1e-2, eval_every=400, eval_size=500)
    builders = (lambda: IdentityRNN(2, 32, 1), lambda: WaveRNN(2, channels=4, positions=12, n_outputs=1))
    for build in builders:
        torch.manual_seed(0)  # before the model is built: its initial weights must not depend on earlier tests
        model = build()
        run = train_on_task(model, "adding", 8, config)
        assert run["history"][-1]["test_loss"] < 0.06, type(model).__name__  # predicting the mean: 0.167


def test_wave_benchmark_writes_json_markdown_and_figures(tmp_path, capsys):
    argv = ["wave-rnn", "--lengths", "6", "--steps", "20", "--copy-delay", "3", "--copy-steps", "10",
            "--eval-every", "10", "--eval-size", "50", "--batch-size", "16", "--channels", "2", "--positions", "8",
            "--irnn-hidden", "8", "--speed-length", "12", "--out-dir", str(tmp_path), "--quiet"]
    assert main(["bench", *argv]) == 0
    result = json.loads((tmp_path / "wave_vs_irnn_sequences.json").read_text())
    row = result["adding"][0]
    assert row["length"] == 6 and len(row["irnn"]["history"]) == 2 and row["wrnn"]["parameters"] > 0
    assert set(result["copy"]) == {"irnn", "wrnn"} and result["steps_per_s"]["wrnn"] > 0 and result["speed_length"] == 12
    assert "| 6 |" in (tmp_path / "wave_vs_irnn_sequences.md").read_text()
    assert (tmp_path / "wave_rnn_waves_sequences.png").stat().st_size > 1000
    assert (tmp_path / "wave_vs_irnn_sequences_adding_T6.png").stat().st_size > 1000
    with pytest.raises(SystemExit) as bad:
        main(["bench", "wave-rnn", "--lengths", "1"])
    assert bad.value.code == 2


def test_the_full_preset_trains_at_the_authors_rate_and_writes_beside_the_default(tmp_path):
    """--full takes lr 1e-4 (at 1e-3 the 27-channel wRNN overflows at T = 1000) unless --lr says otherwise, and
    writes wave_vs_irnn_sequences-full.*, leaving the default run's files alone."""
    small = ["--lengths", "4", "--steps", "2", "--copy-delay", "2", "--copy-steps", "2", "--eval-every", "2",
             "--eval-size", "8", "--batch-size", "4", "--channels", "2", "--positions", "4", "--irnn-hidden", "4",
             "--speed-length", "4", "--out-dir", str(tmp_path), "--quiet"]
    assert main(["bench", "wave-rnn", "--full", *small]) == 0
    assert json.loads((tmp_path / "wave_vs_irnn_sequences-full.json").read_text())["train_config"]["lr"] == 1e-4
    assert (tmp_path / "wave_rnn_waves_sequences-full.png").exists()
    assert not (tmp_path / "wave_vs_irnn_sequences.json").exists()
    assert main(["bench", "wave-rnn", "--full", "--lr", "0.01", *small]) == 0
    assert json.loads((tmp_path / "wave_vs_irnn_sequences-full.json").read_text())["train_config"]["lr"] == 0.01
    assert main(["bench", "wave-rnn", *small]) == 0
    assert json.loads((tmp_path / "wave_vs_irnn_sequences.json").read_text())["train_config"]["lr"] == 1e-3


def test_a_non_finite_loss_stops_the_run_after_the_steps_before_it():
    """An iRNN with a huge learning rate and no clipping blows up; the run reports the steps whose training loss
    was finite, and an evaluation for each of them (evaluated every step), none after."""
    torch.manual_seed(0)
    config = SequenceTrainConfig(steps=60, batch_size=16, lr=1e3, grad_clip=0, eval_every=1, eval_size=20)
    run = train_on_task(IdentityRNN(2, 20, 1), "adding", 40, config)
    assert run["diverged"] and run["steps"] < 60 and len(run["history"]) == run["steps"]
    assert all(math.isfinite(row["train_loss"]) for row in run["history"])


def test_a_device_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="device"):
        SequenceTrainConfig(device="gpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_the_wave_rnn_trains_on_cuda_with_a_graph_as_without():
    """The whole step (30 recurrent steps forward and backward) as one CUDA graph: the same history as eagerly,
    within the rounding of the fused Adam."""
    runs = []
    for graphs in (True, False):
        torch.manual_seed(0)
        config = SequenceTrainConfig(steps=12, batch_size=16, eval_every=6, eval_size=50, device="cuda",
                                     cuda_graphs=graphs)
        runs.append(train_on_task(WaveRNN(2, 4, 20, 1), "adding", 30, config))
    graphed, eager = runs
    assert [row["step"] for row in graphed["history"]] == [6, 12] and not graphed["diverged"]
    for a, b in zip(graphed["history"], eager["history"]):
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-3)
