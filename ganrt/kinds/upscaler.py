"""``Upscaler``: tiled super-resolution of images of any size with an exported sub-pixel generator.

Pipeline: pre-process (any layout -> RGB uint8), tile and blend (``kinds.tiling``, exact within the
model's receptive radius), run each batch of tiles (uint8 -> float [0, 1] -> the model), post-process
(uint8, back to the input's layout: grayscale through RGB and back, alpha upscaled bicubic).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.core.errors import ParameterError
from ganrt.core.kind import Kind, register
from ganrt.core.run import run_session
from ganrt.core.schema import ModelInfo
from ganrt.io.images import bicubic_resize, eight_bit
from ganrt.kinds.lanes import LaneModel, Lanes
from ganrt.kinds.tiling import RAMP_PIXELS, TiledModel, bench_call, check_tile_options, exact_tiled, plan_tiles, tile_count, tiled

# Working memory for the tiles in flight (all lanes together), in MB, unless ``memory_budget`` says otherwise:
# fits a machine with a few GB free, and holds a whole 1024x1024 input of sr-x4 in two tiles (one per lane).
DEFAULT_MEMORY_BUDGET_MB = 1024
DEFAULT_BATCH_SIZE = 4  # tiles per onnxruntime call, for blended tiles (an overlap below 2 x the radius)
# Channels assumed for a file whose training config does not give its width (adopted models)
ASSUMED_WIDTH = 64
BENCH_IMAGE_SIDE = 256  # ganrt bench times upscalers on 256x256 inputs


class Upscaler(LaneModel, TiledModel):
    """A loaded upscaler (``ganrt.load("sr-x4")``). Stateless per call and thread-safe."""

    takes = "one float (N, 3, H, W) input"
    probe_channels = 3  # a load runs the graph on a tiny input: its real scale must be the metadata's (check_scale)

    def __init__(self, session: Any, info: ModelInfo, *, source: str, path: Path | None = None,
                 graphs: str | None = None, lanes: tuple[Any, int] | None = None) -> None:
        """``lanes``: (a single-threaded session of the same file, how many lanes): the tiles of an image
        run that many at once on it. ``graphs`` (CUDA graphs) is for generators and refused here."""
        if graphs is not None:
            raise ParameterError(f"CUDA graphs are for generators; '{source}' is an upscaler")
        super().__init__(session, info, source=source, path=path)
        self._lanes = Lanes(lanes[0], lanes[1], self._output, source=source) if lanes is not None and lanes[1] > 1 else None

    @property
    def bytes_per_pixel(self) -> int:
        """Estimated working memory of one input pixel while a tile runs: two feature maps of the network's
        width, the sub-pixel output and its float copy, the float input (4 bytes each). sr-x4 (width 48):
        780; measured 800 (peak RSS of one 128² / 256² run, benchmarks/NOTES.md)."""
        config = self.info.training.get("model_config", {}) if isinstance(self.info.training, dict) else {}
        width = int(config.get("width", ASSUMED_WIDTH)) if isinstance(config, dict) else ASSUMED_WIDTH
        c = self.info.image_shape[2]
        return 4 * (2 * width + 2 * c * self.scale * self.scale + c)

    def tile_for(self, h: int, w: int, *, overlap: int | None = None, memory_budget: int | None = None) -> tuple[int, int]:
        """(tile height, tile width) that ``upscale`` uses for an (h, w) image: the fewest, most even tiles
        whose working memory, ``lanes`` at once, fits ``memory_budget`` MB (``kinds.tiling.plan_tiles``)."""
        _, overlap, _, budget = self.check_options(overlap=overlap, memory_budget=memory_budget)
        return self._plan(h, w, overlap, budget)

    def tiles_for(self, h: int, w: int, *, tile: int | None = None, overlap: int | None = None,
                  memory_budget: int | None = None) -> int:
        """How many tiles ``upscale`` runs for an (h, w) image with these options (what ``on_tile`` counts)."""
        tile, overlap, _, budget = self.check_options(tile=tile, overlap=overlap, memory_budget=memory_budget)
        return tile_count(h, w, self._grid(h, w, tile, overlap, budget), overlap)

    def _grid(self, h: int, w: int, tile: int | None, overlap: int, budget: int) -> tuple[int, int]:
        """The (height, width) of the tiles ``upscale`` cuts an (h, w) image into: planned from the budget unless
        ``tile`` is given; square (the shorter side) when blended, i.e. the overlap is below 2 x radius."""
        hw = self._plan(h, w, overlap, budget) if tile is None else (tile, tile)
        return hw if overlap >= 2 * self.receptive_radius else (min(hw), min(hw))

    def _plan(self, h: int, w: int, overlap: int, budget: int) -> tuple[int, int]:
        max_pixels = budget * 2**20 // (self.bytes_per_pixel * self.lanes)
        return plan_tiles(h, w, overlap=overlap, max_pixels=max_pixels, lanes=self.lanes)

    @property
    def default_overlap(self) -> int:
        """2 x receptive radius (exact tiles) + a ramp for a smooth cross-fade."""
        return 2 * self.receptive_radius + RAMP_PIXELS

    def __repr__(self) -> str:
        return f"Upscaler({self.name!r}, scale={self.scale})"

    # -- public API -------------------------------------------------------------------------
    def upscale(self, image: Any, *, tile: int | None = None, overlap: int | None = None, batch_size: int | None = None,
                memory_budget: int | None = None, on_tile: Callable[[int], None] | None = None) -> Any:
        """Upscale ``image`` by ``scale``; uint8 (H, W), (H, W, 1), (H, W, 3), (H, W, 4) or a Pillow image.

        Returns the same kind of value at scale x (a Pillow image for a Pillow image). Grayscale
        goes through the RGB model and back; alpha is upscaled separately (bicubic). Tiles: by default
        the fewest that fit ``memory_budget`` MB of working memory (default 1024, ``tile_for``), run
        ``lanes`` at once; ``tile`` (input pixels per side) sets the side instead. ``overlap`` (default
        2 x receptive radius + 8, at most half a tile) of at least 2 x receptive radius keeps tiles exact:
        each output pixel then comes from one tile and equals the whole-image result byte for byte.
        A smaller overlap blends tiles (raised cosine, ``batch_size`` tiles per call): approximate.
        ``on_tile(k)``: called as tiles finish, k at a time, possibly from the lane threads (a progress bar:
        ``tiles_for`` gives the total; it must be thread-safe).
        """
        opts = (*self.check_options(tile=tile, overlap=overlap, batch_size=batch_size, memory_budget=memory_budget),
                on_tile)
        if hasattr(image, "getbands") and hasattr(image, "mode"):  # a Pillow image
            return self._upscale_pil(image, opts)
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise ParameterError(f"upscale needs uint8 pixels, got {arr.dtype}")
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise ParameterError(f"upscale needs an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ParameterError(f"cannot upscale a zero-size image ({arr.shape[0]}x{arr.shape[1]})")
        if arr.ndim == 2:
            return self._gray(arr, opts)
        if arr.shape[2] == 1:
            return self._gray(arr[..., 0], opts)[..., None]
        out_rgb = self._rgb(arr[..., :3], opts)
        if arr.shape[2] == 3:
            return out_rgb
        alpha = bicubic_resize(arr[..., 3], (out_rgb.shape[1], out_rgb.shape[0]))
        return np.concatenate([out_rgb, alpha[..., None]], axis=2)

    def upscale_many(self, images: np.ndarray, *, tile: int | None = None, overlap: int | None = None,
                     batch_size: int | None = None, memory_budget: int | None = None) -> np.ndarray:
        """A stack (N, H, W[, C]) of uint8 images -> (N, sH, sW[, C]); options as in ``upscale``."""
        return np.stack([self.upscale(im, tile=tile, overlap=overlap, batch_size=batch_size, memory_budget=memory_budget)
                         for im in images])

    # -- layouts ----------------------------------------------------------------------------
    def check_options(self, *, tile: int | None = None, overlap: int | None = None, batch_size: int | None = None,
                      memory_budget: int | None = None) -> tuple[int | None, int, int, int]:
        """Validated (tile, overlap, batch_size, memory budget in MB), defaults filled in (tile None: chosen per
        image from the budget, with the default overlap); raises ParameterError."""
        budget = DEFAULT_MEMORY_BUDGET_MB if memory_budget is None else memory_budget
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
            raise ParameterError(f"memory_budget must be a whole number of MB >= 1 (e.g. 1024), got {memory_budget!r}")
        if tile is None:
            _, overlap, batch_size = check_tile_options(
                tile=1 << 30, overlap=self.default_overlap if overlap is None else overlap,
                batch_size=DEFAULT_BATCH_SIZE if batch_size is None else batch_size, default_overlap=self.default_overlap)
            return None, overlap, batch_size, int(budget)
        return (*check_tile_options(tile=tile, overlap=overlap, batch_size=DEFAULT_BATCH_SIZE if batch_size is None
                                    else batch_size, default_overlap=self.default_overlap), int(budget))

    def _gray(self, gray: np.ndarray, opts: tuple) -> np.ndarray:
        rgb = self._rgb(np.repeat(gray[..., None], 3, axis=2), opts)
        y = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601 luma
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)

    def _upscale_pil(self, im: Any, opts: tuple) -> Any:
        from PIL import Image

        mode = im.mode
        if mode in ("L", "RGB", "RGBA"):
            tile, overlap, batch_size, budget, on_tile = opts
            out = self.upscale(np.asarray(im), tile=tile, overlap=overlap, batch_size=batch_size, memory_budget=budget,
                               on_tile=on_tile)
            return Image.fromarray(out, mode=mode)
        if mode == "LA":
            la = np.asarray(im)
            gray = self._gray(la[..., 0], opts)
            alpha = bicubic_resize(la[..., 1], (gray.shape[1], gray.shape[0]))
            return Image.fromarray(np.stack([gray, alpha], axis=2), mode="LA")
        has_alpha = "transparency" in im.info or mode in ("PA", "RGBa", "La")
        target = "RGBA" if has_alpha else ("L" if mode in ("1", "I", "I;16", "F") else "RGB")
        im = eight_bit(im)  # high bit depth: scaled to 8 bits first
        return self._upscale_pil(im.convert(target), opts)

    # -- the tiled core -----------------------------------------------------------------------
    def _run(self, tiles: np.ndarray) -> np.ndarray:
        """(B, h, w, 3) uint8 -> (B, 3, h*s, w*s) float32 in about [0, 1]."""
        x = np.ascontiguousarray(tiles.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(1.0 / 255.0)
        (y,) = run_session(self.session, [self._output], {self._input: x}, source=self.source)
        return y

    def _tile(self, session: Any, tile: np.ndarray) -> np.ndarray:
        """One tile (h, w, 3) uint8 -> (3, h*s, w*s) float32 on ``session``; the same values as ``_run``."""
        x = np.ascontiguousarray(tile.transpose(2, 0, 1)[None], dtype=np.float32)  # (1, 3, h, w)
        np.multiply(x, np.float32(1.0 / 255.0), out=x)
        (y,) = run_session(session, [self._output], {self._input: x}, source=self.source)
        return y[0]

    def _rgb(self, rgb: np.ndarray, opts: tuple) -> np.ndarray:
        """(H, W, 3) uint8 -> (H*s, W*s, 3) uint8: exact tiles cut without blending, several at once on the
        lanes (one tile: the multi-threaded session); blended tiles when the overlap is below 2 x radius."""
        tile, overlap, batch_size, budget, on_tile = opts
        h, w = rgb.shape[:2]
        hw = self._grid(h, w, tile, overlap, budget)
        if overlap < 2 * self.receptive_radius:
            return tiled(self._run, rgb, scale=self.scale, channels=3, tile=hw[0], overlap=overlap,
                         radius=self.receptive_radius, batch_size=batch_size, on_tile=on_tile)
        lanes, session = self._lanes, self.session
        several = lanes is not None and (h > hw[0] or w > hw[1])
        return exact_tiled(lambda t: self._tile(lanes.session if several else session, t), rgb, scale=self.scale,
                           channels=3, tile=hw, overlap=overlap, radius=self.receptive_radius,
                           each=lanes.each if several else None, on_tile=on_tile)


def _check(info: ModelInfo) -> str | None:
    c = info.image_shape[2]
    if c != 3 or info.scale < 2 or info.receptive_radius < 0:
        return f"an upscaler needs 3 channels and scale >= 2, got channels {c}, scale {info.scale}"
    return None


def _bench(up: Upscaler) -> tuple[Any, float | None]:
    """``upscale_many`` of BENCH_IMAGE_SIDE² RGB noise, tiled as shipped; FLOPs per image of that size."""
    return bench_call(up.upscale_many, (BENCH_IMAGE_SIDE, BENCH_IMAGE_SIDE, 3), up.info.flops, scale=up.scale)


UPSCALER = register(Kind(
    name="upscaler", model_class=Upscaler,
    inputs="image (N, 3, H, W) float32 in [0, 1], any H and W",
    outputs="upscaled (N, 3, H*scale, W*scale) float32 in about [0, 1]",
    fields=("scale", "receptive_radius"),
    check=_check, shape=lambda info: f"x{info.scale} RGB",
    rows=lambda info: [("image", f"any size, {info.image_shape[2]} channels, x{info.scale}")],
    bench=_bench, flops_per="input pixel", lanes=True,
))
