"""The settings of a server: one frozen dataclass, checked once, read by the app, the batchers and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from ganrt.core.bundled import DEFAULT_MODEL
from ganrt.core.errors import ParameterError
from ganrt.io.images import DEFAULT_MAX_PIXELS

MAX_N = 1024  # images per POST /generate: 1024 32x32 images are ~3 MB of PNG grid
MAX_BODY = 50 * 1024 * 1024  # bytes of a request body: a 12-megapixel JPEG is a few MB, a PNG of it ~20-35 MB
MAX_QUEUE = 4096  # single images waiting per model before 503: 64 full batches, well under a second of work here
RETRY_AFTER_S = 1  # what a 503 tells the client to wait


@dataclass(frozen=True)
class ServeConfig:
    """``models``: bundled names or model files, served under their metadata names. ``max_batch`` images per
    onnxruntime call, gathered for at most ``max_wait_ms`` after the first; ``max_queue`` single images waiting
    per model (more: 503 with Retry-After). ``api_key``: every API request needs ``Authorization: Bearer KEY``."""

    models: tuple[str, ...] = (DEFAULT_MODEL,)
    max_batch: int = 64
    max_wait_ms: float = 2.0
    max_queue: int = MAX_QUEUE
    max_n: int = MAX_N
    max_body: int = MAX_BODY
    max_pixels: int = DEFAULT_MAX_PIXELS
    api_key: str | None = None
    device: str = "cpu"
    threads: int | None = None
    lanes: int | None = None  # batches of one generator in flight at once; None: one per lane of the generator
    ceiling_route: bool = False  # benchmarks/serve_load.py: GET /bench/fixed.png, one constant in-memory PNG

    def __post_init__(self) -> None:
        if not self.models:
            raise ParameterError("give at least one --model to serve")
        for name, value in (("--max-batch", self.max_batch), ("--max-queue", self.max_queue), ("max n", self.max_n),
                            ("max body", self.max_body), ("--max-pixels", self.max_pixels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name} must be an integer >= 1, got {value!r}")
        if not 0 <= self.max_wait_ms <= 10_000:
            raise ParameterError(f"--max-wait-ms must be in 0..10000, got {self.max_wait_ms!r}")
        if self.lanes is not None and (isinstance(self.lanes, bool) or not isinstance(self.lanes, int) or self.lanes < 1):
            raise ParameterError(f"--lanes must be an integer >= 1, got {self.lanes!r}")
        if self.api_key is not None and not self.api_key.strip():
            raise ParameterError("--api-key must not be empty")
