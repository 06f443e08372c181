""""Mortal" hardware: learning when the forward computation is not known exactly (Hinton 2022, sec. 8).

On analog, low-power hardware a layer's computation is noisy, drifts, has few bits, differs from
device to device, or is simply unknown. Each fault here is deterministic under its seed and drops
into any learner built of `nn.Linear` layers (`make_mortal`); the learner stores its weights W,
the device computes with its own version of them.

Faults (`Fault` subclasses), each either *independent* between two forward passes or *shared* by
the positive and the negative pass of a pair, the case the seed says cancels in FF's contrast
("all these internal noises and uncertainties ... cancel each other out because they're the same in
both forward passes"):

* `Noise(level, kind)`, independent: every weight read and every activity computed gets a fresh
  draw, additive (a + level * rms(a) * N(0, 1)) or multiplicative (a * (1 + level * N(0, 1))).
* `Noise(level, kind, pair=B)`, shared: during training, activity row r of a layer gets draw
  r mod B, where B is the minibatch size: FF's positive rows (0..B-1), its negative rows
  (B..2B-1) and its neutral pass see the same noise for the same image; the weights are read once
  per step. Every optimizer step draws anew; at test every pass draws afresh.
* `Mismatch(level)`, shared: each output unit of each layer has a gain 1 + level * N(0, 1) and an
  offset level * s * N(0, 1) (s: the RMS of the layer's first output), fixed for the device and
  unknown to the learner.
* `Drift(rate)`, shared (slow): the device's weights W + D, where D takes a random-walk step of
  rate * (W's initial RMS) per training step and per test pass; the learner's W does not know D.
* `Quantize(bits)`: weights and activities rounded to one of 2^bits evenly spaced levels between
  the tensor's min and max.

How backprop gets its gradient through a faulty layer (`MortalLinear.backward`):

* "oracle": autograd through the exact realisation of the forward pass: it knows every noise
  sample, mismatch gain, drift and rounding. No analog machine could give it this; kept, labelled.
* "model" (physics-aware training, Wright et al., Nature 2022): the forward pass runs on the
  device; the backward pass goes through the nominal digital model y = W x + b (the stored weights,
  no noise, no mismatch, no rounding) evaluated at the device's actual activations x (and the ReLU
  masks of its actual outputs): dL/dW = g x^T, dL/dx = W^T g. It never reads a noise sample.
* "in-situ": the backward products themselves run on the device, with their own independent
  faults: dL/dx = fault(W_device^T g), dL/dW = fault(g x^T) (`Fault.backward`).

FF's update is local: its layer's loss is a function of the device's measured activity, so it
uses "model": dL/dW = (dL/dy) x^T from measured y and x, never a noise sample.

`BlackBox`: an unknown non-linear transform y = tanh(R x), R ~ N(0, 1/width), in front of hidden
layer 2, optionally non-stationary (R takes a random-walk step of `drift` * rms(R) per training
step). Its Jacobian is refused; backprop gets the best it can honestly do, each labelled: train only
the layers above it ("above"), pretend its Jacobian is the identity ("straight-through"), or, as the
seed says ("the best you can do is try and build yourself a differentiable model of that black
box"), a differentiable `surrogate` MLP fitted online to the box's observed input/output pairs
(one Adam step per training pass, so it keeps up with a drifting box), backprop going through the
surrogate ("surrogate").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BACKWARDS = ("oracle", "model", "in-situ")
BOX_MODES = ("refuse", "above", "straight-through", "surrogate")


def rms(a: torch.Tensor) -> torch.Tensor:
    return a.detach().pow(2).mean().sqrt()


class Draws:
    """Gaussian draws from one seed, made on the device that needs them (a generator per device: a GPU run
    does not wait for the CPU), so a fault is deterministic under its seed on each device."""

    def __init__(self, seed: int):
        self.seed, self.generators = seed, {}

    def randn(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        device = torch.device(device)
        if device not in self.generators:
            self.generators[device] = torch.Generator(device).manual_seed(self.seed)
        return torch.randn(shape, generator=self.generators[device], device=device)


class Fault:
    """No fault: the exact computation. Subclasses alter weights as read, activities as computed, or both;
    `layer` is the `MortalLinear` computing (its `.training` and its per-layer `.device_state`)."""

    shared = True  # the same for both passes of a pair (nothing to differ, here)

    def weight(self, w: torch.Tensor, layer: MortalLinear) -> torch.Tensor:
        return w

    def activity(self, a: torch.Tensor, layer: MortalLinear) -> torch.Tensor:
        return a

    def backward(self, product: torch.Tensor, layer: MortalLinear) -> torch.Tensor:
        """A product of the backward pass computed on this device (in-situ backprop): its own fresh faults."""
        return product

    def drift(self, offset: torch.Tensor, initial_rms: float) -> None:
        """Move the device's weight offset in place (after every training step, before every test pass)."""

    def new_step(self, layer: MortalLinear) -> None:
        """A new minibatch: draws shared within one step are forgotten."""
        layer.device_state.pop("draws", None)

    def describe(self) -> str:
        return "none"


class Noise(Fault):
    def __init__(self, level: float, kind: str = "additive", seed: int = 0, pair: int = 0):
        if level < 0 or kind not in ("additive", "multiplicative") or pair < 0:
            raise ValueError("noise needs level >= 0, kind 'additive' or 'multiplicative' and pair >= 0")
        self.level, self.kind, self.pair = level, kind, pair
        self.shared = pair > 0
        self.draws = Draws(seed)

    def draw(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        return self.draws.randn(shape, device)

    def apply(self, a: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.kind == "additive":
            return a + self.level * rms(a) * noise
        return a * (1 + self.level * noise)

    def shared_draw(self, name: str, shape: tuple[int, ...], layer: MortalLinear) -> torch.Tensor:
        draws = layer.device_state.setdefault("draws", {})
        if name not in draws:
            draws[name] = self.draw(shape, layer.linear.weight.device)
        return draws[name]

    def weight(self, w: torch.Tensor, layer: MortalLinear) -> torch.Tensor:
        if self.shared and layer.training:
            return self.apply(w, self.shared_draw("weight", tuple(w.shape), layer))
        return self.apply(w, self.draw(tuple(w.shape), w.device))

    def activity(self, a: torch.Tensor, layer: MortalLinear) -> torch.Tensor:
        if self.shared and layer.training:
            noise = self.shared_draw("activity", (self.pair, a.shape[1]), layer)
            rows = torch.arange(len(a), device=a.device) % self.pair
            return self.apply(a, noise[rows])
        return self.apply(a, self.draw(tuple(a.shape), a.device))

    def backward(self, product: torch.Tensor, layer: MortalLinear) -> torch.Tensor:
        return self.apply(product, self.draw(tuple(product.shape), product.device))

    def describe(self) -> str:
        return f"{'shared ' if self.shared else ''}{self.kind} noise {self.level:g}"


class Mismatch(Fault):
    """Per-unit gain and offset, fixed per device: a * gain + level * scale * offset_unit, where gain ~ 1 + level *
    N(0, 1) and offset_unit ~ N(0, 1) per unit, and scale is the RMS of the first activity the unit computed (so
    the offset is a fixed amount, as a device's would be, not one that grows with the signal)."""

    def __init__(self, level: float, seed: int = 0):
        if level < 0:
            raise ValueError("mismatch needs level >= 0")
        self.level = level
        self.draws = Draws(seed)

    def mismatched(self, a: torch.Tensor, name: str, layer: MortalLinear) -> torch.Tensor:
        key = (name, a.shape[-1])
        if key not in layer.device_state:  # drawn the first time these units compute
            draw = self.draws.randn((2, a.shape[-1]), a.device)
            layer.device_state[key] = (1 + self.level * draw[0], self.level * rms(a) * draw[1])
        gain, offset = layer.device_state[key]
        return a * gain + offset

    def activity(self, a: torch.Tensor, layer: MortalLinear) -> torch.Tensor:
        return self.mismatched(a, "forward", layer)

    def backward(self, product: torch.Tensor, layer: MortalLinear) -> torch.Tensor:
        return self.mismatched(product, "backward", layer)  # the backward path's own amplifiers

    def describe(self) -> str:
        return f"mismatch {self.level:g}"


class Drift(Fault):
    def __init__(self, rate: float, seed: int = 0):
        if rate < 0:
            raise ValueError("drift rate must be >= 0")
        self.rate = rate
        self.draws = Draws(seed)

    @torch.no_grad()
    def drift(self, offset: torch.Tensor, initial_rms: float) -> None:
        offset.add_(self.draws.randn(tuple(offset.shape), offset.device), alpha=self.rate * initial_rms)

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

    def weight(self, w: torch.Tensor, layer: MortalLinear) -> torch.Tensor:
        return quantize(w, self.bits)

    def activity(self, a: torch.Tensor, layer: MortalLinear) -> torch.Tensor:
        return quantize(a, self.bits)

    def backward(self, product: torch.Tensor, layer: MortalLinear) -> torch.Tensor:
        return quantize(product, self.bits)

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
    """y = tanh(R x) with a random R, fixed or drifting by `drift` * rms(R) per training step; backward
    through it raises unless `mode` says how to do without (see the module docstring)."""

    def __init__(self, width: int, seed: int = 0, mode: str = "refuse", drift: float = 0.0,
                 surrogate_hidden: int = 0, surrogate_lr: float = 1e-3):
        super().__init__()
        if mode not in BOX_MODES or drift < 0:
            raise ValueError(f"mode must be one of {', '.join(BOX_MODES)} and drift >= 0")
        self.draws = Draws(seed)
        self.register_buffer("r", self.draws.randn((width, width), torch.device("cpu")) / width ** 0.5)
        self.mode, self.rate, self.initial_rms = mode, drift, self.r.pow(2).mean().sqrt().item()
        # The surrogate's relative squared error before its first fit and before its latest one. Two tensors, not one
        # per step: small tensors kept across steps fragment the CPU heap between the steps' large temporaries
        # (a 784-1000-1000 run grew to 12 GB in 15 epochs)
        self.surrogate_error: dict[str, torch.Tensor] = {}
        if mode == "surrogate":
            hidden = surrogate_hidden or 2 * width
            with torch.random.fork_rng(devices=[]):  # its initial weights from the box's seed, not from what ran before
                torch.manual_seed(seed)
                self.surrogate = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))
            self.surrogate_optimizer = torch.optim.Adam(self.surrogate.parameters(), lr=surrogate_lr)

    @torch.no_grad()
    def drift(self) -> None:
        if self.rate:
            self.r.add_(self.draws.randn(tuple(self.r.shape), self.r.device), alpha=self.rate * self.initial_rms)

    def fit_surrogate(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One Adam step of the surrogate on observed pairs (x, y = box(x)); records its error before the step."""
        with torch.enable_grad():
            loss = F.mse_loss(self.surrogate(x), y)
            self.surrogate_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.surrogate_optimizer.step()
        error = loss.detach() / y.pow(2).mean()
        self.surrogate_error.setdefault("first", error)
        self.surrogate_error["last"] = error

    def through_surrogate(self, x: torch.Tensor) -> torch.Tensor:
        """The surrogate's output with its parameters held fixed: the task's gradient reaches x, never them."""
        parameters = {name: p.detach() for name, p in self.surrogate.named_parameters()}
        return torch.func.functional_call(self.surrogate, parameters, (x,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "refuse":
            return _RefuseJacobian.apply(x, self.r)
        y = _RefuseJacobian.apply(x.detach(), self.r)
        if self.mode == "above":
            return y
        if self.mode == "straight-through":
            return x + (y - x).detach()
        if self.training and torch.is_grad_enabled():
            self.fit_surrogate(x.detach(), y)
        model = self.through_surrogate(x)
        return model + (y - model).detach()  # the box's output forward, the surrogate's Jacobian backward


class _InSitu(torch.autograd.Function):
    """y = the device's output (computed by the caller); backward: W_device^T g and g x^T on the device."""

    @staticmethod
    def forward(ctx, x, weight, bias, y, layer):
        ctx.save_for_backward(x)
        ctx.layer = layer
        return y.clone()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        layer = ctx.layer
        fault, device_weight = layer.fault, layer.fault.weight(layer.device_weight(), layer)
        grad_x = fault.backward(g @ device_weight, layer)
        grad_w = fault.backward(g.t() @ x, layer)
        return grad_x, grad_w, g.sum(0), None, None


class MortalLinear(nn.Module):
    """`linear` computed on faulty hardware: y = fault.activity(linear(box(x)) with fault.weight(W + D)),
    D the device's drift; its gradient by `backward` ("oracle", "model" or "in-situ")."""

    def __init__(self, linear: nn.Linear, fault: Fault, box: BlackBox | None = None, backward: str = "oracle"):
        super().__init__()
        if backward not in BACKWARDS:
            raise ValueError(f"backward must be one of {', '.join(BACKWARDS)}")
        self.linear, self.fault, self.box, self.backward = linear, fault, box, backward
        self.initial_rms = linear.weight.detach().pow(2).mean().sqrt().item()
        self.register_buffer("offset", torch.zeros_like(linear.weight))  # drift: the device minus the stored W
        self.device_state: dict = {}  # per-layer draws and gains of the fault

    def device_weight(self) -> torch.Tensor:
        return self.linear.weight + self.offset

    def on_device(self, x: torch.Tensor) -> torch.Tensor:
        return self.fault.activity(F.linear(x, self.fault.weight(self.device_weight(), self), self.linear.bias), self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.box is not None:
            x = self.box(x)
        if not self.training:
            self.fault.drift(self.offset, self.initial_rms)
        if self.backward == "oracle":
            return self.on_device(x)
        with torch.no_grad():
            y = self.on_device(x)
        if self.backward == "model":
            nominal = F.linear(x, self.linear.weight, self.linear.bias)
            return nominal + (y - nominal).detach()
        return _InSitu.apply(x, self.linear.weight, self.linear.bias, y, self)


def make_mortal(learner: nn.Module, fault: Fault = Fault(), box: BlackBox | None = None,
                backward: str = "oracle") -> nn.Module:
    """Put every `nn.Linear` of `learner` on `fault`y hardware (the box, if any, in front of the second
    one: hidden layer 2 for FF and BP alike), with gradients by `backward`. After every step of an
    optimizer, the layers it holds drift, forget their shared draws, and a drifting box in front of
    one of them moves."""
    linears = [(name, module) for name, module in learner.named_modules() if isinstance(module, nn.Linear)]
    for index, (name, linear) in enumerate(linears):  # in the order the layers were built
        parent, _, attribute = name.rpartition(".")
        mortal_linear = MortalLinear(linear, fault, box if index == 1 else None, backward).to(linear.weight.device)
        learner.get_submodule(parent).add_module(attribute, mortal_linear)
    mortal = {id(module.linear.weight): module for module in learner.modules() if isinstance(module, MortalLinear)}
    for optimizer in getattr(learner, "optimizers", []):
        stepped = [mortal[id(p)] for group in optimizer.param_groups for p in group["params"] if id(p) in mortal]

        def after_step(*_, stepped=stepped):
            for module in stepped:
                fault.drift(module.offset, module.initial_rms)
                fault.new_step(module)
                if module.box is not None:
                    module.box.drift()

        optimizer.register_step_post_hook(after_step)
    learner.graph_safe = False  # its faults draw from their own generators and drift in Python after each step
    return learner
