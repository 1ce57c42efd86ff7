"""What every loaded model shares: its onnxruntime session and the settings read from its file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any

from ganrt.core.errors import InferenceError
from ganrt.core.schema import ModelInfo

# element type of the first output (``output_type``) -> the precision a run records in its provenance
_PRECISIONS = {"float": "float32", "float16": "float16", "bfloat16": "bfloat16", "double": "float64", "uint8": "uint8"}


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (model files can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Model:
    """Base of every kind's class; holds no per-call state (thread-safe).

    ``close()`` (or leaving a ``with`` block) releases the onnxruntime session(s) and threads at once,
    instead of whenever the garbage collector gets to them; a closed model refuses to run.
    """

    def __init__(self, session: Any, info: ModelInfo, *, source: str, path: Path | None = None) -> None:
        self._session = session
        self.info = info
        self.source = source
        self.path = path

    @property
    def session(self) -> Any:
        """The onnxruntime session; ``InferenceError`` once the model is closed."""
        session = self._session
        if session is None:
            raise InferenceError(f"{self.source}: the model was closed; load it again to run it")
        return session

    @property
    def closed(self) -> bool:
        return self._session is None

    def close(self) -> None:
        """Release the session (and, in subclasses, their threads). Idempotent."""
        self._session = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image the model makes or reads."""
        return self.info.image_shape

    @property
    def metadata(self) -> dict[str, Any]:
        return asdict(self.info)

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    @property
    def provider(self) -> str:
        """The execution provider that runs this model (first in onnxruntime's list)."""
        return self.providers[0]

    @property
    def precision(self) -> str:
        """What the network computes in, e.g. ``float32`` (``int8`` for a quantized variant): part of
        every image's provenance. From the metadata; a float output's own type where it says more."""
        kind = self.output_type
        if self.info.precision == "float32" and kind != "uint8":
            return _PRECISIONS.get(kind, kind)
        return self.info.precision

    @property
    def output_type(self) -> str:
        """Element type of the first output as onnxruntime names it, e.g. ``uint8`` or ``float``."""
        return self.session.get_outputs()[0].type.removeprefix("tensor(").removesuffix(")")

    def settings(self) -> dict[str, Any]:
        """The file's metadata with its path and sha256: what ``ganrt info --json`` prints and ``ganrt serve`` lists."""
        return {**json.loads(self.info.to_json()), "path": str(self.path), "sha256": self.sha256}

    @cached_property
    def sha256(self) -> str:
        """Hex sha256 of the model file: ties every image and manifest to the exact weights."""
        if self.path is None:
            return ""
        return file_sha256(self.path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, image_shape={self.image_shape}, classes={self.num_classes})"
