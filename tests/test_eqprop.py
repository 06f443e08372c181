import pytest
import torch

from brainlearn.algorithms.eqprop import EquilibriumProp, EquilibriumPropConfig
from brainlearn.train import TrainConfig, fit, make_learner


def tiny_network(step_size=0.5, scale=2.0, seed=0):
    torch.manual_seed(seed)
    net = EquilibriumProp(8, 3, EquilibriumPropConfig(hidden=(6, 5), lr=(0.1, 0.1, 0.1), step_size=step_size))
    net = net.double()
    with torch.no_grad():
        for w in net.weights:
            w.mul_(scale)
        for b in net.biases:
            b.copy_(0.3 * torch.randn_like(b))
    x = torch.rand(4, 8, dtype=torch.double)
    target = torch.nn.functional.one_hot(torch.tensor([0, 2, 1, 2]), 3).double()
    return net, x, target


@pytest.mark.parametrize("step_size", [0.1, 0.5])
def test_energy_never_increases_along_the_relaxation(step_size):
    net, x, _ = tiny_network(step_size=step_size)
    states = [torch.zeros(4, n, dtype=torch.double) for n in (6, 5, 3)]
    energies = [net.energy(x, states)]
    for _ in range(60):
        states = net.relax(x, states, 1)
        energies.append(net.energy(x, states))
    energies = torch.stack(energies)
    assert torch.all(energies[1:] <= energies[:-1] + 1e-12)
    assert torch.all(energies[-1] < energies[0])


def test_relaxation_step_is_the_energy_gradient():
    net, x, _ = tiny_network()
    states = [(0.2 + 0.6 * torch.rand(4, n, dtype=torch.double)).requires_grad_() for n in (6, 5, 3)]
    grads = torch.autograd.grad(net.energy(x, states).sum(), states)
    stepped = net.relax(x, [s.detach() for s in states], 1)
    for s, g, new in zip(states, grads, stepped):
        assert torch.allclose(new, (s.detach() - 0.5 * g).clamp(0, 1))


def test_local_weight_gradients_match_autograd_of_the_energy():
    net, x, _ = tiny_network()
    states = [torch.rand(4, n, dtype=torch.double) for n in (6, 5, 3)]
    params = [p for pair in zip(net.weights, net.biases) for p in pair]
    for p in params:
        p.requires_grad_(True)
    expected = torch.autograd.grad(net.energy(x, states).mean(), params)
    for local, auto in zip(net.energy_gradients(x, states), expected):
        assert torch.allclose(local, auto)


def test_nudged_phase_moves_the_output_towards_the_target():
    net, x, target = tiny_network()
    free = net.free_phase(x, steps=200)
    nudged = net.relax(x, free, 50, beta=0.5, target=target)
    before, after = (free[-1] - target).norm(dim=1), (nudged[-1] - target).norm(dim=1)
    assert torch.all(after <= before + 1e-12)  # a unit saturated at the box's edge may not move
    assert after.mean() < before.mean()


def backprop_through_relaxation(net, x, target, steps):
    params = [p for pair in zip(net.weights, net.biases) for p in pair]
    for p in params:
        p.requires_grad_(True)
    output = net.free_phase(x, steps=steps)[-1]
    loss = 0.5 * (output - target).pow(2).sum(1).mean()
    grads = torch.autograd.grad(loss, params)
    for p in params:
        p.requires_grad_(False)
    return torch.cat([g.flatten() for g in grads])


def test_ep_update_converges_to_the_backprop_gradient_as_beta_shrinks():
    """Theorem 1: (dF/dtheta(s^beta) - dF/dtheta(s^0)) / beta -> dLoss/dtheta, with an error of order
    beta one-sided and of order beta^2 with symmetric nudging."""
    net, x, target = tiny_network()
    true = backprop_through_relaxation(net, x, target, steps=300)
    free = net.free_phase(x, steps=300)
    betas = (0.5, 0.1, 0.01, 0.001)
    errors, cosines = {}, {}
    for symmetric in (False, True):
        for beta in betas:
            ep = torch.cat([g.flatten() for g in net.ep_gradient(x, target, free, beta, symmetric, steps=300)])
            errors[symmetric, beta] = ((ep - true).norm() / true.norm()).item()
            cosines[symmetric, beta] = torch.nn.functional.cosine_similarity(ep, true, dim=0).item()
    for symmetric in (False, True):
        assert all(errors[symmetric, a] > errors[symmetric, b] for a, b in zip(betas, betas[1:]))
        assert all(cosines[symmetric, beta] > 0.99 for beta in betas[1:])
    for beta in betas:
        assert errors[True, beta] < errors[False, beta]
    assert errors[False, 0.01] == pytest.approx(0.01, rel=0.2)  # first order in beta
    assert errors[True, 0.01] < 5 * 0.01**2  # second order


def test_random_nudging_draws_both_signs():
    net = EquilibriumProp(64, 10, EquilibriumPropConfig(hidden=(16,), nudging="random"))
    signs = {bool(torch.rand((), generator=net.generator) < 0.5) for _ in range(50)}
    assert signs == {True, False}


def test_eqprop_learns_digits_well_above_chance(digits):
    learner = make_learner("eqprop", digits.n_features, 10, EquilibriumPropConfig(hidden=(100,)), seed=0)
    history = fit(learner, digits, TrainConfig(epochs=5, batch_size=20, eval_every=0), progress=False)
    assert history[-1]["error"] < 0.2  # chance: 0.9
    assert history[-1]["loss"] < history[0]["loss"]


def test_eqprop_refuses_bad_configuration():
    with pytest.raises(ValueError, match="one per weight matrix"):
        EquilibriumPropConfig(hidden=(10, 10), lr=(0.1,))
    with pytest.raises(ValueError, match="nudging"):
        EquilibriumPropConfig(nudging="sideways")
