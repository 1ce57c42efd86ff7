"""Image files: grids, PNG files, npz shards, animated GIFs. Every file is written atomically.

A file appears under its final name only when it is complete (temporary name in the same folder,
then ``os.replace``), so an interrupted run never leaves a truncated image behind. Encoding is
deterministic (no timestamps), so the same images always give the same bytes. Reading checks the
declared size before decoding, so a bogus header cannot make ganrt allocate or hang.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.core.errors import ImageError, OutputError
from ganrt.io.files import atomic_write


def make_grid(images: np.ndarray, *, nrow: int | None = None, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile (N, H, W, C) uint8 images into one (rows*(H+p)+p, nrow*(W+p)+p, C) image; nrow ~ sqrt(N)."""
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"make_grid needs (N, H, W, C) images with N >= 1, got shape {images.shape}")
    n, h, w, c = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def to_pil(image: np.ndarray):
    """(H, W, 1|3) uint8 -> a Pillow image (mode L or RGB)."""
    from PIL import Image

    image = np.asarray(image, dtype=np.uint8)
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)




def pil_bytes(image: Any, fmt: str = "PNG", *, text: dict[str, str] | None = None) -> bytes:
    """A Pillow image's file bytes in ``fmt``: what ``ganrt upscale`` / ``translate`` write, and ``ganrt serve`` sends;
    ``text``: PNG text chunks (``ganrt translate``'s provenance). Grayscale and RGB PNGs go through ganrt's encoder
    (``io.png.encode_png``: Z_RLE, 2-5x faster than Pillow's default above 64x64, deterministic); other modes
    (RGBA, palette) through Pillow with the same zlib strategy."""
    if fmt == "PNG":
        from ganrt.io.png import encode_png, pillow_png

        if image.mode not in ("L", "RGB"):
            return pillow_png(image, text)
        pixels = np.asarray(image)
        return encode_png(pixels[..., None] if pixels.ndim == 2 else pixels, text=text)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def grid_bytes(images: np.ndarray, fmt: str = "PNG", *, nrow: int | None = None) -> bytes:
    """A grid of (N, H, W, C) images as file bytes (PNG, GIF or JPEG): ``generate --grid`` and ``ganrt serve``."""
    return pil_bytes(to_pil(make_grid(images, nrow=nrow)), fmt)


def save_grid(path: str | os.PathLike, images: np.ndarray, *, nrow: int | None = None) -> None:
    """Write a grid of (N, H, W, C) images as PNG (or GIF/JPEG by the file's extension)."""
    path = Path(path)
    fmt = {".png": "PNG", ".gif": "GIF", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"grid file {path} must end in .png, .gif or .jpg")
    atomic_write(path, grid_bytes(images, fmt, nrow=nrow))


def save_gif(path: str | os.PathLike, frames: Sequence[np.ndarray], *, duration_ms: int = 80) -> None:
    """An animated, looping GIF from (H, W, C) uint8 frames."""
    if not frames:
        raise ValueError("save_gif needs at least one frame")
    pil = [to_pil(f) for f in frames]
    buf = io.BytesIO()
    pil[0].save(buf, format="GIF", save_all=True, append_images=pil[1:], duration=duration_ms, loop=0)
    atomic_write(path, buf.getvalue())


def float_to_uint8(x: np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Model output (N, C, H, W) float in ``value_range`` -> (N, H, W, C) uint8, rounded half to even."""
    lo, hi = value_range
    y = (np.asarray(x, dtype=np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(np.rint(y), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def eight_bit(im: Any) -> Any:
    """A Pillow image of a high bit depth mode (I, I;16, F) as mode L, scaled to 8 bits (16-bit data where a value
    exceeds 255, else 8-bit data in a wide mode); other images as they are."""
    if im.mode not in ("I", "I;16", "F"):
        return im
    from PIL import Image

    arr = np.asarray(im, dtype=np.float64)
    peak = 65535.0 if arr.max() > 255 else 255.0
    return Image.fromarray(np.clip(np.rint(arr * 255.0 / peak), 0, 255).astype(np.uint8), mode="L")


def bicubic_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pillow's bicubic resize of (H, W) or (H, W, C) uint8 to ``size`` = (width, height).

    Pillow antialiases when it shrinks, so this is also the degradation that makes the
    low-resolution training inputs of the upscalers (and their bicubic baseline).
    """
    from PIL import Image

    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2 or image.shape[-1] in (3, 4) and image.ndim == 3:
        mode = None if image.ndim == 2 else ("RGB" if image.shape[-1] == 3 else "RGBA")
        pil = Image.fromarray(image, mode=mode) if mode else Image.fromarray(image)
        return np.asarray(pil.resize(size, Image.BICUBIC))
    # any other channel count: channel by channel
    return np.stack([bicubic_resize(image[..., c], size) for c in range(image.shape[-1])], axis=-1)


def _bomb_message(path: Path, text: str, max_pixels: int) -> str:
    """One line for Pillow's DecompressionBombError, naming both limits and the option."""
    import re

    found = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", text)
    if not found:
        return f"{path}: {text.split(', could be')[0]} (Pillow's decompression-bomb guard)"
    n, pillow_limit = int(found[1]), int(found[2])
    if n > max_pixels:
        return (f"{path} declares {n:,} pixels, over the limit of {max_pixels:,}; raise it with --max-pixels "
                f"(Pillow's decompression-bomb guard stops anything over {pillow_limit:,})")
    return f"{path} declares {n:,} pixels, over Pillow's decompression-bomb guard of {pillow_limit:,}, which ganrt keeps on"


DEFAULT_MAX_PIXELS = 40_000_000  # input pixels: a 4000x3000 photo is 12M; x4 of 40M is 1.9 GB of output


def read_image(path: str | os.PathLike | io.BytesIO, *, max_pixels: int = DEFAULT_MAX_PIXELS, load: bool = True,
               name: str | None = None):
    """Open an image file with Pillow, checked: a readable image, not zero-size, within ``max_pixels``.

    Pillow's own decompression-bomb guard stays on. ``load=False`` checks the header only
    (cheap: validate every input before any output is written). ``path`` may be a ``BytesIO`` (a server's
    request body, never written to disk), ``name`` then what the messages call it.
    """
    from PIL import Image, UnidentifiedImageError

    source = path if isinstance(path, io.BytesIO) else Path(path)
    path = name or source
    if isinstance(source, Path) and source.exists() and not source.is_dir() and not source.is_file():
        # a FIFO, a device or a socket: opening one waits for a writer that may never come
        raise ImageError(f"{path} is not a regular file (a FIFO, device or socket); give image files")
    try:
        im = Image.open(source)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not an image (Pillow cannot identify it)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(_bomb_message(path, str(exc), max_pixels)) from None
    except OSError as exc:
        raise ImageError(f"{path} cannot be read: {exc}") from None
    w, h = im.size
    if w == 0 or h == 0:
        raise ImageError(f"{path} is a zero-size image ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(f"{path} has {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,}; raise it with --max-pixels")
    if load:
        try:
            im.load()
        except Image.DecompressionBombError as exc:
            raise ImageError(_bomb_message(path, str(exc), max_pixels)) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{path} is truncated or corrupt: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return im
