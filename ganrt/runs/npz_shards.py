"""``--format npz``: ``shard-000001.npz``, ``shard_size`` images each (images, indices, labels, provenance),
uncompressed and with fixed zip timestamps, so the bytes depend only on the images."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.core.errors import GanrtError
from ganrt.io.files import atomic_write
from ganrt.io.npz import encode_npz, read_npz
from ganrt.runs.format import Entry, OutputFormat, sha256_hex


class NpzShards(OutputFormat):
    name = "npz"
    pattern = re.compile(r"^shard-\d{6,}\.npz$")
    grouped = True

    def file_name(self, header: Any, index: int) -> str:
        return f"shard-{(index - header.start) // header.shard_size:06d}.npz"

    def write(self, folder: Path, header: Any, images: np.ndarray, indices: np.ndarray,
              labels: np.ndarray | None) -> list[Entry]:
        arrays = {"images": images, "indices": indices}
        if labels is not None:
            arrays["labels"] = labels
        arrays["provenance"] = np.array(header.line().decode().strip())
        data = encode_npz(**arrays)
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
                cache[entry["file"]] = read_npz(file, max_bytes=(header.shard_size or 1) * int(np.prod(shape)) + (1 << 20))
            except GanrtError as exc:
                cache[entry["file"]] = str(exc)
        data = cache[entry["file"]]
        if isinstance(data, str):
            return f"unreadable: {data}"
        try:
            rows = np.flatnonzero(np.asarray(data["indices"]).reshape(-1) == entry["index"])
            if rows.size == 0:
                return "missing"
            return data["images"][rows[0]]
        except (KeyError, IndexError, ValueError) as exc:
            return f"unreadable: {file}: not a ganrt shard ({type(exc).__name__})"


NPZ_SHARDS = NpzShards()
