import json

import pytest
import torch
from safetensors.torch import load_file

from brainlearn.algorithms import (Backprop, BackpropConfig, DeepBeliefNet, DeepBeliefNetConfig, EquilibriumProp,
                                   EquilibriumPropConfig, ForwardForward, ForwardForwardConfig, RBMConfig,
                                   RecurrentFF, RecurrentFFConfig, RestrictedBoltzmannMachine)
from brainlearn.cli import main
from brainlearn.probe import probe_to_files, record, tuning_curves


def test_probe_of_a_known_linear_layer_returns_its_activities():
    net = Backprop(3, 2, BackpropConfig(hidden=(2,)))
    with torch.no_grad():
        net.net[0].weight.copy_(torch.tensor([[1.0, -1.0, 0.0], [0.5, 0.5, 2.0]]))
        net.net[0].bias.copy_(torch.tensor([0.0, -1.0]))
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 1.0, 0.0]])
    recorded = record(net, x, ["layer1"])
    # relu(W x + b): [relu(-1), relu(6.5)] and [relu(3), relu(1.5)]
    assert torch.allclose(recorded["layer1"], torch.tensor([[[0.0, 6.5], [3.0, 1.5]]]))
    assert torch.allclose(record(net, x, ["layer1"], units=[1])["layer1"], torch.tensor([[[6.5], [1.5]]]))


def test_tuning_curves_are_class_means_of_the_last_iteration():
    activity = torch.tensor([[[9.0], [9.0], [9.0]], [[1.0], [3.0], [5.0]]])  # 2 iterations, 3 images, 1 unit
    curves = tuning_curves(activity, torch.tensor([0, 0, 1]), 3)
    assert curves[:2, 0].tolist() == [2.0, 5.0] and torch.isnan(curves[2, 0])


def test_every_learner_is_probed_with_its_layers_and_iterations():
    x = torch.rand(5, 16)
    ff = ForwardForward(16, 4, ForwardForwardConfig(hidden=(6, 7)))
    acts = record(ff, x)
    assert {k: tuple(v.shape) for k, v in acts.items()} == {"layer1": (1, 5, 6), "layer2": (1, 5, 7)}
    dbn = record(DeepBeliefNet(16, 4, DeepBeliefNetConfig(hidden=(6, 8))), x)
    assert list(dbn) == ["layer1", "layer2", "labels"] and torch.allclose(dbn["labels"].sum(-1), torch.ones(1, 5))
    ep = EquilibriumProp(16, 4, EquilibriumPropConfig(hidden=(6,), free_steps=7))
    settling = record(ep, x)
    assert settling["layer1"].shape == (7, 5, 6) and settling["output"].shape == (7, 5, 4)
    assert torch.equal(settling["output"][-1], ep.free_phase(x)[-1])  # the same path as the free phase
    rff = RecurrentFF(16, 4, RecurrentFFConfig(hidden=(6, 7), iterations=5, test_window=(2, 3)))
    video = record(rff, x)
    assert video["layer1"].shape == (5, 5, 6) and video["layer2"].shape == (5, 5, 7)
    rbm = RestrictedBoltzmannMachine(16, 4, RBMConfig(hidden=(6,)))
    features = record(rbm, x)
    assert list(features) == ["layer1"]
    assert torch.equal(features["layer1"][0], rbm.rbm.hidden_probs((x > 0.5).float()))


def test_bad_layer_or_unit_is_refused():
    net = Backprop(4, 2, BackpropConfig(hidden=(3,)))
    with pytest.raises(ValueError, match="no layer layer7.*layer1, output"):
        record(net, torch.rand(2, 4), ["layer7"])
    with pytest.raises(ValueError, match="units must lie in 0..2"):
        record(net, torch.rand(2, 4), ["layer1"], units=[3])


def test_probe_files_and_cli(digits, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "eqprop", "--hidden", "16", "--lr", "0.1", "0.05", "--epochs", "1",
                 "--run-dir", str(run)]) == 0
    out = tmp_path / "probe"
    assert main(["probe", str(run / "checkpoint.pt"), "--units", "0", "3", "--count", "50", "--out", str(out)]) == 0
    tensors = load_file(out / "activities.safetensors")
    assert tensors["layer1"].shape == (20, 50, 2) and torch.equal(tensors["labels"], digits.y_test[:50])
    tuning = json.loads((out / "tuning.json").read_text())
    assert tuning["layer1"]["units"] == [0, 3] and len(tuning["layer1"]["curves"][0]) == 10
    assert (out / "iterations_layer1.png").stat().st_size > 1000 and (out / "tuning_output.png").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", str(run / "checkpoint.pt"), "--count", "0"])
    assert exit_info.value.code == 2


def test_probe_writes_heat_maps_for_a_feedforward_net(tmp_path):
    net = Backprop(4, 3, BackpropConfig(hidden=(5,)))
    written = probe_to_files(net, torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]), tmp_path)
    assert {p.name for p in written} == {"activities.safetensors", "tuning_layer1.png", "tuning_output.png",
                                         "tuning.json"}
