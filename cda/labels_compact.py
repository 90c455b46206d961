"""Compact stored soft labels: the top-k logits of each view, quantized, and no augmentation plan.

FKD-style labels keep, per view, the crop box, the flip, the mix parameters and all C logits in fp16
(about 33 + 2C bytes). Two observations make them much smaller:

- The plan (image order, crops, flips, CutMix/MixUp) is a pure function of (AugConfig, number of
  images, image size, epoch): `cda.relabel.epoch_plan` regenerates it bit for bit. Compact files keep
  only a digest of the plan, to detect a plan that would come out differently (another numpy, say).
- A student trained at temperature T sees softmax(z / T). Only the largest logits carry most of that
  distribution's shape; the others matter through their total mass. So we keep the k largest logits
  of each view (values and class indices) and one *fill* value for the C - k dropped classes, chosen
  so that the dropped classes keep their total probability mass at temperature T:

      (C - k) * exp(fill / T) = sum_j exp(z_j / T)   over dropped j
      fill = T * (logsumexp(z_dropped / T) - log(C - k))

  Among constant fills this is the one that minimizes KL(teacher || reconstruction) at T (setting the
  derivative in the fill to zero gives exactly this mass condition), so it is the principled choice
  for a student trained with KL at temperature T. The fill is never above the largest dropped logit,
  so it stays below every kept logit and the top-k order (and the arg-max) is unchanged. As T grows
  it tends to the mean of the dropped logits.
  The reconstructed softmax at T has the same kept probabilities up to the mass matching (exactly
  when nothing is quantized), and spreads the dropped mass evenly over the dropped classes.

With k = C nothing is dropped: the row keeps every logit in class order, so no class indices and no
fill are stored (C + 4 bytes in int8, against FKD's 33 + 2C).

Kept values are stored either as fp16 ("fp16") or as uint8 codes with a per-row offset and scale
("int8": value = offset + scale * code, offset = the smallest kept logit, scale = range / 255),
so the rounding error of a kept logit is at most scale / 2 plus fp16 rounding of offset and scale.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

QUANTS = ("fp16", "int8")


def _index_dtype(num_classes: int) -> torch.dtype:
    return torch.uint8 if num_classes <= 256 else torch.int16 if num_classes <= 32768 else torch.int32


def compress(logits: torch.Tensor, topk: int, quant: str = "int8", temperature: float = 20.0) -> dict:
    """Top-k logits of each row [N, C] plus the mass-matching fill value, quantized as `quant`."""
    if quant not in QUANTS:
        raise ValueError(f"quant={quant!r}: choose one of {QUANTS}")
    n, c = logits.shape
    if not 0 < topk <= c:
        raise ValueError(f"topk={topk}: keep between 1 and {c} of {c} classes (0 means full logits)")
    z = logits.float()
    if topk == c:  # every class, in class order
        values, out = z, {}
    else:
        values, indices = z.topk(topk, dim=1)  # sorted, largest first
        dropped = z.scatter(1, indices, float("-inf"))
        fill = temperature * (torch.logsumexp(dropped / temperature, dim=1) - math.log(c - topk))
        out = {"indices": indices.to(_index_dtype(c)), "fill": fill.half()}
    if quant == "fp16":
        out["values"] = values.half()
    else:
        lo = values.min(dim=1).values.half()  # stored in fp16: codes are computed against the stored offset
        hi = values.max(dim=1).values
        scale = ((hi - lo.float()) / 255).clamp_min(1e-6).half()
        out["codes"] = ((values - lo.float()[:, None]) / scale.float()[:, None]).round().clamp(0, 255).to(torch.uint8)
        out["offset"], out["scale"] = lo, scale
    return out


def decompress(blob: dict, num_classes: int) -> torch.Tensor:
    """Full fp32 logits [N, C]: the kept values in place, the fill value everywhere else."""
    if "values" in blob:
        values = blob["values"].float()
    else:
        values = blob["offset"].float()[:, None] + blob["scale"].float()[:, None] * blob["codes"].float()
    if "indices" not in blob:  # every class kept
        return values
    # The fill is at most the k-th kept logit before rounding; keep it so after rounding too.
    fill = torch.minimum(blob["fill"].float(), values.min(dim=1).values)
    full = fill[:, None].expand(len(values), num_classes).clone()
    return full.scatter_(1, blob["indices"].long(), values)


def _fields(num_classes: int, topk: int, quant: str) -> list[tuple[str, torch.dtype, int]]:
    """(name, dtype, values per row) of a compact row, in the order they are packed."""
    values = [("values", torch.float16, topk)] if quant == "fp16" else \
        [("codes", torch.uint8, topk), ("offset", torch.float16, 1), ("scale", torch.float16, 1)]
    if topk == num_classes:
        return values
    return values + [("indices", _index_dtype(num_classes), topk), ("fill", torch.float16, 1)]


def to_rows(blob: dict, num_classes: int, topk: int, quant: str) -> torch.Tensor:
    """Pack a `compress` result into one uint8 tensor [N, bytes per view]: one tensor per file keeps
    torch.save's per-tensor overhead (hundreds of bytes) out of small label files."""
    n = len(blob["offset"] if "offset" in blob else blob["values"])
    parts = [blob[name].reshape(n, -1).to(dtype).contiguous().view(torch.uint8)
             for name, dtype, _ in _fields(num_classes, topk, quant)]
    return torch.cat(parts, dim=1)


def from_rows(rows: torch.Tensor, num_classes: int, topk: int, quant: str) -> dict:
    """The inverse of `to_rows`."""
    blob, col = {}, 0
    for name, dtype, count in _fields(num_classes, topk, quant):
        width = count * torch.empty((), dtype=dtype).element_size()
        value = rows[:, col:col + width].contiguous().view(dtype)
        blob[name] = value.squeeze(1) if name in ("offset", "scale", "fill") else value  # per-row scalars
        col += width
    if col != rows.shape[1]:
        raise ValueError(f"compact label rows have {rows.shape[1]} bytes, expected {col} for top-{topk} {quant} "
                         f"of {num_classes} classes")
    return blob


def plan_digest(plans) -> str:
    """A short hash of an epoch's plan (indices, crops, flips, mix), to check a regenerated plan."""
    h = hashlib.sha256()
    for p in plans:
        for a in (p.indices, p.views.boxes, p.views.flips):
            h.update(np.ascontiguousarray(a).tobytes())
        if p.mix is not None:
            h.update(np.ascontiguousarray(p.mix.perm).tobytes())
            h.update(np.float64(p.mix.lam).tobytes())
            h.update(repr(p.mix.box).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Bytes per stored view (image-epoch), from the layouts written by cda.relabel.

# FKD / cda full format, per view: image index (int64), crop box (4 float32), flip (bool), mix
# partner (int64); per batch: batch size (int64), mixed (bool), lam (float64), CutMix box (4 int64).
FULL_PLAN_BYTES_PER_VIEW = 8 + 16 + 1 + 8
FULL_PLAN_BYTES_PER_BATCH = 8 + 1 + 8 + 32


def bytes_per_view(num_classes: int, topk: int = 0, quant: str = "int8", batch_size: int = 128,
                   logit_bytes: int = 2) -> float:
    """Stored bytes per image-epoch, from the format's layout (container overhead not counted).

    topk=0 is the full format: plan + C logits of `logit_bytes` each. topk>0 is the compact format:
    k values (2 B in fp16, 1 B in int8) + k class indices + fill (2 B) [+ offset and scale, 2 B each,
    in int8]; no plan. topk=C keeps no indices and no fill.
    """
    if topk == 0:
        return FULL_PLAN_BYTES_PER_VIEW + FULL_PLAN_BYTES_PER_BATCH / batch_size + logit_bytes * num_classes
    value = 2 if quant == "fp16" else 1
    scale = 0 if quant == "fp16" else 4
    if topk == num_classes:
        return topk * value + scale
    idx = torch.empty((), dtype=_index_dtype(num_classes)).element_size()
    return topk * (value + idx) + scale + 2
