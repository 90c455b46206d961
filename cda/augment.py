"""Batched augmentation on the device, with explicit per-sample parameters.

Parameters (crop boxes, flips, circular shifts, mix permutations) are drawn on the host from a
seeded numpy generator, so a run is reproducible on any device and the relabeling step can store or
regenerate exactly the views a student sees. A crop, a flip and a shift of a whole batch are applied
by one `grid_sample` call.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

_LOG_RATIO = (math.log(3 / 4), math.log(4 / 3))


def sample_crop_boxes(rng: np.random.Generator, n: int, height: int, width: int,
                      scale: tuple[float, float], tries: int = 10) -> np.ndarray:
    """RandomResizedCrop boxes as torchvision draws them, vectorized.

    Returns float32 [n, 4]: (top, left, height, width) as fractions of the image. Where none of the
    `tries` draws fits, the whole image is used (torchvision's fallback for square images).
    """
    area = height * width
    target = area * rng.uniform(scale[0], scale[1], size=(n, tries))
    ratio = np.exp(rng.uniform(*_LOG_RATIO, size=(n, tries)))
    w = np.round(np.sqrt(target * ratio))
    h = np.round(np.sqrt(target / ratio))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.argmax(axis=1)
    rows = np.arange(n)
    ok = fits[rows, first]
    h = np.where(ok, h[rows, first], height)
    w = np.where(ok, w[rows, first], width)
    top = np.floor(rng.uniform(size=n) * (height - h + 1))
    left = np.floor(rng.uniform(size=n) * (width - w + 1))
    return np.stack([top / height, left / width, h / height, w / width], axis=1).astype(np.float32)


@dataclass
class ViewParams:
    """Per-sample view parameters: crop box [n, 4] (fractions), flip [n] (bool), shift [n, 2] (pixels)."""

    boxes: np.ndarray
    flips: np.ndarray
    shifts: np.ndarray

    def part(self, rows: slice) -> "ViewParams":
        return ViewParams(self.boxes[rows], self.flips[rows], self.shifts[rows])

    @staticmethod
    def identity(n: int) -> "ViewParams":
        return ViewParams(np.tile(np.array([0, 0, 1, 1], np.float32), (n, 1)), np.zeros(n, bool),
                          np.zeros((n, 2), np.int64))


def sample_views(rng: np.random.Generator, n: int, size: int, scale: tuple[float, float] | None,
                 flip: bool, jitter: int = 0) -> ViewParams:
    """n independent views: a RandomResizedCrop (scale=None: no crop), a flip with p=0.5, and a
    circular shift by 0..jitter pixels on each axis."""
    boxes = (sample_crop_boxes(rng, n, size, size, scale) if scale is not None
             else ViewParams.identity(n).boxes)
    flips = rng.uniform(size=n) < 0.5 if flip else np.zeros(n, bool)
    shifts = rng.integers(0, jitter + 1, size=(n, 2)) if jitter else np.zeros((n, 2), np.int64)
    return ViewParams(boxes, flips, shifts)


def apply_views(x: torch.Tensor, params: ViewParams, out_size: int | None = None) -> torch.Tensor:
    """Crop-and-resize, flip and circularly shift each image of `x` [N, C, H, W] (bilinear).

    The crop is resampled from inside its box only, as torchvision's `resized_crop` does: source
    coordinates are clamped to the box's outer pixel centres, so no pixel outside the box leaks in.
    A crop smaller than the output (always the case for RandomResizedCrop back to the image's size)
    is upscaled, where antialiasing changes nothing; a downscale is not antialiased.
    """
    n, _, height, width = x.shape
    size = out_size or height
    dev = x.device
    # Coordinates in float64 (n x size values): in float32 they are off by up to ~1e-5 pixels at 224 px.
    boxes = params.boxes.astype(np.float64) * np.array([height, width, height, width])  # pixels, on the host
    top, left, h, w = torch.as_tensor(boxes, device=dev).unbind(1)
    pos = torch.arange(size, device=dev, dtype=torch.float64)
    shifts = torch.as_tensor(params.shifts, device=dev)
    # The output pixel p shows the crop's pixel (p - shift) mod size, mirrored when flipped.
    ys = (pos[None] - shifts[:, :1]) % size
    xs = (pos[None] - shifts[:, 1:2]) % size
    flips = torch.as_tensor(params.flips, device=dev)[:, None]
    xs = torch.where(flips, size - 1 - xs, xs)
    # Source pixel coordinates (half-pixel centres, as interpolate with align_corners=False), kept
    # inside the box, then mapped to grid_sample's [-1, 1] coordinates.
    sy = (ys + 0.5) * (h / size)[:, None] - 0.5
    sx = (xs + 0.5) * (w / size)[:, None] - 0.5
    sy = top[:, None] + torch.minimum(sy.clamp(min=0), (h - 1)[:, None])
    sx = left[:, None] + torch.minimum(sx.clamp(min=0), (w - 1)[:, None])
    gy = ((2 * sy + 1) / height - 1).to(x.dtype)
    gx = ((2 * sx + 1) / width - 1).to(x.dtype)
    grid = torch.stack([gx[:, None, :].expand(n, size, size), gy[:, :, None].expand(n, size, size)], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass
class MixParams:
    """One batch's MixUp or CutMix: partner permutation, weight of the original image, CutMix box."""

    perm: np.ndarray
    lam: float
    box: tuple[int, int, int, int] | None = None  # (y1, y2, x1, x2) in pixels, CutMix only


def sample_mix(rng: np.random.Generator, n: int, size: int, kind: str, alpha: float,
               prob: float = 1.0) -> MixParams | None:
    """Draw MixUp (lam ~ Beta(a, a)) or CutMix (a box of area 1 - lam) parameters for a batch."""
    if kind == "none" or rng.uniform() >= prob:
        return None
    perm = rng.permutation(n)
    lam = float(rng.beta(alpha, alpha))
    if kind == "mixup":
        return MixParams(perm, lam)
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(size * cut), int(size * cut)
    cy, cx = int(rng.integers(size)), int(rng.integers(size))
    y1, y2 = np.clip(cy - ch // 2, 0, size), np.clip(cy + ch // 2, 0, size)
    x1, x2 = np.clip(cx - cw // 2, 0, size), np.clip(cx + cw // 2, 0, size)
    lam = 1.0 - float((y2 - y1) * (x2 - x1)) / (size * size)  # the exact share of the original
    return MixParams(perm, lam, (int(y1), int(y2), int(x1), int(x2)))


def apply_mix(x: torch.Tensor, mix: MixParams | None) -> torch.Tensor:
    if mix is None:
        return x
    partner = x[torch.as_tensor(mix.perm, device=x.device)]
    if mix.box is None:
        return mix.lam * x + (1 - mix.lam) * partner
    y1, y2, x1, x2 = mix.box
    out = x.clone()
    out[:, :, y1:y2, x1:x2] = partner[:, :, y1:y2, x1:x2]
    return out
