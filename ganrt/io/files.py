"""Atomic file writes: a file appears under its final name only when it is complete.

On Linux an unnamed ``O_TMPFILE`` file is written and linked in (no temporary name, nothing left by a
kill); elsewhere, or where the name exists, a temporary name in the same folder and ``os.replace``.
"""

from __future__ import annotations

import errno
import os
import re

from ganrt.core.errors import OutputError

TMP_FILE = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")  # atomic_write's temporary names: .NAME.PID.HEX.tmp
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


