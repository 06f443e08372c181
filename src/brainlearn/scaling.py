"""Scaling benchmark: samples/s of FF and BP with 1 and 2 data-parallel processes, and the FF layer
pipeline against sequential training, on the same machine in one run.

    brainlearn bench scaling --data-dir DIR          # MNIST; --dataset digits for a quick look

Each case is a fresh `torchrun` (one thread per process, so 2 processes use the 2 cores that one
process with 2 threads would) training for `epochs` passes over the first `train_size` training
images; samples/s counts training steps only (not the test evaluation). Scaling efficiency =
(samples/s with N processes) / (N x samples/s with 1 process of 1 thread). One process with as many
threads is also timed: the speed-up a user gets without distributing at all.

`python -m brainlearn.scaling CASE ...` is one process of one case (started by the benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.distributed as dist

from . import bench
from .algorithms import BackpropConfig, ForwardForwardConfig
from .data import load_dataset
from .distributed import collective, init_from_env, shutdown, torchrun_command
from .pipeline import pipeline_fit
from .train import TrainConfig, fit, make_learner

DATA_PARALLEL_NET = (1000, 1000, 1000)  # the default MNIST net of `bench ff-vs-bp`
PIPELINE_NET = (1000, 1000)  # one stage per layer: 2 stages for 2 cores


def worker(argv: list[str]) -> None:
    """One process: train the case, and (rank 0) write {"samples_per_s", "allreduce_s"} to --out."""
    parser = argparse.ArgumentParser(prog="python -m brainlearn.scaling")
    parser.add_argument("case", choices=("ff", "bp", "ff-pipeline", "ff-sequential"))
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--train-size", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    world = init_from_env()
    full = load_dataset(args.dataset, args.data_dir, download=False)
    data = replace(full, x_train=full.x_train[:args.train_size], y_train=full.y_train[:args.train_size],
                   x_test=full.x_test[:1000], y_test=full.y_test[:1000])  # the test pass is not timed
    train_config = TrainConfig(epochs=args.epochs, batch_size=100, eval_every=0)
    if args.case == "bp":
        learner = make_learner("bp", data.n_features, data.n_classes, BackpropConfig(hidden=DATA_PARALLEL_NET))
    elif args.case == "ff":
        learner = make_learner("ff", data.n_features, data.n_classes, ForwardForwardConfig(hidden=DATA_PARALLEL_NET))
    else:
        learner = make_learner("ff", data.n_features, data.n_classes,
                               ForwardForwardConfig(hidden=PIPELINE_NET, negatives="random"))
    result = {}
    if args.case == "ff-pipeline":
        result["samples_per_s"] = pipeline_fit(learner, data, train_config)["samples_per_s"]
    else:
        history = fit(learner, data, train_config, progress=False, world=world)
        result["samples_per_s"] = len(data.x_train) * args.epochs / sum(row["seconds"] for row in history)
        if world.size > 1:
            result["allreduce_s"] = allreduce_seconds(learner)
    if world.is_main:
        args.out.write_text(json.dumps(result))
    shutdown(world)


def allreduce_seconds(learner, repeats: int = 20) -> float:
    """Seconds of one all-reduce of every parameter (the communication of one data-parallel step)."""
    flat = torch.cat([p.detach().flatten() for p in learner.parameters()])
    collective(dist.all_reduce, flat)
    start = time.perf_counter()
    for _ in range(repeats):
        collective(dist.all_reduce, flat)
    return (time.perf_counter() - start) / repeats


def run_case(case: str, nproc: int, threads: int, dataset: str, data_dir: Path | None, train_size: int,
             epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        argv = [case, "--dataset", dataset, "--train-size", str(train_size), "--epochs", str(epochs), "--out", str(out)]
        if data_dir is not None:
            argv += ["--data-dir", str(data_dir)]
        command = torchrun_command(nproc, argv, module="brainlearn.scaling")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        finished = subprocess.run(command, env=env, capture_output=True, text=True)
        if finished.returncode != 0:
            raise RuntimeError(f"{case} with {nproc} process(es) failed:\n{finished.stderr[-3000:]}")
        return {"case": case, "processes": nproc, "threads_per_process": threads, **json.loads(out.read_text())}


def scaling_benchmark(dataset: str, data_dir: Path | None, train_size: int, epochs: int, out_dir: Path, command: str,
                      progress: bool = True) -> dict:
    started = bench.environment()
    out_dir.mkdir(parents=True, exist_ok=True)
    cores = min(2, os.cpu_count() or 1)
    plan = [(case, 1, 1) for case in ("ff", "bp")] + [(case, cores, 1) for case in ("ff", "bp")]
    plan += [(case, 1, cores) for case in ("ff", "bp")]
    plan += [("ff-sequential", 1, 1), ("ff-pipeline", len(PIPELINE_NET), 1), ("ff-sequential", 1, cores)]
    runs = []
    for case, nproc, threads in plan:
        if progress:
            print(f"{case}: {nproc} process(es) x {threads} thread(s)", flush=True)
        runs.append(run_case(case, nproc, threads, dataset, data_dir, train_size, epochs))

    def speed(case: str, nproc: int, threads: int) -> float:
        return next(r["samples_per_s"] for r in runs if (r["case"], r["processes"], r["threads_per_process"]) == (
            case, nproc, threads))

    summary = {}
    for case in ("ff", "bp"):
        single, parallel = speed(case, 1, 1), speed(case, cores, 1)
        summary[case] = {"speedup": parallel / single, "efficiency": parallel / (cores * single),
                         "threads_speedup": speed(case, 1, cores) / single}
    sequential, piped = speed("ff-sequential", 1, 1), speed("ff-pipeline", len(PIPELINE_NET), 1)
    summary["ff-pipeline"] = {"speedup": piped / sequential, "efficiency": piped / (len(PIPELINE_NET) * sequential),
                              "threads_speedup": speed("ff-sequential", 1, cores) / sequential}
    fields = {"data_parallel_net": list(DATA_PARALLEL_NET), "pipeline_net": list(PIPELINE_NET),
              "train_size": train_size, "runs": runs, "summary": summary}
    train_config = asdict(TrainConfig(epochs=epochs, batch_size=100, eval_every=0))
    return bench.write_result("scaling", dataset, command, started, [0], train_config, fields, out_dir,
                              scaling_markdown)


def scaling_markdown(result: dict) -> str:
    lines = [f"First {result['train_size']} {result['dataset']} training images, global batch "
             f"{result['train_config']['batch_size']}, {result['train_config']['epochs']} epochs per case; "
             f"data parallel: {'-'.join(map(str, result['data_parallel_net']))} hidden (FF with hard negatives); "
             f"pipeline: FF {'-'.join(map(str, result['pipeline_net']))} hidden, random negatives, one process "
             "per layer.", "",
             "| case | processes x threads | samples/s | all-reduce of all weights (s) |", "| --- | --- | --- | --- |"]
    for run in result["runs"]:
        allreduce = f"{run['allreduce_s']:.4f}" if "allreduce_s" in run else "-"
        lines.append(f"| {run['case']} | {run['processes']} x {run['threads_per_process']} | "
                     f"{run['samples_per_s']:.0f} | {allreduce} |")
    lines += ["", "| | speed-up with 2 processes (1 thread each) | scaling efficiency | speed-up of 1 process "
              "with 2 threads instead |", "| --- | --- | --- | --- |"]
    for name, row in result["summary"].items():
        label = {"ff": "FF data parallel", "bp": "BP data parallel (DDP)", "ff-pipeline": "FF layer pipeline"}[name]
        lines.append(f"| {label} | {row['speedup']:.2f}x | {bench.percent(row['efficiency'])} | "
                     f"{row['threads_speedup']:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    worker(sys.argv[1:])
