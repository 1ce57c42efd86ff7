"""Typed errors raised at the runtime's boundary.

Every message is one line that says what was wrong and what would be right; the CLI prints
``str(error)`` and exits non-zero, so no user mistake ends in a traceback.
"""

from __future__ import annotations


class GanrtError(Exception):
    """Base class of every error ganrt raises on purpose."""


class MissingDependencyError(GanrtError, ImportError):
    """An optional package (an extra) is needed for what was asked."""


class ModelNotFoundError(GanrtError, LookupError):
    """Neither a bundled model name nor an existing file."""


class ModelFormatError(GanrtError, ValueError):
    """The file is not ONNX, or not a model ganrt can serve (metadata missing or invalid)."""


class ModelKindError(GanrtError, TypeError):
    """A model of one kind was given where another kind is needed."""


class DeviceError(GanrtError, RuntimeError):
    """The requested device or execution provider is not available."""


class LabelError(GanrtError, ValueError):
    """A class label is out of range, unknown, or given to an unconditional model."""


class ParameterError(GanrtError, ValueError):
    """A numeric or option parameter is outside its valid range."""


class OutputError(GanrtError, OSError):
    """An output path cannot be written, or would overwrite or mix with an earlier run."""


class ImageError(GanrtError, ValueError):
    """An image file or array cannot be used: not an image, truncated, zero-size, over the pixel
    limit, a bogus header, or not of the size a run expects."""


class InferenceError(GanrtError, RuntimeError):
    """onnxruntime failed while running a model that loaded (out of memory, a bad shape inside the graph)."""


class ManifestError(GanrtError, ValueError):
    """A run's manifest is missing, malformed, or does not match the run being resumed or replayed."""


class ClusterError(GanrtError, RuntimeError):
    """A cluster run cannot start or cannot finish: Ray unreachable, workers that cannot be placed, a shard that keeps failing."""
