"""Writing a generation run to a folder: PNG files or npz shards with a manifest, crash-safe and resumable.

The output folder is checked before any image is made: a folder that already holds images is
refused unless ``overwrite`` (which first removes the earlier run's files, so runs never mix), and
a folder that cannot be written fails at once, not after an hour of sampling.

Every file is written under a temporary name and renamed when complete; its manifest lines are
appended to the journal only after that (see ``manifest``). ``resume`` checks that the folder's run
was made with the same settings and model (sha256), keeps the longest prefix of images whose files
still hash as recorded, and makes only the rest: image i depends only on (seed, i, label,
truncation), so the finished folder is byte-identical to a run that never stopped.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganrt._version import __version__
from ganrt.core.errors import InferenceError, ManifestError, OutputError, ParameterError
from ganrt.core.model import file_sha256
from ganrt.io.files import TMP_FILE
from ganrt.kinds.generator import Batch, Generator, LabelCycle, LabelSpec, check_count
from ganrt.runs.format import sha256_hex
from ganrt.runs.formats import extra_run_files, get_format, is_image_file
from ganrt.runs.lock import FolderLock
from ganrt.runs.manifest import (
    JOURNAL,
    MANIFEST,
    Journal,
    Manifest,
    RunHeader,
    entry_line,
    header_is_complete,
    is_regular_file,
    read_manifest,
)

DEFAULT_SHARD_SIZE = 10_000


def run_files(folder: Path) -> list[Path]:
    """Files of an earlier run in ``folder``: images, shards, manifest, journal, leftover temporary files."""
    if not folder.is_dir():
        return []
    top = [p for p in folder.iterdir() if is_image_file(p.name) or p.name in (MANIFEST, JOURNAL) or TMP_FILE.match(p.name)]
    return sorted(top + extra_run_files(folder))  # + class folders' images, a dataset card


def _writable_folder(folder: Path) -> Path:
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--out {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to --out {folder}: {exc.strerror or exc}") from None
    return folder


def prepare_output(folder: str | Path, *, overwrite: bool) -> Path:
    """Create/check ``folder``; refuse one holding an earlier run unless ``overwrite``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--out {folder} is a file, not a folder")
    existing = run_files(folder)
    if existing and not overwrite and (folder / JOURNAL) in existing:
        raise OutputError(f"--out {folder} holds an interrupted run ({JOURNAL}): the same command with --resume "
                          "continues it, --overwrite replaces it, or choose another folder")
    if existing and not overwrite:
        raise OutputError(
            f"--out {folder} already holds {len(existing)} files from an earlier run (e.g. {existing[0].name}); "
            "pass --resume to continue it, --overwrite to replace it, or choose another folder"
        )
    _writable_folder(folder)
    for path in existing:
        path.unlink()
    for sub in sorted({p.parent for p in existing} - {folder}):  # class folders the earlier run made
        with contextlib.suppress(OSError):  # one holding anything else stays
            sub.rmdir()
    return folder


WRITE_AHEAD = 2  # batches being encoded and written while the next ones are sampled (with a 1 ms GIL switch:
#                  2 writers +22% over 4, NOTES)
# Python hands the GIL to a waiting thread every 5 ms by default. In a run, the sampling lanes, the
# writers and this thread each need it briefly between long calls that release it, and at 5 ms they
# queue behind one another: 1.79 of 2 cores busy. At 1 ms: 1.87, +19% PNG images/s (NOTES).
SWITCH_INTERVAL_S = 0.001
_switch_lock = threading.Lock()
_switch_users = [0, 0.0]  # runs under way in this process, the interval before the first of them


@contextlib.contextmanager
def _short_gil_switch(interval: float) -> Iterator[None]:
    """``sys.setswitchinterval(interval)`` (or shorter, if already) while any run that asked for it is under way."""
    with _switch_lock:
        if _switch_users[0] == 0:
            _switch_users[1] = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_users[1], interval))
        _switch_users[0] += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users[0] -= 1
            if _switch_users[0] == 0:
                sys.setswitchinterval(_switch_users[1])


def write_run(folder: Path, header: RunHeader, batches: Iterable[Batch], journal: Journal, *,
              on_batch: Callable[[int], None] | None = None, workers: int = WRITE_AHEAD,
              switch_interval: float | None = None) -> int:
    """Consume ``batches`` into ``folder`` in the run's format, journaling each file after it is in place.

    Encoding and writing run on ``workers`` threads while the next batches are sampled (onnxruntime,
    zlib, hashing and file calls release the GIL); files may land out of order, but
    the journal records batches strictly in index order, each only after all its files are in place.
    ``switch_interval`` (e.g. ``SWITCH_INTERVAL_S``, what ``ganrt generate`` passes): the interpreter's
    GIL switch interval while it runs, then restored; None leaves the process's setting alone.
    A grouped format (npz) collects ``shard_size`` images per file, counted from the run's start, so a
    resumed run (which starts at a file boundary) numbers and fills its files as an uninterrupted one would.
    """
    fmt = get_format(header.format)
    written = 0
    pending: list[Batch] = []
    jobs: deque[tuple[Future, int]] = deque()  # (manifest lines of a file or batch, images it closes)
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="ganrt-write")

    def record(block: bool) -> None:
        nonlocal written
        while jobs and (block or jobs[0][0].done() or len(jobs) > workers):
            future, count = jobs.popleft()
            journal.append(future.result())  # a failed write raises here, before any later batch is journaled
            written += count
            if on_batch is not None and count:
                on_batch(count)

    def flush() -> None:
        nonlocal pending
        if pending:
            labels = None if pending[0].labels is None else np.concatenate([b.labels for b in pending])
            jobs.append((pool.submit(write, np.concatenate([b.images for b in pending]),
                                     np.concatenate([b.indices for b in pending]), labels), 0))
            pending = []

    def write(images: np.ndarray, indices: np.ndarray, labels: np.ndarray | None) -> list[bytes]:
        return [entry_line(e) for e in fmt.write(folder, header, images, indices, labels)]

    with _short_gil_switch(switch_interval) if switch_interval is not None else contextlib.nullcontext():
        try:
            for batch in batches:
                if not fmt.grouped:
                    jobs.append((pool.submit(write, batch.images, batch.indices, batch.labels), len(batch.images)))
                else:
                    # split a batch at file boundaries so every file holds exactly shard_size images
                    off = 0
                    while off < len(batch.images):
                        room = header.shard_size - sum(len(b.images) for b in pending)
                        take = min(room, len(batch.images) - off)
                        pending.append(Batch(start=batch.start + off, images=batch.images[off : off + take],
                                             labels=None if batch.labels is None else batch.labels[off : off + take]))
                        off += take
                        if sum(len(b.images) for b in pending) == header.shard_size:
                            flush()
                    jobs.append((_done([]), len(batch.images)))  # progress as images are made; lines come with the shard
                record(block=False)
            flush()
            record(block=True)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # never leave a thread writing after we return or raise
    return written


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


@dataclass(frozen=True)
class RunResult:
    folder: Path
    manifest: Path
    generated: int  # images made by this call
    reused: int  # images of an earlier, interrupted call that passed their checks (resume)


def model_location(model) -> str:
    """How a manifest names a loaded model: a bundled model's name, else its file's absolute path."""
    from ganrt.core.bundled import available_models

    path = Path(model.path).resolve() if model.path is not None else None
    return next((name for name, p in available_models().items() if path is not None and p.resolve() == path),
                str(path or model.source))


def upscaled(batches: Iterator[Batch], upscaler) -> Iterator[Batch]:
    """``generate --upscale``: every image of every batch through ``upscaler`` (same layout, x scale)."""
    for b in batches:
        yield Batch(b.start, upscaler.upscale_many(b.images), b.labels)


def range_batches(gen: Generator, stream_labels: LabelSpec, *, offset: int, count: int, seed: int, truncation: float | None,
                  batch_size: int | None, start: int, upscaler=None) -> Iterator[Batch]:
    """Batches of images start+offset .. start+offset+count-1 of a run (``stream_labels`` from ``run_header``)."""
    if isinstance(stream_labels, np.ndarray):
        labels = stream_labels[offset : offset + count]
    elif isinstance(stream_labels, LabelCycle):
        labels = stream_labels.shifted(offset)
    else:
        labels = stream_labels
    batches = gen.iter_batches(count, seed=seed, labels=labels, truncation=truncation, batch_size=batch_size,
                               start=start + offset)
    return batches if upscaler is None else upscaled(batches, upscaler)


def run_header(gen: Generator, *, n: int, seed: int, labels: LabelSpec, truncation: float | None, start: int,
               fmt: str, shard_size: int, batch_size: int | None = None, overwrite: bool = False, resume: bool = False,
               upscaler=None) -> tuple[RunHeader, LabelSpec]:
    """The header of a run, and its labels in the form the stream takes (per-image lists resolved).

    Checks every argument, so a run (here or on a cluster) fails before its folder is touched.
    """
    if overwrite and resume:
        raise ParameterError("give --resume (continue the run in the folder) or --overwrite (replace it), not both")
    n = check_count("n", n)
    gen.iter_batches(n, seed=seed, labels=labels, truncation=truncation, batch_size=batch_size, start=start)  # checks only
    grouped = get_format(fmt).grouped
    check_count("shard size", shard_size)
    if labels is None or isinstance(labels, (str, int, np.integer)):
        spec = None if labels is None else gen.label_index(labels)  # label_index refuses labels for unconditional models
        stream_labels = labels
    elif isinstance(labels, LabelCycle):  # recorded as the cycle: nothing of size n is made, whatever n is
        classes = tuple(gen.label_index(c) for c in labels.classes)
        stream_labels = LabelCycle(classes, labels.phase % len(classes))
        spec = {"cycle": list(classes), "phase": stream_labels.phase}
    else:
        stream_labels = gen.resolve_labels(labels, np.arange(n))  # (n,) int64, checked
        spec = {"per_image_sha256": sha256_hex(stream_labels.astype("<i8"))}
    header = RunHeader(
        model=model_location(gen), model_name=gen.name, model_sha256=gen.sha256, seed=int(seed), n=n, start=start, labels=spec,
        truncation=None if truncation is None else float(truncation), format=fmt,
        shard_size=shard_size if grouped else None, ganrt=__version__, provider=gen.provider, precision=gen.precision,
        upscaler=None if upscaler is None else model_location(upscaler),
        upscaler_sha256=None if upscaler is None else upscaler.sha256,
        classes=get_format(fmt).classes(gen),  # refuses a model the format cannot write (imagefolder: no classes)
    )
    return header, stream_labels


def generate_run(
    gen: Generator,
    out: str | Path,
    *,
    n: int,
    seed: int = 0,
    labels: LabelSpec = None,
    truncation: float | None = None,
    batch_size: int | None = None,
    start: int = 0,
    fmt: str = "png",
    shard_size: int = DEFAULT_SHARD_SIZE,
    overwrite: bool = False,
    resume: bool = False,
    upscaler=None,
    on_batch: Callable[[int], None] | None = None,
    switch_interval: float | None = None,
) -> RunResult:
    """Write images start .. start+n-1 to folder ``out`` with ``manifest.jsonl``; see the module docstring.

    ``resume`` continues the run in ``out`` (or starts one in an empty folder); ``overwrite``
    replaces an earlier run. Every argument is checked before the folder is touched. ``switch_interval``:
    see ``write_run`` (the process's GIL switch interval is left alone unless it is given).
    """
    header, stream_labels = run_header(gen, n=n, seed=seed, labels=labels, truncation=truncation, start=start, fmt=fmt,
                                       shard_size=shard_size, batch_size=batch_size, overwrite=overwrite, resume=resume,
                                       upscaler=upscaler)
    n = header.n
    folder = Path(out)
    with FolderLock(folder) as lock:  # before anything in the folder is read, removed or written; for the whole run
        header, journal, done = open_run(folder, header, overwrite=overwrite, resume=resume, lock=lock)
        try:
            if on_batch is not None and done:
                on_batch(done)
            generated = 0
            if done < n:
                batches = range_batches(gen, stream_labels, offset=done, count=n - done, seed=seed, truncation=truncation,
                                        batch_size=batch_size, start=start, upscaler=upscaler)
                try:
                    generated = write_run(folder, header, batches, journal, on_batch=on_batch,
                                          switch_interval=switch_interval)
                except InferenceError as exc:
                    raise InferenceError(f"{exc}; {how_to_continue(folder)}") from None
            manifest = journal.finish()
        finally:
            journal.close()
    return RunResult(folder, manifest, generated, done)


def how_to_continue(folder: Path) -> str:
    """What an error that stops a run part way adds: its images so far are kept, and how to go on."""
    return (f"the images made so far are complete and recorded in {folder / JOURNAL}: once the cause is fixed, "
            "the same command with --resume continues the run")


def open_run(folder: Path, header: RunHeader, *, overwrite: bool, resume: bool,
             lock: FolderLock) -> tuple[RunHeader, Journal, int]:
    """Start the run of ``header`` in ``folder``, or continue it (``resume``): (its header, its open journal,
    how many images, counted from the run's start, are already in place and recorded).

    ``lock``: the folder's ``FolderLock``, held by the caller until the journal is finished or closed.
    """
    if not lock.held or Path(lock.folder) != Path(folder):
        raise OutputError(f"open_run: {folder} must be locked (FolderLock) by the caller for the whole run")
    if resume:
        return _resume(folder, header)
    prepare_output(folder, overwrite=overwrite)
    return header, Journal(folder, header=header), 0


def remove_temporaries(folder: Path) -> None:
    """Remove the temporary files a killed writer left (``images.TMP_FILE``); only while holding the journal."""
    for path in [*folder.iterdir(), *extra_run_files(folder)]:
        if TMP_FILE.match(path.name):
            path.unlink(missing_ok=True)


def _resume(folder: Path, header: RunHeader) -> tuple[RunHeader, Journal, int]:
    """Reopen the run in ``folder``: (its header, its journal cut to the verified images, how many those are)."""
    journal_path, manifest_path = folder / JOURNAL, folder / MANIFEST
    for path in (journal_path, manifest_path):
        if path.is_symlink():  # resume would read and append through it, outside the folder
            raise ManifestError(f"--resume: {path} is a symbolic link; a run's files must be regular files in its "
                                "folder: use --overwrite or another folder")
    if not journal_path.exists() and not manifest_path.exists():
        existing = [p for p in run_files(folder) if not TMP_FILE.match(p.name)]
        if existing:
            raise ManifestError(f"--resume: {folder} holds {len(existing)} images but no {MANIFEST} or {JOURNAL}; "
                                "it cannot be checked, so it cannot be continued: use --overwrite or another folder")
        prepare_output(folder, overwrite=True)  # nothing to continue: start the run (removes stray temporary files)
        return header, Journal(folder, header=header), 0
    if journal_path.exists() and not header_is_complete(journal_path):
        prepare_output(folder, overwrite=True)  # killed while writing the header: no image was recorded
        return header, Journal(folder, header=header), 0
    _writable_folder(folder)
    old = read_manifest(journal_path if journal_path.exists() else manifest_path, repair=True)
    diffs = old.header.differences(header)
    if diffs:
        raise ManifestError(f"--resume: the run in {folder} was made with other settings ({'; '.join(diffs[:3])}); "
                            "give the same arguments and model, or use --overwrite")
    if not journal_path.exists():
        manifest_path.replace(journal_path)  # a complete run is rechecked; any damaged file is made again
    journal = Journal(folder)
    try:
        done, end = verified_prefix(folder, old)
        journal.truncate(end)
        remove_temporaries(folder)
    except BaseException:
        journal.close()
        raise
    return old.header, journal, done


def verified_prefix(folder: Path, manifest: Manifest) -> tuple[int, int]:
    """(k, byte offset): the first k entries are images start..start+k-1 whose files hash as recorded.

    A grouped format (npz): k is cut back to a whole number of files (a file is written and journaled as a unit).
    """
    header = manifest.header
    hashes: dict[str, str | None] = {}
    k = 0
    for entry in manifest.entries:
        index = header.start + k
        name = header.file_name(index, entry["label"])
        if k >= header.n or entry["index"] != index or entry["file"] != name:
            break
        if name not in hashes:
            hashes[name] = file_sha256(folder / name) if is_regular_file(folder / name) else None  # a link: made again
        if hashes[name] != entry["file_sha256"]:
            break
        k += 1
    if get_format(header.format).grouped and k < header.n:
        k -= k % header.shard_size
    return k, manifest.ends[k - 1] if k else manifest.header_bytes
