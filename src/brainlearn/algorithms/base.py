"""The one small protocol that joins every algorithm to the training loop, CLI and checkpoints.

A learner is an `nn.Module` built from `(n_inputs, n_classes, config, seed)` whose `Config`
is a dataclass (the CLI makes one flag per field). It provides

    train_step(x, y) -> dict of metrics         one minibatch update (must report "loss"); each value a 0-d
                                                tensor on the learner's device (or a float), never read back
                                                to the host, so a GPU step does not wait for the device
    predict(x) -> labels                        its primary way of classifying
    evaluate(x, y, full) -> {"error[...]": ...} test error(s); `full=False` may skip costly methods
    optimizers                                  the torch optimizers it steps (checkpointed, lr-scheduled)
    generator                                   the torch.Generator for its own sampling, on its device
                                                (checkpointed)
    graph_safe                                  True when train_step keeps no Python state that changes from
                                                step to step and draws random numbers from `generator` only:
                                                then on CUDA the loop may capture it as a CUDA graph
    with data_parallel(): ...                   average its updates across torch.distributed processes
                                                inside the block; a single-process learner again after it

so the loop never knows which algorithm runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import nn

from ..cuda_graphs import portable_optimizer_state
from ..distributed import average_updates


class Learner(nn.Module):
    Config: ClassVar[type]
    name: ClassVar[str]
    graph_safe: ClassVar[bool] = False

    def __init__(self, n_inputs: int, n_classes: int, config, seed: int = 0):
        super().__init__()
        self.n_inputs, self.n_classes, self.config = n_inputs, n_classes, config
        self.generator = torch.Generator().manual_seed(seed)
        self.optimizers: list[torch.optim.Optimizer] = []

    @property
    def device(self) -> torch.device:
        return self.generator.device

    def to_device(self, device: torch.device, seed: int) -> "Learner":
        """Move the weights, buffers and (still empty) optimizer state to `device`; on another device than
        the CPU the learner samples from a generator of that device, seeded with `seed`."""
        self.to(device)
        if device.type != self.generator.device.type:
            self.generator = torch.Generator(device).manual_seed(seed)
        return self

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, full: bool = True) -> dict[str, float]:
        return {"error": error_rate(self.predict(x), y)}

    @contextmanager
    def data_parallel(self) -> Iterator[None]:
        """In a torch.distributed run: average each optimizer's update over the processes just before
        it is applied. A local learner's update for a layer depends on that layer alone, so this
        all-reduce is all that data parallelism needs."""
        hooks = [optimizer.register_step_pre_hook(average_updates) for optimizer in self.optimizers]
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()

    def training_state(self) -> dict:
        """Everything a resumed run needs to continue bit for bit, loadable on any device (even after CUDA graphs
        made the optimizers capturable)."""
        return {
            "model": self.state_dict(),
            "optimizers": [portable_optimizer_state(opt.state_dict()) for opt in self.optimizers],
            "generator": self.generator.get_state(),
        }

    def load_training_state(self, state: dict) -> None:
        """Restore a training state, written on this device or another: tensors go to this learner's device.
        A generator state from another kind of device cannot be set here; the generator is then seeded from
        a hash of it, so the resumed run is reproducible, though not bit for bit the run it continues."""
        self.load_state_dict(state["model"])
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)  # moves the state to the parameters' device
        generator_state = state["generator"]
        if generator_state.numel() == self.generator.get_state().numel():
            self.generator.set_state(generator_state)
        else:
            digest = hashlib.sha256(generator_state.numpy().tobytes()).digest()
            self.generator.manual_seed(int.from_bytes(digest[:8], "little"))


def layer_sizes(hidden) -> tuple[int, ...]:
    """Validate a config's hidden layer sizes (used in every config's __post_init__)."""
    hidden = tuple(hidden)
    if not hidden or min(hidden) < 1:
        raise ValueError("hidden must list one or more positive layer sizes")
    return hidden


def one_hot(labels: torch.Tensor, n_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-hot rows, like F.one_hot but without its range check, which on a GPU waits for the device."""
    return torch.zeros(len(labels), n_classes, dtype=dtype, device=labels.device).scatter_(1, labels[:, None], 1)


def error_rate(predicted: torch.Tensor, target: torch.Tensor) -> float:
    return (predicted != target).float().mean().item()


def in_chunks(fn, x: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """fn applied to `x` in row chunks (bounds memory at test time), results concatenated."""
    return torch.cat([fn(part) for part in x.split(chunk)])
