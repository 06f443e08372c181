import json

import pytest
import torch

from brainlearn.cli import main
from brainlearn.distillation import distill, from_labels, error_rates, two_shards
from brainlearn.hardware import BlackBox, Drift, Fault, MortalLinear, Noise, Quantize, make_mortal, quantize
from brainlearn.train import TrainConfig, fit, make_learner


def test_additive_noise_has_the_stated_level_relative_to_the_rms():
    a = torch.randn(200, 500) * 3.0
    noise = Noise(0.3, "additive", seed=1).activity(a) - a
    assert noise.std().item() == pytest.approx(0.3 * a.pow(2).mean().sqrt().item(), rel=0.02)


def test_multiplicative_noise_has_the_stated_relative_level():
    a = torch.rand(200, 500) + 0.5
    ratio = Noise(0.1, "multiplicative", seed=1).weight(a) / a - 1
    assert ratio.std().item() == pytest.approx(0.1, rel=0.02) and abs(ratio.mean().item()) < 0.002


def test_noise_is_deterministic_under_its_seed():
    a = torch.randn(10, 10)
    assert torch.equal(Noise(0.5, seed=3).activity(a), Noise(0.5, seed=3).activity(a))


@pytest.mark.parametrize("bits", [1, 2, 3, 8])
def test_quantize_gives_exactly_two_to_the_k_levels_and_passes_the_gradient_straight(bits):
    x = torch.linspace(-2.0, 5.0, 10_000, requires_grad=True)
    q = quantize(x, bits)
    assert len(q.detach().unique()) == 2 ** bits
    assert (q - x).abs().max() <= 7.0 / (2 ** bits - 1) / 2 + 1e-5  # within half a step
    q.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_drift_is_a_random_walk_of_the_stated_rate():
    w = torch.zeros(1000, 100)
    drift = Drift(1e-3, seed=0)
    for _ in range(100):
        drift.drift(w, initial_rms=2.0)
    assert w.pow(2).mean().sqrt().item() == pytest.approx(1e-3 * 2.0 * 100 ** 0.5, rel=0.02)


def test_drift_moves_weights_after_each_step_and_at_test():
    learner = make_mortal(make_learner("bp", 64, 10), Drift(1e-2))
    layer = learner.net[0]
    before = layer.linear.weight.detach().clone()
    learner.train_step(torch.rand(8, 64), torch.randint(0, 10, (8,)))
    after_step = layer.linear.weight.detach().clone()
    learner.eval()
    learner.predict(torch.rand(8, 64))
    assert not torch.equal(before, after_step) and not torch.equal(after_step, layer.linear.weight)


def test_backprop_through_the_black_box_is_refused():
    learner = make_mortal(make_learner("bp", 64, 10), Fault(), BlackBox(500))
    with pytest.raises(RuntimeError, match="Jacobian is not available"):
        learner.train_step(torch.rand(8, 64), torch.randint(0, 10, (8,)))


def test_black_box_sits_before_hidden_layer_two_in_ff_and_bp():
    for algorithm, second in (("ff", lambda l: l.layers[1]), ("bp", lambda l: l.net[2])):
        learner = make_mortal(make_learner(algorithm, 64, 10), Fault(), BlackBox(500))
        assert isinstance(second(learner), MortalLinear) and second(learner).box is not None
        assert sum(m.box is not None for m in learner.modules() if isinstance(m, MortalLinear)) == 1


def test_ff_learns_with_a_black_box_it_never_differentiates(digits):
    learner = make_mortal(make_learner("ff", 64, 10), Fault(), BlackBox(500))
    history = fit(learner, digits, TrainConfig(epochs=3), progress=False)
    assert history[-1]["error_softmax"] < 0.5  # chance: 0.9


def test_bp_above_the_box_leaves_the_layer_below_untouched_and_straight_through_trains_it():
    x, y = torch.rand(16, 64), torch.randint(0, 10, (16,))
    for mode, moves in (("above", False), ("straight-through", True)):
        learner = make_mortal(make_learner("bp", 64, 10), Fault(), BlackBox(500, mode=mode))
        first = learner.net[0].linear.weight.detach().clone()
        learner.train_step(x, y)
        assert torch.equal(first, learner.net[0].linear.weight) != moves


def test_fault_arguments_are_checked():
    for bad in (lambda: Noise(-1), lambda: Noise(0.1, "loud"), lambda: Drift(-1), lambda: Quantize(0),
                lambda: BlackBox(4, mode="guess")):
        with pytest.raises(ValueError):
            bad()


@pytest.fixture(scope="module")
def teacher(digits):
    net = make_learner("bp", 64, 10)
    fit(net, digits, TrainConfig(epochs=20), progress=False)
    return net


def test_distilled_student_beats_one_trained_on_its_few_labels(digits, teacher):
    """The student has 100 labels; distilled, it learns from the teacher's soft targets on unlabelled images."""
    alone = from_labels(digits.x_train[:100], digits.y_train[:100], (32,), TrainConfig(epochs=100, batch_size=20))
    student = distill(teacher, digits.x_train, (32,), TrainConfig(epochs=20, batch_size=20))
    errors = {name: error_rates([net], digits.x_test, digits.y_test)["net0"]
              for name, net in (("alone", alone), ("distilled", student))}
    assert errors["distilled"] < errors["alone"] - 0.03, errors


def test_weight_averaging_makes_the_two_nets_one_and_codistillation_keeps_them_apart(digits):
    x, y = digits.x_train[:400], digits.y_train[:400]
    config = TrainConfig(epochs=20, batch_size=20)
    averaged = two_shards(x, y, (32,), config, "average", average_every=10)  # 10 steps per epoch: ends averaged
    assert all(torch.equal(a, b) for a, b in zip(averaged[0].parameters(), averaged[1].parameters()))
    codistilled = two_shards(x, y, (32,), config, "codistill")
    assert not torch.equal(codistilled[0].net[0].weight, codistilled[1].net[0].weight)
    errors = error_rates(list(codistilled), digits.x_test, digits.y_test)
    assert set(errors) == {"net0", "net1", "ensemble"} and max(errors.values()) < 0.5
    with pytest.raises(ValueError, match="mode"):
        two_shards(x, y, (16,), config, "telepathy")


def test_mortal_benchmark_writes_every_fault_for_ff_and_bp(tmp_path):
    code = main(["bench", "mortal", "--dataset", "digits", "--hidden", "16", "16", "--epochs", "1",
                 "--labelled", "100", "--shard-size", "200", "--out-dir", str(tmp_path), "--quiet"])
    assert code == 0
    result = json.loads((tmp_path / "mortal_digits.json").read_text())
    assert len(result["faults"]) == 13 and all(0 <= row[a]["error"] <= 1 for row in result["faults"] for a in ("ff", "bp"))
    assert set(result["black_box"]) >= {"ff", "bp-above-box", "bp-straight-through"}
    assert (tmp_path / "mortal_digits.png").exists() and "| drift |" in (tmp_path / "mortal_digits.md").read_text()


def test_mortal_benchmark_refuses_a_single_hidden_layer():
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "mortal", "--dataset", "digits", "--hidden", "16"])
    assert exit_info.value.code == 2
