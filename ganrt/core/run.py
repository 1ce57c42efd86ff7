"""Running a session: onnxruntime's failures as one typed line (``InferenceError``), plain runs and IO-bound
runs that write straight into a caller's numpy array."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from ganrt.core.errors import InferenceError

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


@contextlib.contextmanager
def run_errors(source: str) -> Iterator[None]:
    """onnxruntime's failures while running (out of memory, shape errors inside the graph) as one typed line."""
    try:
        yield
    except Exception as exc:  # onnxruntime's pybind exception types are not importable by a stable name
        raise InferenceError(f"{source}: onnxruntime failed to run the model: {ort_reason(exc)}") from None


def run_session(session: Any, outputs: list[str], feeds: dict[str, Any], *, source: str, options: Any = None) -> list[Any]:
    """``session.run`` (with onnxruntime ``RunOptions``), errors as one typed line."""
    with run_errors(source):
        return session.run(outputs, feeds, options)


def run_bound(session: Any, feeds: dict[str, Any], output: str, out: Any, *, source: str) -> None:
    """Run with IO binding: onnxruntime writes ``output`` straight into the C-contiguous numpy array
    ``out`` (on CUDA: one copy to the host, of the final uint8 images). Errors as in ``run_session``."""
    import numpy as np

    if not out.flags.c_contiguous:
        raise ValueError("run_bound needs a C-contiguous output array")
    with run_errors(source):
        binding = session.io_binding()  # one per call: a binding holds per-call state, the session does not
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        binding.bind_output(output, "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)
        session.run_with_iobinding(binding)


