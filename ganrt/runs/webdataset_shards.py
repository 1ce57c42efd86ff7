"""``--format webdataset``: tar shards ``shard-000000.tar`` of ``shard_size`` images, in the WebDataset
convention: per image ``<key>.cls`` (the class index, ASCII; only for class-conditional models),
``<key>.json`` (its provenance: index, label, class, seed, model and sha256, truncation) and
``<key>.png`` (no text chunks: the json says it), the key being the image's index as ``--format png``
names it. Deterministic archives (``io.tar``): the bytes depend only on the images and the run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.core.errors import GanrtError
from ganrt.io.png import encode_pngs, read_png
from ganrt.io.tar import encode_tar, read_tar
from ganrt.runs.format import ShardFormat, model_classes
from ganrt.runs.png_files import PNG_FILES

_MEMBER_OVERHEAD = 3 * 1024  # per image: three 512-byte headers, each member padded to 512 bytes


def sample_key(header: Any, index: int) -> str:
    """The WebDataset key of image ``index``: its number at the width every key of the run has (they sort)."""
    return PNG_FILES.file_name(header, index)[: -len(".png")]


def sample_record(header: Any, index: int, label: int | None) -> dict[str, Any]:
    """One image's provenance (its ``.json``): enough to regenerate it without the manifest."""
    classes = getattr(header, "classes", None)
    record = {"index": index, "label": label, "seed": header.seed, "model": header.model_name,
              "model_sha256": header.model_sha256, "truncation": header.truncation, "ganrt": header.ganrt,
              "provider": header.provider, "precision": header.precision}
    if label is not None and classes:
        record["class"] = classes[label]
    if header.upscaler:
        record |= {"upscaler": header.upscaler, "upscaler_sha256": header.upscaler_sha256}
    return record


class WebDatasetShards(ShardFormat):
    name = "webdataset"
    pattern = re.compile(r"^shard-\d{6,}\.tar$")
    suffix = "tar"

    def classes(self, gen: Any) -> tuple[str, ...] | None:
        return model_classes(gen)

    def encode(self, header: Any, images: np.ndarray, indices: np.ndarray, labels: np.ndarray | None) -> bytes:
        members = []
        for k, (i, png) in enumerate(zip(indices.tolist(), encode_pngs(images))):
            label = None if labels is None else int(labels[k])
            key = sample_key(header, i)
            if label is not None:
                members.append((f"{key}.cls", str(label).encode()))
            record = json.dumps(sample_record(header, i, label), sort_keys=True, ensure_ascii=False)
            members += [(f"{key}.json", record.encode()), (f"{key}.png", png)]
        return encode_tar(members)  # keys ascend with the index and have one width: members are in name order

    def decode(self, file: Path, header: Any, shape: tuple[int, int, int]) -> Any:
        bound = (header.shard_size or 1) * (2 * int(np.prod(shape)) + _MEMBER_OVERHEAD + 2048) + (1 << 20)
        return read_tar(file, max_bytes=bound)

    def image_of(self, contents: Any, entry: dict, shape: tuple[int, int, int], header: Any, file: Path) -> np.ndarray | str:
        name = f"{sample_key(header, entry['index'])}.png"
        if name not in contents:
            return "missing"
        try:
            return read_png(contents[name], shape=shape, name=f"{file}: {name}")[0]
        except GanrtError as exc:
            return f"unreadable: {exc}"


WEBDATASET_SHARDS = WebDatasetShards()
