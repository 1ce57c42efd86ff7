"""``Upscaler``: tiled super-resolution of images of any size with an exported sub-pixel generator.

Pipeline: pre-process (any layout -> RGB uint8), tile and blend (``kinds.tiling``, exact within the
model's receptive radius), run each batch of tiles (uint8 -> float [0, 1] -> the model), post-process
(uint8, back to the input's layout: grayscale through RGB and back, alpha upscaled bicubic).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ganrt.core.errors import ParameterError
from ganrt.core.kind import Kind, register
from ganrt.core.run import run_session
from ganrt.core.schema import ModelInfo
from ganrt.io.images import bicubic_resize, eight_bit
from ganrt.kinds.tiling import RAMP_PIXELS, TiledModel, bench_call, check_tile_options, tiled

DEFAULT_TILE = 256  # input pixels per side: ~15 MB of float activations per tile at width 48
DEFAULT_BATCH_SIZE = 4  # tiles per onnxruntime call
BENCH_IMAGE_SIDE = 256  # ganrt bench times upscalers on 256x256 inputs


class Upscaler(TiledModel):
    """A loaded upscaler (``ganrt.load("sr-x4")``). Stateless per call and thread-safe."""

    takes = "one float (N, 3, H, W) input"

    @property
    def default_overlap(self) -> int:
        """2 x receptive radius (exact tiles) + a ramp for a smooth cross-fade."""
        return 2 * self.receptive_radius + RAMP_PIXELS

    def __repr__(self) -> str:
        return f"Upscaler({self.name!r}, scale={self.scale})"

    # -- public API -------------------------------------------------------------------------
    def upscale(self, image: Any, *, tile: int | None = None, overlap: int | None = None, batch_size: int | None = None) -> Any:
        """Upscale ``image`` by ``scale``; uint8 (H, W), (H, W, 1), (H, W, 3), (H, W, 4) or a Pillow image.

        Returns the same kind of value at scale x (a Pillow image for a Pillow image). Grayscale
        goes through the RGB model and back; alpha is upscaled separately (bicubic). ``tile``
        (default 256 input pixels) bounds memory; ``overlap`` (default 2 x receptive radius + 8,
        at most half a tile) of at least 2 x receptive radius keeps tiles exact.
        """
        tile, overlap, batch_size = self.check_options(tile=tile, overlap=overlap, batch_size=batch_size)
        if hasattr(image, "getbands") and hasattr(image, "mode"):  # a Pillow image
            return self._upscale_pil(image, tile, overlap, batch_size)
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise ParameterError(f"upscale needs uint8 pixels, got {arr.dtype}")
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise ParameterError(f"upscale needs an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ParameterError(f"cannot upscale a zero-size image ({arr.shape[0]}x{arr.shape[1]})")
        if arr.ndim == 2:
            return self._gray(arr, tile, overlap, batch_size)
        if arr.shape[2] == 1:
            return self._gray(arr[..., 0], tile, overlap, batch_size)[..., None]
        out_rgb = self._rgb(arr[..., :3], tile, overlap, batch_size)
        if arr.shape[2] == 3:
            return out_rgb
        alpha = bicubic_resize(arr[..., 3], (out_rgb.shape[1], out_rgb.shape[0]))
        return np.concatenate([out_rgb, alpha[..., None]], axis=2)

    def upscale_many(self, images: np.ndarray, *, tile: int | None = None, overlap: int | None = None,
                     batch_size: int | None = None) -> np.ndarray:
        """A stack (N, H, W[, C]) of uint8 images -> (N, sH, sW[, C]); options as in ``upscale``."""
        return np.stack([self.upscale(im, tile=tile, overlap=overlap, batch_size=batch_size) for im in images])

    # -- layouts ----------------------------------------------------------------------------
    def check_options(self, *, tile: int | None = None, overlap: int | None = None,
                      batch_size: int | None = None) -> tuple[int, int, int]:
        """Validated (tile, overlap, batch_size), defaults filled in; raises ParameterError."""
        return check_tile_options(tile=DEFAULT_TILE if tile is None else tile, overlap=overlap,
                                  batch_size=DEFAULT_BATCH_SIZE if batch_size is None else batch_size,
                                  default_overlap=self.default_overlap)

    def _gray(self, gray: np.ndarray, tile: int, overlap: int, batch_size: int) -> np.ndarray:
        rgb = self._rgb(np.repeat(gray[..., None], 3, axis=2), tile, overlap, batch_size)
        y = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601 luma
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)

    def _upscale_pil(self, im: Any, tile: int, overlap: int, batch_size: int) -> Any:
        from PIL import Image

        mode = im.mode
        if mode in ("L", "RGB", "RGBA"):
            out = self.upscale(np.asarray(im), tile=tile, overlap=overlap, batch_size=batch_size)
            return Image.fromarray(out, mode=mode)
        if mode == "LA":
            la = np.asarray(im)
            gray = self._gray(la[..., 0], tile, overlap, batch_size)
            alpha = bicubic_resize(la[..., 1], (gray.shape[1], gray.shape[0]))
            return Image.fromarray(np.stack([gray, alpha], axis=2), mode="LA")
        has_alpha = "transparency" in im.info or mode in ("PA", "RGBa", "La")
        target = "RGBA" if has_alpha else ("L" if mode in ("1", "I", "I;16", "F") else "RGB")
        im = eight_bit(im)  # high bit depth: scaled to 8 bits first
        return self._upscale_pil(im.convert(target), tile, overlap, batch_size)

    # -- the tiled core -----------------------------------------------------------------------
    def _run(self, tiles: np.ndarray) -> np.ndarray:
        """(B, h, w, 3) uint8 -> (B, 3, h*s, w*s) float32 in about [0, 1]."""
        x = np.ascontiguousarray(tiles.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(1.0 / 255.0)
        (y,) = run_session(self.session, [self._output], {self._input: x}, source=self.source)
        return y

    def _rgb(self, rgb: np.ndarray, tile: int, overlap: int, batch_size: int) -> np.ndarray:
        """(H, W, 3) uint8 -> (H*s, W*s, 3) uint8, tiled and blended."""
        return tiled(self._run, rgb, scale=self.scale, channels=3, tile=tile, overlap=overlap,
                     radius=self.receptive_radius, batch_size=batch_size)


def _check(info: ModelInfo) -> str | None:
    c = info.image_shape[2]
    if c != 3 or info.scale < 2 or info.receptive_radius < 0:
        return f"an upscaler needs 3 channels and scale >= 2, got channels {c}, scale {info.scale}"
    return None


def _bench(up: Upscaler) -> tuple[Any, float | None]:
    """``upscale_many`` of BENCH_IMAGE_SIDE² RGB noise, tiled as shipped; FLOPs per image of that size."""
    return bench_call(up.upscale_many, (BENCH_IMAGE_SIDE, BENCH_IMAGE_SIDE, 3), up.info.flops)


UPSCALER = register(Kind(
    name="upscaler", model_class=Upscaler,
    inputs="image (N, 3, H, W) float32 in [0, 1], any H and W",
    outputs="upscaled (N, 3, H*scale, W*scale) float32 in about [0, 1]",
    fields=("scale", "receptive_radius"),
    check=_check, shape=lambda info: f"x{info.scale} RGB",
    rows=lambda info: [("image", f"any size, {info.image_shape[2]} channels, x{info.scale}")],
    bench=_bench, flops_per="input pixel",
))
