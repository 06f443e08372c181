"""Forward-Forward (Hinton 2022, "The Forward-Forward Algorithm: Some Preliminary Investigations").

Two forward passes replace forward + backward:

* positive pass: a real image with the right label written as a one-hot vector into its
  first 10 pixels (sec. 3.3); negative pass: the same image with a wrong label, drawn at
  random or, as Hinton does, "hard": in proportion to the probabilities that a softmax
  classifier on the net's own hidden activities gives the wrong labels.
* every hidden layer j computes y = relu(W_j x̂ + b_j) and its goodness
      G = sum_i y_i^2,      p(positive) = sigma(G - theta)                      (eq. 1)
  and lowers its own logistic loss
      L_j = -log sigma(G_pos - theta) - log(1 - sigma(G_neg - theta))
          = softplus(theta - G_pos) + softplus(G_neg - theta),
  pushing goodness up on positive and down on negative data. theta = threshold * width.
* layer normalisation (sec. 2.1): x̂ = y / sqrt(mean(y^2)), i.e. the vector divided by its
  length (times sqrt(width), so the scale of a layer's input does not depend on the width
  below). Only the orientation of y reaches the next layer, so that layer cannot read the
  goodness of the one below. The label-embedded image is normalised the same way before
  layer 1: without it the image's length (ink) sets layer 1's goodness and on the 8x8 digits
  the goodness classifier stays at 77% error after 30 epochs (5% with it).
* learning is local: each layer has its own optimizer and its input is detached, so no
  gradient ever crosses a layer. All layers learn on every minibatch.

Parts of the reference codes' recipe (Hinton's Matlab code and talk; loeweX/Forward-Forward), each a config
field. Only the fan-out initialisation is on by default: in `brainlearn bench ff-ablation` (MNIST, 784-1000-1000,
10 epochs, 2 seeds; benchmarks/results/ff_ablation_mnist.md) it alone lowered the goodness error, from 1.97% to
1.73% (both seeds lower), and the softmax's from 2.48% to 2.36%. The full recipe had the best softmax error
(1.94%) but a worse goodness error (2.10%); SGD alone and label value 5 alone made the goodness error worse.
* peer normalisation: a running mean m_i <- mu m_i + (1 - mu) mean_batch(y_i) of every unit's activity on
  positive data (mu = peer_momentum; the old m detached), and a term
      L_peer = peer_normalization * mean_i (mean_k m_k - m_i)^2
  added to the layer's loss, which pulls every unit towards the layer's mean activity (no dead or
  dominating units);
* weight decay (`weight_decay` on the FF layers, `classifier_weight_decay` on the softmax) and SGD with
  momentum instead of Adam (`optimizer`);
* a "full-gradient" ReLU: relu forward, the gradient passed unchanged backward (also where the unit is off);
* `init = "fan-out"` (the default): weights drawn from N(0, 1/fan_out), zero biases (`"torch"`: torch's
  default, uniform in +-1/sqrt(fan_in));
* `label_value`: the value of the label's pixel (Hinton's talk: 5, "so it has more effect"); the neutral
  label is label_value / 10 in every label pixel.

Layer 1's product with the image is shared by the neutral, positive and negative passes of a step: only the
label pixels differ, and any one-hot label adds the same label_value^2 to the input's squared length, so
    W x̂ = (W_image x_image + W_label label) / rms(x),   rms(x)^2 = (|x_image|^2 + |label|^2) / n_inputs
is the image's product (once per minibatch) plus a column of W per pass.

Classification (sec. 3.3), both reported:
  (a) "softmax": image with a neutral label (every label pixel 0.1), a linear softmax on the
      normalised activities of hidden layers 2..N (layer 1 is excluded, as Hinton does);
  (b) "goodness": run the net once per candidate label and pick the label with the largest
      goodness summed over layers 2..N; `goodness_top_k` shortlists candidates from (a).
With a single hidden layer, (a) and (b) use that layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .base import Learner, error_rate, in_chunks, layer_sizes, one_hot
from .local import connection, map_sizes

NEUTRAL = 0.1  # label-pixel value meaning "no label" (sec. 3.3)


EPS = 1e-8  # added to a row's root mean square before dividing by it


def embed_label(x: torch.Tensor, labels: torch.Tensor | None, n_classes: int, value: float = 1.0) -> torch.Tensor:
    """Overwrite the first `n_classes` pixels with value * one-hot(labels), or value * NEUTRAL everywhere if None."""
    out = x.clone()
    out[:, :n_classes] = value * NEUTRAL if labels is None else value * one_hot(labels, n_classes, x.dtype)
    return out


def layer_norm(y: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Divide each row by its root mean square: keeps the orientation, drops the goodness."""
    return y / (y.pow(2).mean(1, keepdim=True).sqrt() + eps)


class FullGradientReLU(torch.autograd.Function):
    """relu(x) forward; backward the gradient passes unchanged, also where the unit is off (loeweX). With the
    goodness loss alone this changes nothing, as dG/dy = 2y is 0 where y is: it acts through peer normalisation,
    whose gradient reaches units that are off."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def goodness(y: torch.Tensor) -> torch.Tensor:
    """G = sum of squared activities, per row (eq. 1)."""
    return y.pow(2).sum(1)


def ff_loss(g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float) -> torch.Tensor:
    """Mean logistic loss of p = sigma(G - theta): positives should be above theta, negatives below."""
    return F.softplus(theta - g_pos).mean() + F.softplus(g_neg - theta).mean()


def peer_loss(running_mean: torch.Tensor, positive: torch.Tensor, momentum: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Peer normalisation: (mean_i (mean_k m_k - m_i)^2, the new running mean m) for activities `positive`
    (rows: positive data), m = momentum * running_mean + (1 - momentum) * mean over rows; the gradient flows
    through this minibatch's mean only."""
    mean = momentum * running_mean + (1 - momentum) * positive.mean(0)
    return (mean.mean() - mean).pow(2).mean(), mean.detach()


def wrong_labels(y: torch.Tensor, logits: torch.Tensor | None, negatives: str, n_classes: int,
                 generator: torch.Generator) -> torch.Tensor:
    """A wrong label per row: uniformly ('random'), or ('hard') in proportion to the probability a softmax
    with these `logits` gives it (Gumbel-max sampling)."""
    if negatives == "random":
        return (y + torch.randint(1, n_classes, y.shape, generator=generator, device=y.device)) % n_classes
    uniform = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_min(1e-20)
    scores = logits.log_softmax(1) - (-uniform.log()).log()
    return scores.scatter(1, y[:, None], float("-inf")).argmax(1)


@dataclass
class ForwardForwardConfig:
    hidden: tuple[int, ...] = field(default=(500, 500), metadata={"help": "hidden layer sizes"})
    lr: float = field(default=1e-3, metadata={"help": "learning rate of every FF layer"})
    threshold: float = field(default=1.0, metadata={
        "help": "goodness threshold per unit: theta = threshold * layer width"})
    negatives: str = field(default="hard", metadata={
        "choices": ("hard", "random"),
        "help": "wrong labels for negative data: 'hard' samples them from the softmax "
                "classifier's predictions (Hinton), 'random' uniformly"})
    classifier_lr: float = field(default=1e-3, metadata={"help": "learning rate of the linear softmax"})
    goodness_top_k: int = field(default=0, metadata={
        "help": "goodness evaluation: score only the top-k labels of the softmax (0 = all labels)"})
    local_field: int = field(default=0, metadata={
        "help": "0: dense layers; k: locally connected ones with k x k receptive fields (square images; "
                "hidden sizes: units per location x pixels)"})
    optimizer: str = field(default="adam", metadata={
        "choices": ("adam", "sgd"), "help": "optimizer of every layer and the softmax: Adam, or SGD with --momentum"})
    momentum: float = field(default=0.9, metadata={"help": "SGD's momentum (loeweX: 0.9)"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 weight decay of the FF layers (loeweX: 3e-4)"})
    classifier_weight_decay: float = field(default=0.0, metadata={
        "help": "L2 weight decay of the softmax (loeweX: 3e-3)"})
    peer_normalization: float = field(default=0.0, metadata={
        "help": "weight of the peer-normalisation term (loeweX: 0.03; 0: off)"})
    peer_momentum: float = field(default=0.9, metadata={"help": "momentum of peer normalisation's running means"})
    full_gradient_relu: bool = field(default=False, metadata={
        "help": "ReLU whose backward passes the gradient also where the unit is off (loeweX)"})
    init: str = field(default="fan-out", metadata={
        "choices": ("torch", "fan-out"),
        "help": "layer weights: torch's default, or N(0, 1/fan_out) with zero biases (loeweX)"})
    label_value: float = field(default=1.0, metadata={
        "help": "value of the label's pixel (Hinton's talk: 5); the neutral label is a tenth of it"})

    def __post_init__(self):
        self.hidden = layer_sizes(self.hidden)
        if self.lr <= 0 or self.classifier_lr <= 0:
            raise ValueError("learning rates must be positive")
        if self.optimizer not in ("adam", "sgd") or self.init not in ("torch", "fan-out"):
            raise ValueError("optimizer must be 'adam' or 'sgd', init 'torch' or 'fan-out'")
        if (not 0 <= self.momentum < 1 or not 0 <= self.peer_momentum < 1 or self.weight_decay < 0
                or self.classifier_weight_decay < 0 or self.peer_normalization < 0 or self.label_value <= 0):
            raise ValueError("need momenta in [0, 1), weight decays and peer_normalization >= 0, label_value > 0")
        if self.threshold <= 0:
            raise ValueError("threshold must be positive")
        if self.negatives not in ("hard", "random"):
            raise ValueError("negatives must be 'hard' or 'random'")
        if self.goodness_top_k < 0 or self.local_field < 0:
            raise ValueError("goodness_top_k and local_field must be >= 0")


class SoftmaxReadout:
    """Method (a) of sec. 3.3 for an FF learner with `features(x)`, a linear `classifier` whose optimizer is the
    last of its `optimizers`, and a goodness `predict(x)`: the softmax learns beside the FF layers, on their
    detached activities, and both methods are evaluated."""

    def train_readout(self, features: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the softmax on (detached) `features`; returns its (detached) logits and loss."""
        logits = self.classifier(features)
        loss = F.cross_entropy(logits, y)
        self.optimizers[-1].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers[-1].step()
        return logits.detach(), loss.detach()

    @torch.no_grad()
    def predict_softmax(self, x: torch.Tensor) -> torch.Tensor:
        return in_chunks(lambda part: self.classifier(self.features(part)).argmax(1), x)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, full: bool = True) -> dict[str, float]:
        result = {"error_softmax": error_rate(self.predict_softmax(x), y)}
        if full:
            result["error_goodness"] = error_rate(self.predict(x), y)
        return result


class ForwardForward(SoftmaxReadout, Learner):
    Config = ForwardForwardConfig
    name = "ff"
    graph_safe = True

    def __init__(self, n_inputs: int, n_classes: int, config: ForwardForwardConfig | None = None, seed: int = 0):
        config = config or ForwardForwardConfig()
        super().__init__(n_inputs, n_classes, config, seed)
        if n_inputs < n_classes:
            raise ValueError(f"need at least {n_classes} input pixels to write the label into")
        sizes = (n_inputs, *config.hidden)
        image = map_sizes(config.hidden, config.local_field, n_inputs)
        self.layers = nn.ModuleList(connection(a, b, config.local_field, image) for a, b in zip(sizes[:-1], sizes[1:]))
        self.thetas = [config.threshold * width for width in config.hidden]
        if config.init == "fan-out":
            for layer in self.layers:
                if type(layer) is nn.Linear:
                    nn.init.normal_(layer.weight, 0.0, layer.out_features ** -0.5)
                    nn.init.zeros_(layer.bias)
        # Layers whose activities classify: 2..N (all of them when there is only one).
        self.readout = list(range(1, len(self.layers))) or [0]
        self.classifier = nn.Linear(sum(config.hidden[j] for j in self.readout), n_classes)
        self.optimizers = [self.make_optimizer(layer, config.lr, config.weight_decay) for layer in self.layers]
        self.optimizers.append(self.make_optimizer(self.classifier, config.classifier_lr, config.classifier_weight_decay))
        if config.peer_normalization:  # its running mean activities, one per layer (checkpointed)
            for j, width in enumerate(config.hidden):
                self.register_buffer(f"running_mean{j + 1}", torch.zeros(width))

    def make_optimizer(self, module: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        if self.config.optimizer == "sgd":
            return torch.optim.SGD(module.parameters(), lr=lr, momentum=self.config.momentum, weight_decay=weight_decay)
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)

    def embed(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """`x` with `labels` (None: the neutral label) written into its first pixels, at `label_value`."""
        return embed_label(x, labels, self.n_classes, self.config.label_value)

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return FullGradientReLU.apply(pre) if self.config.full_gradient_relu else F.relu(pre)

    def activities(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each hidden layer's ReLU activity for label-embedded input `x` (no learning)."""
        return self.activities_above(self.layers[0](layer_norm(x)))

    def activities_above(self, first: torch.Tensor) -> list[torch.Tensor]:
        """Each hidden layer's ReLU activity, given layer 1's pre-activations `first` (no learning)."""
        h = F.relu(first)
        out = [h]
        for layer in self.layers[1:]:
            h = F.relu(layer(layer_norm(h)))
            out.append(h)
        return out

    def readout_features(self, acts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([layer_norm(acts[j]) for j in self.readout], 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised activities of the readout layers under the neutral label: the softmax's input."""
        return self.readout_features(self.activities(self.embed(x, None)))

    def first_layer(self, x: torch.Tensor):
        """pre(*labels): layer 1's pre-activations W x̂ + b for image `x` with each of `labels` written in (None:
        neutral), stacked; the image's product with W is computed here, once (see the module docstring)."""
        layer, n = self.layers[0], self.n_classes
        if type(layer) is not nn.Linear:  # locally connected, or on faulty hardware: every pass in full
            return lambda *labels: layer(layer_norm(torch.cat([self.embed(x, labels_k) for labels_k in labels])))
        value, width = self.config.label_value, x.shape[1]
        image = x.clone()
        image[:, :n] = 0
        image_square = image.pow(2).sum(1, keepdim=True)
        labelled_rms = ((image_square + value ** 2) / width).sqrt() + EPS  # the same for every one-hot label
        shared = F.linear(image / labelled_rms, layer.weight)  # the whole weight matrix: a sliced one is slow

        def pre(*labels: torch.Tensor | None) -> torch.Tensor:
            parts = []
            for labels_k in labels:
                if labels_k is None:
                    rms = ((image_square + (value * NEUTRAL) ** 2 * n) / width).sqrt() + EPS
                    label_term = (value * NEUTRAL / rms) * layer.weight[:, :n].sum(1)
                    parts.append(shared * (labelled_rms / rms) + label_term + layer.bias)
                else:
                    label_term = F.linear(one_hot(labels_k, n, x.dtype) * (value / labelled_rms), layer.weight[:, :n])
                    parts.append(shared + label_term + layer.bias)
            return torch.cat(parts)

        return pre

    def negative_labels(self, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return wrong_labels(y, logits, self.config.negatives, self.n_classes, self.generator)

    def learn_layer(self, j: int, activity: torch.Tensor, batch: int) -> torch.Tensor:
        """Layer j's local step from its activity on positive data (the first `batch` rows), then negative data:
        the goodness loss, plus peer normalisation; returns the loss."""
        g = goodness(activity)
        loss = ff_loss(g[:batch], g[batch:], self.thetas[j])
        if self.config.peer_normalization:
            peer, mean = peer_loss(getattr(self, f"running_mean{j + 1}"), activity[:batch], self.config.peer_momentum)
            loss = loss + self.config.peer_normalization * peer
            getattr(self, f"running_mean{j + 1}").copy_(mean)
        self.optimizers[j].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers[j].step()
        return loss.detach()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        first = self.first_layer(x)
        with torch.no_grad():
            features = self.readout_features(self.activities_above(first(None)))
        logits, classifier_loss = self.train_readout(features, y)
        pre = first(y, self.negative_labels(y, logits))
        metrics = {}
        for j in range(len(self.layers)):
            activity = self.activation(pre)
            metrics[f"loss_layer{j + 1}"] = self.learn_layer(j, activity, len(x))
            if j + 1 < len(self.layers):  # its input detached: no gradient reaches the layer below
                pre = self.layers[j + 1](layer_norm(activity.detach()))
        metrics["loss"] = sum(value.double() for value in metrics.values())
        metrics["loss_classifier"] = classifier_loss
        return metrics

    @torch.no_grad()
    def label_goodness(self, x: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Goodness summed over the readout layers for each (row, candidate label): shape of `candidates`."""
        batch, k = candidates.shape
        acts = self.activities(self.embed(x.repeat_interleave(k, 0), candidates.reshape(-1)))
        return sum(goodness(acts[j]) for j in self.readout).view(batch, k)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Goodness method: the candidate label with the largest goodness."""
        k = self.config.goodness_top_k

        def pick(part: torch.Tensor) -> torch.Tensor:
            if 0 < k < self.n_classes:
                candidates = self.classifier(self.features(part)).topk(k, 1).indices
            else:
                candidates = torch.arange(self.n_classes, device=part.device).expand(len(part), -1)
            best = self.label_goodness(part, candidates).argmax(1, keepdim=True)
            return candidates.gather(1, best)[:, 0]

        return in_chunks(pick, x, chunk=500)
