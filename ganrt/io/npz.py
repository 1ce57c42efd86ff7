"""npz shards: uncompressed, fixed zip timestamps (the bytes depend only on the arrays), and a reader that
refuses members declaring more bytes than a shard can hold before numpy allocates them."""

from __future__ import annotations

import io
import math
import os
import zipfile

import numpy as np

from ganrt.core.errors import ImageError
from ganrt.io.files import atomic_write

_NPZ_DATE = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: np.savez stamps the current time into every shard


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


