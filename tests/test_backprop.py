import torch

from brainlearn.algorithms import Backprop, BackpropConfig
from brainlearn.train import TrainConfig, fit, make_learner


def test_same_architecture_as_ff_hidden_sizes():
    learner = Backprop(64, 10, BackpropConfig(hidden=(32, 16)))
    shapes = [tuple(p.shape) for p in learner.parameters()]
    assert shapes == [(32, 64), (32,), (16, 32), (16,), (10, 16), (10,)]


def test_backprop_gradient_matches_finite_differences():
    torch.manual_seed(0)
    learner = Backprop(6, 3, BackpropConfig(hidden=(5,))).double()
    x, y = torch.randn(4, 6, dtype=torch.double), torch.tensor([0, 1, 2, 1])
    loss = lambda inp: torch.nn.functional.cross_entropy(learner.net(inp), y)  # noqa: E731
    assert torch.autograd.gradcheck(loss, (x.requires_grad_(),))


def test_backprop_learns_digits(digits):
    learner = make_learner("bp", digits.n_features, 10, BackpropConfig(hidden=(100,)), seed=0)
    history = fit(learner, digits, TrainConfig(epochs=10, eval_every=0), progress=False)
    assert history[-1]["error"] < 0.10
    assert history[-1]["loss"] < history[0]["loss"]
