"""Knowledge passed between "mortal" nets by sharing activity, not weights (Hinton 2022, sec. 8).

When every piece of hardware computes a little differently, one net's weights are useless to
another; what can travel is what a net *does*: its output probabilities.

* Distillation (Hinton, Vinyals & Dean 2015): a student of a *different* architecture learns from
  the teacher's soft targets at temperature T on transfer images that need no labels,
      L = T^2 KL(softmax(z_teacher / T) || softmax(z_student / T)),
  compared with the same student trained from the few labels it has.
* Co-distillation (Anil et al. 2018): two nets on different shards of the data each learn from
  their labels and from the other's predictions on their own minibatch,
      L_A = CE(z_A, y) + weight KL(softmax(z_B) || softmax(z_A)),   and the same for B,
  so only activity crosses between them. Compared with averaging their weights every
  `average_every` steps (which needs identical architectures and exact hardware), and with each
  learning alone on its shard.

All nets here are backprop-trained MLPs (`Backprop` learners); the comparison is about what is
shared, not about how each learns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .algorithms import Backprop, BackpropConfig
from .algorithms.base import error_rate
from .train import TrainConfig, minibatches


def soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """T^2 KL(softmax(teacher / T) || softmax(student / T)), mean over the batch (T^2 keeps the
    gradient's scale independent of T)."""
    return temperature ** 2 * F.kl_div(F.log_softmax(student_logits / temperature, 1),
                                       F.log_softmax(teacher_logits / temperature, 1), log_target=True,
                                       reduction="batchmean")


def new_net(n_inputs: int, hidden: tuple[int, ...], lr: float, seed: int, device: torch.device) -> Backprop:
    torch.manual_seed(seed)
    return Backprop(n_inputs, 10, BackpropConfig(hidden=hidden, lr=lr), seed=seed).to_device(device, seed)


def step(net: Backprop, loss: torch.Tensor) -> None:
    (optimizer,) = net.optimizers
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def train_net(net: Backprop, n: int, loss_of, config: TrainConfig) -> Backprop:
    """Adam on `loss_of(logits_fn, idx)` over minibatches of range(n), for config.epochs."""
    for epoch in range(config.epochs):
        for idx in minibatches(n, config, epoch):
            step(net, loss_of(net.net, idx))
    return net


def from_labels(x: torch.Tensor, y: torch.Tensor, hidden: tuple[int, ...], config: TrainConfig,
                lr: float = 1e-3) -> Backprop:
    """The baseline: a net with `hidden` layers trained on the labelled (x, y) alone."""
    return train_net(new_net(x.shape[1], hidden, lr, config.seed, x.device), len(x),
                     lambda net, idx: F.cross_entropy(net(x[idx]), y[idx]), config)


def distill(teacher: Backprop, x: torch.Tensor, hidden: tuple[int, ...], config: TrainConfig, lr: float = 1e-3,
            temperature: float = 4.0) -> Backprop:
    """A student with `hidden` layers (any architecture) trained on the teacher's soft targets over the
    transfer images `x`, which need no labels: only the teacher's activity reaches the student."""
    with torch.no_grad():
        teacher_logits = teacher.net(x)
    return train_net(new_net(x.shape[1], hidden, lr, config.seed, x.device), len(x),
                     lambda net, idx: soft_loss(net(x[idx]), teacher_logits[idx], temperature), config)


def two_shards(x: torch.Tensor, y: torch.Tensor, hidden: tuple[int, ...], config: TrainConfig, mode: str,
               lr: float = 1e-3, weight: float = 1.0, average_every: int = 50) -> tuple[Backprop, Backprop]:
    """Two nets, one per half of (x, y), trained side by side for `config.epochs` passes over their shard.

    mode "alone": nothing shared; "codistill": each also matches the other's predictions on its own
    minibatch (activity shared); "average": their weights are averaged every `average_every` steps."""
    if mode not in ("alone", "codistill", "average"):
        raise ValueError("mode must be 'alone', 'codistill' or 'average'")
    half = len(x) // 2
    shards = [(x[:half], y[:half]), (x[half:2 * half], y[half:2 * half])]
    nets = [new_net(x.shape[1], hidden, lr, config.seed, x.device) for _ in shards]  # the same start, as weight averaging needs
    steps = 0
    for epoch in range(config.epochs):
        for idx in minibatches(half, config, epoch):
            for me, (net, (xs, ys)) in enumerate(zip(nets, shards)):
                logits = net.net(xs[idx])
                loss = F.cross_entropy(logits, ys[idx])
                if mode == "codistill":
                    with torch.no_grad():
                        other = nets[1 - me].net(xs[idx])  # the other net's activity on my minibatch
                    loss = loss + weight * soft_loss(logits, other)
                step(net, loss)
            steps += 1
            if mode == "average" and steps % average_every == 0:
                with torch.no_grad():
                    for a, b in zip(nets[0].net.parameters(), nets[1].net.parameters()):
                        a.copy_((a + b) / 2)
                        b.copy_(a)
    return nets[0], nets[1]


@torch.no_grad()
def error_rates(nets: list[Backprop], x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Each net's test error and that of their ensemble (mean of the probabilities)."""
    probabilities = [F.softmax(net.net(x), 1) for net in nets]
    errors = {f"net{i}": error_rate(p.argmax(1), y) for i, p in enumerate(probabilities)}
    if len(nets) > 1:
        errors["ensemble"] = error_rate(sum(probabilities).argmax(1), y)
    return errors
