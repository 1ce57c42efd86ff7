"""Throughput measurement: interleaved timing rounds, peak RSS, the machine's GEMM ceiling, tables.

``ganrt bench MODEL`` and ``python -m benchmarks.compare`` (which adds torch and plain
onnxruntime beside ganrt) both measure with this module, so their numbers mean the same thing:

- **images/s** is the median over rounds; in each round every backend runs for ``min_seconds``
  in turn, so slow drift of a shared machine hits all backends alike (compare within one run);
- **latency** p50/p99 are over every call at that batch size;
- **peak RSS** is sampled every 5 ms while a backend runs (the whole process: in
  ``benchmarks.compare`` torch is loaded in the same process);
- **GFLOP/s** = images/s x the model's FLOPs per image (stored in the model file at export),
  beside the float32 GEMM GFLOP/s of onnxruntime's own MatMul measured in the same run, the
  ceiling a convolution can approach on this machine.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ganrt.core.errors import ParameterError
from ganrt.core.kind import KINDS
from ganrt.core.session import session_device

# ONNX: one MatMul c = a @ b with symbolic sizes (opset 18). Built with onnx.helper once and kept as
# bytes, because the runtime does not depend on the onnx package (tests rebuild and compare it).
GEMM_MODEL = (
    b'\x08\x08:^\n\x11\n\x01a\n\x01b\x12\x01c"\x06MatMul\x12\x04gemmZ\x15\n\x01a\x12\x10\n\x0e\x08\x01\x12\n\n'
    b'\x03\x12\x01m\n\x03\x12\x01kZ\x15\n\x01b\x12\x10\n\x0e\x08\x01\x12\n\n\x03\x12\x01k\n\x03\x12\x01nb\x15\n'
    b'\x01c\x12\x10\n\x0e\x08\x01\x12\n\n\x03\x12\x01m\n\x03\x12\x01nB\x04\n\x00\x10\x12'
)
DEFAULT_BATCH_SIZES = (1, 8, 64, 256)


@dataclass(frozen=True)
class Record:
    """One model x backend x batch size; the JSON record of the benchmark files."""

    model: str
    backend: str
    batch_size: int
    images_per_s: float
    p50_ms: float  # per call (a whole batch)
    p99_ms: float
    peak_rss_mb: float
    gflops: float | None  # achieved; None when the model file does not state its FLOPs
    gemm_gflops: float
    flops_per_image: float | None
    threads: int
    device: str
    calls: int
    note: str = ""


@dataclass
class Timing:
    """Calls of one backend at one batch size, gathered over the rounds."""

    rates: list[float] = field(default_factory=list)  # images/s per round
    calls: list[float] = field(default_factory=list)  # seconds per call
    peak_rss: int = 0  # bytes

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.calls), q) * 1e3)


class RssSampler:
    """Peak resident set size of this process while ``active``, sampled every ``interval`` seconds.

    ``ru_maxrss`` only grows over the life of the process; this gives the peak of one section.
    """

    def __init__(self, interval: float = 0.005) -> None:  # 5 ms: a peak lasts longer; denser sampling competes with what is timed
        self._interval = interval
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._peak = 0
        self._active = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ganrt-rss", daemon=True)
        self._thread.start()

    def rss(self) -> int:
        """Current RSS in bytes (Linux /proc; elsewhere the lifetime peak from ``resource``)."""
        try:
            with open("/proc/self/statm", "rb") as f:
                return int(f.read().split()[1]) * self._page
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._active.wait(0.05):
                self._peak = max(self._peak, self.rss())
                time.sleep(self._interval)

    def start(self) -> None:
        self._peak = self.rss()
        self._active.set()

    def stop(self) -> int:
        """Stop sampling; the peak (bytes) since ``start``."""
        self._active.clear()
        return max(self._peak, self.rss())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)


def measure(backends: dict[str, Callable[[int], Any]], batch_size: int, *, rounds: int = 5, min_seconds: float = 1.0,
            sampler: RssSampler | None = None) -> dict[str, Timing]:
    """Time each backend's ``fn(batch_size)``: ``rounds`` rounds, backends interleaved in each round.

    Each backend runs once untimed first (allocations, kernel choice, cuDNN search).
    """
    if rounds < 1 or min_seconds <= 0:
        raise ParameterError("rounds must be >= 1 and min_seconds > 0")
    timings = {name: Timing() for name in backends}
    for fn in backends.values():
        fn(batch_size)
    for _ in range(rounds):
        for name, fn in backends.items():
            t = timings[name]
            if sampler is not None:
                sampler.start()
            calls = []
            begin = time.perf_counter()
            while True:
                c0 = time.perf_counter()
                fn(batch_size)
                c1 = time.perf_counter()
                calls.append(c1 - c0)
                if c1 - begin >= min_seconds:
                    break
            t.rates.append(len(calls) * batch_size / (c1 - begin))
            t.calls.extend(calls)
            if sampler is not None:
                t.peak_rss = max(t.peak_rss, sampler.stop())
    return timings


def gemm_gflops(*, threads: int | None, size: int = 2048, seconds: float = 1.0) -> float:
    """float32 GEMM GFLOP/s of onnxruntime's MatMul (``size``^2) on the CPU: the machine's ceiling."""
    from ganrt.core.session import create_session

    session = create_session(GEMM_MODEL, device="cpu", threads=threads, source="gemm")
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    session.run(None, {"a": a, "b": b})
    times = []
    begin = time.perf_counter()
    while not times or time.perf_counter() - begin < seconds:
        t0 = time.perf_counter()
        session.run(None, {"a": a, "b": b})
        times.append(time.perf_counter() - t0)
    return 2.0 * size**3 / statistics.median(times) / 1e9


def record(model: str, backend: str, batch_size: int, timing: Timing, *, flops_per_image: float | None,
           gemm: float, threads: int, device: str, note: str = "") -> Record:
    rate = statistics.median(timing.rates)
    return Record(
        model=model, backend=backend, batch_size=batch_size, images_per_s=round(rate, 2),
        p50_ms=round(timing.percentile_ms(50), 3), p99_ms=round(timing.percentile_ms(99), 3),
        peak_rss_mb=round(timing.peak_rss / 2**20, 1),
        gflops=None if not flops_per_image else round(rate * flops_per_image / 1e9, 2),
        gemm_gflops=round(gemm, 2), flops_per_image=flops_per_image, threads=threads, device=device,
        calls=len(timing.calls), note=note,
    )


def markdown_table(records: Sequence[Record], *, baseline: str | None = None) -> str:
    """One row per record; with ``baseline`` (a backend name) a column of speed-ups over it."""
    speedup = {}
    if baseline:
        base = {(r.model, r.batch_size): r.images_per_s for r in records if r.backend == baseline}
        speedup = {id(r): r.images_per_s / base[(r.model, r.batch_size)] for r in records
                   if base.get((r.model, r.batch_size))}
    head = ["model", "backend", "batch", "images/s", "p50 ms", "p99 ms", "peak RSS MB", "GFLOP/s", "% of fp32 GEMM"]
    if baseline:
        head.insert(4, f"x {baseline}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        row = [r.model + (f" ({r.note})" if r.note else ""), r.backend, str(r.batch_size), f"{r.images_per_s:,.1f}",
               f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.peak_rss_mb:.0f}",
               "n/a" if r.gflops is None else f"{r.gflops:.1f}",
               "n/a" if r.gflops is None else f"{100 * r.gflops / r.gemm_gflops:.0f}%"]
        if baseline:
            row.insert(4, f"{speedup[id(r)]:.2f}" if id(r) in speedup else "")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model, cores, onnxruntime version."""
    import platform

    from ganrt.core.session import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime": onnxruntime().__version__, "numpy": np.__version__}


def to_json(records: Sequence[Record], **extra: Any) -> str:
    return json.dumps({**extra, "records": [asdict(r) for r in records]}, indent=1)


def model_backend(model: Any) -> tuple[Callable[[int], Any], float | None]:
    """(fn(batch) running ``model`` on ``batch`` items as a user calls it, FLOPs per item or None), from the
    model's kind (``Kind.bench``): generators ``sample`` fresh indices, upscalers ``upscale_many`` 256x256
    RGB images (tiled as shipped), classifiers ``run`` on images. Inputs are fixed noise (no data set needed)."""
    kind = KINDS.get(getattr(getattr(model, "info", None), "kind", None))
    if kind is None:
        raise ParameterError(f"cannot benchmark a {type(model).__name__}")
    return kind.bench(model)


def bench_model(model: Any, *, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, rounds: int = 5, min_seconds: float = 1.0,
                threads: int | None = None, on_result: Callable[[Record], None] | None = None) -> list[Record]:
    """``ganrt bench``: one record per batch size for a loaded model, beside the machine's GEMM ceiling."""
    if not batch_sizes or any(int(b) < 1 for b in batch_sizes):
        raise ParameterError(f"batch sizes must be integers >= 1, got {list(batch_sizes)}")
    fn, flops = model_backend(model)
    gemm = gemm_gflops(threads=threads)
    sampler = RssSampler()
    device = session_device(model.session)
    records = []
    try:
        for b in batch_sizes:
            timing = measure({"ganrt": fn}, int(b), rounds=rounds, min_seconds=min_seconds, sampler=sampler)["ganrt"]
            records.append(record(model.name, "ganrt", int(b), timing, flops_per_image=flops, gemm=gemm,
                                  threads=threads or os.cpu_count() or 1, device=device))
            if on_result is not None:
                on_result(records[-1])
    finally:
        sampler.close()
    return records
