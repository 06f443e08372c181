"""Equilibrium Propagation (Scellier & Bengio 2017, "Equilibrium Propagation: Bridging the Gap
between Energy-Based Models and Backpropagation"), with symmetric nudging (Laborieux et al. 2021).

A layered Hopfield-like network with states s = (s_1, ..., s_L, y), the input x clamped as s_0,
hard-sigmoid rho(s) = clip(s, 0, 1), symmetric weights W_k between layers k and k+1, and energy
    E(s) = 1/2 sum_k |s_k|^2 - sum_k rho(s_k) W_k rho(s_{k+1}) - sum_k b_k rho(s_k)      (eq. 1)
    C(s) = 1/2 |y - target|^2,        F = E + beta C                                     (eq. 2)
Both phases follow ds/dt = -dF/ds (eq. 3), discretised as a projected gradient step
    s <- clip(s - step_size * dF/ds, 0, 1)
(rho' = 1 inside the box), all layers at once and vectorised over the batch:
    free phase   beta = 0:     relax from zero to the fixed point s^0
    nudged phase beta != 0:    relax on from s^0, the output pulled towards the target -> s^beta
The update is local and Hebbian: with dE/dW_k = -rho(s_k)^T rho(s_{k+1}),
    one-sided:  dtheta ~ -(dF/dtheta(s^beta) - dF/dtheta(s^0)) / beta                   (eq. 12)
    symmetric:  dtheta ~ -(dF/dtheta(s^beta) - dF/dtheta(s^-beta)) / (2 beta)
and as beta -> 0 it equals minus the gradient of the loss C(s^0) (Theorem 1); the symmetric
estimate cancels the first-order error in beta. `nudging="random"` draws beta's sign per batch, as
Scellier & Bengio's own code does.

Units: their code's cost is |y - target|^2, without the 1/2 of eq. 2, so its nudging force and its
gradient are twice ours at the same beta and learning rate. Their beta = 0.5, rates (0.1, 0.05) are
beta = 1, rates (0.2, 0.1) here (the defaults); with their numbers unconverted the one-hidden-layer net
learned at half speed and stalled at 2.6-2.8% MNIST test error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .base import Learner, in_chunks, layer_sizes, one_hot


def rho(s: torch.Tensor) -> torch.Tensor:
    """Hard sigmoid."""
    return s.clamp(0.0, 1.0)


@dataclass
class EquilibriumPropConfig:
    hidden: tuple[int, ...] = field(default=(500,), metadata={"help": "hidden layer sizes"})
    lr: tuple[float, ...] = field(default=(0.2, 0.1), metadata={
        "help": "SGD learning rate of each weight matrix, bottom to top (one per layer + 1)"})
    beta: float = field(default=1.0, metadata={"help": "nudging strength of the second phase"})
    nudging: str = field(default="symmetric", metadata={
        "choices": ("one-sided", "symmetric", "random"),
        "help": "one-sided (+beta), symmetric (+beta and -beta) or random (sign drawn per batch)"})
    free_steps: int = field(default=20, metadata={"help": "relaxation steps of the free phase"})
    nudged_steps: int = field(default=4, metadata={"help": "relaxation steps of each nudged phase"})
    step_size: float = field(default=0.5, metadata={"help": "step of the discretised dynamics ds = -step * dF/ds"})

    def __post_init__(self):
        self.hidden, self.lr = layer_sizes(self.hidden), tuple(self.lr)
        if len(self.lr) != len(self.hidden) + 1 or min(self.lr) <= 0:
            raise ValueError(f"lr needs {len(self.hidden) + 1} positive values, one per weight matrix")
        if self.beta <= 0 or self.free_steps < 1 or self.nudged_steps < 1 or not 0 < self.step_size <= 1:
            raise ValueError("need beta > 0, free_steps >= 1, nudged_steps >= 1 and 0 < step_size <= 1")
        if self.nudging not in ("one-sided", "symmetric", "random"):
            raise ValueError("nudging must be 'one-sided', 'symmetric' or 'random'")


class EquilibriumProp(Learner):
    Config = EquilibriumPropConfig
    name = "eqprop"
    graph_safe = True

    def __init__(self, n_inputs: int, n_classes: int, config: EquilibriumPropConfig | None = None, seed: int = 0):
        config = config or EquilibriumPropConfig()
        super().__init__(n_inputs, n_classes, config, seed)
        self.sizes = (n_inputs, *config.hidden, n_classes)
        self.weights = nn.ParameterList(
            nn.Parameter(nn.init.xavier_uniform_(torch.empty(a, b)), requires_grad=False)
            for a, b in zip(self.sizes[:-1], self.sizes[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(b), requires_grad=False) for b in self.sizes[1:])
        self.optimizers = [torch.optim.SGD(
            [{"params": [w, b], "lr": lr} for w, b, lr in zip(self.weights, self.biases, config.lr)], lr=config.lr[0])]

    def energy(self, x: torch.Tensor, states: list[torch.Tensor]) -> torch.Tensor:
        """E(s) per example (eq. 1)."""
        layers = [x, *map(rho, states)]
        energy = sum(0.5 * s.pow(2).sum(1) for s in states)
        for k, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            energy = energy - ((layers[k] @ weight) * layers[k + 1]).sum(1) - layers[k + 1] @ bias
        return energy

    def relax(self, x: torch.Tensor, states: list[torch.Tensor], steps: int, beta: float = 0.0,
              target: torch.Tensor | None = None) -> list[torch.Tensor]:
        """`steps` projected gradient steps on F = E + beta C, all layers updated together."""
        drive_from_input = x @ self.weights[0] + self.biases[0]  # constant while x is clamped
        last = len(states) - 1
        for _ in range(steps):
            layers = [rho(s) for s in states]
            new_states = []
            for k, s in enumerate(states):
                drive = drive_from_input if k == 0 else layers[k - 1] @ self.weights[k] + self.biases[k]
                if k < last:
                    drive = drive + layers[k + 1] @ self.weights[k + 1].T
                grad = s - drive  # dE/ds_k, with rho' = 1 inside the box
                if k == last and target is not None:
                    grad = grad + beta * (s - target)  # beta dC/dy
                new_states.append((s - self.config.step_size * grad).clamp(0.0, 1.0))
            states = new_states
        return states

    def free_phase(self, x: torch.Tensor, steps: int | None = None) -> list[torch.Tensor]:
        zeros = [x.new_zeros(len(x), size) for size in self.sizes[1:]]
        return self.relax(x, zeros, steps or self.config.free_steps)

    def energy_gradients(self, x: torch.Tensor, states: list[torch.Tensor]) -> list[torch.Tensor]:
        """dE/dtheta at `states`, averaged over the batch: [dW_0, db_0, dW_1, db_1, ...], each local."""
        layers = [x, *map(rho, states)]
        grads = []
        for k in range(len(self.weights)):
            grads += [-layers[k].T @ layers[k + 1] / len(x), -layers[k + 1].mean(0)]
        return grads

    def ep_gradient(self, x: torch.Tensor, target: torch.Tensor, free: list[torch.Tensor], beta: float,
                    symmetric: bool, steps: int | None = None) -> list[torch.Tensor]:
        """The EP estimate of dLoss/dtheta from the free fixed point (eq. 12 or its symmetric form)."""
        steps = steps or self.config.nudged_steps
        plus = self.relax(x, free, steps, beta, target)
        minus = self.relax(x, free, steps, -beta, target) if symmetric else free
        scale = 2 * beta if symmetric else beta
        return [(a - b) / scale for a, b in zip(self.energy_gradients(x, plus), self.energy_gradients(x, minus))]

    @torch.no_grad()
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        target = one_hot(y, self.n_classes, x.dtype)
        free = self.free_phase(x)
        beta = self.config.beta
        if self.config.nudging == "random":  # the sign drawn on the device: no wait for it
            flip = torch.rand((), generator=self.generator, device=self.device) < 0.5
            beta = torch.where(flip, -beta, beta)
        grads = self.ep_gradient(x, target, free, beta, symmetric=self.config.nudging == "symmetric")
        params = [p for pair in zip(self.weights, self.biases) for p in pair]
        for param, grad in zip(params, grads):
            param.grad = grad
        self.optimizers[0].step()
        output = free[-1]
        return {"loss": 0.5 * (output - target).pow(2).sum(1).mean(),
                "train_error": (output.argmax(1) != y).float().mean()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return in_chunks(lambda part: self.free_phase(part)[-1].argmax(1), x)
