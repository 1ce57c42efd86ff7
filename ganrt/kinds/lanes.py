"""Lanes: concurrent single-threaded runs of one onnxruntime session, one per core.

Small convolutions parallelise poorly inside one run; onnxruntime runs concurrent calls of one session in
parallel, so ``count`` calls at once on a single-threaded session keep every core busy. A stream makes one
whole batch per lane (no lane waits for another: 1.85-2.1x one two-threaded run on 2 cores); a single
large batch is split into ``count`` contiguous parts (1.09-1.42x at batch 64/256, benchmarks/NOTES.md).
An image does not depend on the lane or the part it is made in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ganrt.core.run import run_bound


class LaneModel:
    """What a model that runs on lanes adds to ``Model`` (put it first among the bases): ``lanes`` and a ``close``
    that stops the lane threads before the sessions go. The model's ``__init__`` sets ``self._lanes``."""

    _lanes: Lanes | None = None

    @property
    def lanes(self) -> int:
        """Concurrent single-threaded runs a call may use (1: none, the multi-threaded session alone)."""
        return self._lanes.count if self._lanes is not None else 1

    def close(self) -> None:
        """Release the lane threads, then the sessions; the model cannot run afterwards. Idempotent."""
        if self._lanes is not None:
            self._lanes.close()
            self._lanes = None
        super().close()  # type: ignore[misc]  # Model.close, next in the subclass's bases


class Lanes:
    """``count`` lanes over ``session`` (single-threaded, uint8 output ``output``). Thread-safe."""

    def __init__(self, session: Any, count: int, output: str, *, source: str) -> None:
        self._session, self.count, self._output, self._source = session, count, output, source
        # a split batch: the calling thread runs the first part, count - 1 helpers the others;
        # a stream: one whole batch per helper. Threads start on first use.
        self._pool = ThreadPoolExecutor(count, thread_name_prefix="ganrt-lane")
        self.route = Route(lambda b: ("threads", "lane", "split") if b >= count else ("threads", "lane"))

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

    def run_small(self, feeds: dict[str, np.ndarray], out: np.ndarray, threaded: Any) -> None:
        """A batch too small to split as a rule: the way ``route`` has measured fastest for its size, on
        the calls themselves -- ``threads`` (one run of the multi-threaded session ``threaded``), ``lane``
        (one single-threaded run: no pool to wake and no idle thread spinning against the caller) or
        ``split`` (count parts at once). The same images whichever way runs."""
        way = self.route.pick(len(out))
        t0 = time.perf_counter()
        if way == "split":
            self.run_split(feeds, out)
        elif way == "lane":
            self.run(feeds, out)
        else:
            run_bound(threaded, feeds, self._output, out, source=self._source)
        self.route.record(len(out), way, time.perf_counter() - t0)

    @property
    def session(self) -> Any:
        """The single-threaded session the lanes share (onnxruntime runs concurrent calls of it in parallel)."""
        return self._session

    def each(self, job: Callable[[Any], None], items: list) -> None:
        """``job(item)`` for every item, ``count`` at a time (the calling thread and count - 1 helpers take the
        next item as they finish: an uneven item does not hold the others); the first failure is raised
        after every job under way has finished."""
        todo = iter(items)
        lock = threading.Lock()
        failed: list[BaseException] = []

        def worker() -> None:
            while not failed:
                with lock:
                    item = next(todo, todo)
                if item is todo:
                    return
                try:
                    job(item)
                except BaseException as exc:  # kept and raised by the caller, once every lane has stopped
                    failed.append(exc)

        helpers = [self._pool.submit(worker) for _ in range(min(self.count, len(items)) - 1)]
        worker()
        for helper in helpers:
            helper.result()
        if failed:
            raise failed[0]

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """``fn(*args)`` on a lane thread (a stream's batch: ``fn`` calls ``run``)."""
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        """Stop the threads (after the calls under way) and drop the session."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._session = None


class Route:
    """Which way a call of batch size b runs fastest, measured on the calls themselves (no probe of its own).

    The ways at a size are timed in rounds of short blocks: each way runs ``BLOCK`` calls in a row, of which the first
    is not timed (the switch's cost: a pool that slept wakes, one that spins steals the other way's cores), and the
    rounds repeat until every way has ``TRIALS`` timings, spread over the rounds so that a passing load (another
    session's pool still spinning) hits every way alike. Then the way with the lowest median runs (the first way
    unless another is ``MARGIN`` faster), and every ``RETRY`` calls at that size the ways are timed again, so a
    machine whose load changes gets a new choice. Why measured: at batch 1 the multi-threaded session was 1.2-1.6x one
    thread on a quiet 2-core VM, and 0.6-0.8x on the same VM shared with other work (its idle pool thread spins
    against the caller's Python between calls; benchmarks/NOTES.md). Why blocks: timed strictly interleaved, every
    call paid the switch, and on a quiet VM the route chose a way 1.3-1.5x slower than the best in 2 of 4 sizes.
    Thread-safe; timings of calls that overlap others count all the same (they are what the caller gets).
    """

    TRIALS = 7
    BLOCK = 2
    RETRY = 2000
    # Another way replaces the first (``threads``: every core in one run) only when its median is this much lower.
    # Without it, a quiet 2-core VM chose ``lane`` at fashion-cgan batch 1 in 2 of 3 runs, 1.2-1.5x slower than
    # ``threads`` forced in the same run (benchmarks/NOTES.md); the loaded case it is for differs by 1.3-1.6x.
    # At 0.1 with 5 trials a quiet Zen 4 VM still ran 2,029 of 4,400 batch-1 calls on ``lane`` after one trial
    # round ranked it first (0.32 ms a call against 0.29 forced threads; NOTES, 2026-12-02 15:00 UTC).
    MARGIN = 0.2

    def __init__(self, ways: Callable[[int], tuple[str, ...]]) -> None:
        self._ways = ways
        self._lock = threading.Lock()
        self._times: dict[int, dict[str, list[float]]] = {}  # batch size -> way -> seconds of its timed calls
        self._block: dict[int, list] = {}  # batch size -> [way, calls left in its block]
        self._best: dict[int, str] = {}
        self._since: dict[int, int] = {}  # calls since the choice

    def pick(self, b: int) -> str:
        with self._lock:
            best = self._best.get(b)
            if best is not None:
                self._since[b] += 1
                if self._since[b] < self.RETRY:
                    return best
                del self._best[b]
                self._times[b] = {}
                self._block.pop(b, None)
            block = self._block.get(b)
            if block is None or block[1] <= 0:  # the next block: the least-timed way (in order on ties)
                times = self._times.setdefault(b, {})
                block = self._block[b] = [min(self._ways(b), key=lambda w: len(times.get(w, ()))), self.BLOCK]
            block[1] -= 1
            return block[0]

    def record(self, b: int, way: str, seconds: float) -> None:
        with self._lock:
            if b in self._best:
                return
            block = self._block.get(b)
            if block is None or block[0] != way or block[1] == self.BLOCK - 1:  # a block's first call: the switch
                return
            times = self._times.setdefault(b, {})
            times.setdefault(way, []).append(seconds)
            ways = self._ways(b)
            if all(len(times.get(w, ())) >= self.TRIALS for w in ways):
                medians = {w: float(np.median(times[w])) for w in ways}
                best = min(ways, key=medians.__getitem__)
                if medians[best] > (1.0 - self.MARGIN) * medians[ways[0]]:
                    best = ways[0]  # within the margin of the first way: the noise of a few calls, not a faster way
                self._best[b] = best
                self._since[b] = 0

    def chosen(self) -> dict[int, str]:
        """Batch size -> the way chosen so far (``ganrt bench`` and the benchmarks report it)."""
        with self._lock:
            return dict(self._best)
