"""Boltzmann machines: RBMs learned by wake and sleep, stacked into a deep belief net with labels.

A restricted Boltzmann machine with binary visible units v, binary hidden units h and energy
    E(v, h) = -b.v - c.h - v W h
has p(h_j = 1 | v) = sigma(c_j + v W_j) and p(v_i = 1 | h) = sigma(b_i + W_i h); summing out h
gives the free energy F(v) = -b.v - sum_j softplus(c_j + v W_j), p(v) = exp(-F(v)) / Z.

Learning contrasts two phases (Hinton 2002; Hinton's "practical guide", 2010):
    wake:  the data clamped on v, hidden probabilities inferred         -> <v h>_wake
    sleep: the network runs freely by alternating Gibbs sampling, from  -> <v h>_sleep
           the data for k steps (CD-k) or from persistent chains (PCD, Tieleman 2008)
    dW = <v h>_wake - <v h>_sleep,  db = <v>_wake - <v>_sleep,  dc = <h>_wake - <h>_sleep
applied by SGD with momentum (0.5, then 0.9) and weight decay on W, as in the guide.

The deep belief net (Hinton, Osindero & Teh 2006) stacks RBMs: each learns on the hidden
probabilities of the one below; the top RBM's visible layer also holds 10 softmax label units
beside the layer below's hidden units, so it models the joint of features and label. All
layers learn on every minibatch from their own statistics (greedy in that no layer's update
depends on those above). Classification clamps the image, and picks the label whose joint
configuration has the lowest free energy in the top RBM (exact). Dreaming clamps a label,
runs the top RBM's Gibbs chain, and passes the result down to the pixels. A chain started from noise
can stay for thousands of steps in a mode that belongs to another label; so the chain is annealed
(simulated annealing, Kirkpatrick et al. 1983): it starts hot, at p(v, h)^(1/T) with T > 1, where
modes are shallow, and cools to T = 1 over the first half of its steps, then samples the model itself.

As an option the top RBM also learns log p(label | features) (Larochelle & Bengio 2008, "Classification
using discriminative restricted Boltzmann machines", eq. 6-7: their hybrid of it with log p(features, label)).
That gradient is itself a two-phase contrast: wake with the features and the label clamped, sleep with
the features clamped and the label free, whose equilibrium p(label | features) is computed exactly.

The log-likelihood of one RBM is estimated by annealed importance sampling (Salakhutdinov &
Murray 2008, "On the quantitative analysis of deep belief networks").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .base import Learner, error_rate, in_chunks, layer_sizes, one_hot


class RBM(nn.Module):
    """Binary RBM; the last `n_labels` visible units form one softmax group (a label)."""

    def __init__(self, n_visible: int, n_hidden: int, n_labels: int = 0):
        super().__init__()
        self.n_labels = n_labels
        self.weight = nn.Parameter(0.01 * torch.randn(n_visible + n_labels, n_hidden), requires_grad=False)
        self.visible_bias = nn.Parameter(torch.zeros(n_visible + n_labels), requires_grad=False)
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden), requires_grad=False)

    def hidden_probs(self, v: torch.Tensor, inverse_temperature: float = 1.0) -> torch.Tensor:
        return torch.sigmoid(inverse_temperature * (v @ self.weight + self.hidden_bias))

    def visible_probs(self, h: torch.Tensor, inverse_temperature: float = 1.0) -> torch.Tensor:
        logits = inverse_temperature * (h @ self.weight.T + self.visible_bias)
        if not self.n_labels:
            return torch.sigmoid(logits)
        units, labels = logits.split([logits.shape[1] - self.n_labels, self.n_labels], 1)
        return torch.cat([torch.sigmoid(units), labels.softmax(1)], 1)

    def sample_visible(self, probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if not self.n_labels:
            return torch.bernoulli(probs, generator=generator)
        units, labels = probs.split([probs.shape[1] - self.n_labels, self.n_labels], 1)
        label = torch.multinomial(labels, 1, generator=generator)[:, 0]
        return torch.cat([torch.bernoulli(units, generator=generator), one_hot(label, self.n_labels, probs.dtype)], 1)

    def gibbs(self, v: torch.Tensor, steps: int, generator: torch.Generator, clamp: torch.Tensor | None = None,
              first_hidden_probs: torch.Tensor | None = None,
              inverse_temperatures: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`steps` rounds of h ~ p(h|v), v ~ p(v|h); returns (last visible probabilities, last sample).

        `clamp` (a boolean mask over visible units) holds those units at their values in `v`;
        `first_hidden_probs` is p(h|v) for the starting `v` where the caller has it already;
        `inverse_temperatures` (one per step, default all 1) samples step t from p(v, h)^(1/T_t).
        """
        probs = v
        for step in range(steps):
            beta = 1.0 if inverse_temperatures is None else inverse_temperatures[step].item()
            h_probs = (first_hidden_probs if step == 0 and first_hidden_probs is not None
                       else self.hidden_probs(v, beta))
            h = torch.bernoulli(h_probs, generator=generator)
            probs = self.visible_probs(h, beta)
            sample = self.sample_visible(probs, generator)
            v = sample if clamp is None else torch.where(clamp, v, sample)
            probs = probs if clamp is None else torch.where(clamp, v, probs)
        return probs, v

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -b.v - sum_j softplus(c_j + v W_j), so that p(v) = exp(-F(v)) / Z."""
        return -v @ self.visible_bias - F.softplus(v @ self.weight + self.hidden_bias).sum(1)

    def label_conditional(self, units: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For visible `units` (the label excluded): -F(units, y) for every label y, shape (batch, labels),
        and p(h | units, y), shape (batch, labels, hidden). log p(y | units) = log_softmax(-F) exactly."""
        n_units = units.shape[1]
        label_weight, label_bias = self.weight[n_units:], self.visible_bias[n_units:]
        pre = (units @ self.weight[:n_units] + self.hidden_bias)[:, None, :] + label_weight[None]
        negative_free_energy = (units @ self.visible_bias[:n_units])[:, None] + label_bias[None] + F.softplus(pre).sum(2)
        return negative_free_energy, torch.sigmoid(pre)

    def conditional_wake_sleep(self, v: torch.Tensor, h_wake: torch.Tensor) -> dict[torch.Tensor, torch.Tensor]:
        """The ascent direction of log p(label | units) (Larochelle & Bengio 2008, eq. 6) in wake-sleep form.

        Wake: units and the true label clamped, <v h>_wake. Sleep: units clamped, the label left free;
        its equilibrium is exact, p(y | units), so <v h>_sleep = sum_y p(y | units) <v h>_{units, y}.
        The visible biases of the units cancel between the phases.
        """
        units, label = v[:, :-self.n_labels], v[:, -self.n_labels:]
        negative_free_energy, h_per_label = self.label_conditional(units)
        label_probs = negative_free_energy.softmax(1)
        h_sleep = torch.einsum("bl,blh->bh", label_probs, h_per_label)
        n = len(v)
        return {
            self.weight: torch.cat([units.T @ (h_wake - h_sleep),
                                    label.T @ h_wake - torch.einsum("bl,blh->lh", label_probs, h_per_label)]) / n,
            self.visible_bias: torch.cat([torch.zeros_like(units[0]), (label - label_probs).mean(0)]),
            self.hidden_bias: (h_wake - h_sleep).mean(0),
        }

    def wake_sleep_step(self, optimizer: torch.optim.Optimizer, v_wake: torch.Tensor, h_wake: torch.Tensor,
                        v_sleep: torch.Tensor, discriminative: float = 0.0) -> None:
        """One update from <v h>_wake - <v h>_sleep (hidden probabilities, not samples, in both), plus
        `discriminative` times the conditional wake-sleep term (the hybrid of Larochelle & Bengio 2008)."""
        h_sleep = self.hidden_probs(v_sleep)
        ascent = {
            self.weight: v_wake.T @ h_wake / len(v_wake) - v_sleep.T @ h_sleep / len(v_sleep),
            self.visible_bias: v_wake.mean(0) - v_sleep.mean(0),
            self.hidden_bias: h_wake.mean(0) - h_sleep.mean(0),
        }
        if discriminative:
            for parameter, direction in self.conditional_wake_sleep(v_wake, h_wake).items():
                ascent[parameter] += discriminative * direction
        for parameter, direction in ascent.items():
            parameter.grad = -direction  # the optimizer descends, the likelihood ascends
        optimizer.step()


@dataclass
class DeepBeliefNetConfig:
    hidden: tuple[int, ...] = field(default=(500, 500, 2000), metadata={
        "help": "hidden sizes bottom to top; the last is the top RBM's, which also sees the label units"})
    lr: float = field(default=0.05, metadata={"help": "SGD learning rate of every RBM"})
    cd_k: int = field(default=1, metadata={"help": "Gibbs steps of the sleep phase per update"})
    sleep: str = field(default="cd", metadata={
        "choices": ("cd", "pcd"),
        "help": "where the sleep phase starts: 'cd' from the data, 'pcd' from persistent chains"})
    top_sleep: str = field(default="same", metadata={
        "choices": ("same", "cd", "pcd"),
        "help": "where the top RBM's sleep phase starts (its chain is the one that dreams); 'same': as sleep"})
    chains: int = field(default=100, metadata={"help": "persistent sleep chains per RBM (pcd)"})
    discriminative: float = field(default=0.0, metadata={
        "help": "weight of the top RBM's conditional wake-sleep term, log p(label | features) (0: generative only)"})
    weight_decay: float = field(default=2e-4, metadata={"help": "L2 weight cost on the weights (not biases)"})
    momentum_warmup_steps: int = field(default=3000, metadata={
        "help": "updates at momentum 0.5 before switching to 0.9 (Hinton's guide)"})

    def __post_init__(self):
        self.hidden = layer_sizes(self.hidden)
        if self.lr <= 0 or self.cd_k < 1 or self.chains < 1 or self.weight_decay < 0 or self.discriminative < 0:
            raise ValueError("need lr > 0, cd_k >= 1, chains >= 1, weight_decay >= 0 and discriminative >= 0")
        if self.sleep not in ("cd", "pcd") or self.top_sleep not in ("same", "cd", "pcd"):
            raise ValueError("sleep must be 'cd' or 'pcd', top_sleep 'same', 'cd' or 'pcd'")


class DeepBeliefNet(Learner):
    Config = DeepBeliefNetConfig
    name = "dbn"

    def __init__(self, n_inputs: int, n_classes: int, config: DeepBeliefNetConfig | None = None, seed: int = 0):
        config = config or DeepBeliefNetConfig()
        super().__init__(n_inputs, n_classes, config, seed)
        sizes = (n_inputs, *config.hidden)
        last = len(config.hidden) - 1
        self.rbms = nn.ModuleList(RBM(a, b, n_classes if j == last else 0)
                                  for j, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])))
        for j, rbm in enumerate(self.rbms):  # persistent sleep chains, checkpointed with the weights
            self.register_buffer(f"chain{j}", torch.bernoulli(
                torch.full((config.chains, rbm.weight.shape[0]), 0.5), generator=self.generator))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.optimizers = [torch.optim.SGD([
            {"params": [rbm.weight], "weight_decay": config.weight_decay},
            {"params": [rbm.visible_bias, rbm.hidden_bias], "weight_decay": 0.0},
        ], lr=config.lr, momentum=0.5) for rbm in self.rbms]

    def top_visible(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden probabilities of every RBM below the top, driven up from the pixels."""
        for rbm in self.rbms[:-1]:
            x = rbm.hidden_probs(x)
        return x

    @torch.no_grad()
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        momentum = 0.5 if self.steps < self.config.momentum_warmup_steps else 0.9
        v, loss = x, None
        for j, (rbm, optimizer) in enumerate(zip(self.rbms, self.optimizers)):
            if rbm.n_labels:
                v = torch.cat([v, one_hot(y, self.n_classes, v.dtype)], 1)
            h = rbm.hidden_probs(v)  # wake phase; also the next RBM's data
            if loss is None:  # pixel reconstruction error of the first RBM: a progress signal, not what CD minimises
                loss = (rbm.visible_probs(h)[:, :x.shape[1]] - x).pow(2).mean()
            sleep = self.config.top_sleep if rbm.n_labels and self.config.top_sleep != "same" else self.config.sleep
            if sleep == "pcd":  # sleep phase: from the persistent chains...
                chain = getattr(self, f"chain{j}")
                sleep_probs, sleep_sample = rbm.gibbs(chain, self.config.cd_k, self.generator)
                chain.copy_(sleep_sample)
            else:  # ...or from the data
                sleep_probs, _ = rbm.gibbs(v, self.config.cd_k, self.generator, first_hidden_probs=h)
            for group in optimizer.param_groups:
                group["momentum"] = momentum
            rbm.wake_sleep_step(optimizer, v, h, sleep_probs, self.config.discriminative if rbm.n_labels else 0.0)
            v = h
        self.steps += 1
        return {"loss": loss}

    @torch.no_grad()
    def label_free_energies(self, x: torch.Tensor) -> torch.Tensor:
        """F(features, label) of the top RBM for every label: shape (batch, n_classes)."""
        return -self.rbms[-1].label_conditional(self.top_visible(x))[0]

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return in_chunks(lambda part: self.label_free_energies(part).argmin(1), x)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, full: bool = True) -> dict[str, float]:
        first = self.rbms[0]
        v = torch.cat([x, one_hot(y, self.n_classes, x.dtype)], 1) if first.n_labels else x
        reconstruction = first.visible_probs(first.hidden_probs(v))[:, :x.shape[1]]
        return {"error": error_rate(self.predict(x), y), "reconstruction": (reconstruction - x).pow(2).mean().item()}

    @torch.no_grad()
    def dream(self, labels: torch.Tensor, steps: int = 1000, generator: torch.Generator | None = None,
              start_temperature: float = 2.0) -> torch.Tensor:
        """Images (pixel probabilities) the net generates with each of `labels` clamped on top.

        The top RBM's chain starts from noise at `start_temperature` and cools to 1 (see `annealing`).
        """
        generator = generator or self.generator
        labels = labels.to(self.device)
        top = self.rbms[-1]
        n_units = top.weight.shape[0] - top.n_labels
        v = torch.cat([torch.bernoulli(torch.full((len(labels), n_units), 0.5, device=self.device), generator=generator),
                       one_hot(labels, self.n_classes)], 1)
        clamp = torch.zeros_like(v, dtype=torch.bool)
        clamp[:, n_units:] = True
        probs, _ = top.gibbs(v, steps, generator, clamp=clamp, inverse_temperatures=annealing(steps, start_temperature))
        h = probs[:, :n_units]
        for rbm in reversed(self.rbms[:-1]):  # a top-down pass, probabilities all the way to the pixels
            h = rbm.visible_probs(h)
        return h


def annealing(steps: int, start_temperature: float) -> torch.Tensor:
    """Inverse temperatures for `steps` Gibbs steps: 1/T rises linearly from 1/`start_temperature` to 1 over
    the first half of the steps and stays at 1 for the second half, which samples the model itself."""
    if start_temperature < 1:
        raise ValueError(f"start_temperature must be >= 1 (1: no annealing), got {start_temperature}")
    cooling = steps // 2
    return torch.cat([torch.linspace(1 / start_temperature, 1.0, cooling + 1)[:-1], torch.ones(steps - cooling)])


def ais_log_partition(rbm: RBM, base_visible_mean: torch.Tensor, betas: torch.Tensor, runs: int = 100,
                      generator: torch.Generator | None = None) -> tuple[float, float]:
    """log Z of a binary RBM by annealed importance sampling (Salakhutdinov & Murray 2008).

    Base model A: independent visible units with the data's mean and the RBM's hidden units with no
    connections, so log Z_A = sum_i softplus(b_A_i) + n_hidden log 2 exactly. Intermediate models:
    p_k(v) ~ exp((1 - beta_k) b_A.v + beta_k b_B.v) prod_j (1 + exp(beta_k (c_j + v W_j))).
    Returns (estimate of log Z_B, its standard error from the spread of the importance weights).
    """
    if rbm.n_labels:
        raise ValueError("AIS here is for an RBM without label units")
    generator = generator or torch.Generator(rbm.weight.device).manual_seed(0)
    mean = base_visible_mean.clamp(1e-3, 1 - 1e-3)
    base_bias = torch.log(mean) - torch.log1p(-mean)
    log_z_base = F.softplus(base_bias).sum().item() + rbm.hidden_bias.numel() * math.log(2)

    def log_p_star(v: torch.Tensor, beta: float) -> torch.Tensor:
        return ((1 - beta) * (v @ base_bias) + beta * (v @ rbm.visible_bias)
                + F.softplus(beta * (v @ rbm.weight + rbm.hidden_bias)).sum(1))

    with torch.no_grad():
        v = torch.bernoulli(mean.expand(runs, -1), generator=generator)
        log_w = torch.zeros(runs, dtype=torch.float64, device=v.device)
        for previous, beta in zip(betas[:-1].tolist(), betas[1:].tolist()):
            log_w += (log_p_star(v, beta) - log_p_star(v, previous)).double()
            # A Gibbs transition that leaves p_beta invariant.
            h = torch.bernoulli(torch.sigmoid(beta * (v @ rbm.weight + rbm.hidden_bias)), generator=generator)
            v = torch.bernoulli(torch.sigmoid((1 - beta) * base_bias + beta * (h @ rbm.weight.T + rbm.visible_bias)),
                                generator=generator)
    log_mean_w = (torch.logsumexp(log_w, 0) - math.log(runs)).item()
    relative = (log_w - log_w.max()).exp()
    standard_error = (relative.std() / relative.mean() / math.sqrt(runs)).item()
    return log_z_base + log_mean_w, standard_error


def ais_betas(count: int = 14500) -> torch.Tensor:
    """Salakhutdinov & Murray's schedule: 1/29 of the steps to 0.5, 8/29 to 0.9, the rest to 1."""
    first, second = count // 29, 8 * count // 29
    return torch.cat([torch.linspace(0, 0.5, first, dtype=torch.float64)[:-1],
                      torch.linspace(0.5, 0.9, second, dtype=torch.float64)[:-1],
                      torch.linspace(0.9, 1.0, count - first - second + 2, dtype=torch.float64)])
