"""The backprop twin: the same MLP as the local learners, trained end to end.

Hidden layers Linear -> ReLU, a linear softmax output, softmax cross-entropy, Adam
(Rumelhart, Hinton & Williams 1986; Kingma & Ba 2015). Every local learner in brainlearn
is reported beside this model with the same hidden sizes, data, budget and machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .base import Learner, in_chunks, layer_sizes
from .local import connection, map_sizes


@dataclass
class BackpropConfig:
    hidden: tuple[int, ...] = field(default=(500, 500), metadata={"help": "hidden layer sizes"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    local_field: int = field(default=0, metadata={
        "help": "0: dense hidden layers; k: locally connected ones with k x k receptive fields (square images; "
                "hidden sizes: units per location x pixels)"})

    def __post_init__(self):
        self.hidden = layer_sizes(self.hidden)
        if self.lr <= 0 or self.local_field < 0:
            raise ValueError("lr must be positive and local_field >= 0")


class Backprop(Learner):
    Config = BackpropConfig
    name = "bp"
    graph_safe = True

    def __init__(self, n_inputs: int, n_classes: int, config: BackpropConfig | None = None, seed: int = 0):
        config = config or BackpropConfig()
        super().__init__(n_inputs, n_classes, config, seed)
        sizes = (n_inputs, *config.hidden)
        image = map_sizes(config.hidden, config.local_field, n_inputs)
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [connection(fan_in, fan_out, config.local_field, image), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], n_classes))
        self.optimizers = [torch.optim.Adam(self.net.parameters(), lr=config.lr)]
        # What train_step runs: the net, or its DistributedDataParallel wrapper. Kept out of the module
        # tree (object.__setattr__), so state dicts and checkpoints have the same keys either way.
        object.__setattr__(self, "trained_net", self.net)

    @contextmanager
    def data_parallel(self) -> Iterator[None]:
        """DistributedDataParallel (Li et al. 2020): gradients are all-reduced in buckets while the
        backward still runs, overlapping communication with computation. The wrapper is dropped after
        the block: it holds the process group, which must be free to close when the run ends."""
        object.__setattr__(self, "trained_net", DistributedDataParallel(self.net))
        try:
            yield
        finally:
            object.__setattr__(self, "trained_net", self.net)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        (optimizer,) = self.optimizers
        loss = F.cross_entropy(self.trained_net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return in_chunks(lambda part: self.net(part).argmax(1), x)
