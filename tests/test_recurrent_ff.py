import pytest
import torch
import torch.nn.functional as F

from brainlearn.algorithms import RecurrentFF, RecurrentFFConfig
from brainlearn.algorithms.forward_forward import ff_loss, goodness, layer_norm, peer_loss
from brainlearn.train import TrainConfig, fit, make_learner


def tiny(**overrides) -> RecurrentFF:
    torch.manual_seed(0)
    return RecurrentFF(12, 3, RecurrentFFConfig(hidden=(5, 4), iterations=6, test_window=(2, 4), **overrides))


def test_video_shapes_and_one_state_per_step():
    net, x = tiny(), torch.rand(7, 12)
    videos = list(net.video(x, net.one_hot(torch.tensor([0, 1, 2, 0, 1, 2, 0]), 7)))
    assert len(videos) == 6 and [s.shape for s in videos[-1]] == [(7, 5), (7, 4)]
    assert net.goodness_per_step(x, torch.zeros(7, dtype=torch.long)).shape == (6, 2, 7)
    candidates = torch.tensor([[0, 2]]).expand(7, -1)
    assert net.label_scores(x, candidates).shape == (7, 2) and net.predict(x).shape == (7,)


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
    with pytest.raises(ValueError, match="label_value"):
        RecurrentFFConfig(label_value=5.0)


def test_the_recipe_reaches_the_optimizers_and_the_initialisation():
    net = tiny(optimizer="sgd", momentum=0.8, weight_decay=3e-4, classifier_weight_decay=3e-3, init="fan-out",
               lateral=True)
    assert all(isinstance(opt, torch.optim.SGD) for opt in net.optimizers)
    groups = [opt.param_groups[0] for opt in net.optimizers]
    assert [g["weight_decay"] for g in groups] == [3e-4, 3e-3] and {g["momentum"] for g in groups} == {0.8}
    assert sum(p.numel() for p in groups[0]["params"]) == sum(
        p.numel() for name, p in net.named_parameters() if not name.startswith("classifier"))
    wide = RecurrentFF(784, 10, RecurrentFFConfig(hidden=(400, 300), init="fan-out"))
    assert wide.up[0].weight.std().item() == pytest.approx(400 ** -0.5, rel=0.02)
    assert wide.down[0].weight.std().item() == pytest.approx(400 ** -0.5, rel=0.05)
    assert not wide.up[0].bias.any()


def test_peer_normalisation_adds_its_term_at_every_step_and_updates_the_running_mean():
    net, batch = tiny(peer_normalization=0.03, peer_momentum=0.9), 3
    state = torch.rand(2 * batch, 4)
    running = torch.rand(4)
    net.running_mean2.copy_(running)
    expected_peer, expected_mean = peer_loss(running, state[:batch], 0.9)
    g = goodness(state)
    loss = net.layer_loss(1, state, batch)
    assert torch.allclose(loss, ff_loss(g[:batch], g[batch:], net.thetas[1]) + 0.03 * expected_peer)
    assert torch.allclose(net.running_mean2, expected_mean)
    assert "running_mean1" in net.state_dict() and "running_mean1" not in tiny().state_dict()


def test_goodness_top_k_scores_only_the_softmax_shortlist(digits):
    learner = make_learner("rff", digits.n_features, 10, RecurrentFFConfig(hidden=(32, 32), iterations=3,
                                                                           test_window=(2, 3)), seed=0)
    fit(learner, digits, TrainConfig(epochs=1, batch_size=50, eval_every=0), progress=False)
    x = digits.x_test[:40]
    top2 = learner.classifier(learner.features(x)).topk(2, 1).indices
    learner.config.goodness_top_k = 1
    assert torch.equal(learner.predict(x), top2[:, 0])  # one candidate: the softmax's choice
    learner.config.goodness_top_k = 2
    picked = learner.predict(x)
    assert ((picked[:, None] == top2).any(1)).all()
    scores = learner.label_scores(x, top2)
    assert torch.equal(picked, top2.gather(1, scores.argmax(1, keepdim=True))[:, 0])

