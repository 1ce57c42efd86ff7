"""Prometheus text-format metrics (exposition format 0.0.4), kept in the process without a client library:
requests and errors by route and status, latency histograms by route, batch sizes and queue lengths by model."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable

# seconds: a batched 32x32 image takes ~1-10 ms here, an upscale of a photo seconds
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Histogram:
    """Cumulative buckets, sum and count per label set."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts: dict[tuple, list[int]] = defaultdict(lambda: [0] * (len(buckets) + 1))
        self.sums: dict[tuple, float] = defaultdict(float)

    def observe(self, labels: tuple, value: float) -> None:
        self.counts[labels][bisect.bisect_left(self.buckets, value)] += 1
        self.sums[labels] += value


def _labels(names: tuple[str, ...], values: tuple, extra: str = "") -> str:
    def escape(v: object) -> str:
        return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    parts = [f'{n}="{escape(v)}"' for n, v in zip(names, values)] + ([extra] if extra else [])
    return "{" + ",".join(parts) + "}" if parts else ""


class Metrics:
    """What ``GET /metrics`` reports. Thread-safe: the event loop and the lane threads both record."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple, int] = defaultdict(int)  # (route, method, status)
        self.errors: dict[tuple, int] = defaultdict(int)  # (route, status), status >= 400
        self.latency = Histogram(LATENCY_BUCKETS)  # (route,)
        self.batch_size = Histogram(BATCH_BUCKETS)  # (model,)
        self.images: dict[tuple, int] = defaultdict(int)  # (model,)
        self.dropped: dict[tuple, int] = defaultdict(int)  # (model,): images whose client left before their batch ran
        self.gauges: dict[str, tuple[str, Callable[[], dict[tuple, float]]]] = {}  # name -> (help, read by model)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, method, status)] += 1
            if status >= 400:
                self.errors[(route, status)] += 1
            self.latency.observe((route,), seconds)

    def batch(self, model: str, size: int) -> None:
        with self._lock:
            self.batch_size.observe((model,), size)
            self.images[(model,)] += size

    def drop(self, model: str, count: int) -> None:
        with self._lock:
            self.dropped[(model,)] += count

    def text(self) -> str:
        out: list[str] = []

        def counter(name: str, help_: str, names: tuple[str, ...], values: dict[tuple, int]) -> None:
            out.extend([f"# HELP {name} {help_}", f"# TYPE {name} counter"])
            out.extend(f"{name}{_labels(names, k)} {v}" for k, v in sorted(values.items()))

        def histogram(name: str, help_: str, names: tuple[str, ...], h: Histogram) -> None:
            out.extend([f"# HELP {name} {help_}", f"# TYPE {name} histogram"])
            for k in sorted(h.counts):
                running = 0
                for bound, c in zip((*h.buckets, float("inf")), h.counts[k]):
                    running += c
                    le = "+Inf" if bound == float("inf") else f"{bound:g}"
                    bucket = _labels(names, k, 'le="' + le + '"')
                    out.append(f"{name}_bucket{bucket} {running}")
                out.append(f"{name}_sum{_labels(names, k)} {h.sums[k]:.6f}")
                out.append(f"{name}_count{_labels(names, k)} {running}")

        with self._lock:
            counter("ganrt_requests_total", "HTTP requests by route, method and status.", ("route", "method", "status"),
                    self.requests)
            counter("ganrt_errors_total", "HTTP requests answered with a 4xx or 5xx status.", ("route", "status"), self.errors)
            histogram("ganrt_request_duration_seconds", "Time from request to the end of the response.", ("route",),
                      self.latency)
            histogram("ganrt_batch_size", "Images per onnxruntime call of the dynamic batcher.", ("model",), self.batch_size)
            counter("ganrt_images_total", "Single images made by the dynamic batcher.", ("model",), self.images)
            counter("ganrt_dropped_images_total", "Queued images dropped because their client disconnected.", ("model",),
                    self.dropped)
            gauges = dict(self.gauges)
        for name, (help_, read) in gauges.items():
            out.extend([f"# HELP {name} {help_}", f"# TYPE {name} gauge"])
            out.extend(f"{name}{_labels(('model',), k)} {v:g}" for k, v in sorted(read().items()))
        return "\n".join(out) + "\n"
