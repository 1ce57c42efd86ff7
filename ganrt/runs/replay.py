"""Regenerate a run's images from its manifest; compare them, bit for bit, with the manifest and the files.

Bit-exactness is promised on the same kind of device (same provider and precision, see README,
"Determinism"); the report says where the run was made and where it was replayed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganrt.core.errors import GanrtError, ManifestError
from ganrt.core.session import device_of
from ganrt.io.png import read_png
from ganrt.runs.format import sha256_hex
from ganrt.runs.formats import get_format
from ganrt.runs.manifest import JOURNAL, MANIFEST, read_manifest


@dataclass(frozen=True)
class ReplayedImage:
    index: int
    file: str
    reproduced: bool  # the regenerated pixels hash to the manifest's image_sha256
    on_disk: str  # "match", "differs", "missing", or "unreadable: why"

    @property
    def ok(self) -> bool:
        return self.reproduced and self.on_disk == "match"


@dataclass(frozen=True)
class ReplayReport:
    manifest: Path
    model: str
    model_sha256: str
    recorded_provider: str
    provider: str
    images: tuple[ReplayedImage, ...]

    @property
    def ok(self) -> bool:
        return all(im.ok for im in self.images)


def manifest_path(path: str | os.PathLike) -> Path:
    """A manifest file, or a run folder -> its ``manifest.jsonl`` (or the journal of an interrupted run)."""
    path = Path(path)
    if path.is_dir():
        for name in (MANIFEST, JOURNAL):
            if (path / name).is_file():
                return path / name
        raise ManifestError(f"{path} holds no {MANIFEST} (nor {JOURNAL}): not a ganrt run folder")
    return path


def replay(
    manifest: str | os.PathLike,
    *,
    indices: Sequence[int] | None = None,
    model: str | os.PathLike | None = None,
    device: str | None = None,
    threads: int | None = None,
    batch_size: int = 64,
) -> ReplayReport:
    """Regenerate images ``indices`` (default: all) of the run a manifest describes, and compare.

    ``model`` defaults to the one the manifest names (a bundled name or the file's path); it must
    have the recorded sha256. ``device`` defaults to the kind the run was made on.
    """
    path = manifest_path(manifest)
    if path.suffix.lower() == ".png":
        return _replay_png(path, model=model, device=device, threads=threads)
    m = read_manifest(path, repair=True)  # an interrupted run's journal: its complete lines
    header = m.header
    if indices is None:
        entries = list(m.entries)
    else:
        by_index = {e["index"]: e for e in m.entries}
        missing = [i for i in indices if i not in by_index]
        if missing:
            have = f"{m.entries[0]['index']}..{m.entries[-1]['index']}" if m.entries else "none"
            raise ManifestError(f"image {missing[0]} is not in {path} (it records images {have})")
        entries = [by_index[i] for i in indices]
    gen = _load_recorded(model if model is not None else header.model, header.model_sha256, header.provider, device, threads)
    up = _load_recorded(header.upscaler, header.upscaler_sha256, header.provider, device, threads,
                        kind="upscaler") if header.upscaler else None
    folder = path.parent
    fmt = get_format(header.format)
    cache: dict = {}  # what the format keeps between images of one replay (shards already read)
    out: list[ReplayedImage] = []
    for off in range(0, len(entries), batch_size):
        chunk = entries[off : off + batch_size]
        idx = np.array([e["index"] for e in chunk], dtype=np.int64)
        labels = None if chunk[0]["label"] is None else np.array([e["label"] for e in chunk], dtype=np.int64)
        images = gen.images_at(idx, seed=header.seed, labels=labels, truncation=header.truncation)
        if up is not None:
            images = up.upscale_many(images)
        for e, image in zip(chunk, images):
            reproduced = sha256_hex(image) == e["image_sha256"]
            out.append(ReplayedImage(e["index"], e["file"], reproduced, _compare_on_disk(fmt, folder, e, image, header, cache)))
    return ReplayReport(path, gen.source, header.model_sha256, header.provider, gen.provider, tuple(out))


def _load_recorded(model: str | os.PathLike, sha256: str, provider: str, device: str | None, threads: int | None,
                   *, kind: str = "generator"):
    """The model a run was made with (checked by sha256), on the kind of device it was made on by default."""
    from ganrt.kinds.registry import load

    device = device or device_of(provider)
    gen = load(model, device=device, threads=threads, kind=kind)
    if gen.sha256 != sha256:
        raise ManifestError(f"{gen.source} has sha256 {gen.sha256[:16]}..., the image(s) were made with {sha256[:16]}...; "
                            "pass --model with that model file")
    return gen


def _replay_png(path: Path, *, model, device, threads) -> ReplayReport:
    """One PNG alone, from its own text chunks (model name and sha256, seed, index, label, truncation)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            text = dict(getattr(im, "text", {}))
    except Exception as exc:  # Pillow's many error types for a file that is not an image
        raise ManifestError(f"{path}: not a readable PNG ({type(exc).__name__})") from None
    try:
        seed, index = int(text["seed"]), int(text["index"])
        label = int(text["label"]) if text.get("label") else None
        truncation = float(text["truncation"]) if text.get("truncation") else None
        sha256, provider, name = text["model_sha256"], text.get("provider", ""), text["model"]
    except (KeyError, ValueError) as exc:
        raise ManifestError(f"{path}: its text chunks do not record a ganrt image ({type(exc).__name__}: {exc})") from None
    gen = _load_recorded(model if model is not None else name, sha256, provider, device, threads)
    image = gen.images_at([index], seed=seed, labels=None if label is None else [label], truncation=truncation)[0]
    if text.get("upscaler"):
        up = _load_recorded(text["upscaler"], text.get("upscaler_sha256", ""), provider, device, threads, kind="upscaler")
        image = up.upscale(image)
    try:
        on_disk = "match" if np.array_equal(read_png(path, shape=image.shape)[0], image) else "differs"
    except GanrtError as exc:
        on_disk = f"unreadable: {exc}"
    return ReplayReport(path, gen.source, sha256, provider, gen.provider,
                        (ReplayedImage(index, path.name, on_disk == "match", on_disk),))


def _compare_on_disk(fmt, folder: Path, entry: dict, image: np.ndarray, header, cache: dict) -> str:
    on_disk = fmt.read_image(folder, entry, image.shape, header, cache)
    if isinstance(on_disk, str):  # "missing" or "unreadable: why"
        return on_disk
    return "match" if np.array_equal(on_disk, image) else "differs"
