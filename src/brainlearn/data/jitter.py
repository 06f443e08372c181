"""Jitter (Hinton 2022, sec. 3.4): every training image shifted by up to `max_shift` pixels in each
direction, drawn afresh each epoch, zero filled; with max_shift = 2 that is 25 positions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shifts(n: int, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 2) integer (down, right) shifts, each uniform over the (2 max_shift + 1)^2 positions."""
    return torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator)


def shift_images(x: torch.Tensor, image_shape: tuple[int, ...], shifts: torch.Tensor) -> torch.Tensor:
    """Rows of `x` (flattened images of `image_shape`) each moved by its (down, right) shift."""
    height, width = image_shape[-2:]
    images = x.reshape(len(x), -1, height, width)
    margin = int(shifts.abs().max()) if len(shifts) else 0
    padded = F.pad(images, (margin, margin, margin, margin))
    out = torch.empty_like(images)
    for down, right in shifts.unique(dim=0).tolist():  # at most 25 groups, each one batched slice
        rows = (shifts == torch.tensor([down, right])).all(1)
        out[rows] = padded[rows, :, margin - down: margin - down + height, margin - right: margin - right + width]
    return out.reshape(x.shape)
