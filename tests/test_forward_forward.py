import math

import pytest
import torch

from brainlearn.algorithms import ForwardForward, ForwardForwardConfig
from brainlearn.algorithms.forward_forward import NEUTRAL, embed_label, ff_loss, goodness, layer_norm
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
