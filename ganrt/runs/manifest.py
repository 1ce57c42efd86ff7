"""Provenance of a run: ``manifest.jsonl`` beside the images, the journal it grows from, and its checks.

Line 1 is the run header (``RunHeader``: model sha256, seed, n, start, labels, truncation, format,
shard size, ganrt version, provider, precision); every other line is one image, in index order:
``{"index", "label", "file", "file_sha256", "image_sha256"}`` (``image_sha256``: the (H, W, C) uint8
pixels; ``file_sha256``: the PNG, or the npz shard holding the image). Nothing in it depends on the
time or the batch size, so a resumed run ends with the same bytes as one that never stopped.

While a run is going, the lines go to the journal ``manifest.jsonl.part``: a line is appended only
after its image's file has been renamed into place, so every line names a complete file. A kill can
cut the journal's last line short; ``read_manifest(..., repair=True)`` stops before it, and resume
cuts it off. When the run completes, the journal is renamed to ``manifest.jsonl`` (atomic): a
folder holding ``manifest.jsonl`` holds a complete run.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ganrt.core.errors import ManifestError, OutputError
from ganrt.core.latent import INDEX_LIMIT, MAX_SEED, MIN_SEED
from ganrt.core.schema import MAX_CLASSES
from ganrt.io.files import atomic_write
from ganrt.runs.format import Entry
from ganrt.runs.formats import FORMATS, is_image_file

MANIFEST = "manifest.jsonl"
JOURNAL = "manifest.jsonl.part"
MANIFEST_VERSION = 1
MAX_LINE = 1 << 20  # a longer line is not one ganrt wrote
# header fields that may differ between a run and its resumption: where the model was found
_LOCATION_FIELDS = ("model",)


def _int(v: Any, minimum: int | None = None) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and (minimum is None or v >= minimum)


def _label_dict(v: Any) -> bool:
    """A header's per-image labels: their sha256, or a cycle of classes (``--labels 0,3``) and its phase."""
    if not isinstance(v, dict):
        return False
    if set(v) == {"per_image_sha256"}:
        return isinstance(v["per_image_sha256"], str)
    cycle = v.get("cycle")
    return (set(v) == {"cycle", "phase"} and isinstance(cycle, list) and 0 < len(cycle) <= MAX_CLASSES
            and all(_int(c, 0) and c < MAX_CLASSES for c in cycle) and _int(v["phase"], 0) and v["phase"] < len(cycle))


_HEADER_TYPES = {
    "model": lambda v: isinstance(v, str) and v != "",
    "model_name": lambda v: isinstance(v, str),
    "model_sha256": lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None,
    "seed": lambda v: _int(v) and MIN_SEED <= v <= MAX_SEED,
    "n": lambda v: _int(v, 1) and v <= INDEX_LIMIT,
    "start": lambda v: _int(v, 0) and v < INDEX_LIMIT,
    "labels": lambda v: v is None or (_int(v, 0) and v < MAX_CLASSES) or _label_dict(v),
    "truncation": lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf")),
    "format": lambda v: v in FORMATS,
    "shard_size": lambda v: v is None or _int(v, 1),
    "ganrt": lambda v: isinstance(v, str),
    "provider": lambda v: isinstance(v, str),
    "precision": lambda v: isinstance(v, str),
    "upscaler": lambda v: v is None or (isinstance(v, str) and v != ""),
    "upscaler_sha256": lambda v: v is None or (isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None),
    "classes": lambda v: v is None or (isinstance(v, list) and len(v) > 0 and all(isinstance(c, str) for c in v)),
}
# fields written only when set (a format's own, e.g. classes): the headers of runs without them stay byte for byte
_OPTIONAL_FIELDS = ("classes",)


@dataclass(frozen=True)
class RunHeader:
    """What makes a run's images: everything ``--resume`` must find unchanged, and ``replay`` needs."""

    model: str  # a bundled model's name, or the model file's absolute path (where replay looks first)
    model_name: str
    model_sha256: str
    seed: int
    n: int
    start: int
    labels: Any  # None: image i gets class i % K; an int: one class for all; {"per_image_sha256": hex}
    truncation: float | None
    format: str
    shard_size: int | None  # npz only
    ganrt: str
    provider: str
    precision: str
    upscaler: str | None = None  # generate --upscale: the upscaler applied to every image (name or path)
    upscaler_sha256: str | None = None
    manifest_version: int = MANIFEST_VERSION
    classes: tuple[str, ...] | None = None  # the class names a format writes into its files (webdataset, parquet, imagefolder)

    def line(self) -> bytes:
        fields_ = {k: v for k, v in asdict(self).items() if not (k in _OPTIONAL_FIELDS and v is None)}
        return (json.dumps({"run": fields_}, sort_keys=True) + "\n").encode()

    @classmethod
    def from_dict(cls, raw: Any, *, source: str) -> RunHeader:
        """A header from line 1's JSON, every field's type checked (a manifest may come from anywhere)."""
        names = {f.name for f in fields(cls)}
        if isinstance(raw, dict):
            raw = {k: None for k in _OPTIONAL_FIELDS} | raw
        if not isinstance(raw, dict) or not names <= set(raw):
            missing = sorted(names - set(raw)) if isinstance(raw, dict) else ["run"]
            raise ManifestError(f"{source}: the run header (line 1) lacks {', '.join(missing)}; not a ganrt manifest")
        if raw["manifest_version"] != MANIFEST_VERSION:
            raise ManifestError(f"{source}: manifest version {raw['manifest_version']!r}; this ganrt reads {MANIFEST_VERSION}")
        for key, ok in _HEADER_TYPES.items():
            if not ok(raw[key]):
                raise ManifestError(f"{source}: run header field {key} = {str(raw[key])[:40]!r} is not valid")
        if raw["start"] + raw["n"] > INDEX_LIMIT:
            raise ManifestError(f"{source}: run header start {raw['start']} + n {raw['n']} passes the last image index "
                                f"{INDEX_LIMIT - 1}")
        if FORMATS[raw["format"]].grouped and raw["shard_size"] is None:
            raise ManifestError(f"{source}: run header says {raw['format']} but gives no shard_size")
        if FORMATS[raw["format"]].labelled_paths and raw["classes"] is None:
            raise ManifestError(f"{source}: run header says {raw['format']} but gives no classes")
        return cls(**{k: raw[k] for k in names} | {"classes": None if raw["classes"] is None else tuple(raw["classes"])})

    def differences(self, other: RunHeader) -> list[str]:
        """'field: this vs other' for every field that changes the images."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{k} {mine[k]!r} vs {theirs[k]!r}" for k in mine if k not in _LOCATION_FIELDS and mine[k] != theirs[k]]

    def png_text(self, index: int, label: int | None) -> dict[str, str]:
        """Provenance of one image as PNG text chunks: enough to regenerate it without the manifest."""
        return {
            "model": self.model_name, "model_sha256": self.model_sha256, "seed": str(self.seed), "index": str(index),
            "label": "" if label is None else str(label), "truncation": "" if self.truncation is None else repr(self.truncation),
            "ganrt": self.ganrt, "provider": self.provider, "precision": self.precision,
        } | ({"upscaler": self.upscaler, "upscaler_sha256": self.upscaler_sha256} if self.upscaler else {})

    def file_name(self, index: int, label: int | None = None) -> str:
        """The file holding image ``index`` (of class ``label``), as the run's format names it (``000123.png``,
        ``shard-000001.npz``, ``Coat/000123.png``)."""
        fmt = FORMATS[self.format]
        return fmt.file_name(self, index, label) if fmt.labelled_paths else fmt.file_name(self, index)


def entry_line(entry: Entry) -> bytes:
    """One image's manifest line (keys sorted: the bytes depend only on the entry)."""
    # getattr per field, not dataclasses.asdict (which deep-copies each value: ~8 % of a PNG writer's time per image)
    return (json.dumps({name: getattr(entry, name) for name in _ENTRY_FIELDS}, sort_keys=True) + "\n").encode()


_ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


@dataclass(frozen=True)
class Manifest:
    """A manifest (or journal) read back: its header, image entries in order, and where the good part ends."""

    path: Path
    header: RunHeader
    entries: tuple[dict[str, Any], ...]
    header_bytes: int  # length of line 1
    ends: tuple[int, ...]  # byte offset just after each entry's line
    problem: str = ""  # why reading stopped early (a cut or malformed line), with repair=True

    @property
    def complete(self) -> bool:
        return self.path.name == MANIFEST


def _check_entry(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    index, label, file = raw.get("index"), raw.get("label"), raw.get("file")
    if not _int(index, 0) or index >= INDEX_LIMIT:
        raise ValueError(f"index {str(index)[:30]} is not an integer in 0..{INDEX_LIMIT - 1}")
    if label is not None and (not _int(label, 0) or label >= MAX_CLASSES):
        raise ValueError(f"label {str(label)[:30]} is not null or an integer in 0..{MAX_CLASSES - 1}")
    if not isinstance(file, str) or not is_image_file(file):
        raise ValueError(f"file {file!r} is not a name ganrt writes")
    for key in ("file_sha256", "image_sha256"):
        if not isinstance(raw.get(key), str) or not re.fullmatch(r"[0-9a-f]{64}", raw[key]):
            raise ValueError(f"{key} is not a sha256")
    return raw


def read_manifest(path: str | os.PathLike, *, repair: bool = False) -> Manifest:
    """Read a manifest or journal. ``repair``: stop at a cut or malformed line instead of raising."""
    path = Path(path)
    try:
        f = os.fdopen(open_run_file(path, os.O_RDONLY), "rb")  # never through a symbolic link
    except OutputError as exc:
        raise ManifestError(str(exc).replace("cannot open", "cannot read manifest", 1)) from None
    with f:
        first = f.readline(MAX_LINE)
        try:
            header = RunHeader.from_dict(json.loads(first)["run"], source=str(path)) if first.endswith(b"\n") else None
        except ManifestError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"{path}: line 1 is not a ganrt run header ({str(exc)[:100]})") from None
        if header is None:
            raise ManifestError(f"{path}: the run header (line 1) is cut short or missing")
        entries, ends, good, problem, number = [], [], len(first), "", 1
        while line := f.readline(MAX_LINE):
            number += 1
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("cut short (no newline)")
                entries.append(_check_entry(json.loads(line)))
            except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
                problem = f"line {number} {str(exc)[:100]}"
                if not repair:
                    raise ManifestError(f"{path}: {problem}") from None
                break
            good += len(line)
            ends.append(good)
    return Manifest(path, header, tuple(entries), len(first), tuple(ends), problem)


def header_is_complete(path: Path) -> bool:
    """Whether a journal got as far as its first newline (a kill can stop it earlier: no image recorded yet)."""
    with os.fdopen(open_run_file(path, os.O_RDONLY), "rb") as f:
        return b"\n" in f.read(MAX_LINE)


def is_regular_file(path: Path) -> bool:
    """A regular file under that name itself: a symbolic link (to anything) is not one."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def open_run_file(path: Path, flags: int) -> int:
    """``os.open`` of a file in a run folder that must be a regular file there, not a symbolic link
    (``O_NOFOLLOW``: a link is never followed out of the folder); ``OutputError`` otherwise."""
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        why = "it is a symbolic link; a run's files must be regular files in its folder" if path.is_symlink() else \
            exc.strerror or str(exc)
        raise OutputError(f"cannot open {path}: {why}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OutputError(f"cannot open {path}: not a regular file")
    return fd


class Journal:
    """The run's journal, open for appending whole lines; one per run (its folder locked), used by one thread."""

    def __init__(self, folder: Path, *, header: RunHeader | None = None) -> None:
        """Open the journal in ``folder``; with ``header``, start a new one holding only the header."""
        self.path = folder / JOURNAL
        if header is not None:
            atomic_write(self.path, header.line())
        # never through a symbolic link (it would append to a file outside the folder); the folder's
        # FolderLock (runs/lock.py), not this file, keeps other runs out: this file is replaced
        self._fd = open_run_file(self.path, os.O_WRONLY | os.O_APPEND)

    def truncate(self, size: int) -> None:
        """Cut the journal after its last good line (a line cut short by a kill, or entries that failed checks)."""
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)

    def append(self, lines: Iterable[bytes]) -> None:
        """Append whole lines with one write; a full disk is an ``OutputError`` (resume repairs a cut line)."""
        data = memoryview(b"".join(lines))
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}; free space, then rerun with --resume") from None

    def finish(self) -> Path:
        """The run is complete: make the journal durable and rename it ``manifest.jsonl``."""
        final = self.path.parent / MANIFEST
        try:
            os.fsync(self._fd)
            os.replace(self.path, final)
            _fsync_folder(self.path.parent)
        except OSError as exc:
            raise OutputError(f"cannot complete {final}: {exc.strerror or exc}") from None
        finally:
            self.close()
        return final

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename itself is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
