"""ganrt: sample GAN generators exported from PyTorch to ONNX, with numpy + onnxruntime (no torch).

    >>> import ganrt
    >>> g = ganrt.load("fashion-cgan")
    >>> images = g.sample(16, labels="Sneaker", seed=1)   # (16, 32, 32, 1) uint8
    >>> big = ganrt.load("sr-x4").upscale(photo)           # (4H, 4W, 3) uint8, tiled
    >>> out = ganrt.load("pix2pix.onnx").translate(photo)  # (H, W, C) uint8: padded to its size multiple, cropped back
    >>> ganrt.generate_on_ray(g, "out", n=10**6)           # the same folder as generate_run, on a Ray cluster
"""

from __future__ import annotations

from typing import Any

from ganrt._version import __version__
from ganrt.core.bundled import DEFAULT_MODEL, MODELS_DIR, available_models, resolve_model
from ganrt.core.errors import (
    ClusterError,
    DeviceError,
    GanrtError,
    ImageError,
    InferenceError,
    LabelError,
    ManifestError,
    MissingDependencyError,
    ModelFormatError,
    ModelKindError,
    ModelNotFoundError,
    OutputError,
    ParameterError,
)
from ganrt.core.schema import ModelInfo
from ganrt.kinds.classifier import Classifier
from ganrt.kinds.generator import Batch, Generator
from ganrt.kinds.registry import load
from ganrt.kinds.translator import Translator
from ganrt.kinds.upscaler import Upscaler
from ganrt.runs.writer import RunResult, generate_run

_LAZY = {"ClusterConfig": "runs.cluster", "generate_on_ray": "runs.cluster"}  # imported on first use: keeps `import ganrt` light


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ganrt' has no attribute {name!r}")


__all__ = [
    "__version__", "load", "available_models", "resolve_model", "Generator", "Classifier", "Upscaler", "Translator", "Batch",
    "ModelInfo", "generate_run", "RunResult", "generate_on_ray", "ClusterConfig", "MODELS_DIR",
    "GanrtError", "ClusterError", "MissingDependencyError", "ModelNotFoundError", "ModelFormatError", "ModelKindError",
    "DeviceError", "LabelError", "ParameterError", "OutputError", "InferenceError", "ImageError",
    "ManifestError", "DEFAULT_MODEL",
]
