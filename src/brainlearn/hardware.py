""""Mortal" hardware: learning when the forward computation is not known exactly (Hinton 2022, sec. 8).

On analog, low-power hardware a layer's computation is noisy, drifts, has few bits, or is
simply unknown, so backprop, which needs the exact Jacobian of every layer above, cannot be
applied; a learner that only needs its own layer's input and output can still learn. Each fault
here is deterministic under its seed and drops into any learner built of `nn.Linear` layers:

* `BlackBox`: a fixed random non-linear transform y = tanh(R x), R ~ N(0, 1/width), placed in
  front of hidden layer 2. Its Jacobian is refused: backward through it raises. Backprop gets the
  best it can honestly do, each labelled: train only the layers above the box ("bp-above-box"),
  or pretend the box's Jacobian is the identity ("bp-straight-through").
* `Noise`: every weight read and every activity computed gets noise, additive
  (a + level * rms(a) * N(0, 1)) or multiplicative (a * (1 + level * N(0, 1))).
* `Drift`: the stored weights take a random-walk step of rate * (their initial RMS) per
  training step and per test forward pass, so they wander during training and test.
* `Quantize`: weights and activities rounded to one of 2^bits evenly spaced levels between the
  tensor's min and max. Gradients pass it straight through (Bengio et al. 2013), for FF and BP alike.

`make_mortal(learner, fault)` wraps every `nn.Linear` of a learner in a `MortalLinear`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Fault:
    """No fault: the exact computation. Subclasses alter weights as read, activities as computed, or both."""

    def weight(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def activity(self, a: torch.Tensor) -> torch.Tensor:
        return a

    def drift(self, w: torch.Tensor, initial_rms: float) -> None:
        """Move the stored weights in place (after every training step, before every test pass)."""

    def describe(self) -> str:
        return "none"


class Noise(Fault):
    def __init__(self, level: float, kind: str = "additive", seed: int = 0):
        if level < 0 or kind not in ("additive", "multiplicative"):
            raise ValueError("noise needs level >= 0 and kind 'additive' or 'multiplicative'")
        self.level, self.kind = level, kind
        self.generator = torch.Generator().manual_seed(seed)

    def _noisy(self, a: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(a.shape, generator=self.generator).to(a.device)  # the same draws on every device
        if self.kind == "additive":
            return a + self.level * a.detach().pow(2).mean().sqrt() * noise
        return a * (1 + self.level * noise)

    weight = activity = _noisy

    def describe(self) -> str:
        return f"{self.kind} noise {self.level:g}"


class Drift(Fault):
    def __init__(self, rate: float, seed: int = 0):
        if rate < 0:
            raise ValueError("drift rate must be >= 0")
        self.rate = rate
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def drift(self, w: torch.Tensor, initial_rms: float) -> None:
        w.add_(torch.randn(w.shape, generator=self.generator).to(w.device), alpha=self.rate * initial_rms)

    def describe(self) -> str:
        return f"drift {self.rate:g}/step"


def quantize(x: torch.Tensor, bits: int) -> torch.Tensor:
    """`x` rounded to the nearest of 2^bits evenly spaced levels over [min(x), max(x)]; the gradient
    passes straight through."""
    low, high = x.detach().min(), x.detach().max()
    step = (high - low).clamp_min(1e-12) / (2 ** bits - 1)
    rounded = ((x.detach() - low) / step).round() * step + low
    return rounded + (x - x.detach())  # exactly the levels forward; gradient 1 backward


class Quantize(Fault):
    def __init__(self, bits: int):
        if not 1 <= bits <= 24:
            raise ValueError("bits must be in 1..24 (float32 holds 24)")
        self.bits = bits

    def weight(self, w: torch.Tensor) -> torch.Tensor:
        return quantize(w, self.bits)

    activity = weight

    def describe(self) -> str:
        return f"{self.bits}-bit"


class _RefuseJacobian(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ r)

    @staticmethod
    def backward(ctx, *_):
        raise RuntimeError("black-box layer: its Jacobian is not available to the learner")


class BlackBox(nn.Module):
    """y = tanh(R x) with a fixed random R; backward through it raises unless `mode` says how to do without.

    mode "refuse" (default; what FF needs, since its layers' inputs are detached anyway),
    "above" (the input is detached: layers below the box do not learn) or "straight-through"
    (the gradient passes as if the box were the identity)."""

    def __init__(self, width: int, seed: int = 0, mode: str = "refuse"):
        super().__init__()
        if mode not in ("refuse", "above", "straight-through"):
            raise ValueError("mode must be 'refuse', 'above' or 'straight-through'")
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("r", torch.randn(width, width, generator=generator) / width ** 0.5)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "above":
            return _RefuseJacobian.apply(x.detach(), self.r)
        if self.mode == "straight-through":
            return x + (_RefuseJacobian.apply(x.detach(), self.r) - x).detach()
        return _RefuseJacobian.apply(x, self.r)


class MortalLinear(nn.Module):
    """`linear` computed on faulty hardware: y = fault.activity(linear(box(x)) with fault.weight(W))."""

    def __init__(self, linear: nn.Linear, fault: Fault, box: BlackBox | None = None):
        super().__init__()
        self.linear, self.fault, self.box = linear, fault, box
        self.initial_rms = linear.weight.detach().pow(2).mean().sqrt().item()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.box is not None:
            x = self.box(x)
        if not self.training:
            self.fault.drift(self.linear.weight, self.initial_rms)
        return self.fault.activity(F.linear(x, self.fault.weight(self.linear.weight), self.linear.bias))


def make_mortal(learner: nn.Module, fault: Fault = Fault(), box: BlackBox | None = None) -> nn.Module:
    """Put every `nn.Linear` of `learner` on `fault`y hardware (the box, if any, in front of the second
    one: hidden layer 2 for FF and BP alike). Drift moves a layer's weights after every step of the
    optimizer that holds them."""
    linears = [(name, module) for name, module in learner.named_modules() if isinstance(module, nn.Linear)]
    for index, (name, linear) in enumerate(linears):  # in the order the layers were built
        parent, _, attribute = name.rpartition(".")
        mortal_linear = MortalLinear(linear, fault, box if index == 1 else None).to(linear.weight.device)
        learner.get_submodule(parent).add_module(attribute, mortal_linear)
    mortal = {id(module.linear.weight): module for module in learner.modules() if isinstance(module, MortalLinear)}
    for optimizer in getattr(learner, "optimizers", []):
        stepped = [mortal[id(p)] for group in optimizer.param_groups for p in group["params"] if id(p) in mortal]

        def drift_after_step(*_, stepped=stepped):
            for module in stepped:
                fault.drift(module.linear.weight, module.initial_rms)

        optimizer.register_step_post_hook(drift_after_step)
    return learner
