"""Tiling for image-to-image kinds: any image size in bounded memory, exact, with no seams.

Tiles overlap; each tile's weight is zero within the model's receptive radius of its inner edges and
ramps up smoothly (raised cosine) over the rest of the overlap. Every pixel that gets weight is therefore
computed from exactly the input a whole-image run sees, so the tiled result equals the whole-image result
(up to float rounding), with no seams. That holds for fully convolutional networks whose output pixel
depends on at most ``radius`` input pixels per side; a network that sees the whole image cannot be tiled.

Memory: tiles are processed one tile row at a time into a float band of (tile * scale) output rows; rows
that no later tile touches are finalised to uint8 at once. Peak memory is the uint8 output plus that band
(tile * scale * width * scale * 4 * channels bytes) plus one batch of tiles, whatever the height.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.core.errors import InferenceError, ModelFormatError, ParameterError
from ganrt.core.kind import article
from ganrt.core.memory import check_fits
from ganrt.core.model import Model
from ganrt.core.schema import ModelInfo

RAMP_PIXELS = 8  # input pixels of smooth cross-fade inside the default overlap
PROBE_SIDES = (1, 2, 4, 8)  # input sides a load tries to find the graph's real scale (a scale 1000 graph: 12 MB at 1)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: a regular step, the last tile flush with the end."""
    if length <= tile:
        return [0]
    step = tile - overlap
    return list(range(0, length - tile, step)) + [length - tile]


def tile_count(h: int, w: int, tile: tuple[int, int], overlap: int) -> int:
    """How many tiles ``tiled`` / ``exact_tiled`` run for an (h, w) image (what a progress bar counts)."""
    return len(_starts(h, min(tile[0], h), overlap)) * len(_starts(w, min(tile[1], w), overlap))


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


def check_tile_options(*, tile: int, overlap: int | None, batch_size: int, default_overlap: int) -> tuple[int, int, int]:
    """Validated (tile, overlap, batch_size); ``overlap`` None: ``default_overlap``, at most half a tile
    (so that small tiles still advance). Raises ParameterError."""
    if overlap is None:
        overlap = min(default_overlap, tile // 2) if isinstance(tile, (int, np.integer)) else 0
    for name, value, low in (("tile", tile, 1), ("overlap", overlap, 0), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ParameterError(f"{name} must be an integer >= {low}, got {value!r}")
    if overlap >= tile:
        raise ParameterError(f"overlap ({overlap}) must be smaller than the tile ({tile})")
    return int(tile), int(overlap), int(batch_size)


def tiled(run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, *, scale: int, channels: int, tile: int,
          overlap: int, radius: int, batch_size: int, on_tile: Callable[[int], None] | None = None) -> np.ndarray:
    """(H, W, C_in) uint8 -> (H*scale, W*scale, channels) uint8 through ``run``, tiled and blended.

    ``run``: tiles (B, h, w, C_in) uint8 -> (B, channels, h*scale, w*scale) float in about [0, 1].
    ``on_tile(k)``: called after each call with the number of tiles it made (a progress bar).
    """
    s = scale
    h, w = image.shape[:2]
    th, tw = min(tile, h), min(tile, w)
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    margin = min(radius, overlap // 2)
    wx = [_axis_weight(x, tw, w, margin, overlap, s) for x in xs]  # per tile column, (tw*s,)
    wy = [_axis_weight(y, th, h, margin, overlap, s) for y in ys]  # per tile row, (th*s,)
    # the weights are separable and every tile row uses the same columns, so the normaliser
    # is the outer product of the per-axis sums
    norm_x = np.zeros(w * s, np.float32)
    for x, wgt in zip(xs, wx):
        norm_x[x * s : (x + tw) * s] += wgt
    norm_y = np.zeros(h * s, np.float32)
    for y, wgt in zip(ys, wy):
        norm_y[y * s : (y + th) * s] += wgt
    out = np.empty((h * s, w * s, channels), dtype=np.uint8)
    band = np.zeros((th * s, w * s, channels), dtype=np.float32)  # output rows [band_top, band_top + th*s)
    band_top = 0
    for r, y in enumerate(ys):
        if y * s > band_top:  # rows above this tile row are final: emit them, slide the band
            _emit(out, band, band_top, y * s, norm_y, norm_x)
            shift = y * s - band_top
            band[: th * s - shift] = band[shift:]
            band[th * s - shift :] = 0.0
            band_top = y * s
        for b in range(0, len(xs), batch_size):
            cols = xs[b : b + batch_size]
            up = run(np.stack([image[y : y + th, x : x + tw] for x in cols]))  # (B, channels, th*s, tw*s)
            if up.shape != (len(cols), channels, th * s, tw * s):
                raise InferenceError(f"the model made {tuple(up.shape)} of {len(cols)} tiles of {th}x{tw}; scale {s} "
                                     f"and {channels} channels make {(len(cols), channels, th * s, tw * s)}")
            for k, x in enumerate(cols):
                weight = wy[r][:, None] * wx[b + k][None, :]  # (th*s, tw*s)
                band[:, x * s : (x + tw) * s] += (up[k] * weight).transpose(1, 2, 0)
            if on_tile is not None:
                on_tile(len(cols))
    _emit(out, band, band_top, h * s, norm_y, norm_x)
    return out


# How well one call on the multi-threaded session uses the cores, against one single-threaded call per core
# (sr-x4 on the 2-vCPU EPYC: 1024² whole 6.28 s vs two 1024x531 tiles on the lanes 5.77 s; 256² whole 0.362 s
# vs two 256x147 tiles 0.413 s; both fit 0.9, benchmarks/NOTES.md).
THREADED_EFFICIENCY = 0.9


def plan_tiles(h: int, w: int, *, overlap: int, max_pixels: int, lanes: int = 1) -> tuple[int, int]:
    """(tile height, tile width) in input pixels for an (h, w) image: of the grids whose tiles have at most
    ``max_pixels`` pixels each (but at least 2 x overlap + 1 per side, so that tiles advance), the one whose
    busiest lane computes the fewest pixels when ``lanes`` tiles run at once -- few tiles (little overlap
    recomputed), in a multiple of ``lanes`` (no lane idle at the end). One whole tile runs on the threaded
    session instead: it counts as its pixels over ``lanes x THREADED_EFFICIENCY``. Ties: fewer tiles."""
    def side(length: int, parts: int) -> int:
        return min(length, -(-(length + (parts - 1) * overlap) // parts))

    best = None
    floor = 2 * overlap + 1
    for ny in range(1, max(1, -(-h // floor)) + 1):
        th = side(h, ny)
        if ny > 1 and th < floor:
            break
        for nx in range(1, max(1, -(-w // floor)) + 1):
            tw = side(w, nx)
            if nx > 1 and tw < floor:
                break
            if th * tw > max_pixels and not (th <= floor and tw <= floor):
                continue
            if ny * nx == 1 and lanes > 1:  # one tile runs on the multi-threaded session: every core, less well used
                cost = (th * tw / (lanes * THREADED_EFFICIENCY), 1)
            else:
                cost = (-(-(ny * nx) // lanes) * th * tw, ny * nx)
            if best is None or cost < best[0]:
                best = (cost, (th, tw))
    return best[1] if best is not None else (min(h, floor), min(w, floor))


def exact_tiled(run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, *, scale: int, channels: int,
                tile: tuple[int, int], overlap: int, radius: int,
                each: Callable[[Callable[[Any], None], list], None] | None = None,
                on_tile: Callable[[int], None] | None = None) -> np.ndarray:
    """(H, W, C_in) uint8 -> (H*scale, W*scale, channels) uint8 through ``run``, tiles cut without blending.

    ``run``: one tile (h, w, C_in) uint8 -> (channels, h*scale, w*scale) float in about [0, 1] (the caller's
    array: it is rounded in place). Neighbouring tiles overlap by at least ``overlap`` >= 2 x ``radius``; each
    output pixel is taken from the one tile that owns it (the cut runs through the middle of the overlap),
    at least ``radius`` input pixels inside that tile, so it is computed from exactly the input a whole-image
    run sees: the result equals the whole-image result byte for byte. No float band: each tile is rounded
    into the uint8 output at once. ``each(job, tiles)`` runs ``job(t)`` for every tile, possibly several at
    once (the lanes); default one after another. Jobs write disjoint parts of the output. ``on_tile(1)`` is
    called after each tile, from the thread that ran it (a progress bar; it must be thread-safe).
    """
    if overlap < 2 * radius:
        raise ParameterError(f"exact tiles need an overlap of at least 2 x the receptive radius ({2 * radius}), got {overlap}")
    s = scale
    h, w = image.shape[:2]
    th, tw = min(tile[0], h), min(tile[1], w)

    def owned(starts: list[int], size: int, length: int) -> list[tuple[int, int]]:
        cuts = [0] + [(a + size + b) // 2 for a, b in zip(starts[:-1], starts[1:])] + [length]
        return list(zip(cuts[:-1], cuts[1:]))

    ys, xs = _starts(h, th, overlap), _starts(w, tw, overlap)
    rows, cols = owned(ys, th, h), owned(xs, tw, w)
    out = np.empty((h * s, w * s, channels), dtype=np.uint8)

    def job(t: tuple[int, int]) -> None:
        (y, (y0, y1)), (x, (x0, x1)) = (ys[t[0]], rows[t[0]]), (xs[t[1]], cols[t[1]])
        up = run(image[y : y + th, x : x + tw])  # (channels, th*s, tw*s) float
        part = up[:, (y0 - y) * s : (y1 - y) * s, (x0 - x) * s : (x1 - x) * s]
        np.multiply(part, 255.0, out=part)  # as _emit on a single tile (weight 1, norm 1): the same operations
        np.rint(part, out=part)
        np.clip(part, 0, 255, out=part)
        out[y0 * s : y1 * s, x0 * s : x1 * s] = part.transpose(1, 2, 0)
        if on_tile is not None:
            on_tile(1)

    tiles = [(r, c) for r in range(len(ys)) for c in range(len(xs))]
    if each is None:
        for t in tiles:
            job(t)
    else:
        each(job, tiles)
    return out


def _emit(out, band, band_top, stop, norm_y, norm_x) -> None:
    rows = slice(band_top, stop)
    norm = norm_y[rows, None, None] * norm_x[None, :, None]  # (rows, W*s, 1)
    out[rows] = np.clip(np.rint(band[: stop - band_top] / norm * 255.0), 0, 255).astype(np.uint8)


class TiledModel(Model):
    """What the image-to-image kinds share: one float (N, C, H, W) input, a scale and a receptive radius."""

    takes = "one float (N, C, H, W) input"  # what a subclass's error says its graph must take
    probe_channels: int | None = None  # a subclass whose output has this many channels is checked at load

    def __init__(self, session: Any, info: ModelInfo, *, source: str, path: Path | None = None) -> None:
        super().__init__(session, info, source=source, path=path)
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].type != "tensor(float)":
            raise ModelFormatError(f"{source}: {article(info.kind)} takes {self.takes}")
        self._input = inputs[0].name
        self._output = session.get_outputs()[0].name
        if self.probe_channels is not None:
            self.check_scale(self.probe_channels)

    @property
    def scale(self) -> int:
        return self.info.scale

    @property
    def receptive_radius(self) -> int:
        return self.info.receptive_radius

    def check_scale(self, channels: int) -> None:
        """Run the graph once on a tiny input and refuse a file whose real scale (or channel count) is not its
        metadata's: a mismatch was a numpy broadcast error in the middle of an image, and a graph of scale 1000
        reached 7.7 GB on a 50x40 input. The smallest of PROBE_SIDES that the graph takes is used; a graph that
        takes none of them is left to fail, with its own error, when it runs."""
        s = self.scale
        for side in PROBE_SIDES:
            try:
                (y,) = self.session.run([self._output], {self._input: np.zeros((1, self.image_shape[2], side, side), np.float32)})
            except Exception:  # onnxruntime's pybind errors: this size is too small for the graph; try the next
                continue
            if y.shape != (1, channels, side * s, side * s):
                got = f"{y.shape[2] / side:g}" if y.ndim == 4 else "?"
                raise ModelFormatError(f"{self.source}: the graph makes {tuple(y.shape)} of a (1, {self.image_shape[2]}, "
                                       f"{side}, {side}) input (scale x{got}); its metadata says scale {s} and "
                                       f"{channels} channels: (1, {channels}, {side * s}, {side * s})")
            return


def bench_call(run_many: Callable[[np.ndarray], Any], shape: tuple[int, int, int],
               flops_per_pixel: float, *, scale: int = 1) -> tuple[Callable[[int], Any], float | None]:
    """``Kind.bench`` for image-to-image kinds: ``run_many`` of b copies of a (H, W, C) uint8 noise image,
    and the FLOPs of one such image (None when the file does not state them). A batch whose inputs and
    outputs (``scale`` x larger per side) cannot fit in memory is a ``ParameterError`` before it is made."""
    h, w, c = shape
    image = np.random.default_rng(0).integers(0, 256, (h, w, c), dtype=np.uint8)
    flops = flops_per_pixel * h * w if flops_per_pixel else None

    def run(b: int) -> Any:
        check_fits(b * h * w * c * (1 + scale * scale), f"a batch of {b:,} {h}x{w} images", hint="time smaller batch sizes")
        return run_many(np.repeat(image[None], b, 0))

    return run, flops
