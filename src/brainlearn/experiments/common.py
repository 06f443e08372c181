"""What every experiment uses: the `Experiment` and `Claim` records, the machine and versions a result
records, writing the JSON + Markdown result, timing, and the runner that trains a local learner beside
its backprop twin on every seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import ModuleType

import numpy as np
import sklearn
import torch

import brainlearn

from ..arguments import add_data_arguments, add_device_argument, add_output_arguments, device_or_usage_error
from ..cuda_graphs import synchronize
from ..algorithms import BackpropConfig
from ..data import Dataset, load_dataset
from ..runfolder import write_atomically
from ..train import TrainConfig, fit, make_learner

Figures = list[tuple[Path, str]]  # (PNG path, caption)


@dataclass(frozen=True)
class Claim:
    """One checkable claim. `ours` and `differs` read a result's JSON; `differs` returns None when the
    claim is reproduced (by the rule in `reproduced_when`), else why ours differs."""

    topic: str
    claim: str
    published: str
    source: str
    result: str  # stem of the result file that checks it
    command: str  # the command that writes that file
    ours: Callable[[dict], str] | None = None
    differs: Callable[[dict], str | None] | None = None
    reproduced_when: str = ""
    not_run_why: str = ""  # why there is no result yet (no benchmark, no data here)
    paper_result: str = ""  # stem of the run at the paper's scale (`--full`): checks the claim where it exists
    # stems of runs beside the one that checks the claim (another net): each that covers the claim adds its own
    # figure and verdict to the claim's row
    also_results: tuple[str, ...] = ()
    # The scale column with the paper_result, and without it: a claim the paper gives no scale for names its own
    scales: tuple[str, str] = ("paper's", "smaller than the paper's")


def no_figures(result: dict, out_dir: Path) -> Figures:
    return []


@dataclass(frozen=True)
class Experiment:
    """One experiment, as its module describes it at its end; `experiments.EXPERIMENTS` lists them all."""

    name: str  # the subcommand: `brainlearn bench NAME`
    result: str  # the result's "benchmark" field; its files are RESULT_<dataset>.json / .md
    help: str  # one line for `brainlearn bench --help`
    description: str  # the module's docstring, for `brainlearn bench NAME --help`
    code: tuple[ModuleType, ...]  # the code its numbers depend on: a change to one makes its results stale
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run_from_args: Callable[[argparse.Namespace, argparse.ArgumentParser, str], dict]  # (args, parser, command line)
    markdown: Callable[[dict], str]  # the Markdown body under the provenance header
    figures: Callable[[dict, Path], Figures] = no_figures  # figures drawn from the JSON (the report redraws them)
    trained_net_figures: tuple[tuple[str, str], ...] = ()  # (file pattern, caption): only a run can draw these
    readme_figure: tuple[str, str, str] | None = None  # (result stem, file, caption) shown in the README
    claims: tuple[Claim, ...] = ()

    def trained_net_figure(self, index: int, out_dir: Path, dataset: str) -> Path:
        """Where trained-net figure `index` goes."""
        return out_dir / self.trained_net_figures[index][0].format(dataset=dataset)

    def write(self, dataset: str, command: str, started: dict, seeds: list[int], train_config: dict, fields: dict,
              out_dir: Path) -> dict:
        return write_result(self.result, dataset, command, started, seeds, train_config, fields, out_dir,
                            self.markdown, self.figures)


# ----------------------------------------------------------------------------------------------------------
# The machine, versions and code a result records


def matmul_gflops(size: int = 1024, repeats: int = 20, device: str | torch.device = "cpu") -> float:
    """This machine's float32 matmul throughput on `device`, measured now (GFLOP/s); on a GPU with 4096-sized
    matrices, which fill it."""
    device = torch.device(device)
    if device.type == "cuda":
        size, repeats = 4096, 50
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def accelerator() -> dict:
    """The GPU a run may use, if any: its name and torch's CUDA version."""
    if not torch.cuda.is_available():
        return {}
    return {"accelerator": {"name": torch.cuda.get_device_name(), "cuda": torch.version.cuda,
                            "count": torch.cuda.device_count()}}


def code_hashes(modules: tuple[ModuleType, ...]) -> dict[str, str]:
    """A short hash of each module's file: a result older than its code can be told apart."""
    return {module.__name__: hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:16]
            for module in modules}


def environment() -> dict:
    """Where and with what a run happens; taken when an experiment starts, so the code hashes are those that ran."""
    from . import ALL_CODE  # the registry imports every experiment, and so this module

    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "scikit-learn": sklearn.__version__, "brainlearn": brainlearn.__version__},
        "code_sha256": code_hashes(ALL_CODE),
        **accelerator(),
    }


# ----------------------------------------------------------------------------------------------------------
# The result files


def write_result(name: str, dataset: str, command: str, started: dict, seeds: list[int], train_config: dict,
                 fields: dict, out_dir: Path, markdown_body: Callable[[dict], str],
                 figures: Callable[[dict, Path], Figures] = no_figures) -> dict:
    """Write `<name>_<dataset>.json` (provenance + `fields`), the Markdown `markdown_body` makes of it, and the
    figures `figures` draws from it. Each file is written atomically: an interrupted run leaves the old one."""
    result = {
        "benchmark": name, "dataset": dataset, "command": command, **started, "seeds": seeds,
        "train_config": train_config, **fields,
    }
    stem = out_dir / f"{name}_{dataset}"
    text = json.dumps(result, indent=1)
    write_atomically(stem.with_suffix(".json"), lambda f: f.write(text.encode()))
    markdown = "\n".join(markdown_header(result)) + "\n" + markdown_body(result)
    write_atomically(stem.with_suffix(".md"), lambda f: f.write(markdown.encode()))
    figures(result, out_dir)
    return result


def markdown_header(result: dict) -> list[str]:
    train, machine = result["train_config"], result["machine"]
    return [
        f"# {result['benchmark']} on {result['dataset']}",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date']}; seeds {result['seeds']}; training: "
        f"{', '.join(f'{key} {value}' for key, value in train.items() if key != 'seed')}  ",
        *[f"{key[:-7]} config: `{json.dumps(value)}`  " for key, value in result.items()
          if key.endswith("_config") and key != "train_config"],
        f"Machine: {machine['processor']}, {machine['cpu_count']} CPUs, {machine['torch_threads']} torch threads; "
        f"torch {result['versions']['torch']}, python {result['versions']['python']}; trained on {ran_on(result)}",
        "",
    ]


def ran_on(result: dict) -> str:
    """The machine a result's numbers come from: its GPU where it trained on one, else its CPU cores; for a result
    merged from parts, each part's."""
    if result.get("parts"):
        return " and ".join(dict.fromkeys(part["ran_on"] for part in result["parts"]))
    device = str(result.get("train_config", {}).get("device", "cpu"))
    if "accelerator" in result and device != "cpu":
        return result["accelerator"]["name"]
    return f"CPU, {result['machine']['cpu_count']} cores"


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def net_label(sizes) -> str:
    """Layer sizes joined by hyphens: "1000-1000"."""
    return "-".join(map(str, sizes))


def net_description(result: dict, config: str) -> str:
    """"1000-1000 hidden, 30 epochs, 2 seed(s)": the net and budget of `result[config]`, for the claims (and
    "jitter 1" where its training images were shifted)."""
    jitter = result["train_config"].get("jitter", 0)
    return (f"{net_label(result[config]['hidden'])} hidden, {result['train_config']['epochs']} epochs, "
            + (f"jitter {jitter}, " if jitter else "") + f"{len(result['seeds'])} seed(s)")


def speed_table(summary: dict, learner: str, twin: str) -> list[str]:
    """Markdown rows: seconds per epoch and samples/s of `learner` beside its BP twin."""
    return [
        "",
        f"| speed (median epoch) | {learner.upper()} | BP twin | {learner.upper()} / BP |",
        "| --- | --- | --- | --- |",
        f"| seconds per epoch | {summary[f'{learner}_seconds_per_epoch']:.2f} | "
        f"{summary[f'{twin}_seconds_per_epoch']:.2f} | {summary[f'{learner}_over_bp_time']:.2f}x |",
        f"| training samples/s | {summary[f'{learner}_samples_per_s']:.0f} | {summary[f'{twin}_samples_per_s']:.0f} | |",
    ]


def mean_curve(runs: list[dict], algorithm: str, key: str) -> list[tuple[int, float]]:
    """Mean over seeds of the test error at every epoch where it was measured."""
    by_epoch: dict[int, list[float]] = {}
    for run in runs:
        for row in run[algorithm]["history"]:
            if key in row:
                by_epoch.setdefault(row["epoch"], []).append(row[key])
    return [(epoch, statistics.mean(values)) for epoch, values in sorted(by_epoch.items())]


def curves_title(result: dict) -> str:
    return f"{result['dataset']}: test error, mean of {len(result['seeds'])} seed(s)"


# ----------------------------------------------------------------------------------------------------------
# A local learner beside its backprop twin, on every seed


def train_once(algorithm: str, config, data: Dataset, train_config: TrainConfig, run_dir: Path | None,
               progress: bool):
    """Train one learner through the loop; returns it (on the CPU) and its final errors, speed and history."""
    learner = make_learner(algorithm, data.n_features, data.n_classes, config, train_config.seed)
    history = fit(learner, data, train_config, run_dir=run_dir, progress=progress, overwrite=True)  # --keep-runs: the latest
    learner.to_device(torch.device("cpu"), train_config.seed)  # trained where asked; measured and drawn on the CPU
    # The median epoch: robust to an epoch slowed by something else running on the machine.
    seconds = statistics.median(row["seconds"] for row in history)
    return learner, {
        "final": {k: v for k, v in history[-1].items() if k.startswith("error")},
        "seconds_per_epoch": seconds,
        "samples_per_s": len(data.x_train) / seconds,
        "history": history,
    }


def run_seeds(name: str, data: Dataset, seeds: list[int], train_config: TrainConfig, configs: dict,
              out_dir: Path, progress: bool, keep_runs: bool, measure=None) -> tuple[list[dict], dict]:
    """Train every learner in `configs` ({algorithm: config}) once per seed, in this process.

    `measure(learners, result)` may add per-seed measurements; returns the runs and the last
    seed's learners (for figures).
    """
    hidden = {tuple(config.hidden) for config in configs.values()}
    if len(hidden) != 1:
        raise ValueError(f"{name}: every learner must have the same hidden sizes, got {sorted(hidden)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    runs, learners = [], {}
    for seed in seeds:
        seed_config = replace(train_config, seed=seed)
        run = {"seed": seed}
        for algorithm, config in configs.items():
            run_dir = out_dir / "runs" / f"{name}-{data.name}-{algorithm}-seed{seed}" if keep_runs else None
            learners[algorithm], run[algorithm] = train_once(algorithm, config, data, seed_config, run_dir, progress)
        if measure is not None:
            measure(learners, run)
        runs.append(run)
    return runs, learners


def timing_summary(runs: list[dict], algorithm: str, data: Dataset, flops_per_sample: int | None = None) -> dict:
    seconds = statistics.mean(r[algorithm]["seconds_per_epoch"] for r in runs)
    summary = {f"{algorithm}_seconds_per_epoch": seconds, f"{algorithm}_samples_per_s": len(data.x_train) / seconds}
    if flops_per_sample is not None:
        summary[f"{algorithm}_gflops"] = flops_per_sample * len(data.x_train) / seconds / 1e9
    return summary


def mean_over_runs(runs: list[dict], algorithm: str, key: str) -> float:
    return statistics.mean(r[algorithm]["final"][key] if key.startswith("error") else r[algorithm][key] for r in runs)


def configs_fields(configs: dict) -> dict:
    """{algorithm: config} -> {"<algorithm>_config": its fields}, as the result JSON holds them."""
    return {f"{algorithm}_config": asdict(config) for algorithm, config in configs.items()}


# ----------------------------------------------------------------------------------------------------------
# The command line of the learner-vs-twin experiments


def add_twin_arguments(parser: argparse.ArgumentParser, lr_help: str, full_help: str,
                       lr_nargs: str | None = None) -> None:
    """The flags every learner-vs-twin experiment takes: data, preset overrides, seeds, device, output."""
    add_data_arguments(parser)
    parser.add_argument("--full", action="store_true", help=f"mnist only: the paper's configuration ({full_help})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one run of each per seed "
                        "(default: %(default)s)")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--hidden", type=int, nargs="+",
                        help="override the preset's hidden layer sizes; another net than the preset's writes "
                             "<result>_<dataset>-<sizes>.* (ff_vs_bp_mnist-500-500.json) beside its files")
    parser.add_argument("--batch-size", type=int, help="(default: the preset's, else 100)")
    parser.add_argument("--lr", type=float, nargs=lr_nargs, help=f"{lr_help} (default: the preset's)")
    parser.add_argument("--bp-lr", type=float, help="the BP twin's Adam learning rate (default: the preset's)")
    parser.add_argument("--keep-runs", action="store_true", help="also keep each run's checkpoint and log")
    add_device_argument(parser)
    parser.add_argument("--precision", choices=("fp32", "tf32"), default="fp32",
                        help="float32 matmuls on CUDA: exact, or TensorFloat-32 (default: %(default)s)")
    add_output_arguments(parser)


def dataset_preset(presets: dict, args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    """The preset for --dataset (the paper's with --full, where the experiment has that flag); --full with another
    data set than MNIST, or a data set without a preset, is a usage error."""
    if getattr(args, "full", False) and args.dataset != "mnist":
        parser.error("--full is the paper's MNIST configuration; use it with --dataset mnist")
    key = "mnist-full" if getattr(args, "full", False) else args.dataset
    if key not in presets:
        parser.error(f"no preset for --dataset {args.dataset} here; choose one of "
                     f"{', '.join(name for name in presets if name != 'mnist-full')}")
    return presets[key]


def chosen_preset(args: argparse.Namespace, parser: argparse.ArgumentParser, presets: dict) -> dict:
    """The preset for --dataset (the paper's with --full), with every flag the command line gives on top."""
    preset = dataset_preset(presets, args, parser)
    device_or_usage_error(args.device, parser)
    given = {flag: getattr(args, flag) for flag in ("epochs", "hidden", "batch_size", "lr", "bp_lr")
             if getattr(args, flag, None) is not None}
    return {"batch_size": 100, **preset, **given}


def twin_setup(args: argparse.Namespace, parser: argparse.ArgumentParser, presets: dict,
               learner_config: Callable[[dict], object]) -> tuple[TrainConfig, object, BackpropConfig, Dataset]:
    """A learner-vs-twin experiment's (training budget, learner config, BP twin config, data set) from the preset
    and the flags; `learner_config(chosen)` builds the learner's config. A bad value is a usage error."""
    chosen = chosen_preset(args, parser, presets)
    try:
        train_config = twin_train_config(args, chosen)
        config = learner_config(chosen)
        bp_config = BackpropConfig(hidden=tuple(chosen["hidden"]), lr=chosen["bp_lr"])
    except ValueError as error:
        parser.error(str(error))
    return train_config, config, bp_config, experiment_data(args, dataset_preset(presets, args, parser)["hidden"])


def result_name(args: argparse.Namespace, name: str, preset_hidden: tuple[int, ...] | None = None) -> str:
    """The data set's name as the result files carry it: "<name>-full" with --full, so the paper-scale run writes
    its own files (ff_vs_bp_mnist-full.json) beside the default run's; and with a --hidden net other than the
    preset's (`preset_hidden`; None: any --hidden differs) its sizes appended ("mnist-full-1000-1000"), so another
    net never overwrites the files the claims read."""
    if getattr(args, "full", False):
        name = f"{name}-full"
    hidden = getattr(args, "hidden", None)
    if hidden is not None and (preset_hidden is None or tuple(hidden) != tuple(preset_hidden)):
        name = f"{name}-{net_label(hidden)}"
    return name


def experiment_data(args: argparse.Namespace, preset_hidden: tuple[int, ...] | None = None) -> Dataset:
    """The data set --dataset names, named by `result_name`."""
    data = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    return replace(data, name=result_name(args, data.name, preset_hidden))


def twin_train_config(args: argparse.Namespace, chosen: dict) -> TrainConfig:
    """The training budget both nets get: the chosen epochs and batch, Adam's rate cooled down, every epoch tested."""
    return TrainConfig(epochs=chosen["epochs"], batch_size=chosen["batch_size"], lr_schedule="cooldown", eval_every=1,
                       device=args.device, precision=args.precision)
