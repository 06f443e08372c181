"""Forward-Forward beside its backprop twin: same MLP, data, budget, machine and process.

Writes `ff_vs_bp_<dataset>.json` (machine, versions, seeds, command line, configs, every
epoch of every run) and a Markdown table beside it, plus learning curves and FF's
first-layer receptive fields as PNG.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import sklearn
import torch

import brainlearn

from . import plots, train
from .algorithms import backprop, forward_forward
from .algorithms import BackpropConfig, ForwardForwardConfig
from .algorithms.base import error_rate
from .data import Dataset
from .train import TrainConfig, fit, make_learner

# Defaults per data set. The MNIST one fits in under 45 minutes on 2 cores with 2 seeds;
# "mnist-full" is Hinton's configuration (4 hidden layers of 2000, 60 epochs).
PRESETS = {
    "digits": {"hidden": (500, 500), "epochs": 60},
    "mnist": {"hidden": (1000, 1000, 1000), "epochs": 12},
    "mnist-full": {"hidden": (2000, 2000, 2000, 2000), "epochs": 60},
}


def matmul_gflops(size: int = 1024, repeats: int = 20) -> float:
    """This machine's float32 matmul throughput, measured now (GFLOP/s)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def training_flops_per_sample(algorithm: str, sizes: tuple[int, ...], n_classes: int) -> int:
    """Matmul FLOPs to train on one sample (2 per multiply-add).

    FF, per layer: neutral-label forward (1), positive and negative forward (2) and their
    weight gradients (2); plus the softmax head's forward and gradient. BP: forward, weight
    gradient, and input gradient for every layer but the first.
    """
    pairs = list(zip(sizes[:-1], sizes[1:]))
    if algorithm == "ff":
        readout = sum(sizes[2:]) if len(sizes) > 2 else sizes[1]
        return sum(2 * 5 * a * b for a, b in pairs) + 2 * 2 * readout * n_classes
    pairs.append((sizes[-1], n_classes))
    return sum(2 * 3 * a * b for a, b in pairs) - 2 * sizes[0] * sizes[1]


def environment() -> dict:
    return {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "scikit-learn": sklearn.__version__, "brainlearn": brainlearn.__version__},
        "code_sha256": {module.__name__: hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:16]
                        for module in (forward_forward, backprop, train)},
    }


def _run(algorithm: str, config, data: Dataset, train_config: TrainConfig, run_dir: Path | None, progress: bool):
    learner = make_learner(algorithm, data.n_features, data.n_classes, config, train_config.seed)
    history = fit(learner, data, train_config, run_dir=run_dir, progress=progress)
    seconds = [row["seconds"] for row in history]
    return learner, {
        "final": {k: v for k, v in history[-1].items() if k.startswith("error")},
        "seconds_per_epoch": statistics.mean(seconds),
        "samples_per_s": len(data.x_train) / statistics.mean(seconds),
        "history": history,
    }


def compare(data: Dataset, seeds: list[int], train_config: TrainConfig, ff_config: ForwardForwardConfig,
            out_dir: Path, command: str, progress: bool = True, keep_runs: bool = False) -> dict:
    """Train FF and its BP twin for every seed; write JSON, Markdown and figures to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bp_config = BackpropConfig(hidden=ff_config.hidden, lr=ff_config.lr)
    gflops = matmul_gflops()
    runs = []
    for seed in seeds:
        seed_config = TrainConfig(**{**asdict(train_config), "seed": seed})
        run_dirs = {a: out_dir / "runs" / f"{data.name}-{a}-seed{seed}" if keep_runs else None for a in ("ff", "bp")}
        ff, ff_result = _run("ff", ff_config, data, seed_config, run_dirs["ff"], progress)
        _, bp_result = _run("bp", bp_config, data, seed_config, run_dirs["bp"], progress)
        ff_result["agreement_goodness_softmax"] = 1.0 - error_rate(ff.predict(data.x_test), ff.predict_softmax(data.x_test))
        runs.append({"seed": seed, "ff": ff_result, "bp": bp_result})

    sizes = (data.n_features, *ff_config.hidden)
    mean = lambda values: statistics.mean(values)  # noqa: E731
    ff_seconds = mean([r["ff"]["seconds_per_epoch"] for r in runs])
    bp_seconds = mean([r["bp"]["seconds_per_epoch"] for r in runs])
    n_train = len(data.x_train)
    summary = {
        "ff_error_goodness": mean([r["ff"]["final"]["error_goodness"] for r in runs]),
        "ff_error_softmax": mean([r["ff"]["final"]["error_softmax"] for r in runs]),
        "bp_error": mean([r["bp"]["final"]["error"] for r in runs]),
        "ff_agreement_goodness_softmax": mean([r["ff"]["agreement_goodness_softmax"] for r in runs]),
        "ff_seconds_per_epoch": ff_seconds,
        "bp_seconds_per_epoch": bp_seconds,
        "ff_over_bp_time": ff_seconds / bp_seconds,
        "ff_samples_per_s": n_train / ff_seconds,
        "bp_samples_per_s": n_train / bp_seconds,
        "matmul_gflops": gflops,
        "ff_gflops": training_flops_per_sample("ff", sizes, data.n_classes) * n_train / ff_seconds / 1e9,
        "bp_gflops": training_flops_per_sample("bp", sizes, data.n_classes) * n_train / bp_seconds / 1e9,
    }
    summary["ff_fraction_of_matmul"] = summary["ff_gflops"] / gflops
    summary["bp_fraction_of_matmul"] = summary["bp_gflops"] / gflops
    result = {
        "benchmark": "ff_vs_bp", "dataset": data.name, "command": command,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **environment(), "seeds": seeds,
        "train_config": asdict(train_config), "ff_config": asdict(ff_config), "bp_config": asdict(bp_config),
        "summary": summary, "runs": runs,
    }
    stem = out_dir / f"ff_vs_bp_{data.name}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    stem.with_suffix(".md").write_text(markdown(result))
    plots.learning_curves(
        {"FF (softmax readout)": _curve(runs, "ff", "error_softmax"), "BP twin": _curve(runs, "bp", "error")},
        out_dir / f"ff_vs_bp_{data.name}_curves.png", f"{data.name}: test error, mean of {len(seeds)} seed(s)")
    plots.receptive_fields(_first_layer_images(ff.layers[0].weight, data), data.image_shape,
                           out_dir / f"ff_receptive_fields_{data.name}.png", "FF layer 1 (label pixels blanked)")
    return result


def _first_layer_images(weight: torch.Tensor, data: Dataset) -> torch.Tensor:
    images = weight.detach().clone()
    images[:, : data.n_classes] = 0.0  # those pixels carry the label, not the image
    return images


def _curve(runs: list[dict], algorithm: str, key: str) -> list[tuple[int, float]]:
    """Mean over seeds of the test error at every epoch where it was measured."""
    by_epoch: dict[int, list[float]] = {}
    for run in runs:
        for row in run[algorithm]["history"]:
            if key in row:
                by_epoch.setdefault(row["epoch"], []).append(row[key])
    return [(epoch, statistics.mean(values)) for epoch, values in sorted(by_epoch.items())]


def markdown(result: dict) -> str:
    s = result["summary"]
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    lines = [
        f"# Forward-Forward vs backprop twin on {result['dataset']}",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date']}; seeds {result['seeds']}; hidden {list(result['ff_config']['hidden'])}; "
        f"{result['train_config']['epochs']} epochs, batch {result['train_config']['batch_size']}, "
        f"lr schedule {result['train_config']['lr_schedule']}; FF negatives: {result['ff_config']['negatives']}  ",
        f"Machine: {result['machine']['processor']}, {result['machine']['cpu_count']} CPUs, "
        f"{result['machine']['torch_threads']} torch threads; torch {result['versions']['torch']}, "
        f"python {result['versions']['python']}",
        "",
        "| | FF, goodness of each label | FF, softmax on layers 2..N | BP twin |",
        "| --- | --- | --- | --- |",
        f"| test error (mean over seeds) | {pct(s['ff_error_goodness'])} | {pct(s['ff_error_softmax'])} | "
        f"{pct(s['bp_error'])} |",
    ]
    for run in result["runs"]:
        f, b = run["ff"]["final"], run["bp"]["final"]
        lines.append(f"| seed {run['seed']} | {pct(f['error_goodness'])} | {pct(f['error_softmax'])} | "
                     f"{pct(b['error'])} |")
    lines += [
        "",
        "| speed | FF | BP twin | FF / BP |",
        "| --- | --- | --- | --- |",
        f"| seconds per epoch | {s['ff_seconds_per_epoch']:.2f} | {s['bp_seconds_per_epoch']:.2f} | "
        f"{s['ff_over_bp_time']:.2f}x |",
        f"| training samples/s | {s['ff_samples_per_s']:.0f} | {s['bp_samples_per_s']:.0f} | |",
        f"| matmul GFLOP/s reached | {s['ff_gflops']:.1f} ({pct(s['ff_fraction_of_matmul'])} of machine) | "
        f"{s['bp_gflops']:.1f} ({pct(s['bp_fraction_of_matmul'])}) | |",
        "",
        f"Machine's measured float32 matmul throughput: {s['matmul_gflops']:.1f} GFLOP/s. "
        f"The two FF evaluation methods agree on {pct(s['ff_agreement_goodness_softmax'])} of test images.",
        "",
    ]
    return "\n".join(lines)
