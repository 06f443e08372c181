"""One process of a data-parallel run, started by tests/test_distributed.py with torchrun's variables
(RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) set: trains each algorithm named on the command line for
one epoch of 400 digits and saves this rank's weights as OUT/ALGORITHM_rankR.pt. With --die, rank 1
exits at once and the others must stop with a clear error. With --pipeline, the processes are the
stages of a layer-pipelined FF net (one hidden layer of 32 each) and rank 0 saves it as OUT/pipeline.pt."""

import argparse
import os
from dataclasses import replace
from pathlib import Path

import torch

from brainlearn.algorithms import ForwardForwardConfig
from brainlearn.data import load_dataset
from brainlearn.distributed import init_from_env, shutdown
from brainlearn.pipeline import pipeline_fit
from brainlearn.train import TrainConfig, fit, make_learner

parser = argparse.ArgumentParser()
parser.add_argument("out", type=Path)
parser.add_argument("algorithms", nargs="*")
parser.add_argument("--die", action="store_true")
parser.add_argument("--timeout", type=float, default=60.0)
parser.add_argument("--pipeline", action="store_true")
args = parser.parse_args()
torch.set_num_threads(1)
world = init_from_env(args.timeout)
if args.die and world.rank == 1:
    os._exit(3)
digits = load_dataset("digits")
data = replace(digits, x_train=digits.x_train[:400], y_train=digits.y_train[:400])  # 8 whole batches
if args.pipeline:
    config = ForwardForwardConfig(hidden=(32,) * world.size, negatives="random")
    learner = make_learner("ff", data.n_features, data.n_classes, config, seed=0)
    pipeline_fit(learner, data, TrainConfig(epochs=1, batch_size=50, lr_schedule="cooldown"))
    if world.is_main:
        torch.save(learner.state_dict(), args.out / "pipeline.pt")
for algorithm in args.algorithms:
    learner = make_learner(algorithm, data.n_features, data.n_classes, seed=0)
    fit(learner, data, TrainConfig(epochs=1, batch_size=50), run_dir=args.out / algorithm, progress=False, world=world)
    torch.save(learner.state_dict(), args.out / f"{algorithm}_rank{world.rank}.pt")
shutdown(world)  # every rank leaves after the last collective, in order
