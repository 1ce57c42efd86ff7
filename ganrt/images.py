"""Image files: grids, PNG files, npz shards, animated GIFs. Every file is written atomically.

A file appears under its final name only when it is complete (temporary name in the same folder,
then ``os.replace``), so an interrupted run never leaves a truncated image behind. Encoding is
deterministic (no timestamps), so the same images always give the same bytes. Reading checks the
declared size before decoding, so a bogus header cannot make ganrt allocate or hang.
"""

from __future__ import annotations

import errno
import functools
import io
import math
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import ImageError, OutputError

TMP_FILE = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")  # atomic_write's temporary names: .NAME.PID.HEX.tmp
_NPZ_DATE = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: np.savez stamps the current time into every shard


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


def atomic_write(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` so that it appears there only when complete.

    On Linux the data goes into an unnamed file in the same folder (``O_TMPFILE``), which is then
    linked as ``path``: a killed process leaves nothing behind. Elsewhere, and where ``path``
    already exists (it is replaced), a hidden temporary file ``.NAME.PID.HEX.tmp`` (``TMP_FILE``) is
    written and renamed; a killed process leaves at most that, never a partial ``NAME``. Either
    file gets mode 0o666 less the umask, like any new file (mkstemp's 0o600 would survive the
    rename). ``fsync`` also makes the data durable before it gets its name (power loss, not just a
    kill). A full disk raises ``OutputError`` and leaves no file. Plain ``os`` calls on strings: a
    generation run calls this once per PNG, where Path objects, a file object and the rename cost
    25 of the 60 µs a small file took (NOTES).
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    if _link_unnamed(folder, path, data, fsync):
        return
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    # one try from the open on: a KeyboardInterrupt right after os.open returns must also remove tmp
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            _write_all(fd, data, fsync)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def _write_all(fd: int, data: bytes, fsync: bool) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    if fsync:
        os.fsync(fd)


_O_TMPFILE = getattr(os, "O_TMPFILE", 0)  # Linux >= 3.11 on ext4, xfs, btrfs, tmpfs, ...
# a link that cannot be made here: the name exists (replace it instead), no /proc, another file system
_LINK_FALLBACK = {errno.EEXIST, errno.ENOENT, errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP}
_root_fd: int | None = None  # "/": any dir fd makes os.link call linkat, which alone can follow /proc/self/fd/N


def _link_unnamed(folder: str, path: str, data: bytes, fsync: bool) -> bool:
    """Write ``data`` into an unnamed file of ``folder`` and link it as ``path``; False (nothing
    written) where that cannot be done, so the caller falls back to a temporary name and a rename."""
    global _root_fd
    if not _O_TMPFILE:
        return False
    try:
        fd = os.open(folder or ".", _O_TMPFILE | os.O_WRONLY, 0o666)
    except OSError:  # no O_TMPFILE on this file system (or the folder is unusable: the fallback says why)
        return False
    try:
        _write_all(fd, data, fsync)
        if _root_fd is None:
            _root_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        os.link(f"/proc/self/fd/{fd}", path, src_dir_fd=_root_fd, follow_symlinks=True)
    except OSError as exc:  # the unnamed file vanishes with its descriptor
        if exc.errno in _LINK_FALLBACK:
            return False
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return True


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


def _filter_rows(images: np.ndarray) -> np.ndarray:
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


def encode_pngs(images: np.ndarray, *, texts: Sequence[dict[str, str] | None] | None = None) -> list[bytes]:
    """(B, H, W, 1|3) uint8 -> one PNG file's bytes per image (8-bit grayscale or RGB), ``texts[i]`` as
    tEXt/iTXt chunks of image i.

    Written directly (numpy row filters for many images at once, then zlib per image) rather than
    through Pillow, whose per-file Python overhead was several times the compression itself for the
    small images of a generation run. Deterministic: the same image and text give the same bytes.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in _PNG_COLOR or 0 in images.shape:
        raise ValueError(f"encode_pngs needs (B, H, W, 1|3) uint8, got {images.dtype} {images.shape}")
    b, h, w, c = images.shape
    head = _PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, _PNG_COLOR[c], 0, 0, 0))
    tail = _chunk(b"IEND", b"")
    texts = texts or [None] * b
    files = []
    step = max(1, _FILTER_PIXELS // (h * w * c))
    for first in range(0, b, step):
        rows = _filter_rows(images[first : first + step])
        files += [b"".join([head, *(_text_chunk(k, v) for k, v in (texts[first + i] or {}).items()),
                            _chunk(b"IDAT", _deflate(r.tobytes())), tail]) for i, r in enumerate(rows)]
    return files


def encode_png(image: np.ndarray, *, text: dict[str, str] | None = None) -> bytes:
    """(H, W, 1|3) uint8 -> PNG bytes; see ``encode_pngs``."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"encode_png needs (H, W, 1|3) uint8, got {image.dtype} {image.shape}")
    return encode_pngs(image[None], texts=[text])[0]


def save_png(path: str | os.PathLike, image: np.ndarray, *, text: dict[str, str] | None = None) -> None:
    atomic_write(path, encode_png(image, text=text))


def save_grid(path: str | os.PathLike, images: np.ndarray, *, nrow: int | None = None) -> None:
    """Write a grid of (N, H, W, C) images as PNG (or GIF/JPEG by the file's extension)."""
    path = Path(path)
    fmt = {".png": "PNG", ".gif": "GIF", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"grid file {path} must end in .png, .gif or .jpg")
    buf = io.BytesIO()
    to_pil(make_grid(images, nrow=nrow)).save(buf, format=fmt)
    atomic_write(path, buf.getvalue())


def save_gif(path: str | os.PathLike, frames: Sequence[np.ndarray], *, duration_ms: int = 80) -> None:
    """An animated, looping GIF from (H, W, C) uint8 frames."""
    if not frames:
        raise ValueError("save_gif needs at least one frame")
    pil = [to_pil(f) for f in frames]
    buf = io.BytesIO()
    pil[0].save(buf, format="GIF", save_all=True, append_images=pil[1:], duration=duration_ms, loop=0)
    atomic_write(path, buf.getvalue())


def encode_npz(**arrays: np.ndarray) -> bytes:
    """An uncompressed npz (loads with ``np.load``, no pickle) whose bytes depend only on the arrays."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            with zf.open(zipfile.ZipInfo(f"{key}.npy", date_time=_NPZ_DATE), "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    return buf.getvalue()


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """An uncompressed npz shard; uint8 images compress poorly anyway."""
    atomic_write(path, encode_npz(**arrays))


def read_png(path: str | os.PathLike, *, shape: tuple[int, int, int]) -> tuple[np.ndarray, dict[str, str]]:
    """A PNG written by ganrt -> ((H, W, C) uint8, its text chunks); anything else is ``ImageError``.

    The declared size and mode are checked before the pixels are decoded.
    """
    from PIL import Image

    h, w, c = shape
    mode = "L" if c == 1 else "RGB"
    try:
        with Image.open(path) as im:
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


def read_npz(path: str | os.PathLike, *, max_bytes: int) -> dict[str, np.ndarray]:
    """The arrays of an npz shard; members declaring more than ``max_bytes`` are refused before reading."""
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.infolist():
                if member.file_size > max_bytes:
                    raise ImageError(f"{path}: member {member.filename} declares {member.file_size} bytes, "
                                           f"more than the {max_bytes} a shard of this run can hold")
                with zf.open(member) as f:  # numpy allocates what the .npy header declares before reading
                    version = np.lib.format.read_magic(f)
                    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                    if version not in readers:
                        raise ImageError(f"{path}: {member.filename} is .npy format {version}; ganrt writes 1.0")
                    shape, _, dtype = readers[version](f)
                    declared = math.prod(shape) * dtype.itemsize
                    if declared > member.file_size:
                        raise ImageError(f"{path}: {member.filename} declares shape {shape} ({declared} bytes) "
                                               f"but holds {member.file_size} bytes")
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ImageError, FileNotFoundError):
        raise
    except Exception as exc:  # zipfile.BadZipFile, numpy's ValueError on a bad .npy header, ...
        raise ImageError(f"{path}: not a readable npz shard ({type(exc).__name__}: {str(exc)[:120]})") from None


def float_to_uint8(x: np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Model output (N, C, H, W) float in ``value_range`` -> (N, H, W, C) uint8, rounded half to even."""
    lo, hi = value_range
    y = (np.asarray(x, dtype=np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(np.rint(y), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


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
        return f"{path} declares {n:,} pixels, over the limit of {max_pixels:,}; raise it with --max-pixels (Pillow's decompression-bomb guard stops anything over {pillow_limit:,})"
    return f"{path} declares {n:,} pixels, over Pillow's decompression-bomb guard of {pillow_limit:,}, which ganrt keeps on"


DEFAULT_MAX_PIXELS = 40_000_000  # input pixels: a 4000x3000 photo is 12M; x4 of 40M is 1.9 GB of output


def read_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS, load: bool = True):
    """Open an image file with Pillow, checked: a readable image, not zero-size, within ``max_pixels``.

    Pillow's own decompression-bomb guard stays on. ``load=False`` checks the header only
    (cheap: validate every input before any output is written).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        im = Image.open(path)
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
            raise ImageError(f"{path} is truncated or corrupt: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return im
