"""The step runner and CUDA graphs (brainlearn.cuda_graphs): what the CPU can check runs in CI; the graphs
themselves are tested under the `cuda` marker (skipped where there is no GPU)."""

import pytest
import torch

from brainlearn.algorithms import DendriticConfig, EquilibriumPropConfig, RecurrentFFConfig
from brainlearn.cuda_graphs import StepRunner, make_capturable, portable_optimizer_state, schedule_safe
from brainlearn.hardware import Noise, make_mortal
from brainlearn.runfolder import CHECKPOINT
from brainlearn.train import TrainConfig, apply_lr_schedule, fit, load_checkpoint, make_learner

no_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")

# Small configurations of every learner that allows graphs (EP and the microcircuit at their default sizes take
# seconds per step on the digits).
GRAPH_SAFE = {"bp": None, "ff": None, "rff": RecurrentFFConfig(hidden=(64, 64), iterations=3, test_window=(2, 3)),
              "eqprop": EquilibriumPropConfig(hidden=(32,), free_steps=10, nudged_steps=3),
              "dendritic": DendriticConfig(hidden=(32,))}


def test_on_the_cpu_the_runner_is_the_learners_own_step(digits):
    """No graph on the CPU: the runner's vector is train_step's metrics, in order, as float64."""
    learners = [make_learner("ff", digits.n_features, digits.n_classes, seed=3) for _ in range(2)]
    runner = StepRunner.for_learner(learners[0], graphs=True, constant_lr=True)
    x, y = digits.x_train[:50], digits.y_train[:50]
    values = runner(x, y)
    metrics = learners[1].train_step(x, y)
    assert not runner.graphed and runner.names == list(metrics) and values.dtype == torch.float64
    assert values.tolist() == [float(torch.as_tensor(v, dtype=torch.float64)) for v in metrics.values()]


def test_a_graph_needs_a_schedule_its_optimizers_can_follow(digits):
    """Adam and SGD take their learning rate as a tensor and follow any schedule; another optimizer bakes it into
    the graph, so only a constant schedule keeps its graph right."""
    ff = make_learner("ff", digits.n_features, digits.n_classes)
    eqprop = make_learner("eqprop", digits.n_features, digits.n_classes, GRAPH_SAFE["eqprop"])
    assert schedule_safe(ff.optimizers, constant_lr=False) and schedule_safe(eqprop.optimizers, constant_lr=False)
    rmsprop = [torch.optim.RMSprop(ff.classifier.parameters())]
    assert schedule_safe(rmsprop, constant_lr=True) and not schedule_safe(rmsprop, constant_lr=False)


def test_mortal_learners_and_the_dbn_are_never_graphed(digits):
    """Faulty hardware draws from its own generators and drifts in Python; the DBN counts steps in Python."""
    assert not make_mortal(make_learner("ff", digits.n_features, digits.n_classes), Noise(0.1)).graph_safe
    assert not make_learner("dbn", digits.n_features, digits.n_classes).graph_safe
    assert all(make_learner(name, digits.n_features, digits.n_classes, config).graph_safe
               for name, config in GRAPH_SAFE.items())


def test_the_schedule_fills_a_tensor_learning_rate_in_place(digits):
    learner = make_learner("ff", digits.n_features, digits.n_classes)
    make_capturable(learner.optimizers, torch.device("cpu"))
    lr = learner.optimizers[0].param_groups[0]["lr"]
    apply_lr_schedule(learner.optimizers, "cooldown", 0.75)
    group = learner.optimizers[0].param_groups[0]
    assert group["lr"] is lr and float(lr) == pytest.approx(0.5 * group["initial_lr"])
    assert group["capturable"] and group["fused"]


def test_a_capturable_optimizers_checkpoint_loads_into_an_eager_one(digits):
    """training_state writes learning rates as numbers and Adam as neither fused nor capturable, so a run saved from a graph
    resumes on the CPU; the step counts and moments are kept."""
    x, y = digits.x_train[:50], digits.y_train[:50]
    learner = make_learner("ff", digits.n_features, digits.n_classes)
    learner.train_step(x, y)
    make_capturable(learner.optimizers, torch.device("cpu"))
    state = learner.training_state()
    assert all(type(group["lr"]) is float and group["capturable"] is False and group["fused"] is None
               for opt in state["optimizers"] for group in opt["param_groups"])
    assert portable_optimizer_state(state["optimizers"][0])["state"] == state["optimizers"][0]["state"]
    resumed = make_learner("ff", digits.n_features, digits.n_classes)
    resumed.load_training_state(state)
    resumed.train_step(x, y)  # an eager Adam on the CPU steps with it
    assert int(resumed.optimizers[0].state[resumed.layers[0].weight]["step"]) == 2


# ----- on a GPU


def graphed_and_eager_steps(algorithm, digits, steps=8):
    """The same learner stepped by a graph runner and eagerly (both with capturable optimizers)."""
    runs = []
    x, y = digits.x_train.cuda(), digits.y_train.cuda()
    for graphs in (True, False):
        learner = make_learner(algorithm, digits.n_features, digits.n_classes, GRAPH_SAFE[algorithm], seed=1,
                               device="cuda")
        runner = StepRunner.for_learner(learner, graphs=graphs, constant_lr=True)
        if not graphs:
            make_capturable(learner.optimizers, learner.device)
        values = [runner(x[i * 50:(i + 1) * 50], y[i * 50:(i + 1) * 50]) for i in range(steps)]
        runs.append((runner, torch.stack(values).cpu(), [p.detach().cpu() for p in learner.parameters()]))
    return runs


@pytest.mark.parametrize("algorithm", list(GRAPH_SAFE))
@pytest.mark.cuda
@no_gpu
def test_a_graphed_step_replays_the_eager_step(algorithm, digits):
    """After the warm-up, replays give the eager steps' metrics and weights, samples included (the learner's
    generator advances with every replay)."""
    (graphed, graph_values, graph_params), (_, eager_values, eager_params) = graphed_and_eager_steps(algorithm, digits)
    assert graphed.graph is not None
    torch.testing.assert_close(graph_values, eager_values, rtol=1e-5, atol=1e-6)
    for a, b in zip(graph_params, eager_params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
@no_gpu
def test_a_graphed_run_resumes_bit_for_bit_on_cuda(digits, tmp_path, monkeypatch):
    """Interrupted in epoch 2 and resumed (eager warm-up steps, then a new graph): the uninterrupted run's history
    and weights, under the cooldown schedule."""
    config = TrainConfig(epochs=3, batch_size=50, lr_schedule="cooldown", device="cuda")
    whole = make_learner("ff", digits.n_features, digits.n_classes)
    history = fit(whole, digits, config, run_dir=tmp_path / "whole", progress=False)
    steps_per_epoch = -(-len(digits.x_train) // 50)
    calls, step = {"n": 0}, StepRunner.__call__

    def step_then_die(self, x, y):
        calls["n"] += 1
        if calls["n"] == steps_per_epoch + 5:
            raise KeyboardInterrupt
        return step(self, x, y)

    with monkeypatch.context() as patch:
        patch.setattr(StepRunner, "__call__", step_then_die)
        with pytest.raises(KeyboardInterrupt):
            fit(make_learner("ff", digits.n_features, digits.n_classes), digits, config, run_dir=tmp_path / "cut",
                progress=False)
    resumed = make_learner("ff", digits.n_features, digits.n_classes)
    resumed_history = fit(resumed, digits, config, run_dir=tmp_path / "cut", resume=True, progress=False)
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT)["epoch"] == 3
    timing = ("seconds", "samples_per_s")
    assert [{k: v for k, v in row.items() if k not in timing} for row in history] == \
        [{k: v for k, v in row.items() if k not in timing} for row in resumed_history]
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
