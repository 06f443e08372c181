"""Forward-Forward on sequences, with negative data the net makes itself (Hinton 2022, sec. 3.5: "the obvious way
[to get negative data] is to get the model to generate them itself").

Hinton's setup: strings of a 30-symbol alphabet; a net "that receives a window of 10 characters" as one-hot
input learns, with FF alone, which 10-character windows are real. Positive data are windows of the real strings;
negative data are windows whose last character, or whole tail, the net itself predicted:

* teacher forcing ("teacher-forcing"): a real window with its last character replaced by the net's own
  prediction, sampled from its goodness-based distribution p(c | 9 real characters) = softmax_c(G(window_c) / T),
  G the goodness summed over the layers;
* self-generated ("self-generated"): from the first 10 real characters of a string the net generates the next
  90 itself, one sampled character at a time; the windows of that string that hold a generated character are the
  negatives (its first window is the real string's, positive data). `dream_every="step"` (default) dreams afresh
  for every minibatch, from as few training strings drawn at random as give its negatives (2 strings of 100 for a
  batch of 100); `"epoch"` continues every training string once per epoch and uses those windows all epoch.
  Where a dream starts and how long it runs are options beyond the paper: `dream_start="random"` takes its 10
  real characters at a random offset of the string rather than its start, and `dream_length` generated characters
  (default: to the string's end, the paper's 90) give that many negative windows, the i-th holding i of them.

The net predicts the next character as the candidate (of 30) whose window, 9 real characters + candidate, has
the highest goodness; a softmax on its normalised hidden activities, with the last slot neutral (1/30 each),
is trained beside it, as in the image FF, and both are reported.

Sleep: the negative passes need not run beside the positive ones. `schedule="interleaved"` (default) puts a
positive and a negative minibatch in every step; `"separated"` alternates `block` steps of positive-only updates
(the first term of FF's loss) with `block` steps of negative-only updates (the second term), the negatives
generated during the awake block before and stored, then used "offline", as the paper discusses.

Each layer is FF's: ReLU units, input normalised to unit RMS (`forward_forward.layer_norm`), the logistic loss
on goodness against a threshold (`forward_forward.ff_loss`), its own Adam optimizer, its input detached.

Threshold and temperature (measured: `benchmarks/results/logs/ff_sequence_sweep.log`, Botchan, 300-500-500, seed 0).
The image FF's threshold of 1 per unit (theta = 500 here) leaves the net underfitting: its training error stays as
high as its test error (76% after 4 epochs) and its goodness puts the next character no better than the bigram
counts. A threshold of 0.1 per unit (theta = 50) lets it fit (55% training, 69% test error after 4 epochs), and
sampling the negatives at T = 5 rather than 1 gives a distribution over candidates that is neither near-greedy nor
near-uniform: 65% after 4 epochs, 61% after 15 (T = 20: 66% at 4). A threshold of 0.03 fits faster but gains
little on held-out text: at T = 5, 62.95% after 6 epochs against 0.1's 63.62%, its training error 43% against 49%.

Dreaming every step rather than every epoch (same log, seed 0). Dreams made once per epoch are the net of the
epoch's start; where the net's sampling distribution is sharp (a wider net's larger goodness, or a lower T) they
oscillate: at 3 x 1000 the error by goodness swung between 83% and 96% over 6 epochs (5.4-9.6 bits), and at
300-500-500 with T = 2.5 for the dreams between 79% and 96% over 13. Dreamed afresh for every step, both stayed
stable: 3 x 1000 reached 70.99% after 6 epochs, and T = 2.5 70.25% after 14. At 300-500-500 and T = 5, where
"epoch" is stable, "step" is a little better: 73.27% against 75.77% after 6 epochs (seed 0), and in the benchmark
(20 epochs, seeds 0 and 1) 69.24% (`benchmarks/results/ff_sequence_botchan.md`) against 70.67% in its run with
"epoch" (that file's version of 27 November, 16:05). Hence "step" by default. It costs time, as its dreams come in
small batches (90 sampling passes of 2 strings for every minibatch): at 300-500-500 on a 2-core CPU, 20.0-21.1 s
per epoch (runs of the benchmark, 2 threads) against 12.5 s, 31 s against 24 s at 1 thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .base import layer_sizes
from .forward_forward import ff_loss, goodness, layer_norm


@dataclass
class SequenceFFConfig:
    hidden: tuple[int, ...] = field(default=(500, 500), metadata={"help": "hidden layer sizes"})
    context: int = field(default=10, metadata={"help": "characters per window (the last one is predicted)"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate of every layer and the softmax"})
    threshold: float = field(default=0.1, metadata={"help": "goodness threshold per unit (see the docstring)"})
    negatives: str = field(default="teacher-forcing", metadata={
        "choices": ("teacher-forcing", "self-generated"), "help": "where the negative windows come from"})
    schedule: str = field(default="interleaved", metadata={
        "choices": ("interleaved", "separated"), "help": "negatives in every step, or in blocks of their own"})
    block: int = field(default=50, metadata={"help": "steps per positive or negative block (separated)"})
    temperature: float = field(default=5.0, metadata={"help": "T of the sampling distribution softmax(G / T)"})
    dream_every: str = field(default="step", metadata={
        "choices": ("step", "epoch"), "help": "self-generated: dream afresh for every step, or every string once "
                                              "per epoch (see the docstring)"})
    dream_start: str = field(default="first", metadata={
        "choices": ("first", "random"), "help": "self-generated: a dream begins at a string's first characters (the "
                                                "paper's) or at a random offset in it"})
    dream_length: int | None = field(default=None, metadata={
        "help": "self-generated: characters the net generates per dream; none: to the string's end (the paper's 90)"})

    def __post_init__(self):
        self.hidden = layer_sizes(self.hidden)
        if (self.context < 2 or self.lr <= 0 or self.threshold <= 0 or self.block < 1 or self.temperature <= 0
                or (self.dream_length is not None and self.dream_length < 1)):
            raise ValueError("need context >= 2, and positive lr, threshold, block, temperature and dream_length")
        if self.negatives not in ("teacher-forcing", "self-generated"):
            raise ValueError("negatives must be 'teacher-forcing' or 'self-generated'")
        if self.schedule not in ("interleaved", "separated"):
            raise ValueError("schedule must be 'interleaved' or 'separated'")
        if self.dream_every not in ("step", "epoch"):
            raise ValueError("dream_every must be 'step' or 'epoch'")
        if self.dream_start not in ("first", "random"):
            raise ValueError("dream_start must be 'first' or 'random'")


class SequenceFF(nn.Module):
    def __init__(self, n_symbols: int, config: SequenceFFConfig | None = None, seed: int = 0,
                 learn_hidden: bool = True, device: str | torch.device = "cpu"):
        """The initial weights are drawn on the CPU (the same on every device), then moved to `device`, where the
        net's generator (negatives, sampling, minibatch order) lives."""
        super().__init__()
        self.config = config = config or SequenceFFConfig()
        self.n_symbols = n_symbols
        torch.manual_seed(seed)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        sizes = (config.context * n_symbols, *config.hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.readout = list(range(1, len(self.layers))) or [0]  # as in the image FF: layers 2..N
        self.classifier = nn.Linear(sum(config.hidden[j] for j in self.readout), n_symbols)
        self.to(device)
        # learn_hidden=False: the baseline whose hidden layers stay at their random start (only the softmax learns)
        self.optimizers = [torch.optim.Adam(layer.parameters(), lr=config.lr) for layer in self.layers
                           if learn_hidden]
        self.classifier_optimizer = torch.optim.Adam(self.classifier.parameters(), lr=config.lr)

    @property
    def device(self) -> torch.device:
        return self.classifier.weight.device

    # ----- passes

    def one_hot(self, windows: torch.Tensor, neutral_last: bool = False) -> torch.Tensor:
        """Windows of symbol indices (B, context) as one flat one-hot row each; the last slot 1/30 everywhere if
        `neutral_last` (the softmax's input: no candidate written in)."""
        x = F.one_hot(windows, self.n_symbols).float()
        if neutral_last:
            x[:, -1] = 1.0 / self.n_symbols
        return x.flatten(1)

    def activities(self, x: torch.Tensor) -> list[torch.Tensor]:
        acts = []
        for layer in self.layers:
            x = F.relu(layer(layer_norm(x)))
            acts.append(x)
            x = x.detach()
        return acts

    @torch.no_grad()
    def candidate_goodness(self, prefixes: torch.Tensor) -> torch.Tensor:
        """G summed over layers of every window prefix + candidate: (B, 30)."""
        batch, n = len(prefixes), self.n_symbols
        candidates = torch.arange(n, device=prefixes.device).repeat(batch)
        windows = torch.cat([prefixes.repeat_interleave(n, 0), candidates[:, None]], 1)
        return sum(goodness(a) for a in self.activities(self.one_hot(windows))).view(batch, n)

    @torch.no_grad()
    def sample_next(self, prefixes: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """A next character per prefix from softmax(G / T) over the candidates (T: `temperature`, else the
        config's)."""
        temperature = self.config.temperature if temperature is None else temperature
        probabilities = (self.candidate_goodness(prefixes) / temperature).softmax(1)
        return torch.multinomial(probabilities, 1, generator=self.generator)[:, 0]

    @torch.no_grad()
    def teacher_forced(self, windows: torch.Tensor) -> torch.Tensor:
        """Real windows with the last character replaced by the net's own sample."""
        return torch.cat([windows[:, :-1], self.sample_next(windows[:, :-1])[:, None]], 1)

    @torch.no_grad()
    def generate(self, starts: torch.Tensor, length: int, temperature: float | None = None) -> torch.Tensor:
        """Strings of `length` symbols, each beginning with its `context` real symbols, the rest sampled (at
        `temperature`, else the config's)."""
        strings = starts.clone()
        while strings.shape[1] < length:
            next_symbols = self.sample_next(strings[:, -(self.config.context - 1):], temperature)
            strings = torch.cat([strings, next_symbols[:, None]], 1)
        return strings

    def dream_length(self, strings: torch.Tensor) -> int:
        """Symbols the net generates per dream of these strings: the config's, else to the strings' end."""
        return self.config.dream_length or strings.shape[1] - self.config.context

    @torch.no_grad()
    def dreamed_windows(self, strings: torch.Tensor) -> torch.Tensor:
        """The negatives of "self-generated", in random order: from each string, `context` real symbols (its first,
        or at a random offset: `dream_start`) continued by the net for `dream_length` symbols, and every window of
        the result that holds a generated symbol."""
        context, count = self.config.context, len(strings)
        length = self.dream_length(strings)
        offsets = (torch.randint(strings.shape[1] - context + 1, (count, 1), generator=self.generator,
                                 device=self.device) if self.config.dream_start == "random"
                   else torch.zeros(count, 1, dtype=torch.long, device=self.device))
        starts = strings.gather(1, offsets + torch.arange(context, device=self.device))
        windows = windows_of(self.generate(starts, context + length)[:, 1:], context)
        return windows[torch.randperm(len(windows), generator=self.generator, device=self.device)]

    @torch.no_grad()
    def fresh_dreams(self, strings: torch.Tensor, count: int) -> torch.Tensor:
        """`count` negatives of "self-generated" dreamed now: as few strings as give that many windows, drawn at
        random, each continued by the net (`dreamed_windows`)."""
        picks = torch.randint(len(strings), (math.ceil(count / self.dream_length(strings)),),
                              generator=self.generator, device=self.device)
        return self.dreamed_windows(strings[picks])[:count]

    # ----- learning

    def learn(self, positive: torch.Tensor | None, negative: torch.Tensor | None) -> torch.Tensor:
        """One FF step on positive and/or negative windows (a sleep block has only one kind); returns the loss."""
        batch = 0 if positive is None else len(positive)
        parts = [w for w in (positive, negative) if w is not None]
        x = self.one_hot(torch.cat(parts))
        total = x.new_zeros(())
        for j, (layer, optimizer) in enumerate(zip(self.layers, self.optimizers)):
            activity = F.relu(layer(layer_norm(x)))
            g, theta = goodness(activity), self.config.threshold * layer.out_features
            if positive is not None and negative is not None:
                loss = ff_loss(g[:batch], g[batch:], theta)
            elif positive is not None:
                loss = F.softplus(theta - g).mean()
            else:
                loss = F.softplus(g - theta).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total = total + loss.detach()
            x = activity.detach()
        return total

    def features(self, windows: torch.Tensor) -> torch.Tensor:
        acts = self.activities(self.one_hot(windows, neutral_last=True))
        return torch.cat([layer_norm(acts[j].detach()) for j in self.readout], 1)

    def learn_readout(self, windows: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(self.classifier(self.features(windows)), windows[:, -1])
        self.classifier_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.classifier_optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def errors(self, windows: torch.Tensor) -> dict[str, float]:
        """Next-character error of both readouts on windows (the last character is the one to predict), and the
        bits per character each one's distribution gives the truth: softmax(G / T) over the candidates', and
        the softmax readout's."""
        truth = windows[:, -1]
        goodness_logits = torch.cat([self.candidate_goodness(part[:, :-1]) / self.config.temperature
                                     for part in windows.split(500)])
        softmax_logits = self.classifier(self.features(windows))
        bits = 1 / math.log(2)
        return {"error_goodness": (goodness_logits.argmax(1) != truth).float().mean().item(),
                "error_softmax": (softmax_logits.argmax(1) != truth).float().mean().item(),
                "bits_goodness": (F.cross_entropy(goodness_logits, truth) * bits).item(),
                "bits_softmax": (F.cross_entropy(softmax_logits, truth) * bits).item()}


def windows_of(strings: torch.Tensor, context: int) -> torch.Tensor:
    """Every window of `context` consecutive symbols of every string: (strings x positions, context)."""
    return strings.unfold(1, context, 1).reshape(-1, context)


def train(model: SequenceFF, strings: torch.Tensor, test_strings: torch.Tensor, epochs: int,
          batch_size: int = 100, on_epoch=None) -> list[dict]:
    """FF on the training strings' windows for `epochs`, each epoch in shuffled minibatches, negatives as the
    config says; the softmax trained beside it, all on the model's device. Returns, per epoch, the mean loss and the
    test errors and bits (read back once per epoch)."""
    config, history = model.config, []
    strings, test_strings = strings.to(model.device), test_strings.to(model.device)
    positives_all = windows_of(strings, config.context)
    test_windows = windows_of(test_strings, config.context)
    step, stored = 0, []
    dreaming = config.negatives == "self-generated" and bool(model.optimizers)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(positives_all), generator=model.generator, device=model.device)
        if dreaming and config.dream_every == "epoch":  # this epoch's dreams: each string continued once
            generated = model.dreamed_windows(strings)
        losses = []
        for index, batch in enumerate(order.split(batch_size)):
            positive = positives_all[batch]
            if not model.optimizers:  # the frozen baseline: only its softmax learns
                losses.append(model.learn_readout(positive))
                continue
            negative = None
            if dreaming and config.dream_every == "step":
                negative = model.fresh_dreams(strings, len(batch))
            elif dreaming:  # a string has one dreamed window fewer than real ones: the last batch wraps
                rows = index * batch_size + torch.arange(len(batch), device=model.device)
                negative = generated[rows % len(generated)]
            if config.schedule == "interleaved":
                if negative is None:
                    negative = model.teacher_forced(positive)
                losses.append(model.learn(positive, negative))
            else:
                phase, start = divmod(step, config.block)
                if phase % 2 == 0:  # awake: positives only; the coming sleep block's negatives are stored now
                    if start == 0:
                        stored = []
                    stored.append(negative if negative is not None else model.teacher_forced(positive))
                    losses.append(model.learn(positive, None))
                else:  # asleep: negatives only, from the store
                    losses.append(model.learn(None, stored[start % len(stored)]))
            model.learn_readout(positive)
            step += 1
        row = {"epoch": epoch, "loss": torch.stack(losses).mean().item(), **model.errors(test_windows)}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    return history
