"""A restricted Boltzmann machine learned alone, on binarised images, and judged by its test log-likelihood.

This is the model of Salakhutdinov & Murray 2008 ("On the quantitative analysis of deep belief networks"):
784 binary pixels, 500 binary hidden units, no labels, learned by contrastive divergence; their CD25(500),
with T = 25 Gibbs steps per update, gives -86.34 nats per MNIST test image. The machine itself (its energy,
Gibbs sampling, the wake-sleep update and annealed importance sampling) is `boltzmann.RBM`, the first layer of
the deep belief net; the net learns it as a stack, on grey pixels, beside the layers above. Here it learns alone:

    v      = the image, each pixel set to 1 where its intensity is over 0.5 (training and test images alike)
    wake:  h_wake = p(h | v) = sigma(c + v W)                                  -> <v h>_wake
    sleep: k steps of alternating Gibbs sampling, h ~ p(h|v), v ~ p(v|h),      -> <v h>_sleep
           from the data (CD-k, Hinton 2002) or from persistent chains (PCD-k, Tieleman 2008)
    dW = <v h>_wake - <v h>_sleep,  db = <v>_wake - <v>_sleep,  dc = <h>_wake - <h>_sleep
applied by SGD with momentum 0.5 and weight decay on W, as in Hinton's practical guide (2010). The guide raises
the momentum to 0.9 after a while (`momentum_warmup_steps`); by default it stays at 0.5 here: in rbm-ais
(784-500, lr 0.05, 2 seeds) the switch at update 3000 was followed by a fall of the test log-likelihood from
-86.65 nats to -110.61 five epochs later for CD-25, and from -106.76 to -137.23 for CD-1, as log Z grew from
about 720 to 820 and 810 to 1270 (benchmarks/results/logs/rbm_ais_momentum_0.9_after_3000_steps.md).

Its test metric is the average log-probability of the binarised test images,
    log p(v) = -F(v) - log Z,   F(v) = -b.v - sum_j softplus(c_j + v W_j),
with log Z estimated by AIS (`ais_steps` intermediate distributions, `ais_runs` runs, Salakhutdinov &
Murray's schedule). AIS starts from independent pixels at the training images' mean (kept as a running sum
over every image the machine has learned on): the base model sets the estimate's variance, not its mean.
AIS estimates Z itself without bias, so the log of the estimate tends to come out low and the log-likelihood
high. With 14,500 distributions and 100 runs one evaluation takes about a minute on 2 CPU cores for 784-500;
`--eval-every` sets how often it runs. The training loss is the reconstruction error of the pixels, a progress
signal, not what CD minimises. There are no label units: the machine does not classify; it dreams images
(`dream`: a Gibbs chain from noise, annealed as the deep belief net's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .base import Learner, in_chunks, layer_sizes
from .boltzmann import RBM, ais_betas, ais_log_partition, annealing


@dataclass
class RBMConfig:
    hidden: tuple[int, ...] = field(default=(500,), metadata={"help": "hidden units (one layer)"})
    lr: float = field(default=0.05, metadata={"help": "SGD learning rate"})
    cd_k: int = field(default=1, metadata={"help": "Gibbs steps of the sleep phase per update (the k of CD-k)"})
    sleep: str = field(default="cd", metadata={
        "choices": ("cd", "pcd"),
        "help": "where the sleep phase starts: 'cd' from the data, 'pcd' from persistent chains"})
    chains: int = field(default=100, metadata={"help": "persistent sleep chains (pcd)"})
    weight_decay: float = field(default=2e-4, metadata={"help": "L2 weight cost on the weights (not biases)"})
    momentum_warmup_steps: int = field(default=0, metadata={
        "help": "updates at momentum 0.5 before switching to 0.9 (Hinton's guide: 3000 or so); 0: never switch"})
    ais_steps: int = field(default=14500, metadata={
        "help": "intermediate distributions of each AIS estimate of log Z (Salakhutdinov & Murray: 14,500)"})
    ais_runs: int = field(default=100, metadata={"help": "AIS runs averaged per estimate"})

    def __post_init__(self):
        self.hidden = layer_sizes(self.hidden)
        if len(self.hidden) != 1:
            raise ValueError(f"an RBM has one hidden layer, got hidden={self.hidden}")
        if (self.lr <= 0 or self.cd_k < 1 or self.chains < 1 or self.weight_decay < 0
                or self.momentum_warmup_steps < 0 or self.ais_steps < 2 or self.ais_runs < 2):
            raise ValueError("need lr > 0, cd_k >= 1, chains >= 1, weight_decay >= 0, momentum_warmup_steps >= 0, "
                             "ais_steps >= 2 and ais_runs >= 2")
        if self.sleep not in ("cd", "pcd"):
            raise ValueError("sleep must be 'cd' or 'pcd'")


def binarised(x: torch.Tensor) -> torch.Tensor:
    """Each pixel 1 where its intensity is over 0.5, else 0 (the test images of the log-likelihood claim)."""
    return (x > 0.5).to(x.dtype)


class RestrictedBoltzmannMachine(Learner):
    Config = RBMConfig
    name = "rbm"

    def __init__(self, n_inputs: int, n_classes: int, config: RBMConfig | None = None, seed: int = 0):
        config = config or RBMConfig()
        super().__init__(n_inputs, n_classes, config, seed)
        self.rbm = RBM(n_inputs, config.hidden[0])
        self.register_buffer("chain", torch.bernoulli(torch.full((config.chains, n_inputs), 0.5),
                                                      generator=self.generator))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        # Pixel sums over every image learned on, and their count: the AIS base model's pixel means.
        self.register_buffer("pixel_sums", torch.zeros(n_inputs, dtype=torch.float64))
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.float64))
        self.optimizers = [torch.optim.SGD([
            {"params": [self.rbm.weight], "weight_decay": config.weight_decay},
            {"params": [self.rbm.visible_bias, self.rbm.hidden_bias], "weight_decay": 0.0},
        ], lr=config.lr, momentum=0.5)]

    @torch.no_grad()
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        (optimizer,) = self.optimizers
        warmup = self.config.momentum_warmup_steps
        for group in optimizer.param_groups:
            group["momentum"] = 0.9 if warmup and self.steps >= warmup else 0.5
        v = binarised(x)
        self.pixel_sums += v.sum(0, dtype=torch.float64)
        self.images_seen += len(v)
        h = self.rbm.hidden_probs(v)  # wake
        if self.config.sleep == "pcd":
            sleep_probs, sleep_sample = self.rbm.gibbs(self.chain, self.config.cd_k, self.generator)
            self.chain.copy_(sleep_sample)
        else:
            sleep_probs, _ = self.rbm.gibbs(v, self.config.cd_k, self.generator, first_hidden_probs=h)
        loss = (self.rbm.visible_probs(h) - v).pow(2).mean()
        self.rbm.wake_sleep_step(optimizer, v, h, sleep_probs)
        self.steps += 1
        return {"loss": loss}

    @torch.no_grad()
    def dream(self, count: int, steps: int = 1000, generator: torch.Generator | None = None,
              start_temperature: float = 2.0) -> torch.Tensor:
        """`count` images (pixel probabilities) the machine generates: a Gibbs chain from random pixels, from
        `start_temperature` cooled to 1 over its first half (see `boltzmann.annealing`)."""
        generator = generator or self.generator
        v = torch.bernoulli(torch.full((count, self.n_inputs), 0.5, device=self.device), generator=generator)
        probs, _ = self.rbm.gibbs(v, steps, generator, inverse_temperatures=annealing(steps, start_temperature))
        return probs

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("an RBM learned without labels does not classify; it reports its test "
                                  "log-likelihood (evaluate)")

    @torch.no_grad()
    def log_partition(self) -> tuple[float, float]:
        """(log Z by AIS, its standard error); the same estimate for the same weights (a fixed generator)."""
        means = (self.pixel_sums / self.images_seen.clamp(min=1)).to(self.rbm.weight.dtype)
        return ais_log_partition(self.rbm, means, ais_betas(self.config.ais_steps), self.config.ais_runs,
                                 torch.Generator(self.device).manual_seed(0))

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, full: bool = True) -> dict[str, float]:
        v = binarised(x)
        log_z, log_z_error = self.log_partition()
        negative_free_energy = in_chunks(lambda part: -self.rbm.free_energy(part), v)
        reconstruction = in_chunks(lambda part: (self.rbm.visible_probs(self.rbm.hidden_probs(part)) - part)
                                   .pow(2).mean(1), v)
        return {"log_likelihood": negative_free_energy.mean().item() - log_z, "log_z": log_z,
                "log_z_standard_error": log_z_error, "reconstruction": reconstruction.mean().item()}
