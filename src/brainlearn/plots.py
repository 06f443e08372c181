"""Figures, written as PNG with matplotlib's non-interactive backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def learning_curves(curves: dict[str, list[tuple[int, float]]], path: Path, title: str, xlabel: str = "epoch",
                    ylabel: str = "test error (%)", scale: float = 100.0, yscale: str = "log") -> Path:
    """curves: label -> [(epoch, test error), ...], drawn on a log scale (values times `scale`); `yscale`
    "linear" for values that can be negative (log-likelihoods)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, points in curves.items():
        epochs, errors = zip(*points)
        ax.plot(epochs, [scale * e for e in errors], marker="o", markersize=3, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, yscale=yscale)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def receptive_fields(weights: torch.Tensor, image_shape: tuple[int, ...], path: Path, title: str,
                     count: int = 64) -> Path:
    """The first `count` rows of a first-layer weight matrix drawn as images."""
    weights = weights[:count].detach().reshape(-1, *image_shape)
    side = int(len(weights) ** 0.5 + 0.999)
    fig, axes = plt.subplots(side, side, figsize=(side * 0.8, side * 0.8))
    for ax in axes.flat:
        ax.axis("off")
    for ax, w in zip(axes.flat, weights):
        limit = w.abs().max().item() or 1.0
        if w.dim() == 3:  # colour: channels first; zero weight is grey
            ax.imshow((0.5 + 0.5 * w / limit).permute(1, 2, 0).numpy())
        else:
            ax.imshow(w.numpy(), cmap="seismic", vmin=-limit, vmax=limit)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def image_grid(images: torch.Tensor, image_shape: tuple[int, int], path: Path, title: str,
               row_labels: list[str] | None = None) -> Path:
    """images: (rows, columns, pixels) with values in [0, 1], drawn black on white."""
    rows, columns = images.shape[:2]
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.7, rows * 0.7), squeeze=False)
    for r in range(rows):
        for c in range(columns):
            ax = axes[r, c]
            ax.imshow(images[r, c].reshape(image_shape).numpy(), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        if row_labels:
            axes[r, 0].set_ylabel(row_labels[r], rotation=0, labelpad=10, va="center")
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def energy_traces(traces: dict[str, dict[str, list[float]]], path: Path) -> Path:
    """Mean energy over relaxation steps: the free phase, then the nudged phase, per architecture."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, trace in traces.items():
        free, nudged = trace["free"], trace["nudged"]
        (line,) = ax.plot(range(1, len(free) + 1), free, label=f"{name}: free")
        ax.plot(range(len(free), len(free) + len(nudged) + 1), [free[-1], *nudged], linestyle="--",
                color=line.get_color(), label=f"{name}: nudged")
    ax.set(xlabel="relaxation step", ylabel="mean energy E", title="Equilibrium Propagation: relaxation")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def goodness_histograms(layers: list[dict], path: Path, title: str) -> Path:
    """Per FF layer, goodness of positive vs negative data (`edges`, `positive`, `negative` counts, `theta`)."""
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 3), squeeze=False)
    for j, (ax, layer) in enumerate(zip(axes[0], layers)):
        for key, color in (("positive", "tab:blue"), ("negative", "tab:red")):
            ax.stairs(layer[key], layer["edges"], color=color, label=key)
        ax.axvline(layer["theta"], color="black", linestyle=":", label="theta")
        ax.set(xlabel="goodness (sum of squared activities)", title=f"layer {j + 1}")
        ax.set_yticks([])
    axes[0, 0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def tuning_curves(curves: torch.Tensor, units: list[int], path: Path, title: str) -> Path:
    """Mean activity per class (rows) of each unit (columns), as a heat map."""
    fig, ax = plt.subplots(figsize=(min(2 + 0.25 * len(units), 16), 3.5))
    image = ax.imshow(curves.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set(xlabel="unit", ylabel="class", title=title, yticks=range(len(curves)))
    step = max(1, len(units) // 16)
    ax.set_xticks(range(0, len(units), step), [str(u) for u in units[::step]])
    fig.colorbar(image, ax=ax, label="mean activity")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def activity_over_iterations(activity: torch.Tensor, units: list[int], path: Path, title: str) -> Path:
    """activity: (iterations, images, units); the mean over images of each unit, per iteration."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    mean = activity.mean(1)
    for k, unit in enumerate(units):
        ax.plot(range(1, len(mean) + 1), mean[:, k].numpy(), label=f"unit {unit}")
    ax.set(xlabel="iteration", ylabel="mean activity", title=title)
    ax.grid(True, alpha=0.3)
    if len(units) <= 10:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def wave_image(states: torch.Tensor, path: Path, title: str) -> Path:
    """states: (channels, steps, positions) of a ring-shaped hidden state, one panel per channel."""
    fig, axes = plt.subplots(1, len(states), figsize=(2.6 * len(states), 4), squeeze=False)
    for c, (ax, image) in enumerate(zip(axes[0], states)):
        ax.imshow(image.numpy(), aspect="auto", cmap="magma", interpolation="nearest")
        ax.set(xlabel="position on the ring", title=f"channel {c}")
    axes[0, 0].set_ylabel("time step")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def degradation_factors(groups: dict[str, dict[str, list[float]]], path: Path, title: str) -> Path:
    """groups: fault -> {learner: [factor per seed]}; bars of the mean factor per learner, whiskers from the
    smallest to the largest seed, on a log scale, with 1 (no degradation) marked."""
    learners = list(dict.fromkeys(name for group in groups.values() for name in group))
    width = 0.8 / len(learners)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(groups)), 4.5))
    for index, learner in enumerate(learners):
        positions = [g + (index - (len(learners) - 1) / 2) * width for g, group in enumerate(groups.values())
                     if learner in group]
        values = [group[learner] for group in groups.values() if learner in group]
        means = [sum(v) / len(v) for v in values]
        ax.bar(positions, means, width, label=learner, color=f"C{index}",
               yerr=[[m - min(v) for m, v in zip(means, values)], [max(v) - m for m, v in zip(means, values)]],
               capsize=2)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(groups)), list(groups), rotation=35, ha="right", fontsize=8)
    ax.set(ylabel="test error / fault-free test error", yscale="log", title=title)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def goodness_per_step(traces: dict[str, dict], window: tuple[int, int], path: Path, title: str) -> Path:
    """traces: objective -> {"right"/"wrong": [step][layer] mean goodness}; one panel per objective, one colour
    per layer, solid for the right label and dashed for wrong ones; the test window shaded."""
    fig, axes = plt.subplots(1, len(traces), figsize=(4.5 * len(traces), 3.5), squeeze=False)
    for ax, (objective, trace) in zip(axes[0], traces.items()):
        steps = range(1, len(trace["right"]) + 1)
        for layer in range(len(trace["right"][0])):
            line, = ax.plot(steps, [g[layer] for g in trace["right"]], label=f"layer {layer + 1}, right label")
            ax.plot(steps, [g[layer] for g in trace["wrong"]], linestyle="--", color=line.get_color(),
                    label=f"layer {layer + 1}, wrong labels")
        ax.axvspan(window[0] - 0.5, window[1] + 0.5, color="grey", alpha=0.15)
        ax.set(xlabel="step", ylabel="mean goodness", title=f"{objective} goodness for positive data")
        ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
