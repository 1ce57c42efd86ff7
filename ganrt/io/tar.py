"""Deterministic tar archives (WebDataset shards): the bytes depend only on the members' names and contents.

Every member is a regular file with mtime 0, uid/gid 0, empty owner names and mode 0o644, in the
order given (the caller sorts them); POSIX ustar headers, so no PAX records carry times or names.
Reading checks what it reads: regular files only, names without paths, sizes within a bound.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable

from ganrt.core.errors import ImageError

_MODE = 0o644


def encode_tar(members: Iterable[tuple[str, bytes]]) -> bytes:
    """A tar archive's bytes holding ``(name, data)`` members in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, _MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def read_tar(path: str | os.PathLike, *, max_bytes: int) -> dict[str, bytes]:
    """The members of a tar archive ganrt wrote, by name; anything else (too big, not a tar, links,
    folders, names with a path) is ``ImageError``."""
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise ImageError(f"{path}: {size:,} bytes, more than a shard of this run can hold ({max_bytes:,})")
        with tarfile.open(path, mode="r:") as tar:
            out: dict[str, bytes] = {}
            for info in tar:
                if not info.isreg() or "/" in info.name or info.name.startswith("."):
                    raise ImageError(f"{path}: member {info.name!r} is not a file ganrt writes into a shard")
                f = tar.extractfile(info)
                out[info.name] = f.read() if f is not None else b""
            return out
    except ImageError:
        raise
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ImageError(f"{path}: not a readable tar archive ({type(exc).__name__}: {str(exc)[:120]})") from None
