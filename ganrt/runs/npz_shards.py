"""``--format npz``: ``shard-000001.npz``, ``shard_size`` images each (images, indices, labels, provenance),
uncompressed and with fixed zip timestamps, so the bytes depend only on the images."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.io.npz import encode_npz, read_npz
from ganrt.runs.format import ShardFormat


class NpzShards(ShardFormat):
    name = "npz"
    pattern = re.compile(r"^shard-\d{6,}\.npz$")
    suffix = "npz"

    def encode(self, header: Any, images: np.ndarray, indices: np.ndarray, labels: np.ndarray | None) -> bytes:
        arrays = {"images": images, "indices": indices}
        if labels is not None:
            arrays["labels"] = labels
        arrays["provenance"] = np.array(header.line().decode().strip())
        return encode_npz(**arrays)

    def decode(self, file: Path, header: Any, shape: tuple[int, int, int]) -> Any:
        return read_npz(file, max_bytes=(header.shard_size or 1) * int(np.prod(shape)) + (1 << 20))

    def image_of(self, contents: Any, entry: dict, shape: tuple[int, int, int], header: Any, file: Path) -> np.ndarray | str:
        try:
            rows = np.flatnonzero(np.asarray(contents["indices"]).reshape(-1) == entry["index"])
            if rows.size == 0:
                return "missing"
            return contents["images"][rows[0]]
        except (KeyError, IndexError, ValueError) as exc:
            return f"unreadable: {file}: not a ganrt shard ({type(exc).__name__})"


NPZ_SHARDS = NpzShards()
