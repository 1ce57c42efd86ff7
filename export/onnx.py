"""torch -> ONNX export with the model's settings in the file and a parity check before writing.

The parity check runs the exported graph in onnxruntime (through ganrt's own session factory)
and compares it with torch at batch sizes 1, 3 and 8: a dynamic batch axis that silently broke,
or an op that onnxruntime computes differently, fails the export and nothing is written.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper
import torch

from ganrt._version import __version__
from ganrt.core.errors import GanrtError, ParameterError
from ganrt.core.latent import sample_latents
from ganrt.core.schema import METADATA_KEY, ModelInfo
from ganrt.core.session import create_session
from ganrt.io.files import atomic_write
from ganrt.io.images import float_to_uint8

from .files import check_output
from .graph import add_label_mixing, append_uint8_output
from .models import Classifier, Generator, SRGenerator
from .train import Checkpoint, load_checkpoint

OPSET = 18  # the torch.export-based exporter's lowest well-supported opset
PARITY_BATCH_SIZES = (1, 3, 8)
PARITY_TOLERANCE = 1e-4  # max abs difference, on outputs in [-1, 1] (or logits)
EXPORT_PRECISIONS = ("float32", "int8", "float16")  # int8: generators only (export/quantize/); float16: export/half.py


class ParityError(GanrtError, RuntimeError):
    """onnxruntime's output differs from torch's beyond the tolerance: the export is refused."""


def model_from_checkpoint(ck: Checkpoint) -> torch.nn.Module:
    """The trained network of ``ck`` in eval mode: a generator (its weight average, when trained with one),
    an upscaler or a classifier."""
    if ck.kind in ("gan", "sr"):
        model = (Generator if ck.kind == "gan" else SRGenerator)(ck.model_config)
        model.load_state_dict(ck.state.get("G_ema", ck.state["G"]))  # the weight average, when trained with one
    else:
        model = Classifier(ck.model_config)
        model.load_state_dict(ck.state["model"])
    return model.eval()


def count_flops(model: torch.nn.Module, ck: Checkpoint) -> float:
    """FLOPs (2 x multiply-adds, convolutions and matmuls) per image; upscalers: per input pixel."""
    from torch.utils.flop_counter import FlopCounterMode

    side = 32
    feeds = example_inputs(ck, 1, (side, side))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(*(torch.from_numpy(v) for v in feeds.values()))
    return float(counter.get_total_flops()) / (side * side if ck.kind == "sr" else 1)


def checkpoint_info(ck: Checkpoint, name: str, description: str, flops: float = 0.0) -> ModelInfo:
    """The settings the exported file of ``ck`` carries in its metadata (kind, shapes, value range,
    classes, ``flops`` per image) and, under ``training``, how it was trained."""
    cfg = ck.model_config
    training = {
        "model_config": cfg.to_dict(),
        "train_config": ck.train_config.to_dict(),
        "epochs": ck.epoch,
        "train_seconds": round(ck.train_seconds, 1),
        "last_epoch": ck.history[-1] if ck.history else {},
    }
    if ck.kind == "sr":
        return ModelInfo(kind="upscaler", name=name, description=description, training_data=ck.data,
                         ganrt_version=__version__, image_shape=(0, 0, 3), value_range=(0.0, 1.0), scale=cfg.scale, flops=flops,
                         receptive_radius=cfg.receptive_radius, training=training)
    common = dict(name=name, description=description, training_data=ck.data, ganrt_version=__version__,
                  image_shape=(cfg.image_size, cfg.image_size, cfg.channels), class_names=ck.class_names, flops=flops)
    if ck.kind == "gan":
        if not cfg.num_classes:
            common["class_names"] = ()
        return ModelInfo(kind="generator", nz=cfg.nz, prior=ck.train_config.prior, num_classes=cfg.num_classes,
                         value_range=(-1.0, 1.0), training=training, **common)
    training["test_accuracy"] = ck.history[-1].get("test_accuracy") if ck.history else None
    return ModelInfo(kind="classifier", num_classes=cfg.num_classes, value_range=(0.0, 255.0), training=training, **common)


SR_PARITY_SIZES = ((19, 27), (32, 32), (8, 5))  # (H, W) of upscaler inputs: odd and even sizes


def example_inputs(ck: Checkpoint, batch: int, size: tuple[int, int] = (12, 12)) -> dict[str, np.ndarray]:
    """The exporter's example inputs of ``batch`` items for ``ck``'s kind (also used by the parity checks);
    ``size`` (H, W) is used by upscalers, whose inputs have any size."""
    cfg = ck.model_config
    if ck.kind == "sr":
        return {"image": np.random.default_rng(batch).random((batch, 3, *size), dtype=np.float32)}
    if ck.kind == "gan":
        feeds = {"z": sample_latents(batch, np.arange(batch), cfg.nz, prior=ck.train_config.prior)}
        if cfg.num_classes:
            feeds["label"] = (np.arange(batch) % cfg.num_classes).astype(np.int64)
        return feeds
    rng = np.random.default_rng(batch)
    return {"images": rng.integers(0, 256, (batch, cfg.image_size, cfg.image_size, cfg.channels), dtype=np.uint8)}


def _forward_arg_names(model: torch.nn.Module, count: int) -> list[str]:
    """dynamic_shapes is keyed by the names of forward's parameters (z, label / images)."""
    import inspect

    return list(inspect.signature(model.forward).parameters)[:count]


# the exported graph's output names per checkpoint kind
OUTPUT_NAMES = {"gan": ["image"], "sr": ["upscaled"], "classifier": ["logits", "features"]}


def plain_onnx(model: torch.nn.Module, example: dict[str, np.ndarray], *, outputs: list[str],
               any_size: bool = False) -> onnx.ModelProto:
    """The exporter's graph of ``model`` as it comes (no ganrt metadata or passes): dynamic batch axis N,
    and dynamic H, W with ``any_size`` (upscalers). The "plain export" a user would make by hand."""
    args = tuple(torch.from_numpy(v) for v in example.values())
    dims = {0: torch.export.Dim("N", min=1)}
    if any_size:
        dims.update({2: torch.export.Dim("H", min=1), 3: torch.export.Dim("W", min=1)})
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*axis name")  # z and label share N: intended
        program = torch.onnx.export(
            model, args, dynamo=True, opset_version=OPSET, input_names=list(example), output_names=outputs,
            dynamic_shapes={n: dims for n in _forward_arg_names(model, len(example))}, verbose=False,
        )
    return program.model_proto


def to_onnx_bytes(model: torch.nn.Module, ck: Checkpoint, info: ModelInfo) -> bytes:
    """Export ``model`` with a dynamic batch axis and ``info`` in the metadata; returns the file's bytes."""
    proto = plain_onnx(model, example_inputs(ck, 2), outputs=OUTPUT_NAMES[ck.kind], any_size=ck.kind == "sr")
    if ck.kind == "gan" and ck.model_config.num_classes:
        add_label_mixing(proto)  # optional label_b / alpha inputs: class interpolation
    proto.producer_name = "ganrt-export"
    proto.producer_version = __version__
    proto.doc_string = info.description
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, info.to_json()
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def check_postprocess(float_data: bytes, uint8_data: bytes, ck: Checkpoint, value_range: tuple[float, float]) -> None:
    """The in-graph post-processing gives exactly the bytes of the runtime's numpy conversion."""
    plain = create_session(float_data, device="cpu", source="exported model")
    final = create_session(uint8_data, device="cpu", source="exported model")
    for batch in PARITY_BATCH_SIZES:
        feeds = example_inputs(ck, batch)
        expected = float_to_uint8(plain.run(None, feeds)[0], value_range)
        got = final.run(None, feeds)[0]
        if got.shape != expected.shape or got.dtype != np.uint8 or not np.array_equal(got, expected):
            bad = int(np.sum(got != expected)) if got.shape == expected.shape else got.size
            raise ParityError(f"batch {batch}: the uint8 output differs from the float output converted in numpy "
                              f"({bad} values); nothing written")


def check_parity(model: torch.nn.Module, ck: Checkpoint, data: bytes, *, batch_sizes=PARITY_BATCH_SIZES,
                 tolerance=PARITY_TOLERANCE) -> float:
    """Max abs difference between torch and onnxruntime over ``batch_sizes`` (and, for upscalers,
    ``SR_PARITY_SIZES``); raises ParityError."""
    session = create_session(data, device="cpu", source="exported model")
    worst = 0.0
    for i, batch in enumerate(batch_sizes):  # upscalers: each batch at another image size
        feeds = example_inputs(ck, batch, SR_PARITY_SIZES[i % len(SR_PARITY_SIZES)])
        with torch.inference_mode():
            expected = model(*(torch.from_numpy(v) for v in feeds.values()))
        expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
        got = session.run(None, feeds)
        for e, g in zip(expected, got):
            if tuple(e.shape) != g.shape:
                raise ParityError(f"batch {batch}: onnxruntime output shape {g.shape} != torch {tuple(e.shape)}")
            diff = float(np.max(np.abs(e.numpy() - g))) if g.size else 0.0
            worst = max(worst, diff)
            if not diff <= tolerance:
                raise ParityError(f"batch {batch}: onnxruntime differs from torch by {diff:.3g} (> {tolerance:g}); "
                                  "nothing written")
    return worst


def export_checkpoint(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    *,
    name: str,
    description: str = "",
    overwrite: bool = False,
    precision: str = "float32",
) -> dict[str, Any]:
    """Export a training checkpoint to a ganrt ONNX file; the file is written only if parity holds
    (and, for ``precision`` int8 or float16, only if the variant passes ``export.quantize``'s quality gate)."""
    output = Path(output)
    check_output(output, overwrite=overwrite)
    if precision not in EXPORT_PRECISIONS:
        raise ParameterError(f"precision must be one of {', '.join(EXPORT_PRECISIONS)}, got {precision!r}")
    ck = load_checkpoint(checkpoint)
    if ck.kind == "translator":  # pix2pix: through byom.export_translator (size multiple and radius measured)
        if precision != "float32":
            raise ParameterError("a translator is exported in float32; `ganrt-export quantize` makes its int8 / fp16 variants")
        from .pix2pix import export_translator_checkpoint

        report = export_translator_checkpoint(ck.path, output, name=name, description=description, overwrite=overwrite)
        return {"max_abs_diff": report["torch_parity_max_abs"], "batch_sizes": list(PARITY_BATCH_SIZES), **report}
    data, report = export_module(model_from_checkpoint(ck), ck, name=name, description=description)
    if precision == "int8":
        from .quantize import quantize_generator

        data, report["quantization"] = quantize_generator(data, source=str(checkpoint))
        report["info"] = report["quantization"]["info"]
    elif precision == "float16":
        from .half import half_model

        data, report["quantization"] = half_model(data, source=str(checkpoint))
        report["info"] = report["quantization"]["info"]
    atomic_write(output, data)
    return report


def export_module(model: torch.nn.Module, ck: Checkpoint, *, name: str, description: str = "") -> tuple[bytes, dict[str, Any]]:
    """(file bytes, report) of ``model`` (eval mode) with ``ck``'s settings; ParityError if it does not hold."""
    info = checkpoint_info(ck, name, description, count_flops(model, ck))
    data = to_onnx_bytes(model, ck, info)
    worst = check_parity(model, ck, data)
    if ck.kind == "gan":
        final = append_uint8_output(data, info.value_range)
        check_postprocess(data, final, ck, info.value_range)
        data = final
    return data, {"max_abs_diff": worst, "batch_sizes": list(PARITY_BATCH_SIZES), "bytes": len(data), "info": info}
