"""``load()``: a model file -> the class of its kind, configured from the file's metadata."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ganrt.kinds  # noqa: F401  (registers every kind before a file is read)
from ganrt.core.bundled import resolve_model
from ganrt.core.errors import ModelKindError, ParameterError
from ganrt.core.kind import KINDS, article
from ganrt.core.modelfile import check_model_file
from ganrt.core.run import limit_calls
from ganrt.core.session import create_session, read_info, session_device


def load(
    name_or_path: str | Path,
    *,
    device: str = "cpu",
    threads: int | None = None,
    kind: str | None = None,
    spin: bool = True,
    cuda_graph: bool = False,
    lanes: int | None = None,
    timeout: float | None = None,
    variant: str | None = None,
) -> Any:
    """Load a bundled model by name, or a ganrt ONNX file by path.

    Returns the class of the file's kind (``Generator``, ``Upscaler``, ``Translator``, ``Classifier``), configured from the
    file's metadata. ``device`` is ``cpu``, ``cuda`` (an error if CUDA cannot run it), ``tensorrt``
    (TensorRT, then CUDA for what it cannot take) or ``auto``; ``threads`` None lets onnxruntime use one
    thread per core; ``spin`` False keeps idle onnxruntime threads from busy-waiting (for processes that
    do other work between calls). ``kind`` ("generator", ...) raises ``ModelKindError`` when the file holds
    another kind of model. ``cuda_graph`` (generators on ``cuda``): capture each batch size's kernels once
    and replay them (``core.graphs.GraphRunner``). ``lanes`` (generators on the CPU): that many concurrent
    single-threaded runs of a second session -- a stream makes that many whole batches at once, a single
    batch of at least ``LANE_MIN`` images per lane is split; None: one lane per thread (``threads``, or the
    cores), 1: off. Images do not depend on it. ``timeout``: seconds one onnxruntime call may run before it is
    stopped (``InferenceError``; None: no limit) -- a model that never ends cannot hang the caller.
    ``close()`` (or a ``with`` block) releases the sessions. ``variant="fastest"`` (CPU): of the float32 file
    and its int8 sibling (``NAME-int8``), the one that ran fastest on this CPU, measured once and cached
    (``kinds.variants``); None loads the file as named.
    """
    if variant is not None:
        if variant != "fastest":
            raise ParameterError(f"variant must be 'fastest' or None (the file as named), got {variant!r}")
        if device != "cpu":
            raise ParameterError("variant='fastest' is measured on the CPU; name the file for another device")
        from ganrt.kinds.variants import fastest_variant

        name_or_path = fastest_variant(str(name_or_path), threads=threads).fastest
    if lanes is not None and (isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1):
        raise ParameterError(f"lanes must be an integer >= 1 (or None for one per thread), got {lanes!r}")
    path = resolve_model(name_or_path)
    source = str(name_or_path)
    check_model_file(path, source=source)
    session = limit_calls(create_session(path, device=device, threads=threads, source=source, spin=spin,
                                         cuda_graph=cuda_graph), timeout)
    info = read_info(session, source=source)
    if kind is not None and info.kind != kind:
        raise ModelKindError(f"'{source}' is {article(info.kind)} model, not {article(kind)}; "
                             "`ganrt models` lists each model's kind")
    description = KINDS[info.kind]
    if not description.lanes:
        if cuda_graph:
            raise ParameterError(f"CUDA graphs are for generators; '{source}' is {info.kind}")
        return description.model_class(session, info, source=source, path=path)
    if cuda_graph:
        return description.model_class(session, info, source=source, path=path, graphs="cuda")
    return description.model_class(session, info, source=source, path=path,
                                   lanes=_lanes(path, session, lanes, threads, spin, source, timeout))


def _lanes(path: Path, session: Any, lanes: int | None, threads: int | None, spin: bool, source: str,
           timeout: float | None = None) -> tuple[Any, int] | None:
    """(single-threaded session, lane count) for a CPU generator, or None: lanes off, or on a GPU."""
    count = lanes if lanes is not None else (threads or os.cpu_count() or 1)
    if count < 2 or session_device(session) != "cpu":
        return None
    return limit_calls(create_session(path, device="cpu", threads=1, source=source, spin=spin), timeout), count
