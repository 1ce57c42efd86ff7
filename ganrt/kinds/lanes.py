"""Lanes: concurrent single-threaded runs of one onnxruntime session, one per core.

Small convolutions parallelise poorly inside one run; onnxruntime runs concurrent calls of one session in
parallel, so ``count`` calls at once on a single-threaded session keep every core busy. A stream makes one
whole batch per lane (no lane waits for another: 1.85-2.1x one two-threaded run on 2 cores); a single
large batch is split into ``count`` contiguous parts (1.09-1.42x at batch 64/256, benchmarks/NOTES.md).
An image does not depend on the lane or the part it is made in.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ganrt.core.run import run_bound


class Lanes:
    """``count`` lanes over ``session`` (single-threaded, uint8 output ``output``). Thread-safe."""

    def __init__(self, session: Any, count: int, output: str, *, source: str) -> None:
        self._session, self.count, self._output, self._source = session, count, output, source
        # a split batch: the calling thread runs the first part, count - 1 helpers the others;
        # a stream: one whole batch per helper. Threads start on first use.
        self._pool = ThreadPoolExecutor(count, thread_name_prefix="ganrt-lane")

    def run(self, feeds: dict[str, np.ndarray], out: np.ndarray) -> None:
        """One whole batch on one lane, written into ``out`` (B, H, W, C) uint8."""
        run_bound(self._session, feeds, self._output, out, source=self._source)

    def run_split(self, feeds: dict[str, np.ndarray], out: np.ndarray) -> None:
        """One batch as ``count`` contiguous parts run at once, each writing its rows of ``out``."""
        bounds = np.linspace(0, len(out), self.count + 1).astype(int)
        parts = [({k: v[a:b] for k, v in feeds.items()}, out[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        helpers = [self._pool.submit(self.run, f, o) for f, o in parts[1:]]
        try:
            self.run(*parts[0])
        finally:
            for helper in helpers:
                helper.result()  # waits for every part (and raises the first failure) before out is used

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """``fn(*args)`` on a lane thread (a stream's batch: ``fn`` calls ``run``)."""
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        """Stop the threads (after the calls under way) and drop the session."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._session = None
