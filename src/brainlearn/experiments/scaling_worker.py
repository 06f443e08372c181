"""One process of one case of the scaling benchmark (`brainlearn.experiments.scaling` starts it with torchrun):

    python -m brainlearn.experiments.scaling_worker CASE --train-size N --epochs E --out RESULT.json

trains the case and (rank 0) writes {"samples_per_s", "allreduce_s"} to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

from ..algorithms import BackpropConfig, ForwardForwardConfig
from ..data import load_dataset
from ..distributed import collective, init_from_env, shutdown
from ..pipeline import pipeline_fit
from ..train import TrainConfig, fit, make_learner
from .scaling import DATA_PARALLEL_NET, PIPELINE_NET


def worker(argv: list[str]) -> None:
    """One process: train the case, and (rank 0) write {"samples_per_s", "allreduce_s"} to --out."""
    parser = argparse.ArgumentParser(prog="python -m brainlearn.experiments.scaling_worker")
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


if __name__ == "__main__":
    worker(sys.argv[1:])
