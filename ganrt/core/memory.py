"""How much memory this machine has, and the one check that a request fits in it, made before anything is allocated.

A request whose arrays alone are larger than the machine's memory (or its cgroup's limit) cannot succeed:
it is refused at once with what it needs, instead of growing until numpy's ``MemoryError`` or the OOM killer.
"""

from __future__ import annotations

import os
from functools import lru_cache

from ganrt.core.errors import ParameterError


@lru_cache(maxsize=1)
def total_memory() -> int:
    """Bytes of memory this process can have: physical memory, or less where a cgroup limits it."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX: assume a large machine rather than refuse
        total = 1 << 40
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def _size(nbytes: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes:,} bytes"


def check_fits(nbytes: int, what: str, *, hint: str = "") -> None:
    """``ParameterError`` when ``what`` needs more than ``total_memory()`` bytes (``hint``: what to do instead)."""
    limit = total_memory()
    if nbytes > limit:
        raise ParameterError(f"{what} needs {_size(nbytes)} of memory, more than this machine's {_size(limit)}"
                             + (f"; {hint}" if hint else ""))
