"""Regenerate a run's images from its manifest; compare them, bit for bit, with the manifest and the files.

Bit-exactness is promised on the same kind of device (same provider and precision, see README,
"Determinism"); the report says where the run was made and where it was replayed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganrt.core.errors import GanrtError, ManifestError
from ganrt.core.session import device_of
from ganrt.io.png import read_png
from ganrt.runs.format import sha256_hex
from ganrt.runs.formats import get_format, is_image_file
from ganrt.runs.manifest import JOURNAL, MANIFEST, Manifest, read_manifest


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
    problems: tuple[str, ...] = ()  # what is wrong with the run beyond its images (see ``verify_run``)

    @property
    def ok(self) -> bool:
        return not self.problems and all(im.ok for im in self.images)


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
    upscaler: str | os.PathLike | None = None,
    device: str | None = None,
    threads: int | None = None,
    batch_size: int = 64,
    source: str | os.PathLike | None = None,
) -> ReplayReport:
    """Regenerate images ``indices`` (default: all) of the run a manifest describes, and compare.

    ``model`` defaults to the one the manifest names (a bundled name or the file's path); it must
    have the recorded sha256 (``upscaler`` likewise, for a run made with ``--upscale``). A lone PNG
    (``manifest`` ending in .png) names a bundled model or none: its text is never a path to open; a PNG made by
    ``ganrt translate`` needs ``source``, the image it was translated from (its sha256 is checked).
    ``device`` defaults to the kind the run was made on.
    """
    path = manifest_path(manifest)
    if path.suffix.lower() == ".png":
        return _replay_png(path, model=model, upscaler=upscaler, device=device, threads=threads, source=source)
    m = read_manifest(path, repair=True)  # what parses is replayed; the rest is among the problems
    header = m.header
    problems = verify_run(m)
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
    up = _load_recorded(upscaler or header.upscaler, header.upscaler_sha256, header.provider, device, threads,
                        kind="upscaler") if header.upscaler else None
    folder = path.parent
    fmt = get_format(header.format)
    cache: dict = {}  # what the format keeps between images of one replay (shards already read)
    out: list[ReplayedImage] = []
    for off in range(0, len(entries), batch_size):
        chunk = entries[off : off + batch_size]
        idx = np.array([e["index"] for e in chunk], dtype=np.int64)
        labels = _labels(chunk, path)
        images = gen.images_at(idx, seed=header.seed, labels=labels, truncation=header.truncation)
        if up is not None:
            images = up.upscale_many(images)
        for e, image in zip(chunk, images):
            reproduced = sha256_hex(image) == e["image_sha256"]
            unsafe = run_file_problem(folder, e["file"])  # never opened then
            on_disk = f"unreadable: {unsafe}" if unsafe else _compare_on_disk(fmt, folder, e, image, header, cache)
            out.append(ReplayedImage(e["index"], e["file"], reproduced, on_disk))
    return ReplayReport(path, gen.source, header.model_sha256, header.provider, gen.provider, tuple(out), tuple(problems))


MAX_PROBLEMS = 5  # entries named one by one in a report; the rest are counted


def verify_run(m: Manifest) -> list[str]:
    """What is wrong with the run of manifest ``m`` beyond its images' pixels (each a one-line reason; none: sound).

    Replay is a verification, so everything is checked: every line parses (``m.problem``), the
    manifest is complete (not a journal) and lists exactly images start .. start+n-1 in order, each in
    the file the run's format names for it; those files lie inside the run folder as regular files
    (never a symbolic link, never ``..`` or an absolute path: they are not opened otherwise); and no
    image file in the folder goes unlisted.
    """
    header, folder, problems = m.header, m.path.parent, []
    if m.problem:
        problems.append(f"{m.path}: {m.problem}: the manifest is damaged")
    if m.path.name == JOURNAL:
        problems.append(f"{m.path}: an interrupted run ({len(m.entries)} of {header.n} images recorded): the generate "
                        "command with --resume completes it")
    elif len(m.entries) != header.n:
        problems.append(f"{m.path}: {len(m.entries)} images listed, its header says {header.n}")
    wrong = []
    for k, e in enumerate(m.entries):
        try:
            expected = header.file_name(header.start + k, e["label"])
        except GanrtError as exc:
            expected = f"? ({exc})"
        if e["index"] != header.start + k or e["file"] != expected:
            wrong.append(f"line {k + 2}: image {e['index']} in {str(e['file'])[:80]!r}, expected image "
                         f"{header.start + k} in {expected!r}")
        elif (why := run_file_problem(folder, e["file"])) is not None:
            wrong.append(f"line {k + 2}: {why}")
    problems += wrong[:MAX_PROBLEMS] + ([f"... and {len(wrong) - MAX_PROBLEMS} more such entries"]
                                        if len(wrong) > MAX_PROBLEMS else [])
    from ganrt.runs.writer import run_files

    listed = {e["file"] for e in m.entries}
    unlisted = [name for name in (p.relative_to(folder).as_posix() for p in run_files(folder))
                if is_image_file(name) and name not in listed]
    if unlisted:
        problems.append(f"{folder}: {len(unlisted)} image file(s) the manifest does not list (e.g. {unlisted[0]})")
    return problems


def run_file_problem(folder: Path, name: str) -> str | None:
    """Why ``name`` (from a manifest) is not a file of the run folder that may be opened; None if it is (or is
    missing: the image's own report says so). Relative, no ``..``, no symbolic link anywhere below the folder."""
    parts = name.split("/")  # as written: "./a" and "a//b" are not names ganrt writes either
    if name.startswith("/") or "\\" in name or any(p in ("..", ".", "") for p in parts):
        return f"{name[:80]!r} is not a path inside the run folder"
    path = folder
    for part in parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return f"{path} is a symbolic link; a run's files must be regular files in its folder"
    return None if stat.S_ISREG(mode) else f"{path} is not a regular file"


def _labels(entries: Sequence[dict], path: Path) -> np.ndarray | None:
    """The recorded labels of some entries (B,) int64, or None for an unconditional run; a mix is a damaged manifest."""
    nulls = [e["label"] is None for e in entries]
    if all(nulls):
        return None
    if any(nulls):
        e = entries[nulls.index(True)]
        raise ManifestError(f"{path}: image {e['index']} has no label but other images of the run have one; "
                            "the manifest is damaged")
    return np.array([e["label"] for e in entries], dtype=np.int64)


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


def _png_model(path: Path, given, named: str, sha256: str, option: str):
    """The model to replay a lone PNG with: ``given`` (``--model``/``--upscaler``), or the bundled model its text
    chunks name. A name from a PNG is never opened as a path (anyone can write one into a PNG)."""
    from ganrt.core.bundled import available_models

    if given is not None:
        return given
    if named in available_models():
        return named
    raise ManifestError(f"{path}: its text chunks name {str(named)[:80]!r}, which is not a bundled model, and a path "
                        f"read from a PNG is never opened: pass {option} with the model file (sha256 {sha256[:16]}...)")


def translation_text(translator, source_sha256: str, image_sha256: str, *, tile: int | None,
                     overlap: int | None) -> dict[str, str]:
    """The text chunks ``ganrt translate`` writes into each PNG: what ``replay`` needs to translate the source
    again (the translator's name and sha256, the source file's sha256, the tile settings) and the pixels' sha256."""
    return {"translator": translator.name, "translator_sha256": translator.sha256, "source_sha256": source_sha256,
            "tile": "" if tile is None else str(tile), "overlap": "" if overlap is None else str(overlap),
            "provider": translator.provider, "image_sha256": image_sha256}


def _replay_translation(path: Path, text: dict[str, str], *, model, source, device, threads) -> ReplayReport:
    """A PNG ``ganrt translate`` wrote: its source (given, never a path from the PNG; its sha256 must match)
    translated again with the recorded translator and tiles, compared with the recorded hash and the file."""
    import hashlib
    import io

    from ganrt.io.images import read_image

    try:
        name, sha256, want = text["translator"], text["translator_sha256"], text["source_sha256"]
        tile = int(text["tile"]) if text.get("tile") else None
        overlap = int(text["overlap"]) if text.get("overlap") else None
        image_sha256, provider = text["image_sha256"], text.get("provider", "")
    except (KeyError, ValueError) as exc:
        raise ManifestError(f"{path}: its text chunks do not record a ganrt translation ({type(exc).__name__}: {exc})") from None
    if source is None:
        raise ManifestError(f"{path} is a translation: pass --source with the image it was made from "
                            f"(sha256 {want[:16]}...); a path read from a PNG is never opened")
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read --source {source}: {exc.strerror or exc}") from None
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise ManifestError(f"--source {source} has sha256 {got[:16]}..., {path} was translated from {want[:16]}...: "
                            "not its source")
    tr = _load_recorded(_png_model(path, model, name, sha256, "--model"), sha256, provider, device, threads, kind="translator")
    # the bytes just hashed, decoded: the file is read once, and what is translated is what was checked
    again = np.asarray(tr.translate(read_image(io.BytesIO(data), name=str(source)), tile=tile, overlap=overlap))
    reproduced = sha256_hex(again) == image_sha256
    try:
        from PIL import Image

        with Image.open(path) as im:
            on_disk = "match" if np.array_equal(np.asarray(im), again) else "differs"
    except Exception as exc:  # Pillow's many error types for a damaged file
        on_disk = f"unreadable: {type(exc).__name__}"
    return ReplayReport(path, tr.source, sha256, provider, tr.provider, (ReplayedImage(0, path.name, reproduced, on_disk),))


def _replay_png(path: Path, *, model, upscaler, device, threads, source=None) -> ReplayReport:
    """One PNG alone, from its own text chunks (model name and sha256, seed, index, label, truncation; or, for a
    translation, the translator and the source's sha256: ``_replay_translation``)."""
    from PIL import Image

    try:
        with Image.open(path) as im:  # the text chunks before the pixels (ganrt writes them there): nothing decoded
            text = {k: v for k, v in im.info.items() if isinstance(k, str) and isinstance(v, str)}
    except Exception as exc:  # Pillow's many error types for a file that is not an image
        raise ManifestError(f"{path}: not a readable PNG ({type(exc).__name__})") from None
    if "translator" in text:
        return _replay_translation(path, text, model=model, source=source, device=device, threads=threads)
    try:
        seed, index = int(text["seed"]), int(text["index"])
        label = int(text["label"]) if text.get("label") else None
        truncation = float(text["truncation"]) if text.get("truncation") else None
        sha256, provider, name = text["model_sha256"], text.get("provider", ""), text["model"]
    except (KeyError, ValueError) as exc:
        raise ManifestError(f"{path}: its text chunks do not record a ganrt image ({type(exc).__name__}: {exc})") from None
    gen = _load_recorded(_png_model(path, model, name, sha256, "--model"), sha256, provider, device, threads)
    image = gen.images_at([index], seed=seed, labels=None if label is None else [label], truncation=truncation)[0]
    if text.get("upscaler"):
        up_sha256 = text.get("upscaler_sha256", "")
        up = _load_recorded(_png_model(path, upscaler, text["upscaler"], up_sha256, "--upscaler"), up_sha256, provider,
                            device, threads, kind="upscaler")
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
