"""The RBM learned alone: it learns its data's distribution (an exact log-likelihood, where every visible state
can be counted), its AIS estimate agrees with the exact one, and it sees binary pixels only."""

import itertools
import json
import math

import pytest
import torch

from brainlearn.algorithms import RBMConfig
from brainlearn.cli import main
from brainlearn.data import Dataset
from brainlearn.experiments import rbm_ais
from brainlearn.train import TrainConfig, fit, make_learner

SIDE = (3, 4)  # 12 pixels: 4096 visible states, few enough to count


def two_prototypes(n: int, seed: int, on: float = 0.9, off: float = 0.1) -> torch.Tensor:
    """Grey images of one of two prototypes (top rows lit, or bottom rows), each pixel flipped with p = 0.05;
    lit pixels have intensity `on`, dark ones `off`."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.tensor([[1.0] * 6 + [0.0] * 6, [0.0] * 6 + [1.0] * 6])
    which = torch.randint(0, 2, (n,), generator=generator)
    flips = torch.rand(n, 12, generator=generator) < 0.05
    lit = (prototypes[which] > 0.5) ^ flips
    return torch.where(lit, torch.tensor(on), torch.tensor(off))


def prototype_data(on: float = 0.9, off: float = 0.1) -> Dataset:
    return Dataset("prototypes", two_prototypes(600, 0, on, off), torch.zeros(600, dtype=torch.long),
                   two_prototypes(200, 1, on, off), torch.zeros(200, dtype=torch.long), SIDE, n_classes=2)


def exact_log_likelihood(learner, x: torch.Tensor) -> float:
    """Mean log p(v) of the binarised images, log Z summed over all 2^12 visible states."""
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=x.shape[1])))
    log_z = torch.logsumexp(-learner.rbm.free_energy(states), 0)
    return (-learner.rbm.free_energy((x > 0.5).float()) - log_z).mean().item()


def trained(sleep: str, cd_k: int, data: Dataset, epochs: int = 10):
    learner = make_learner("rbm", 12, 2, RBMConfig(hidden=(8,), lr=0.1, cd_k=cd_k, sleep=sleep, chains=20,
                                                   momentum_warmup_steps=100, ais_steps=3000, ais_runs=100), seed=0)
    before = exact_log_likelihood(learner, data.x_test)
    history = fit(learner, data, TrainConfig(epochs=epochs, batch_size=20, eval_every=0), progress=False)
    return learner, before, history


@pytest.mark.parametrize("cd_k", [1, 3])
def test_learning_raises_the_exact_log_likelihood_and_the_ais_estimate_agrees(cd_k):
    data = prototype_data()
    learner, before, history = trained("cd", cd_k, data)
    after = exact_log_likelihood(learner, data.x_test)
    # Uniform pixels give 12 log 2 = 8.3 nats; the source's entropy is log 2 + 12 H(0.05) = 3.1 nats.
    assert before < -8.0 and after > -3.6
    standard_error = history[-1]["log_z_standard_error"]
    assert 0 < standard_error < 0.05
    assert history[-1]["log_likelihood"] == pytest.approx(after, abs=3 * standard_error)


def test_persistent_chains_move_only_with_pcd():
    data = prototype_data()
    start = make_learner("rbm", 12, 2, RBMConfig(hidden=(8,), chains=20), seed=0).chain.clone()
    cd, _, _ = trained("cd", 1, data, epochs=1)
    pcd, _, _ = trained("pcd", 1, data, epochs=1)
    assert torch.equal(cd.chain, start) and not torch.equal(pcd.chain, start)


def test_only_the_binarised_pixels_reach_the_machine():
    """Grey levels on the same side of 0.5 give the same machine, weight for weight (and a fixed seed the same
    numbers twice)."""
    first, _, _ = trained("cd", 1, prototype_data(on=0.9, off=0.1), epochs=2)
    second, _, _ = trained("cd", 1, prototype_data(on=0.6, off=0.4), epochs=2)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_ais_starts_from_the_pixel_means_of_the_images_learned_on():
    data = prototype_data()
    learner, _, _ = trained("cd", 1, data, epochs=2)
    assert learner.images_seen.item() == 2 * len(data.x_train)
    expected = (data.x_train > 0.5).double().mean(0)
    assert torch.allclose(learner.pixel_sums / learner.images_seen, expected)


def test_momentum_stays_at_one_half_unless_a_switch_is_asked_for():
    data = prototype_data()
    for warmup, last in ((0, 0.5), (40, 0.9)):
        learner = make_learner("rbm", 12, 2, RBMConfig(hidden=(8,), momentum_warmup_steps=warmup), seed=0)
        fit(learner, data, TrainConfig(epochs=2, batch_size=20, eval_every=0), progress=False)  # 60 updates
        assert learner.optimizers[0].param_groups[0]["momentum"] == last


def test_dreams_are_images_the_machine_finds_likely():
    """After learning the two prototypes, the machine's dreams sit near one of them."""
    data = prototype_data()
    learner, _, _ = trained("cd", 1, data)
    dreams = learner.dream(50, steps=200, generator=torch.Generator().manual_seed(0))
    assert dreams.shape == (50, 12) and 0 <= dreams.min() and dreams.max() <= 1
    prototypes = torch.tensor([[1.0] * 6 + [0.0] * 6, [0.0] * 6 + [1.0] * 6])
    nearest = torch.cdist((dreams > 0.5).float(), prototypes, p=1).min(1).values  # pixels off the nearest prototype
    assert nearest.mean() < 1.5  # random pixels: 6 (about 3.6 from the nearer one)


def test_config_and_predict_say_what_is_wrong():
    with pytest.raises(ValueError, match="one hidden layer"):
        RBMConfig(hidden=(10, 10))
    with pytest.raises(ValueError, match="sleep"):
        RBMConfig(sleep="dream")
    with pytest.raises(ValueError, match="cd_k"):
        RBMConfig(cd_k=0)
    with pytest.raises(ValueError, match="momentum_warmup_steps"):
        RBMConfig(momentum_warmup_steps=-1)
    learner = make_learner("rbm", 12, 2, RBMConfig(hidden=(4,)), seed=0)
    with pytest.raises(NotImplementedError, match="does not classify"):
        learner.predict(torch.zeros(1, 12))


def test_train_and_eval_report_the_log_likelihood_in_nats(tmp_path, capsys):
    run_dir = tmp_path / "rbm"
    assert main(["train", "rbm", "--hidden", "16", "--epochs", "1", "--ais-steps", "200", "--run-dir",
                 str(run_dir)]) == 0
    assert "'log_likelihood': -" in capsys.readouterr().out
    assert main(["eval", str(run_dir / "checkpoint.pt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    shown = next(line for line in lines if line.startswith("log_likelihood: "))
    assert "%" not in shown and float(shown.split()[1]) < 0
    assert main(["dream", str(run_dir / "checkpoint.pt"), "--count", "4", "--steps", "20", "--out",
                 str(tmp_path / "dreams.png")]) == 0
    assert (tmp_path / "dreams.png").stat().st_size > 0
    with pytest.raises(SystemExit) as error:
        main(["dream", str(run_dir / "checkpoint.pt"), "--label", "3"])
    assert error.value.code == 2 and "no label units" in capsys.readouterr().err


def test_the_benchmark_writes_each_k_and_its_curve_and_the_claim_reads_them(tmp_path):
    out = tmp_path / "results"
    assert main(["bench", "rbm-ais", "--seeds", "0", "--epochs", "2", "--eval-every", "1", "--hidden", "16",
                 "--cd-k", "1", "3", "--ais-steps", "200", "--ais-runs", "20", "--out-dir", str(out), "--quiet"]) == 0
    result = json.loads((out / "rbm_ais_digits-16.json").read_text())
    assert result["cd_k"] == [1, 3] and result["rbm_config"]["hidden"] == [16]
    for k in (1, 3):
        assert [epoch for epoch, _ in rbm_ais.log_likelihood_curve(result, k)] == [1, 2]
        assert result["runs"][0][f"cd{k}"]["final"]["log_likelihood"] == result["summary"][f"cd{k}_log_likelihood"]
        assert math.isfinite(result["summary"][f"cd{k}_log_likelihood"])
    assert (out / "rbm_ais_digits-16_curves.png").exists() and (out / "rbm_ais_dreams_digits-16.png").exists()
    assert "| CD-3 |" in (out / "rbm_ais_digits-16.md").read_text()
    (claim,) = rbm_ais.CLAIMS
    assert claim.ours(result).startswith("CD-1 ") and "16 hidden, 2 epochs, 1 seed(s)" in claim.ours(result)
    assert claim.differs(result) == "CD-25 was not run"


def test_the_benchmark_refuses_a_k_given_twice(capsys):
    with pytest.raises(SystemExit) as error:
        main(["bench", "rbm-ais", "--cd-k", "1", "1"])
    assert error.value.code == 2 and "each --cd-k once" in capsys.readouterr().err
