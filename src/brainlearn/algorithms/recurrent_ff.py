"""Recurrent, GLOM-like Forward-Forward (Hinton 2022, sec. 3.4: "Using FF to model top-down effects in
perception").

A static image is treated as a boring video. Hidden layers 1..L are updated together at every time step
from the layer-normalised activities of the step before, of the layer below (bottom-up), the layer above
(top-down) and, as an option, of the layer itself (lateral). The image is layer 0, and the label, a
one-hot vector clamped for the whole video, is layer L + 1:
    z_l(t) = U_l LN(h_{l-1}(t-1)) + D_l LN(h_{l+1}(t-1)) [+ R_l LN(h_l(t-1))] + b_l
    h_l(t) = damping h_l(t-1) + (1 - damping) relu(z_l(t))                      (synchronous, damped)
Before step 1 the video starts from one bottom-up pass (U and b only).

Learning is local in layers and in time: every layer at every step has its own FF loss on its own
goodness G = |h_l(t)|^2 (eq. 1), and h(t-1) is detached, so no gradient crosses a layer or a step.
Positive videos carry the right label, negative videos a wrong one, random or hard (drawn from a linear
softmax on the activities of a video with the neutral label, as in the feed-forward version). Objectives:
    "high": goodness above theta for positive data, below for negative (the feed-forward choice)
    "low":  the inverse, low activity on positive data, the predictive-coding-like choice of sec. 3.4
Classification runs one video per candidate label and picks the label whose goodness, summed over the
hidden layers and the steps of `test_window` (Hinton: 3 to 5), is highest ("high") or lowest ("low");
`goodness_top_k` shortlists the candidates from the softmax, as in the feed-forward FF.

The reference codes' recipe (brainlearn issue 19; see forward_forward.py for each element and its source) applies
here too, from the same config fields: `RecurrentFFConfig` extends `ForwardForwardConfig`, and the optimizers
(Adam, or SGD with momentum; weight decay), the full-gradient ReLU of the damped update and the N(0, 1/fan_out)
initialisation of every connection are the feed-forward FF's. Peer normalisation adds, for every layer at every
step t, peer_normalization * mean_i (mean_k m_k - m_i)^2 to that step's loss, each step updating the running mean
m <- mu m + (1 - mu) mean_batch(h_l(t)) over positive videos. The label is a layer of its own, layer-normalised
before D_l reads it, so its value cannot matter: `label_value` must stay 1. Defaults keep this learner's own
first recipe (Adam, torch's initialisation, no recipe element): on MNIST (784-500-500, 5 epochs, seed 0;
benchmarks/results/logs/rff_recipe_sweep.log) no element lowered the goodness error beyond the spread between
seeds. The fan-out initialisation halved the softmax's error but raised the goodness error (low: 2.55% -> 2.77%,
high: 3.50% -> 4.27%); peer normalisation moved it by less than seeds do; SGD with momentum at FF's rate (1e-3) did
not learn, as the loss here sums 8 steps, and at a rate 8 times lower learned but trailed Adam (3.05%, 3.58%).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .base import Learner, in_chunks, one_hot
from .forward_forward import (NEUTRAL, ForwardForward, ForwardForwardConfig, SoftmaxReadout, ff_loss, goodness,
                              layer_norm, peer_loss, wrong_labels)
from .local import connection, map_sizes


@dataclass
class RecurrentFFConfig(ForwardForwardConfig):
    """The feed-forward FF's fields (the recipe included) and the recurrence's."""
    iterations: int = field(default=8, metadata={"help": "time steps of each video"})
    damping: float = field(default=0.3, metadata={"help": "share of its old state a layer keeps at each step"})
    lateral: bool = field(default=False, metadata={"help": "add each layer's own previous state as an input"})
    objective: str = field(default="high", metadata={
        "choices": ("high", "low"), "help": "goodness high ('high') or low ('low') for positive data"})
    test_window: tuple[int, ...] = field(default=(3, 5), metadata={
        "help": "first and last step (from 1) whose goodness is summed to classify"})
    local_field: int = field(default=0, metadata={
        "help": "0: dense connections; k: locally connected ones (bottom-up, top-down, lateral) with k x k "
                "receptive fields, as in Hinton's CIFAR-10 nets (square images; hidden sizes: units per "
                "location x pixels); the label's connections stay dense"})
    init: str = field(default="torch", metadata={
        "choices": ("torch", "fan-out"),
        "help": "connection weights: torch's default, or N(0, 1/fan_out) with zero biases (loeweX)"})

    def __post_init__(self):
        super().__post_init__()
        self.test_window = tuple(self.test_window)
        if self.iterations < 1 or not 0 <= self.damping < 1:
            raise ValueError("need iterations >= 1 and 0 <= damping < 1")
        if len(self.test_window) != 2 or not 1 <= self.test_window[0] <= self.test_window[1] <= self.iterations:
            raise ValueError(f"test_window must be two steps FIRST LAST with 1 <= FIRST <= LAST <= {self.iterations}")
        if self.objective not in ("high", "low"):
            raise ValueError("objective must be 'high' or 'low'")
        if self.label_value != 1.0:
            raise ValueError("label_value must be 1: the label is a layer-normalised layer of its own, so its "
                             "value has no effect")


class RecurrentFF(SoftmaxReadout, Learner):
    Config = RecurrentFFConfig
    name = "rff"
    graph_safe = True
    # The feed-forward FF's optimizers and ReLU, read from the same config fields.
    make_optimizer = ForwardForward.make_optimizer
    activation = ForwardForward.activation

    def __init__(self, n_inputs: int, n_classes: int, config: RecurrentFFConfig | None = None, seed: int = 0):
        config = config or RecurrentFFConfig()
        super().__init__(n_inputs, n_classes, config, seed)
        sizes = (n_inputs, *config.hidden, n_classes)
        hidden, local = range(1, len(sizes) - 1), config.local_field
        image = map_sizes(config.hidden, local, n_inputs)
        self.up = nn.ModuleList(connection(sizes[l - 1], sizes[l], local, image) for l in hidden)
        self.down = nn.ModuleList(connection(sizes[l + 1], sizes[l], local, image, bias=False) for l in hidden)
        self.lateral = nn.ModuleList(connection(sizes[l], sizes[l], local, image, bias=False) for l in hidden) \
            if config.lateral else None
        self.thetas = [config.threshold * width for width in config.hidden]
        net = nn.ModuleList(part for part in (self.up, self.down, self.lateral) if part is not None)
        if config.init == "fan-out":
            for linear in net.modules():
                if type(linear) is nn.Linear:
                    nn.init.normal_(linear.weight, 0.0, linear.out_features ** -0.5)
                    if linear.bias is not None:
                        nn.init.zeros_(linear.bias)
        self.classifier = nn.Linear(sum(config.hidden), n_classes)
        self.optimizers = [self.make_optimizer(net, config.lr, config.weight_decay),
                           self.make_optimizer(self.classifier, config.classifier_lr, config.classifier_weight_decay)]
        if config.peer_normalization:  # its running mean activities, one per layer (checkpointed)
            for l, width in enumerate(config.hidden):
                self.register_buffer(f"running_mean{l + 1}", torch.zeros(width))

    @torch.no_grad()
    def first_pass(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The states before step 1: one bottom-up pass (no gradient flows through it: step 1 detaches them)."""
        states, below = [], x
        for up in self.up:
            below = F.relu(up(layer_norm(below)))
            states.append(below)
        return states

    def step(self, x: torch.Tensor, label: torch.Tensor, states: list[torch.Tensor]) -> list[torch.Tensor]:
        """One synchronous, damped update of every hidden layer from the (detached) states of the step before."""
        layers = [layer_norm(s) for s in (x, *(s.detach() for s in states), label)]
        new = []
        for l, state in enumerate(states):
            drive = self.up[l](layers[l]) + self.down[l](layers[l + 2])
            if self.lateral is not None:
                drive = drive + self.lateral[l](layers[l + 1])
            new.append(self.config.damping * state.detach() + (1 - self.config.damping) * self.activation(drive))
        return new

    def video(self, x: torch.Tensor, label: torch.Tensor):
        """Yield the hidden states after each of the `iterations` steps, the label vector clamped on top."""
        states = self.first_pass(x)
        for _ in range(self.config.iterations):
            states = self.step(x, label, states)
            yield states

    def one_hot(self, labels: torch.Tensor | None, rows: int) -> torch.Tensor:
        if labels is None:
            return torch.full((rows, self.n_classes), NEUTRAL, device=self.device)
        return one_hot(labels, self.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised activities at the last step of a video with the neutral label: the softmax's input."""
        *_, states = self.video(x, self.one_hot(None, len(x)))
        return torch.cat([layer_norm(s) for s in states], 1)

    def layer_loss(self, l: int, state: torch.Tensor, batch: int) -> torch.Tensor:
        """Layer l's loss at one step from its state (positive videos: the first `batch` rows), plus peer
        normalisation, which also updates the layer's running mean."""
        g, theta = goodness(state), self.thetas[l]
        if self.config.objective == "high":
            loss = ff_loss(g[:batch], g[batch:], theta)
        else:
            loss = ff_loss(g[batch:], g[:batch], theta)  # positives below theta, negatives above
        if self.config.peer_normalization:
            peer, mean = peer_loss(getattr(self, f"running_mean{l + 1}"), state[:batch], self.config.peer_momentum)
            loss = loss + self.config.peer_normalization * peer
            getattr(self, f"running_mean{l + 1}").copy_(mean)
        return loss

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            features = self.features(x)
        logits, classifier_loss = self.train_readout(features, y)
        y_neg = wrong_labels(y, logits, self.config.negatives, self.n_classes, self.generator)
        batch = len(x)
        both = torch.cat([x, x])
        loss_per_layer = torch.zeros(len(self.thetas), device=x.device)
        total = 0.0
        for states in self.video(both, self.one_hot(torch.cat([y, y_neg]), 2 * batch)):
            losses = torch.stack([self.layer_loss(l, state, batch) for l, state in enumerate(states)])
            total = total + losses.sum()
            loss_per_layer += losses.detach()
        net_optimizer = self.optimizers[0]
        net_optimizer.zero_grad(set_to_none=True)
        total.backward()  # each loss reaches only its own layer's weights at its own step
        net_optimizer.step()
        per_layer = loss_per_layer.double() / self.config.iterations
        metrics = {f"loss_layer{l + 1}": value for l, value in enumerate(per_layer)}
        metrics["loss"] = sum(metrics.values())
        metrics["loss_classifier"] = classifier_loss
        return metrics

    @torch.no_grad()
    def goodness_per_step(self, x: torch.Tensor, labels: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """(steps, layers, rows): each hidden layer's goodness at each of the first `steps` (default: all)
        steps of the video with `labels`."""
        video = zip(range(steps or self.config.iterations), self.video(x, self.one_hot(labels, len(x))))
        return torch.stack([torch.stack([goodness(s) for s in states]) for _, states in video])

    @torch.no_grad()
    def label_scores(self, x: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Goodness over the hidden layers and the test window for each (row, candidate label), one video each:
        shape of `candidates`."""
        first, last = self.config.test_window
        rows, k = candidates.shape
        g = self.goodness_per_step(x.repeat_interleave(k, 0), candidates.reshape(-1), steps=last)
        return g[first - 1:].sum((0, 1)).view(rows, k)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The candidate whose video has the highest ('high') or lowest ('low') goodness."""
        k, sign = self.config.goodness_top_k, 1 if self.config.objective == "high" else -1

        def pick(part: torch.Tensor) -> torch.Tensor:
            if 0 < k < self.n_classes:  # the softmax's k most probable labels
                candidates = self.classifier(self.features(part)).topk(k, 1).indices
            else:
                candidates = torch.arange(self.n_classes, device=part.device).expand(len(part), -1)
            return candidates.gather(1, (sign * self.label_scores(part, candidates)).argmax(1, keepdim=True))[:, 0]

        return in_chunks(pick, x, chunk=200)
