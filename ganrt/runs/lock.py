"""One run per output folder: an exclusive lock on ``FOLDER/.ganrt.lock``, held for the whole run.

The lock is ``flock`` on a file that is never replaced, renamed or deleted (a lock on a file that
can be replaced is a lock on whichever copy a process happened to open). It is taken before
anything in the folder is read, deleted or written: before ``--overwrite`` removes the earlier run,
before ``--resume`` reads the journal, and, on Ray, before the workers start. The holder writes
who it is (pid, start time) into the file, so a second run can say which run is in its way; the
kernel drops the lock when the holder exits, however it exits (a SIGKILL too), so a stale file
never blocks anyone. When a run ends the file is emptied (it stays, empty: the folder's bytes do
not depend on which process made them). Where there is no ``fcntl`` (Windows) nothing is locked.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from ganrt.core.errors import OutputError

LOCK_FILE = ".ganrt.lock"


class FolderLock:
    """The exclusive lock of one run folder; ``release`` (or leaving the ``with`` block) gives it back."""

    def __init__(self, folder: str | os.PathLike) -> None:
        """Create ``folder`` if needed and lock it; ``OutputError`` naming the holder if another run has it."""
        self.folder = Path(folder)
        if self.folder.is_symlink() and not self.folder.is_dir():
            raise OutputError(f"--out {self.folder} is a broken symbolic link")
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(f"--out {self.folder} is a file, not a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create --out {self.folder}: {exc.strerror or exc}") from None
        self.path = self.folder / LOCK_FILE
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as exc:
            raise OutputError(f"cannot open the run lock {self.path}: {exc.strerror or exc}"
                              f"{' (a symbolic link: remove it)' if self.path.is_symlink() else ''}") from None
        try:
            if not stat.S_ISREG(os.fstat(self._fd).st_mode):
                raise OutputError(f"the run lock {self.path} is not a regular file; remove it")
            self._lock()
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # not POSIX: no guard against two runs in one folder (README, Reliability)
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self._fd, 200, 0).decode("utf-8", "replace").strip()
            who = f" ({holder})" if holder else ""
            raise OutputError(f"another ganrt run{who} is using {self.folder}; wait for it to end, or choose "
                              "another --out") from None
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()}, started {started}\n".encode(), 0)

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        """Empty the file and unlock it (closing the descriptor drops the flock)."""
        if self._fd >= 0:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
