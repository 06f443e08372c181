"""The one small protocol that joins every algorithm to the training loop, CLI and checkpoints.

A learner is an `nn.Module` built from `(n_inputs, n_classes, config, seed)` whose `Config`
is a dataclass (the CLI makes one flag per field). It provides

    train_step(x, y) -> dict of float metrics   one minibatch update (must report "loss")
    predict(x) -> labels                        its primary way of classifying
    evaluate(x, y, full) -> {"error[...]": ...} test error(s); `full=False` may skip costly methods
    optimizers                                  the torch optimizers it steps (checkpointed, lr-scheduled)
    generator                                   the torch.Generator for its own sampling (checkpointed)
    data_parallel()                             average its updates across torch.distributed processes

so the loop never knows which algorithm runs.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..distributed import average_updates


class Learner(nn.Module):
    Config: ClassVar[type]
    name: ClassVar[str]

    def __init__(self, n_inputs: int, n_classes: int, config, seed: int = 0):
        super().__init__()
        self.n_inputs, self.n_classes, self.config = n_inputs, n_classes, config
        self.generator = torch.Generator().manual_seed(seed)
        self.optimizers: list[torch.optim.Optimizer] = []

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, full: bool = True) -> dict[str, float]:
        return {"error": error_rate(self.predict(x), y)}

    def data_parallel(self) -> None:
        """In a torch.distributed run: average each optimizer's update over the processes just before
        it is applied. A local learner's update for a layer depends on that layer alone, so this
        all-reduce is all that data parallelism needs."""
        for optimizer in self.optimizers:
            optimizer.register_step_pre_hook(average_updates)

    def training_state(self) -> dict:
        """Everything a resumed run needs to continue bit for bit."""
        return {
            "model": self.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "generator": self.generator.get_state(),
        }

    def load_training_state(self, state: dict) -> None:
        self.load_state_dict(state["model"])
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        self.generator.set_state(state["generator"])


def layer_sizes(hidden) -> tuple[int, ...]:
    """Validate a config's hidden layer sizes (used in every config's __post_init__)."""
    hidden = tuple(hidden)
    if not hidden or min(hidden) < 1:
        raise ValueError("hidden must list one or more positive layer sizes")
    return hidden


def error_rate(predicted: torch.Tensor, target: torch.Tensor) -> float:
    return (predicted != target).float().mean().item()


def in_chunks(fn, x: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """fn applied to `x` in row chunks (bounds memory at test time), results concatenated."""
    return torch.cat([fn(part) for part in x.split(chunk)])
