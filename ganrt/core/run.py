"""Running a session: onnxruntime's failures as one typed line (``InferenceError``), plain runs and IO-bound
runs that write straight into a caller's numpy array, each stoppable while it runs.

Every call gets its own ``RunOptions``, listed while it runs: Ctrl-C (SIGINT, through ``watch_interrupts``)
and a session's per-call time limit (``limit_calls``: ``load(timeout=...)``, ``--timeout``) set its
``terminate`` flag, which onnxruntime checks between nodes, Loop iterations included. A model that never
ends (a Loop of 2**62 iterations) is stopped there; Python's own handler cannot run while onnxruntime holds
the main thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Iterator
from typing import Any

from ganrt.core.errors import InferenceError, ParameterError

_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : (This is an invalid model\. )?")
_SOURCE_LOCATION = re.compile(r"^/\S+:\d+ .*?\) ")  # "/onnxruntime_src/...h:46 void f(...) " before the message
_UNKNOWN_OP = re.compile(r"No Op registered for (\S+) with domain_version of (\d+)")
_UNKNOWN_DOMAIN = re.compile(r"No opset import for domain '([^']*)'")
_UNREGISTERED = re.compile(r"(\S+?)(?:\(-?\d+\))? is not a registered function/op")


def ort_reason(exc: BaseException) -> str:
    """onnxruntime's error as one short line: its codes, source locations and node dumps left out."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    for pattern, say in ((_UNKNOWN_OP, "unknown operator '{}' (opset {}): onnxruntime has no kernel for it"),
                         (_UNKNOWN_DOMAIN, "operator domain '{}' is not declared in the model's opset imports"),
                         (_UNREGISTERED, "unknown operator '{}': onnxruntime has no kernel for it")):
        m = pattern.search(text)
        if m:
            return say.format(*m.groups())
    first = _SOURCE_LOCATION.sub("", _ORT_PREFIX.sub("", first))
    return first[:200]


_TIMEOUT = "_ganrt_timeout_s"  # a session's per-call time limit (an attribute of the session: set by limit_calls)
_calls: dict[Any, str] = {}  # RunOptions of the calls under way, in every thread -> "" or why they were stopped
_calls_lock = threading.Lock()
_stopping: list[str] = []  # once interrupted (in a CLI process), calls that start are stopped at once
_watching: list[bool] = []  # watch_interrupts has run in this process


_default_timeout: list[float | None] = [None]  # the CLI's --timeout: sessions without a limit of their own


def check_timeout(timeout: float | None) -> float | None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < 1e9):
        raise ParameterError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    return None if timeout is None else float(timeout)


def set_default_timeout(timeout: float | None) -> None:
    """The time limit of every call of a session that has none of its own (``ganrt ... --timeout S``)."""
    _default_timeout[0] = check_timeout(timeout)


def limit_calls(session: Any, timeout: float | None) -> Any:
    """Stop every call of ``session`` that runs longer than ``timeout`` seconds (None: no limit); returns it."""
    if check_timeout(timeout) is not None:
        setattr(session, _TIMEOUT, float(timeout))
    return session


def _stop(options: Any, why: str) -> None:
    with _calls_lock:
        if options in _calls and not _calls[options]:
            _calls[options] = why
            options.terminate = True


def stop_all(why: str) -> None:
    """Stop every onnxruntime call under way (and, from now on, every call that starts)."""
    with _calls_lock:
        if not _stopping:
            _stopping.append(why)
        for options in [o for o, stopped in _calls.items() if not stopped]:
            _calls[options] = why
            options.terminate = True


def watch_interrupts() -> None:
    """Make Ctrl-C (SIGINT) stop onnxruntime calls under way, in any thread. Call from the main thread of a
    process that ends on KeyboardInterrupt (the CLI): the signal is written to a pipe that a watcher thread
    reads while onnxruntime holds the main thread; Python's KeyboardInterrupt follows when the call returns."""
    if threading.current_thread() is not threading.main_thread() or _watching:
        return
    _watching.append(True)  # once per process: a second CLI call in it (tests) keeps the first watcher
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def watch() -> None:
        while data := os.read(read_fd, 64):
            if signal.SIGINT in data:
                stop_all("interrupted")

    threading.Thread(target=watch, name="ganrt-interrupts", daemon=True).start()


GRAPH_ID_KEY = "gpu_graph_id"  # onnxruntime's CUDA-graph annotation; 0 (its default) on every plain call


@contextlib.contextmanager
def _call(session: Any, source: str, options: Any = None) -> Iterator[Any]:
    """The ``RunOptions`` of one call: listed (stop_all) and timed (limit_calls) while it runs; onnxruntime's
    failures as one typed line, a stopped call as ``InferenceError`` (time limit) or ``KeyboardInterrupt``."""
    if options is None:
        from ganrt.core.session import onnxruntime

        options = onnxruntime().RunOptions()
        options.log_severity_level = 4  # fatal only: a stopped call is reported once, by the exception, not logged too
        # the default, said explicitly: onnxruntime's run_with_iobinding reads this entry on every call, and an unset
        # one costs a C++ exception turned into a Python one, ~0.1 ms (a quarter of a batch-1 fashion-cgan call)
        options.add_run_config_entry(GRAPH_ID_KEY, "0")
    timeout = getattr(session, _TIMEOUT, None) or _default_timeout[0]
    timer = None
    with _calls_lock:
        _calls[options] = _stopping[0] if _stopping else ""
        if _stopping:
            options.terminate = True
    if timeout is not None:
        timer = threading.Timer(timeout, _stop, (options, f"stopped after {timeout:g} s"))
        timer.daemon = True
        timer.start()
    try:
        yield options
    except Exception as exc:  # onnxruntime's pybind exception types are not importable by a stable name
        why = _calls.get(options, "")
        if why == "interrupted":
            raise KeyboardInterrupt from None
        if why:
            raise InferenceError(f"{source}: {why}, the time limit of one onnxruntime call (timeout; the model "
                                 "may never end: a Loop without a bound)") from None
        raise InferenceError(f"{source}: onnxruntime failed to run the model: {ort_reason(exc)}") from None
    finally:
        if timer is not None:
            timer.cancel()
        with _calls_lock:
            _calls.pop(options, None)
            if options.terminate:
                options.terminate = False  # a caller's own RunOptions (CUDA graph slots) is reused


@contextlib.contextmanager
def run_errors(source: str) -> Iterator[None]:
    """onnxruntime's failures while running (out of memory, shape errors inside the graph) as one typed line."""
    try:
        yield
    except Exception as exc:  # onnxruntime's pybind exception types are not importable by a stable name
        raise InferenceError(f"{source}: onnxruntime failed to run the model: {ort_reason(exc)}") from None


def run_session(session: Any, outputs: list[str] | None, feeds: dict[str, Any], *, source: str,
                options: Any = None) -> list[Any]:
    """``session.run`` (with onnxruntime ``RunOptions``), errors as one typed line, stoppable (``_call``)."""
    with _call(session, source, options) as run_options:
        return session.run(outputs, feeds, run_options)


# Below this many output bytes a plain ``session.run`` and one copy into ``out`` beat IO binding: building a
# binding (three bind calls and its own C++ object) cost ~40 us more than the copy of a batch-1 fashion-cgan
# image, ~10 % of the call, and the same at batch 8 / 64 (benchmarks/NOTES.md, 2026-12-02). Larger outputs
# are bound: no second copy of a batch that may be most of the machine's memory.
BIND_MIN_BYTES = 1 << 20


def run_bound(session: Any, feeds: dict[str, Any], output: str, out: Any, *, source: str) -> None:
    """Run with IO binding: onnxruntime writes ``output`` straight into the C-contiguous numpy array
    ``out`` (on CUDA: one copy to the host, of the final uint8 images); an output under ``BIND_MIN_BYTES``
    is copied in from a plain run instead (the same bytes). Errors as in ``run_session``."""
    import numpy as np

    if not out.flags.c_contiguous:
        raise ValueError("run_bound needs a C-contiguous output array")
    if out.nbytes < BIND_MIN_BYTES:
        with _call(session, source) as run_options:
            (y,) = session.run([output], feeds, run_options)
        if y.shape != out.shape or y.dtype != out.dtype:  # what binding's fixed buffer would have refused
            raise InferenceError(f"{source}: the model returned {y.dtype} {y.shape}, expected {out.dtype} {out.shape}")
        out[...] = y
        return
    with _call(session, source) as run_options:
        binding = session.io_binding()  # one per call: a binding holds per-call state, the session does not
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        binding.bind_output(output, "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)
        session.run_with_iobinding(binding, run_options)


