"""Locally connected layers: receptive fields without weight sharing (Hinton 2022, sec. 4, CIFAR-10).

Every hidden layer is a topographic map with the image's height and width and a few units at each
location; each unit sees a field x field patch of the map below (all its channels, zero padded at the
edges) through weights of its own. Built as one strided copy of every location's patch (batch innermost,
like `unfold` but laid out for the matmul) and one batched matmul over locations, never a Python loop
over positions. With the batch innermost, a CIFAR-sized layer (3 -> 3 maps of 32x32, 11x11 fields) trains
4.6x faster than `unfold` followed by a permute, which copies the 120x larger patch tensor with a bad
stride (forward and backward, batch 100, one thread: 0.30 s vs 1.39 s).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def square_image(n_inputs: int) -> tuple[int, int, int]:
    """(channels, side, side) of a flattened square grey (1 channel) or colour (3 channel) image."""
    for channels in (1, 3):
        side = math.isqrt(n_inputs // channels)
        if channels * side * side == n_inputs:
            return channels, side, side
    raise ValueError(f"locally connected layers need square images of 1 or 3 channels; {n_inputs} inputs are not")


def check_field(field: int) -> None:
    if field < 1 or field % 2 == 0:
        raise ValueError(f"the receptive field must be an odd size, got {field}")


class _Patches(torch.autograd.Function):
    """(batch, C, H, W) -> (H * W, C * field * field, batch): each location's zero-padded patch, batch innermost.
    The backward adds each of the field x field offsets back as one batched slice."""

    @staticmethod
    def forward(ctx, maps: torch.Tensor, field: int) -> torch.Tensor:
        batch, channels, height, width = maps.shape
        r = field // 2
        padded = F.pad(maps, (r, r, r, r)).permute(1, 2, 3, 0).contiguous()  # (C, H + 2r, W + 2r, batch)
        s_channel, s_row, s_col, s_batch = padded.stride()
        ctx.shape, ctx.field = maps.shape, field
        windows = padded.as_strided((height, width, channels, field, field, batch),
                                    (s_row, s_col, s_channel, s_row, s_col, s_batch))
        return windows.reshape(height * width, channels * field * field, batch)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        batch, channels, height, width = ctx.shape
        field, r = ctx.field, ctx.field // 2
        per_offset = grad.reshape(height, width, channels, field, field, batch).permute(3, 4, 2, 0, 1, 5)
        padded = grad.new_zeros(channels, height + 2 * r, width + 2 * r, batch)
        for a in range(field):
            for b in range(field):
                padded[:, a: a + height, b: b + width] += per_offset[a, b]
        return padded[:, r: r + height, r: r + width].permute(3, 0, 1, 2), None


class LocallyConnected2d(nn.Module):
    """(batch, C_in * H * W) -> (batch, C_out * H * W): out[o, i, j] = b[o, i, j] + sum over the field x field
    patch around (i, j) of W[i, j, o, patch] * in[patch]."""

    def __init__(self, in_channels: int, out_channels: int, height: int, width: int, field: int, bias: bool = True):
        super().__init__()
        check_field(field)
        self.in_channels, self.out_channels, self.height, self.width, self.field = (
            in_channels, out_channels, height, width, field)
        patch, locations = in_channels * field * field, height * width
        bound = 1 / math.sqrt(patch)  # nn.Linear's initialisation for a unit with `patch` inputs
        self.weight = nn.Parameter(torch.empty(locations, out_channels, patch).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_channels, locations).uniform_(-bound, bound)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = x.reshape(len(x), self.in_channels, self.height, self.width)
        patches = _Patches.apply(maps, self.field)  # (locations, patch, batch)
        out = torch.bmm(self.weight, patches).permute(2, 1, 0)  # (batch, out_channels, locations)
        return (out if self.bias is None else out + self.bias).reshape(len(x), -1)

    def extra_repr(self) -> str:
        return (f"{self.in_channels} -> {self.out_channels} maps of {self.height}x{self.width}, "
                f"{self.field}x{self.field} fields")


def connection(n_in: int, n_out: int, local_field: int, image: tuple[int, int, int] | None,
               bias: bool = True) -> nn.Module:
    """A dense layer, or (local_field > 0 and both sides maps of `image`'s size) a locally connected one."""
    if local_field and image is not None:
        pixels = image[1] * image[2]
        if n_in % pixels == 0 and n_out % pixels == 0:
            return LocallyConnected2d(n_in // pixels, n_out // pixels, image[1], image[2], local_field, bias)
    return nn.Linear(n_in, n_out, bias=bias)


def map_sizes(hidden: tuple[int, ...], local_field: int, n_inputs: int) -> tuple[int, int, int] | None:
    """The image geometry local layers use (None for dense nets); refuses hidden sizes that are not maps."""
    if not local_field:
        return None
    image = square_image(n_inputs)
    pixels = image[1] * image[2]
    if any(size % pixels for size in hidden):
        raise ValueError(f"with local_field, every hidden size must be a multiple of the image's {pixels} pixels "
                         f"(units per location x {image[1]} x {image[2]})")
    return image
