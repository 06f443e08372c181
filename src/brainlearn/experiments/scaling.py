"""Scaling benchmark: samples/s of FF and BP with 1 and 2 data-parallel processes, and the FF layer
pipeline against sequential training, on the same machine in one run.

    brainlearn bench scaling --data-dir DIR          # MNIST; --dataset digits for a quick look

Each case is a fresh `torchrun` (one thread per process, so 2 processes use the 2 cores that one
process with 2 threads would) training for `epochs` passes over the first `train_size` training
images; samples/s counts training steps only (not the test evaluation). Scaling efficiency =
(samples/s with N processes) / (N x samples/s with 1 process of 1 thread). One process with as many
threads is also timed: the speed-up a user gets without distributing at all.

Each process of a case runs `brainlearn.experiments.scaling_worker`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

from .. import cuda_graphs, distributed, pipeline, train
from ..algorithms import backprop, forward_forward
from ..arguments import add_data_arguments, add_output_arguments
from ..data import load_dataset
from ..distributed import torchrun_command
from ..train import TrainConfig
from .common import Claim, Experiment, environment, net_label, percent

DATA_PARALLEL_NET = (1000, 1000, 1000)  # the default MNIST net of `bench ff-vs-bp`
PIPELINE_NET = (1000, 1000)  # one stage per layer: 2 stages for 2 cores

def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser, default="mnist")
    parser.add_argument("--train-size", type=int, default=12000, help="training images per epoch (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per case (default: %(default)s)")
    add_output_arguments(parser, "do not name each case as it starts")


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict:
    if args.train_size < 100 or args.epochs < 1:
        parser.error("the scaling benchmark needs --train-size >= 100 and --epochs >= 1")
    load_dataset(args.dataset, args.data_dir, download=not args.no_download)  # every process then finds the files
    return run(args.dataset, args.data_dir, args.train_size, args.epochs, args.out_dir, command,
               progress=not args.quiet)


def run_case(case: str, nproc: int, threads: int, dataset: str, data_dir: Path | None, train_size: int,
             epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        argv = [case, "--dataset", dataset, "--train-size", str(train_size), "--epochs", str(epochs), "--out", str(out)]
        if data_dir is not None:
            argv += ["--data-dir", str(data_dir)]
        command = torchrun_command(nproc, argv, module="brainlearn.experiments.scaling_worker")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        finished = subprocess.run(command, env=env, capture_output=True, text=True)
        if finished.returncode != 0:
            raise RuntimeError(f"{case} with {nproc} process(es) failed:\n{finished.stderr[-3000:]}")
        return {"case": case, "processes": nproc, "threads_per_process": threads, **json.loads(out.read_text())}


def run(dataset: str, data_dir: Path | None, train_size: int, epochs: int, out_dir: Path, command: str,
        progress: bool = True) -> dict:
    started = environment()
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
    return EXPERIMENT.write(dataset, command, started, [0], train_config, fields, out_dir)


def markdown(result: dict) -> str:
    lines = [f"First {result['train_size']} {result['dataset']} training images, global batch "
             f"{result['train_config']['batch_size']}, {result['train_config']['epochs']} epochs per case; "
             f"data parallel: {net_label(result['data_parallel_net'])} hidden (FF with hard negatives); "
             f"pipeline: FF {net_label(result['pipeline_net'])} hidden, random negatives, one process "
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
        lines.append(f"| {label} | {row['speedup']:.2f}x | {percent(row['efficiency'])} | "
                     f"{row['threads_speedup']:.2f}x |")
    return "\n".join(lines) + "\n"


MNIST_COMMAND = "python benchmarks/scaling.py --data-dir DIR"

CLAIMS = (
    Claim("Scaling", "A layer pipeline speeds FF up without stale updates (backprop cannot)", "qualitative",
          "brainlearn; Hinton 2022 (each layer learns from its own input and output)", "scaling_mnist", MNIST_COMMAND,
          ours=lambda r: (f"{r['summary']['ff-pipeline']['speedup']:.2f}x with 2 stages on 2 cores "
                          f"({percent(r['summary']['ff-pipeline']['efficiency'])} efficiency)"),
          differs=lambda r: None if r["summary"]["ff-pipeline"]["speedup"] > 1 else "no speed-up",
          reproduced_when="faster than sequential training, with the same weights (tested)"),
    Claim("Scaling", "Data parallelism with torch.distributed speeds training up", "qualitative", "PyTorch DDP",
          "scaling_mnist", MNIST_COMMAND,
          ours=lambda r: (f"2 processes on 2 cores: FF {r['summary']['ff']['speedup']:.2f}x, BP (DDP) "
                          f"{r['summary']['bp']['speedup']:.2f}x; 1 process with 2 threads: FF "
                          f"{r['summary']['ff']['threads_speedup']:.2f}x"),
          differs=lambda r: None if min(r["summary"][k]["speedup"] for k in ("ff", "bp")) > 1 else (
              "on one 2-core machine the all-reduce of the weights competes with the compute for the cores"),
          reproduced_when="2 processes beat 1 for FF and BP"),
)

EXPERIMENT = Experiment(
    name="scaling", result="scaling",
    help="FF and BP with 1 and 2 data-parallel processes; the FF layer pipeline vs sequential", description=__doc__,
    code=(forward_forward, backprop, train, cuda_graphs, distributed, pipeline), add_arguments=add_arguments,
    run_from_args=run_from_args, markdown=markdown, claims=CLAIMS)
