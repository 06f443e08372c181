import json

import pytest
import torch

from brainlearn.algorithms import DendriticConfig, DendriticMicrocircuit
from brainlearn.cli import main
from brainlearn.experiments import dendritic_vs_bp
from brainlearn.experiments.common import net_description
from brainlearn.train import TrainConfig, fit, make_learner


def tiny(seed=0, **config) -> DendriticMicrocircuit:
    torch.manual_seed(seed)
    return DendriticMicrocircuit(5, 3, DendriticConfig(**{"hidden": (4,), **config}), seed=seed).double()


def apical_rms(net, x) -> float:
    return torch.cat([v.flatten() for v in net.settle(x).apical]).pow(2).mean().sqrt().item()


def test_interneurons_learn_the_self_predicting_state_and_silence_the_apical_compartments():
    """No target, random inputs, interneuron weights started away from the self-predicting state: the
    interneurons learn to predict the layer above, and the apical potentials shrink."""
    net = tiny(lr=(0.0, 0.0), lr_interneuron=0.5, lr_apical=0.5, hidden=(20,))
    torch.manual_seed(1)
    with torch.no_grad():
        net.to_inter[0].copy_(torch.randn_like(net.to_inter[0]))
        net.from_inter[0].copy_(torch.randn_like(net.from_inter[0]))
    probe = torch.rand(200, 5, dtype=torch.float64)
    before = apical_rms(net, probe)
    for _ in range(3000):
        x = torch.rand(20, 5, dtype=torch.float64)
        net.learn(x, net.settle(x))
    after = apical_rms(net, probe)
    assert after < 0.05 * before, (before, after)


def test_a_fresh_net_starts_in_the_self_predicting_state():
    net = tiny()
    x = torch.rand(10, 5, dtype=torch.float64)
    assert apical_rms(net, x) < 1e-6  # built in float32
    settled, feedforward = net.settle(x), net.feedforward(x)
    assert all(torch.allclose(a, b) for a, b in zip(settled.u, feedforward.u))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_basal_update_approaches_backprops_gradient_as_the_nudge_weakens(seed):
    """Top-down weights equal to the transposed forward weights, self-predicting state: the update of every basal
    matrix points along backprop's (float64 autograd), tighter as g_som -> 0."""
    x = torch.rand(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    y = torch.randint(0, 3, (8,), generator=torch.Generator().manual_seed(seed))
    worst = []
    for g_som in (0.8, 0.1, 0.01, 0.001):
        net = tiny(seed, g_som=g_som)
        with torch.no_grad():
            net.top_down[0].copy_(net.basal[1].T)
            net.from_inter[0].copy_(-net.top_down[0])
        worst.append(min(net.alignment(x, y)))
    assert worst[-1] >= 0.999 and worst[-1] > worst[0], worst


def test_random_top_down_weights_give_an_alignment_in_range():
    net = tiny()
    cosines = net.alignment(torch.rand(8, 5, dtype=torch.float64), torch.randint(0, 3, (8,)))
    assert all(-1 <= c <= 1 for c in cosines) and cosines[-1] > 0.99  # the output layer's rule is backprop's


def test_errors_reach_a_hidden_layer_only_through_its_apical_compartment():
    """With the apical compartment decoupled (g_A = 0), no target moves a hidden layer's basal weights or bias: its
    soma is then its own basal prediction. And every update is built from its synapse's own pre and post
    quantities (a bias: a synapse from an always-active input)."""
    x = torch.rand(6, 5, dtype=torch.float64)
    target = torch.randn(6, 3, dtype=torch.float64)
    net = tiny(g_a=0.0)
    changes = net.weight_changes(x, net.settle(x, target))
    hidden_bias = changes[4]
    assert hidden_bias[0] is net.basal_bias[0]
    assert changes[0][1].abs().max() == 0 and hidden_bias[1].abs().max() == 0 and changes[1][1].abs().max() > 0
    net = tiny()
    with torch.no_grad():  # biases away from their start, so that the potentials below include them
        for b in (*net.basal_bias, *net.inter_bias):
            b.copy_(torch.randn_like(b))
    state = net.settle(x, target)
    changes = net.weight_changes(x, state)
    w1, w2, w_ip, w_pi, b1, b2, b_i = (weight for weight, _ in changes)
    r1, r2, r_i = net.phi(state.u[0]), net.phi(state.u[1]), net.phi(state.u_i[0])
    error1 = r1 - net.phi(net.attenuation(1) * (x @ w1.T + b1))
    error2 = r2 - net.phi(net.attenuation(2) * (r1 @ w2.T + b2))
    error_i = r_i - net.phi(net.inter_attenuation() * (r1 @ w_ip.T + b_i))
    by_hand = {
        "basal 1": error1.T @ x / 6,
        "basal 2": error2.T @ r1 / 6,
        "to interneurons": error_i.T @ r1 / 6,
        "from interneurons": -(r2 @ net.top_down[0].T + r_i @ w_pi.T).T @ r_i / 6,
        "bias 1": error1.mean(0), "bias 2": error2.mean(0), "interneuron bias": error_i.mean(0),
    }
    for (name, expected), (_, change) in zip(by_hand.items(), changes, strict=True):
        assert torch.allclose(change, expected), name


def test_without_biases_they_stay_at_zero_and_the_net_still_learns():
    net = tiny(bias=False)
    x, target = torch.rand(6, 5, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    assert len(net.weight_changes(x, net.settle(x, target))) == 4
    before = [w.clone() for w in net.basal]
    for _ in range(5):
        net.step_towards(x, target)
    assert all(b.abs().max() == 0 for b in (*net.basal_bias, *net.inter_bias))
    assert not any(torch.equal(a, w) for a, w in zip(before, net.basal))


def test_learned_top_down_weights_learn_to_reconstruct_the_layer_below():
    net = tiny(top_down="learned", lr=(0.0, 0.0), lr_interneuron=0.0, lr_apical=0.0, lr_top_down=0.5)
    x = torch.rand(50, 5, dtype=torch.float64)
    before = net.top_down[0].clone()
    error = []
    for _ in range(300):
        state = net.settle(x)
        r1, r2 = net.phi(state.u[0]), net.phi(state.u[1])
        error.append((r1 - net.phi(r2 @ net.top_down[0].T)).pow(2).mean().item())
        net.learn(x, state)
    assert not torch.equal(before, net.top_down[0]) and error[-1] < 0.5 * error[0]


@pytest.mark.parametrize("dynamics", ["steady-state", "euler"])
def test_a_student_learns_a_random_teacher_network(dynamics):
    """The paper's nonlinear regression task: a student microcircuit learns the input-output map of a random
    teacher net of the same shape, from the teacher's output potentials as targets."""
    teacher, student = tiny(seed=10, hidden=(8,)), tiny(seed=11, hidden=(8,), dynamics=dynamics, lr=(0.5, 0.5))
    probe = torch.rand(200, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def mse():
        return (student.feedforward(probe).u[-1] - teacher.feedforward(probe).u[-1]).pow(2).mean().item()

    before = mse()
    generator = torch.Generator().manual_seed(4)
    for _ in range(600):
        x = torch.rand(20, 5, dtype=torch.float64, generator=generator)
        student.step_towards(x, teacher.feedforward(x).u[-1])
    assert mse() < 0.3 * before, (before, mse())


def test_euler_dynamics_rest_at_the_feedforward_state_without_a_target():
    net = tiny(dynamics="euler", steps=50)
    x = torch.rand(4, 5, dtype=torch.float64)
    assert all(torch.allclose(a, b) for a, b in zip(net.settle(x).u, net.feedforward(x).u))


def test_a_short_run_on_the_digits_classifies_well_above_chance(digits):
    learner = make_learner("dendritic", 64, 10, DendriticConfig(hidden=(100,)))
    history = fit(learner, digits, TrainConfig(epochs=10, batch_size=10), progress=False)
    assert history[-1]["error"] < 0.5  # chance: 0.9
    assert history[-1]["apical_rms"] < 0.1 and -1 <= history[-1]["alignment_layer1"] <= 1


def test_config_is_checked():
    for bad in (dict(lr=(0.1,)), dict(lr=(-1.0, 0.1)), dict(steps=0), dict(dt=2.0), dict(g_som=-1.0),
                dict(top_down="mirror"), dict(dynamics="spiking"), dict(activation="relu")):
        with pytest.raises(ValueError):
            DendriticConfig(**bad)


def test_the_benchmark_writes_its_result(tmp_path):
    assert main(["bench", "dendritic-vs-bp", "--seeds", "0", "--epochs", "2", "--hidden", "32",
                 "--out-dir", str(tmp_path), "--quiet"]) == 0
    result = json.loads((tmp_path / "dendritic_vs_bp_digits-32.json").read_text())
    history = result["runs"][0]["dendritic"]["history"]
    assert len(history) == 2 and {"apical_rms", "alignment_layer1", "alignment_layer2"} <= set(history[0])
    assert "alignment with BP, layer 1" in (tmp_path / "dendritic_vs_bp_digits-32.md").read_text()
    assert (tmp_path / "dendritic_vs_bp_digits-32_curves.png").exists()


def test_the_benchmark_with_jitter_shifts_both_nets_images_and_writes_its_own_files(tmp_path):
    assert main(["bench", "dendritic-vs-bp", "--seeds", "0", "--epochs", "1", "--hidden", "32", "--jitter", "1",
                 "--out-dir", str(tmp_path), "--quiet"]) == 0
    assert not (tmp_path / "dendritic_vs_bp_digits-32.json").exists()
    result = json.loads((tmp_path / "dendritic_vs_bp_digits-32-jitter1.json").read_text())
    assert result["train_config"]["jitter"] == 1
    plain = tmp_path / "plain"
    assert main(["bench", "dendritic-vs-bp", "--seeds", "0", "--epochs", "1", "--hidden", "32",
                 "--out-dir", str(plain), "--quiet"]) == 0
    unshifted = json.loads((plain / "dendritic_vs_bp_digits-32.json").read_text())
    for net in ("dendritic", "bp"):  # the same seed and minibatches: only the shifted images tell them apart
        assert result["runs"][0][net]["final"]["error"] != unshifted["runs"][0][net]["final"]["error"] or (
            result["runs"][0][net]["history"][0]["loss"] != unshifted["runs"][0][net]["history"][0]["loss"])
    assert "jitter 1" in net_description(result, "dendritic_config")
    claim = dendritic_vs_bp.CLAIMS[0]  # the claims table says the shifted run went beyond the paper's recipe
    assert "augmentation the paper did not use" in claim.ours(result)
    assert "augmentation" not in claim.ours(unshifted)


def test_the_benchmark_refuses_a_negative_jitter(capsys):
    with pytest.raises(SystemExit) as refused:
        main(["bench", "dendritic-vs-bp", "--jitter", "-1"])
    assert refused.value.code == 2 and "--jitter" in capsys.readouterr().err
