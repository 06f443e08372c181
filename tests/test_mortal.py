import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from brainlearn.algorithms import BackpropConfig
from brainlearn.cli import main
from brainlearn.distillation import distill, from_labels, error_rates, two_shards
from brainlearn.experiments import mortal
from brainlearn.hardware import BlackBox, Drift, Fault, Mismatch, MortalLinear, Noise, Quantize, make_mortal, quantize
from brainlearn.report import write_report
from brainlearn.train import TrainConfig, fit, make_learner


def layer_on(fault, backward="oracle", seed=0, n_in=6, n_out=4):
    torch.manual_seed(seed)
    return MortalLinear(nn.Linear(n_in, n_out), fault, backward=backward)


def test_additive_noise_has_the_stated_level_relative_to_the_rms():
    a = torch.randn(200, 500) * 3.0
    noise = Noise(0.3, "additive", seed=1).activity(a, layer_on(Fault())) - a
    assert noise.std().item() == pytest.approx(0.3 * a.pow(2).mean().sqrt().item(), rel=0.02)


def test_multiplicative_noise_has_the_stated_relative_level():
    a = torch.rand(200, 500) + 0.5
    ratio = Noise(0.1, "multiplicative", seed=1).weight(a, layer_on(Fault())) / a - 1
    assert ratio.std().item() == pytest.approx(0.1, rel=0.02) and abs(ratio.mean().item()) < 0.002


def test_noise_is_deterministic_under_its_seed():
    a, layer = torch.randn(10, 10), layer_on(Fault())
    assert torch.equal(Noise(0.5, seed=3).activity(a, layer), Noise(0.5, seed=3).activity(a, layer))


def test_shared_noise_gives_both_passes_of_a_pair_the_same_draw_and_independent_noise_does_not():
    batch, x = 8, torch.randn(8, 6)
    pair = torch.cat([x, x])  # FF's positive and negative rows of the same images (here: the same input)
    for fault, same in ((Noise(0.5, pair=batch), True), (Noise(0.5), False)):
        layer = layer_on(fault)
        out = layer(pair)
        assert torch.equal(out[:batch], out[batch:]) == same
        assert torch.equal(layer(x), out[:batch]) == same  # the neutral pass of the same step, too
    layer = layer_on(Noise(0.5, pair=batch))
    before = layer(x)
    fault = layer.fault
    fault.new_step(layer)  # the next minibatch draws anew
    assert not torch.equal(layer(x), before)
    layer.eval()  # at test every pass draws afresh
    assert not torch.equal(layer(x), layer(x))


def test_shared_noise_trains_bp_oracle_and_model_exactly_as_independent_noise_and_in_situ_not():
    """Why a shared-noise row may reuse its independent row's BP oracle and BP model runs (`SHARING_BLIND`)."""
    x, y = torch.rand(4, 16, 64), torch.randint(0, 10, (4, 16))  # four full minibatches of 16

    def trained(backward, pair):
        learner = make_mortal(make_learner("bp", 64, 10, BackpropConfig(hidden=(32,))), Noise(0.5, seed=3, pair=pair),
                              backward=backward)
        for step in range(4):
            learner.train_step(x[step], y[step])
        return [p.detach().clone() for p in learner.parameters()]

    for backward in ("oracle", "model", "in-situ"):
        same = all(torch.equal(a, b) for a, b in zip(trained(backward, 0), trained(backward, 16)))
        assert same == (backward in ("oracle", "model")), backward
    assert mortal.SHARING_BLIND == ("bp-oracle", "bp-model")
    assert all(mortal.FAULT_LEARNERS[name][1] in ("oracle", "model") for name in mortal.SHARING_BLIND)


def test_mismatch_is_fixed_per_device_and_its_offset_does_not_grow_with_the_signal():
    layer = layer_on(Mismatch(0.5, seed=2))
    x = torch.randn(16, 6)
    nominal = F.linear(x, layer.linear.weight, layer.linear.bias)
    first = layer(x)
    assert torch.equal(layer(x), first) and not torch.allclose(first, nominal)
    gain, offset = layer.device_state[("forward", 4)]
    assert torch.allclose(first, nominal * gain + offset)
    assert torch.allclose(layer(10 * x) - 10 * nominal * gain, offset - 9 * layer.linear.bias * gain, atol=1e-5)
    assert not torch.equal(layer_on(Mismatch(0.5, seed=3))(x), first)  # another device


@pytest.mark.parametrize("fault", [Noise(0.5, "multiplicative", seed=4), Mismatch(0.5, seed=4), Quantize(3)],
                         ids=["noise", "mismatch", "bits"])
def test_model_based_gradient_is_the_nominal_models_at_the_devices_activations(fault):
    """dL/dW = g x^T and dL/dx = W^T g with g = dL/dy at the device's output y; no noise sample is read."""
    layer = layer_on(fault, "model", n_in=5, n_out=3)
    x = torch.randn(7, 5, requires_grad=True)
    y = layer(x)
    target = torch.randn_like(y)
    ((y - target) ** 2).sum().backward()
    g = 2 * (y.detach() - target)  # the loss's gradient at the device's actual output
    assert torch.allclose(layer.linear.weight.grad, g.t() @ x.detach(), atol=1e-5)
    assert torch.allclose(layer.linear.bias.grad, g.sum(0), atol=1e-5)
    assert torch.allclose(x.grad, g @ layer.linear.weight.detach(), atol=1e-5)
    oracle = layer_on(fault, "oracle", n_in=5, n_out=3)
    oracle_x = x.detach().clone().requires_grad_()
    ((oracle(oracle_x) - target) ** 2).sum().backward()
    assert not (torch.allclose(oracle.linear.weight.grad, layer.linear.weight.grad, atol=1e-3)
                and torch.allclose(oracle_x.grad, x.grad, atol=1e-3))  # the oracle's gradient knows the fault


def test_model_based_backward_reads_no_noise_sample():
    fault = Noise(0.5, "multiplicative", seed=0)
    layer = layer_on(fault, "model")
    y = layer(torch.randn(4, 6))
    state = fault.draws.generators[torch.device("cpu")].get_state()
    y.sum().backward()
    assert torch.equal(fault.draws.generators[torch.device("cpu")].get_state(), state)


def test_in_situ_backward_runs_on_the_device():
    x = torch.randn(5, 6)
    exact = [layer_on(Fault(), backward) for backward in ("oracle", "in-situ")]
    for layer in exact:
        layer(x).pow(2).sum().backward()
    assert torch.allclose(exact[0].linear.weight.grad, exact[1].linear.weight.grad, atol=1e-6)  # no fault: exact
    layer = layer_on(Quantize(2), "in-situ")
    layer(x).pow(2).sum().backward()
    assert len(layer.linear.weight.grad.unique()) <= 4  # the weight gradient was itself computed in 2 bits
    noisy = layer_on(Noise(0.3, seed=1), "in-situ")
    grads = []
    for _ in range(2):
        noisy.zero_grad()
        noisy(x).pow(2).sum().backward()
        grads.append(noisy.linear.weight.grad.clone())
    assert not torch.equal(*grads)  # each backward pass draws its own noise


@pytest.mark.parametrize("bits", [1, 2, 3, 8])
def test_quantize_gives_exactly_two_to_the_k_levels_and_passes_the_gradient_straight(bits):
    x = torch.linspace(-2.0, 5.0, 10_000, requires_grad=True)
    q = quantize(x, bits)
    assert len(q.detach().unique()) == 2 ** bits
    assert (q - x).abs().max() <= 7.0 / (2 ** bits - 1) / 2 + 1e-5  # within half a step
    q.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_drift_is_a_random_walk_of_the_stated_rate():
    offset = torch.zeros(1000, 100)
    drift = Drift(1e-3, seed=0)
    for _ in range(100):
        drift.drift(offset, initial_rms=2.0)
    assert offset.pow(2).mean().sqrt().item() == pytest.approx(1e-3 * 2.0 * 100 ** 0.5, rel=0.02)


def test_drift_moves_the_device_not_the_stored_weights_after_each_step_and_at_test():
    learner = make_mortal(make_learner("bp", 64, 10), Drift(1e-2))
    layer = learner.net[0]
    learner.train_step(torch.rand(8, 64), torch.randint(0, 10, (8,)))
    after_step = layer.offset.clone()
    stored = layer.linear.weight.detach().clone()
    learner.eval()
    learner.predict(torch.rand(8, 64))
    assert after_step.abs().sum() > 0 and not torch.equal(after_step, layer.offset)
    assert torch.equal(stored, layer.linear.weight)  # the learner's weights are what it stored


def test_a_drifting_box_moves_by_its_rate_after_each_step():
    box = BlackBox(200, seed=1, mode="straight-through", drift=1e-2)
    learner = make_mortal(make_learner("bp", 64, 10, BackpropConfig(hidden=(200, 200))), Fault(), box)
    before = box.r.clone()
    learner.train_step(torch.rand(8, 64), torch.randint(0, 10, (8,)))
    after = box.r.clone()
    assert (after - before).pow(2).mean().sqrt().item() == pytest.approx(
        1e-2 * before.pow(2).mean().sqrt().item(), rel=0.05)
    learner.eval()
    learner.predict(torch.rand(8, 64))
    assert torch.equal(box.r, after)  # testing does not move it
    assert torch.equal(BlackBox(200, seed=1).r, before)  # a fixed box of the same seed is where it started


def test_the_surrogate_starts_from_the_boxs_seed_whatever_ran_before():
    """A run of one seed alone must match the same seed's run after others (--seeds 1 vs --seeds 0 1 2)."""
    first = BlackBox(32, seed=3, mode="surrogate").surrogate.state_dict()
    torch.randn(1000)  # another run moved the global generator
    again = BlackBox(32, seed=3, mode="surrogate").surrogate.state_dict()
    assert all(torch.equal(first[name], again[name]) for name in first)
    other = BlackBox(32, seed=4, mode="surrogate").surrogate.state_dict()
    assert not torch.equal(first["0.weight"], other["0.weight"])


def test_the_surrogate_learns_the_box_and_backprop_through_it_trains_the_layers_below():
    box = BlackBox(32, seed=0, mode="surrogate", surrogate_lr=3e-3)
    box.train()
    x = torch.randn(64, 32)
    for _ in range(300):
        box(x)
    assert box.surrogate_error["last"] < 0.2 * box.surrogate_error["first"]
    assert set(box.surrogate_error) == {"first", "last"}  # no record per step: it would fragment the heap
    learner = make_mortal(make_learner("bp", 64, 10, BackpropConfig(hidden=(32, 32))), Fault(),
                          BlackBox(32, mode="surrogate"))
    learner.train()
    surrogate = learner.net[2].box.surrogate
    logits = learner.net(torch.rand(16, 64))  # the forward pass also takes one fitting step of the surrogate
    fitted = [p.grad.clone() for p in surrogate.parameters()]
    F.cross_entropy(logits, torch.randint(0, 10, (16,))).backward()
    assert learner.net[0].linear.weight.grad.abs().sum() > 0  # the task's gradient reached below the box ...
    assert all(torch.equal(p.grad, g) for p, g in zip(surrogate.parameters(), fitted))  # ... but not the surrogate


def test_backprop_through_the_black_box_is_refused():
    learner = make_mortal(make_learner("bp", 64, 10), Fault(), BlackBox(500))
    with pytest.raises(RuntimeError, match="Jacobian is not available"):
        learner.train_step(torch.rand(8, 64), torch.randint(0, 10, (8,)))


def test_black_box_sits_before_hidden_layer_two_in_ff_and_bp():
    for algorithm, second in (("ff", lambda l: l.layers[1]), ("bp", lambda l: l.net[2])):
        learner = make_mortal(make_learner(algorithm, 64, 10), Fault(), BlackBox(500))
        assert isinstance(second(learner), MortalLinear) and second(learner).box is not None
        assert sum(m.box is not None for m in learner.modules() if isinstance(m, MortalLinear)) == 1


def test_ff_learns_with_a_black_box_it_never_differentiates(digits):
    learner = make_mortal(make_learner("ff", 64, 10), Fault(), BlackBox(500))
    history = fit(learner, digits, TrainConfig(epochs=3), progress=False)
    assert history[-1]["error_softmax"] < 0.5  # chance: 0.9


def test_bp_above_the_box_leaves_the_layer_below_untouched_and_straight_through_trains_it():
    x, y = torch.rand(16, 64), torch.randint(0, 10, (16,))
    for mode, moves in (("above", False), ("straight-through", True)):
        learner = make_mortal(make_learner("bp", 64, 10), Fault(), BlackBox(500, mode=mode))
        first = learner.net[0].linear.weight.detach().clone()
        learner.train_step(x, y)
        assert torch.equal(first, learner.net[0].linear.weight) != moves


def test_fault_arguments_are_checked():
    for bad in (lambda: Noise(-1), lambda: Noise(0.1, "loud"), lambda: Noise(0.1, pair=-1), lambda: Drift(-1),
                lambda: Quantize(0), lambda: Mismatch(-0.1), lambda: BlackBox(4, mode="guess"),
                lambda: BlackBox(4, drift=-1), lambda: MortalLinear(nn.Linear(2, 2), Fault(), backward="psychic")):
        with pytest.raises(ValueError):
            bad()


@pytest.fixture(scope="module")
def teacher(digits):
    net = make_learner("bp", 64, 10)
    fit(net, digits, TrainConfig(epochs=20), progress=False)
    return net


def test_distilled_student_beats_one_trained_on_its_few_labels(digits, teacher):
    """The student has 100 labels; distilled, it learns from the teacher's soft targets on unlabelled images."""
    alone = from_labels(digits.x_train[:100], digits.y_train[:100], (32,), TrainConfig(epochs=100, batch_size=20))
    student = distill(teacher, digits.x_train, (32,), TrainConfig(epochs=20, batch_size=20))
    errors = {name: error_rates([net], digits.x_test, digits.y_test)["net0"]
              for name, net in (("alone", alone), ("distilled", student))}
    assert errors["distilled"] < errors["alone"] - 0.03, errors


def test_weight_averaging_makes_the_two_nets_one_and_codistillation_keeps_them_apart(digits):
    x, y = digits.x_train[:400], digits.y_train[:400]
    config = TrainConfig(epochs=20, batch_size=20)
    averaged = two_shards(x, y, (32,), config, "average", average_every=10)  # 10 steps per epoch: ends averaged
    assert all(torch.equal(a, b) for a, b in zip(averaged[0].parameters(), averaged[1].parameters()))
    codistilled = two_shards(x, y, (32,), config, "codistill")
    assert not torch.equal(codistilled[0].net[0].weight, codistilled[1].net[0].weight)
    errors = error_rates(list(codistilled), digits.x_test, digits.y_test)
    assert set(errors) == {"net0", "net1", "ensemble"} and max(errors.values()) < 0.5
    with pytest.raises(ValueError, match="mode"):
        two_shards(x, y, (16,), config, "telepathy")


def test_mortal_benchmark_runs_in_parts_by_seed_and_merges_them(tmp_path):
    common = ["bench", "mortal", "--dataset", "digits", "--hidden", "16", "16", "--epochs", "1", "--quiet",
              "--rows", "shared-additive-noise-0.3", "drifting-box"]
    assert main([*common, "--seeds", "0", "--labelled", "100", "--shard-size", "200",
                 "--out-dir", str(tmp_path / "a")]) == 0
    assert main([*common, "--seeds", "1", "--no-distillation", "--out-dir", str(tmp_path / "b")]) == 0
    part = json.loads((tmp_path / "b" / "mortal_digits-16-16.json").read_text())  # not the default net's name
    assert [row["description"] for row in part["faults"]] == ["none", "shared additive noise 0.3"]
    assert set(part["faults"][1]["runs"]) == {"ff", "bp-oracle", "bp-model", "bp-in-situ"}
    assert set(part["boxes"][0]["runs"]) == {"ff", "bp-above-box", "bp-straight-through", "bp-surrogate"}
    assert main(["bench", "mortal", "--merge", str(tmp_path / "b" / "mortal_digits-16-16.json"),
                 str(tmp_path / "a" / "mortal_digits-16-16.json"), "--out-dir", str(tmp_path), "--quiet"]) == 0
    merged = json.loads((tmp_path / "mortal_digits-16-16.json").read_text())
    assert merged["seeds"] == [0, 1] and merged["distillation"] is not None and len(merged["parts"]) == 2
    assert all(len(runs) == 2 for row in merged["faults"] + merged["boxes"] for runs in row["runs"].values())
    text = (tmp_path / "mortal_digits-16-16.md").read_text()
    assert "BP oracle: autograd through the exact forward realisation" in text and "| shared |" in text
    assert (tmp_path / "mortal_digits-16-16.png").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "mortal", "--merge", str(tmp_path / "nowhere.json")])
    assert exit_info.value.code == 2


def test_only_the_default_net_writes_the_plain_result_name(tmp_path):
    """A larger net's run must not overwrite the default net's files, which the claims read."""
    assert main(["bench", "mortal", "--dataset", "digits", "--epochs", "1", "--quiet", "--seeds", "0",
                 "--no-distillation", "--rows", "fixed-box", "--out-dir", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "mortal_digits.json").read_text())["hidden"] == list(mortal.DEFAULT_HIDDEN)
    assert main([*TINY_RUN, "--rows", "fixed-box", "--out-dir", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "mortal_digits-16-16.json").read_text())["hidden"] == [16, 16]
    assert json.loads((tmp_path / "mortal_digits.json").read_text())["hidden"] == list(mortal.DEFAULT_HIDDEN)


def test_mortal_benchmark_refuses_a_single_hidden_layer():
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "mortal", "--dataset", "digits", "--hidden", "16"])
    assert exit_info.value.code == 2


def test_the_budget_says_whether_the_fault_free_nets_stopped_improving():
    def result(ff_curves, bp_curves):
        runs = {"ff": [{"curve": c} for c in ff_curves], "bp-oracle": [{"curve": c} for c in bp_curves]}
        return {"faults": [{"runs": runs}], "train_config": {"epochs": len(ff_curves[0])}}

    falling = result([[0.06, 0.045, 0.036], [0.064, 0.046, 0.038]], [[0.036, 0.026, 0.022]] * 2)
    assert not mortal.converged(falling)
    assert mortal.budget(falling) == "3 epochs, not converged (last epoch: ff -0.85, bp-oracle -0.40 points)"
    flat = result([[0.03, 0.02, 0.0205]] * 2, [[0.02, 0.015, 0.0145]] * 2)  # FF above its best, BP 0.05 below
    assert mortal.converged(flat) and mortal.budget(flat).startswith("3 epochs, converged")
    assert mortal.budget(result([[0.05]], [[0.03]])) == "1 epoch, not converged"


def test_rows_whose_learners_got_worse_with_more_training_are_named():
    def runs(*curves):
        return [{"curve": curve} for curve in curves]

    noisy = {"ff": runs([0.09, 0.08, 0.2], [0.11, 0.1, 0.18]), "bp-oracle": runs([0.07, 0.06, 0.064])}
    result = {"faults": [{"runs": {"ff": runs([0.05, 0.03])}}, {"description": "additive noise 0.3", "runs": noisy}],
              "boxes": [{"box": "fixed", "runs": {"ff": runs([0.04, 0.03, 0.032])}}]}
    # FF's mean curve: 10% -> 9% (best, epoch 2) -> 19%; BP ends 0.4 points above its best, the box's FF 0.2: not worse
    assert mortal.worse_with_training(result) == ["additive noise 0.3: ff 9.00% (epoch 2) -> 19.00%"]
    assert mortal.worse_note(result["faults"][1:]).endswith("above its best epoch at: additive noise 0.3")
    assert mortal.worse_note(result["boxes"]) == ""


def claim_rows(folder, *words: str) -> list[str]:
    """The claims table's rows with any of `words` in them, from the report on `folder`."""
    write_report(folder, None)
    return [line for line in (folder / "RESULTS.md").read_text().splitlines() if any(w in line for w in words)]


def as_mnist_results(tmp_path, sources: dict[str, str]):
    """A results folder holding each digits result of `sources` (path under tmp_path -> MNIST stem) as the MNIST
    result the claims read."""
    folder = tmp_path / "results"
    folder.mkdir(exist_ok=True)
    for source, stem in sources.items():
        result = json.loads((tmp_path / source).read_text())
        (folder / f"{stem}.json").write_text(json.dumps({**result, "dataset": stem.removeprefix("mortal_")}))
    return folder


TINY_RUN = ["bench", "mortal", "--dataset", "digits", "--hidden", "16", "16", "--epochs", "1", "--quiet",
            "--seeds", "0", "--no-distillation"]


def test_the_black_box_claims_read_the_full_run_where_there_is_one(tmp_path):
    common = [*TINY_RUN, "--rows", "fixed-box", "drifting-box"]
    assert main([*common, "--out-dir", str(tmp_path / "short")]) == 0
    assert main([*common, "--full", "--out-dir", str(tmp_path / "full")]) == 0
    full = json.loads((tmp_path / "full" / "mortal_digits-full-16-16.json").read_text())
    assert full["dataset"] == "digits-full-16-16" and full["train_config"]["epochs"] == 1
    folder = as_mnist_results(tmp_path, {"short/mortal_digits-16-16.json": "mortal_mnist",
                                         "full/mortal_digits-full-16-16.json": "mortal_mnist-full"})
    rows = claim_rows(folder, "unknown layer")
    assert len(rows) == 2 and all(f"| {mortal.FULL_EPOCHS} epochs (--full); CPU" in row for row in rows)
    larger = mortal.CONVERGED_RUN["also_results"][0]
    assert not any(larger in row for row in rows)
    as_mnist_results(tmp_path, {"full/mortal_digits-full-16-16.json": larger})  # stands in for the larger net
    for row in claim_rows(folder, "unknown layer"):  # its figure and verdict beside the default net's
        assert f"; {larger} (CPU, " in row and (f"; {larger}: reproduced" in row or f"; {larger}: differs: " in row)
    (folder / "mortal_mnist-full.json").unlink()
    assert all("| 3 epochs; CPU" in row for row in claim_rows(folder, "unknown layer"))


def test_the_fault_claims_read_the_full_run_only_once_it_has_every_row_they_check(tmp_path):
    assert main([*TINY_RUN, "--full", "--rows", "additive-noise-0.3", "shared-additive-noise-0.3",
                 "--out-dir", str(tmp_path)]) == 0
    two_rows = json.loads((tmp_path / "mortal_digits-full-16-16.json").read_text())
    independent, shared = two_rows["faults"][1:]
    for name in mortal.FAULT_LEARNERS:  # the shared row trains only the learners for which sharing matters
        assert all((run.get("same_as") == independent["description"]) == (name in mortal.SHARING_BLIND)
                   for run in shared["runs"][name])
        assert ([run["curve"] for run in shared["runs"][name]] == [run["curve"] for run in independent["runs"][name]]) \
            == (name in mortal.SHARING_BLIND)
    assert "their shared cells are the independent row's runs" in (tmp_path / "mortal_digits-full-16-16.md").read_text()
    noisy = two_rows["faults"][1]  # stands in for every fault: a run of each would take the suite minutes
    every_row = {**two_rows, "faults": two_rows["faults"][:1] + [
        {**noisy, "fault": family, "level": level, "sharing": sharing, "description": make(0, 1).describe()}
        for family, level, sharing, make in mortal.FAULTS[1:]]}
    (tmp_path / "every_row.json").write_text(json.dumps(every_row))
    folder = as_mnist_results(tmp_path, {"every_row.json": "mortal_mnist",
                                         "mortal_digits-full-16-16.json": "mortal_mnist-full"})

    def fault_claim_rows():
        rows = claim_rows(folder, "allows you to cancel", "degrades more gracefully", "8 bits are enough")
        assert len(rows) == 3 and not any("not yet run" in row for row in rows)
        return rows

    assert all("| 3 epochs; CPU" in row for row in fault_claim_rows())  # --full lacks rows: the default run checks them
    folder = as_mnist_results(tmp_path, {"every_row.json": "mortal_mnist-full"})
    assert all(f"| {mortal.FULL_EPOCHS} epochs (--full); CPU" in row for row in fault_claim_rows())
