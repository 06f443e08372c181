"""Probes (`brainlearn probe`): record units of a trained network like an electrode.

`layer_activities(learner, x)` returns every layer's activity as a tensor of shape
(iterations, images, units): one iteration for a feedforward pass, one per relaxation step
for a network that settles (Equilibrium Propagation's free phase). `record` picks layers and
units from it; `tuning_curves` averages a unit's activity over the images of each class.

What counts as a layer's activity, per learner:
  ff      ReLU activity of each hidden layer with the neutral label (the softmax readout's view)
  bp      ReLU activity of each hidden layer, then the softmax output
  dbn     hidden-unit probabilities of each RBM driven up from the pixels, then p(label | image)
          from the top RBM's free energies
  eqprop  the state of each hidden layer and of the output after every free-phase step
  rff     the state of each hidden layer after every step of a video with the neutral label
  rbm     hidden-unit probabilities given the binarised image
"""

from __future__ import annotations

import json
from functools import singledispatch
from pathlib import Path

import safetensors.torch
import torch
import torch.nn.functional as F

from . import plots
from .algorithms import (Backprop, DeepBeliefNet, EquilibriumProp, ForwardForward, RecurrentFF,
                         RestrictedBoltzmannMachine)
from .algorithms.base import Learner
from .algorithms.rbm import binarised


@singledispatch
def layer_activities(learner: Learner, x: torch.Tensor) -> dict[str, torch.Tensor]:
    raise TypeError(f"no probe is defined for {type(learner).__name__}")


@layer_activities.register
def _(learner: ForwardForward, x: torch.Tensor) -> dict[str, torch.Tensor]:
    acts = learner.activities(learner.embed(x, None))
    return {f"layer{j + 1}": a[None] for j, a in enumerate(acts)}


@layer_activities.register
def _(learner: RecurrentFF, x: torch.Tensor) -> dict[str, torch.Tensor]:
    steps = list(learner.video(x, learner.one_hot(None, len(x))))
    return {f"layer{j + 1}": torch.stack([states[j] for states in steps]) for j in range(len(learner.thetas))}


@layer_activities.register
def _(learner: Backprop, x: torch.Tensor) -> dict[str, torch.Tensor]:
    out, h, hidden = {}, x, 0
    for module in learner.net:
        h = module(h)
        if isinstance(module, torch.nn.ReLU):
            hidden += 1
            out[f"layer{hidden}"] = h[None]
    out["output"] = h.softmax(1)[None]
    return out


@layer_activities.register
def _(learner: DeepBeliefNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    out, v = {}, x
    for j, rbm in enumerate(learner.rbms[:-1]):
        v = rbm.hidden_probs(v)
        out[f"layer{j + 1}"] = v[None]
    top = learner.rbms[-1]  # its hidden units see the features and the label; average over p(label | image)
    label_probs = (-learner.label_free_energies(x)).softmax(1)
    per_label = torch.stack([top.hidden_probs(torch.cat([v, F.one_hot(torch.full((len(x),), c), learner.n_classes)
                                                         .to(v)], 1)) for c in range(learner.n_classes)], 1)
    out[f"layer{len(learner.rbms)}"] = (label_probs[:, :, None] * per_label).sum(1)[None]
    out["labels"] = label_probs[None]
    return out


@layer_activities.register
def _(learner: RestrictedBoltzmannMachine, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"layer1": learner.rbm.hidden_probs(binarised(x))[None]}


@layer_activities.register
def _(learner: EquilibriumProp, x: torch.Tensor) -> dict[str, torch.Tensor]:
    states = [x.new_zeros(len(x), n) for n in learner.sizes[1:]]
    trajectory = []
    for _ in range(learner.config.free_steps):
        states = learner.relax(x, states, 1)  # one step at a time: the same path as free_phase
        trajectory.append(states)
    names = [f"layer{j + 1}" for j in range(len(learner.sizes) - 2)] + ["output"]
    return {name: torch.stack([step[k] for step in trajectory]) for k, name in enumerate(names)}


@torch.no_grad()
def record(learner: Learner, x: torch.Tensor, layers: list[str] | None = None,
           units: list[int] | None = None) -> dict[str, torch.Tensor]:
    """Activities (iterations, images, units) of the chosen layers (default all) and units (default all)."""
    learner.eval()
    activities = layer_activities(learner, x)
    layers = list(activities) if layers is None else layers
    unknown = [name for name in layers if name not in activities]
    if unknown:
        raise ValueError(f"no layer {', '.join(unknown)} in this {learner.name} net; it has {', '.join(activities)}")
    chosen = {}
    for name in layers:
        width = activities[name].shape[-1]
        if units is not None and not all(0 <= u < width for u in units):
            raise ValueError(f"units must lie in 0..{width - 1} for {name}")
        chosen[name] = activities[name] if units is None else activities[name][..., units]
    return chosen


def tuning_curves(activity: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Mean activity per class at the last iteration: shape (classes, units); NaN for a class not shown."""
    last = activity[-1]
    sums = torch.zeros(n_classes, last.shape[1], dtype=last.dtype).index_add_(0, labels, last)
    counts = torch.bincount(labels, minlength=n_classes).to(last.dtype)
    return sums / counts[:, None]


def probe_to_files(learner: Learner, x: torch.Tensor, labels: torch.Tensor, out_dir: Path,
                   layers: list[str] | None = None, units: list[int] | None = None, shown: int = 64) -> list[Path]:
    """Record, then write `activities.safetensors` (every recorded value and the labels), `tuning.json`
    (per layer: units and their tuning curves) and per layer a tuning heat map of up to `shown` units and,
    for a settling net, the mean activity over iterations."""
    recorded = record(learner, x, layers, units)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {name: activity.contiguous() for name, activity in recorded.items()}
    safetensors.torch.save_file({**tensors, "labels": labels}, out_dir / "activities.safetensors",
                                metadata={"algorithm": learner.name})
    written, tuning = [out_dir / "activities.safetensors"], {}
    for name, activity in recorded.items():
        unit_ids = units if units is not None else list(range(activity.shape[-1]))
        curves = tuning_curves(activity, labels, learner.n_classes)
        tuning[name] = {"units": unit_ids, "iterations": activity.shape[0], "images": activity.shape[1],
                        "curves": curves.T.tolist()}  # per unit, its mean activity for each class
        written.append(plots.tuning_curves(curves[:, :shown], unit_ids[:shown], out_dir / f"tuning_{name}.png",
                                           f"{learner.name} {name}: mean activity per class"))
        if activity.shape[0] > 1:
            written.append(plots.activity_over_iterations(
                activity[..., :10], unit_ids[:10], out_dir / f"iterations_{name}.png",
                f"{learner.name} {name}: activity while settling"))
    (out_dir / "tuning.json").write_text(json.dumps(tuning, indent=1))
    return [*written, out_dir / "tuning.json"]
