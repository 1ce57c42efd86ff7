"""Batch-size tuning: the batch size with the most images/s on this machine, measured once per loaded model.

The best size depends on the model, the cores and the device, and images do not depend on it, so a long
run without a batch size measures it (about a second) instead of guessing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

TUNE_CANDIDATES = (16, 32, 64, 128, 256, 512)
_TUNE_SECONDS = 0.08  # per candidate and round


def fastest(stream: Callable[[int], None], *, per_call: int = 1) -> int:
    """The smallest batch size within 5% of the fastest, timing ``stream(b)`` (``per_call`` batches of b).

    Candidates grow until throughput falls 5% below the best so far, or one call takes over 0.25 s;
    two interleaved rounds, median. On a flat curve the smallest wins: less memory and latency for no speed.
    """
    rates: dict[int, list[float]] = {}
    for _round in range(2):
        for b in TUNE_CANDIDATES:
            if _round and b not in rates:
                break
            stream(b)  # warm-up: allocations for this shape
            calls, t0 = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - t0) < _TUNE_SECONDS or not calls:
                stream(b)
                calls += 1
            rates.setdefault(b, []).append(calls * b * per_call / max(time.perf_counter() - t0, 1e-9))
            best = max(float(np.median(v)) for v in rates.values())
            if not _round and (rates[b][-1] < 0.95 * best or elapsed / calls > 0.25):
                break
    medians = {b: float(np.median(v)) for b, v in rates.items()}
    return min(b for b, r in medians.items() if r >= 0.95 * max(medians.values()))
