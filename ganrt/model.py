"""What every loaded model shares: its onnxruntime session and the settings read from its file."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from .metadata import ModelInfo


class Model:
    """Base of ``Generator`` and ``Classifier``; holds no per-call state (thread-safe)."""

    def __init__(self, session: Any, info: ModelInfo, *, source: str, path: Path | None = None) -> None:
        self._session = session
        self.info = info
        self.source = source
        self.path = path

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
        return list(self._session.get_providers())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, image_shape={self.image_shape}, classes={self.num_classes})"
