"""Dynamic batching: concurrent requests for single images of one generator merged into one onnxruntime call.

A request puts (seed, index, label, truncation) on its model's bounded queue and awaits a future. One task per
model takes the first waiting image, then more for at most ``max_wait_ms`` (while another batch runs; with every
lane idle, what is waiting goes at once) or until ``max_batch``, and hands the batch to a worker thread: latents
(``Generator.inputs_at``), one ``render`` on one single-threaded lane session, then the PNGs
(``runs.png_files.run_pngs``, the encoder of ``ganrt generate``). As many batches run at once as the generator
has lanes (one per core), so inference and encoding use every core and never the event loop.
While every lane is busy the queue keeps filling, so batches grow with the load. Image i depends only on
(seed, i, label, truncation), never on the batch it is made in: batched and unbatched replies are the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from concurrent.futures import Executor
from dataclasses import dataclass, replace

import numpy as np

from ganrt.core import latent
from ganrt.io.png import encode_pngs
from ganrt.kinds.generator import Generator
from ganrt.runs.manifest import RunHeader
from ganrt.runs.png_files import run_pngs
from ganrt.serve.metrics import Metrics


class QueueFull(Exception):
    """The model's queue holds ``max_queue`` images: answer 503 with Retry-After."""


@dataclass(frozen=True)
class Job:
    """One single image. ``header`` (the run's; the job's seed and truncation go in it on the worker thread): a run
    image with its provenance;
    ``z`` instead of (seed, index): explicit latents (a walk between two seeds), a PNG without text chunks."""

    seed: int
    index: int
    label: int | None  # resolved class (a run's default i % K applied), None for unconditional models
    truncation: float | None
    header: RunHeader | None = None
    z: np.ndarray | None = None  # (nz,) float32


class Batcher:
    """The queue and batching task of one generator. Start and stop it on the server's event loop."""

    def __init__(self, gen: Generator, pool: Executor, *, max_batch: int, max_wait_ms: float, max_queue: int,
                 metrics: Metrics, name: str, lanes: int | None = None) -> None:
        self.gen, self.name, self._pool, self._metrics = gen, name, pool, metrics
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_ms / 1000.0, max_queue
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future]] | None = None
        self._lanes: asyncio.Semaphore | None = None
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Future] = set()
        self.lanes = lanes or gen.lanes  # batches in flight at once

    @property
    def waiting(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def start(self) -> None:
        self._queue = asyncio.Queue(self.max_queue)
        self._lanes = asyncio.Semaphore(self.lanes)  # batches in flight: one per lane
        self._arrived = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"ganrt-batcher-{self.name}")

    async def stop(self) -> None:
        """After the server has drained its requests: stop taking batches, wait for those running."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def submit(self, job: Job) -> asyncio.Future:
        """The future of ``job``'s PNG bytes. Cancel it (a client that left) and the image is dropped unless its
        batch already runs. ``QueueFull`` when ``max_queue`` images wait."""
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((job, future))
        except asyncio.QueueFull:
            raise QueueFull(f"'{self.name}' has {self.max_queue} images waiting; retry shortly") from None
        self._arrived.set()
        return future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            await self._lanes.acquire()  # a lane is free; while none is, the queue fills and the next batch grows
            batch = [await queue.get()]
            # wait for more only while another batch runs: with every lane idle nothing is gained by waiting (one
            # client: --max-wait-ms was added to every request), and under load the lanes are busy, so batches grow
            idle = len(self._running) == 0
            deadline = loop.time() + (0.0 if idle else self.max_wait_s)
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                left = deadline - loop.time()
                if left <= 0:
                    break
                # wait for the next arrival on an event, not on queue.get(): a get cancelled by the timeout
                # can lose its item on Python < 3.12
                self._arrived.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), left)
            live = [(job, f) for job, f in batch if not f.done()]  # a cancelled future: its client disconnected
            if len(live) < len(batch):
                self._metrics.drop(self.name, len(batch) - len(live))
            if not live:
                self._lanes.release()
                continue
            self._metrics.batch(self.name, len(live))
            running = loop.run_in_executor(self._pool, self.make, [job for job, _ in live])
            self._running.add(running)
            running.add_done_callback(lambda r, live=live: self._finish(r, live))

    def _finish(self, running: asyncio.Future, live: list[tuple[Job, asyncio.Future]]) -> None:
        self._running.discard(running)
        self._lanes.release()
        error = running.exception()
        pngs = None if error is not None else running.result()
        for k, (_, future) in enumerate(live):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(pngs[k])

    def make(self, jobs: list[Job]) -> list[bytes]:
        """The PNG bytes of ``jobs``, in order: one render of all of them on one lane. Runs on a worker thread."""
        gen = self.gen
        z = np.empty((len(jobs), gen.nz), dtype=np.float32)  # (B, nz)
        labels = np.array([j.label for j in jobs], dtype=np.int64) if gen.info.conditional else None
        groups: dict[tuple, list[int]] = defaultdict(list)  # latents of one (seed, truncation) in one call
        for k, job in enumerate(jobs):
            if job.z is not None:
                z[k] = job.z
            else:
                groups[(job.seed, job.truncation)].append(k)
        for (seed, truncation), ks in groups.items():
            idx = np.array([jobs[k].index for k in ks], dtype=np.int64)
            z[ks] = gen.inputs_at(idx, seed=seed, labels=None if labels is None else labels[ks], truncation=truncation)[0]
        images = gen.render(z, labels, batch_size=len(jobs), one_lane=True)  # (B, H, W, C) uint8
        pngs: list[bytes] = [b""] * len(jobs)
        runs = [k for k, job in enumerate(jobs) if job.header is not None]
        if runs:
            texts = [(replace(jobs[k].header, seed=jobs[k].seed, truncation=jobs[k].truncation), jobs[k].index, jobs[k].label)
                     for k in runs]
            for k, data in zip(runs, run_pngs(images[runs], texts)):
                pngs[k] = data
        walks = [k for k, job in enumerate(jobs) if job.header is None]
        if walks:
            for k, data in zip(walks, encode_pngs(images[walks])):
                pngs[k] = data
        return pngs


def walk_latent(gen: Generator, seed_a: int, seed_b: int, index: int, t: float, truncation: float | None) -> np.ndarray:
    """(nz,) latent a fraction ``t`` of the way (slerp, as ``Generator.interpolate``) from image ``index`` of
    run ``seed_a`` to image ``index`` of run ``seed_b``."""
    za = gen.latents(1, seed=seed_a, start=index, truncation=truncation)[0]
    zb = gen.latents(1, seed=seed_b, start=index, truncation=truncation)[0]
    return latent.project(latent.slerp(za, zb, t), gen.prior)
