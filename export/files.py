"""The check every writer of the torch side (export, int8 and fp16 variants) makes before any work."""

from __future__ import annotations

from pathlib import Path

from ganrt.core.errors import OutputError


def check_output(output: Path, *, overwrite: bool) -> None:
    """OutputError unless ``output`` is a new .onnx file in an existing folder (or ``overwrite``)."""
    if output.suffix != ".onnx":
        raise OutputError(f"output {output} must end in .onnx")
    if output.exists() and not overwrite:
        raise OutputError(f"{output} exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise OutputError(f"folder {output.parent} does not exist")
