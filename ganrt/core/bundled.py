"""The model files shipped with ganrt (``ganrt/models/``), and how a name or a path becomes a file."""

from __future__ import annotations

from pathlib import Path

from ganrt.core.errors import ModelNotFoundError

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = "fashion-cgan"


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
