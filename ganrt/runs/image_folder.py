"""``--layout imagefolder`` (format ``imagefolder``): ``OUT/<class name>/000123.png``, the layout
``torchvision.datasets.ImageFolder`` and the Hugging Face ``imagefolder`` builder read. Each PNG is
the one ``--format png`` writes (provenance in its text chunks); only the folder differs.

Class names become folder names safely: anything but letters, digits and `` -_.+,()`` becomes
``_``, leading dots and spaces go (no hidden folders, no ``..``), an empty result is ``class_K``, and
names that would collide (also without regard to case) get ``-K``: every class has its own folder,
inside OUT. Those readers number classes by the folders' sorted names, not by the model's indices:
map through the names (``dataset.classes``), as the tests do.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.core.errors import LabelError, OutputError, ParameterError
from ganrt.io.files import TMP_FILE, atomic_write
from ganrt.io.png import encode_pngs
from ganrt.runs.format import Entry, OutputFormat, model_classes, sha256_hex
from ganrt.runs.png_files import PNG_FILES

_MAX_NAME = 100  # characters of a class folder's name: far within any file system's limit
_UNSAFE = re.compile(r"[^\w \-.+,()]")


@functools.lru_cache(maxsize=64)
def class_folders(classes: tuple[str, ...]) -> tuple[str, ...]:
    """The folder name of each class: safe, distinct (also case-insensitively), in OUT."""
    names = []
    for k, raw in enumerate(classes):
        name = _UNSAFE.sub("_", unicodedata.normalize("NFC", raw))[:_MAX_NAME].strip(" .")
        names.append(name or f"class_{k}")
    seen: dict[str, int] = {}
    for name in names:
        seen[name.lower()] = seen.get(name.lower(), 0) + 1
    return tuple(f"{name}-{k}" if seen[name.lower()] > 1 else name for k, name in enumerate(names))


class ImageFolder(OutputFormat):
    name = "imagefolder"
    # a class folder (no path in it, not hidden) and a PNG name: the only names this format writes
    pattern = re.compile(rf"^(?![. ])[^/\\]{{1,{_MAX_NAME + 8}}}/\d{{6,}}\.png$")
    labelled_paths = True

    def file_name(self, header: Any, index: int, label: int | None = None) -> str:
        folders = class_folders(tuple(header.classes or ()))
        if label is None or not 0 <= label < len(folders):
            raise LabelError(f"image {index}: label {label!r} has no class folder ({len(folders)} classes)")
        return f"{folders[label]}/{PNG_FILES.file_name(header, index)}"

    def classes(self, gen: Any) -> tuple[str, ...] | None:
        classes = model_classes(gen)
        if classes is None:
            raise ParameterError(f"--layout imagefolder puts each class in its folder; {gen.name} is unconditional "
                                 "(no classes): write it flat (--format png) or as webdataset/parquet without labels")
        return classes

    def extra_files(self, folder: Path) -> list[Path]:
        """The PNGs (and temporary files) in the run's class folders."""
        found = []
        for sub in folder.iterdir() if folder.is_dir() else ():
            if sub.name.startswith(".") or sub.is_symlink() or not sub.is_dir():
                continue
            found += [p for p in sub.iterdir() if PNG_FILES.pattern.match(p.name) or TMP_FILE.match(p.name)]
        return found

    def write(self, folder: Path, header: Any, images: np.ndarray, indices: np.ndarray,
              labels: np.ndarray | None) -> list[Entry]:
        indices, labels = indices.tolist(), labels.tolist()
        files = encode_pngs(images, texts=[header.png_text(i, y) for i, y in zip(indices, labels)])  # as --format png
        entries, made = [], set()
        for i, label, data, image in zip(indices, labels, files, images):
            name = self.file_name(header, i, label)
            sub = name.rpartition("/")[0]
            if sub not in made:
                path = os.path.join(folder, sub)
                if os.path.islink(path):  # it would put the run's files outside OUT
                    raise OutputError(f"{path} is a symbolic link; a run's class folders must be folders inside its --out")
                os.makedirs(path, exist_ok=True)
                made.add(sub)
            atomic_write(os.path.join(folder, name), data)
            entries.append(Entry(i, label, name, sha256_hex(data), sha256_hex(image)))
        return entries

    def read_image(self, folder: Path, entry: dict, shape: tuple[int, int, int], header: Any, cache: dict) -> np.ndarray | str:
        return PNG_FILES.read_image(folder, entry, shape, header, cache)  # the same PNG, in its class folder


IMAGE_FOLDER = ImageFolder()
