"""Recurrent, GLOM-like Forward-Forward beside its backprop twin (Hinton 2022, sec. 3.4: 1.31% MNIST test error
after 60 epochs, 8 damped iterations, classified by goodness over steps 3-5; low goodness for positive data, the
predictive-coding-like objective, worked better than high).

    brainlearn bench rff-vs-bp --dataset mnist --data-dir DIR          # 2 x 500, 10 epochs, both objectives
    brainlearn bench rff-vs-bp --dataset mnist --data-dir DIR --full   # 3 x 2000, 60 epochs
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path

import torch

from .. import cuda_graphs, plots, train
from ..algorithms import BackpropConfig, RecurrentFFConfig, backprop, forward_forward, recurrent_ff
from ..data import Dataset
from ..train import TrainConfig
from .common import (Claim, Experiment, add_twin_arguments, curves_title, environment, mean_curve,
                     mean_over_runs, net_description, percent, run_seeds, timing_summary, twin_setup)

PRESETS = {  # the paper's net was larger: `--full`
    "digits": {"hidden": (200, 200), "epochs": 20, "lr": 1e-3, "bp_lr": 1e-3},
    "mnist": {"hidden": (500, 500), "epochs": 10, "lr": 1e-3, "bp_lr": 1e-3},
    "mnist-full": {"hidden": (2000, 2000, 2000), "epochs": 60, "lr": 1e-3, "bp_lr": 1e-3},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_twin_arguments(parser, "the recurrent net's Adam learning rate", "3 hidden layers of 2000, 60 epochs")
    parser.add_argument("--negatives", choices=("hard", "random"), default="hard",
                        help="negative labels (default: %(default)s)")
    parser.add_argument("--objectives", nargs="+", choices=("high", "low"), default=["high", "low"],
                        help="goodness objectives to train, one net each (default: %(default)s)")


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict:
    train_config, rff_config, bp_config, data = twin_setup(args, parser, PRESETS, lambda chosen: RecurrentFFConfig(
        hidden=tuple(chosen["hidden"]), lr=chosen["lr"], negatives=args.negatives))
    return run(data, args.seeds, train_config, rff_config, bp_config, args.out_dir, command, progress=not args.quiet,
               keep_runs=args.keep_runs, objectives=tuple(dict.fromkeys(args.objectives)))


def run(data: Dataset, seeds: list[int], train_config: TrainConfig, rff_config: RecurrentFFConfig,
        bp_config: BackpropConfig, out_dir: Path, command: str, progress: bool = True, keep_runs: bool = False,
        objectives: tuple[str, ...] = ("high", "low")) -> dict:
    """Recurrent FF with each goodness objective and the BP twin: test errors (goodness over the test window,
    and the softmax), speed, and each layer's goodness per step for the right label vs the wrong ones."""
    started = environment()
    runs = [{"seed": seed} for seed in seeds]
    for objective in objectives:
        def measure(learners, run):
            if run["seed"] == seeds[0]:
                run["rff"]["goodness_per_step"] = goodness_per_step(learners["rff"], data)

        configs = {"rff": replace(rff_config, objective=objective)}
        if objective == objectives[0]:
            configs["bp"] = bp_config
        for merged, run in zip(runs, run_seeds(f"rff_{objective}_vs_bp", data, seeds, train_config, configs,
                                               out_dir, progress, keep_runs, measure)[0]):
            merged[f"rff_{objective}"] = run["rff"]
            merged.setdefault("bp", run.get("bp"))
    summary = {"bp_error": mean_over_runs(runs, "bp", "error"), **timing_summary(runs, "bp", data)}
    for objective in objectives:
        key = f"rff_{objective}"
        summary.update({f"{key}_error_goodness": mean_over_runs(runs, key, "error_goodness"),
                        f"{key}_error_softmax": mean_over_runs(runs, key, "error_softmax"),
                        **timing_summary(runs, key, data)})
        summary[f"{key}_over_bp_time"] = summary[f"{key}_seconds_per_epoch"] / summary["bp_seconds_per_epoch"]
    return EXPERIMENT.write(data.name, command, started, seeds, asdict(train_config),
                            {"rff_config": asdict(rff_config), "bp_config": asdict(bp_config),
                             "objectives": list(objectives), "summary": summary, "runs": runs}, out_dir)


@torch.no_grad()
def goodness_per_step(rff, data: Dataset, chunk: int = 200) -> dict:
    """Mean goodness of each hidden layer at each step over the test set, of the video with the right label
    and of the videos with wrong labels: {"right"/"wrong": [step][layer]}."""
    right, wrong = 0.0, 0.0
    for x, y in zip(data.x_test.split(chunk), data.y_test.split(chunk)):
        candidates = torch.arange(data.n_classes).repeat(len(x))
        g = rff.goodness_per_step(x.repeat_interleave(data.n_classes, 0), candidates)
        g = g.view(*g.shape[:2], len(x), data.n_classes)
        is_right = torch.nn.functional.one_hot(y, data.n_classes).bool()
        right = right + g[..., is_right].sum(-1)
        wrong = wrong + g[..., ~is_right].sum(-1)
    n = len(data.x_test)
    return {"right": (right / n).tolist(), "wrong": (wrong / (n * (data.n_classes - 1))).tolist()}


def markdown(result: dict) -> str:
    s, first, last = result["summary"], *result["rff_config"]["test_window"]
    iterations = result["rff_config"]["iterations"]
    lines = [
        f"Recurrent FF: {iterations} damped iterations, classification by goodness summed over "
        f"steps {first}-{last}; the BP twin is the feed-forward MLP of the same hidden sizes.", "",
        "| learner | test error, goodness of each label | softmax readout | seconds per epoch | time / BP |",
        "| --- | --- | --- | --- | --- |",
    ]
    for objective in result["objectives"]:
        key = f"rff_{objective}"
        lines.append(f"| recurrent FF, {objective} goodness for positive data | "
                     f"{percent(s[f'{key}_error_goodness'])} | "
                     f"{percent(s[f'{key}_error_softmax'])} | {s[f'{key}_seconds_per_epoch']:.1f} | "
                     f"{s[f'{key}_over_bp_time']:.1f}x |")
    lines += [f"| BP twin | {percent(s['bp_error'])} | | {s['bp_seconds_per_epoch']:.2f} | 1x |", "",
              "Mean goodness per step over the test set, summed over the hidden layers (first seed):", "",
              "| objective | label | " + " | ".join(f"step {t + 1}" for t in range(iterations)) + " |",
              "| --- " * (iterations + 2) + "|"]
    for objective in result["objectives"]:
        trace = result["runs"][0][f"rff_{objective}"]["goodness_per_step"]
        for label in ("right", "wrong"):
            lines.append(f"| {objective} | {label} | " + " | ".join(f"{sum(step):.1f}" for step in trace[label]) + " |")
    lines.append("")
    return "\n".join(lines)


def figures(result: dict, out_dir: Path) -> list[tuple[Path, str]]:
    runs, dataset = result["runs"], result["dataset"]
    curves = {f"recurrent FF, {objective} goodness (softmax readout)": mean_curve(runs, f"rff_{objective}",
                                                                                 "error_softmax")
              for objective in result["objectives"]}
    curves["BP twin"] = mean_curve(runs, "bp", "error")
    traces = {objective: runs[0][f"rff_{objective}"]["goodness_per_step"] for objective in result["objectives"]}
    return [(plots.learning_curves(curves, out_dir / f"rff_vs_bp_{dataset}_curves.png", curves_title(result)),
             "Recurrent FF (each objective) vs its backprop twin: test error per epoch"),
            (plots.goodness_per_step(traces, result["rff_config"]["test_window"], out_dir / f"rff_goodness_{dataset}.png",
                                     f"{dataset} test set, seed {result['seeds'][0]}"),
             "Recurrent FF: mean goodness per layer and step, right label vs wrong labels")]


MNIST_COMMAND = "python benchmarks/recurrent_ff.py --data-dir DIR"

CLAIMS = (
    Claim("Forward-Forward", "Recurrent, GLOM-like FF on MNIST", "1.31% (60 epochs)", "Hinton 2022, sec. 3.4",
          "rff_vs_bp_mnist", MNIST_COMMAND,
          ours=lambda r: (", ".join(f"{objective} goodness {percent(r['summary'][f'rff_{objective}_error_goodness'])}"
                                    for objective in r["objectives"])
                          + f"; BP twin {percent(r['summary']['bp_error'])} ({net_description(r, 'rff_config')})"),
          differs=lambda r: None if min(r["summary"][f"rff_{o}_error_goodness"] for o in r["objectives"]) <= 0.014
          else (f"not reached with {net_description(r, 'rff_config')}; the paper's net and budget (`--full`) "
                "have not been run here, so the gap has no measured cause yet"),
          reproduced_when="error <= 1.4%"),
    Claim("Forward-Forward", "Recurrent FF works better with low goodness for positive data (the "
          "predictive-coding-like objective) than with high", "qualitative", "Hinton 2022, sec. 3.4",
          "rff_vs_bp_mnist", MNIST_COMMAND,
          ours=lambda r: (f"low {percent(r['summary']['rff_low_error_goodness'])} vs high "
                          f"{percent(r['summary']['rff_high_error_goodness'])}"),
          differs=lambda r: None if r["summary"]["rff_low_error_goodness"] < r["summary"]["rff_high_error_goodness"]
          else "low goodness did no better than high here",
          reproduced_when="low error < high error"),
)

EXPERIMENT = Experiment(
    name="rff-vs-bp", result="rff_vs_bp",
    help="recurrent (GLOM-like) Forward-Forward, both objectives, vs backprop", description=__doc__,
    code=(recurrent_ff, forward_forward, backprop, train, cuda_graphs), add_arguments=add_arguments,
    run_from_args=run_from_args,
    markdown=markdown, figures=figures,
    readme_figure=("rff_vs_bp_mnist", "rff_goodness_mnist.png",
                   "Recurrent FF: goodness per layer and step, right vs wrong labels"),
    claims=CLAIMS)
