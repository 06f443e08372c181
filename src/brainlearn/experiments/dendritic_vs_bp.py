"""Dendritic cortical microcircuits beside their backprop twin on MNIST (Sacramento, Costa, Bengio & Senn 2018:
a 784-500-10 microcircuit learns MNIST to close to 2% test error, backprop about 1.5%, as issue 20 quotes the
paper; its text is not reachable from here, so the exact figures are not checked).

    brainlearn bench dendritic-vs-bp --dataset mnist --data-dir DIR          # 784-500-10, 30 epochs, 2 seeds: 14 min, 2 cores
    brainlearn bench dendritic-vs-bp --dataset mnist --data-dir DIR --full   # 784-500-10, 100 epochs: 55 min (the
                                                                             # paper's epochs are not known here)
    brainlearn bench dendritic-vs-bp --dataset mnist --data-dir DIR --jitter 1   # the first, images shifted: 21 min;
                                                                                 # with --full: 70 min

Both nets train with the same hidden sizes, data, epochs, minibatches (20 on MNIST) and seeds in one process; the
microcircuit with the steady-state dynamics (a feedforward pass and one top-down sweep per example, see
`dendritic`). After every epoch it also records, on 500 test images, the apical potentials' RMS without a target
(0 in the self-predicting state) and the cosine between each basal matrix's update and backprop's gradient (random
top-down weights: a feedback-alignment-like angle, reported, not assumed).
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import asdict, replace
from pathlib import Path

from .. import cuda_graphs, plots, train
from ..algorithms import BackpropConfig, DendriticConfig, backprop, dendritic
from ..data import Dataset
from ..train import TrainConfig
from .common import (Claim, Experiment, add_twin_arguments, configs_fields, curves_title, environment, mean_curve,
                     mean_over_runs, net_description, percent, run_seeds, speed_table, timing_summary, twin_setup)

# The learning rates (basal, bottom to top) were first chosen in short ad-hoc runs on 20,000 MNIST images (no result
# files): with the logistic rate function hidden rates of 0.3, 1, 3, 10, 30 and 100 reached 34.7%, 27.3%, 20.9%,
# 17.6%, 13.8% and 12.6% test error after 3 passes (the hidden layer's error signal is scaled down: see
# `dendritic`); the soft rectifier learned at none of (0.01, 0.003) to (0.3, 0.03). A 10-epoch sweep on all of MNIST
# (benchmarks/results/logs/dendritic_rates_sweep.log) then slowed the output (0.1 -> 0.05), doubled the
# interneurons' rate and the target (see `dendritic`'s docstring): 4.80% -> 3.15% after 10 epochs.
# Every preset uses the learner's default rates, set in `DendriticConfig` alone. On MNIST both nets take minibatches
# of 20: with plain SGD at the same rates per step the circuit's error fell at every budget against batch 100 (seed
# 0: 2.55% / 2.31% / 2.14% after 10 / 30 / 100 epochs, against 3.15% / 2.64% / 2.38%); batch 10 was no better
# (2.34% after 100; benchmarks/results/logs/dendritic_batch_sweep.log).
BASAL_LR = DendriticConfig.__dataclass_fields__["lr"].default
PRESETS = {
    "digits": {"hidden": (100,), "epochs": 20, "batch_size": 10, "lr": BASAL_LR, "bp_lr": 1e-3},
    "mnist": {"hidden": (500,), "epochs": 30, "batch_size": 20, "lr": BASAL_LR, "bp_lr": 1e-3},
    "mnist-full": {"hidden": (500,), "epochs": 100, "batch_size": 20, "lr": BASAL_LR, "bp_lr": 1e-3},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_twin_arguments(parser, "the basal learning rates eta_PP, bottom to top",
                       "784-500-10 for 100 epochs; the paper's epochs are not given here", lr_nargs="+")
    parser.add_argument("--top-down", choices=("random", "learned"), default="random",
                        help="top-down weights (default: %(default)s)")
    parser.add_argument("--jitter", type=int, default=0, metavar="N",
                        help="shift each training image by up to N pixels each way, drawn anew every epoch, for both "
                             "nets (data augmentation, beyond the paper's recipe); N > 0 writes "
                             "dendritic_vs_bp_<dataset>-jitterN.* beside the files without (default: %(default)s)")


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict:
    if args.jitter < 0:
        parser.error("--jitter must be >= 0")
    train_config, config, bp_config, data = twin_setup(args, parser, PRESETS, lambda chosen: DendriticConfig(
        hidden=tuple(chosen["hidden"]), lr=tuple(chosen["lr"]), top_down=args.top_down))
    if args.jitter:  # its own result files
        train_config = replace(train_config, jitter=args.jitter)
        data = replace(data, name=f"{data.name}-jitter{args.jitter}")
    return run(data, args.seeds, train_config, config, bp_config, args.out_dir, command, progress=not args.quiet,
               keep_runs=args.keep_runs)


def run(data: Dataset, seeds: list[int], train_config: TrainConfig, config: DendriticConfig,
        bp_config: BackpropConfig, out_dir: Path, command: str, progress: bool = True, keep_runs: bool = False) -> dict:
    started = environment()
    configs = {"dendritic": config, "bp": bp_config}
    runs, _ = run_seeds("dendritic_vs_bp", data, seeds, train_config, configs, out_dir, progress, keep_runs)
    summary = {"dendritic_error": mean_over_runs(runs, "dendritic", "error"),
               "bp_error": mean_over_runs(runs, "bp", "error"),
               **timing_summary(runs, "dendritic", data), **timing_summary(runs, "bp", data)}
    summary["dendritic_over_bp_time"] = summary["dendritic_seconds_per_epoch"] / summary["bp_seconds_per_epoch"]
    return EXPERIMENT.write(data.name, command, started, seeds, asdict(train_config),
                            {**configs_fields(configs), "summary": summary, "runs": runs}, out_dir)


def per_epoch(result: dict, key: str) -> list[tuple[int, float]]:
    """Mean over seeds of a quantity the microcircuit records every epoch."""
    return mean_curve(result["runs"], "dendritic", key)


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = ["| test error | microcircuit | BP twin |", "| --- | --- | --- |",
             f"| mean over seeds | {percent(s['dendritic_error'])} | {percent(s['bp_error'])} |"]
    lines += [f"| seed {run['seed']} | {percent(run['dendritic']['final']['error'])} | "
              f"{percent(run['bp']['final']['error'])} |" for run in result["runs"]]
    lines += speed_table(s, "dendritic", "bp")
    lines += ["", f"Microcircuit: {result['dendritic_config']['dynamics']} dynamics, "
              f"{result['dendritic_config']['top_down']} top-down weights, {result['dendritic_config']['activation']} "
              "rates. Per epoch, mean over seeds, on 500 test images:", "",
              "| epoch | test error | apical RMS, no target | " + " | ".join(
                  f"alignment with BP, layer {k + 1}" for k in range(len(result["dendritic_config"]["hidden"]) + 1))
              + " |", "| --- | --- | --- | " + " | ".join("---" for _ in result["dendritic_config"]["lr"]) + " |"]
    history = [run["dendritic"]["history"] for run in result["runs"]]
    for rows in zip(*history):
        keys = [key for key in rows[0] if key.startswith("alignment")]
        lines.append(f"| {rows[0]['epoch']} | {percent(statistics.mean(r['error'] for r in rows))} | "
                     f"{statistics.mean(r['apical_rms'] for r in rows):.2e} | " + " | ".join(
                         f"{statistics.mean(r[key] for r in rows):.3f}" for key in keys) + " |")
    return "\n".join(lines) + "\n"


def figures(result: dict, out_dir: Path) -> list[tuple[Path, str]]:
    curves = {"dendritic microcircuit": per_epoch(result, "error"),
              "BP twin": mean_curve(result["runs"], "bp", "error")}
    return [(plots.learning_curves(curves, out_dir / f"dendritic_vs_bp_{result['dataset']}_curves.png",
                                   curves_title(result)),
             "Dendritic microcircuit vs its backprop twin: test error per epoch")]


MNIST_COMMAND = "brainlearn bench dendritic-vs-bp --dataset mnist --data-dir DIR"


def gap(result: dict) -> str:
    """What the run shows about a gap to the paper: the last third of the error curve, the hidden alignment."""
    errors, alignment = per_epoch(result, "error"), per_epoch(result, "alignment_layer1")
    start = errors[-max(1, len(errors) // 3)]
    return (f"not reached with {net_description(result, 'dendritic_config')}: over epochs {start[0]}-{errors[-1][0]} "
            f"the test error went {percent(start[1])} -> {percent(errors[-1][1])}; the hidden layer's update "
            f"aligned with backprop's gradient to a cosine of {alignment[-1][1]:.2f} at the end "
            f"({result['dendritic_config']['top_down']} top-down weights). The credit assignment is not most of the "
            "gap: given backprop's exact feedback and interneurons held in the self-predicting state, the same circuit "
            "learned about as well (seed 0, batch 100, 30 and 100 epochs: "
            "benchmarks/results/logs/dendritic_feedback_diagnostic.log). Nor is the circuit's model: backprop with Adam "
            "on a net with its logistic rates and squared error reached 1.99% against the twin's 1.74% (seed 0, 30 "
            "epochs). What is left is how that model is optimised: with plain SGD at one rate backprop on it reached no "
            "better than 4.88% (rates 0.1 to 8), worse than the circuit with its per-layer rates (2.64%), and Adam on "
            "the circuit's local updates did not help (3.12% against 3.15% after 10 epochs; "
            "benchmarks/results/logs/dendritic_gap_factors.log). Smaller minibatches helped (batch 100 -> 20: 2.38% -> "
            f"2.14% after 100 epochs, seed 0; this run: {result['train_config']['batch_size']}); batch 10, momentum, "
            "weight decay and other rates did not (benchmarks/results/logs/dendritic_batch_sweep.log). Learned biases on "
            "the basal and interneuron dendrites helped a little (30 epochs, batch 20: 2.31% -> 2.22% for seed 0, "
            f"2.33% -> 2.28% for seed 1; this run: {'with' if result['dendritic_config'].get('bias') else 'without'} "
            "biases), a standardised or centred input no more than one seed can tell (at 100 epochs the "
            "standardised one ended at 2.31% and 2.25%), nor did 200 epochs instead of 100 (2.20%, seed 0; "
            "benchmarks/results/logs/dendritic_bias_sweep.log)")


def augmentation(result: dict) -> str:
    """What a jittered run did beyond the paper's recipe (nothing for a run without jitter)."""
    jitter = result["train_config"].get("jitter", 0)
    return (f", both nets' training images shifted by up to {jitter} pixel(s) each way: augmentation the paper did "
            "not use") if jitter else ""


CLAIMS = (
    Claim("Dendritic microcircuits", "A dendritic cortical microcircuit (784-500-10) learns MNIST with local "
          "plasticity and no separate phases", "close to 2% (backprop about 1.5%)", "Sacramento et al. 2018",
          "dendritic_vs_bp_mnist", MNIST_COMMAND,
          ours=lambda r: (f"{percent(r['summary']['dendritic_error'])}; BP twin {percent(r['summary']['bp_error'])} "
                          f"({net_description(r, 'dendritic_config')})" + augmentation(r)),
          differs=lambda r: None if r["summary"]["dendritic_error"] <= 0.02 else gap(r),
          reproduced_when="error <= 2.0%", paper_result="dendritic_vs_bp_mnist-full",
          also_results=("dendritic_vs_bp_mnist-jitter1", "dendritic_vs_bp_mnist-full-jitter1")),
)

EXPERIMENT = Experiment(
    name="dendritic-vs-bp", result="dendritic_vs_bp",
    help="dendritic cortical microcircuits vs backprop: test error, speed, apical potentials, alignment",
    description=__doc__, code=(dendritic, backprop, train, cuda_graphs), add_arguments=add_arguments,
    run_from_args=run_from_args, markdown=markdown, figures=figures, claims=CLAIMS)
