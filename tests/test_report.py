import json
import shutil
from argparse import Namespace

import pytest

from brainlearn.cli import main
from brainlearn.experiments.common import experiment_data
from brainlearn.report import README_END, README_START, stale_modules, write_report


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A real, tiny ff-vs-bp run on the digits, standing in for the preset net's run (its JSON alone, under the
    preset's name: the report draws the rest from it)."""
    run, out = tmp_path_factory.mktemp("run"), tmp_path_factory.mktemp("results")
    assert main(["bench", "ff-vs-bp", "--seeds", "0", "--epochs", "1", "--hidden", "32", "32",
                 "--out-dir", str(run), "--quiet"]) == 0
    result = json.loads((run / "ff_vs_bp_digits-32-32.json").read_text())
    (out / "ff_vs_bp_digits.json").write_text(json.dumps({**result, "dataset": "digits"}))
    return out


def copy_of(results, tmp_path):
    target = tmp_path / "results"
    shutil.copytree(results, target)
    return target


def test_report_regenerates_identically(results, tmp_path):
    folder = copy_of(results, tmp_path)
    assert write_report(folder, None) == []
    first = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".md", ".png")}
    write_report(folder, None)
    second = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".md", ".png")}
    assert first == second
    text = first["RESULTS.md"].decode()
    assert "### ff_vs_bp_digits" in text and "ff_vs_bp_digits_curves.png" in text and "ff_goodness_digits.png" in text


def test_claim_rows_read_our_figures_from_the_json(results, tmp_path):
    folder = copy_of(results, tmp_path)
    result = json.loads((folder / "ff_vs_bp_digits.json").read_text())
    result.update(dataset="mnist", summary={**result["summary"], "ff_error_goodness": 0.0123,
                                            "ff_error_softmax": 0.0234, "bp_error": 0.0111, "ff_over_bp_time": 2.5})
    (folder / "ff_vs_bp_mnist.json").write_text(json.dumps(result))
    write_report(folder, None)
    text = (folder / "RESULTS.md").read_text()
    ff_row = next(line for line in text.splitlines() if "permutation-invariant" in line)
    assert "goodness 1.23%, softmax 2.34%; BP twin 1.11%" in ff_row and "| reproduced |" in ff_row
    speed_row = next(line for line in text.splitlines() if "twice backprop" in line)
    assert "2.50x" in speed_row and "differs: FF slower than claimed here" in speed_row


def test_a_paper_scale_run_checks_the_claim_and_says_where_it_ran(results, tmp_path):
    folder = copy_of(results, tmp_path)
    result = json.loads((folder / "ff_vs_bp_digits.json").read_text())
    default = {**result, "dataset": "mnist", "summary": {**result["summary"], "ff_error_goodness": 0.0234}}
    (folder / "ff_vs_bp_mnist.json").write_text(json.dumps(default))

    def ff_row():
        write_report(folder, None)
        return next(line for line in (folder / "RESULTS.md").read_text().splitlines() if "permutation-invariant" in line)

    assert "goodness 2.34%" in ff_row() and "| smaller than the paper's; CPU, " in ff_row()
    paper = {**result, "dataset": "mnist-full", "summary": {**result["summary"], "ff_error_goodness": 0.0123},
             "train_config": {**result["train_config"], "device": "cuda"}, "accelerator": {"name": "Some GPU"}}
    (folder / "ff_vs_bp_mnist-full.json").write_text(json.dumps(paper))
    assert "goodness 1.23%" in ff_row() and "| paper's; Some GPU |" in ff_row()
    speed_row = next(line for line in (folder / "RESULTS.md").read_text().splitlines() if "twice backprop" in line)
    assert "| CPU, " in speed_row  # a claim without a paper-scale run keeps reading the default run


def test_full_runs_write_their_own_result_files(tmp_path):
    args = Namespace(dataset="digits", data_dir=None, no_download=True)
    assert experiment_data(Namespace(**vars(args), full=False)).name == "digits"
    assert experiment_data(Namespace(**vars(args), full=True)).name == "digits-full"


def test_another_net_than_the_presets_writes_its_own_result_files(tmp_path):
    """--hidden other than the preset's net names its files by the net; the preset's net keeps the plain name."""
    args = Namespace(dataset="digits", data_dir=None, no_download=True, full=True)
    assert experiment_data(Namespace(**vars(args), hidden=[1000, 1000]), (2000,) * 4).name == "digits-full-1000-1000"
    assert experiment_data(Namespace(**vars(args), hidden=[2000] * 4), (2000,) * 4).name == "digits-full"
    assert experiment_data(Namespace(**vars(args), hidden=[8])).name == "digits-full-8"  # no preset net: any differs
    run = ["bench", "ff-vs-bp", "--dataset", "digits", "--epochs", "1", "--seeds", "0", "--quiet",
           "--out-dir", str(tmp_path)]
    assert main([*run, "--hidden", "8"]) == 0
    assert json.loads((tmp_path / "ff_vs_bp_digits-8.json").read_text())["ff_config"]["hidden"] == [8]
    assert not (tmp_path / "ff_vs_bp_digits.json").exists()


def test_missing_or_malformed_results_say_not_yet_run(results, tmp_path, capsys):
    folder = copy_of(results, tmp_path)
    (folder / "dbn_vs_bp_mnist.json").write_text("{ truncated")
    provenance = {k: v for k, v in json.loads((folder / "ff_vs_bp_digits.json").read_text()).items()
                  if k in ("dataset", "command", "date", "machine", "versions", "seeds")}
    (folder / "eqprop_vs_bp_mnist.json").write_text(json.dumps({**provenance, "benchmark": "eqprop_vs_bp",
                                                                "architectures": []}))
    problems = write_report(folder, None)
    assert any("dbn_vs_bp_mnist.json is malformed" in p for p in problems)
    assert any("eqprop_vs_bp_mnist.json lacks" in p for p in problems)
    assert "warning: dbn_vs_bp_mnist.json is malformed" in capsys.readouterr().err
    text = (folder / "RESULTS.md").read_text()
    dbn_row = next(line for line in text.splitlines() if "label units classifies" in line)
    assert "not yet run: dbn_vs_bp_mnist.json is malformed" in dbn_row
    ff_row = next(line for line in text.splitlines() if "permutation-invariant" in line)
    assert "not yet run: no result file" in ff_row and "benchmarks/ff_vs_bp.py" in ff_row


def test_results_older_than_their_code_are_marked_stale(results, tmp_path):
    folder = copy_of(results, tmp_path)
    result = json.loads((folder / "ff_vs_bp_digits.json").read_text())
    result["code_sha256"]["brainlearn.algorithms.forward_forward"] = "0" * 16
    (folder / "ff_vs_bp_digits.json").write_text(json.dumps(result))
    write_report(folder, None)
    assert "**Stale:** forward_forward changed since this run" in (folder / "RESULTS.md").read_text()


def test_a_benchmark_scripts_stale_modules_come_in_the_same_order_every_time():
    """A result of no experiment names every module it recorded; their order once followed a set's, which changes
    with Python's hash seed, so each regenerated report reordered the list."""
    modules = ["brainlearn.train", "brainlearn.hardware", "brainlearn.algorithms.forward_forward",
               "brainlearn.algorithms.backprop", "brainlearn.algorithms.eqprop", "brainlearn.algorithms.dendritic"]
    result = {"benchmark": "device_speed", "code_sha256": {name: "0" * 16 for name in modules}}
    assert stale_modules(result) == [name.rsplit(".", 1)[-1] for name in sorted(modules)]


def test_a_merged_result_is_stale_when_any_of_its_parts_ran_older_code(results, tmp_path):
    """A merge takes its newest part's provenance: a part run before a change must still show."""
    folder = copy_of(results, tmp_path)
    result = json.loads((folder / "ff_vs_bp_digits.json").read_text())
    part = {"command": result["command"], "date": result["date"], "seeds": result["seeds"], "ran_on": "CPU",
            "code_sha256": dict(result["code_sha256"])}
    (folder / "ff_vs_bp_digits.json").write_text(json.dumps({**result, "parts": [part, part]}))
    write_report(folder, None)
    assert "**Stale:**" not in (folder / "RESULTS.md").read_text()
    older = {**part, "code_sha256": {**part["code_sha256"], "brainlearn.algorithms.backprop": "0" * 16}}
    (folder / "ff_vs_bp_digits.json").write_text(json.dumps({**result, "parts": [older, part]}))
    write_report(folder, None)
    assert "**Stale:** backprop changed since this run" in (folder / "RESULTS.md").read_text()


def test_readme_block_is_rewritten_and_the_rest_kept(results, tmp_path):
    folder = copy_of(results, tmp_path)
    result = json.loads((folder / "ff_vs_bp_digits.json").read_text())
    (folder / "ff_vs_bp_mnist.json").write_text(json.dumps({**result, "dataset": "mnist"}))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nintro\n\n{README_START}\nold table\n{README_END}\n\nafter\n")
    assert main(["report", "--results-dir", str(folder), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nintro\n\n") and text.endswith(f"{README_END}\n\nafter\n")
    assert "old table" not in text and "Regenerated by `brainlearn report`" in text
    assert "](results/ff_vs_bp_mnist_curves.png)" in text and (folder / "ff_vs_bp_mnist_curves.png").exists()
    assert f"Made by `{result['command']}`" in text
    assert main(["report", "--results-dir", str(tmp_path / "nowhere")]) == 1
