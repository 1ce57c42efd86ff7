"""The output formats a run can be written in, by name: the one list to add a format to."""

from __future__ import annotations

from ganrt.core.errors import ParameterError
from ganrt.runs.format import OutputFormat
from ganrt.runs.npz_shards import NPZ_SHARDS
from ganrt.runs.png_files import PNG_FILES

FORMATS: dict[str, OutputFormat] = {f.name: f for f in (PNG_FILES, NPZ_SHARDS)}


def get_format(name: str) -> OutputFormat:
    """The format called ``name``; ``ParameterError`` naming the choices otherwise."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise ParameterError(f"format must be one of {', '.join(FORMATS)}, got {name!r}") from None


def is_image_file(name: str) -> bool:
    """A file name that some format writes into a run folder."""
    return any(f.pattern.match(name) for f in FORMATS.values())
