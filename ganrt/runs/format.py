"""What an output format is: how a run's images become files, how those files are named, and how an
image is read back from them (replay). One subclass per format (``png_files``, ``npz_shards``,
``image_folder``, ``webdataset_shards``, ``parquet_shards``), listed once in ``formats.FORMATS``; the
writer, the manifest, resume, replay and Ray read everything format-specific from here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ganrt.core.errors import GanrtError
from ganrt.io.files import atomic_write


def sha256_hex(data: bytes | memoryview | np.ndarray) -> str:
    """Hex sha256 of bytes, or of an array's C-order bytes (an image's pixels)."""
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).tobytes()
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One image's manifest entry, as a format's ``write`` reports it."""

    index: int
    label: int | None
    file: str  # the file's name inside the run folder
    file_sha256: str
    image_sha256: str  # of the (H, W, C) uint8 pixels


class OutputFormat:
    """How one output format writes a run. Stateless: one instance serves every run and thread.

    ``grouped`` formats hold ``header.shard_size`` images per file, counted from the run's start; such a
    file is written, journaled, resumed and handed to a Ray worker whole. Other formats write one file
    per image, and any batch can be written as it comes.
    """

    name: ClassVar[str]
    pattern: ClassVar[re.Pattern[str]]  # the names of the files a run of this format writes
    grouped: ClassVar[bool] = False

    def file_name(self, header: Any, index: int, label: int | None = None) -> str:
        """The name of the file that holds image ``index`` (of class ``label``) of the run of ``header``, relative
        to the run folder. Only a format whose ``labelled_paths`` is set needs the label."""
        raise NotImplementedError

    labelled_paths: ClassVar[bool] = False  # file names depend on the label (imagefolder's class folders)

    def classes(self, gen: Any) -> tuple[str, ...] | None:
        """The class names this format writes into its files, recorded in the run header (None: the format
        writes none, and headers of its runs stay as they were). Refuses a model the format cannot write."""
        return None

    def extra_files(self, folder: Path) -> list[Path]:
        """Files in ``folder`` this format writes beyond those its ``pattern`` names at the top level (class
        folders' images, a dataset card), so that --overwrite removes them and a new run refuses them."""
        return []

    def write(self, folder: Path, header: Any, images: np.ndarray, indices: np.ndarray,
              labels: np.ndarray | None) -> list[Entry]:
        """Write images (B, H, W, C) uint8 with their indices (B,) and labels (B,) or None, each file
        atomically; return their entries in index order. A grouped format gets exactly one file's images."""
        raise NotImplementedError

    def read_image(self, folder: Path, entry: dict, shape: tuple[int, int, int], header: Any, cache: dict) -> np.ndarray | str:
        """Image ``entry["index"]`` as stored, (H, W, C) uint8, or a reason why it cannot be read
        ("missing", "unreadable: ..."). ``cache`` lives for one replay (e.g. shards already read)."""
        raise NotImplementedError

    def images_per_file(self, header: Any) -> int:
        return header.shard_size if self.grouped else 1


class ShardFormat(OutputFormat):
    """A grouped format: files ``shard-000000.<suffix>`` of ``header.shard_size`` images each, counted from the
    run's start. A subclass says how a shard's bytes are made (``encode``), read (``decode``, once per replay)
    and how one image is found in what was read (``image_of``)."""

    grouped = True
    suffix: ClassVar[str]

    def file_name(self, header: Any, index: int, label: int | None = None) -> str:
        return f"shard-{(index - header.start) // header.shard_size:06d}.{self.suffix}"

    def encode(self, header: Any, images: np.ndarray, indices: np.ndarray, labels: np.ndarray | None) -> bytes:
        raise NotImplementedError

    def decode(self, file: Path, header: Any, shape: tuple[int, int, int]) -> Any:
        """A shard's contents as ``image_of`` reads them; a ``GanrtError`` for a file that is not one."""
        raise NotImplementedError

    def image_of(self, contents: Any, entry: dict, shape: tuple[int, int, int], header: Any, file: Path) -> np.ndarray | str:
        raise NotImplementedError

    def write(self, folder: Path, header: Any, images: np.ndarray, indices: np.ndarray,
              labels: np.ndarray | None) -> list[Entry]:
        data = self.encode(header, images, indices, labels)
        name = self.file_name(header, int(indices[0]))
        atomic_write(folder / name, data)
        digest = sha256_hex(data)
        return [Entry(int(i), None if labels is None else int(labels[k]), name, digest, sha256_hex(images[k]))
                for k, i in enumerate(indices.tolist())]

    def read_image(self, folder: Path, entry: dict, shape: tuple[int, int, int], header: Any, cache: dict) -> np.ndarray | str:
        file = folder / entry["file"]
        if not file.is_file():
            return "missing"
        if entry["file"] not in cache:  # a shard is read once per replay
            try:
                cache[entry["file"]] = self.decode(file, header, shape)
            except GanrtError as exc:
                cache[entry["file"]] = str(exc)
        contents = cache[entry["file"]]
        if isinstance(contents, str):
            return f"unreadable: {contents}"
        return self.image_of(contents, entry, shape, header, file)


def model_classes(gen: Any) -> tuple[str, ...] | None:
    """A generator's class names (its own, else "0".."K-1"); None for an unconditional model."""
    if not gen.num_classes:
        return None
    return tuple(gen.class_names) or tuple(str(k) for k in range(gen.num_classes))
