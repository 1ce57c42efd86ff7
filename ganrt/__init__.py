"""ganrt: sample GAN generators exported from PyTorch to ONNX, with numpy + onnxruntime (no torch).

    >>> import ganrt
    >>> g = ganrt.load("fashion-cgan")
    >>> images = g.sample(16, labels="Sneaker", seed=1)   # (16, 32, 32, 1) uint8
    >>> big = ganrt.load("sr-x4").upscale(photo)           # (4H, 4W, 3) uint8, tiled
    >>> ganrt.generate_on_ray(g, "out", n=10**6)           # the same folder as generate_run, on a Ray cluster
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganrt._version import __version__
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
from ganrt.kinds.upscaler import Upscaler
from ganrt.runs.writer import RunResult, generate_run

MODELS_DIR = Path(__file__).parent / "models"
_LAZY = {"ClusterConfig": "runs.cluster", "generate_on_ray": "runs.cluster"}  # imported on first use: keeps `import ganrt` light


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ganrt' has no attribute {name!r}")

DEFAULT_MODEL = "fashion-cgan"
_CLASSES = {"generator": Generator, "classifier": Classifier, "upscaler": Upscaler}

__all__ = [
    "__version__", "load", "available_models", "resolve_model", "Generator", "Classifier", "Upscaler", "Batch", "ModelInfo",
    "generate_run", "RunResult", "generate_on_ray", "ClusterConfig",
    "GanrtError", "ClusterError", "MissingDependencyError", "ModelNotFoundError", "ModelFormatError", "ModelKindError",
    "DeviceError", "LabelError", "ParameterError", "OutputError", "InferenceError", "ImageError",
    "ManifestError", "DEFAULT_MODEL",
]


def available_models() -> dict[str, Path]:
    """The bundled models, name -> file."""
    return {p.stem: p for p in sorted(MODELS_DIR.glob("*.onnx"))}


def resolve_model(name_or_path: str | Path) -> Path:
    """A bundled model's name, or a path to an .onnx file, -> the file's path."""
    bundled = available_models()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    names = ", ".join(bundled) or "none installed"
    raise ModelNotFoundError(f"unknown model '{name_or_path}': not a bundled model ({names}) and no such file")


def load(
    name_or_path: str | Path,
    *,
    device: str = "cpu",
    threads: int | None = None,
    kind: str | None = None,
    spin: bool = True,
    cuda_graph: bool = False,
    lanes: int | None = None,
) -> Any:
    """Load a bundled model by name, or a ganrt ONNX file by path.

    Returns a ``Generator``, ``Upscaler`` or ``Classifier``, configured from the file's metadata. ``device``
    is ``cpu``, ``cuda`` (an error if CUDA cannot run it), ``tensorrt`` (TensorRT, then CUDA for what it
    cannot take) or ``auto``; ``threads`` None lets onnxruntime use one thread per core; ``spin`` False
    keeps idle onnxruntime threads from busy-waiting (for processes that do other work between calls). ``kind`` ("generator", ...) raises ``ModelKindError``
    when the file holds another kind of model. ``cuda_graph`` (generators on ``cuda``): capture each batch
    size's kernels once and replay them (``session.GraphRunner``). ``lanes`` (generators on the CPU): that many
    concurrent single-threaded runs of a second session -- a stream makes that many whole batches at
    once, a single batch of at least ``LANE_MIN`` images per lane is split; None: one lane per thread
    (``threads``, or the cores), 1: off. Images do not depend on it.
    """
    from ganrt.core.modelfile import check_model_file
    from ganrt.core.session import create_session, read_info

    if lanes is not None and (isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1):
        raise ParameterError(f"lanes must be an integer >= 1 (or None for one per thread), got {lanes!r}")
    path = resolve_model(name_or_path)
    source = str(name_or_path)
    check_model_file(path, source=source)
    session = create_session(path, device=device, threads=threads, source=source, spin=spin, cuda_graph=cuda_graph)
    info = read_info(session, source=source)
    if kind is not None and info.kind != kind:
        a = lambda word: ("an " if word[0] in "aeiou" else "a ") + word  # noqa: E731
        raise ModelKindError(f"'{source}' is {a(info.kind)} model, not {a(kind)}; `ganrt models` lists each model's kind")
    if cuda_graph:
        if info.kind != "generator":
            raise ParameterError(f"CUDA graphs are for generators; '{source}' is {info.kind}")
        return Generator(session, info, source=source, path=path, graphs="cuda")
    if info.kind == "generator":
        return Generator(session, info, source=source, path=path, lanes=_lanes(path, session, lanes, threads, spin, source))
    return _CLASSES[info.kind](session, info, source=source, path=path)


def _lanes(path: Path, session: Any, lanes: int | None, threads: int | None, spin: bool, source: str) -> tuple[Any, int] | None:
    """(single-threaded session, lane count) for a CPU generator, or None: lanes off, or on a GPU."""
    import os

    from ganrt.core.session import create_session, session_device

    count = lanes if lanes is not None else (threads or os.cpu_count() or 1)
    if count < 2 or session_device(session) != "cpu":
        return None
    return create_session(path, device="cpu", threads=1, source=source, spin=spin), count
