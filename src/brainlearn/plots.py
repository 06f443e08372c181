"""Figures, written as PNG with matplotlib's non-interactive backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def learning_curves(curves: dict[str, list[tuple[int, float]]], path: Path, title: str) -> Path:
    """curves: label -> [(epoch, test error), ...]."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, points in curves.items():
        epochs, errors = zip(*points)
        ax.plot(epochs, [100 * e for e in errors], marker="o", markersize=3, label=label)
    ax.set(xlabel="epoch", ylabel="test error (%)", title=title, yscale="log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def receptive_fields(weights: torch.Tensor, image_shape: tuple[int, int], path: Path, title: str,
                     count: int = 64) -> Path:
    """The first `count` rows of a first-layer weight matrix drawn as images."""
    weights = weights[:count].detach().reshape(-1, *image_shape)
    side = int(len(weights) ** 0.5 + 0.999)
    fig, axes = plt.subplots(side, side, figsize=(side * 0.8, side * 0.8))
    for ax in axes.flat:
        ax.axis("off")
    for ax, w in zip(axes.flat, weights):
        limit = w.abs().max().item() or 1.0
        ax.imshow(w.numpy(), cmap="seismic", vmin=-limit, vmax=limit)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
