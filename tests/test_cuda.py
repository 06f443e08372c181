"""GPU tests (marker `cuda`): skipped where CUDA is absent, as in CI; run them on a GPU machine with
`python -m pytest -m cuda tests/test_cuda.py`."""

import pytest
import torch

from brainlearn.algorithms import EquilibriumPropConfig, RBMConfig
from brainlearn.runfolder import CHECKPOINT
from brainlearn.train import TrainConfig, fit, load_checkpoint, make_learner

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")]

# Learners that sample nothing during training take the same steps on both devices; the others sample with
# their device's generator, so only their first, sampling-free losses can be compared.
DETERMINISTIC = {"bp": None, "eqprop": EquilibriumPropConfig(hidden=(32,), nudging="one-sided")}


def step_losses(algorithm, config, digits, device, steps=5):
    learner = make_learner(algorithm, digits.n_features, digits.n_classes, config, seed=0, device=device)
    x, y = digits.x_train.to(device), digits.y_train.to(device)
    return [learner.train_step(x[i * 50:(i + 1) * 50], y[i * 50:(i + 1) * 50]) for i in range(steps)]


@pytest.mark.parametrize("algorithm", list(DETERMINISTIC))
def test_deterministic_learners_take_the_same_steps_on_cpu_and_cuda(algorithm, digits):
    """Tolerance 1e-4 relative: float32 sums in another order (cuBLAS vs the CPU's BLAS), over 5 steps."""
    cpu = step_losses(algorithm, DETERMINISTIC[algorithm], digits, "cpu")
    cuda = step_losses(algorithm, DETERMINISTIC[algorithm], digits, "cuda")
    for a, b in zip(cpu, cuda):
        assert b["loss"].device.type == "cuda"
        assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=1e-4)


@pytest.mark.parametrize("algorithm, first_loss", [("ff", "loss_classifier"), ("rff", "loss_classifier"),
                                                   ("dbn", "loss"), ("rbm", "loss")])
def test_sampling_learners_start_with_the_same_loss_on_cpu_and_cuda(algorithm, first_loss, digits):
    cpu = step_losses(algorithm, None, digits, "cpu", steps=1)[0]
    cuda = step_losses(algorithm, None, digits, "cuda", steps=1)[0]
    assert float(cuda[first_loss]) == pytest.approx(float(cpu[first_loss]), rel=1e-4)


@pytest.mark.parametrize("algorithm", ["bp", "ff", "rff", "eqprop", "dbn"])
def test_every_learner_trains_on_cuda_through_the_loop(algorithm, digits):
    learner = make_learner(algorithm, digits.n_features, digits.n_classes, seed=0)
    history = fit(learner, digits, TrainConfig(epochs=3, batch_size=50, device="cuda"), progress=False)
    assert learner.device.type == "cuda" and all(p.device.type == "cuda" for p in learner.parameters())
    assert history[-1]["loss"] < history[0]["loss"]
    if algorithm != "dbn":  # the default DBN is still at chance after 3 epochs of the digits, on the CPU too
        assert min(v for k, v in history[-1].items() if k.startswith("error")) < 0.5  # chance is 0.9


def test_an_rbm_learns_on_cuda_and_estimates_its_likelihood_there(digits):
    learner = make_learner("rbm", digits.n_features, digits.n_classes, RBMConfig(hidden=(100,), ais_steps=1000), seed=0)
    history = fit(learner, digits, TrainConfig(epochs=3, batch_size=50, device="cuda"), progress=False)
    assert learner.device.type == "cuda" and learner.pixel_sums.device.type == "cuda"
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["log_likelihood"] < 0


def test_a_run_resumes_across_devices(digits, tmp_path):
    """CPU -> CUDA -> CPU: the optimizer state follows the weights; the generator is reseeded from its state."""
    config = TrainConfig(epochs=1, batch_size=50, device="cpu")
    fit(make_learner("ff", digits.n_features, digits.n_classes), digits, config, run_dir=tmp_path, progress=False)
    on_gpu = make_learner("ff", digits.n_features, digits.n_classes)
    fit(on_gpu, digits, TrainConfig(epochs=2, batch_size=50, device="cuda"), run_dir=tmp_path, resume=True,
        progress=False)
    assert all(state.device.type == "cuda" for opt in on_gpu.optimizers for s in opt.state.values()
               for state in s.values() if torch.is_tensor(state) and state.dim())
    back = make_learner("ff", digits.n_features, digits.n_classes)
    history = fit(back, digits, TrainConfig(epochs=3, batch_size=50, device="cpu"), run_dir=tmp_path, resume=True,
                  progress=False)
    assert [row["epoch"] for row in history] == [1, 2, 3] and load_checkpoint(tmp_path / CHECKPOINT)["epoch"] == 3
