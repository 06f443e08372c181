import pytest
import torch
import torch.nn.functional as F

from brainlearn.algorithms import RecurrentFF, RecurrentFFConfig
from brainlearn.algorithms.forward_forward import layer_norm
from brainlearn.train import TrainConfig, fit, make_learner


def tiny(**overrides) -> RecurrentFF:
    torch.manual_seed(0)
    return RecurrentFF(12, 3, RecurrentFFConfig(hidden=(5, 4), iterations=6, test_window=(2, 4), **overrides))


def test_video_shapes_and_one_state_per_step():
    net, x = tiny(), torch.rand(7, 12)
    videos = list(net.video(x, net.one_hot(torch.tensor([0, 1, 2, 0, 1, 2, 0]), 7)))
    assert len(videos) == 6 and [s.shape for s in videos[-1]] == [(7, 5), (7, 4)]
    assert net.goodness_per_step(x, torch.zeros(7, dtype=torch.long)).shape == (6, 2, 7)
    assert net.label_scores(x).shape == (7, 3) and net.predict(x).shape == (7,)


@pytest.mark.parametrize("lateral", [False, True])
def test_step_is_the_damped_update_from_below_above_and_self(lateral):
    net, x = tiny(damping=0.3, lateral=lateral), torch.rand(2, 12)
    label = net.one_hot(torch.tensor([2, 0]), 2)
    states = [torch.rand(2, 5), torch.rand(2, 4)]
    new = net.step(x, label, states)
    for l, (below, above) in enumerate([(x, states[1]), (states[0], label)]):
        drive = net.up[l](layer_norm(below)) + net.down[l](layer_norm(above))
        if lateral:
            drive = drive + net.lateral[l](layer_norm(states[l]))
        assert torch.allclose(new[l], 0.3 * states[l] + 0.7 * F.relu(drive), atol=1e-6)


def test_no_gradient_crosses_layers_or_steps():
    net, x = tiny(), torch.rand(4, 12)
    label = net.one_hot(torch.tensor([0, 1, 2, 0]), 4)
    previous = [s.requires_grad_(True) for s in net.first_pass(x)]
    new = net.step(x, label, previous)
    new[1].pow(2).sum().backward()  # layer 2's goodness at this step
    assert all(s.grad is None for s in previous)  # nothing reaches the step before
    assert net.up[0].weight.grad is None and net.down[0].weight.grad is None  # nor layer 1
    assert net.up[1].weight.grad.abs().sum() > 0 and net.down[1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("objective", ["high", "low"])
def test_short_run_on_digits_learns_well_above_chance(digits, objective):
    config = RecurrentFFConfig(hidden=(64, 64), objective=objective)
    learner = make_learner("rff", digits.n_features, 10, config, seed=0)
    history = fit(learner, digits, TrainConfig(epochs=8, batch_size=32, eval_every=0), progress=False)
    assert history[-1]["error_goodness"] < 0.35 and history[-1]["error_softmax"] < 0.35  # chance: 0.9
    assert history[-1]["loss"] < history[0]["loss"]


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="test_window"):
        RecurrentFFConfig(iterations=4, test_window=(3, 5))
    with pytest.raises(ValueError, match="damping"):
        RecurrentFFConfig(damping=1.0)
    with pytest.raises(ValueError, match="objective"):
        RecurrentFFConfig(objective="medium")
