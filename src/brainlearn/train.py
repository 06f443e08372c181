"""The one training loop, shared by every learner.

Per epoch: a seeded shuffle, minibatch `train_step`s under a progress bar, an optional
test evaluation, then an atomic checkpoint and one JSON line in `metrics.jsonl`. The data
order depends only on (seed, epoch) and the learner carries its own RNG, so `resume=True`
continues an interrupted run to exactly the result of an uninterrupted one.

Checkpoints are plain tensors and containers written with `torch.save` to a temporary file
and renamed into place; they are read with `torch.load(weights_only=True)`, which never
executes code from the file. They hold what resuming needs (optimizer and RNG state, the
history). At the end of a run the learner's weights alone are also exported to
`model.safetensors` (with its algorithm and config as metadata), for any tool to read.

Under torchrun the same loop runs in every process (see `distributed`): each takes its share of
every global minibatch of the same permutation, metrics and test errors are combined across
processes, and rank 0 alone writes files.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import safetensors.torch
import torch
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from .algorithms import ALGORITHMS, Learner
from .data import Dataset
from .data.jitter import random_shifts, shift_images
from .distributed import World, prepare

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
WEIGHTS = "model.safetensors"


class DivergedError(RuntimeError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    epochs: int = field(default=20, metadata={"help": "passes over the training set"})
    batch_size: int = field(default=100, metadata={"help": "minibatch size"})
    seed: int = field(default=0, metadata={"help": "seed of initial weights, data order and sampling"})
    lr_schedule: str = field(default="constant", metadata={
        "choices": ("constant", "cooldown"),
        "help": "'cooldown': constant for the first half, then linearly to 0 (as in Hinton's FF code)"})
    eval_every: int = field(default=1, metadata={
        "help": "evaluate (quick methods) on the test set every N epochs; 0: only at the end"})
    jitter: int = field(default=0, metadata={
        "help": "shift each training image by up to N pixels each way, drawn anew every epoch (Hinton's "
                "jitter: N=2 gives 25 positions); 0: off"})

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")
        if self.jitter < 0:
            raise ValueError("jitter must be >= 0")
        if self.lr_schedule not in ("constant", "cooldown"):
            raise ValueError("lr_schedule must be 'constant' or 'cooldown'")
        if self.eval_every < 0:
            raise ValueError("eval_every must be >= 0")


def make_learner(algorithm: str, n_inputs: int, n_classes: int, config=None, seed: int = 0) -> Learner:
    """Build a learner; the seed fixes its initial weights and its own sampling."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    torch.manual_seed(seed)
    return ALGORITHMS[algorithm](n_inputs, n_classes, config, seed=seed)


def apply_lr_schedule(optimizers: list[torch.optim.Optimizer], schedule: str, progress: float) -> None:
    """Set every optimizer's learning rate for `progress` in [0, 1) of training: its initial one (kept
    in the param group, hence in checkpoints) times the schedule's multiplier."""
    scale = 1.0 if schedule == "constant" else min(1.0, 2.0 * (1.0 - progress))
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * scale


def minibatches(n: int, config: TrainConfig, epoch: int, world: World = World()) -> list[torch.Tensor]:
    """This process's minibatches (index tensors) of an epoch over `n` examples.

    One process: the permutation randperm(n) seeded by (seed, epoch), cut into batch_size pieces.
    Several: each takes every world.size-th index of that permutation (a DistributedSampler) in
    pieces of batch_size / world.size, so together they see the single process's minibatches."""
    sampler = DistributedSampler(range(n), num_replicas=world.size, rank=world.rank, seed=config.seed * 1_000_003)
    sampler.set_epoch(epoch)
    return list(torch.tensor(list(sampler)).split(config.batch_size // world.size))


def write_atomically(path: Path, write) -> None:
    """`write(file)` into a temporary file beside `path`, then rename: a crash leaves the old file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def save_checkpoint(path: Path, payload: dict) -> None:
    write_atomically(path, lambda f: torch.save(payload, f))


def export_weights(learner: Learner, path: Path) -> None:
    """The learner's parameters and buffers as safetensors, with algorithm, sizes and config as metadata."""
    tensors = {name: tensor.contiguous() for name, tensor in learner.state_dict().items()}
    metadata = {"algorithm": learner.name, "n_inputs": str(learner.n_inputs), "n_classes": str(learner.n_classes),
                "config": json.dumps(asdict(learner.config))}
    write_atomically(path, lambda f: f.write(safetensors.torch.save(tensors, metadata)))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint without executing anything stored in it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several types for a damaged or foreign file
        raise ValueError(f"{path} is not a readable brainlearn checkpoint: {error}") from error


def learner_from_checkpoint(checkpoint: dict) -> Learner:
    algorithm = ALGORITHMS[checkpoint["algorithm"]]
    learner = make_learner(checkpoint["algorithm"], checkpoint["n_inputs"], checkpoint["n_classes"],
                           algorithm.Config(**checkpoint["learner_config"]), checkpoint["train_config"]["seed"])
    learner.load_training_state(checkpoint["state"])
    return learner


def fit(learner: Learner, data: Dataset, config: TrainConfig, run_dir: str | os.PathLike | None = None,
        resume: bool = False, progress: bool = True, world: World = World()) -> list[dict]:
    """Train `learner` on `data`; returns the per-epoch history (also logged to run_dir).

    `world`: this process's place in a data-parallel run (default: a single process)."""
    if config.batch_size % world.size:
        raise ValueError(f"batch_size {config.batch_size} (the global batch) must divide among {world.size} processes")
    run_dir = Path(run_dir) if run_dir is not None else None
    writes = run_dir is not None and world.is_main
    history: list[dict] = []
    if resume:
        if run_dir is None or not (run_dir / CHECKPOINT).exists():
            raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT} in {run_dir}")
        checkpoint = load_checkpoint(run_dir / CHECKPOINT)
        if checkpoint["algorithm"] != learner.name:
            raise ValueError(f"{run_dir} holds a {checkpoint['algorithm']!r} run, not {learner.name!r}")
        learner.load_training_state(checkpoint["state"])
        history = list(checkpoint["history"])
    prepare(learner, world)
    if writes:  # the log always mirrors the checkpoint's history
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / METRICS).write_text("".join(json.dumps(row) + "\n" for row in history))

    n = len(data.x_train)
    steps_per_epoch = math.ceil(math.ceil(n / world.size) / (config.batch_size // world.size))
    total_steps = config.epochs * steps_per_epoch

    for epoch in range(len(history), config.epochs):
        if world.size > 1:  # each process samples (negatives, Gibbs chains) its own way
            learner.generator.manual_seed((config.seed * 1_000_003 + epoch) * 65_537 + world.rank)
        sums: dict[str, float] = {}
        learner.train()
        if config.jitter:  # one shift per training image, the same in every process and on resume
            shifts = random_shifts(n, config.jitter, torch.Generator().manual_seed(config.seed * 1_000_003 + epoch))
        start = time.perf_counter()
        bar = tqdm(minibatches(n, config, epoch, world),
                   desc=f"{learner.name} epoch {epoch + 1}/{config.epochs}", disable=not (progress and world.is_main),
                   leave=False)
        for step, idx in enumerate(bar):
            apply_lr_schedule(learner.optimizers, config.lr_schedule, (epoch * steps_per_epoch + step) / total_steps)
            x = data.x_train[idx]
            if config.jitter:
                x = shift_images(x, data.image_shape, shifts[idx])
            metrics = learner.train_step(x, data.y_train[idx])
            metrics["loss"], = world.mean([metrics["loss"]])  # every process sees a divergence at once
            if not math.isfinite(metrics["loss"]):
                where = (f"last good checkpoint: {run_dir / CHECKPOINT} (epoch {len(history)})"
                         if run_dir is not None and history else "no checkpoint was written")
                raise DivergedError(f"{learner.name} diverged at epoch {epoch + 1}, step {step + 1}: "
                                    f"loss = {metrics['loss']}; {where}. Try a smaller learning rate.")
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
        seconds = time.perf_counter() - start
        means = world.mean([v / steps_per_epoch for v in sums.values()])
        row = {"epoch": epoch + 1, **dict(zip(sums, means)), "seconds": seconds, "samples_per_s": n / seconds}
        last = epoch + 1 == config.epochs
        if last or (config.eval_every and (epoch + 1) % config.eval_every == 0):
            learner.eval()
            x_test, y_test = world.shard(data.x_test), world.shard(data.y_test)
            row.update(world.combine(learner.evaluate(x_test, y_test, full=last), len(x_test), len(data.x_test)))
        history.append(row)
        if writes:
            save_checkpoint(run_dir / CHECKPOINT, {
                "format": 1, "algorithm": learner.name, "n_inputs": learner.n_inputs,
                "n_classes": learner.n_classes, "dataset": data.name, "epoch": epoch + 1,
                "learner_config": asdict(learner.config), "train_config": asdict(config),
                "history": history, "state": learner.training_state(),
            })
            with open(run_dir / METRICS, "a") as log:
                log.write(json.dumps(row) + "\n")
        if progress and world.is_main:
            shown = {k: round(v, 4) for k, v in row.items() if k.startswith(("loss", "error"))}
            tqdm.write(f"{learner.name} epoch {epoch + 1}: {shown} ({seconds:.1f}s)")
    if writes:
        export_weights(learner, run_dir / WEIGHTS)
    return history
