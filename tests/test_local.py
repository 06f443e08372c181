import pytest
import torch
from torch import nn

from brainlearn.algorithms.local import LocallyConnected2d, map_sizes, square_image
from brainlearn.train import TrainConfig, fit, make_learner


def field_mask(channels_in: int, channels_out: int, side: int, field: int) -> torch.Tensor:
    """(out units, in units): 1 where the input pixel lies in the output unit's receptive field."""
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    near = ((rows.flatten()[:, None] - rows.flatten()[None]).abs() <= field // 2) & \
           ((cols.flatten()[:, None] - cols.flatten()[None]).abs() <= field // 2)  # (out pixel, in pixel)
    return near.float().repeat(channels_out, channels_in)


def test_locally_connected_layer_is_a_dense_layer_with_the_receptive_field_mask():
    torch.manual_seed(0)
    layer = LocallyConnected2d(2, 3, 5, 5, field=3)
    dense_weight = (layer(torch.eye(50)) - layer.bias.flatten()).T.detach()  # the layer's matrix, (75, 50)
    mask = field_mask(2, 3, 5, 3)
    assert torch.all(dense_weight[mask == 0] == 0)  # nothing outside the field
    assert torch.count_nonzero(dense_weight) == mask.sum()  # and every weight inside it is used
    dense = nn.Linear(50, 75)
    dense.weight.data, dense.bias.data = dense_weight * mask, layer.bias.detach().flatten()
    x = torch.randn(4, 50)
    assert torch.allclose(layer(x), dense(x), atol=1e-5)
    assert sum(p.numel() for p in layer.parameters()) == 25 * 3 * 2 * 9 + 75  # no sharing


def test_input_and_weight_gradients_match_finite_differences():
    torch.manual_seed(0)
    layer = LocallyConnected2d(2, 2, 4, 5, field=3).double()
    x = torch.randn(3, 40, dtype=torch.float64, requires_grad=True)
    weight = layer.weight.detach().clone().requires_grad_(True)
    run = lambda x, weight: torch.func.functional_call(layer, {"weight": weight, "bias": layer.bias}, (x,))
    assert torch.autograd.gradcheck(run, (x, weight))


def test_gradients_reach_only_the_weights_of_each_units_field():
    layer = LocallyConnected2d(1, 1, 6, 6, field=3)
    x = torch.randn(2, 36)
    layer(x)[:, 0].sum().backward()  # unit at the corner (0, 0)
    touched = layer.weight.grad.abs().sum((1, 2)).nonzero().flatten().tolist()
    assert touched == [0]  # its own location only
    assert torch.count_nonzero(layer.weight.grad[0]) == 4  # the 2x2 of its 3x3 field inside the image


def test_image_geometry_and_bad_sizes():
    assert square_image(784) == (1, 28, 28) and square_image(3072) == (3, 32, 32)
    with pytest.raises(ValueError, match="square images"):
        square_image(100 * 7)
    with pytest.raises(ValueError, match="multiple of the image's 64 pixels"):
        map_sizes((100,), 3, 64)
    with pytest.raises(ValueError, match="odd"):
        LocallyConnected2d(1, 1, 4, 4, field=2)


@pytest.mark.parametrize("algorithm", ["bp", "ff", "rff"])
def test_learners_build_local_nets_and_learn_on_digits(digits, algorithm):
    from brainlearn.algorithms import ALGORITHMS
    cheaper = {"iterations": 3, "test_window": (2, 3)} if algorithm == "rff" else {}
    config = ALGORITHMS[algorithm].Config(hidden=(128, 128), local_field=5, **cheaper)
    learner = make_learner(algorithm, digits.n_features, 10, config, seed=0)
    assert sum(isinstance(m, LocallyConnected2d) for m in learner.modules()) >= 2
    history = fit(learner, digits, TrainConfig(epochs=3, batch_size=32, eval_every=0), progress=False)
    error = history[-1].get("error", history[-1].get("error_softmax"))
    assert error < 0.5  # chance: 0.9


def test_cifar_benchmark_runs_on_a_tiny_archive_of_the_real_format(tmp_path, monkeypatch):
    import json

    from conftest import write_fake_cifar

    from brainlearn.cli import main
    from brainlearn.data import cifar

    _, md5 = write_fake_cifar(tmp_path / "data" / "cifar10", per_batch=4)
    for name, value in md5.items():  # the fake batches' checksums stand in for the published ones
        monkeypatch.setitem(cifar.MD5, name, value)
    argv = ["bench", "local-vs-bp", "--data-dir", str(tmp_path / "data"), "--no-download", "--depths", "2",
            "--maps", "1", "--field", "3", "--epochs", "1", "--out-dir", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "out" / "local_vs_bp_cifar10.json").read_text())
    assert result["depths"][0]["hidden"] == [1024, 1024] and result["rff_config"]["local_field"] == 3
    assert {"rff_error_goodness", "bp_error", "rff_seconds_per_epoch"} <= set(result["depths"][0]["summary"])
    assert result["local_layer_speed"]["local_weights"] == 1024 * 27


def test_speed_benchmark_times_local_and_dense_layers_of_equal_weights(tmp_path):
    import json

    from brainlearn.cli import main

    argv = ["bench", "local-speed", "--field", "3", "--batch-size", "8", "--repeats", "1", "--out-dir", str(tmp_path)]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "local_layer_speed_random.json").read_text())["rows"]
    # weights: units per pixel x pixels x (input channels x field^2)
    assert [row["local_weights"] for row in rows] == [1 * 28 * 28 * 1 * 9, 3 * 32 * 32 * 3 * 9]
    assert all(row["dense_weights"] <= row["local_weights"] and row["local_samples_per_s"] > 0 for row in rows)
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "local-speed", "--field", "4", "--out-dir", str(tmp_path)])
    assert exit_info.value.code == 2
