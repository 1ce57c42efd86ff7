"""The one place that builds onnxruntime sessions: providers explicit and checked, threads a parameter.

onnxruntime falls back to the CPU silently when a requested provider cannot start; here asking for
``cuda`` and getting anything else is an error. Only ``auto`` may pick what is available.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any

from .errors import DeviceError, InferenceError, MissingDependencyError, ModelFormatError, ParameterError
from .metadata import METADATA_KEY, ModelInfo

DEVICES = ("cpu", "cuda", "tensorrt", "auto")
_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
# cuDNN tries every convolution algorithm once per input shape and keeps the fastest (the first
# batch of each size pays for the search; outputs then stay on the device until the final uint8 copy).
_CUDA_OPTIONS = {"cudnn_conv_algo_search": "EXHAUSTIVE", "do_copy_in_default_stream": "1"}
# TensorRT builds an engine per shape profile: cache engines next to nothing the user owns (a temp folder by default).
_TRT_OPTIONS = {"trt_engine_cache_enable": "True"}
_INSTALL_HINT = "pip install 'ganrt[cpu]' (or 'ganrt[gpu]' for CUDA; never both)"


def onnxruntime() -> Any:
    """Import onnxruntime on first use, so ``import ganrt`` works (and is fast) without it."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError(f"onnxruntime is not installed: {_INSTALL_HINT}") from None
    return ort


def available_providers() -> list[str]:
    return list(onnxruntime().get_available_providers())


def _options(threads: int | None, spin: bool = True) -> Any:
    """Session options: all graph optimisations, ``threads`` intra-op threads (None: one per core).

    ``spin`` False stops idle onnxruntime threads from busy-waiting between calls: slower calls at
    batch 1, but the cores stay free for other work in the process (``ganrt generate``'s PNG writers).
    """
    ort = onnxruntime()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: warnings about unused initialisers are noise to users
    if threads is not None:
        if int(threads) < 1:
            raise ParameterError(f"threads must be >= 1 (or None for one per core), got {threads}")
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def _provider_list(device: str, available: list[str], *, cuda_graph: bool = False) -> list[Any]:
    """onnxruntime's providers argument for ``device``: accelerators first, with their options, CPU last."""
    cuda = {**_CUDA_OPTIONS, "enable_cuda_graph": "1"} if cuda_graph else _CUDA_OPTIONS
    if device == "tensorrt":
        return [(_PROVIDERS["tensorrt"], _TRT_OPTIONS), (_PROVIDERS["cuda"], cuda), _PROVIDERS["cpu"]]
    if device == "cuda" or (device == "auto" and _PROVIDERS["cuda"] in available):
        return [(_PROVIDERS["cuda"], cuda), _PROVIDERS["cpu"]]
    return [_PROVIDERS["cpu"]]


def create_session(model: str | os.PathLike | bytes, *, device: str = "cpu", threads: int | None = None, source: str | None = None,
                   spin: bool = True, cuda_graph: bool = False) -> Any:
    """An ``InferenceSession`` for ``model`` (a path or serialized bytes) on ``device``.

    ``cpu``, ``cuda`` and ``tensorrt`` are strict; ``auto`` takes CUDA when it is available and starts, else CPU.
    ``cuda_graph`` (``cuda`` only) lets the CUDA provider capture each batch size's kernels once and
    replay them (see ``GraphRunner``, which every call on such a session must go through).
    """
    if device not in DEVICES:
        raise ParameterError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if cuda_graph and device != "cuda":
        raise ParameterError(f"CUDA graphs need device 'cuda', got {device!r}")
    ort = onnxruntime()
    source = source or (str(model) if not isinstance(model, bytes) else "model")
    available = ort.get_available_providers()
    if device in ("cuda", "tensorrt") and _PROVIDERS[device] not in available:
        raise DeviceError(
            f"device '{device}' needs onnxruntime's {_PROVIDERS[device]}, but this onnxruntime offers only "
            f"{', '.join(available)}; install 'ganrt[gpu]' (onnxruntime-gpu, without onnxruntime) or use --device cpu"
        )
    providers = _provider_list(device, available, cuda_graph=cuda_graph)
    model_arg = model if isinstance(model, bytes) else str(model)
    try:
        session = ort.InferenceSession(model_arg, sess_options=_options(threads, spin), providers=providers)
    except Exception as exc:  # onnxruntime raises its own pybind types for every malformed file
        if device == "auto" and len(providers) > 1:
            return create_session(model, device="cpu", threads=threads, source=source, spin=spin)
        raise ModelFormatError(f"{source} is not a valid ONNX model: {ort_reason(exc)}") from None
    if device in ("cuda", "tensorrt") and session.get_providers()[0] != _PROVIDERS[device]:
        raise DeviceError(
            f"{_PROVIDERS[device]} did not start for {source} (onnxruntime gave {session.get_providers()}); "
            "check the CUDA, cuDNN (and TensorRT) libraries, or use --device cpu"
        )
    return session


def provider_session(model: str | os.PathLike, provider: str, *, threads: int | None = None) -> Any:
    """A session on exactly ``provider`` (``doctor`` probes each one); ``DeviceError`` if it does not start."""
    ort = onnxruntime()
    try:
        session = ort.InferenceSession(str(model), sess_options=_options(threads), providers=[provider])
    except Exception as exc:  # a provider's own pybind error: missing libraries, bad options
        raise DeviceError(f"{provider} did not start: {ort_reason(exc)}") from None
    if session.get_providers()[0] != provider:
        raise DeviceError(f"{provider} did not start (onnxruntime gave {session.get_providers()})")
    return session


def session_device(session: Any) -> str:
    """The kind of device a session runs on: ``cuda`` (CUDA or TensorRT) or ``cpu``."""
    return "cuda" if session.get_providers()[0] in (_PROVIDERS["cuda"], _PROVIDERS["tensorrt"]) else "cpu"


def read_info(session: Any, *, source: str) -> ModelInfo:
    """The ganrt settings stored in a session's model file."""
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ModelFormatError(
            f"{source} is an ONNX model but not a ganrt model (no '{METADATA_KEY}' metadata); export it with ganrt-export"
        )
    return ModelInfo.from_json(meta[METADATA_KEY], source=source)


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
def _run_errors(source: str) -> Iterator[None]:
    """onnxruntime's failures while running (out of memory, shape errors inside the graph) as one typed line."""
    try:
        yield
    except Exception as exc:  # onnxruntime's pybind exception types are not importable by a stable name
        raise InferenceError(f"{source}: onnxruntime failed to run the model: {ort_reason(exc)}") from None


def run_session(session: Any, outputs: list[str], feeds: dict[str, Any], *, source: str, options: Any = None) -> list[Any]:
    """``session.run`` (with onnxruntime ``RunOptions``), errors as one typed line."""
    with _run_errors(source):
        return session.run(outputs, feeds, options)


def run_bound(session: Any, feeds: dict[str, Any], output: str, out: Any, *, source: str) -> None:
    """Run with IO binding: onnxruntime writes ``output`` straight into the C-contiguous numpy array
    ``out`` (on CUDA: one copy to the host, of the final uint8 images). Errors as in ``run_session``."""
    import numpy as np

    if not out.flags.c_contiguous:
        raise ValueError("run_bound needs a C-contiguous output array")
    with _run_errors(source):
        binding = session.io_binding()  # one per call: a binding holds per-call state, the session does not
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        binding.bind_output(output, "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)
        session.run_with_iobinding(binding)


class GraphRunner:
    """Runs a session through fixed, preallocated device buffers: one slot per batch size, each with its
    own bound inputs and output and its own graph id. On a session made with ``cuda_graph`` the CUDA
    provider captures a slot's kernels on its first run and replays them on later runs (no per-kernel
    launch cost: what batch-1 and small-batch calls on a GPU pay most); a captured graph reads and writes
    exactly those buffers, so new inputs are copied into them (``update_inplace``) and the output copied
    out, one call per slot at a time. On the CPU the same path runs without capture (tests use that).

    Thread-safe: a lock per slot; calls with different batch sizes run concurrently. At most
    ``MAX_SLOTS`` batch sizes get a slot (each holds device buffers and a graph); others run uncaptured.
    """

    MAX_SLOTS = 16

    def __init__(self, session: Any, output: str, *, device: str = "cuda", source: str) -> None:
        import threading

        self._session, self._output, self._device, self._source = session, output, device, source
        self._slots: dict[tuple, Any] = {}
        self._lock = threading.Lock()  # guards _slots only

    def _slot(self, feeds: dict[str, Any], out: Any) -> Any:
        import threading
        from types import SimpleNamespace

        key = tuple((name, value.shape, value.dtype.str) for name, value in sorted(feeds.items())) + (out.shape,)
        with self._lock:
            slot = self._slots.get(key)
            if slot is None and len(self._slots) >= self.MAX_SLOTS:
                return None
            if slot is None:
                ort = onnxruntime()
                inputs = {name: ort.OrtValue.ortvalue_from_numpy(value, self._device, 0) for name, value in feeds.items()}
                output = ort.OrtValue.ortvalue_from_shape_and_type(list(out.shape), out.dtype, self._device, 0)
                binding = self._session.io_binding()
                for name, value in inputs.items():
                    binding.bind_ortvalue_input(name, value)
                binding.bind_ortvalue_output(self._output, output)
                options = ort.RunOptions()
                options.add_run_config_entry("gpu_graph_id", str(len(self._slots) + 1))  # 0 and -1 mean default / no capture
                slot = self._slots[key] = SimpleNamespace(inputs=inputs, output=output, binding=binding, options=options,
                                                          lock=threading.Lock())
        return slot

    def run_uncaptured(self, outputs: list[str], feeds: dict[str, Any]) -> list[Any]:
        """``session.run`` outside any graph (graph id -1: nothing captured or replayed), for calls whose
        inputs the slots do not bind (a generator's optional label_b / alpha)."""
        options = onnxruntime().RunOptions()
        options.add_run_config_entry("gpu_graph_id", "-1")
        return run_session(self._session, outputs, feeds, source=self._source, options=options)

    def run(self, feeds: dict[str, Any], out: Any) -> None:
        """Run with ``feeds`` (C-contiguous numpy arrays); the output (``out``'s shape and type) copied into ``out``."""
        import numpy as np

        feeds = {name: np.ascontiguousarray(value) for name, value in feeds.items()}
        slot = self._slot(feeds, out)
        if slot is None:  # one batch size too many for its own graph
            out[...] = self.run_uncaptured([self._output], feeds)[0]
            return
        with _run_errors(self._source), slot.lock:
            for name, value in feeds.items():
                slot.inputs[name].update_inplace(value)
            self._session.run_with_iobinding(slot.binding, slot.options)
            out[...] = slot.output.numpy()
