"""Sharded generation on a Ray cluster (extra ``ray``): the same files, manifest and provenance as ``generate_run``.

The driver (this process) checks the arguments, builds the run header, locks the folder (for the
whole run: ``runs/lock.py``) and opens the journal exactly as ``generate_run`` does, then splits
the images still to make into shards: index ranges of ``task_images`` images (png), or one npz
file each. A pool of Ray actors, each holding one
loaded model, writes a shard's files straight into the output folder (atomically, so the folder
must be one every node sees: local disk on one machine, a shared file system on several) and
returns the shard's manifest lines. The driver appends them to the journal in index order,
holding back shards that finish early, so ``manifest.jsonl`` is byte for byte the one a single
process writes. Image i depends only on (seed, i, label, truncation): which worker made it, and
when, cannot change a byte.

Failures: a shard whose worker dies (killed, out of memory, node lost) or raises goes back to the
queue and a new actor replaces a dead one. A shard that fails ``max_attempts`` times stops the
job: no new shard starts, the running ones finish and are recorded (so every shard before the
failing one is), then ``ClusterError`` names it. Every file written is complete and stays, and
``--resume`` continues from the first shard that was not recorded.

Ray is imported only here, and only when a cluster run is asked for: ``import ganrt`` stays fast.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ganrt.core.errors import ClusterError, GanrtError, MissingDependencyError, ParameterError
from ganrt.core.model import file_sha256
from ganrt.core.session import DEVICES
from ganrt.kinds.generator import DEFAULT_BATCH_SIZE, Generator, LabelSpec, check_count
from ganrt.runs.formats import get_format
from ganrt.runs.lock import FolderLock
from ganrt.runs.manifest import RunHeader
from ganrt.runs.writer import (
    DEFAULT_SHARD_SIZE,
    SWITCH_INTERVAL_S,
    RunResult,
    open_run,
    range_batches,
    remove_temporaries,
    run_header,
    write_run,
)

_POLL_S = 0.5  # how often the driver asks the workers how far they are (the progress bar's resolution)
_READY_TIMEOUT_S = 120.0  # a new actor loads its model within this, or the cluster cannot place it
_QUEUED_PER_WORKER = 2  # shards handed to a worker at once: one running, one waiting, so it never idles


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("--ray needs Ray: pip install 'ganrt[ray]'") from None
    return ray


@dataclass(frozen=True)
class ClusterConfig:
    """Where and how a run is spread over Ray; the images never depend on any of it."""

    address: str | None = None  # None: the local Ray instance (RAY_ADDRESS, `ray start`), or a new one; "host:port"
    workers: int | None = None  # actors; None: one per CPU the cluster offers (per GPU with device cuda)
    device: str = "cpu"  # each actor's device; cuda reserves one GPU per actor
    threads: int | None = None  # onnxruntime threads per actor, and the CPUs it reserves; None: 1
    task_images: int | None = None  # png images per shard; None: about 4 shards per worker (64..1024)
    max_attempts: int = 3  # a shard that fails this many times stops the job
    connect_timeout_s: float = 10.0  # an address that does not answer within this is an error

    def check(self) -> None:
        if self.device not in DEVICES:
            raise ParameterError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        for name in ("workers", "threads", "task_images"):
            if getattr(self, name) is not None:
                check_count(name, getattr(self, name))
        check_count("max_attempts", self.max_attempts)
        if not self.connect_timeout_s > 0:
            raise ParameterError(f"connect_timeout_s must be > 0, got {self.connect_timeout_s!r}")


@dataclass(frozen=True)
class ClusterProgress:
    """What ``on_progress`` sees: images in place (recorded or written by a running shard), of ``total``."""

    done: int
    total: int
    failures: int  # shard attempts that failed so far (a killed worker, an error)
    worker_pids: tuple[int, ...]  # process ids of the live actors, as they reported them


@dataclass(frozen=True)
class ClusterResult(RunResult):
    workers: int = 0  # actors the run started with
    failures: int = 0  # shard attempts that failed and were run again


@dataclass(frozen=True)
class Shard:
    """Images start+offset .. start+offset+count-1 of the run; ``number`` orders them."""

    number: int
    offset: int
    count: int

    def describe(self, header: RunHeader) -> str:
        first = header.start + self.offset
        where = f", {header.file_name(first)}" if get_format(header.format).grouped else ""
        return f"shard {self.number} (images {first}..{first + self.count - 1}{where})"


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to write any shard of one run (sent once to the object store)."""

    folder: str
    header: RunHeader
    labels: LabelSpec  # as run_header streams them: None, one label, or (n,) int64
    seed: int
    truncation: float | None
    batch_size: int | None


@dataclass(frozen=True)
class ModelBytes:
    """A model file shipped to the workers (nodes need not share the driver's files)."""

    name: str
    data: bytes
    sha256: str

    @classmethod
    def of(cls, model) -> ModelBytes:
        data = Path(model.path).read_bytes()
        return cls(model.name, data, model.sha256)

    def load(self, folder: str, *, device: str, threads: int | None, kind: str):
        from ganrt.kinds.registry import load

        path = Path(folder) / f"{kind}.onnx"
        path.write_bytes(self.data)
        if file_sha256(path) != self.sha256:
            raise ClusterError(f"the copy of {self.name} on this worker does not hash as the driver's file")
        return load(path, device=device, threads=threads, kind=kind)


class ShardWorker:
    """A Ray actor: one loaded generator (and upscaler), writing shards of a run into the shared folder.

    Threaded (``max_concurrency``) only so that ``progress`` answers while a shard runs; a lock
    keeps to one shard at a time, so the actor uses the CPUs it reserved and no more.
    """

    def __init__(self, model: ModelBytes, upscaler: ModelBytes | None, *, device: str, threads: int) -> None:
        self._files = tempfile.TemporaryDirectory(prefix="ganrt-ray-")
        self._lock = threading.Lock()
        self._written = 0  # images of the running shard written so far (progress reads it from another thread)
        self._error: GanrtError | None = None
        try:
            self._gen = model.load(self._files.name, device=device, threads=threads, kind="generator")
            self._up = None if upscaler is None else upscaler.load(self._files.name, device=device, threads=threads,
                                                                   kind="upscaler")
        except GanrtError as exc:  # raised from ready() instead: a failed constructor reaches the driver as a bare "actor died"
            self._error = exc

    def ready(self) -> tuple[int, str, str]:
        """(process id, execution provider, precision): provenance must be the same on every worker."""
        if self._error is not None:
            raise self._error
        return os.getpid(), self._gen.provider, self._gen.precision

    def progress(self) -> int:
        return self._written

    def run_shard(self, spec: RunSpec, shard: Shard) -> list[bytes]:
        """Write one shard's files; returns its manifest lines in index order."""
        with self._lock:
            self._written = 0

            def count(k: int) -> None:
                self._written += k

            try:
                batches = range_batches(self._gen, spec.labels, offset=shard.offset, count=shard.count, seed=spec.seed,
                                        truncation=spec.truncation, batch_size=spec.batch_size, start=spec.header.start,
                                        upscaler=self._up)
                files: list[list[bytes]] = []  # write_run appends each file's lines here, as it would to a Journal
                write_run(Path(spec.folder), spec.header, batches, files, on_batch=count,
                          switch_interval=SWITCH_INTERVAL_S)  # the worker's process is the run's own  # type: ignore[arg-type]
            finally:
                self._written = 0  # the driver counts a finished shard itself
            return [line for lines in files for line in lines]


def _host_port(address: str) -> tuple[str, int]:
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ParameterError(f"Ray address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379), 'auto', "
                             "or empty for a local instance")
    return host.strip("[]"), int(port)


def connect(address: str | None, *, timeout_s: float = 10.0) -> bool:
    """Join Ray: the given cluster, else the local instance, else a new local one. True if this call connected.

    Ray itself retries an unreachable address for minutes; a TCP check first makes that a one-line
    ``ClusterError`` within ``timeout_s``. Already connected (``ray.init`` was called): nothing to do.
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    if address not in (None, "", "auto"):
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            raise ClusterError(f"cannot reach a Ray cluster at {address} within {timeout_s:g} s ({reason}); "
                               "start one with `ray start --head`, or give --ray without an address for a local one") from None
    # something answers but is not Ray's GCS: Ray retries once a second for this many seconds (default 20)
    wait = {"RAY_gcs_server_port_wait_time_s": str(math.ceil(timeout_s))} if address not in (None, "") else {}
    saved = {k: os.environ.get(k) for k in wait}
    os.environ.update({k: v for k, v in wait.items() if saved[k] is None})  # a user's own setting wins
    try:
        ray.init(address=address or None, logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ClusterError(f"cannot connect to Ray at {address or 'a local instance'}: {first}; is it a Ray head "
                           "(`ray start --head` prints its address)?") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
    return True


class _Pool:
    """The live actors, each with the shards it holds; dead ones are replaced on demand."""

    def __init__(self, ray: Any, make: Callable[[], Any], size: int) -> None:
        self._ray, self._make = ray, make
        self.actors: list[Any] = []
        self.pids: dict[Any, int] = {}
        self.held: dict[Any, int] = {}
        self.provenance: set[tuple[str, str]] = set()
        self._start([make() for _ in range(size)])

    def _start(self, actors: list[Any]) -> None:
        refs = [a.ready.remote() for a in actors]
        try:
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=_READY_TIMEOUT_S)
            if len(ready) < len(refs):
                raise ClusterError(f"the cluster did not start {len(refs) - len(ready)} of {len(refs)} workers within "
                                   f"{_READY_TIMEOUT_S:g} s: it lacks the CPUs/GPUs they reserve (ask for fewer workers)")
            answers = [self._ray.get(ref) for ref in refs]
        except self._ray.exceptions.RayError as exc:  # the model did not load on a worker, or the worker died
            for actor in actors:
                self._ray.kill(actor, no_restart=True)
            raise _cause(exc) from None
        except BaseException:
            for actor in actors:
                self._ray.kill(actor, no_restart=True)
            raise
        for actor, (pid, provider, precision) in zip(actors, answers):
            self.actors.append(actor)
            self.pids[actor], self.held[actor] = pid, 0
            self.provenance.add((provider, precision))

    def replace(self, actor: Any) -> None:
        if actor in self.held:  # a dead actor's other shards fail too; replace it once
            self.actors.remove(actor)
            del self.pids[actor], self.held[actor]
            self._ray.kill(actor, no_restart=True)  # if only unreachable, it must not go on writing
            self._start([self._make()])

    def free(self) -> list[Any]:
        return [a for a in self.actors if self.held[a] < _QUEUED_PER_WORKER]

    def stop(self) -> None:
        """Kill every actor (once: a second call finds none)."""
        for actor in self.actors:
            self._ray.kill(actor, no_restart=True)
        self.actors, self.pids, self.held = [], {}, {}


def _cause(exc: BaseException) -> BaseException:
    """The error a worker raised, out of Ray's wrapper: a GanrtError stays typed, anything else becomes one line."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, GanrtError):
        return cause
    text = str(cause or exc).strip().splitlines()
    return ClusterError(text[-1][:300] if text else type(exc).__name__)


def plan_shards(header: RunHeader, *, done: int, workers: int, task_images: int | None, batch_size: int | None) -> list[Shard]:
    """Split images done .. n-1 (offsets from the run's start) into shards.

    npz: one shard per file, so a file is written whole by one worker. png: ``task_images`` per
    shard, by default about 4 shards per worker (load balance) rounded up to whole batches and
    kept within 64..1024 (long enough to amortise a call, short enough to lose little to a kill).
    """
    rest = header.n - done
    if get_format(header.format).grouped:  # one shard per file: a file is written whole by one worker
        size = header.shard_size
    elif task_images is not None:
        size = task_images
    else:
        bs = batch_size or DEFAULT_BATCH_SIZE
        size = min(max(-(-rest // (4 * workers)), 64), 1024)
        size = -(-size // bs) * bs
    return [Shard(k, off, min(size, header.n - off)) for k, off in enumerate(range(done, header.n, size))]


def generate_on_ray(
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
    cluster: ClusterConfig = ClusterConfig(),
    on_progress: Callable[[ClusterProgress], None] | None = None,
) -> ClusterResult:
    """``generate_run`` spread over a Ray actor pool: the same folder, byte for byte (see the module docstring).

    ``gen`` (and ``upscaler``), loaded here on any device, give the header and the checks; the
    workers load the same files on ``cluster.device``. Connects to Ray unless ``ray.init`` was
    called already, and disconnects at the end if it connected.
    """
    cluster.check()
    header, stream_labels = run_header(gen, n=n, seed=seed, labels=labels, truncation=truncation, start=start, fmt=fmt,
                                       shard_size=shard_size, batch_size=batch_size, overwrite=overwrite, resume=resume,
                                       upscaler=upscaler)
    ray = _ray()
    folder = Path(out)
    connected = connect(cluster.address, timeout_s=cluster.connect_timeout_s)
    try:
        threads = cluster.threads or 1
        workers = _workers(ray, cluster, threads, header)
        options = dict(num_cpus=threads, num_gpus=1 if cluster.device == "cuda" else 0, max_restarts=0, max_task_retries=0,
                       max_concurrency=_QUEUED_PER_WORKER + 1)  # + 1: progress answers while shards run
        actor_class = ray.remote(ShardWorker).options(**options)
        model_ref = ray.put(ModelBytes.of(gen))
        up_ref = None if upscaler is None else ray.put(ModelBytes.of(upscaler))
        pool = _Pool(ray, lambda: actor_class.remote(model_ref, up_ref, device=cluster.device, threads=threads), workers)
        try:
            if len(pool.provenance) > 1:
                raise ClusterError(f"the workers run the model differently ({sorted(pool.provenance)}); one run needs one "
                                   "provider and precision: pick --device cpu or cuda, not auto, on a mixed cluster")
            (provider, precision), = pool.provenance
            header = replace(header, provider=provider, precision=precision)  # what the workers run, not the driver
            # the folder's lock before anything in it is read, held until the workers that write into it are stopped
            # (taken here, not earlier: a pool that cannot start leaves the folder untouched)
            with FolderLock(folder) as lock:
                try:
                    header, journal, done = open_run(folder, header, overwrite=overwrite, resume=resume, lock=lock)
                    try:
                        spec = RunSpec(str(folder.resolve()), header, stream_labels, int(seed), truncation, batch_size)
                        shards = plan_shards(header, done=done, workers=workers, task_images=cluster.task_images,
                                             batch_size=batch_size)
                        failures = _run_shards(ray, pool, ray.put(spec), shards, journal, header, done=done,
                                               max_attempts=cluster.max_attempts, on_progress=on_progress)
                        remove_temporaries(folder)  # a killed worker's half-written file, never renamed into place
                        manifest = journal.finish()
                    finally:
                        journal.close()
                finally:
                    pool.stop()  # no worker writes into the folder once its lock is given back
        finally:
            pool.stop()
    finally:
        if connected:
            ray.shutdown()
    return ClusterResult(folder, manifest, header.n - done, done, workers=workers, failures=failures)


def _workers(ray: Any, cluster: ClusterConfig, threads: int, header: RunHeader) -> int:
    """The pool's size: as asked, or what the cluster offers; never more than could all run at once, or than shards."""
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    if cluster.device == "cuda" and gpus < 1:
        raise ClusterError("--device cuda: the Ray cluster offers no GPU; use --device cpu or add GPU nodes")
    fit = min(gpus, cpus // threads) if cluster.device == "cuda" else cpus // threads
    wanted = cluster.workers or 1
    if wanted > fit:
        raise ClusterError(f"{wanted} workers need {wanted * threads} CPUs"
                           f"{f' and {wanted} GPUs' if cluster.device == 'cuda' else ''}; the Ray cluster offers "
                           f"{cpus} CPUs and {gpus} GPUs: {f'ask for at most {fit}' if fit else 'use fewer --threads'}")
    most_shards = -(-header.n // (header.shard_size if get_format(header.format).grouped else 64))
    return max(1, min(cluster.workers or fit, most_shards))


def _run_shards(ray: Any, pool: _Pool, spec_ref: Any, shards: list[Shard], journal, header: RunHeader, *, done: int,
                max_attempts: int, on_progress: Callable[[ClusterProgress], None] | None) -> int:
    """Run ``shards`` on ``pool``, journaling their lines in index order; returns the failed attempts."""
    queue = deque(shards)
    finished: dict[int, list[bytes]] = {}  # shard number -> lines, for shards done before an earlier one
    inflight: dict[Any, tuple[Shard, Any]] = {}  # task ref -> (shard, actor)
    attempts: dict[int, int] = {}
    recorded, recorded_images, failures, shown = 0, done, 0, done
    # how far past the first unrecorded shard work may run: bounds the finished-but-unrecorded work a crash loses
    window = max(2 * len(pool.actors) * _QUEUED_PER_WORKER, 4)
    last_poll = 0.0

    def report(done_now: int) -> None:
        nonlocal shown
        shown = max(shown, min(done_now, header.n))  # monotone: a retried shard does not take the bar back
        if on_progress is not None:
            on_progress(ClusterProgress(shown, header.n, failures, tuple(pool.pids.values())))

    stop: ClusterError | None = None  # a shard failed max_attempts times: let the running shards finish, then raise

    def failed(shard: Shard, reason: str) -> None:
        nonlocal failures, stop
        failures += 1
        attempts[shard.number] = attempts.get(shard.number, 0) + 1
        if stop is not None:
            return
        if attempts[shard.number] >= max_attempts:
            stop = ClusterError(f"{shard.describe(header)} failed {attempts[shard.number]} times, last: {reason}; the "
                                "images before it are recorded and every file written is complete: fix the cause, "
                                "then rerun with --resume")
        else:
            queue.appendleft(shard)  # first in line: the shards after it cannot be recorded before it

    report(done)
    while (queue and stop is None) or inflight:
        for actor in pool.free():
            if stop is not None or not queue or queue[0].number >= recorded + window:
                break
            shard = queue.popleft()
            inflight[actor.run_shard.remote(spec_ref, shard)] = (shard, actor)
            pool.held[actor] += 1
        ready, _ = ray.wait(list(inflight), num_returns=1, timeout=_POLL_S)
        for ref in ready:
            shard, actor = inflight.pop(ref)
            if actor in pool.held:
                pool.held[actor] -= 1
            try:
                finished[shard.number] = ray.get(ref)
            except ray.exceptions.RayActorError:  # the worker process died (killed, out of memory, node lost)
                failed(shard, "its worker died")
                if stop is None:
                    pool.replace(actor)
            except ray.exceptions.RayError as exc:  # the shard raised (RayTaskError), or Ray lost its result
                failed(shard, str(_cause(exc)))
        while recorded in finished:  # shards are numbered 0, 1, ... in index order
            journal.append(finished.pop(recorded))
            recorded_images += shards[recorded].count
            recorded += 1
        if time.monotonic() - last_poll >= _POLL_S or ready:
            last_poll = time.monotonic()
            running = [a.progress.remote() for a in pool.actors]
            answered, _ = ray.wait(running, num_returns=len(running), timeout=_POLL_S)
            partial = sum(_progress(ray, r) for r in answered)
            ahead = sum(s.count for s in shards if s.number in finished)
            report(recorded_images + ahead + partial)
    if stop is not None:
        raise stop
    return failures


def _progress(ray: Any, ref: Any) -> int:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError:  # a worker that just died has no progress to tell
        return 0

