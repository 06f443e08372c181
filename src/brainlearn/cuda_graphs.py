"""A learner's training step, run eagerly or captured once as a CUDA graph and replayed.

On a GPU the steps of the papers' nets are small (FF 4 x 2000 at batch 100: matmuls of 200 x 2000 x 2000), so
launching a step's few hundred kernels one by one from Python costs far more than running them: the eager FF step
reached about 2% of an H200's matmul rate (benchmarks/results/device_speed_cuda.md). A CUDA graph
(`torch.cuda.graph`) records the step's kernels once and launches them all with one call. What capture needs, and
how it is met here:

* fixed shapes and addresses: each minibatch is copied into the graph's own input tensors; a minibatch of
  another size (the short last one of an epoch) runs eagerly;
* no reads back to the host inside the step (the `Learner` protocol already forbids them) and no Python state that
  changes from step to step: a learner says so with `graph_safe = True`;
* random numbers from the learner's own generator only; it is registered with the graph, so every replay draws
  new numbers and the generator's state (checkpointed) advances as it does eagerly;
* optimizers whose updates do not bake in the learning rate: Adam and SGD switch to their fused implementations
  (one kernel per step), Adam keeps its step count on the device (`capturable`), and both take the learning rate
  as a device tensor, which the schedule fills between replays. Another optimizer keeps its learning rate as a
  number, so its learner uses a graph only under a constant schedule.

The first `WARMUP_STEPS` steps run eagerly on a side stream (lazily made optimizer state, cuBLAS workspaces),
then one step is captured and every later step of that shape replays it. Checkpoints stay portable:
`portable_optimizer_state` writes the learning rate as a number and the optimizer as neither fused nor capturable,
so a run saved from a graph resumes on the CPU or without graphs. The fused updates round differently from the
default (foreach) ones, so a run with graphs is not bit for bit the same run without them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .algorithms import Learner

WARMUP_STEPS = 3  # eager steps before the capture
TENSOR_LR = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)  # fused, they take a tensor learning rate


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (before reading a clock)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def metric_vector(metrics: dict, device: torch.device) -> torch.Tensor:
    """A step's metrics as one float64 vector on `device`, in the dict's order."""
    return torch.stack([torch.as_tensor(value, dtype=torch.float64, device=device) for value in metrics.values()])


def schedule_safe(optimizers: list[torch.optim.Optimizer], constant_lr: bool) -> bool:
    """Whether a captured step stays right as the learning rates change: always under a constant schedule,
    otherwise only if every optimizer can take its learning rate as a device tensor."""
    return constant_lr or all(isinstance(optimizer, TENSOR_LR) for optimizer in optimizers)


def make_capturable(optimizers: list[torch.optim.Optimizer], device: torch.device) -> None:
    """Adam and SGD fused, capturable and with their learning rates (and Adam's step counts) on `device`; other
    optimizers as they are. The schedule's base learning rate is kept as a number (`initial_lr`)."""
    for optimizer in optimizers:
        if not isinstance(optimizer, TENSOR_LR):
            continue
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", float(group["lr"]))
            group.update(fused=True, lr=torch.tensor(float(group["lr"]), device=device))
            if "capturable" in group:
                group["capturable"] = True
        for state in optimizer.state.values():
            if "step" in state:
                state["step"] = state["step"].to(device)


def portable_optimizer_state(state: dict) -> dict:
    """An optimizer's state dict as an eager optimizer on any device loads it: learning rates as numbers, neither
    fused nor capturable (Adam's step count then goes to the CPU when loaded)."""
    groups = [{**group, "lr": float(group["lr"]), **({"fused": None} if "fused" in group else {}),
               **({"capturable": False} if "capturable" in group else {})} for group in state["param_groups"]]
    return {**state, "param_groups": groups}


class StepRunner:
    """`runner(x, y)` runs `step(x, y)` (one minibatch update returning a dict of 0-d metrics) and returns the
    metrics as a float64 vector on `device` (names in `runner.names`). With `graphs`, on CUDA, when the
    `optimizers` suit the schedule (`schedule_safe`), the step is captured as a CUDA graph after `WARMUP_STEPS`
    eager ones; `generator`, if the step samples from one, is registered with the graph."""

    def __init__(self, step: Callable[[torch.Tensor, torch.Tensor], dict], device: torch.device,
                 optimizers: list[torch.optim.Optimizer], generator: torch.Generator | None = None,
                 graphs: bool = True, constant_lr: bool = True):
        self.step, self.device, self.generator, self.names = step, device, generator, None
        self.graphed = graphs and device.type == "cuda" and schedule_safe(optimizers, constant_lr)
        self.graph, self.eager_steps = None, 0
        self.steps_before_replay = WARMUP_STEPS + 1 if self.graphed else 0  # time a rate after these
        if self.graphed:
            make_capturable(optimizers, device)

    @classmethod
    def for_learner(cls, learner: "Learner", graphs: bool, constant_lr: bool) -> "StepRunner":
        """The runner of a learner's `train_step`; graphed only if the learner is `graph_safe`."""
        return cls(learner.train_step, learner.device, learner.optimizers, learner.generator,
                   graphs and learner.graph_safe, constant_lr)

    def eager(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        metrics = self.step(x, y)
        self.names = list(metrics)
        return metric_vector(metrics, self.device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.graphed:
            return self.eager(x, y)
        if self.graph is None and self.eager_steps < WARMUP_STEPS:
            self.eager_steps += 1
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                values = self.eager(x, y)
            torch.cuda.current_stream(self.device).wait_stream(side)
            return values
        if self.graph is None:
            self.capture(x, y)
        elif x.shape != self.x.shape:
            return self.eager(x, y)
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        return self.values.clone()  # the graph overwrites its output at the next replay

    def capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Record one step on inputs of the shape of `x`, `y` (recording runs nothing)."""
        self.x, self.y = torch.empty_like(x), torch.empty_like(y)
        self.graph = torch.cuda.CUDAGraph()
        if self.generator is not None:
            self.graph.register_generator_state(self.generator)
        with torch.cuda.graph(self.graph):
            self.values = self.eager(self.x, self.y)
