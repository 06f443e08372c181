"""Traveling-wave RNN vs identity-initialised RNN on long-memory tasks.

wRNN (Keller, Sejnowski & Welling 2023, "Traveling Waves Encode the Recent Past and Enhance
Sequence Learning"): the hidden state is C channels laid out on a ring of N positions,

    h_t = relu(u * h_{t-1} + V x_t + b)                                          (eq. 1)

where u * h is a circular 1-D convolution (kernel 3, channels C -> C) initialised to shift every
channel one position round the ring per step, and V starts by writing the input into position 0
of every channel. An input therefore travels as a wave, and how far it has travelled says how
long ago it arrived: the recent past stays laid out in space.

iRNN (Le, Jaitly & Hinton 2015, "A Simple Way to Initialize Recurrent Networks of Rectified
Linear Units"): h_t = relu(W h_{t-1} + V x_t + b) with W initialised to the identity and V small.

Both are trained by backprop through time here (the comparison is about the architecture), with
Adam and gradient-norm clipping. Tasks:

* adding (Hochreiter & Schmidhuber 1997): T steps of (value ~ U[0, 1], marker); one marker in each
  half; the target is the sum of the two marked values. Predicting the mean, 1, gives MSE 1/6.
* copy: `length` symbols from 1..S, T blank steps, a delimiter, then the net must output the
  symbols; blanks (0) are expected everywhere else. Cross-entropy over every step, accuracy on
  the copied symbols. A memoryless net's best cross-entropy is length * log(S) / (T + 2 length).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .cuda_graphs import StepRunner, synchronize
from .train import resolve_device


def adding_batch(length: int, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (length, batch, 2) of (value, marker) and targets (batch, 1): the sum of the marked values."""
    if length < 2:
        raise ValueError("the adding task needs length >= 2")
    values = torch.rand(length, batch, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, length, (batch,), generator=generator)
    markers = torch.zeros(length, batch)
    columns = torch.arange(batch)
    markers[first, columns] = 1.0
    markers[second, columns] = 1.0
    return torch.stack([values, markers], -1), (values * markers).sum(0)[:, None]


def copy_batch(delay: int, batch: int, generator: torch.Generator, symbols: int = 8,
               length: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot inputs (length + delay + length, batch, symbols + 2) and target classes (steps, batch).

    Class 0 is blank, 1..symbols the symbols, symbols + 1 the delimiter that asks for the copy.
    """
    if delay < 1 or symbols < 1 or length < 1:
        raise ValueError("the copy task needs delay, symbols and length >= 1")
    steps = 2 * length + delay
    sequence = torch.randint(1, symbols + 1, (length, batch), generator=generator)
    inputs = torch.zeros(steps, batch, dtype=torch.long)
    inputs[:length] = sequence
    inputs[length + delay - 1] = symbols + 1
    targets = torch.zeros(steps, batch, dtype=torch.long)
    targets[length + delay:] = sequence
    return F.one_hot(inputs, symbols + 2).float(), targets


class RecurrentNet(nn.Module):
    """h_t = relu(recurrence(h_{t-1}) + encoder(x_t)); a linear readout of h_T or of every h_t."""

    def __init__(self, n_inputs: int, n_hidden: int, n_outputs: int):
        super().__init__()
        self.n_hidden = n_hidden
        self.encoder = nn.Linear(n_inputs, n_hidden)
        self.readout = nn.Linear(n_hidden, n_outputs)

    def recurrence(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def hidden_states(self, x: torch.Tensor, every_step: bool = True) -> torch.Tensor:
        """Hidden states (steps, batch, hidden) for inputs (steps, batch, inputs); only the last
        (batch, hidden) if not `every_step`."""
        # Every step's input term at once. unbind, not drive[t]: the backward of indexing would
        # build a full-size gradient per step, O(steps^2) memory traffic.
        h = x.new_zeros(x.shape[1], self.n_hidden)
        states = []
        for drive in self.encoder(x).unbind(0):
            h = torch.relu(self.recurrence(h) + drive)
            if every_step:
                states.append(h)
        return torch.stack(states) if every_step else h

    def forward(self, x: torch.Tensor, every_step: bool = False) -> torch.Tensor:
        return self.readout(self.hidden_states(x, every_step))


class IdentityRNN(RecurrentNet):
    """iRNN: a dense recurrent matrix initialised to the identity, input weights ~ N(0, 0.001^2)."""

    def __init__(self, n_inputs: int, n_hidden: int, n_outputs: int):
        super().__init__(n_inputs, n_hidden, n_outputs)
        self.recurrent = nn.Linear(n_hidden, n_hidden, bias=False)
        with torch.no_grad():
            self.recurrent.weight.copy_(torch.eye(n_hidden))
            nn.init.normal_(self.encoder.weight, std=1e-3)

    def recurrence(self, h: torch.Tensor) -> torch.Tensor:
        return self.recurrent(h)


class WaveRNN(RecurrentNet):
    """wRNN: `channels` x `positions` units on a ring; the recurrence a circular convolution whose
    kernel starts as a shift by one position per step; the input written into position 0.

    The state is laid out (channels, positions), so the recurrence is literally conv1d on the
    circularly padded ring: on a CPU 1.4x faster (T = 400, 8 x 100) than a matmul over channels
    of the rolled neighbours.
    """

    def __init__(self, n_inputs: int, channels: int, positions: int, n_outputs: int, kernel: int = 3):
        super().__init__(n_inputs, channels * positions, n_outputs)
        if kernel % 2 == 0 or kernel > positions:
            raise ValueError("the kernel must be odd and no wider than the ring")
        self.channels, self.positions = channels, positions
        # conv1d weight (out, in, tap); tap k reads position i + k - kernel // 2
        self.kernel = nn.Parameter(torch.zeros(channels, channels, kernel))
        with torch.no_grad():
            self.kernel[:, :, kernel // 2 - 1] = torch.eye(channels)  # read i - 1: a shift forward
            self.encoder.weight.zero_()
            self.encoder.bias.zero_()
            self.encoder.weight.view(channels, positions, n_inputs)[:, 0] = 1.0

    def recurrence(self, h: torch.Tensor) -> torch.Tensor:
        ring = h.view(len(h), self.channels, self.positions)
        half = self.kernel.shape[-1] // 2
        return F.conv1d(F.pad(ring, (half, half), mode="circular"), self.kernel).flatten(1)


@dataclass
class SequenceTrainConfig:
    steps: int = field(default=1000, metadata={"help": "training steps (fresh batches)"})
    batch_size: int = field(default=128, metadata={"help": "sequences per step"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    grad_clip: float = field(default=1.0, metadata={"help": "gradient-norm clipping (0: none)"})
    eval_every: int = field(default=50, metadata={"help": "steps between held-out evaluations"})
    eval_size: int = field(default=1000, metadata={"help": "held-out sequences"})
    seed: int = field(default=0, metadata={"help": "seed of the batches and the initial weights"})
    device: str = field(default="auto", metadata={
        "help": "where to train: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N"})
    cuda_graphs: bool = field(default=True, metadata={
        "help": "on CUDA, capture the training step (T recurrent steps, forward and backward) as a CUDA graph"})

    def __post_init__(self):
        if min(self.steps, self.batch_size, self.eval_every, self.eval_size) < 1 or self.lr <= 0:
            raise ValueError("steps, batch_size, eval_every and eval_size must be >= 1, lr > 0")
        if self.grad_clip < 0:
            raise ValueError("grad_clip must be >= 0 (0: no clipping)")
        try:
            torch.device(self.device if self.device != "auto" else "cpu")
        except RuntimeError as error:
            raise ValueError(f"device: {error}") from None


def task_loss(model: RecurrentNet, task: str, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, the model's output): adding -> MSE of the sum; copy -> cross-entropy over all steps."""
    if task == "adding":
        output = model(x)
        return F.mse_loss(output, y), output
    logits = model(x, every_step=True)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten()), logits


def task_metric(task: str, loss: torch.Tensor, output: torch.Tensor, y: torch.Tensor) -> float:
    """adding: the MSE; copy: the accuracy on the copied symbols (read back from the device)."""
    if task == "adding":
        return loss.item()
    copied = y > 0
    return (output.argmax(-1)[copied] == y[copied]).float().mean().item()


def make_batch(task: str, length: int, batch: int, generator: torch.Generator):
    if task == "adding":
        return adding_batch(length, batch, generator)
    if task == "copy":
        return copy_batch(length, batch, generator)
    raise ValueError(f"unknown task {task!r}: use 'adding' or 'copy'")


def train_on_task(model: RecurrentNet, task: str, length: int, config: SequenceTrainConfig,
                  solved=None, desc: str | None = None) -> dict:
    """Adam with gradient-norm clipping on fresh batches; a fixed held-out batch every `eval_every` steps.

    The model moves to `config.device`. Batches are drawn on the CPU from the seed (the same on every device)
    and copied there; on CUDA the whole step, T recurrent steps forward and backward, is one CUDA graph
    (`cuda_graphs`, see `cuda_graphs.StepRunner`). `solved(test_loss, test_metric)` says when the task counts as
    solved; the step of the first such evaluation is reported. A non-finite loss stops the run, reported as
    diverged after the steps before it. The check reads the loss back, so it runs at every step on the CPU and
    at every evaluation on a GPU (the steps in between are wasted; the history is the same). `steps_per_s` counts
    every step run (a diverged run's too), timed after the graph's warm-up and capture
    (`StepRunner.steps_before_replay`). `desc` shows a progress bar.
    """
    device = resolve_device(config.device)
    model.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    x_held, y_held = (part.to(device) for part in make_batch(task, length, config.eval_size,
                                                              torch.Generator().manual_seed(10_000 + config.seed)))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    def train_step(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        loss, _ = task_loss(model, task, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        return {"loss": loss.detach()}

    run_step = StepRunner(train_step, device, [optimizer], graphs=config.cuda_graphs)
    check_every = 1 if device.type == "cpu" else config.eval_every
    history, solved_at, diverged, done, ran, losses = [], None, False, 0, 0, []
    bar = tqdm(total=config.steps, desc=desc, disable=desc is None, leave=False)
    start = timed_start = time.perf_counter()
    for step in range(1, config.steps + 1):
        if step == run_step.steps_before_replay + 1:
            synchronize(device)
            timed_start = time.perf_counter()
        x, y = make_batch(task, length, config.batch_size, generator)
        losses.append(run_step(x.to(device), y.to(device))[0])
        ran = step
        evaluate = step % config.eval_every == 0 or step == config.steps
        if step % check_every == 0 or evaluate:
            finite = torch.isfinite(torch.stack(losses)).tolist()
            if not all(finite):
                done, diverged = done + finite.index(False), True
                break
            done, train_loss, losses = step, losses[-1], []
            bar.update(len(finite))
        if evaluate:
            with torch.no_grad():
                test_loss, output = task_loss(model, task, x_held, y_held)
                metric = task_metric(task, test_loss, output, y_held)
            history.append({"step": step, "train_loss": train_loss.item(), "test_loss": test_loss.item(),
                            "test_metric": metric})
            bar.set_postfix(test_loss=f"{test_loss.item():.2e}")
            if solved_at is None and solved is not None and solved(test_loss.item(), metric):
                solved_at = step
    bar.close()
    synchronize(device)
    end = time.perf_counter()
    timed_steps = ran - run_step.steps_before_replay
    return {"history": history, "solved_at": solved_at, "diverged": diverged, "steps": done, "seconds": end - start,
            "steps_per_s": timed_steps / (end - timed_start) if timed_steps > 0 else float("nan")}


@torch.no_grad()
def ring_states(model: WaveRNN, x: torch.Tensor) -> torch.Tensor:
    """The hidden state of one sequence `x` (steps, 1, inputs) as (channels, steps, positions)."""
    states = model.hidden_states(x.to(model.kernel.device))[:, 0].cpu()
    return states.view(len(x), model.channels, model.positions).transpose(0, 1)
