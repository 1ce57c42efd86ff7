"""Serving through Triton Inference Server: a model repository for its onnxruntime backend.

``export_triton`` writes::

    OUTDIR/<name>/config.pbtxt      onnxruntime backend, dynamic batching, instance groups, optional TensorRT
    OUTDIR/<name>/1/model.onnx      the model file, unchanged (same sha256)
    OUTDIR/<name>/client.py         a client (``ganrt/triton_client.py``): latents drawn with ganrt.core.latent
    OUTDIR/<name>/client.json       what it needs: Triton's model and tensor names, batch limit, the ganrt metadata

The server only runs the network; the client draws latents with ``sample_latents(seed, indices)``
and gets uint8 images (files from older exports return floats, which it converts with
``float_to_uint8`` as ``Generator.sample`` does). So
a server on the CPU provider returns the images ``ganrt generate`` writes (byte for byte with the
same onnxruntime build and CPU, as between any two machines); on a GPU, or with
TensorRT, they agree up to that provider's floating point (as ``--device cuda`` does locally).
Triton itself is not needed to write or check the repository.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ganrt.core.errors import ModelFormatError, OutputError, ParameterError
from ganrt.io.files import atomic_write
from ganrt.kinds.generator import Generator, check_count
from ganrt.tools import triton_client
from ganrt.tools.triton_client import SETTINGS, Served

KINDS = ("cpu", "gpu")


def check_model_name(name: str, where: str) -> None:
    """A Triton model name, which becomes a folder inside OUTDIR: one plain path component (no ``/``, ``\\``,
    ``..``, leading dot, control character), however it came (``--name``, or the model file's own name)."""
    if (not isinstance(name, str) or not name or len(name) > 255 or name.startswith(".") or "/" in name or "\\" in name
            or any(ord(c) < 32 or ord(c) == 127 for c in name)):
        raise ParameterError(f"{where} {str(name)[:80]!r} is not a folder name Triton can serve (one path component, "
                             "no '/', no leading '.'): pass --name NAME")
# onnxruntime's input/output types -> Triton's data_type names
_TYPES = {"tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(double)": "TYPE_FP64",
          "tensor(int64)": "TYPE_INT64", "tensor(int32)": "TYPE_INT32", "tensor(uint8)": "TYPE_UINT8"}


@dataclass(frozen=True)
class TritonConfig:
    """How Triton serves the model; none of it changes an image.

    Defaults: batches up to 256 latents (a 32x32 generator's sweet spot on a CPU), one instance,
    and at most 100 us of queueing to form a batch: enough to merge concurrent requests, too little
    for one user to notice.
    """

    name: str | None = None  # the model's name in Triton; None: the model's own name
    max_batch_size: int = 256
    instances: int = 1  # model instances (each its own session) per device
    kind: str = "cpu"  # instance_group kind: KIND_CPU or KIND_GPU
    tensorrt: bool = False  # gpu only: run through onnxruntime's TensorRT execution provider
    tensorrt_fp16: bool = False  # TensorRT in half precision: faster, images no longer bit-equal to fp32
    preferred_batch_sizes: tuple[int, ...] = ()  # () : max_batch_size // 4 and max_batch_size
    max_queue_delay_us: int = 100

    def check(self) -> None:
        check_count("max_batch_size", self.max_batch_size)
        check_count("instances", self.instances)
        check_count("max_queue_delay_us", self.max_queue_delay_us, minimum=0)
        if self.kind not in KINDS:
            raise ParameterError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if (self.tensorrt or self.tensorrt_fp16) and self.kind != "gpu":
            raise ParameterError("TensorRT runs on GPU instances only: add --kind gpu, or leave out --tensorrt")
        if self.name is not None:
            check_model_name(self.name, "--name")
        for size in self.preferred_batch_sizes:
            if not 1 <= size <= self.max_batch_size:
                raise ParameterError(f"preferred batch size {size} is outside 1..max_batch_size ({self.max_batch_size})")

    def preferred(self) -> tuple[int, ...]:
        return self.preferred_batch_sizes or tuple(sorted({max(1, self.max_batch_size // 4), self.max_batch_size}))


class Enum(str):
    """A protobuf enum value (TYPE_FP32, KIND_CPU): written bare, where any other str is quoted."""


def _pbtxt(value: dict, indent: int = 0) -> str:
    """Protobuf text format of nested dicts (messages), lists of dicts (repeated messages), lists and scalars."""
    pad = "  " * indent
    lines = []
    for key, v in value.items():
        items = v if isinstance(v, list) and v and isinstance(v[0], dict) else [v]
        for item in items:
            if isinstance(item, dict):
                lines.append(f"{pad}{key} {{\n{_pbtxt(item, indent + 1)}{pad}}}")
            elif isinstance(item, list):
                lines.append(f"{pad}{key}: [{', '.join(_scalar(x) for x in item)}]")
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    return "".join(line + "\n" for line in lines)


def _scalar(x) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, str) and not isinstance(x, Enum):
        return json.dumps(x)
    return str(x)


def model_config(gen: Generator, config: TritonConfig) -> dict:
    """config.pbtxt as nested dicts: tensors from the model's own inputs/outputs, batch dimension left to Triton."""
    session = gen.session  # one model, read here only for its tensor names, types and shapes
    tensors = []
    for t in session.get_inputs():
        if isinstance(t.shape[0], int):
            raise ModelFormatError(f"{gen.source}: input {t.name} has a fixed batch size {t.shape[0]}; Triton's "
                                   "dynamic batching needs a dynamic first dimension (export with dynamic axes)")
        entry = {"name": t.name, "data_type": _type(gen, t), "dims": list(t.shape[1:])}
        if not entry["dims"]:  # (N,) labels: Triton needs a dim per request row; reshape gives the model (N,)
            entry["dims"], entry["reshape"] = [1], {"shape": []}
        tensors.append(entry)
    out = session.get_outputs()[0]
    h, w, c = gen.image_shape
    config.check()
    cfg = {
        "name": config.name or gen.name,
        "backend": "onnxruntime",
        "max_batch_size": config.max_batch_size,
        "input": tensors,
        # uint8 (N, H, W, C) from a graph that ends in the post-processing; float (N, C, H, W) from older files
        "output": [{"name": out.name, "data_type": _type(gen, out),
                    "dims": [h, w, c] if out.type == "tensor(uint8)" else [c, h, w]}],
        "instance_group": [{"count": config.instances, "kind": Enum(f"KIND_{config.kind.upper()}")}],
        "dynamic_batching": {"preferred_batch_size": list(config.preferred()),
                             "max_queue_delay_microseconds": config.max_queue_delay_us},
    }
    if config.tensorrt or config.tensorrt_fp16:
        trt = {"name": "tensorrt", "parameters": [
            {"key": "precision_mode", "value": "FP16" if config.tensorrt_fp16 else "FP32"},
            {"key": "max_workspace_size_bytes", "value": str(1 << 30)}]}
        cfg["optimization"] = {"execution_accelerators": {"gpu_execution_accelerator": [trt]}}
    return cfg


def _type(gen: Generator, tensor) -> str:
    if tensor.type not in _TYPES:
        raise ModelFormatError(f"{gen.source}: tensor {tensor.name} is {tensor.type}, which this exporter does not map to Triton")
    return Enum(_TYPES[tensor.type])


def export_triton(gen: Generator, outdir: str | Path, *, config: TritonConfig = TritonConfig(), overwrite: bool = False) -> Path:
    """Write ``gen`` as a Triton model repository in ``outdir`` (see the module docstring); returns the model's folder."""
    cfg = model_config(gen, config)  # checks everything before a file is written
    if config.name is None:  # the name the model file gives is checked exactly as --name: it must not leave OUTDIR
        check_model_name(cfg["name"], f"{gen.source}: the model's name")
    folder = Path(outdir) / cfg["name"]
    if folder.exists() and not overwrite:
        raise OutputError(f"{folder} exists; pass --overwrite to replace its files, or choose another OUTDIR")
    served = Served(model=cfg["name"], latent_input="z", label_input="label" if gen.info.conditional else None,
                    output=cfg["output"][0]["name"], max_batch_size=config.max_batch_size, info=gen.info)
    # every file's bytes first: nothing is created unless all of them could be made
    files = {Path("1") / "model.onnx": Path(gen.path).read_bytes(), Path(SETTINGS): served.to_json().encode(),
             Path("client.py"): Path(triton_client.__file__).read_bytes(), Path("config.pbtxt"): _pbtxt(cfg).encode()}
    _write_folder(folder, files, overwrite=overwrite)
    return folder


def _write_folder(folder: Path, files: dict[Path, bytes], *, overwrite: bool) -> None:
    """Write ``files`` into a temporary folder beside ``folder`` and rename it into place: a failure leaves no
    half-written repository (an earlier one, with ``overwrite``, is set aside and removed only after the rename)."""
    import shutil

    tmp = folder.parent / f".{folder.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"  # the umask's mode, as any folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as exc:
        raise OutputError(f"cannot create {folder}: {exc.strerror or exc}") from None
    old = None
    try:
        for name, data in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(tmp / name, data)
        if folder.exists() or folder.is_symlink():
            if not overwrite:
                raise OutputError(f"{folder} exists; pass --overwrite to replace its files, or choose another OUTDIR")
            old = folder.parent / f"{tmp.name}.old"
            os.rename(folder, old)  # a symlink is moved aside itself, never followed
        os.rename(tmp, folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not folder.exists():
            os.rename(old, folder)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(f"cannot write {folder}: {exc.strerror or exc}") from None
        raise
    if old is not None and old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    elif old is not None:
        old.unlink()
