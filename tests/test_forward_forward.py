import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from brainlearn.algorithms import BackpropConfig, ForwardForward, ForwardForwardConfig, RecurrentFFConfig
from brainlearn.algorithms.forward_forward import (NEUTRAL, FullGradientReLU, embed_label, ff_loss, goodness, layer_norm,
                                                   peer_loss)
from brainlearn.experiments.ff_ablation import HINTON_PEER, hinton_peer_normalisation
from brainlearn.experiments.ff_vs_bp import training_flops_per_sample
from brainlearn.train import TrainConfig, fit, make_learner


def test_goodness_and_loss_match_hand_computation():
    y = torch.tensor([[1.0, 2.0, 0.0], [0.0, 3.0, 1.0]])
    g = goodness(y)
    assert g.tolist() == [5.0, 10.0]
    theta = 6.0
    # -log sigma(5 - 6) on the positive row, -log(1 - sigma(10 - 6)) on the negative row
    expected = -math.log(1 / (1 + math.exp(1.0))) - math.log(1 - 1 / (1 + math.exp(-4.0)))
    assert ff_loss(g[:1], g[1:], theta).item() == pytest.approx(expected, rel=1e-6)


def test_layer_norm_keeps_orientation_and_drops_length():
    y = torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]])
    out = layer_norm(y)
    assert out.pow(2).mean(1).tolist() == pytest.approx([1.0, 1.0])
    assert torch.allclose(out / out.norm(dim=1, keepdim=True), y / y.norm(dim=1, keepdim=True))
    assert torch.allclose(layer_norm(5 * y), out)  # goodness of the layer below is invisible


def test_embed_label_writes_one_hot_or_neutral_into_first_pixels():
    x = torch.rand(3, 20)
    out = embed_label(x, torch.tensor([0, 4, 9]), 10)
    assert out[:, :10].tolist() == torch.eye(10)[[0, 4, 9]].tolist()
    assert torch.equal(out[:, 10:], x[:, 10:])
    assert not torch.equal(out, x)  # the input itself is untouched
    assert torch.all(embed_label(x, None, 10)[:, :10] == NEUTRAL)


def test_no_gradient_crosses_layers():
    """Every layer (and the softmax head) sees an input with no autograd graph behind it."""
    learner = ForwardForward(30, 10, ForwardForwardConfig(hidden=(16, 16, 16)), seed=0)
    seen = []
    for module in [*learner.layers, learner.classifier]:
        module.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0].requires_grad))
    learner.train_step(torch.rand(8, 30), torch.randint(0, 10, (8,)))
    assert seen and not any(seen)


def test_layer_update_depends_only_on_its_own_loss():
    """Training changes layer 1's weights exactly as its own loss's gradient says."""
    torch.manual_seed(0)
    learner = ForwardForward(30, 10, ForwardForwardConfig(hidden=(16, 16), negatives="random"), seed=0)
    first = learner.layers[0]
    grads = []
    first.weight.register_hook(lambda grad: grads.append(grad.clone()))
    learner.train_step(torch.rand(8, 30), torch.randint(0, 10, (8,)))
    assert len(grads) == 1  # one backward reached layer 1: its own, none from layer 2


@pytest.mark.parametrize("negatives", ["hard", "random"])
def test_negative_labels_are_always_wrong(negatives):
    learner = ForwardForward(20, 10, ForwardForwardConfig(hidden=(8,), negatives=negatives), seed=0)
    y = torch.randint(0, 10, (2000,))
    y_neg = learner.negative_labels(y, torch.randn(2000, 10))
    assert not torch.any(y_neg == y)
    assert set(y_neg.tolist()) == set(range(10))


def test_hard_negatives_follow_the_classifier():
    learner = ForwardForward(20, 10, ForwardForwardConfig(hidden=(8,)), seed=0)
    y = torch.zeros(1000, dtype=torch.long)
    logits = torch.zeros(1000, 10)
    logits[:, 3] = 5.0  # the classifier strongly (and wrongly) believes in label 3
    share = (learner.negative_labels(y, logits) == 3).float().mean().item()
    expected = math.exp(5) / (math.exp(5) + 8)
    assert share == pytest.approx(expected, abs=0.05)


@pytest.fixture(scope="module")
def trained_ff(digits):
    learner = make_learner("ff", digits.n_features, 10, ForwardForwardConfig(hidden=(200, 200), lr=3e-3), seed=0)
    fit(learner, digits, TrainConfig(epochs=20, batch_size=50, lr_schedule="cooldown", eval_every=0), progress=False)
    return learner


def test_ff_learns_digits_by_both_methods(trained_ff, digits):
    errors = trained_ff.evaluate(digits.x_test, digits.y_test)
    assert errors["error_softmax"] < 0.10
    assert errors["error_goodness"] < 0.10


def test_evaluation_methods_agree_on_a_trained_net(trained_ff, digits):
    agree = (trained_ff.predict(digits.x_test) == trained_ff.predict_softmax(digits.x_test)).float().mean()
    assert agree > 0.9


def test_goodness_top_k_shortlists_softmax_candidates(trained_ff, digits):
    x = digits.x_test[:100]
    top2 = trained_ff.classifier(trained_ff.features(x)).topk(2, 1).indices
    trained_ff.config.goodness_top_k = 2
    try:
        picked = trained_ff.predict(x)
    finally:
        trained_ff.config.goodness_top_k = 0
    assert torch.all((picked[:, None] == top2).any(1))
    all_scores = trained_ff.label_goodness(x, torch.arange(10).expand(100, -1))
    assert torch.equal(trained_ff.predict(x), all_scores.argmax(1))


def test_ff_refuses_bad_configuration():
    with pytest.raises(ValueError, match="hidden"):
        ForwardForwardConfig(hidden=())
    with pytest.raises(ValueError, match="negatives"):
        ForwardForwardConfig(negatives="fancy")
    with pytest.raises(ValueError, match="label"):
        ForwardForward(5, 10)


def plain_first_layer(ff: ForwardForward, x: torch.Tensor):
    """Layer 1's pre-activations computed pass by pass, as the module docstring's equation replaces."""
    return lambda *labels: ff.layers[0](layer_norm(torch.cat([ff.embed(x, labels_k) for labels_k in labels])))


@pytest.mark.parametrize("label_value", [1.0, 5.0])
def test_shared_first_layer_product_equals_the_plain_passes(digits, label_value):
    ff = ForwardForward(digits.n_features, 10, ForwardForwardConfig(hidden=(16,), label_value=label_value))
    x, y = digits.x_train[:30], digits.y_train[:30]
    y_neg = (y + 3) % 10
    shared, plain = ff.first_layer(x), plain_first_layer(ff, x)
    for labels in [(None,), (y, y_neg)]:
        assert torch.allclose(shared(*labels), plain(*labels), atol=1e-5)


def test_shared_first_layer_product_takes_the_same_training_steps(digits):
    config = ForwardForwardConfig(hidden=(32, 32))
    shared = make_learner("ff", digits.n_features, 10, config, seed=0)
    plain = make_learner("ff", digits.n_features, 10, config, seed=0)
    plain.first_layer = lambda x: plain_first_layer(plain, x)
    for i in range(5):
        x, y = digits.x_train[i * 50:(i + 1) * 50], digits.y_train[i * 50:(i + 1) * 50]
        a, b = shared.train_step(x, y), plain.train_step(x, y)
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-4)
    for p, q in zip(shared.parameters(), plain.parameters()):
        assert torch.allclose(p, q, atol=1e-5)


@pytest.mark.parametrize("algorithm", ["ff", "bp"])
@pytest.mark.parametrize("hidden", [(32,), (32, 24, 16)])
def test_the_benchmarks_flop_count_is_what_a_training_step_multiplies(digits, algorithm, hidden):
    """ff-vs-bp's and device_speed's FLOP/s rest on this count: torch's own counter, on one training step."""
    learner = make_learner(algorithm, digits.n_features, 10, {"ff": ForwardForwardConfig, "bp": BackpropConfig}[
        algorithm](hidden=hidden), seed=0)
    x, y = digits.x_train[:40], digits.y_train[:40]
    with FlopCounterMode(display=False) as counter:
        learner.train_step(x, y)
    assert counter.get_total_flops() == 40 * training_flops_per_sample(algorithm, (digits.n_features, *hidden), 10)


def test_label_value_scales_the_label_and_the_neutral_label():
    ff = ForwardForward(20, 10, ForwardForwardConfig(hidden=(8,), label_value=5.0))
    x = torch.rand(2, 20)
    assert ff.embed(x, torch.tensor([3, 7]))[:, :10].sum(1).tolist() == [5.0, 5.0]
    assert ff.embed(x, None)[:, :10].tolist() == [[5.0 * NEUTRAL] * 10] * 2
    assert torch.equal(ff.embed(x, None)[:, 10:], x[:, 10:])


def test_full_gradient_relu_is_relu_forward_and_passes_every_gradient_back():
    x = torch.tensor([-2.0, -0.5, 0.0, 1.5], requires_grad=True)
    y = FullGradientReLU.apply(x)
    assert torch.equal(y, torch.relu(x))
    y.backward(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert x.grad.tolist() == [1.0, 2.0, 3.0, 4.0]  # relu would pass [0, 0, 0, 4]


def test_peer_normalisation_matches_hand_computation():
    running = torch.tensor([0.5, 1.0, 0.0])
    positive = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]], requires_grad=True)
    loss, mean = peer_loss(running, positive, momentum=0.9)
    # m = 0.9 * [0.5, 1, 0] + 0.1 * [2, 1, 0] = [0.65, 1.0, 0.0]; mean_k m_k = 0.55
    assert mean.tolist() == pytest.approx([0.65, 1.0, 0.0])
    expected = ((0.55 - 0.65) ** 2 + (0.55 - 1.0) ** 2 + 0.55 ** 2) / 3
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    # dL/dm_i = (2/3) (m_i - mean m) (the mean's own terms sum to zero); dm_i/dy_ri = 0.1 / 2 rows
    grad_m = [2 / 3 * (m - 0.55) for m in (0.65, 1.0, 0.0)]
    assert positive.grad.tolist() == [pytest.approx([g * 0.05 for g in grad_m])] * 2
    assert not mean.requires_grad


def test_peer_normalisation_at_hintons_strength_gives_his_gradient_per_unit():
    # ffnew.m adds lambdamean (mean_k m_k - m_i) to each positive case's dC/dy, beside the goodness term (1 - p) y;
    # FF's goodness term is 2 (1 - p) y, so at the strength ff-ablation derives the peer term must give twice his.
    width, batch = 50, 8
    strength = hinton_peer_normalisation((width, width))["peer_normalization"]
    generator = torch.Generator().manual_seed(0)
    running = torch.rand(width, generator=generator)
    positive = torch.rand(batch, width, generator=generator, requires_grad=True)
    loss, mean = peer_loss(running, positive, momentum=ForwardForwardConfig.peer_momentum)
    (strength * loss).backward()
    hinton = HINTON_PEER * (mean.mean() - mean) / batch  # his ascent direction, per case, over the minibatch
    assert torch.allclose(positive.grad, -2 * hinton.expand(batch, -1), rtol=1e-4, atol=1e-9)


def test_peer_normalisation_updates_each_layers_running_mean(digits):
    ff = ForwardForward(digits.n_features, 10, ForwardForwardConfig(hidden=(16, 16), peer_normalization=0.03))
    before = [ff.running_mean1.clone(), ff.running_mean2.clone()]
    ff.train_step(digits.x_train[:50], digits.y_train[:50])
    assert all(not torch.equal(a, b) for a, b in zip(before, [ff.running_mean1, ff.running_mean2]))
    assert "running_mean1" in ff.state_dict()
    assert "running_mean1" not in ForwardForward(digits.n_features, 10).state_dict()  # off: checkpoints as before


def test_sgd_weight_decay_and_fan_out_init_reach_the_layers():
    config = ForwardForwardConfig(hidden=(400, 30), optimizer="sgd", momentum=0.8, weight_decay=3e-4,
                                  classifier_weight_decay=3e-3, init="fan-out")
    ff = ForwardForward(784, 10, config)
    assert all(isinstance(opt, torch.optim.SGD) for opt in ff.optimizers)
    groups = [opt.param_groups[0] for opt in ff.optimizers]
    assert [g["weight_decay"] for g in groups] == [3e-4, 3e-4, 3e-3] and {g["momentum"] for g in groups} == {0.8}
    assert ff.layers[0].weight.std().item() == pytest.approx(400 ** -0.5, rel=0.02)
    assert ff.layers[1].weight.std().item() == pytest.approx(30 ** -0.5, rel=0.05)
    assert not ff.layers[0].bias.any()


FULL_RECIPE = dict(hidden=(32, 32), optimizer="sgd", weight_decay=3e-4, peer_normalization=0.03,
                   full_gradient_relu=True, init="fan-out")


@pytest.mark.parametrize("algorithm, config", [
    ("ff", ForwardForwardConfig(**FULL_RECIPE, label_value=5.0)),
    ("rff", RecurrentFFConfig(**FULL_RECIPE, iterations=3, test_window=(2, 3)))])
def test_the_full_recipe_resumes_bit_for_bit(digits, tmp_path, algorithm, config):
    train = TrainConfig(epochs=2, batch_size=50)
    straight = fit(make_learner(algorithm, digits.n_features, 10, config), digits, train, progress=False)
    fit(make_learner(algorithm, digits.n_features, 10, config), digits, TrainConfig(epochs=1, batch_size=50),
        run_dir=tmp_path, progress=False)
    resumed = fit(make_learner(algorithm, digits.n_features, 10, config), digits, train, run_dir=tmp_path,
                  resume=True, progress=False)
    assert [row["loss"] for row in resumed] == [row["loss"] for row in straight]
