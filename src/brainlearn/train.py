"""The one training loop, shared by every learner.

Per epoch: a seeded shuffle, minibatch `train_step`s under a progress bar, an optional
test evaluation, then an atomic checkpoint and one JSON line in `metrics.jsonl`. The data
order depends only on (seed, epoch) and the learner carries its own RNG, so `resume=True`
continues an interrupted run to exactly the result of an uninterrupted one.

The loop runs wherever the learner lives (`make_learner(..., device=)`): the data set is moved
there once, and nothing per step waits for the device. `train_step` returns its metrics as
device tensors; the loop sums them there (in float64, so the figures equal a sum of Python
floats) and reads them once per epoch. Divergence is checked every `DIVERGENCE_CHECK_EVERY`
steps and at the end of every epoch, before its checkpoint is written: a non-finite loss, or one
`TrainConfig.max_loss_growth` times the run's first, stops the run naming the step where it
happened and the last good checkpoint, which is kept. Each step runs through `cuda_graphs.StepRunner`: on CUDA
it is captured once as a CUDA graph and replayed, where the learner allows it (`graph_safe`).

Checkpoints are plain tensors and containers written with `torch.save` to a temporary file
and renamed into place; they are read with `torch.load(weights_only=True)`, which never
executes code from the file. They hold what resuming needs (optimizer and RNG state, the
history). At the end of a run the learner's weights alone are also exported to
`model.safetensors` (with its algorithm, sizes, data set and config as metadata), for any tool to
read. What a run folder guarantees (one writer, no clobbering) is in `runfolder`.

Under torchrun the same loop runs in every process (see `distributed`): each takes its share of
every global minibatch of the same permutation, metrics and test errors are combined across
processes, and rank 0 alone writes files.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from .algorithms import ALGORITHMS, Learner
from .cuda_graphs import StepRunner
from .data import Dataset
from .data.jitter import random_shifts, shift_images
from .distributed import World, data_parallel
from .runfolder import CHECKPOINT, METRICS, WEIGHTS, RunFolder, write_atomically

DIVERGENCE_CHECK_EVERY = 50  # steps between divergence checks (each one waits for the device once)
PROGRESS_REFRESH_S = 5.0  # the progress bar's postfix is refreshed at most this often


class DivergedError(RuntimeError):
    """Training produced a non-finite or exploding loss; the last good checkpoint is kept."""


class CheckpointError(ValueError):
    """A file that is not a brainlearn checkpoint or exported model, or one that does not fit the request."""


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
    device: str = field(default="auto", metadata={
        "help": "where to train: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N"})
    cuda_graphs: bool = field(default=True, metadata={
        "help": "on CUDA, capture the training step once as a CUDA graph and replay it (learners that allow it; "
                "see brainlearn.cuda_graphs); no effect on the CPU"})
    precision: str = field(default="fp32", metadata={
        "choices": ("fp32", "tf32"),
        "help": "float32 matmuls: fp32 (exact), or tf32 on CUDA (faster, 10-bit mantissa products)"})
    max_loss_growth: float = field(default=1e4, metadata={
        "help": "stop as diverged when a step's loss exceeds this many times the run's first loss (a blow-up "
                "that never reaches inf or NaN)"})

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")
        if self.jitter < 0:
            raise ValueError("jitter must be >= 0")
        if self.lr_schedule not in ("constant", "cooldown"):
            raise ValueError("lr_schedule must be 'constant' or 'cooldown'")
        if self.eval_every < 0:
            raise ValueError("eval_every must be >= 0")
        if not self.max_loss_growth > 1:
            raise ValueError("max_loss_growth must be > 1")
        if self.precision not in ("fp32", "tf32"):
            raise ValueError("precision must be 'fp32' or 'tf32'")
        try:
            torch.device(self.device if self.device != "auto" else "cpu")
        except RuntimeError as error:
            raise ValueError(f"device: {error}") from None


# What a resumed run may change: more epochs extend it (recorded in the checkpoint's "resumed" list), and
# it may continue on another device, with or without CUDA graphs. Anything else would make the checkpoint's record
# differ from what ran.
RESUMABLE_CHANGES = ("epochs", "device", "cuda_graphs")


def make_learner(algorithm: str, n_inputs: int, n_classes: int, config=None, seed: int = 0,
                 device: str | torch.device = "cpu") -> Learner:
    """Build a learner on `device`; the seed fixes its initial weights (drawn on the CPU, so they are the
    same on every device) and its own sampling (a generator on the device)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    torch.manual_seed(seed)
    learner = ALGORITHMS[algorithm](n_inputs, n_classes, config, seed=seed)
    return learner.to_device(torch.device(device), seed)


def resolve_device(name: str, processes: int | None = None) -> torch.device:
    """The device `name` means for this process.

    'auto': CUDA when there is a GPU for every process on this machine, else the CPU. 'cuda' in one of several
    processes on a machine (`processes`, by default torchrun's LOCAL_WORLD_SIZE) means this process's own GPU,
    cuda:LOCAL_RANK: NCCL needs one GPU per process. Refused with one line: CUDA without a GPU, fewer GPUs than
    processes, a GPU index the machine lacks, and one named GPU shared by several processes."""
    processes = processes if processes is not None else int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if name == "auto":
        name = "cuda" if 0 < gpus and processes <= gpus else "cpu"
    device = torch.device(name)
    if device.type != "cuda":
        return device
    if not gpus:
        raise ValueError(f"device {name}: no CUDA GPU is available here (torch {torch.__version__}, built "
                         f"{'with' if torch.version.cuda else 'without'} CUDA); use --device cpu")
    if device.index is not None and device.index >= gpus:
        raise ValueError(f"device {name}: this machine has {gpus} GPU(s)")
    if processes > 1 and device.index is not None:
        raise ValueError(f"device {name}: {processes} processes cannot share one GPU; give --device cuda "
                         "(one GPU per process) or --device cpu")
    if processes > gpus:
        raise ValueError(f"device {name}: {processes} processes on this machine need a GPU each and it has {gpus}; "
                         f"use --nproc {gpus} or --device cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if processes > 1 else device


def matmul_precision(precision: str) -> None:
    """fp32: exact float32 products everywhere; tf32: CUDA matmuls on TensorFloat-32 tensor cores."""
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"


def apply_lr_schedule(optimizers: list[torch.optim.Optimizer], schedule: str, progress: float) -> None:
    """Set every optimizer's learning rate for `progress` in [0, 1) of training: its initial one (kept
    in the param group, hence in checkpoints) times the schedule's multiplier. A learning rate held in a tensor
    (a CUDA graph's optimizer) is filled in place."""
    scale = 1.0 if schedule == "constant" else min(1.0, 2.0 * (1.0 - progress))
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(group["initial_lr"] * scale)
            else:
                group["lr"] = group["initial_lr"] * scale


def minibatches(n: int, config: TrainConfig, epoch: int, world: World = World(),
                device: torch.device = torch.device("cpu")) -> list[torch.Tensor]:
    """This process's minibatches (index tensors on `device`) of an epoch over `n` examples.

    One process: the permutation randperm(n) seeded by (seed, epoch), cut into batch_size pieces.
    Several: each takes every world.size-th index of that permutation (a DistributedSampler) in
    pieces of batch_size / world.size, so together they see the single process's minibatches.
    The permutation is the same on every device; it is copied to the device once per epoch."""
    sampler = DistributedSampler(range(n), num_replicas=world.size, rank=world.rank, seed=config.seed * 1_000_003)
    sampler.set_epoch(epoch)
    return list(torch.tensor(list(sampler)).to(device).split(config.batch_size // world.size))


def save_checkpoint(path: Path, payload: dict) -> None:
    write_atomically(path, lambda f: torch.save(payload, f))


def export_weights(learner: Learner, path: Path, dataset: str) -> None:
    """The learner's parameters and buffers as safetensors, with algorithm, sizes, data set and config as
    metadata: enough for `learner_from_file` to rebuild it."""
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in learner.state_dict().items()}
    metadata = {"format": "brainlearn-weights-1", "algorithm": learner.name, "n_inputs": str(learner.n_inputs),
                "n_classes": str(learner.n_classes), "dataset": dataset, "config": json.dumps(asdict(learner.config))}
    write_atomically(path, lambda f: f.write(safetensors.torch.save(tensors, metadata)))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint without executing anything stored in it."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except pickle.UnpicklingError:  # weights_only refused an object that could run code
        raise CheckpointError(f"{path} holds objects other than tensors and plain containers; brainlearn refuses "
                              "to load it, because loading it could run code from the file") from None
    except Exception as error:  # torch raises several types for a damaged or foreign file
        raise CheckpointError(f"{path} is not a readable brainlearn checkpoint: "
                              f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    if not isinstance(checkpoint, dict) or "algorithm" not in checkpoint or "state" not in checkpoint:
        raise CheckpointError(f"{path} is not a brainlearn checkpoint (a plain state dict or another program's "
                              "file?); give a checkpoint.pt or model.safetensors written by `brainlearn train`")
    if checkpoint["algorithm"] not in ALGORITHMS:
        raise CheckpointError(f"{path} holds a {checkpoint['algorithm']!r} run, an algorithm this version does not "
                              f"know ({', '.join(ALGORITHMS)})")
    return checkpoint


def config_from_dict(algorithm: str, values: dict):
    """A learner config from its stored fields (JSON turns tuples into lists)."""
    return ALGORITHMS[algorithm].Config(**{key: tuple(value) if isinstance(value, list) else value
                                           for key, value in values.items()})


def learner_from_checkpoint(checkpoint: dict, device: str | torch.device = "cpu") -> Learner:
    learner = make_learner(checkpoint["algorithm"], checkpoint["n_inputs"], checkpoint["n_classes"],
                           config_from_dict(checkpoint["algorithm"], checkpoint["learner_config"]),
                           checkpoint["train_config"]["seed"], device)
    learner.load_training_state(checkpoint["state"])
    return learner


def learner_from_file(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Learner, str]:
    """(learner, its data set's name) from a `checkpoint.pt` or an exported `model.safetensors`."""
    path = Path(path)
    if path.suffix != ".safetensors":
        checkpoint = load_checkpoint(path)
        return learner_from_checkpoint(checkpoint, device), checkpoint["dataset"]
    tensors, metadata = read_safetensors(path)
    if metadata.get("algorithm") not in ALGORITHMS or "config" not in metadata:
        raise CheckpointError(f"{path} is not a model exported by brainlearn (its metadata names no known algorithm)")
    learner = make_learner(metadata["algorithm"], int(metadata["n_inputs"]), int(metadata["n_classes"]),
                           config_from_dict(metadata["algorithm"], json.loads(metadata["config"])), 0, device)
    load_weights(learner, tensors, path)
    return learner, metadata.get("dataset", "")


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file (nothing in it is executed); a damaged or foreign file is a
    CheckpointError, a missing or unreadable one the OSError it raises."""
    try:
        with safetensors.safe_open(path, framework="pt") as file:
            return {name: file.get_tensor(name) for name in file.keys()}, file.metadata() or {}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable safetensors file: {error}") from None


def load_weights(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """`module`'s weights from `tensors` read from `path`; tensors that do not fit are a CheckpointError."""
    try:
        module.load_state_dict(tensors)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: its tensors do not fit the network its metadata describes "
                              f"({str(error).splitlines()[0]})") from None


def check_fits(learner: Learner, data: Dataset, source: str) -> None:
    """Refuse a data set whose images or classes do not match the learner's sizes."""
    if (data.n_features, data.n_classes) != (learner.n_inputs, learner.n_classes):
        raise CheckpointError(f"{source} expects {learner.n_inputs} inputs and {learner.n_classes} classes, but "
                              f"{data.name} has {data.n_features} and {data.n_classes}; give the data set it was "
                              "trained on (--dataset)")


def differences(stored: dict, requested: dict, keys=None) -> list[str]:
    """'name: stored -> requested' for every field whose value differs."""
    keys = stored.keys() if keys is None else [key for key in keys if key in stored]  # older checkpoints lack new keys
    return [f"{key}: {_plain(stored.get(key))!r} -> {_plain(requested.get(key))!r}" for key in sorted(keys)
            if _plain(stored.get(key)) != _plain(requested.get(key))]


def _plain(value):
    return list(value) if isinstance(value, (tuple, list)) else value


def check_resumable(checkpoint: dict, algorithm: str, learner_config, config: TrainConfig, dataset: str,
                    run_dir: Path) -> None:
    """Refuse to resume the stored run with other settings: the algorithm, data set and learner config must be
    the stored ones; of the training settings only `RESUMABLE_CHANGES` may differ, and epochs only grow."""
    if checkpoint["algorithm"] != algorithm:
        raise ValueError(f"{run_dir} holds a {checkpoint['algorithm']!r} run, not {algorithm!r}")
    changed = differences(checkpoint["learner_config"], asdict(learner_config))
    changed += differences(checkpoint["train_config"], asdict(config),
                           [f.name for f in fields(TrainConfig) if f.name not in RESUMABLE_CHANGES])
    if dataset != checkpoint["dataset"]:
        changed.append(f"dataset: {checkpoint['dataset']!r} -> {dataset!r}")
    if changed:
        raise ValueError(f"--resume continues the run in {run_dir} with its own settings; these differ from them: "
                         f"{'; '.join(changed)} (only --epochs and --device may change)")
    if config.epochs < checkpoint["epoch"]:
        raise ValueError(f"{run_dir} has already trained {checkpoint['epoch']} epochs; --epochs {config.epochs} "
                         "cannot shorten it")


def resume_state(checkpoint: dict, learner: Learner, data: Dataset, config: TrainConfig,
                 run_dir: Path) -> tuple[list, list]:
    """Check that the resumed run continues the stored one; returns its (history, resumes)."""
    check_resumable(checkpoint, learner.name, learner.config, config, data.name, run_dir)
    history, done = list(checkpoint["history"]), checkpoint["epoch"]
    resumes = list(checkpoint.get("resumed", []))
    if config.epochs != checkpoint["train_config"]["epochs"]:
        resumes.append({"at_epoch": done, "epochs": [checkpoint["train_config"]["epochs"], config.epochs]})
    return history, resumes


def fit(learner: Learner, data: Dataset, config: TrainConfig, run_dir: str | os.PathLike | None = None,
        resume: bool = False, progress: bool = True, world: World = World(), overwrite: bool = False) -> list[dict]:
    """Train `learner` on `data`; returns the per-epoch history (also logged to run_dir).

    `resume`: continue the run in `run_dir`; `overwrite`: replace the run there (else a fresh run into a
    folder holding one is refused). `world`: this process's place in a data-parallel run."""
    if config.batch_size % world.size:
        raise ValueError(f"batch_size {config.batch_size} (the global batch) must divide among {world.size} processes")
    run_dir = Path(run_dir) if run_dir is not None else None
    writes = run_dir is not None and world.is_main
    with RunFolder(run_dir) if writes else nullcontext() as folder:
        learner.to_device(resolve_device(config.device), config.seed)
        matmul_precision(config.precision)
        history, resumes, first_loss = [], [], None
        if resume:
            if run_dir is None or not (run_dir / CHECKPOINT).exists():
                raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT} in {run_dir}")
            checkpoint = load_checkpoint(run_dir / CHECKPOINT)
            history, resumes = resume_state(checkpoint, learner, data, config, run_dir)
            first_loss = checkpoint.get("first_loss")
            learner.load_training_state(checkpoint["state"])
        elif writes:
            folder.start_fresh(overwrite)
        if writes:  # the log always mirrors the checkpoint's history
            write_atomically(run_dir / METRICS, lambda f: f.write("".join(json.dumps(r) + "\n" for r in history).encode()))
        with data_parallel(learner, world):
            train_epochs(learner, data, config, history, resumes, first_loss, run_dir if writes else None, progress,
                         world)
        if writes:
            export_weights(learner, run_dir / WEIGHTS, data.name)
    return history


def train_epochs(learner: Learner, data: Dataset, config: TrainConfig, history: list[dict], resumes: list[dict],
                 first_loss: float | None, run_dir: Path | None, progress: bool, world: World) -> None:
    """Run the epochs still missing from `history`, appending a row and writing a checkpoint after each."""
    device = learner.device
    data = data.to(device)
    n = len(data.x_train)
    steps_per_epoch = math.ceil(math.ceil(n / world.size) / (config.batch_size // world.size))
    total_steps = config.epochs * steps_per_epoch
    show = progress and world.is_main
    run_step = StepRunner.for_learner(learner, config.cuda_graphs and world.size == 1, config.lr_schedule == "constant")
    for epoch in range(len(history), config.epochs):
        if world.size > 1:  # each process samples (negatives, Gibbs chains) its own way
            learner.generator.manual_seed((config.seed * 1_000_003 + epoch) * 65_537 + world.rank)
        learner.train()
        if config.jitter:  # one shift per training image, the same in every process and on resume
            shifts = random_shifts(n, config.jitter, torch.Generator().manual_seed(config.seed * 1_000_003 + epoch))
            shifts = shifts.to(device)
        start = time.perf_counter()
        bar = tqdm(minibatches(n, config, epoch, world, device), desc=f"{learner.name} epoch {epoch + 1}/{config.epochs}",
                   disable=not (show and sys.stderr.isatty()), leave=False, mininterval=PROGRESS_REFRESH_S)
        sums = None  # the metrics summed over the epoch's steps, one after the other
        losses: list[torch.Tensor] = []  # the step losses since the last divergence check
        for step, idx in enumerate(bar):
            apply_lr_schedule(learner.optimizers, config.lr_schedule, (epoch * steps_per_epoch + step) / total_steps)
            x = data.x_train[idx]
            if config.jitter:
                x = shift_images(x, data.image_shape, shifts[idx])
            metrics = run_step(x, data.y_train[idx])  # a float64 vector, in the order of run_step.names
            sums = metrics if sums is None else sums + metrics
            losses.append(metrics[run_step.names.index("loss")])
            if len(losses) == DIVERGENCE_CHECK_EVERY or step + 1 == len(bar):
                if first_loss is None:
                    first_loss = abs(losses[0].item()) or 1.0
                check_divergence(torch.stack(losses), step + 1 - len(losses), first_loss, config, learner,
                                 epoch, history, run_dir, world)
                bar.set_postfix(loss=f"{losses[-1].item():.4f}", refresh=False)
                losses = []
        seconds = time.perf_counter() - start
        means = world.mean((sums / steps_per_epoch).tolist())
        row = {"epoch": epoch + 1, **dict(zip(run_step.names, means)), "seconds": seconds, "samples_per_s": n / seconds}
        last = epoch + 1 == config.epochs
        if last or (config.eval_every and (epoch + 1) % config.eval_every == 0):
            learner.eval()
            x_test, y_test = world.shard(data.x_test), world.shard(data.y_test)
            row.update(world.combine(learner.evaluate(x_test, y_test, full=last), len(x_test), len(data.x_test)))
        history.append(row)
        if run_dir is not None:
            save_checkpoint(run_dir / CHECKPOINT, {
                "format": 1, "algorithm": learner.name, "n_inputs": learner.n_inputs,
                "n_classes": learner.n_classes, "dataset": data.name, "epoch": epoch + 1,
                "learner_config": asdict(learner.config), "train_config": asdict(config), "resumed": resumes,
                "first_loss": first_loss, "history": history, "state": learner.training_state(),
            })
            with open(run_dir / METRICS, "a") as log:
                log.write(json.dumps(row) + "\n")
        if show:
            shown = {k: round(v, 4) for k, v in row.items() if k.startswith(("loss", "error"))}
            tqdm.write(f"{learner.name} epoch {epoch + 1}: {shown} ({seconds:.1f}s)")


def check_divergence(losses: torch.Tensor, first_step: int, first_loss: float, config: TrainConfig,
                     learner: Learner, epoch: int, history: list[dict], run_dir: Path | None, world: World) -> None:
    """Stop if any of these step losses (steps first_step.. of the epoch, 0-based) is non-finite or beyond
    `max_loss_growth` times the run's first loss. One read from the device; every process stops together."""
    bad = ~torch.isfinite(losses) | (losses.abs() > config.max_loss_growth * first_loss)
    flags = world.mean(bad.double().tolist()) if world.size > 1 else bad.tolist()
    if not any(flags):
        return
    at = next(i for i, flag in enumerate(flags) if flag)
    loss = losses[at].item()
    where = (f"last good checkpoint: {run_dir / CHECKPOINT} (epoch {len(history)})"
             if run_dir is not None and history else "no checkpoint was written")
    what = f"loss = {loss}" if not math.isfinite(loss) else (
        f"loss = {loss:.4g}, over {config.max_loss_growth:g} times the first step's {first_loss:.4g}")
    raise DivergedError(f"{learner.name} diverged at epoch {epoch + 1}, step {first_step + at + 1}: {what}; "
                        f"{where}. Try a smaller learning rate.")


def chance_warning(history: list[dict], n_classes: int) -> str | None:
    """A warning when the final test errors are at chance level: the run learned nothing."""
    errors = {k: v for k, v in history[-1].items() if k.startswith("error")}
    chance = 1 - 1 / n_classes
    if errors and min(errors.values()) >= chance - 0.5 / n_classes:
        return (f"the final test error ({100 * min(errors.values()):.1f}%) is at chance level "
                f"({100 * chance:.0f}%): the run learned nothing; try a smaller learning rate")
    return None
