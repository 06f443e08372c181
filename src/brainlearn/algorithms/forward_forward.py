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


def embed_label(x: torch.Tensor, labels: torch.Tensor | None, n_classes: int) -> torch.Tensor:
    """Overwrite the first `n_classes` pixels with one-hot(labels), or NEUTRAL everywhere if None."""
    out = x.clone()
    out[:, :n_classes] = NEUTRAL if labels is None else one_hot(labels, n_classes, x.dtype)
    return out


def layer_norm(y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Divide each row by its root mean square: keeps the orientation, drops the goodness."""
    return y / (y.pow(2).mean(1, keepdim=True).sqrt() + eps)


def goodness(y: torch.Tensor) -> torch.Tensor:
    """G = sum of squared activities, per row (eq. 1)."""
    return y.pow(2).sum(1)


def ff_loss(g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float) -> torch.Tensor:
    """Mean logistic loss of p = sigma(G - theta): positives should be above theta, negatives below."""
    return F.softplus(theta - g_pos).mean() + F.softplus(g_neg - theta).mean()


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
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate of every FF layer"})
    threshold: float = field(default=1.0, metadata={
        "help": "goodness threshold per unit: theta = threshold * layer width"})
    negatives: str = field(default="hard", metadata={
        "choices": ("hard", "random"),
        "help": "wrong labels for negative data: 'hard' samples them from the softmax "
                "classifier's predictions (Hinton), 'random' uniformly"})
    classifier_lr: float = field(default=1e-3, metadata={"help": "Adam learning rate of the linear softmax"})
    goodness_top_k: int = field(default=0, metadata={
        "help": "goodness evaluation: score only the top-k labels of the softmax (0 = all labels)"})
    local_field: int = field(default=0, metadata={
        "help": "0: dense layers; k: locally connected ones with k x k receptive fields (square images; "
                "hidden sizes: units per location x pixels)"})

    def __post_init__(self):
        self.hidden = layer_sizes(self.hidden)
        if self.lr <= 0 or self.classifier_lr <= 0:
            raise ValueError("learning rates must be positive")
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

    def train_readout(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the softmax; returns its (detached) logits and loss."""
        with torch.no_grad():
            feats = self.features(x)
        logits = self.classifier(feats)
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

    def __init__(self, n_inputs: int, n_classes: int, config: ForwardForwardConfig | None = None, seed: int = 0):
        config = config or ForwardForwardConfig()
        super().__init__(n_inputs, n_classes, config, seed)
        if n_inputs < n_classes:
            raise ValueError(f"need at least {n_classes} input pixels to write the label into")
        sizes = (n_inputs, *config.hidden)
        image = map_sizes(config.hidden, config.local_field, n_inputs)
        self.layers = nn.ModuleList(connection(a, b, config.local_field, image) for a, b in zip(sizes[:-1], sizes[1:]))
        self.thetas = [config.threshold * width for width in config.hidden]
        # Layers whose activities classify: 2..N (all of them when there is only one).
        self.readout = list(range(1, len(self.layers))) or [0]
        self.classifier = nn.Linear(sum(config.hidden[j] for j in self.readout), n_classes)
        self.optimizers = [torch.optim.Adam(layer.parameters(), lr=config.lr) for layer in self.layers]
        self.optimizers.append(torch.optim.Adam(self.classifier.parameters(), lr=config.classifier_lr))

    def activities(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each hidden layer's ReLU activity for label-embedded input `x` (no learning)."""
        out, h = [], x
        for layer in self.layers:
            h = F.relu(layer(layer_norm(h)))
            out.append(h)
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised activities of the readout layers under the neutral label: the softmax's input."""
        acts = self.activities(embed_label(x, None, self.n_classes))
        return torch.cat([layer_norm(acts[j]) for j in self.readout], 1)

    def negative_labels(self, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return wrong_labels(y, logits, self.config.negatives, self.n_classes, self.generator)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, classifier_loss = self.train_readout(x, y)
        y_neg = self.negative_labels(y, logits)
        batch = len(x)
        h = torch.cat([embed_label(x, y, self.n_classes), embed_label(x, y_neg, self.n_classes)])
        metrics = {}
        for j, (layer, optimizer, theta) in enumerate(zip(self.layers, self.optimizers, self.thetas)):
            y_j = F.relu(layer(layer_norm(h)))  # h is detached: no gradient reaches the layer below
            g = goodness(y_j)
            loss = ff_loss(g[:batch], g[batch:], theta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            h = y_j.detach()
            metrics[f"loss_layer{j + 1}"] = loss.detach()
        metrics["loss"] = sum(value.double() for value in metrics.values())
        metrics["loss_classifier"] = classifier_loss
        return metrics

    @torch.no_grad()
    def label_goodness(self, x: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Goodness summed over the readout layers for each (row, candidate label): shape of `candidates`."""
        batch, k = candidates.shape
        acts = self.activities(embed_label(x.repeat_interleave(k, 0), candidates.reshape(-1), self.n_classes))
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
