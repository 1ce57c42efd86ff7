"""ganrt's PNG encoder (deterministic: no timestamps; zlib's Z_RLE; row filters in uint8) and the checked
reader of the PNGs a run wrote (size and mode checked before any pixel is decoded)."""

from __future__ import annotations

import functools
import os
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ganrt.core.errors import ImageError
from ganrt.io.files import atomic_write

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR = {1: 0, 3: 2}  # channels -> PNG colour type: grayscale, truecolour


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=256)  # a run's texts are the same but for index and label
def _text_chunk(key: str, value: str) -> bytes:
    """tEXt when the text is Latin-1 (the PNG spec's charset), else iTXt with UTF-8 (as Pillow does)."""
    try:
        return _chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        return _chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8"))


def filter_rows(images: np.ndarray) -> np.ndarray:
    """PNG scanlines (B, H, 1 + W*C) uint8 of images (B, H, W, C), each row filtered by the method that
    minimises the sum of absolute signed residuals (the PNG spec's adaptive heuristic): None, Sub,
    Up, Average or Paeth. One vectorised pass for a whole batch, in uint8 where PNG's arithmetic is
    modulo 256 anyway (int16 only for Paeth's distances): 15 µs per 32x32 image at any batch size."""
    b, h, w, c = images.shape
    x = images.reshape(b, h, w * c)
    left = np.zeros_like(x)
    left[:, :, c:] = x[:, :, :-c]
    up = np.zeros_like(x)
    up[:, 1:] = x[:, :-1]
    upleft = np.zeros_like(x)
    upleft[:, 1:, c:] = x[:, :-1, :-c]
    # Paeth: p = left + up - upleft; its distances to left, up, upleft are |up - upleft|, |left - upleft|
    # and |(up - upleft) + (left - upleft)|; the nearest wins, ties in the order left, up, upleft
    du = up.astype(np.int16) - upleft
    dl = left.astype(np.int16) - upleft
    pa, pb, pc = np.abs(du), np.abs(dl), np.abs(du + dl)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    average = (left & up) + ((left ^ up) >> 1)  # floor((left + up) / 2) without leaving uint8
    residuals = np.stack([x, x - left, x - up, x - average, x - paeth])  # (5, B, H, W*C), wrapping mod 256
    cost = np.minimum(residuals, 0 - residuals).sum(axis=3, dtype=np.int32)  # |residual read as int8|
    best = cost.argmin(axis=0)  # (B, H)
    rows = np.empty((b, h, 1 + w * c), dtype=np.uint8)
    rows[:, :, 0] = best
    rows[:, :, 1:] = np.take_along_axis(residuals, best[None, :, :, None], axis=0)[0]
    return rows


# images filtered per pass: the pass's temporaries (~12 arrays of this many bytes) stay in cache; a
# whole batch of 196 64x64x3 images took 196 µs an image, 64 KiB at a time 144 (NOTES)
_FILTER_PIXELS = 1 << 16


def _deflate(data: bytes) -> bytes:
    """zlib stream of filtered scanlines, strategy Z_RLE (matches only at distance 1: runs of equal
    bytes). On PNG-filtered images it is 1.5-7x faster than the default strategy and as small: 1%
    larger on 32x32 GAN samples, 5-7% smaller on photos (NOTES). Level 6 only labels the header."""
    z = zlib.compressobj(6, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    return z.compress(data) + z.flush()


def _encode_own(images: np.ndarray, texts: Sequence[dict[str, str] | None] | None = None) -> list[bytes]:
    """ganrt's own encoder (numpy row filters for many images at once, then zlib per image)."""
    b, h, w, c = images.shape
    head = _PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, _PNG_COLOR[c], 0, 0, 0))
    tail = _chunk(b"IEND", b"")
    texts = texts or [None] * b
    files = []
    step = max(1, _FILTER_PIXELS // (h * w * c))
    for first in range(0, b, step):
        rows = filter_rows(images[first : first + step])
        files += [b"".join([head, *(_text_chunk(k, v) for k, v in (texts[first + i] or {}).items()),
                            _chunk(b"IDAT", _deflate(r.tobytes())), tail]) for i, r in enumerate(rows)]
    return files


def encode_pngs(images: np.ndarray, *, texts: Sequence[dict[str, str] | None] | None = None) -> list[bytes]:
    """(B, H, W, 1|3) uint8 -> one PNG file's bytes per image (8-bit grayscale or RGB), ``texts[i]`` as
    tEXt/iTXt chunks of image i.

    Small images are written directly (numpy row filters for many images at once, then zlib per
    image) rather than through Pillow, whose per-file Python overhead was several times the
    compression itself for the small images of a generation run; from ``PILLOW_FROM_BYTES`` pixel
    bytes per image, Pillow with Z_RLE, which is faster there. Deterministic: the same image and text
    give the same bytes.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in _PNG_COLOR or 0 in images.shape:
        raise ValueError(f"encode_pngs needs (B, H, W, 1|3) uint8, got {images.dtype} {images.shape}")
    b, h, w, c = images.shape
    if h * w * c >= PILLOW_FROM_BYTES:
        return [_encode_pillow(image, text) for image, text in zip(images, texts or [None] * b)]
    return _encode_own(images, texts)


# Pixel bytes per image from which Pillow (its adaptive filters in C, zlib's Z_RLE) encodes: faster
# there than the numpy filters, which win for small images in batches (benchmarks/png_encoder.py,
# NOTES). Every image a 32x32 model makes, also x4 upscaled (128x128), stays below: their bytes are
# those of every earlier ganrt run.
PILLOW_FROM_BYTES = 256 * 256


def _encode_pillow(image: np.ndarray, text: dict[str, str] | None) -> bytes:
    """One (H, W, 1|3) image through Pillow with Z_RLE (``pillow_png``)."""
    from PIL import Image

    return pillow_png(Image.fromarray(image[..., 0] if image.shape[2] == 1 else image), text)


def pillow_png(image: Any, text: dict[str, str] | None = None) -> bytes:
    """A Pillow image of any mode as PNG with Z_RLE, ``text`` as tEXt (Latin-1) or iTXt chunks; no other
    chunks, so the bytes depend only on the image, the text, Pillow and zlib."""
    import io

    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        try:
            value.encode("latin-1")
            info.add_text(key, value)
        except UnicodeEncodeError:
            info.add_itxt(key, value)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6, compress_type=zlib.Z_RLE, pnginfo=info)
    return buf.getvalue()


def encode_png(image: np.ndarray, *, text: dict[str, str] | None = None) -> bytes:
    """(H, W, 1|3) uint8 -> PNG bytes; see ``encode_pngs``."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"encode_png needs (H, W, 1|3) uint8, got {image.dtype} {image.shape}")
    return encode_pngs(image[None], texts=[text])[0]


def save_png(path: str | os.PathLike, image: np.ndarray, *, text: dict[str, str] | None = None) -> None:
    atomic_write(path, encode_png(image, text=text))


def read_png(path: str | os.PathLike | bytes, *, shape: tuple[int, int, int], name: str | None = None
             ) -> tuple[np.ndarray, dict[str, str]]:
    """A PNG written by ganrt -> ((H, W, C) uint8, its text chunks); anything else is ``ImageError``.

    ``path`` may also be the PNG's bytes (a member of a shard), ``name`` what the errors call it.
    The declared size and mode are checked before the pixels are decoded.
    """
    import io

    from PIL import Image

    h, w, c = shape
    mode = "L" if c == 1 else "RGB"
    source = io.BytesIO(path) if isinstance(path, bytes) else path
    path = name or ("PNG bytes" if isinstance(path, bytes) else path)
    try:
        with Image.open(source) as im:
            if im.format != "PNG" or im.size != (w, h) or im.mode != mode:
                raise ImageError(
                    f"{path}: a {im.format} image of {im.size[0]}x{im.size[1]} pixels, mode {im.mode}; "
                    f"expected a {w}x{h} PNG, mode {mode}"
                )
            im.load()
            return np.asarray(im).reshape(h, w, c), dict(getattr(im, "text", {}))
    except (ImageError, FileNotFoundError):
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, zlib and struct errors on bad data
        raise ImageError(f"{path}: not a readable PNG ({type(exc).__name__}: {str(exc)[:120]})") from None


