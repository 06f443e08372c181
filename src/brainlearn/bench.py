"""Each local learner beside its backprop twin: same hidden sizes, data, budget, machine and process.

`ff_vs_bp` and `dbn_vs_bp` write `<name>_<dataset>.json` (machine, versions, seeds, command
line, configs, every epoch of every run), a Markdown table beside it, and PNG figures.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import sklearn
import torch

import brainlearn

from . import distillation, distributed, hardware, pipeline, plots, train, wave_rnn
from .algorithms import (BackpropConfig, DeepBeliefNetConfig, EquilibriumPropConfig, ForwardForwardConfig,
                         RecurrentFFConfig, backprop, boltzmann, eqprop, forward_forward, local, recurrent_ff)
from .algorithms.boltzmann import ais_betas, ais_log_partition
from .algorithms.base import error_rate, in_chunks
from .data import Dataset
from .train import TrainConfig, fit, make_learner

# Defaults per benchmark and data set, sized for about 45 minutes on 2 cores with 2 seeds (measured: FF 45 min,
# DBN 54 min on 1 thread beside another run).
# "mnist-full" is the paper's configuration. Each learner has its own learning rate. FF with
# Adam at 3e-3 was ahead after 4 epochs but stalled near 5% test error for 19 of 30 epochs,
# behind 1e-3 at every epoch.
NEVER = 2**62  # a step count no run reaches

PRESETS = {
    "ff-vs-bp": {
        "digits": {"hidden": (500, 500), "epochs": 60, "lr": 1e-3, "bp_lr": 1e-3},
        "mnist": {"hidden": (1000, 1000, 1000), "epochs": 30, "lr": 1e-3, "bp_lr": 1e-3},
        "mnist-full": {"hidden": (2000, 2000, 2000, 2000), "epochs": 60, "lr": 1e-3, "bp_lr": 1e-3},
    },
    "eqprop-vs-bp": {  # Scellier & Bengio 2017's settings in our units (see eqprop.py); epochs per architecture
        "digits": {"architectures": [
            {"hidden": (100,), "lr": (0.2, 0.1), "free_steps": 20, "nudged_steps": 4, "beta": 1.0,
             "nudging": "random", "epochs": 10}],
            "bp_lr": 1e-3, "batch_size": 20},
        "mnist": {"architectures": [
            {"hidden": (500,), "lr": (0.2, 0.1), "free_steps": 20, "nudged_steps": 4, "beta": 1.0,
             "nudging": "random", "epochs": 15},
            {"hidden": (500, 500), "lr": (0.8, 0.2, 0.02), "free_steps": 100, "nudged_steps": 6, "beta": 2.0,
             "nudging": "random", "epochs": 6}],
            "bp_lr": 1e-3, "batch_size": 20},
        "mnist-full": {"architectures": [
            {"hidden": (500,), "lr": (0.2, 0.1), "free_steps": 20, "nudged_steps": 4, "beta": 1.0,
             "nudging": "random", "epochs": 25},
            {"hidden": (500, 500), "lr": (0.8, 0.2, 0.02), "free_steps": 150, "nudged_steps": 6, "beta": 2.0,
             "nudging": "random", "epochs": 60}],
            "bp_lr": 1e-3, "batch_size": 20},
    },
    "ff-jitter": {  # Hinton 2022 sec. 3.3: 0.64% with jitter "after long training"; same budget with and without
        "digits": {"hidden": (500, 500), "epochs": 30, "lr": 1e-3, "bp_lr": 1e-3},
        "mnist": {"hidden": (1000, 1000), "epochs": 10, "lr": 1e-3, "bp_lr": 1e-3},
        "mnist-full": {"hidden": (2000, 2000, 2000, 2000), "epochs": 120, "lr": 1e-3, "bp_lr": 1e-3},
    },
    "local-vs-bp": {  # Hinton 2022 sec. 4: 32x32 maps, 3 units per pixel, 11x11 fields, 2 and 3 hidden layers
        "digits": {"maps": 2, "field": 5, "epochs": 5},
        "mnist": {"maps": 1, "field": 11, "epochs": 2},
        "cifar10": {"maps": 3, "field": 11, "epochs": 2},
    },
    "rff-vs-bp": {  # Hinton 2022 sec. 3.4: 8 damped iterations, goodness over steps 3-5; his net was larger
        "digits": {"hidden": (200, 200), "epochs": 20, "lr": 1e-3, "bp_lr": 1e-3},
        "mnist": {"hidden": (500, 500), "epochs": 10, "lr": 1e-3, "bp_lr": 1e-3},
        "mnist-full": {"hidden": (2000, 2000, 2000), "epochs": 60, "lr": 1e-3, "bp_lr": 1e-3},
    },
    # Hinton, Osindero & Teh 2006: 784-500-500-2000 with 10 label units on top. Its top RBM here keeps a
    # persistent sleep chain and adds the conditional term of Larochelle & Bengio 2008's hybrid. Momentum stays
    # 0.5: at the guide's switch to 0.9 the MNIST test error jumped from 3-5% to 20-35% (a CD-1 top RBM did not).
    "dbn-vs-bp": {
        "digits": {"hidden": (200, 200, 500), "epochs": 40, "lr": 0.05, "bp_lr": 1e-3, "top_sleep": "pcd",
                   "discriminative": 10.0, "momentum_warmup_steps": NEVER},
        "mnist": {"hidden": (500, 500, 2000), "epochs": 30, "lr": 0.05, "bp_lr": 1e-3, "top_sleep": "pcd",
                  "discriminative": 10.0, "momentum_warmup_steps": NEVER},
        "mnist-full": {"hidden": (500, 500, 2000), "epochs": 100, "lr": 0.05, "bp_lr": 1e-3, "top_sleep": "pcd",
                       "discriminative": 10.0, "momentum_warmup_steps": NEVER},
    },
}


# Keller, Sejnowski & Welling's adding-task table: T -> (iRNN MSE, iRNN steps to solve, wRNN MSE, wRNN steps).
PUBLISHED_ADDING = {100: ("1e-5", "14k", "4e-6", "300"), 200: ("4e-5", "22k", "2e-5", "1k"),
                    400: ("1e-4", "30k", "4e-5", "1k"), 700: ("0.16", "never", "4e-5", "3k"),
                    1000: ("0.16", "never", "6e-5", "2k")}


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


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def accelerator() -> dict:
    """The GPU a run may use, if any: its name and torch's CUDA version."""
    if not torch.cuda.is_available():
        return {}
    return {"accelerator": {"name": torch.cuda.get_device_name(), "cuda": torch.version.cuda,
                            "count": torch.cuda.device_count()}}


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
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "scikit-learn": sklearn.__version__, "brainlearn": brainlearn.__version__},
        "code_sha256": code_hashes(),
        **accelerator(),
    }


# The code each benchmark's numbers depend on: a change to one of these files makes its result stale.
BENCHMARK_CODE = {
    "ff_vs_bp": (forward_forward, backprop, train),
    "dbn_vs_bp": (boltzmann, backprop, train),
    "eqprop_vs_bp": (eqprop, backprop, train),
    "rff_vs_bp": (recurrent_ff, forward_forward, backprop, train),
    "ff_jitter": (forward_forward, backprop, train),
    "local_vs_bp": (local, recurrent_ff, forward_forward, backprop, train),
    "local_layer_speed": (local,),
    "wave_vs_irnn": (wave_rnn,),
    "scaling": (forward_forward, backprop, train, distributed, pipeline),
    "mortal": (forward_forward, backprop, train, hardware, distillation),
}


def code_hashes(benchmark: str | None = None) -> dict[str, str]:
    """A short hash of each file `benchmark`'s numbers depend on (of every such file if None): a result
    older than its code can be told apart."""
    modules = BENCHMARK_CODE[benchmark] if benchmark else dict.fromkeys(sum(BENCHMARK_CODE.values(), ()))
    return {module.__name__: hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:16]
            for module in modules}


def _run(algorithm: str, config, data: Dataset, train_config: TrainConfig, run_dir: Path | None, progress: bool):
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
        seed_config = TrainConfig(**{**asdict(train_config), "seed": seed})
        run = {"seed": seed}
        for algorithm, config in configs.items():
            run_dir = out_dir / "runs" / f"{name}-{data.name}-{algorithm}-seed{seed}" if keep_runs else None
            learners[algorithm], run[algorithm] = _run(algorithm, config, data, seed_config, run_dir, progress)
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


def write_result(name: str, dataset: str, command: str, started: dict, seeds: list[int], train_config: dict,
                 fields: dict, out_dir: Path, markdown_body) -> dict:
    """Write `<name>_<dataset>.json` (provenance + `fields`) and the Markdown `markdown_body` makes of it.

    `started` is `environment()` taken when the benchmark began, so the code hashes are those that ran.
    """
    result = {
        "benchmark": name, "dataset": dataset, "command": command, **started, "seeds": seeds,
        "train_config": train_config, **fields,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{name}_{dataset}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    stem.with_suffix(".md").write_text("\n".join(markdown_header(result)) + "\n" + markdown_body(result))
    figures_from_json(result, out_dir)
    return result


def figures_from_json(result: dict, out_dir: Path) -> list[tuple[Path, str]]:
    """Draw the figures a result's JSON holds the data for (learning curves, FF goodness histograms);
    the benchmark and `brainlearn report` both use this. Returns (path, caption) pairs."""
    name, dataset, seeds = result["benchmark"], result["dataset"], result["seeds"]
    title = f"{dataset}: test error, mean of {len(seeds)} seed(s)"
    figures = []
    if name == "ff_vs_bp":
        runs = result["runs"]
        curves = {"FF (softmax readout)": _curve(runs, "ff", "error_softmax"), "BP twin": _curve(runs, "bp", "error")}
        figures.append((plots.learning_curves(curves, out_dir / f"ff_vs_bp_{dataset}_curves.png", title),
                        "Forward-Forward vs its backprop twin: test error per epoch"))
        if "goodness_histograms" in runs[0]["ff"]:
            figures.append((plots.goodness_histograms(runs[0]["ff"]["goodness_histograms"],
                                                      out_dir / f"ff_goodness_{dataset}.png",
                                                      f"{dataset} test images, seed {seeds[0]}"),
                            "FF goodness per layer: right label (positive) vs hard wrong label (negative)"))
    elif name == "dbn_vs_bp":
        runs = result["runs"]
        curves = {"DBN (free energy of each label)": _curve(runs, "dbn", "error"),
                  "BP twin": _curve(runs, "bp", "error")}
        figures.append((plots.learning_curves(curves, out_dir / f"dbn_vs_bp_{dataset}_curves.png", title),
                        "Deep belief net vs its backprop twin: test error per epoch"))
    elif name == "wave_vs_irnn":
        for row in result["adding"]:
            curves = {label: [(h["step"], h["test_loss"]) for h in row[key]["history"]]
                      for key, label in (("irnn", "iRNN"), ("wrnn", "wRNN"))}
            path = out_dir / f"wave_vs_irnn_adding_T{row['length']}.png"
            figures.append((plots.learning_curves(curves, path, f"adding task, T = {row['length']}",
                                                  xlabel="training step", ylabel="test MSE", scale=1.0),
                            f"Adding task, T = {row['length']}: test MSE of the wave-RNN and the identity RNN"))
    elif name == "mortal":
        families = {}
        for row in result["faults"][1:]:
            families.setdefault(row["fault"], []).append(row)
        panels = {family: {"levels": [row["level"] for row in rows], "FF": [row["ff"]["error"] for row in rows],
                           "BP": [row["bp"]["error"] for row in rows]} for family, rows in families.items()}
        fault_free = {"FF": result["faults"][0]["ff"]["error"], "BP": result["faults"][0]["bp"]["error"]}
        figures.append((plots.fault_curves(panels, fault_free, out_dir / f"mortal_{dataset}.png",
                                           f"{dataset}: test error under each fault (dashed: none)"),
                        "FF vs BP on faulty hardware: test error against the fault's level"))
    elif name == "ff_jitter":
        runs, shift = result["runs"], result["jitter"]
        curves = {f"FF (softmax readout){suffix}": _curve(runs, f"ff_jitter{key}", "error_softmax")
                  for key, suffix in ((0, ""), (shift, ", jitter"))}
        curves.update({f"BP twin{suffix}": _curve(runs, f"bp_jitter{key}", "error")
                       for key, suffix in ((0, ""), (shift, ", jitter"))})
        figures.append((plots.learning_curves(curves, out_dir / f"ff_jitter_{dataset}_curves.png", title),
                        f"FF and BP with and without jitter (shifts of up to {shift} pixels): test error per epoch"))
    elif name == "rff_vs_bp":
        runs = result["runs"]
        curves = {f"recurrent FF, {objective} goodness (softmax readout)": _curve(runs, f"rff_{objective}",
                                                                                 "error_softmax")
                  for objective in result["objectives"]}
        curves["BP twin"] = _curve(runs, "bp", "error")
        figures.append((plots.learning_curves(curves, out_dir / f"rff_vs_bp_{dataset}_curves.png", title),
                        "Recurrent FF (each objective) vs its backprop twin: test error per epoch"))
        traces = {objective: runs[0][f"rff_{objective}"]["goodness_per_step"] for objective in result["objectives"]}
        figures.append((plots.goodness_per_step(traces, result["rff_config"]["test_window"],
                                                out_dir / f"rff_goodness_{dataset}.png",
                                                f"{dataset} test set, seed {seeds[0]}"),
                        "Recurrent FF: mean goodness per layer and step, right label vs wrong labels"))
    elif name == "eqprop_vs_bp":
        for arch in result["architectures"]:
            hidden = "-".join(map(str, arch["hidden"]))
            curves = {"EP (free phase)": _curve(arch["runs"], "eqprop", "error"),
                      "BP twin": _curve(arch["runs"], "bp", "error")}
            path = out_dir / f"eqprop_vs_bp_{dataset}_{hidden}_curves.png"
            figures.append((plots.learning_curves(curves, path, f"{dataset}, hidden {hidden}: test error"),
                            f"Equilibrium Propagation (hidden {hidden}) vs its backprop twin: test error per epoch"))
    return figures


# Figures that need the trained networks, so only a benchmark run draws them (through `trained_net_figure`),
# and the report finds them here: benchmark -> [(file pattern, caption)].
TRAINED_NET_FIGURES = {
    "ff_vs_bp": [("ff_receptive_fields_{dataset}.png", "FF first-layer weights (receptive fields)")],
    "dbn_vs_bp": [("dbn_dreams_{dataset}.png", "Dreams: each row has one label clamped in the top RBM"),
                  ("rbm_receptive_fields_{dataset}.png", "First RBM: receptive fields of hidden units")],
    "eqprop_vs_bp": [("eqprop_energy_{dataset}.png", "EP: mean energy over the free, then the nudged phase")],
    "wave_vs_irnn": [("wave_rnn_waves.png", "wRNN hidden state over time: inputs travel round the ring as waves")],
}


def trained_net_figure(benchmark: str, index: int, out_dir: Path, dataset: str) -> Path:
    """Where figure `index` of TRAINED_NET_FIGURES[benchmark] goes."""
    return out_dir / TRAINED_NET_FIGURES[benchmark][index][0].format(dataset=dataset)


def ff_vs_bp(data: Dataset, seeds: list[int], train_config: TrainConfig, ff_config: ForwardForwardConfig,
             bp_config: BackpropConfig, out_dir: Path, command: str, progress: bool = True,
             keep_runs: bool = False) -> dict:
    """Forward-Forward and its BP twin for every seed: test errors (both FF methods), speed, FLOP/s."""
    started, gflops = environment(), matmul_gflops(device=train.resolve_device(train_config.device))

    def measure(learners, run):
        ff = learners["ff"]
        run["ff"]["agreement_goodness_softmax"] = 1.0 - error_rate(ff.predict(data.x_test),
                                                                    ff.predict_softmax(data.x_test))
        if run["seed"] == seeds[0]:
            run["ff"]["goodness_histograms"] = goodness_histograms(ff, data)

    configs = {"ff": ff_config, "bp": bp_config}
    runs, learners = run_seeds("ff_vs_bp", data, seeds, train_config, configs, out_dir, progress, keep_runs, measure)
    sizes = (data.n_features, *ff_config.hidden)
    summary = {
        "ff_error_goodness": mean_over_runs(runs, "ff", "error_goodness"),
        "ff_error_softmax": mean_over_runs(runs, "ff", "error_softmax"),
        "bp_error": mean_over_runs(runs, "bp", "error"),
        "ff_agreement_goodness_softmax": mean_over_runs(runs, "ff", "agreement_goodness_softmax"),
        **timing_summary(runs, "ff", data, training_flops_per_sample("ff", sizes, data.n_classes)),
        **timing_summary(runs, "bp", data, training_flops_per_sample("bp", sizes, data.n_classes)),
        "matmul_gflops": gflops,
    }
    summary["ff_over_bp_time"] = summary["ff_seconds_per_epoch"] / summary["bp_seconds_per_epoch"]
    summary["ff_fraction_of_matmul"] = summary["ff_gflops"] / gflops
    summary["bp_fraction_of_matmul"] = summary["bp_gflops"] / gflops
    result = write_result("ff_vs_bp", data.name, command, started, seeds, asdict(train_config),
                          {**_configs(configs), "summary": summary, "runs": runs}, out_dir, _ff_markdown)
    plots.receptive_fields(_first_layer_images(learners["ff"].layers[0].weight.detach(), data), data.image_shape,
                           trained_net_figure("ff_vs_bp", 0, out_dir, data.name), "FF layer 1 (label pixels blanked)")
    return result


@torch.no_grad()
def goodness_histograms(ff, data: Dataset, bins: int = 40) -> list[dict]:
    """Per FF layer: histograms of the goodness of test images with their right label (positive) and with
    a hard wrong label drawn from the softmax, as in training (negative), on shared bins; theta beside them."""
    negative_labels = ff.negative_labels(data.y_test, ff.classifier(ff.features(data.x_test)))
    layers = []
    for theta, positive, negative in zip(
            ff.thetas, ff.activities(forward_forward.embed_label(data.x_test, data.y_test, data.n_classes)),
            ff.activities(forward_forward.embed_label(data.x_test, negative_labels, data.n_classes))):
        g_pos, g_neg = forward_forward.goodness(positive), forward_forward.goodness(negative)
        low, high = torch.quantile(torch.cat([g_pos, g_neg]), torch.tensor([0.005, 0.995])).tolist()
        edges = torch.linspace(low, high, bins + 1)  # the outer 1% falls into the end bins
        layers.append({"theta": theta, "edges": edges.tolist(),
                       "positive": torch.histogram(g_pos.clamp(low, high), edges).hist.tolist(),
                       "negative": torch.histogram(g_neg.clamp(low, high), edges).hist.tolist()})
    return layers


def ff_jitter(data: Dataset, seeds: list[int], train_config: TrainConfig, ff_config: ForwardForwardConfig,
              bp_config: BackpropConfig, out_dir: Path, command: str, progress: bool = True,
              keep_runs: bool = False, jitter: int = 2) -> dict:
    """FF and its BP twin trained on the same budget without and with jitter (shifts of up to `jitter` pixels)."""
    started = environment()
    configs = {"ff": ff_config, "bp": bp_config}
    runs = [{"seed": seed} for seed in seeds]
    for shift in (0, jitter):
        for merged, run in zip(runs, run_seeds(f"ff_jitter{shift}", data, seeds, replace(train_config, jitter=shift),
                                               configs, out_dir, progress, keep_runs)[0]):
            merged[f"ff_jitter{shift}"], merged[f"bp_jitter{shift}"] = run["ff"], run["bp"]
    summary = {}
    for shift in (0, jitter):
        summary.update({f"ff_jitter{shift}_error_goodness": mean_over_runs(runs, f"ff_jitter{shift}", "error_goodness"),
                        f"ff_jitter{shift}_error_softmax": mean_over_runs(runs, f"ff_jitter{shift}", "error_softmax"),
                        f"bp_jitter{shift}_error": mean_over_runs(runs, f"bp_jitter{shift}", "error"),
                        **timing_summary(runs, f"ff_jitter{shift}", data),
                        **timing_summary(runs, f"bp_jitter{shift}", data)})
    return write_result("ff_jitter", data.name, command, started, seeds, asdict(train_config),
                        {**_configs(configs), "jitter": jitter, "summary": summary, "runs": runs}, out_dir,
                        _jitter_markdown)


def rff_vs_bp(data: Dataset, seeds: list[int], train_config: TrainConfig, rff_config: RecurrentFFConfig,
              bp_config: BackpropConfig, out_dir: Path, command: str, progress: bool = True,
              keep_runs: bool = False, objectives: tuple[str, ...] = ("high", "low")) -> dict:
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
    return write_result("rff_vs_bp", data.name, command, started, seeds, asdict(train_config),
                        {"rff_config": asdict(rff_config), "bp_config": asdict(bp_config),
                         "objectives": list(objectives), "summary": summary, "runs": runs}, out_dir, _rff_markdown)


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


def local_vs_bp(data: Dataset, seeds: list[int], train_config: TrainConfig, depths: tuple[int, ...], maps: int,
                rff_config: RecurrentFFConfig, bp_lr: float, out_dir: Path, command: str, progress: bool = True,
                keep_runs: bool = False) -> dict:
    """Hinton's CIFAR-10 experiment: nets of locally connected layers (`maps` units at each pixel, each with its own
    field x field receptive field), recurrent FF vs BP with the same layers, for each depth; and the speed of a
    local layer against a dense layer with as many weights."""
    started = environment()
    channels, height, width = local.square_image(data.n_features)
    rows = []
    for depth in depths:
        hidden = (maps * height * width,) * depth
        configs = {"rff": replace(rff_config, hidden=hidden),
                   "bp": BackpropConfig(hidden=hidden, lr=bp_lr, local_field=rff_config.local_field)}
        runs, _ = run_seeds(f"local_{depth}_vs_bp", data, seeds, train_config, configs, out_dir, progress, keep_runs)
        summary = {"rff_error_goodness": mean_over_runs(runs, "rff", "error_goodness"),
                   "rff_error_softmax": mean_over_runs(runs, "rff", "error_softmax"),
                   "bp_error": mean_over_runs(runs, "bp", "error"),
                   **timing_summary(runs, "rff", data), **timing_summary(runs, "bp", data)}
        summary["rff_over_bp_time"] = summary["rff_seconds_per_epoch"] / summary["bp_seconds_per_epoch"]
        rows.append({"depth": depth, "hidden": list(hidden), "summary": summary, "runs": runs})
    speed = local_layer_speed(channels, maps, height, width, rff_config.local_field)
    return write_result("local_vs_bp", data.name, command, started, seeds, asdict(train_config),
                        {"rff_config": asdict(replace(rff_config, hidden=(maps * height * width,))), "maps": maps,
                         "depths": rows, "local_layer_speed": speed}, out_dir, _local_markdown)


def local_layer_speed(channels: int, maps: int, height: int, width: int, field: int, batch: int = 100,
                      repeats: int = 5) -> dict:
    """Training samples/s (forward and backward) of a locally connected layer, and of a dense layer with as many
    weights and the same input."""
    layer = local.LocallyConnected2d(channels, maps, height, width, field)
    weights = layer.weight.numel()
    dense = torch.nn.Linear(channels * height * width, max(1, weights // (channels * height * width)))
    x = torch.rand(batch, channels * height * width)

    def samples_per_s(module) -> float:
        module(x).square().mean().backward()  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            module(x).square().mean().backward()
        return batch * repeats / (time.perf_counter() - start)

    return {"local_weights": weights, "dense_weights": dense.weight.numel(), "batch": batch,
            "local_samples_per_s": samples_per_s(layer), "dense_samples_per_s": samples_per_s(dense)}


LOCAL_SPEED_SHAPES = {  # name: (input channels, units per pixel, side), as in the local-vs-bp presets
    "MNIST-sized": (1, 1, 28), "CIFAR-10-sized": (3, 3, 32)}


def local_speed_benchmark(field: int, batch: int, repeats: int, out_dir: Path, command: str) -> dict:
    """`local_layer_speed` at MNIST and CIFAR-10 sizes, on random inputs (speed does not depend on the data)."""
    started = environment()
    rows = [{"shape": name, "channels": channels, "maps": maps, "side": side,
             **local_layer_speed(channels, maps, side, side, field, batch, repeats)}
            for name, (channels, maps, side) in LOCAL_SPEED_SHAPES.items()]
    return write_result("local_layer_speed", "random", command, started, [], {"batch_size": batch, "repeats": repeats},
                        {"field": field, "rows": rows}, out_dir, _local_speed_markdown)


def dbn_vs_bp(data: Dataset, seeds: list[int], train_config: TrainConfig, dbn_config: DeepBeliefNetConfig,
              bp_config: BackpropConfig, out_dir: Path, command: str, progress: bool = True,
              keep_runs: bool = False, dreams_per_label: int = 20, dream_steps: int = 1000,
              dream_temperature: float = 2.0, ais_steps: int = 14500, ais_runs: int = 100) -> dict:
    """Deep belief net and its BP twin: test errors, speed, dreams judged by the twin, AIS log-likelihood.

    Dreams are made twice from the same seed: by the annealed chain (from `dream_temperature`) and, to show
    what annealing buys, by a chain at T = 1 throughout."""
    started = environment()
    labels = torch.arange(data.n_classes).repeat_interleave(dreams_per_label)
    binary_test = (data.x_test > 0.5).float()  # AIS: the first RBM's likelihood of binarised test images

    def measure(learners, run):
        dbn, bp = learners["dbn"], learners["bp"]
        for key, temperature in (("dream_agreement_unannealed", 1.0), ("dream_agreement", dream_temperature)):
            dreams = dbn.dream(labels, dream_steps, torch.Generator().manual_seed(run["seed"]), temperature)
            run["dbn"][key] = 1.0 - error_rate(bp.predict(dreams), labels)
        run["dbn"]["dreams"] = dreams  # the annealed ones, made last, go to the figure
        rbm = dbn.rbms[0]
        start = time.perf_counter()
        log_z, log_z_error = ais_log_partition(rbm, data.x_train.mean(0), ais_betas(ais_steps), ais_runs,
                                               torch.Generator().manual_seed(run["seed"]))
        run["dbn"]["ais"] = {
            "log_z": log_z, "log_z_standard_error": log_z_error, "steps": ais_steps, "runs": ais_runs,
            "seconds": time.perf_counter() - start,
            "test_log_likelihood": (-rbm.free_energy(binary_test).mean().item()) - log_z,
        }

    configs = {"dbn": dbn_config, "bp": bp_config}
    runs, learners = run_seeds("dbn_vs_bp", data, seeds, train_config, configs, out_dir, progress, keep_runs, measure)
    dreams = runs[0]["dbn"]["dreams"]
    for run in runs:  # images go to the figure, not the JSON
        del run["dbn"]["dreams"]
    summary = {
        "dbn_error": mean_over_runs(runs, "dbn", "error"),
        "bp_error": mean_over_runs(runs, "bp", "error"),
        "dream_agreement": mean_over_runs(runs, "dbn", "dream_agreement"),
        "dream_agreement_unannealed": mean_over_runs(runs, "dbn", "dream_agreement_unannealed"),
        "rbm1_test_log_likelihood": statistics.mean(r["dbn"]["ais"]["test_log_likelihood"] for r in runs),
        **timing_summary(runs, "dbn", data), **timing_summary(runs, "bp", data),
    }
    summary["dbn_over_bp_time"] = summary["dbn_seconds_per_epoch"] / summary["bp_seconds_per_epoch"]
    result = write_result("dbn_vs_bp", data.name, command, started, seeds, asdict(train_config),
                          {**_configs(configs), "dreams": {"per_label": dreams_per_label, "steps": dream_steps,
                                                           "start_temperature": dream_temperature},
                           "summary": summary, "runs": runs}, out_dir, _dbn_markdown)
    plots.image_grid(dreams.view(data.n_classes, dreams_per_label, -1)[:, :10], data.image_shape,
                     trained_net_figure("dbn_vs_bp", 0, out_dir, data.name),
                     f"Dreams with each label clamped, annealed from T = {dream_temperature:g} (seed {seeds[0]})",
                     row_labels=[str(c) for c in range(data.n_classes)])
    plots.receptive_fields(learners["dbn"].rbms[0].weight.T, data.image_shape,
                           trained_net_figure("dbn_vs_bp", 1, out_dir, data.name), "First RBM: weights of hidden units")
    return result


def eqprop_vs_bp(data: Dataset, seeds: list[int], train_configs: list[TrainConfig],
                 ep_configs: list[EquilibriumPropConfig], bp_lr: float, out_dir: Path, command: str,
                 progress: bool = True, keep_runs: bool = False,
                 test_steps: tuple[int, ...] = (5, 10, 20, 50, 100)) -> dict:
    """Equilibrium Propagation and its BP twin for each architecture (with its own training budget):
    errors, speed, relaxation cost, error vs free-phase steps, and the EP update against backprop through
    the relaxation for a range of beta."""
    started, gflops = environment(), matmul_gflops()
    architectures, energy_traces = [], {}
    for train_config, ep_config in zip(train_configs, ep_configs, strict=True):
        name = "-".join(map(str, ep_config.hidden))

        def measure(learners, run, ep_config=ep_config, name=name):
            ep = learners["eqprop"]
            run["eqprop"]["error_by_free_steps"] = {
                steps: error_rate(in_chunks(lambda part: ep.free_phase(part, steps)[-1].argmax(1), data.x_test),
                                  data.y_test) for steps in test_steps}
            run["eqprop"]["free_phase"] = free_phase_speed(ep, data.x_test[: train_config.batch_size], gflops)
            if run["seed"] == seeds[0]:
                energy_traces[name] = energy_trace(ep, data.x_test[:100], data.y_test[:100])
                worst = worst_fitted(ep, data.x_test, data.y_test, 20)
                run["eqprop"]["gradient_check"] = gradient_check(ep, data.x_test[worst], data.y_test[worst])

        configs = {"eqprop": ep_config, "bp": BackpropConfig(hidden=ep_config.hidden, lr=bp_lr)}
        runs, _ = run_seeds(f"eqprop_vs_bp_{name}", data, seeds, train_config, configs, out_dir, progress,
                            keep_runs, measure)
        summary = {
            "eqprop_error": mean_over_runs(runs, "eqprop", "error"), "bp_error": mean_over_runs(runs, "bp", "error"),
            **timing_summary(runs, "eqprop", data), **timing_summary(runs, "bp", data),
            "free_steps": ep_config.free_steps, "nudged_steps": ep_config.nudged_steps,
        }
        summary["eqprop_over_bp_time"] = summary["eqprop_seconds_per_epoch"] / summary["bp_seconds_per_epoch"]
        architectures.append({"hidden": list(ep_config.hidden), "config": asdict(ep_config),
                              "train_config": asdict(train_config), "summary": summary, "runs": runs})
    plots.energy_traces(energy_traces, trained_net_figure("eqprop_vs_bp", 0, out_dir, data.name))
    return write_result("eqprop_vs_bp", data.name, command, started, seeds, asdict(train_configs[0]),
                        {"matmul_gflops": gflops, "architectures": architectures}, out_dir, _eqprop_markdown)


def wave_vs_irnn(lengths: list[int], copy_delay: int, config: wave_rnn.SequenceTrainConfig, copy_steps: int,
                 channels: int, positions: int, irnn_hidden: int, solve_mse: float, out_dir: Path, command: str,
                 progress: bool = True, speed_length: int = 1000, speed_steps: int = 3) -> dict:
    """The wave-RNN and the identity RNN, same optimizer, clipping and budget: the adding task at each
    length (final test MSE, steps until the test MSE first falls to `solve_mse`), the copy task, training
    steps per second at `speed_length`, and the wRNN's hidden state over time (the waves)."""
    started = environment()
    out_dir.mkdir(parents=True, exist_ok=True)
    builders = {"irnn": lambda n_in, n_out: wave_rnn.IdentityRNN(n_in, irnn_hidden, n_out),
                "wrnn": lambda n_in, n_out: wave_rnn.WaveRNN(n_in, channels, positions, n_out)}

    def build(name: str, n_in: int, n_out: int):
        torch.manual_seed(config.seed)
        return builders[name](n_in, n_out)

    def train(name: str, model, task: str, length: int, task_config, solved) -> dict:
        run = wave_rnn.train_on_task(model, task, length, task_config, solved,
                                     desc=f"{name} {task} T={length}" if progress else None)
        run["parameters"] = sum(p.numel() for p in model.parameters())
        run["final"] = run["history"][-1] if run["history"] else None
        return run

    adding, wrnn, wrnn_length = [], None, None
    for length in lengths:
        row = {"length": length}
        for name in builders:
            model = build(name, 2, 1)
            row[name] = train(name, model, "adding", length, config, lambda loss, _: loss <= solve_mse)
            if name == "wrnn" and not row[name]["diverged"]:  # a diverged net's states are not finite
                wrnn, wrnn_length = model, length
        adding.append(row)
    copy_config = wave_rnn.SequenceTrainConfig(**{**asdict(config), "steps": copy_steps})
    copy = {name: train(name, build(name, 10, 10), "copy", copy_delay, copy_config, lambda _, acc: acc >= 0.99)
            for name in builders}
    speed = {}
    for name in builders:
        model = build(name, 2, 1)
        speed_config = wave_rnn.SequenceTrainConfig(**{**asdict(config), "steps": speed_steps,
                                                       "eval_every": speed_steps + 1, "eval_size": 1})
        speed[name] = wave_rnn.train_on_task(model, "adding", speed_length, speed_config)["steps_per_s"]
    if wrnn is not None:  # the longest T whose wRNN did not diverge
        x, _ = wave_rnn.adding_batch(wrnn_length, 1, torch.Generator().manual_seed(config.seed))
        plots.wave_image(wave_rnn.ring_states(wrnn, x)[:3], trained_net_figure("wave_vs_irnn", 0, out_dir, "sequences"),
                         f"wRNN hidden state on one adding sequence (T={wrnn_length}), after training")
    fields = {"models": {"irnn": {"hidden": irnn_hidden}, "wrnn": {"channels": channels, "positions": positions}},
              "solve_mse": solve_mse, "copy_delay": copy_delay, "copy_steps": copy_steps,
              "adding": adding, "copy": copy, "speed_length": speed_length, "steps_per_s": speed,
              "published_adding": {str(k): v for k, v in PUBLISHED_ADDING.items()}}
    return write_result("wave_vs_irnn", "sequences", command, started, [config.seed], asdict(config), fields,
                        out_dir, _wave_markdown)


def _configs(configs: dict) -> dict:
    return {f"{algorithm}_config": asdict(config) for algorithm, config in configs.items()}


def free_phase_speed(ep, x: torch.Tensor, gflops: float, repeats: int = 20) -> dict:
    """Seconds of one free phase on a training-size batch, and the matmul FLOP/s it reaches."""
    ep.free_phase(x)
    start = time.perf_counter()
    for _ in range(repeats):
        ep.free_phase(x)
    seconds = (time.perf_counter() - start) / repeats
    pairs = list(zip(ep.sizes[:-1], ep.sizes[1:]))
    per_step = sum(2 * 2 * a * b for a, b in pairs[1:])  # up and down through every weight above the input
    flops = len(x) * (2 * pairs[0][0] * pairs[0][1] + ep.config.free_steps * per_step)
    return {"batch": len(x), "steps": ep.config.free_steps, "seconds": seconds,
            "gflops": flops / seconds / 1e9, "fraction_of_matmul": flops / seconds / 1e9 / gflops}


def energy_trace(ep, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Mean energy E after every step of the free phase, then of the nudged phase (+beta) from its end."""
    target = torch.nn.functional.one_hot(y, ep.n_classes).float()
    states = [x.new_zeros(len(x), n) for n in ep.sizes[1:]]
    free, nudged = [], []
    for _ in range(ep.config.free_steps):
        states = ep.relax(x, states, 1)
        free.append(ep.energy(x, states).mean().item())
    for _ in range(ep.config.nudged_steps):
        states = ep.relax(x, states, 1, ep.config.beta, target)
        nudged.append(ep.energy(x, states).mean().item())
    return {"free": free, "nudged": nudged}


def worst_fitted(ep, x: torch.Tensor, y: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the `count` images with the largest free-phase cost on output units inside (0, 1).
    An output clipped at 0 or 1 passes no gradient, whether it sits on its target (a well-fitted image) or on
    the wrong bound (a confidently wrong one): only the cost of unclipped outputs can be checked."""
    target = torch.nn.functional.one_hot(y, ep.n_classes).float()
    output = in_chunks(lambda part: ep.free_phase(part)[-1], x)
    unclipped = (output > 0) & (output < 1)
    cost = 0.5 * ((output - target).pow(2) * unclipped).sum(1)
    return cost.argsort(descending=True)[:count]


def gradient_check(ep, x: torch.Tensor, y: torch.Tensor, steps: int = 3000,
                   betas: tuple[float, ...] = (0.5, 0.1, 0.01, 1e-3, 1e-4, 1e-5)) -> list[dict]:
    """EP's update against backprop through a converged relaxation, in float64, on the trained net. Each row
    records `residual`, the largest change of a state in one more free step: EP's theorem holds at a fixed
    point, and a 784-500-500 net trained here still moved by 1e-4 per step after 300 steps. The betas go
    down to 1e-5: a unit whose drive lies within about beta of a clip bound of the hard sigmoid crosses its
    kink in the nudged phase, which adds an error of order beta that symmetric nudging does not cancel."""
    net = type(ep)(ep.n_inputs, ep.n_classes, ep.config).double()
    net.load_state_dict(ep.state_dict())
    x, target = x.double(), torch.nn.functional.one_hot(y, ep.n_classes).double()
    params = [p for pair in zip(net.weights, net.biases) for p in pair]
    for p in params:
        p.requires_grad_(True)
    output = net.free_phase(x, steps)[-1]
    true = torch.cat([g.flatten() for g in torch.autograd.grad(
        0.5 * (output - target).pow(2).sum(1).mean(), params)])
    with torch.no_grad():
        free = net.free_phase(x, steps)
        residual = max((a - b).abs().max().item() for a, b in zip(free, net.relax(x, free, 1)))
        rows = []
        for symmetric in (False, True):
            for beta in betas:
                estimate = torch.cat([g.flatten() for g in net.ep_gradient(x, target, free, beta, symmetric, steps)])
                rows.append({"nudging": "symmetric" if symmetric else "one-sided", "beta": beta, "steps": steps,
                             "residual": residual,
                             "cosine": torch.nn.functional.cosine_similarity(estimate, true, dim=0).item(),
                             "relative_error": ((estimate - true).norm() / true.norm()).item()})
    return rows


def _first_layer_images(weight: torch.Tensor, data: Dataset) -> torch.Tensor:
    images = weight.clone()
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


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


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
        f"torch {result['versions']['torch']}, python {result['versions']['python']}",
        "",
    ]


def _speed_row(s: dict, a: str, b: str) -> list[str]:
    return [
        "",
        f"| speed (median epoch) | {a.upper()} | BP twin | {a.upper()} / BP |",
        "| --- | --- | --- | --- |",
        f"| seconds per epoch | {s[f'{a}_seconds_per_epoch']:.2f} | {s[f'{b}_seconds_per_epoch']:.2f} | "
        f"{s[f'{a}_over_bp_time']:.2f}x |",
        f"| training samples/s | {s[f'{a}_samples_per_s']:.0f} | {s[f'{b}_samples_per_s']:.0f} | |",
    ]


def _ff_markdown(result: dict) -> str:
    s = result["summary"]
    lines = [
        "| test error | FF, goodness of each label | FF, softmax on layers 2..N | BP twin |",
        "| --- | --- | --- | --- |",
        f"| mean over seeds | {percent(s['ff_error_goodness'])} | {percent(s['ff_error_softmax'])} | {percent(s['bp_error'])} |",
    ]
    for run in result["runs"]:
        f, b = run["ff"]["final"], run["bp"]["final"]
        lines.append(f"| seed {run['seed']} | {percent(f['error_goodness'])} | {percent(f['error_softmax'])} | "
                     f"{percent(b['error'])} |")
    lines += _speed_row(s, "ff", "bp") + [
        f"| matmul GFLOP/s reached | {s['ff_gflops']:.1f} ({percent(s['ff_fraction_of_matmul'])} of machine) | "
        f"{s['bp_gflops']:.1f} ({percent(s['bp_fraction_of_matmul'])}) | |",
        "",
        f"Machine's measured float32 matmul throughput: {s['matmul_gflops']:.1f} GFLOP/s. "
        f"The two FF evaluation methods agree on {percent(s['ff_agreement_goodness_softmax'])} of test images.",
        "",
    ]
    return "\n".join(lines)


def _rff_markdown(result: dict) -> str:
    s, first, last = result["summary"], *result["rff_config"]["test_window"]
    lines = [
        f"Recurrent FF: {result['rff_config']['iterations']} damped iterations, classification by goodness summed over "
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
              "| objective | label | " + " | ".join(f"step {t + 1}" for t in range(result["rff_config"]["iterations"]))
              + " |", "| --- " * (result["rff_config"]["iterations"] + 2) + "|"]
    for objective in result["objectives"]:
        trace = result["runs"][0][f"rff_{objective}"]["goodness_per_step"]
        for label in ("right", "wrong"):
            lines.append(f"| {objective} | {label} | " + " | ".join(f"{sum(step):.1f}" for step in trace[label]) + " |")
    lines.append("")
    return "\n".join(lines)


def _jitter_markdown(result: dict) -> str:
    s, shift = result["summary"], result["jitter"]
    lines = [f"Same budget with and without jitter (every training image shifted by up to {shift} pixels each way, "
             f"{(2 * shift + 1) ** 2} positions, drawn anew each epoch).", "",
             "| training images | FF, goodness of each label | FF, softmax | BP twin | FF s/epoch | BP s/epoch |",
             "| --- | --- | --- | --- | --- | --- |"]
    for key, label in ((0, "as they are"), (shift, f"jittered by up to {shift} pixels")):
        lines.append(f"| {label} | {percent(s[f'ff_jitter{key}_error_goodness'])} | "
                     f"{percent(s[f'ff_jitter{key}_error_softmax'])} | {percent(s[f'bp_jitter{key}_error'])} | "
                     f"{s[f'ff_jitter{key}_seconds_per_epoch']:.2f} | {s[f'bp_jitter{key}_seconds_per_epoch']:.2f} |")
    lines.append("")
    return "\n".join(lines)


def _local_markdown(result: dict) -> str:
    config, speed = result["rff_config"], result["local_layer_speed"]
    lines = [f"Every hidden layer: {result['maps']} unit(s) at each pixel, each with its own {config['local_field']}x"
             f"{config['local_field']} receptive field in the layer below (bottom-up, top-down); FF is the recurrent "
             f"net ({config['iterations']} iterations, goodness over steps {config['test_window'][0]}-"
             f"{config['test_window'][1]}, {config['objective']} goodness for positive data); BP trains the same "
             "local layers, feed-forward.", "",
             "| hidden layers | FF, goodness of each label | FF, softmax | BP twin | FF s/epoch | BP s/epoch |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in result["depths"]:
        s = row["summary"]
        lines.append(f"| {row['depth']} x {row['hidden'][0]} | {percent(s['rff_error_goodness'])} | "
                     f"{percent(s['rff_error_softmax'])} | {percent(s['bp_error'])} | "
                     f"{s['rff_seconds_per_epoch']:.1f} | "
                     f"{s['bp_seconds_per_epoch']:.1f} |")
    lines += ["", f"One locally connected layer ({speed['local_weights']} weights) trains on "
                  f"{speed['local_samples_per_s']:.0f} samples/s; a dense layer of the same input with "
                  f"{speed['dense_weights']} weights on {speed['dense_samples_per_s']:.0f} samples/s (batch "
                  f"{speed['batch']}, forward and backward).", ""]
    return "\n".join(lines)


def _local_speed_markdown(result: dict) -> str:
    field = result["field"]
    lines = [f"Training samples/s (forward and backward) of one locally connected layer ({field}x{field} receptive "
             "fields, no weight sharing) and of a dense layer with the same input and as many weights.", "",
             "| input | local layer: weights | samples/s | dense layer: weights | samples/s | dense / local |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        lines.append(f"| {row['shape']}: {row['channels']} x {row['side']} x {row['side']}, {row['maps']} unit(s) per "
                     f"pixel | {row['local_weights']} | {row['local_samples_per_s']:.0f} | {row['dense_weights']} | "
                     f"{row['dense_samples_per_s']:.0f} | {row['dense_samples_per_s'] / row['local_samples_per_s']:.1f}x |")
    lines.append("")
    return "\n".join(lines)


def _dbn_markdown(result: dict) -> str:
    s, dreams = result["summary"], result["dreams"]
    lines = [
        f"Dreams: {dreams['per_label']} per label, {dreams['steps']} Gibbs steps in the top RBM, each read by the BP "
        f"twin; annealed from T = {dreams['start_temperature']:g} to 1 over the first half, or at T = 1 throughout.",
        "",
        "| test error | DBN (lowest free energy over labels) | BP twin | dreams read as the clamped label, annealed "
        "| same, T = 1 throughout |",
        "| --- | --- | --- | --- | --- |",
        f"| mean over seeds | {percent(s['dbn_error'])} | {percent(s['bp_error'])} | {percent(s['dream_agreement'])} "
        f"| {percent(s['dream_agreement_unannealed'])} |",
    ]
    for run in result["runs"]:
        lines.append(f"| seed {run['seed']} | {percent(run['dbn']['final']['error'])} | "
                     f"{percent(run['bp']['final']['error'])} | {percent(run['dbn']['dream_agreement'])} | "
                     f"{percent(run['dbn']['dream_agreement_unannealed'])} |")
    lines += _speed_row(s, "dbn", "bp") + [
        "",
        "| first RBM, AIS | log Z | test log-likelihood (nats, binarised test images) | AIS steps x runs | seconds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run in result["runs"]:
        ais = run["dbn"]["ais"]
        lines.append(f"| seed {run['seed']} | {ais['log_z']:.2f} +- {ais['log_z_standard_error']:.2f} | "
                     f"{ais['test_log_likelihood']:.2f} | {ais['steps']} x {ais['runs']} | {ais['seconds']:.0f} |")
    lines.append("")
    return "\n".join(lines)


def _eqprop_markdown(result: dict) -> str:
    lines = [
        f"Measured float32 matmul throughput: {result['matmul_gflops']:.1f} GFLOP/s. Per-architecture configs "
        "are in the JSON.", "",
        "| architecture | epochs | EP test error | BP twin | free / nudged steps, beta, nudging | EP s/epoch "
        "| BP s/epoch "
        "| EP / BP time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arch in result["architectures"]:
        s = arch["summary"]
        lines.append(f"| {'-'.join(map(str, arch['hidden']))} | {arch['train_config']['epochs']} | "
                     f"{percent(s['eqprop_error'])} | {percent(s['bp_error'])} | "
                     f"{s['free_steps']} / {s['nudged_steps']}, {arch['config']['beta']}, "
                     f"{arch['config']['nudging']} | "
                     f"{s['eqprop_seconds_per_epoch']:.1f} | {s['bp_seconds_per_epoch']:.1f} | "
                     f"{s['eqprop_over_bp_time']:.2f}x |")
    lines += ["", "Test error by free-phase steps at test time (first seed), and the cost of one free phase:", "",
              "| architecture | " + " | ".join(f"T={t}" for t in result["architectures"][0]["runs"][0]["eqprop"][
                  "error_by_free_steps"]) + " | free phase (batch) | GFLOP/s | of machine |",
              "| --- " * (len(result["architectures"][0]["runs"][0]["eqprop"]["error_by_free_steps"]) + 4) + "|"]
    for arch in result["architectures"]:
        run = arch["runs"][0]["eqprop"]
        speed = run["free_phase"]
        lines.append(f"| {'-'.join(map(str, arch['hidden']))} | "
                     + " | ".join(percent(e) for e in run["error_by_free_steps"].values())
                     + f" | {1000 * speed['seconds']:.2f} ms ({speed['batch']}) | {speed['gflops']:.1f} | "
                       f"{percent(speed['fraction_of_matmul'])} |")
    lines += ["", "EP update vs backprop through the converged relaxation (trained net, float64, the 20 test images "
              "with the largest cost on unclipped outputs: a clipped output passes no gradient; each phase relaxed "
              "for `steps` steps, after which a state still moves by up to `residual` in one more step):",
              "", "| architecture | nudging | beta | cosine | relative error | steps | residual |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for arch in result["architectures"]:
        for row in arch["runs"][0]["eqprop"]["gradient_check"]:
            lines.append(f"| {'-'.join(map(str, arch['hidden']))} | {row['nudging']} | {row['beta']} | "
                         f"{row['cosine']:.5f} | {row['relative_error']:.5f} | {row['steps']} | {row['residual']:.1e} |")
    lines.append("")
    return "\n".join(lines)


def solved_text(run: dict) -> str:
    """When a sequence run was solved, and whether it diverged (its last evaluation is then its final MSE)."""
    solved = str(run["solved_at"]) if run["solved_at"] else f"not within {run['steps']}"
    if not run["diverged"]:
        return solved
    return f"{solved}, then diverged at step {run['steps'] + 1}" if run["solved_at"] else (
        f"diverged at step {run['steps'] + 1}")


def _wave_markdown(result: dict) -> str:
    models = result["models"]
    lines = [f"iRNN: {models['irnn']['hidden']} units. wRNN: {models['wrnn']['channels']} channels x "
             f"{models['wrnn']['positions']} positions. Solved: held-out test MSE <= {result['solve_mse']} "
             "(predicting the mean gives 0.167). Published figures: Keller, Sejnowski & Welling.", "",
             "| T | iRNN MSE | iRNN steps to solve | wRNN MSE | wRNN steps to solve | published iRNN MSE / steps "
             "| published wRNN MSE / steps |", "| --- | --- | --- | --- | --- | --- | --- |"]

    for row in result["adding"]:
        irnn, wrnn = row["irnn"], row["wrnn"]
        published = result["published_adding"].get(str(row["length"]), ["-"] * 4)
        lines.append(f"| {row['length']} | {irnn['final']['test_loss']:.2e} | {solved_text(irnn)} | "
                     f"{wrnn['final']['test_loss']:.2e} | {solved_text(wrnn)} | {published[0]} / {published[1]} | "
                     f"{published[2]} / {published[3]} |")
    lines += ["", f"Copy task, {result['copy_delay']} blank steps, {result['copy_steps']} training steps:", "",
              "| model | parameters | test cross-entropy | accuracy on the copied symbols | steps to 99% |",
              "| --- | --- | --- | --- | --- |"]
    for name, run in result["copy"].items():
        lines.append(f"| {name} | {run['parameters']} | {run['final']['test_loss']:.4f} | "
                     f"{percent(run['final']['test_metric'])} | {solved_text(run)} |")
    speed = result["steps_per_s"]
    lines += ["", f"Training steps per second at T = {result['speed_length']} (batch "
              f"{result['train_config']['batch_size']}): iRNN {speed['irnn']:.2f}, wRNN {speed['wrnn']:.2f}.", ""]
    return "\n".join(lines)
