"""TODO docstring (kinds.tiling, split from upscaler.py)."""

from __future__ import annotations

import numpy as np


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: a regular step, the last tile flush with the end."""
    if length <= tile:
        return [0]
    step = tile - overlap
    return list(range(0, length - tile, step)) + [length - tile]


def _ramp(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n) if n > 0 else np.zeros(0)


def _axis_weight(start: int, size: int, length: int, margin: int, overlap: int, scale: int) -> np.ndarray:
    """Weight along one axis for a tile [start, start+size) of an axis of ``length``, in output pixels.

    Inner edges (not image borders): zero over ``margin`` input pixels, then a raised-cosine ramp
    over ``overlap - 2*margin``; 1 elsewhere. Image borders keep weight 1 (padding is the same as
    in a whole-image run there).
    """
    w = np.ones(size * scale, dtype=np.float32)
    m, r = margin * scale, max(overlap - 2 * margin, 0) * scale
    ramp = _ramp(r).astype(np.float32)
    if start > 0:
        w[:m] = 0.0
        w[m : m + r] = ramp
    if start + size < length:
        w[len(w) - m :] = 0.0
        w[len(w) - m - r : len(w) - m] = np.minimum(w[len(w) - m - r : len(w) - m], ramp[::-1])
    return w


