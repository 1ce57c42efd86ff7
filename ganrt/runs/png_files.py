"""``--format png``: one PNG per image, ``000123.png``, its provenance in the file's text chunks."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.core.errors import GanrtError
from ganrt.io.files import atomic_write
from ganrt.io.png import encode_pngs, read_png
from ganrt.runs.format import Entry, OutputFormat, sha256_hex


def run_pngs(images: np.ndarray, provenance: Sequence[tuple[Any, int, int | None]]) -> list[bytes]:
    """The PNG files of images (B, H, W, C) uint8 as a run writes them: image k is image ``index`` of the run
    of ``header`` (a ``RunHeader``) with class ``label``, for (header, index, label) = ``provenance[k]``, its
    provenance in text chunks. ``ganrt generate --format png`` and ``ganrt serve`` both make their PNGs here,
    so a served image is the run's file byte for byte."""
    return encode_pngs(images, texts=[header.png_text(i, y) for header, i, y in provenance])


class PngFiles(OutputFormat):
    name = "png"
    pattern = re.compile(r"^\d{6,}\.png$")

    def file_name(self, header: Any, index: int) -> str:
        width = max(6, len(str(header.start + header.n - 1)))  # every name of a run has the same width: they sort
        return f"{index:0{width}d}.png"

    def write(self, folder: Path, header: Any, images: np.ndarray, indices: np.ndarray,
              labels: np.ndarray | None) -> list[Entry]:
        indices = indices.tolist()
        labels = [None] * len(indices) if labels is None else labels.tolist()
        files = run_pngs(images, [(header, i, y) for i, y in zip(indices, labels)])
        entries = []
        for i, label, data, image in zip(indices, labels, files, images):
            name = self.file_name(header, i)
            atomic_write(os.path.join(folder, name), data)  # a str path: once per PNG, Path costs µs
            entries.append(Entry(i, label, name, sha256_hex(data), sha256_hex(image)))
        return entries

    def read_image(self, folder: Path, entry: dict, shape: tuple[int, int, int], header: Any, cache: dict) -> np.ndarray | str:
        file = folder / entry["file"]
        if not file.is_file():
            return "missing"
        try:
            return read_png(file, shape=shape)[0]
        except GanrtError as exc:
            return f"unreadable: {exc}"


PNG_FILES = PngFiles()
