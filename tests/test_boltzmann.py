import itertools
import math

import pytest
import torch

from brainlearn.algorithms import DeepBeliefNetConfig
from brainlearn.algorithms.boltzmann import RBM, ais_betas, ais_log_partition, annealing
from brainlearn.train import TrainConfig, fit, make_learner


def small_rbm(n_visible, n_hidden, seed=0, scale=1.0):
    torch.manual_seed(seed)
    rbm = RBM(n_visible, n_hidden)
    rbm.weight.copy_(scale * torch.randn(n_visible, n_hidden))
    rbm.visible_bias.copy_(torch.randn(n_visible))
    rbm.hidden_bias.copy_(torch.randn(n_hidden))
    return rbm


def states(n):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)))


def test_free_energy_matches_brute_force_over_hidden_states():
    rbm = small_rbm(4, 3)
    v, h = states(4), states(3)
    energy = -(v @ rbm.visible_bias)[:, None] - (h @ rbm.hidden_bias)[None] - v @ rbm.weight @ h.T  # (16, 8)
    assert torch.allclose(-torch.logsumexp(-energy, 1), rbm.free_energy(v), atol=1e-5)


def saturated_rbm():
    """Units so strongly driven that every probability is 0 or 1: samples are certain."""
    rbm = RBM(2, 2)
    rbm.weight.copy_(torch.tensor([[20.0, -20.0], [-20.0, 20.0]]))
    rbm.hidden_bias.fill_(-10.0)
    rbm.visible_bias.fill_(-10.0)
    return rbm


def test_cd1_sleep_phase_reconstructs_a_state_the_model_holds():
    # v = [1, 0] -> h = sigma([20 - 10, -20 - 10]) = [1, 0] -> v' = sigma([20 - 10, -20 - 10]) = [1, 0]
    probs, sample = saturated_rbm().gibbs(torch.tensor([[1.0, 0.0]]), 1, torch.Generator().manual_seed(0))
    assert torch.allclose(probs, torch.tensor([[1.0, 0.0]]), atol=1e-4)
    assert torch.equal(sample, torch.tensor([[1.0, 0.0]]))


def test_gibbs_at_zero_inverse_temperature_ignores_the_weights():
    # p(v, h)^0 is uniform: every conditional probability is 1/2, whatever the weights.
    probs, _ = saturated_rbm().gibbs(torch.tensor([[1.0, 0.0]]), 3, torch.Generator().manual_seed(0),
                                     inverse_temperatures=torch.zeros(3))
    assert torch.equal(probs, torch.full((1, 2), 0.5))


def test_annealing_cools_to_one_over_the_first_half_then_stays():
    betas = annealing(10, start_temperature=4.0)
    assert betas[0] == 0.25 and torch.all(betas[5:] == 1.0)
    assert torch.all(betas[1:] >= betas[:-1]) and betas[4] < 1.0
    assert torch.equal(annealing(7, start_temperature=1.0), torch.ones(7))
    with pytest.raises(ValueError, match="start_temperature"):
        annealing(10, start_temperature=0.5)


def test_wake_sleep_update_equals_hand_computation():
    rbm = saturated_rbm()
    optimizer = torch.optim.SGD([rbm.weight, rbm.visible_bias, rbm.hidden_bias], lr=0.1, momentum=0.5)
    v_wake, v_sleep = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])  # h_wake = [1, 0], h_sleep = [0, 1]
    before = rbm.weight.clone()
    rbm.wake_sleep_step(optimizer, v_wake, rbm.hidden_probs(v_wake), v_sleep)
    # dW = v_wake^T h_wake - v_sleep^T h_sleep = [[1, 0], [0, 0]] - [[0, 0], [0, 1]]; first step: lr * dW
    assert torch.allclose(rbm.weight, before + 0.1 * torch.tensor([[1.0, 0.0], [0.0, -1.0]]), atol=1e-4)
    assert torch.allclose(rbm.visible_bias, torch.tensor([-10.0 + 0.1, -10.0 - 0.1]), atol=1e-4)
    assert torch.allclose(rbm.hidden_bias, torch.tensor([-10.0 + 0.1, -10.0 - 0.1]), atol=1e-4)


def test_label_units_form_one_softmax_group():
    rbm = RBM(5, 4, n_labels=3)
    probs = rbm.visible_probs(torch.rand(7, 4))
    assert torch.allclose(probs[:, 5:].sum(1), torch.ones(7))
    sample = rbm.sample_visible(probs, torch.Generator().manual_seed(0))
    assert torch.all(sample[:, 5:].sum(1) == 1)


def test_conditional_wake_sleep_is_the_gradient_of_log_p_label_given_units():
    torch.manual_seed(0)
    rbm = RBM(6, 5, n_labels=3).double()
    for parameter in rbm.parameters():
        parameter.copy_(0.5 * torch.randn_like(parameter))
    units, labels = torch.rand(4, 6, dtype=torch.float64), torch.tensor([0, 2, 1, 2])
    v = torch.cat([units, torch.nn.functional.one_hot(labels, 3).double()], 1)
    ascent = rbm.conditional_wake_sleep(v, rbm.hidden_probs(v))
    parameters = [rbm.weight, rbm.visible_bias, rbm.hidden_bias]
    for parameter in parameters:
        parameter.requires_grad_(True)
    log_p = rbm.label_conditional(units)[0].log_softmax(1)[torch.arange(4), labels].mean()
    for parameter, gradient in zip(parameters, torch.autograd.grad(log_p, parameters)):
        assert torch.allclose(ascent[parameter], gradient, atol=1e-12)


def test_ais_log_partition_close_to_exact_on_a_tiny_rbm():
    rbm = small_rbm(10, 6, seed=1, scale=0.8)
    exact = torch.logsumexp(-rbm.free_energy(states(10)), 0).item()
    estimate, standard_error = ais_log_partition(rbm, torch.full((10,), 0.4), ais_betas(2000), runs=200)
    assert estimate == pytest.approx(exact, abs=0.1)
    assert standard_error < 0.1


def test_ais_betas_follow_salakhutdinov_murray():
    betas = ais_betas(14500)
    assert len(betas) == 14500 and betas[0] == 0 and betas[-1] == 1
    assert torch.all(betas[1:] > betas[:-1])
    assert (betas < 0.5).sum() == 14500 // 29 - 1


@pytest.fixture(scope="module")
def trained_dbn(digits):
    learner = make_learner("dbn", digits.n_features, 10, DeepBeliefNetConfig(hidden=(200, 200, 500)), seed=0)
    history = fit(learner, digits, TrainConfig(epochs=20, batch_size=20, eval_every=0), progress=False)
    return learner, history


def test_dbn_lowers_reconstruction_error_and_classifies_well_above_chance(trained_dbn, digits):
    learner, history = trained_dbn
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["error"] < 0.25  # chance is 0.9


def test_free_energy_classification_is_exact_over_labels(trained_dbn, digits):
    learner, _ = trained_dbn
    x = digits.x_test[:5]
    top = learner.rbms[-1]
    features = learner.top_visible(x)
    brute = torch.stack([top.free_energy(torch.cat([features, torch.nn.functional.one_hot(
        torch.full((5,), c), 10).float()], 1)) for c in range(10)], 1)
    assert torch.allclose(learner.label_free_energies(x), brute, atol=1e-3)


def test_dreams_have_image_shape_and_pixel_range(trained_dbn):
    learner, _ = trained_dbn
    dreams = learner.dream(torch.tensor([2, 2, 7]), 50, torch.Generator().manual_seed(0), start_temperature=3.0)
    assert torch.equal(dreams, learner.dream(torch.tensor([2, 2, 7]), 50, torch.Generator().manual_seed(0), 3.0))
    assert dreams.shape == (3, 64)
    assert dreams.min() >= 0 and dreams.max() <= 1
    assert not math.isclose(dreams.std().item(), 0.0)


def test_hybrid_top_rbm_with_persistent_chain_learns_and_moves_only_the_top_chain(digits):
    config = DeepBeliefNetConfig(hidden=(100, 200), top_sleep="pcd", discriminative=10.0, chains=20)
    learner = make_learner("dbn", digits.n_features, 10, config, seed=0)
    chains_before = [learner.chain0.clone(), learner.chain1.clone()]
    history = fit(learner, digits, TrainConfig(epochs=10, batch_size=20, eval_every=0), progress=False)
    assert torch.equal(learner.chain0, chains_before[0])  # the bottom RBM's sleep starts from the data (cd)
    assert not torch.equal(learner.chain1, chains_before[1])
    assert history[-1]["error"] < 0.5  # chance is 0.9


def test_dbn_config_refuses_bad_sleep_settings():
    with pytest.raises(ValueError, match="top_sleep"):
        DeepBeliefNetConfig(top_sleep="wake")
    with pytest.raises(ValueError, match="discriminative"):
        DeepBeliefNetConfig(discriminative=-1.0)


def test_a_single_rbm_with_label_units_trains_and_reports_pixel_reconstruction(digits):
    learner = make_learner("dbn", digits.n_features, 10, DeepBeliefNetConfig(hidden=(50,)), seed=0)
    history = fit(learner, digits, TrainConfig(epochs=1, batch_size=20), progress=False)
    assert math.isfinite(history[-1]["reconstruction"]) and 0 <= history[-1]["error"] <= 1
