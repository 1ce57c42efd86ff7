"""The output formats a run can be written in, by name: the one list to add a format to."""

from __future__ import annotations

from pathlib import Path

from ganrt.core.errors import ParameterError
from ganrt.runs.format import OutputFormat
from ganrt.runs.image_folder import IMAGE_FOLDER
from ganrt.runs.npz_shards import NPZ_SHARDS
from ganrt.runs.parquet_shards import PARQUET_SHARDS
from ganrt.runs.png_files import PNG_FILES
from ganrt.runs.webdataset_shards import WEBDATASET_SHARDS

FORMATS: dict[str, OutputFormat] = {f.name: f for f in (PNG_FILES, NPZ_SHARDS, WEBDATASET_SHARDS, PARQUET_SHARDS, IMAGE_FOLDER)}
LAYOUTS = {"flat": "png", "imagefolder": IMAGE_FOLDER.name}  # --layout, for PNG files: which format writes them
# what --format offers: every format but the layouts of PNG files, which --layout picks
FORMAT_CHOICES = tuple(name for name in FORMATS if name not in set(LAYOUTS.values()) - {"png"})


def get_format(name: str) -> OutputFormat:
    """The format called ``name``; ``ParameterError`` naming the choices otherwise."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise ParameterError(f"format must be one of {', '.join(FORMATS)}, got {name!r}") from None


def format_for(fmt: str, layout: str = "flat") -> str:
    """The format that writes ``--format FMT --layout LAYOUT``: a layout other than flat is for PNG files."""
    if layout not in LAYOUTS:
        raise ParameterError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout == "flat":
        return get_format(fmt).name
    if fmt != "png":
        raise ParameterError(f"--layout {layout} is a layout of PNG files; --format {fmt} has its own: drop one of them")
    return LAYOUTS[layout]


def extra_run_files(folder: Path) -> list[Path]:
    """Files any format may have written into ``folder`` beyond the top-level names ``is_image_file`` knows."""
    return sorted({p for f in FORMATS.values() for p in f.extra_files(folder)})


def is_image_file(name: str) -> bool:
    """A file name that some format writes into a run folder."""
    return any(f.pattern.match(name) for f in FORMATS.values())
