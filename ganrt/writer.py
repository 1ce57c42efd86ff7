"""Writing a generation run to a folder: PNG files or npz shards, never mixed with an earlier run.

The output folder is checked before any image is made: a folder that already holds images is
refused unless ``overwrite`` (which first removes the earlier run's files, so runs never mix), and
a folder that cannot be written fails at once, not after an hour of sampling.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import OutputError, ParameterError
from .generator import Batch
from .images import encode_png, atomic_write, save_npz

FORMATS = ("png", "npz")
_RUN_FILE = re.compile(r"^(\d{6,}\.png|shard-\d{6,}\.npz)$")
DEFAULT_SHARD_SIZE = 10_000


def run_files(folder: Path) -> list[Path]:
    """Files of an earlier run in ``folder`` (names this writer produces)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _RUN_FILE.match(p.name))


def prepare_output(folder: str | Path, *, overwrite: bool) -> Path:
    """Create/check ``folder``; refuse one holding an earlier run unless ``overwrite``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--out {folder} is a file, not a folder")
    existing = run_files(folder)
    if existing and not overwrite:
        raise OutputError(
            f"--out {folder} already holds {len(existing)} images from an earlier run (e.g. {existing[0].name}); "
            "pass --overwrite to replace them or choose another folder"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to --out {folder}: {exc.strerror or exc}") from None
    for path in existing:
        path.unlink()
    return folder


@dataclass(frozen=True)
class RunWriter:
    """Writes streamed batches of one run; file names carry the global image index."""

    folder: Path
    fmt: str
    n_total: int  # images start .. start + n_total - 1 (sets the zero padding)
    start: int = 0
    shard_size: int = DEFAULT_SHARD_SIZE
    png_text: tuple[tuple[str, str], ...] = ()  # provenance stored in every PNG

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ParameterError(f"format must be one of {', '.join(FORMATS)}, got {self.fmt!r}")
        if self.shard_size < 1:
            raise ParameterError(f"shard size must be >= 1, got {self.shard_size}")

    @property
    def width(self) -> int:
        return max(6, len(str(self.start + self.n_total - 1)))

    def write_png(self, batch: Batch) -> None:
        for i, image in zip(batch.indices, batch.images):
            text = dict(self.png_text, index=str(int(i)))
            if batch.labels is not None:
                text["label"] = str(int(batch.labels[int(i) - batch.start]))
            atomic_write(self.folder / f"{int(i):0{self.width}d}.png", encode_png(image, text=text))

    def write_shard(self, number: int, images: np.ndarray, indices: np.ndarray, labels: np.ndarray | None) -> None:
        arrays = {"images": images, "indices": indices}  # images (B, H, W, C) uint8
        if labels is not None:
            arrays["labels"] = labels
        save_npz(self.folder / f"shard-{number:06d}.npz", **arrays)


def write_run(writer: RunWriter, batches, *, on_batch=None) -> int:
    """Consume ``batches`` into ``writer``'s folder; npz collects ``shard_size`` images per shard."""
    written = 0
    pending: list[Batch] = []
    shard = 0

    def flush() -> None:
        nonlocal shard, pending
        if pending:
            labels = None if pending[0].labels is None else np.concatenate([b.labels for b in pending])
            writer.write_shard(shard, np.concatenate([b.images for b in pending]),
                               np.concatenate([b.indices for b in pending]), labels)
            shard += 1
            pending = []

    for batch in batches:
        if writer.fmt == "png":
            writer.write_png(batch)
        else:
            # split a batch at shard boundaries so every shard holds exactly shard_size images
            off = 0
            while off < len(batch.images):
                room = writer.shard_size - sum(len(b.images) for b in pending)
                take = min(room, len(batch.images) - off)
                part = Batch(start=batch.start + off, images=batch.images[off : off + take],
                             labels=None if batch.labels is None else batch.labels[off : off + take])
                pending.append(part)
                off += take
                if sum(len(b.images) for b in pending) == writer.shard_size:
                    flush()
        written += len(batch.images)
        if on_batch is not None:
            on_batch(len(batch.images))
    flush()
    return written
