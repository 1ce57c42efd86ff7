"""``Generator``: reproducible, batched, streaming sampling of an exported GAN generator.

Image ``i`` of a run depends only on (seed, i, its label, truncation): its latent comes from
``latent.sample_latents(seed, [i])`` and labels default to ``i % num_classes``. Batch size,
threads and how a run is split (``start``) cannot change an image.
"""

from __future__ import annotations

import functools
import itertools
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.core import latent
from ganrt.core.errors import InferenceError, LabelError, ModelFormatError, ParameterError
from ganrt.core.graphs import GraphRunner
from ganrt.core.kind import Kind, register
from ganrt.core.memory import check_fits
from ganrt.core.model import Model
from ganrt.core.run import run_bound, run_session
from ganrt.core.schema import MAX_NZ, ModelInfo, fixed_image_shape
from ganrt.io.images import float_to_uint8
from ganrt.kinds import tuning
from ganrt.kinds.lanes import LaneModel, Lanes
from ganrt.kinds.tuning import TUNE_CANDIDATES  # noqa: F401  (re-exported: the candidates a run may pick)

DEFAULT_BATCH_SIZE = 64  # 64 latents -> 64 x 32x32 images: small working set, most of the throughput
# Runs of at least TUNE_MIN_N images without a batch size use the fastest of TUNE_CANDIDATES, measured
# once per loaded model (about a second): the best size depends on the model, the cores and the device.
# A run makes at least TUNE_MIN_BATCHES batches (unless that is below DEFAULT_BATCH_SIZE), so that filling
# and draining the pipeline of lanes and writers is a small part of it: at n = 20,000 a tuned 512 made
# PNGs at 58% of sampling's rate, 256 at 66% (benchmarks/NOTES.md).
TUNE_MIN_N = 4096
TUNE_MIN_BATCHES = 64
# Lanes (``load(lanes=...)``): concurrent single-threaded runs of one session, one per core; small
# convolutions parallelise poorly inside one run. A stream of several batches makes whole batches at
# once, one per lane (no lane waits for another, so a core lent to PNG writers stalls only its own
# batch): 1.85-2.1x one two-threaded run on 2 cores. A single batch of at least LANE_MIN images per
# lane is split over the lanes: 1.09-1.42x at batch 64/256 (benchmarks/NOTES.md).
LANE_MIN = 8

# bytes per image of one batch beyond its uint8 pixels: the latent hash's uint64/float64 temporaries
# (about 8 arrays of (N, 2 nz) x 8 bytes) and a float output (N, C, H, W) x 4 -- what a batch size must fit
_HASH_BYTES_PER_COMPONENT = 128


@dataclass(frozen=True)
class Batch:
    """One streamed batch: images ``start .. start+len-1`` of the run."""

    start: int
    images: np.ndarray  # (B, H, W, C) uint8
    labels: np.ndarray | None  # (B,) int64, or None for unconditional models

    @property
    def indices(self) -> np.ndarray:
        return latent.index_range(self.start, self.start + len(self.images))


@dataclass(frozen=True)
class LabelCycle:
    """Labels repeated over a run: the image at position p of the run (p = index - start) gets
    ``classes[(phase + p) % len(classes)]`` (``ganrt generate --labels 0,3,Sneaker``). Computed per batch,
    so a run of any n holds only its batch's labels; a run header records the cycle itself."""

    classes: tuple[int | str, ...]
    phase: int = 0

    def shifted(self, offset: int) -> LabelCycle:
        """The same labels for the part of the run that starts ``offset`` images later."""
        return LabelCycle(self.classes, (self.phase + offset) % max(len(self.classes), 1))


LabelSpec = int | str | Sequence[int | str] | np.ndarray | LabelCycle | None


def check_count(name: str, value: int, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Generator(LaneModel, Model):
    """A loaded generator. Stateless per call and thread-safe: one instance can serve many threads."""

    def __init__(self, session: Any, info: ModelInfo, *, source: str, path: Path | None = None, graphs: str | None = None,
                 lanes: tuple[Any, int] | None = None) -> None:
        """``graphs``: run every call through a ``GraphRunner`` on that device -- ``cuda`` with a session
        made with ``cuda_graph`` (captured CUDA graphs); ``cpu`` takes the same path without capture.
        ``lanes``: (a single-threaded session of the same file, how many lanes): batches of at least
        ``LANE_MIN`` images per lane are split into that many parts run at once on that session."""
        super().__init__(session, info, source=source, path=path)
        inputs = {i.name: i for i in session.get_inputs()}
        expected = {"z"} | ({"label"} if info.conditional else set())
        if set(inputs) != expected:
            raise ModelFormatError(f"{source}: inputs {sorted(inputs)} do not match its metadata (expected {sorted(expected)})")
        nz_dim = inputs["z"].shape[-1] if inputs["z"].shape else None
        if len(inputs["z"].shape) != 2 or (isinstance(nz_dim, int) and nz_dim != info.nz):
            raise ModelFormatError(f"{source}: input z has shape {inputs['z'].shape}, metadata says (N, {info.nz})")
        if inputs["z"].type != "tensor(float)":
            raise ModelFormatError(f"{source}: input z is {inputs['z'].type}, a generator takes tensor(float) latents")
        if "label" in inputs and (inputs["label"].type != "tensor(int64)" or len(inputs["label"].shape) != 1):
            raise ModelFormatError(f"{source}: input label is {inputs['label'].type} {inputs['label'].shape}, "
                                   "a conditional generator takes tensor(int64) of shape (N,)")
        output = session.get_outputs()[0]
        h, w, c = info.image_shape
        # float (N, C, H, W) in value_range (older files), or uint8 (N, H, W, C) post-processed in the graph
        self._uint8 = output.type == "tensor(uint8)"
        expected_shape = (h, w, c) if self._uint8 else (c, h, w)
        declared = [d if isinstance(d, int) else None for d in output.shape]
        if len(declared) != 4 or any(d is not None and d != e for d, e in zip(declared[1:], expected_shape)):
            raise ModelFormatError(f"{source}: output {output.name} has shape {output.shape}, "
                                   f"metadata says (N, {', '.join(map(str, expected_shape))})")
        self._output = output.name
        if graphs is not None and not self._uint8:
            raise ModelFormatError(f"{source}: CUDA graphs need a uint8-output file (export it again with this ganrt-export)")
        self._graphs = GraphRunner(session, output.name, device=graphs, source=source) if graphs else None
        use = lanes is not None and lanes[1] > 1 and self._uint8 and not graphs
        self._lanes = Lanes(lanes[0], lanes[1], output.name, source=source) if use else None

    def close(self) -> None:
        """Release the CUDA graphs, the lane threads and the sessions. Idempotent."""
        self._graphs = None
        super().close()

    @property
    def nz(self) -> int:
        return self.info.nz

    @property
    def prior(self) -> str:
        return self.info.prior

    # -- labels -------------------------------------------------------------------------------
    def label_index(self, label: int | str | np.integer) -> int:
        """A class index from an index or a class name (case-insensitive)."""
        if not self.info.conditional:
            raise LabelError(f"'{self.name}' is unconditional: it takes no labels")
        k = self.num_classes
        if isinstance(label, str):
            names = {c.lower(): i for i, c in enumerate(self.class_names)}
            if label.strip().lower() in names:
                return names[label.strip().lower()]
            if label.strip().lstrip("-").isdigit():
                label = int(label)
            else:
                raise LabelError(f"unknown class {label!r} for '{self.name}'; "
                                 f"classes: {', '.join(self.class_names) or f'0..{k - 1}'}")
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise LabelError(f"a label must be a class index or name, got {label!r}")
        if not 0 <= int(label) < k:
            raise LabelError(f"label {int(label)} is out of range for '{self.name}' ({k} classes: 0..{k - 1})")
        return int(label)

    def resolve_labels(self, labels: LabelSpec, indices: np.ndarray) -> np.ndarray | None:
        """Per-image labels (len(indices),) int64 for images ``indices``; None cycles classes by index."""
        return self._label_source(labels, len(indices))(0, indices)

    def _label_source(self, labels: LabelSpec, n: int):
        """Validate ``labels`` for a run of n images; returns f(offset, indices) -> labels of that batch.

        Only an explicit per-image list is held in memory; the default (i % K) and a single label
        are computed per batch, so streaming a huge run stays bounded by the batch.
        """
        if not self.info.conditional:
            if labels is not None:
                raise LabelError(f"'{self.name}' is unconditional: it takes no labels")
            return lambda off, idx: None
        if labels is None:
            k = self.num_classes
            return lambda off, idx: (idx % k).astype(np.int64)
        if isinstance(labels, (str, int, np.integer)):
            c = self.label_index(labels)
            return lambda off, idx: np.full(len(idx), c, dtype=np.int64)
        if isinstance(labels, LabelCycle):
            cycle = np.array([self.label_index(v) for v in labels.classes], dtype=np.int64)
            if cycle.size == 0:
                raise LabelError("a label cycle needs at least one class")
            return lambda off, idx: cycle[(labels.phase + off + np.arange(len(idx))) % cycle.size]
        arr = np.asarray(labels) if isinstance(labels, np.ndarray) else np.asarray(list(labels))
        if arr.ndim != 1 or len(arr) != n:
            raise LabelError(f"got {arr.size} labels for {n} images; give one label, or one per image "
                             "(a list is never repeated here; the CLI's --labels repeats its list over the images)")
        if arr.dtype.kind in "iu":  # validate the whole array at once
            bad = (arr < 0) | (arr >= self.num_classes)
            if bad.any():
                self.label_index(int(arr[bad][0]))  # raises with the offending value
            arr = arr.astype(np.int64)
        else:
            arr = np.array([self.label_index(v) for v in arr.tolist()], dtype=np.int64)
        return lambda off, idx: arr[off : off + len(idx)]

    # -- sampling -----------------------------------------------------------------------------
    def latents(self, n: int, *, seed: int = 0, start: int = 0, truncation: float | None = None) -> np.ndarray:
        """Latents of images start .. start+n-1: (n, nz) float32."""
        n = check_count("n", n)
        start = check_count("start", start, minimum=0)
        latent.check_span(start, n)
        self.check_batch(n)
        return latent.sample_latents(seed, latent.index_range(start, start + n), self.nz, prior=self.prior, truncation=truncation)

    def batch_bytes(self, n: int) -> int:
        """Memory of a batch of n images while it is made: latents and their hash, a float output, the pixels."""
        h, w, c = self.image_shape
        return n * (self.nz * _HASH_BYTES_PER_COMPONENT + h * w * c * (1 if self._uint8 else 5))

    def check_batch(self, n: int, what: str = "a batch") -> None:
        """``ParameterError`` before anything is allocated when a batch of n images cannot fit in memory."""
        check_fits(self.batch_bytes(n), f"{what} of {n:,} images",
                   hint="use a smaller batch size (images do not depend on it)")

    def images_at(self, indices: Sequence[int] | np.ndarray, *, seed: int = 0, labels: LabelSpec = None,
                  truncation: float | None = None, batch_size: int | None = None) -> np.ndarray:
        """Images of any indices of a run, in the order given: (len(indices), H, W, C) uint8.

        The same bytes as those images in ``sample``/``iter_batches`` (replay uses this).
        """
        return self.render(*self.inputs_at(indices, seed=seed, labels=labels, truncation=truncation), batch_size=batch_size)

    def inputs_at(self, indices: Sequence[int] | np.ndarray, *, seed: int = 0, labels: LabelSpec = None,
                  truncation: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """What ``images_at`` renders: latents (N, nz) float32 and labels (N,) int64 (None: unconditional) of
        images ``indices`` of a run. A server merges several requests' inputs into one ``render``."""
        idx = latent.as_indices(indices)
        if idx.size == 0:
            raise ParameterError("images_at needs at least one index")
        if labels is None and self.info.conditional:
            labels = (idx % self.num_classes).astype(np.int64)  # the default of a run: class i % K by index, not position
        z = latent.sample_latents(seed, idx, self.nz, prior=self.prior, truncation=truncation)
        return z, self.resolve_labels(labels, idx)

    def render(self, z: np.ndarray, labels: LabelSpec = None, *, batch_size: int | None = None,
               one_lane: bool = False) -> np.ndarray:
        """Images from explicit latents ``z`` (N, nz): (N, H, W, C) uint8. For interpolation and arithmetic.

        ``one_lane``: every batch whole on one single-threaded lane session (a caller that runs several
        renders at once, one per lane, e.g. ``ganrt serve``'s batches); the same images."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.nz or len(z) == 0:
            raise ParameterError(f"z must have shape (N>=1, {self.nz}), got {z.shape}")
        ys = self.resolve_labels(labels, np.arange(len(z)))
        bs = check_count("batch_size", DEFAULT_BATCH_SIZE if batch_size is None else batch_size)
        out = np.empty((len(z), *self.image_shape), dtype=np.uint8)
        for i in range(0, len(z), bs):
            self._run(z[i : i + bs], None if ys is None else ys[i : i + bs], out[i : i + bs], one_lane=one_lane)
        return out

    def _run(self, z: np.ndarray, labels: np.ndarray | None, out: np.ndarray | None = None,
             extra: dict[str, np.ndarray] | None = None, *, one_lane: bool = False) -> np.ndarray:
        """Images of latents z (B, nz) into ``out`` (B, H, W, C) uint8 (allocated when None); returns it.

        A uint8 graph writes straight into ``out`` (IO binding, or for a small batch one copy from a plain run:
        ``run.BIND_MIN_BYTES``; no float array in Python).
        ``extra``: optional inputs such as label_b / alpha (ganrt.evaluate.explore). ``one_lane``: the whole batch
        on the single-threaded lane session (a stream runs several such calls at once).
        """
        feeds = {"z": z, **(extra or {})}
        if labels is not None:
            feeds["label"] = labels
        if out is None:
            out = np.empty((len(z), *self.image_shape), dtype=np.uint8)
        if self._uint8 and not extra:  # IO binding takes graph inputs only, not overridable initializers (label_b, alpha)
            lanes = self._lanes
            if self._graphs is not None:
                self._graphs.run(feeds, out)
            elif one_lane and lanes is not None:  # a stream: this batch whole, on one lane (the stream runs several at once)
                lanes.run(feeds, out)
            elif lanes is not None and len(z) >= LANE_MIN * lanes.count:
                lanes.run_split(feeds, out)
            elif lanes is not None:  # small: threads, one lane or split, whichever its size has measured fastest
                lanes.run_small(feeds, out, self.session)
            else:
                run_bound(self.session, feeds, self._output, out, source=self.source)
            return out
        if self._graphs is not None:  # a session that captures CUDA graphs: this call stays outside them
            (x,) = self._graphs.run_uncaptured([self._output], feeds)
        else:
            (x,) = run_session(self.session, [self._output], feeds,
                               source=self.source)  # uint8 (B, H, W, C) or float (B, C, H, W)
        h, w, c = self.image_shape
        expected = (len(z), h, w, c) if self._uint8 else (len(z), c, h, w)
        if x.shape != expected:
            raise InferenceError(f"{self.source}: the model returned shape {x.shape}, metadata says {expected}")
        out[...] = x if self._uint8 else float_to_uint8(x, self.info.value_range)
        return out

    def iter_batches(
        self,
        n: int,
        *,
        seed: int = 0,
        labels: LabelSpec = None,
        truncation: float | None = None,
        batch_size: int | None = None,
        start: int = 0,
    ) -> Iterator[Batch]:
        """Stream images start .. start+n-1 in batches; memory is bounded by the batch, not by n.

        All arguments are checked before the first batch is made, so a bad one fails at once.
        ``labels`` may be one label for all, one per image (length n), or None (cycle classes).
        """
        return self._stream(*self._checked(n, labels, batch_size, start, truncation, seed))

    def _checked(self, n, labels, batch_size, start, truncation, seed=0) -> tuple:
        """(seed, truncation, n, label source, batch size, start) of a run -- ``_stream``'s arguments -- every
        argument checked and normalised (cheap checks first: the batch size is tuned only for a request that
        is otherwise valid)."""
        n = check_count("n", n)
        start = check_count("start", start, minimum=0)
        seed = latent.check_seed(seed)
        latent.check_span(start, n)
        truncation = latent.check_truncation(truncation)
        label_source = self._label_source(labels, n)
        if batch_size is not None:
            self.check_batch(min(check_count("batch_size", batch_size), n))
        if batch_size is None:
            batch_size = (min(self.tuned_batch_size, max(DEFAULT_BATCH_SIZE, n // TUNE_MIN_BATCHES))
                          if n >= TUNE_MIN_N else DEFAULT_BATCH_SIZE)
        bs = check_count("batch_size", batch_size)
        return seed, truncation, n, label_source, bs, start

    @cached_property
    def tuned_batch_size(self) -> int:
        """The batch size with the most images/s here, measured on first use (then kept with the model).

        A call is what a stream does: with lanes, one batch per lane at once (``tuning.fastest``).
        Images do not depend on the batch size, only speed.
        """
        labels = self._label_source(None, 0)  # a run's default labels: class i % K

        def stream(b: int) -> None:
            for _ in self._stream(0, None, b * self.lanes, labels, b, 0):
                pass

        return tuning.fastest(stream, per_call=self.lanes)

    def _batch(self, seed, truncation, n, label_source, bs, start, off: int, out: np.ndarray | None = None, *,
               one_lane: bool = False) -> Batch:
        """Batch ``off // bs`` of a checked run (``_checked``): images start+off .. of at most bs, made in place
        in ``out`` (n, H, W, C) where given."""
        idx = latent.index_range(start + off, start + min(off + bs, n))
        z = latent.draw_latents(seed, idx, self.nz, self.prior, truncation)  # checked once for the run
        ys = label_source(off, idx)
        images = self._run(z, ys, None if out is None else out[off : off + len(idx)], one_lane=one_lane)
        return Batch(start=start + off, images=images, labels=ys)

    def _stream(self, seed, truncation, n, label_source, bs, start, out: np.ndarray | None = None) -> Iterator[Batch]:
        """Batches of images start .. start+n-1 of a checked run; with ``out`` (n, H, W, C) each batch is made in
        place there.

        With lanes and more than one batch, ``lanes`` batches are made at once, one whole batch per lane,
        and yielded in order: while the caller holds batch k, batches k+1 .. k+lanes are being made.
        """
        lanes = self._lanes
        piped = lanes is not None and n > bs
        make = functools.partial(self._batch, seed, truncation, n, label_source, bs, start, out=out, one_lane=piped)
        offsets = iter(range(0, n, bs))
        if not piped:
            yield from map(make, offsets)
            return
        pending = deque(lanes.submit(make, off) for off in itertools.islice(offsets, lanes.count))
        try:
            while pending:
                batch = pending.popleft().result()
                if (off := next(offsets, None)) is not None:
                    pending.append(lanes.submit(make, off))
                yield batch
        finally:  # a caller that stops early: batches not started are dropped
            for future in pending:
                future.cancel()

    def sample(
        self,
        n: int,
        *,
        seed: int = 0,
        labels: LabelSpec = None,
        truncation: float | None = None,
        batch_size: int | None = None,
        start: int = 0,
    ) -> np.ndarray:
        """``n`` images as (n, H, W, C) uint8; see ``iter_batches`` for the arguments. The whole result is one
        array: n that cannot fit in memory is a ``ParameterError`` at once (``iter_batches`` streams any n)."""
        n = check_count("n", n)
        h, w, c = self.image_shape
        check_fits(n * h * w * c, f"sample({n:,}) of {h}x{w}x{c} images",
                   hint="stream them with iter_batches or generate_run (memory bounded by the batch)")
        run = self._checked(n, labels, batch_size, start, truncation, seed)
        out = np.empty((n, h, w, c), dtype=np.uint8)
        for _ in self._stream(*run, out=out):  # each batch is made in place in out
            pass
        return out

    def interpolate(
        self,
        a: int,
        b: int,
        steps: int,
        *,
        seed: int = 0,
        label: int | str | None = None,
        method: str = "slerp",
        truncation: float | None = None,
    ) -> np.ndarray:
        """Images along the path between the latents of image ``a`` and image ``b``: (steps, H, W, C)."""
        self.check_batch(check_count("steps", steps, minimum=2), "an interpolation")
        za = self.latents(1, seed=seed, start=a, truncation=truncation)[0]
        zb = self.latents(1, seed=seed, start=b, truncation=truncation)[0]
        z = latent.project(latent.interpolate(za, zb, steps, method=method), self.prior)
        return self.render(z, label if label is not None else (0 if self.info.conditional else None))

    def arithmetic(
        self,
        a: Sequence[int],
        b: Sequence[int],
        c: Sequence[int],
        *,
        seed: int = 0,
        label: int | str | None = None,
        truncation: float | None = None,
    ) -> np.ndarray:
        """DCGAN vector arithmetic on groups of images (by index): mean(a) - mean(b) + mean(c).

        Returns (H, W, C) uint8; the paper averages three images per group for a stable concept.
        """
        groups = []
        for group in (a, b, c):
            idx = latent.as_indices(list(group))
            if idx.size == 0:
                raise ParameterError("each group needs at least one image index >= 0")
            groups.append(latent.mean_latent(latent.sample_latents(seed, idx, self.nz, prior=self.prior, truncation=truncation)))
        z = latent.arithmetic(*groups, prior=self.prior)[None]  # (1, nz)
        return self.render(z, label if label is not None else (0 if self.info.conditional else None))[0]


def _check(info: ModelInfo) -> str | None:
    if not 1 <= info.nz <= MAX_NZ:
        return f"nz must be in 1..{MAX_NZ}, got {info.nz}"
    if info.prior not in latent.PRIORS:
        return f"prior {info.prior!r} is not one of {', '.join(latent.PRIORS)}"
    return fixed_image_shape(info)


def _rows(info: ModelInfo) -> list[tuple[str, str]]:
    h, w, c = info.image_shape
    return [("image", f"{h}x{w}x{c}"), ("latent", f"{info.nz} ({info.prior})")]


def _bench(gen: Generator) -> tuple[Any, float | None]:
    """``sample`` of fresh indices each call: nothing is cached anywhere."""
    counter = iter(range(0, 1 << 62, 1 << 20))
    return (lambda b: gen.sample(b, start=next(counter), batch_size=b)), gen.info.flops or None


GENERATOR = register(Kind(
    name="generator", model_class=Generator,
    inputs="z (N, nz) float32 latents [, label (N,) int64 class indices]",
    outputs="images (N, H, W, C) uint8 (or float (N, C, H, W) in value_range, older files)",
    fields=("nz", "prior", "num_classes", "class_names"),
    check=_check, shape=lambda info: "x".join(map(str, info.image_shape)), rows=_rows, bench=_bench, lanes=True,
))
