import json

import pytest

from brainlearn.cli import main
from brainlearn.experiments import EXPERIMENTS
from brainlearn.train import ALGORITHMS


@pytest.mark.parametrize("argv", [
    ["train", "ff", "--no-such-flag"],
    ["train", "ff", "--epochs", "zero"],
    ["train", "ff", "--epochs", "0"],
    ["train", "ff", "--negatives", "fancy"],
    ["train", "gradient-descent"],
    ["bench", "ff-vs-bp", "--full"],  # --full is for mnist only
    ["bench", "ff-vs-bp", "--epochs", "0"],  # not "the preset's epochs"
    ["bench", "dbn-vs-bp", "--lr", "0"],
    ["bench", "eqprop-vs-bp", "--batch-size", "0"],
    ["bench", "rff-vs-bp", "--objectives", "medium"],
    ["train", "rff", "--test-window", "3", "9"],  # past the 8 iterations
    ["train", "ff", "--jitter", "-1"],
    ["train", "bp", "--local-field", "3", "--hidden", "100"],  # not a multiple of the 64 pixels
    [],
])
def test_bad_flags_exit_with_code_2_and_a_message(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_help_describes_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "ff", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "Forward-Forward" in text and "--negatives" in text and "--resume" in text


@pytest.mark.parametrize("argv", [["train", name] for name in ALGORITHMS] + [["bench", name] for name in EXPERIMENTS])
def test_every_learner_and_benchmark_prints_its_help(argv, capsys):
    """Every config field's help text is formatted by argparse (a bare % in one once broke `train dendritic`)."""
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "--help" in capsys.readouterr().out


def test_train_resume_and_eval_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    common = ["train", "ff", "--hidden", "32", "32", "--batch-size", "64", "--run-dir", str(run)]
    assert main([*common, "--epochs", "1"]) == 0
    assert main([*common, "--epochs", "2", "--resume"]) == 0
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    capsys.readouterr()
    assert main(["eval", str(run / "checkpoint.pt")]) == 0
    out = capsys.readouterr().out
    assert "error_goodness:" in out and "error_softmax:" in out and "digits test set" in out


def test_data_problem_exits_1_with_one_clear_line(tmp_path, capsys):
    assert main(["train", "ff", "--dataset", "mnist", "--data-dir", str(tmp_path), "--no-download"]) == 1
    assert "missing" in capsys.readouterr().err


def test_bench_writes_json_markdown_and_figures(tmp_path, capsys):
    argv = ["bench", "ff-vs-bp", "--seeds", "0", "--epochs", "2", "--hidden", "64", "64",
            "--out-dir", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "ff_vs_bp_digits-64-64.json").read_text())
    assert result["seeds"] == [0] and result["train_config"]["epochs"] == 2
    assert {"ff_error_goodness", "ff_error_softmax", "bp_error", "ff_over_bp_time", "matmul_gflops"} <= set(
        result["summary"])
    assert result["versions"]["torch"] and result["machine"]["cpu_count"]
    assert result["command"].startswith("brainlearn bench ff-vs-bp --seeds 0")
    assert "| test error" in (tmp_path / "ff_vs_bp_digits-64-64.md").read_text()
    assert (tmp_path / "ff_vs_bp_digits-64-64_curves.png").stat().st_size > 1000
    assert (tmp_path / "ff_receptive_fields_digits-64-64.png").stat().st_size > 1000
    histograms = result["runs"][0]["ff"]["goodness_histograms"]
    assert len(histograms) == 2 and all(sum(h["positive"]) == sum(h["negative"]) == 450 for h in histograms)
    assert (tmp_path / "ff_goodness_digits-64-64.png").stat().st_size > 1000


def test_ff_ablation_trains_each_chosen_variant_and_reports_training_error(tmp_path, capsys):
    argv = ["bench", "ff-ablation", "--seeds", "0", "--epochs", "1", "--hidden", "16", "16", "--variants",
            "first default", "+ label value 5", "full recipe - SGD with momentum",
            "+ fan-out init + Hinton's peer normalisation", "--out-dir", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "ff_ablation_digits-16-16.json").read_text())
    rows = {row["variant"]: row for row in result["variants"]}
    assert list(rows) == ["first default", "+ label value 5", "full recipe - SGD with momentum",
                          "+ fan-out init + Hinton's peer normalisation"]
    assert rows["first default"]["config"]["init"] == rows["+ label value 5"]["config"]["init"] == "torch"
    assert rows["+ label value 5"]["config"]["label_value"] == 5.0
    assert rows["full recipe - SGD with momentum"]["config"]["optimizer"] == "adam"
    assert rows["full recipe - SGD with momentum"]["config"]["init"] == "fan-out"
    assert rows["full recipe - SGD with momentum"]["config"]["peer_normalization"] == 0.03
    # Hinton's lambdamean 0.03 per unit, in the config's mean over 16 units with running means of momentum 0.9
    hinton = rows["+ fan-out init + Hinton's peer normalisation"]["config"]
    assert (hinton["peer_normalization"], hinton["full_gradient_relu"], hinton["init"]) == (4.8, True, "fan-out")
    assert all(0 <= row["summary"]["training_error_goodness"] <= 1 for row in rows.values())
    assert "| + label value 5 |" in (tmp_path / "ff_ablation_digits-16-16.md").read_text()
    with pytest.raises(SystemExit) as bad:
        main(["bench", "ff-ablation", "--variants", "no such variant"])
    assert bad.value.code == 2


def test_dbn_train_then_dream_writes_a_png(tmp_path, capsys):
    run = tmp_path / "dbn"
    assert main(["train", "dbn", "--hidden", "32", "32", "64", "--epochs", "1", "--run-dir", str(run)]) == 0
    out = tmp_path / "dreams.png"
    assert main(["dream", str(run / "checkpoint.pt"), "--label", "2", "7", "--count", "3", "--steps", "20",
                 "--out", str(out)]) == 0
    assert out.stat().st_size > 1000 and "labels [2, 7]" in capsys.readouterr().out


def test_dream_refuses_a_label_out_of_range(tmp_path):
    run = tmp_path / "dbn"
    assert main(["train", "dbn", "--hidden", "16", "16", "--epochs", "1", "--run-dir", str(run)]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["dream", str(run / "checkpoint.pt"), "--label", "12"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["dream", str(run / "checkpoint.pt"), "--start-temperature", "0.5"])
    assert exit_info.value.code == 2


def test_dbn_bench_writes_dreams_and_log_likelihood(tmp_path):
    argv = ["bench", "dbn-vs-bp", "--seeds", "0", "--epochs", "2", "--hidden", "32", "32", "64",
            "--dream-steps", "20", "--ais-steps", "200", "--out-dir", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "dbn_vs_bp_digits-32-32-64.json").read_text())
    assert {"dbn_error", "bp_error", "dream_agreement", "dream_agreement_unannealed",
            "rbm1_test_log_likelihood"} <= set(result["summary"])
    assert result["dreams"] == {"per_label": 20, "steps": 20, "start_temperature": 2.0}
    assert result["dbn_config"]["top_sleep"] == "pcd" and result["dbn_config"]["discriminative"] == 10.0  # preset
    assert result["runs"][0]["dbn"]["ais"]["test_log_likelihood"] < 0
    assert (tmp_path / "dbn_dreams_digits-32-32-64.png").stat().st_size > 1000
    assert (tmp_path / "rbm_receptive_fields_digits-32-32-64.png").stat().st_size > 1000
    assert "AIS" in (tmp_path / "dbn_vs_bp_digits-32-32-64.md").read_text()


def test_eqprop_bench_reports_gradient_check_and_relaxation_cost(tmp_path):
    argv = ["bench", "eqprop-vs-bp", "--seeds", "0", "--epochs", "1", "--hidden", "32", "--lr", "0.1", "0.05",
            "--out-dir", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "eqprop_vs_bp_digits-32.json").read_text())
    run = result["architectures"][0]["runs"][0]["eqprop"]
    assert set(run["error_by_free_steps"]) == {"5", "10", "20", "50", "100"}
    assert run["free_phase"]["seconds"] > 0 and 0 < run["free_phase"]["fraction_of_matmul"]
    small_beta = [row for row in run["gradient_check"] if row["beta"] == 0.001]
    assert all(row["cosine"] > 0.99 for row in small_beta)
    assert (tmp_path / "eqprop_energy_digits-32.png").stat().st_size > 1000
    assert "relative error" in (tmp_path / "eqprop_vs_bp_digits-32.md").read_text()


def test_eqprop_bench_with_hidden_needs_learning_rates(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "eqprop-vs-bp", "--hidden", "32"])
    assert exit_info.value.code == 2 and "--lr" in capsys.readouterr().err


def test_recurrent_ff_bench_compares_both_objectives_with_bp(tmp_path):
    argv = ["bench", "rff-vs-bp", "--seeds", "0", "--epochs", "1", "--hidden", "32", "32",
            "--out-dir", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "rff_vs_bp_digits-32-32.json").read_text())
    assert {"rff_high_error_goodness", "rff_low_error_softmax", "bp_error"} <= set(result["summary"])
    trace = result["runs"][0]["rff_low"]["goodness_per_step"]
    assert len(trace["right"]) == 8 and len(trace["wrong"][0]) == 2  # steps x layers
    assert (tmp_path / "rff_goodness_digits-32-32.png").stat().st_size > 1000
    assert "low goodness" in (tmp_path / "rff_vs_bp_digits-32-32.md").read_text()


def test_jitter_bench_trains_ff_and_bp_with_and_without_shifts(tmp_path):
    argv = ["bench", "ff-jitter", "--seeds", "0", "--epochs", "1", "--hidden", "32", "32", "--jitter", "1",
            "--out-dir", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "ff_jitter_digits-32-32.json").read_text())
    assert result["jitter"] == 1 and result["runs"][0]["ff_jitter1"]["history"]
    assert {"ff_jitter0_error_goodness", "ff_jitter1_error_goodness", "bp_jitter1_error"} <= set(result["summary"])
    assert (tmp_path / "ff_jitter_digits-32-32_curves.png").stat().st_size > 1000
