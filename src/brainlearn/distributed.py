"""Data parallel training with torch.distributed, launched by torchrun.

    torchrun --nproc-per-node 2 -m brainlearn train ff --dataset mnist ...   # or: brainlearn train --nproc 2 ff ...

runs `fit` once per process. Every process walks the same seeded permutation of the training set as
a single process would (a DistributedSampler) and takes its share of each global minibatch, so
`--batch-size` is the global batch. The updates are averaged across processes before they are applied:

* backprop: DistributedDataParallel, which all-reduces gradients in buckets while the backward runs;
* the local learners (FF, DBN, EP): each optimizer all-reduces the update its layer computed locally
  (the `.grad` the learner set, from its own layer's information only) just before it steps. FF's
  layers each reduce on their own: no gradient crosses a layer, so nothing else needs to be shared.

The loop averages the metrics over processes, computes test errors on shards and combines them,
and lets rank 0 alone write checkpoints. A checkpoint holds nothing rank-specific, so a run resumes
with any number of processes. Each rank's own sampling (FF's negative labels, Gibbs chains) is
reseeded every epoch from (seed, epoch, rank). Collectives time out: a rank that dies makes the
others stop with a `DistributedError` instead of hanging.

The backend is gloo for CPU tensors (all of brainlearn's training), with NCCL for CUDA tensors
where a GPU exists.
"""

from __future__ import annotations

import datetime
import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


class DistributedError(RuntimeError):
    """Another process failed or stopped answering; this one stops too."""


@dataclass(frozen=True)
class World:
    """This process's place among those training together; World() is a single process."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, values: list[float]) -> list[float]:
        """Each value averaged over the processes."""
        if self.size == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64)
        collective(dist.all_reduce, tensor)
        return (tensor / self.size).tolist()

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This process's rows of a tensor every process holds whole (e.g. the test set)."""
        return x[self.rank::self.size]

    def combine(self, shard_means: dict[str, float], shard_size: int, total: int) -> dict[str, float]:
        """Means over this process's shard -> means over all `total` rows (weighted by shard sizes)."""
        if self.size == 1:
            return shard_means
        sums = self.mean([value * shard_size for value in shard_means.values()])
        return {key: value * self.size / total for key, value in zip(shard_means, sums)}


def collective(operation, *args, **kwargs):
    """Run a torch.distributed collective; a failed or silent peer becomes one clear error."""
    try:
        return operation(*args, **kwargs)
    except RuntimeError as error:  # gloo's timeouts and closed connections, DistBackendError included
        raise DistributedError(
            f"rank {dist.get_rank()}: {operation.__name__} failed; another process died or stopped answering "
            f"({error})") from error


def average_updates(optimizer: torch.optim.Optimizer, *_) -> None:
    """Optimizer step pre-hook: replace every parameter's `.grad` (its local update) by the mean over the
    processes, in one all-reduce per optimizer."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    collective(dist.all_reduce, flat)
    flat /= dist.get_world_size()
    for grad, averaged in zip(grads, flat.split([g.numel() for g in grads])):
        grad.copy_(averaged.view_as(grad))


@contextmanager
def data_parallel(learner, world: World) -> Iterator[None]:
    """Give every process rank 0's weights, then let the learner average its updates across processes
    inside the block."""
    if world.size == 1:
        yield
        return
    for tensor in learner.state_dict().values():
        collective(dist.broadcast, tensor, 0)
    with learner.data_parallel():
        yield


def init_from_env(timeout_s: float = 300.0) -> World:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR, ...);
    a single process when there is none."""
    if dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return World()
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as error:
        raise DistributedError(f"could not join the process group: {error}") from error
    return World(dist.get_rank(), dist.get_world_size())


def shutdown(world: World) -> None:
    """Leave the process group in order, after this process's last collective.

    Every rank first waits at a barrier until all have finished (rank 0 writes the checkpoint and the
    exported weights after the last collective, so the others reach the end first). Then each frees the
    group, which joins gloo's worker threads. That join is what makes the exit safe: a worker thread
    frees a finished collective (and the tensors it holds) only after the caller has returned from it,
    so if the interpreter is already shutting down then, the thread's wait for the GIL aborts the process
    ("terminate called without an active exception", SIGABRT; seen in 1 of 15 two-process runs on a busy
    machine). The join only happens when nothing else holds the group, which is why the learner drops its
    DistributedDataParallel wrapper when `fit` ends; `gc.collect` frees any such holder left in a cycle."""
    if world.size == 1 or not dist.is_initialized():
        return
    collective(dist.barrier)
    gc.collect()
    dist.destroy_process_group()


def torchrun_command(nproc: int, argv: list[str], module: str = "brainlearn") -> list[str]:
    """The torchrun command line that runs `python -m MODULE ARGV` in `nproc` processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", module, *argv]
