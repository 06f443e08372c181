"""Dendritic cortical microcircuits (Sacramento, Costa, Bengio & Senn, NeurIPS 2018, "Dendritic cortical
microcircuits approximate the backpropagation algorithm").

Each pyramidal neuron of layer k has a soma u_k, a basal compartment fed bottom-up and an apical compartment fed
top-down from layer k+1 and by the layer's own interneurons (SST-like), which learn to predict layer k+1:

    v_B,k = W^PP_k r_{k-1} + b_k              basal potential (r_0 = x, the input rates)
    v_A,k = W^PB_k r_{k+1} + W^PI_k r^I_k     apical potential: top-down input minus its prediction
    v_I,k = W^IP_k r_k + b^I_k                dendritic potential of the interneurons (as many as layer k+1)
    r = phi(u)                                rates: the logistic function (default), or the soft rectifier
                                              log(1 + e^u) (`activation="softplus"`)

    du_k/dt   = -g_lk u_k + g_B (v_B,k - u_k) + g_A (v_A,k - u_k)                      hidden layers
    du_N/dt   = -g_lk u_N + g_B (v_B,N - u_N) + g_som (u_target - u_N)                 output layer, nudged
    du^I_k/dt = -g_lk u^I_k + g_D (v_I,k - u^I_k) + g_som (u_{k+1} - u^I_k)            interneurons, nudged
                                                                                       by the layer above
with the paper's conductances g_lk = 0.1, g_A = 0.8, g_B = g_D = 1, g_som = 0.8 (the nudging strength; its
g_som term is absent where there is no target). Plasticity is local and runs continuously:

    dW^PP_k/dt = eta_PP (phi(u_k) - phi(v^_B,k)) r_{k-1}^T,  v^_B,k = g_B / (g_lk + g_B + g_A) v_B,k
                 (output: g_B / (g_lk + g_B)): basal synapses make the dendritic prediction of the somatic
                 rate match the actual rate (Urbanczik & Senn 2014);
    dW^IP_k/dt = eta_IP (phi(u^I_k) - phi(v^_I,k)) r_k^T,   v^_I,k = g_D / (g_lk + g_D) v_I,k: likewise;
    db_k/dt, db^I_k/dt: the same rules for a synapse from an always-active input (rate 1), the bias of each
                 basal and interneuron dendrite (`bias=True`, the default; the paper's equations have none);
    dW^PI_k/dt = eta_PI (0 - v_A,k) (r^I_k)^T: interneuron-to-pyramid synapses silence the apical compartment;
    dW^PB_k/dt = eta_PB (phi(u_k) - phi(W^PB_k r_{k+1})) r_{k+1}^T when the top-down weights learn
                 (`top_down="learned"`), or W^PB fixed and random (`"random"`: feedback-alignment-like).

In the self-predicting state (W^IP_k = W^PP_{k+1} rescaled, W^PI_k = -W^PB_k) the interneurons cancel the
top-down input and v_A = 0: with no target the net computes a plain feedforward pass. A target nudges the output;
the interneurons, nudged only by g_som, cannot follow, so the apical compartments carry
W^PB (phi(u_{k+1}) - phi(u^I_k)), an error signal, and the basal rule becomes backprop's update when
W^PB_k = W^PP_{k+1}^T, in the limit of weak nudging (the paper's eq. 5-6; tested here against autograd).

Integration (`dynamics`): "euler" integrates the equations above with step `dt` for `steps` steps per example,
the weights changing at every step (learning without phases); "steady-state" (the default) takes each population
to its fixed point u = (sum_i g_i v_i) / (g_lk + sum_i g_i) in one sweep: a feedforward pass (the state with no
target in the self-predicting state), then from the output down, each layer given the one above: exact without a
target, and to first order in the nudging with one (the output is then settled once more on the hidden rates it
now receives). It then applies each rule once. The paper also trains on
MNIST with a steady-state simplification of its dynamics. (Iterating the fixed-point equations for all layers at
once instead diverged on MNIST within 100 steps: the top-down loop's gain grows above 1 as the weights learn.)

Learning rates (SGD, one per population). The hidden layers learn only while the net stays near the
self-predicting state: the interneurons must follow the output's basal weights as they learn. If the output learns
faster than W^IP can follow, the apical compartments stop cancelling without a target and their residue swamps
the error signal (on MNIST the hidden update's cosine with backprop's gradient then stays near 0). eta_IP has a
ceiling of its own: the rates it multiplies are logistic, all positive, so the step along their mean direction
grows with the layer's width, and eta_IP = 0.2 on 500 units already oscillates. Hence the defaults: a slow output
(eta_PP = 0.05), interneurons twice as fast (eta_IP = 0.1), and a target potential of 2 (rate 0.88 against 0.5
for the other classes), which doubles the error signal the slow output can pass down. Measured on MNIST 784-500-10
(10 epochs, seed 0, benchmarks/results/logs/dendritic_rates_sweep.log).

Biases. The paper's potentials have no bias term; here each basal and interneuron dendrite has one by default, a
synapse from an always-active input that learns by its population's rule (so it stays local, and starts at 0, in
the self-predicting state). On MNIST 784-500-10 (30 epochs, minibatches of 20) they took the test error from
2.31% to 2.22% (seed 0) and from 2.33% to 2.28% (seed 1); standardising the input instead gained no more
(benchmarks/results/logs/dendritic_bias_sweep.log). `bias=False` gives the paper's equations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .base import Learner, in_chunks, layer_sizes, one_hot

ACTIVATIONS = {"sigmoid": torch.sigmoid, "softplus": F.softplus}
DERIVATIVES = {"sigmoid": lambda u: torch.sigmoid(u) * (1 - torch.sigmoid(u)), "softplus": torch.sigmoid}


@dataclass
class DendriticConfig:
    hidden: tuple[int, ...] = field(default=(500,), metadata={"help": "hidden layer sizes"})
    lr: tuple[float, ...] = field(default=(100.0, 0.05), metadata={
        "help": "eta_PP of each basal weight matrix, bottom to top (one per layer + 1); a hidden layer's error "
                "arrives scaled by a product of conductance ratios and rate slopes, each below 1, hence its larger "
                "rate"})
    lr_interneuron: float = field(default=0.1, metadata={"help": "eta_IP: pyramid-to-interneuron weights"})
    lr_apical: float = field(default=0.05, metadata={"help": "eta_PI: interneuron-to-pyramid weights"})
    lr_top_down: float = field(default=0.05, metadata={"help": "eta_PB: top-down weights, when they learn"})
    bias: bool = field(default=True, metadata={
        "help": "learned biases b_k and b^I_k on the basal and interneuron dendrites (see the docstring)"})
    top_down: str = field(default="random", metadata={
        "choices": ("random", "learned"),
        "help": "top-down weights W^PB: fixed random, or learned (on MNIST, 10 epochs: 90% error with eta_PB = 0.05, "
                "13% with 0.005, as the interneurons cannot cancel a changing top-down input)"})
    dynamics: str = field(default="steady-state", metadata={
        "choices": ("steady-state", "euler"), "help": "fixed point per example, or Euler steps of the dynamics"})
    steps: int = field(default=20, metadata={"help": "Euler steps per example (dynamics='euler')"})
    dt: float = field(default=0.1, metadata={"help": "Euler step (dynamics='euler')"})
    g_lk: float = field(default=0.1, metadata={"help": "leak conductance"})
    g_a: float = field(default=0.8, metadata={"help": "apical-to-soma coupling"})
    g_b: float = field(default=1.0, metadata={"help": "basal-to-soma coupling"})
    g_d: float = field(default=1.0, metadata={"help": "interneuron dendrite-to-soma coupling"})
    g_som: float = field(default=0.8, metadata={"help": "nudging conductance (target, and layer above)"})
    activation: str = field(default="sigmoid", metadata={
        "choices": tuple(ACTIVATIONS), "help": "rate function (on MNIST the soft rectifier did not learn at any rate tried)"})
    target_value: float = field(default=2.0, metadata={"help": "target potential of the right class (others 0)"})

    def __post_init__(self):
        self.hidden, self.lr = layer_sizes(self.hidden), tuple(self.lr)
        if len(self.lr) != len(self.hidden) + 1 or min(self.lr) < 0:
            raise ValueError(f"lr needs {len(self.hidden) + 1} values >= 0, one per basal weight matrix")
        if min(self.lr_interneuron, self.lr_apical, self.lr_top_down) < 0 or self.steps < 1 or not 0 < self.dt <= 1:
            raise ValueError("learning rates must be >= 0, steps >= 1 and 0 < dt <= 1")
        if min(self.g_lk, self.g_a, self.g_b, self.g_d, self.g_som) < 0 or self.g_lk + self.g_b <= 0:
            raise ValueError("conductances must be >= 0")
        if self.top_down not in ("random", "learned") or self.dynamics not in ("steady-state", "euler"):
            raise ValueError("top_down must be 'random' or 'learned', dynamics 'steady-state' or 'euler'")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}")


@dataclass
class State:
    """Somatic potentials of the pyramids (per layer, output last) and interneurons (per hidden layer), with the
    dendritic potentials they were last driven by."""

    u: list[torch.Tensor]
    u_i: list[torch.Tensor]
    basal: list[torch.Tensor] = field(default_factory=list)
    apical: list[torch.Tensor] = field(default_factory=list)
    inter: list[torch.Tensor] = field(default_factory=list)


class DendriticMicrocircuit(Learner):
    Config = DendriticConfig
    name = "dendritic"
    graph_safe = True

    def __init__(self, n_inputs: int, n_classes: int, config: DendriticConfig | None = None, seed: int = 0):
        config = config or DendriticConfig()
        super().__init__(n_inputs, n_classes, config, seed)
        self.sizes = sizes = (n_inputs, *config.hidden, n_classes)
        self.phi = ACTIVATIONS[config.activation]

        def matrix(rows: int, cols: int, gain: float = 1.0) -> nn.Parameter:
            """Uniform with variance gain^2 / cols: unit-variance potentials from unit-variance rates."""
            bound = gain * (3 / cols) ** 0.5
            return nn.Parameter(torch.empty(rows, cols).uniform_(-bound, bound), requires_grad=False)

        hidden = range(1, len(sizes) - 1)
        self.basal = nn.ParameterList(matrix(b, a, 1 / self.attenuation(k))  # W^PP_k: k-1 -> k, through the
                                      for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1))  # attenuation
        self.top_down = nn.ParameterList(matrix(sizes[k], sizes[k + 1]) for k in hidden)  # W^PB_k: k+1 -> k
        # The self-predicting state: interneurons copy the layer above's basal input, rescaled to its attenuation
        # (g_B over its total conductance, against the interneuron's g_D / (g_lk + g_D)), and cancel the top-down.
        self.to_inter = nn.ParameterList(
            nn.Parameter(self.basal[k].detach() * self.attenuation(k + 1) / self.inter_attenuation(), requires_grad=False)
            for k in hidden)  # W^IP_k
        self.from_inter = nn.ParameterList(nn.Parameter(-w.detach().clone(), requires_grad=False)
                                           for w in self.top_down)  # W^PI_k
        # Biases start at 0 (so the self-predicting state holds for them too) and stay there if `bias` is off.
        self.basal_bias = nn.ParameterList(nn.Parameter(torch.zeros(n), requires_grad=False) for n in sizes[1:])
        self.inter_bias = nn.ParameterList(nn.Parameter(torch.zeros(sizes[k + 1]), requires_grad=False)
                                           for k in hidden)
        groups = [{"params": [w, *([b] if config.bias else [])], "lr": lr}
                  for w, b, lr in zip(self.basal, self.basal_bias, config.lr)]
        groups += [{"params": [*self.to_inter, *(self.inter_bias if config.bias else [])],
                    "lr": config.lr_interneuron},
                   {"params": list(self.from_inter), "lr": config.lr_apical}]
        if config.top_down == "learned":
            groups.append({"params": list(self.top_down), "lr": config.lr_top_down})
        self.optimizers = [torch.optim.SGD([g for g in groups if g["params"]], lr=config.lr[0])]

    # ----- the neurons

    def attenuation(self, k: int) -> float:
        """v^_B,k / v_B,k: the basal prediction of layer k's soma (no apical compartment at the output)."""
        c = self.config
        return c.g_b / (c.g_lk + c.g_b + (c.g_a if k < len(self.sizes) - 1 else 0.0))

    def inter_attenuation(self) -> float:
        return self.config.g_d / (self.config.g_lk + self.config.g_d)

    def bottom_up(self, x: torch.Tensor) -> torch.Tensor:
        """v_B,1 = W^PP_1 x + b_1, layer 1's basal potential: the net's largest product, the only one with the
        input. It does not change while the net settles, so every pass of a presentation shares it."""
        return self.basal_potential(1, x)

    def basal_potential(self, k: int, rates_below: torch.Tensor) -> torch.Tensor:
        """v_B,k = W^PP_k r_{k-1} + b_k (k = 1 .. N)."""
        return rates_below @ self.basal[k - 1].T + self.basal_bias[k - 1]

    def inter_potentials(self, rates: list[torch.Tensor]) -> list[torch.Tensor]:
        """v_I,k = W^IP_k r_k + b^I_k of each hidden layer's interneurons, given the rates r_1 .. r_N."""
        return [r @ w.T + b for r, w, b in zip(rates, self.to_inter, self.inter_bias)]

    def feedforward(self, x: torch.Tensor, bottom: torch.Tensor | None = None) -> State:
        """The net's state when every apical potential is zero: each soma at its basal prediction (`bottom`: the
        input's `bottom_up`, if already computed)."""
        u = [self.attenuation(1) * (self.bottom_up(x) if bottom is None else bottom)]
        for k in range(2, len(self.sizes)):
            u.append(self.attenuation(k) * self.basal_potential(k, self.phi(u[-1])))
        u_i = [self.inter_attenuation() * v for v in self.inter_potentials(list(map(self.phi, u)))]
        return State(u, u_i)

    def drive(self, bottom: torch.Tensor, state: State, target: torch.Tensor | None) -> tuple[list, list]:
        """Per compartment population: (sum_i g_i v_i, g_lk + sum_i g_i), the right-hand side of du/dt = A - G u,
        given the input's `bottom_up`; records the dendritic potentials in `state`."""
        c, last = self.config, len(state.u) - 1
        rates = list(map(self.phi, state.u))  # r_1 .. r_N
        state.basal = [bottom, *(self.basal_potential(k, rates[k - 2]) for k in range(2, len(self.sizes)))]
        state.apical = [rates[k + 1] @ w_pb.T + self.phi(u_i) @ w_pi.T
                        for k, (w_pb, w_pi, u_i) in enumerate(zip(self.top_down, self.from_inter, state.u_i))]
        state.inter = self.inter_potentials(rates)
        pyramids = []
        for k, v_b in enumerate(state.basal):
            if k < last:
                pyramids.append((c.g_b * v_b + c.g_a * state.apical[k], c.g_lk + c.g_b + c.g_a))
            elif target is not None:
                pyramids.append((c.g_b * v_b + c.g_som * target, c.g_lk + c.g_b + c.g_som))
            else:
                pyramids.append((c.g_b * v_b, c.g_lk + c.g_b))
        inter = [(c.g_d * v_i + c.g_som * state.u[k + 1], c.g_lk + c.g_d + c.g_som) for k, v_i in enumerate(state.inter)]
        return pyramids, inter

    def euler_step(self, bottom: torch.Tensor, state: State, target: torch.Tensor | None) -> State:
        """One Euler step of the dynamics du/dt = A - G u, every population at once."""
        pyramids, inter = self.drive(bottom, state, target)
        dt = self.config.dt
        return State([u + dt * (a - g * u) for u, (a, g) in zip(state.u, pyramids)],
                     [u + dt * (a - g * u) for u, (a, g) in zip(state.u_i, inter)])

    def top_down_sweep(self, bottom: torch.Tensor, state: State, target: torch.Tensor | None) -> State:
        """The steady state to first order in the nudging: from the feedforward state, each population set to its
        fixed point u = A / G given the layers below as they are, from the output down (the output with its
        target, then each layer's interneurons and pyramids with the layer above already settled)."""
        u, u_i = list(state.u), list(state.u_i)
        for k in reversed(range(len(u))):
            if k < len(u_i):  # a hidden layer: its interneurons follow the layer above, then its apical input
                pyramids, inter = self.drive(bottom, State(u, u_i), target)
                u_i[k] = inter[k][0] / inter[k][1]
            pyramids, _ = self.drive(bottom, State(u, u_i), target)
            u[k] = pyramids[k][0] / pyramids[k][1]
        pyramids, _ = self.drive(bottom, State(u, u_i), target)  # the output again, on the hidden rates it now gets
        u[-1] = pyramids[-1][0] / pyramids[-1][1]
        return State(u, u_i)

    def settle(self, x: torch.Tensor, target: torch.Tensor | None = None) -> State:
        """The state the dynamics reach with input x (and the target, if given), by `dynamics`; its dendritic
        potentials recorded."""
        bottom = self.bottom_up(x)
        return self.settle_from(bottom, self.feedforward(x, bottom), target)

    def settle_from(self, bottom: torch.Tensor, state: State, target: torch.Tensor | None) -> State:
        """`settle`, from the feedforward `state` of the input whose `bottom_up` is `bottom`."""
        if self.config.dynamics == "euler":
            for _ in range(self.config.steps):
                state = self.euler_step(bottom, state, target)
        else:
            state = self.top_down_sweep(bottom, state, target)
        self.drive(bottom, state, target)
        return state

    # ----- plasticity

    def weight_changes(self, x: torch.Tensor, state: State) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, its change per unit of learning rate) for every plastic synapse, each from the pre- and
        postsynaptic quantities of its own synapse, averaged over the batch."""
        n, rates = len(x), [x, *map(self.phi, state.u)]
        changes, bias_changes = [], []
        for k, (w, b, v_b) in enumerate(zip(self.basal, self.basal_bias, state.basal)):
            error = rates[k + 1] - self.phi(self.attenuation(k + 1) * v_b)
            changes.append((w, error.T @ rates[k] / n))
            bias_changes.append((b, error.mean(0)))
        for k, (w_ip, b_i, w_pi, w_pb) in enumerate(zip(self.to_inter, self.inter_bias, self.from_inter,
                                                          self.top_down)):
            r_i = self.phi(state.u_i[k])
            error = r_i - self.phi(self.inter_attenuation() * state.inter[k])
            changes.append((w_ip, error.T @ rates[k + 1] / n))
            bias_changes.append((b_i, error.mean(0)))
            changes.append((w_pi, -state.apical[k].T @ r_i / n))
            if self.config.top_down == "learned":
                changes.append((w_pb, (rates[k + 1] - self.phi(rates[k + 2] @ w_pb.T)).T @ rates[k + 2] / n))
        return changes + (bias_changes if self.config.bias else [])

    def learn(self, x: torch.Tensor, state: State, scale: float = 1.0) -> None:
        for weight, change in self.weight_changes(x, state):
            weight.grad = -scale * change  # SGD's step adds lr * scale * change
        self.optimizers[0].step()

    def target(self, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return self.config.target_value * one_hot(y, self.n_classes, dtype)

    @torch.no_grad()
    def step_towards(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Present x with the output nudged towards the potentials `target`, and let the synapses learn; returns
        the output the net gave before (its feedforward prediction)."""
        bottom = self.bottom_up(x)
        state = self.feedforward(x, bottom)
        prediction = state.u[-1]
        if self.config.dynamics == "euler":  # plasticity at every step, while the target nudges the output
            for step in range(self.config.steps):
                state = self.euler_step(bottom, state, target)
                self.drive(bottom, state, target)  # the dendritic potentials of the new state
                self.learn(x, state, self.config.dt)
                if step + 1 < self.config.steps:
                    bottom = self.bottom_up(x)  # the basal weights just changed
        else:
            self.learn(x, self.settle_from(bottom, state, target))
        return prediction

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        target = self.target(y, x.dtype)
        prediction = self.step_towards(x, target)
        return {"loss": 0.5 * (prediction - target).pow(2).sum(1).mean(),
                "train_error": (prediction.argmax(1) != y).float().mean()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The class whose output soma is highest once the net has settled without a target."""
        return in_chunks(lambda part: self.settle(part).u[-1].argmax(1), x)

    def backprop_gradients(self, x: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
        """Backprop's descent direction for each basal matrix, by autograd through the feedforward net (the
        self-predicting state's function), for the output error phi'(v^_N) (u_target - v^_N): the squared error
        between target and output rates, to first order."""
        weights = [w.detach().clone().requires_grad_() for w in self.basal]
        with torch.enable_grad():
            rates = x
            for k, (w, b) in enumerate(zip(weights, self.basal_bias), start=1):
                v_hat = self.attenuation(k) * (rates @ w.T + b)
                rates = self.phi(v_hat)
            error = (DERIVATIVES[self.config.activation](v_hat) * (target - v_hat)).detach()
            gradients = torch.autograd.grad(-(error * v_hat).sum() / len(x), weights)
        return [-g for g in gradients]

    def alignment(self, x: torch.Tensor, y: torch.Tensor) -> list[float]:
        """Cosine between each basal matrix's update under the target and backprop's descent direction."""
        with torch.no_grad():
            target = self.target(y, x.dtype)
            changes = self.weight_changes(x, self.settle(x, target))[:len(self.basal)]
        return [F.cosine_similarity(change.flatten(), reference.flatten(), 0).item()
                for (_, change), reference in zip(changes, self.backprop_gradients(x, target))]

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, full: bool = True) -> dict[str, float]:
        """Test error; the apical potentials' RMS with no target (0 in the self-predicting state); and the hidden
        layers' update alignment with backprop on the first 500 test images."""
        state = self.settle(x[:500])
        cosines = self.alignment(x[:500], y[:500])
        return {"error": super().evaluate(x, y)["error"],
                "apical_rms": torch.cat([v.flatten() for v in state.apical]).pow(2).mean().sqrt().item(),
                **{f"alignment_layer{k + 1}": cosine for k, cosine in enumerate(cosines)}}
