"""The one place that builds onnxruntime sessions: providers explicit and checked, threads a parameter.

onnxruntime falls back to the CPU silently when a requested provider cannot start; here asking for
``cuda`` and getting anything else is an error. Only ``auto`` may pick what is available.
"""

from __future__ import annotations

import os
from typing import Any

from ganrt.core.errors import DeviceError, MissingDependencyError, ModelFormatError, ParameterError
from ganrt.core.run import ort_reason
from ganrt.core.schema import METADATA_KEY, ModelInfo

# device name -> onnxruntime provider: the one list to extend for another execution provider
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
DEVICES = (*PROVIDERS, "auto")
MAX_THREADS = 1024  # onnxruntime threads per session: more aborts the process (it tries to start them all)
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
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
            raise ParameterError(f"threads must be an integer in 1..{MAX_THREADS} (or None for one per core), got {threads!r}")
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def _provider_list(device: str, available: list[str], *, cuda_graph: bool = False) -> list[Any]:
    """onnxruntime's providers argument for ``device``: accelerators first, with their options, CPU last."""
    cuda = {**_CUDA_OPTIONS, "enable_cuda_graph": "1"} if cuda_graph else _CUDA_OPTIONS
    if device == "tensorrt":
        return [(PROVIDERS["tensorrt"], _TRT_OPTIONS), (PROVIDERS["cuda"], cuda), PROVIDERS["cpu"]]
    if device == "cuda" or (device == "auto" and PROVIDERS["cuda"] in available):
        return [(PROVIDERS["cuda"], cuda), PROVIDERS["cpu"]]
    return [PROVIDERS["cpu"]]


def create_session(model: str | os.PathLike | bytes, *, device: str = "cpu", threads: int | None = None,
                   source: str | None = None, spin: bool = True, cuda_graph: bool = False) -> Any:
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
    if device in ("cuda", "tensorrt") and PROVIDERS[device] not in available:
        raise DeviceError(
            f"device '{device}' needs onnxruntime's {PROVIDERS[device]}, but this onnxruntime offers only "
            f"{', '.join(available)}; install 'ganrt[gpu]' (onnxruntime-gpu, without onnxruntime) or use --device cpu"
        )
    providers = _provider_list(device, available, cuda_graph=cuda_graph)
    model_arg = model if isinstance(model, bytes) else str(model)
    options = _options(threads, spin)  # a bad thread count is its own error, not "not a valid ONNX model"
    try:
        session = ort.InferenceSession(model_arg, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own pybind types for every malformed file
        if device == "auto" and len(providers) > 1:
            return create_session(model, device="cpu", threads=threads, source=source, spin=spin)
        raise ModelFormatError(f"{source} is not a valid ONNX model: {ort_reason(exc)}") from None
    if device in ("cuda", "tensorrt") and session.get_providers()[0] != PROVIDERS[device]:
        raise DeviceError(
            f"{PROVIDERS[device]} did not start for {source} (onnxruntime gave {session.get_providers()}); "
            "check the CUDA, cuDNN (and TensorRT) libraries, or use --device cpu"
        )
    return session


def provider_session(model: str | os.PathLike, provider: str, *, threads: int | None = None) -> Any:
    """A session on exactly ``provider`` (``doctor`` probes each one); ``DeviceError`` if it does not start."""
    ort = onnxruntime()
    options = _options(threads)
    try:
        session = ort.InferenceSession(str(model), sess_options=options, providers=[provider])
    except Exception as exc:  # a provider's own pybind error: missing libraries, bad options
        raise DeviceError(f"{provider} did not start: {ort_reason(exc)}") from None
    if session.get_providers()[0] != provider:
        raise DeviceError(f"{provider} did not start (onnxruntime gave {session.get_providers()})")
    return session


def device_of(provider: str) -> str:
    """The ``device`` that asks for ``provider`` (``cpu`` for any other): how a recorded run is replayed."""
    return next((device for device, name in PROVIDERS.items() if name == provider), "cpu")


def session_device(session: Any) -> str:
    """The kind of device a session runs on: ``cuda`` (CUDA or TensorRT) or ``cpu``."""
    return "cuda" if session.get_providers()[0] in (PROVIDERS["cuda"], PROVIDERS["tensorrt"]) else "cpu"


def read_info(session: Any, *, source: str) -> ModelInfo:
    """The ganrt settings stored in a session's model file."""
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ModelFormatError(
            f"{source} is an ONNX model but not a ganrt model (no '{METADATA_KEY}' metadata); export it with ganrt-export"
        )
    return ModelInfo.from_json(meta[METADATA_KEY], source=source)


