"""``Translator``: image-to-image networks (pix2pix, CycleGAN): an image in, an image of the same size out.

Pipeline: pre-process (numpy or Pillow -> (H, W, C_in) uint8 in the network's colour order), fit the
size the network takes (reflect-pad to the next multiple and crop back, or resize to its one fixed size
and back: ``Translator.fit`` says which), run it whole or in exact tiles (``kinds.tiling``, with the
measured receptive radius), post-process (uint8, back to the input's layout).

Networks that see the whole image (InstanceNorm without running statistics, CycleGAN's default, global
pooling, or a receptive field wider than the sizes adopt measured at, as pix2pix's 8-level unet_256:
``info.whole_image``) always run on the whole image; a tile request is an error, because no overlap makes
their tiles agree with the whole-image result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ganrt.core.errors import ParameterError
from ganrt.core.kind import Kind, register
from ganrt.core.run import run_session
from ganrt.core.schema import MAX_CHANNELS, MAX_IMAGE_SIDE, ModelInfo
from ganrt.io.images import bicubic_resize, eight_bit
from ganrt.kinds.tiling import RAMP_PIXELS, TiledModel, bench_call, check_tile_options, tiled

DEFAULT_BATCH_SIZE = 1  # tiles per onnxruntime call: translators are wide, one tile's activations are already large
BENCH_IMAGE_SIDE = 256  # ganrt bench times translators on 256x256 inputs (pix2pix's training size)
_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class Fit:
    """How an (H, W) image is fitted to the network: ``how`` is "none", "pad" (reflect-padded at the
    bottom and right to ``size`` and cropped back) or "resize" (bicubic to ``size`` and back)."""

    how: str
    size: tuple[int, int]  # (H, W) the network runs at
    original: tuple[int, int]

    def describe(self) -> str:
        """One line for the CLI, e.g. "padded 300x200 to 320x224 (multiples of 32) and cropped back"."""
        (h, w), (hh, ww) = self.original, self.size
        if self.how == "pad":
            return f"padded {w}x{h} to {ww}x{hh} (reflect) and cropped back"
        if self.how == "resize":
            return f"resized {w}x{h} to the network's {ww}x{hh} and back (bicubic)"
        return f"{w}x{h} as it is"


class Translator(TiledModel):
    """A loaded translator (``ganrt.load("edges2clothes.onnx")``). Stateless per call and thread-safe."""

    @property
    def in_channels(self) -> int:
        return self.info.image_shape[2]

    @property
    def out_channels(self) -> int:
        return self.info.out_channels

    @property
    def whole_image(self) -> bool:
        return self.info.whole_image

    @property
    def size_multiple(self) -> int:
        """Height and width the network takes are multiples of this (1: any size)."""
        return max(self.info.size_multiple, 1)

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(H, W) of a network that takes one size only, else None."""
        h, w, _ = self.info.image_shape
        return (h, w) if h and w else None

    @property
    def default_overlap(self) -> int:
        """2 x receptive radius (exact tiles) + a ramp, rounded up to a multiple of ``size_multiple``."""
        return _round_up(2 * self.receptive_radius + RAMP_PIXELS, self.size_multiple)

    def __repr__(self) -> str:
        return f"Translator({self.name!r}, {self.in_channels}->{self.out_channels} channels, scale={self.scale})"

    # -- public API -------------------------------------------------------------------------
    def fit(self, height: int, width: int) -> Fit:
        """How ``translate`` fits an image of ``height`` x ``width`` to the network (nothing is run)."""
        if self.fixed_size is not None:
            how = "none" if (height, width) == self.fixed_size else "resize"
            return Fit(how, self.fixed_size, (height, width))
        m = self.size_multiple
        size = (_round_up(height, m), _round_up(width, m))
        return Fit("none" if size == (height, width) else "pad", size, (height, width))

    def translate(self, image: Any, *, tile: int | None = None, overlap: int | None = None,
                  batch_size: int | None = None) -> Any:
        """Translate ``image``: uint8 (H, W) or (H, W, C) with C the model's input channels (models of 3
        channels in and 1 or 3 out also take RGBA: alpha is kept, resized bicubic at a scale), or a Pillow image.

        Returns uint8 (H*s, W*s, C_out) ((H*s, W*s) for a 2-D input and one channel out), or a Pillow
        image for a Pillow image. ``tile`` None (default) runs the whole image at once: exactly the
        network's result, in memory that grows with the image. A ``tile`` (input pixels) bounds memory
        and stays exact: ``overlap`` (default 2 x receptive radius + 8; a tile that cannot hold it is an
        error, not a silently inexact result) of at least 2 x radius; both are
        rounded to multiples of ``size_multiple`` so that every tile is a size the network takes and sits
        on the whole-image run's stride grid. Models that see the whole image refuse a tile
        (ParameterError); fixed-size models too. ``fit`` says how the size was fitted.
        """
        if hasattr(image, "getbands") and hasattr(image, "mode"):  # a Pillow image
            return self._translate_pil(image, tile=tile, overlap=overlap, batch_size=batch_size)
        arr = np.asarray(image)
        c = self.in_channels
        if arr.dtype != np.uint8:
            raise ParameterError(f"translate needs uint8 pixels, got {arr.dtype}")
        if arr.ndim == 2 and c == 1:
            arr = arr[..., None]
            flat = True
        else:
            flat = False
        alpha = arr.ndim == 3 and c == 3 and arr.shape[2] == 4 and self.out_channels in (1, 3)
        if arr.ndim != 3 or not (arr.shape[2] == c or alpha):
            rgba = c == 3 and self.out_channels in (1, 3)
            wanted = "(H, W) or (H, W, 1)" if c == 1 else f"(H, W, {c})" + (" or (H, W, 4)" if rgba else "")
            raise ParameterError(f"'{self.name}' translates {wanted} images, got shape {arr.shape}")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ParameterError(f"cannot translate a zero-size image ({arr.shape[0]}x{arr.shape[1]})")
        out = self._translate(arr[..., :c], tile=tile, overlap=overlap, batch_size=batch_size)
        if alpha:
            a = arr[..., 3]
            if a.shape != out.shape[:2]:
                a = bicubic_resize(a, (out.shape[1], out.shape[0]))
            out = np.concatenate([out, a[..., None]], axis=2)
        return out[..., 0] if flat and out.shape[2] == 1 else out

    def translate_many(self, images: np.ndarray, *, tile: int | None = None, overlap: int | None = None,
                       batch_size: int | None = None) -> np.ndarray:
        """A stack (N, H, W[, C]) of uint8 images -> (N, sH, sW[, C_out]); options as in ``translate``."""
        return np.stack([self.translate(im, tile=tile, overlap=overlap, batch_size=batch_size) for im in images])

    def check_options(self, *, tile: int | None = None, overlap: int | None = None,
                      batch_size: int | None = None) -> tuple[int | None, int, int]:
        """Validated (tile or None, overlap, batch_size), rounded to ``size_multiple``; raises ParameterError,
        also for a tile on a model that cannot be tiled exactly (and says why)."""
        if tile is None:
            if overlap is not None:
                raise ParameterError("overlap is for tiles: give a tile too")
            return None, 0, 1
        if self.whole_image:
            raise ParameterError(f"'{self.name}' sees the whole image (changing one input pixel changes the output up to "
                                 "the border: InstanceNorm without running statistics, global pooling, or a receptive field "
                                 "wider than the sizes measured, as a deep U-Net's), so no tiles can give its result "
                                 "exactly; leave the tile out to run it on the whole image")
        if self.fixed_size is not None:
            h, w = self.fixed_size
            raise ParameterError(f"'{self.name}' takes {w}x{h} images only; it runs on the whole (resized) image, "
                                 "leave the tile out")
        m = self.size_multiple
        if overlap is None:  # exact, unlike the upscalers' default (capped at half a tile): a small tile is an error
            overlap = self.default_overlap
            if isinstance(tile, (int, np.integer)) and not isinstance(tile, bool) and tile // m * m <= overlap:
                raise ParameterError(f"tile {tile} is too small for exact tiles of '{self.name}': its receptive radius "
                                     f"{self.receptive_radius} needs an overlap of {overlap}, so tiles of at least "
                                     f"{overlap + m} (or leave the tile out)")
        tile, overlap, batch_size = check_tile_options(
            tile=tile, overlap=overlap, batch_size=DEFAULT_BATCH_SIZE if batch_size is None else batch_size,
            default_overlap=self.default_overlap)
        tile, overlap = max(tile // m * m, m), _round_up(overlap, m)
        if overlap >= tile:
            raise ParameterError(f"overlap ({overlap}) must be smaller than the tile ({tile}), both rounded to "
                                 f"multiples of {m}, the sizes '{self.name}' takes")
        return tile, overlap, batch_size

    # -- the core -----------------------------------------------------------------------------
    def _translate(self, rgb: np.ndarray, *, tile: int | None, overlap: int | None, batch_size: int | None) -> np.ndarray:
        """(H, W, C_in) uint8 -> (H*s, W*s, C_out) uint8: colour order, fit, run, fit back."""
        tile, overlap, batch_size = self.check_options(tile=tile, overlap=overlap, batch_size=batch_size)
        h, w = rgb.shape[:2]
        bgr = self.info.color_order == "bgr"
        x = rgb[..., ::-1] if bgr and self.in_channels == 3 else rgb
        fit = self.fit(h, w)
        hh, ww = fit.size
        if fit.how == "pad":
            x = np.pad(x, ((0, hh - h), (0, ww - w), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
        elif fit.how == "resize":
            x = bicubic_resize(x, (ww, hh))
            x = x[..., None] if x.ndim == 2 else x
        x = np.ascontiguousarray(x)
        if tile is None:  # one tile of the whole image: every weight 1, the network's own result
            tile, overlap, batch_size = max(hh, ww), 0, 1
        s = self.scale
        y = tiled(self._run, x, scale=s, channels=self.out_channels, tile=tile, overlap=overlap,
                  radius=self.receptive_radius, batch_size=batch_size)
        if fit.how == "pad":
            y = y[: h * s, : w * s]
        elif fit.how == "resize":
            y = bicubic_resize(y[..., 0] if y.shape[2] == 1 else y, (w * s, h * s))
            y = y[..., None] if y.ndim == 2 else y
        return np.ascontiguousarray(y[..., ::-1] if bgr and self.out_channels == 3 else y)

    def _run(self, tiles: np.ndarray) -> np.ndarray:
        """(B, h, w, C_in) uint8 -> (B, C_out, h*s, w*s) float32 in about [0, 1]."""
        lo, hi = self.info.value_range
        x = np.ascontiguousarray(tiles.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32((hi - lo) / 255.0)
        if lo:
            x += np.float32(lo)
        (y,) = run_session(self.session, [self._output], {self._input: x}, source=self.source)
        return y if (lo, hi) == (0.0, 1.0) else (y - np.float32(lo)) * np.float32(1.0 / (hi - lo))

    def _translate_pil(self, im: Any, *, tile: int | None, overlap: int | None, batch_size: int | None) -> Any:
        from PIL import Image

        c = self.in_channels
        if c not in _PIL_MODES or self.out_channels not in _PIL_MODES:
            raise ParameterError(f"'{self.name}' maps {c} channels to {self.out_channels}: give a numpy array, "
                                 "Pillow images have 1, 3 or 4")
        has_alpha = c == 3 and self.out_channels in (1, 3) and (
            "transparency" in im.info or im.mode in ("RGBA", "LA", "PA", "RGBa", "La"))
        im = eight_bit(im)  # high bit depth: scaled to 8 bits first
        target = "RGBA" if has_alpha else _PIL_MODES[c]
        out = self.translate(np.asarray(im.convert(target)), tile=tile, overlap=overlap, batch_size=batch_size)
        mode = {1: "LA", 3: "RGBA"}[self.out_channels] if has_alpha else _PIL_MODES[self.out_channels]
        return Image.fromarray(out, mode=mode)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _check(info: ModelInfo) -> str | None:
    h, w, c = info.image_shape
    fixed = h > 0 and w > 0
    if not (1 <= c <= MAX_CHANNELS and 1 <= info.out_channels <= MAX_CHANNELS) or info.scale < 1:
        return (f"a translator needs 1..{MAX_CHANNELS} channels in and out and scale >= 1, got channels "
                f"{c} -> {info.out_channels}, scale {info.scale}")
    if not (fixed or (h, w) == (0, 0)) or max(h, w) > MAX_IMAGE_SIDE or info.receptive_radius < 0:
        return f"image_shape {info.image_shape} must be (0, 0, C) for any size or (H, W, C) for one size"
    if fixed and info.size_multiple > 1:
        return "a translator has a fixed size or a size multiple, not both"
    return None


def _shape(info: ModelInfo) -> str:
    h, w, c = info.image_shape
    size = f"{h}x{w}" if h else (f"n*{info.size_multiple}" if info.size_multiple > 1 else "any")
    return f"{size} {c}->{info.out_channels}" + (f" x{info.scale}" if info.scale != 1 else "")


def _rows(info: ModelInfo) -> list[tuple[str, str]]:
    h, w, c = info.image_shape
    if h:
        size = f"{w}x{h} only (other sizes are resized to it and back)"
    elif info.size_multiple > 1:
        size = f"sides multiples of {info.size_multiple} (others are reflect-padded and cropped back)"
    else:
        size = "any size"
    tiles = ("never tiled: it sees the whole image" if info.whole_image
             else f"exact tiles, receptive radius {info.receptive_radius}")
    return [("image", f"{size}, {c} -> {info.out_channels} channels ({info.color_order}), x{info.scale}"),
            ("tiling", tiles)]


def _bench(tr: Translator) -> tuple[Any, float | None]:
    """``translate_many`` of BENCH_IMAGE_SIDE² noise (the fixed size, if the model has one), whole images."""
    h, w = tr.fixed_size or (BENCH_IMAGE_SIDE, BENCH_IMAGE_SIDE)
    return bench_call(tr.translate_many, (h, w, tr.in_channels), tr.info.flops)


TRANSLATOR = register(Kind(
    name="translator", model_class=Translator,
    inputs="image (N, C_in, H, W) float32 in the value range ([0, 1] for adopted files), H and W as the size constraint says",
    outputs="translated (N, C_out, H*scale, W*scale) float32 in the value range",
    fields=("out_channels", "color_order", "scale", "receptive_radius", "whole_image", "size_multiple"),
    check=_check, shape=_shape, rows=_rows, bench=_bench, flops_per="input pixel",
))
