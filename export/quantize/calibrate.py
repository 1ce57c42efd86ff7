"""Static QDQ quantization: the calibration data, which nodes stay float, and onnxruntime's ``quantize_static``.

A generator is first rewritten (``rewrite.py``); then ``onnxruntime.quantization.quantize_static`` makes
a QDQ graph (int8 per-channel weights, uint8 activations: the u8s8 VNNI path) calibrated on latents
drawn from the model's own prior. The first layer and its inputs stay float (rounding the latent to
8 bits costs most of the accuracy, the layer ~1% of the work); the last layer is int8 with Tanh's
input quantized on a fixed [-3.5, 3.5]; Tanh and the in-graph uint8 post-processing stay float. A
DequantizeLinear in front of a DepthToSpace/crop that feeds float ops is moved after them, so they
move uint8 values.

An upscaler is quantized as it is: every Conv, calibrated on patches of the training photos.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ganrt.core.schema import ModelInfo

from .config import QuantizationError, QuantizeConfig, generator_feeds
from .rewrite import check_rewrite, rewrite_conv_transpose


class _NoPreprocessHint(logging.Filter):
    """quantize_static logs a hint to run its shape pre-processing on every call; the rewritten graph
    has no shapes it would add, so the hint is noise on the CLI's stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage()


class GeneratorCalibration:
    """Calibration batches for a generator: its inputs (``generator_feeds``) for ``config.calibration_n``
    latents of run ``config.calibration_seed``, ``batch`` at a time. onnxruntime.quantization's
    CalibrationDataReader protocol: ``get_next`` -> feeds or None."""

    def __init__(self, info: ModelInfo, config: QuantizeConfig, *, batch: int = 64) -> None:
        self._batches = iter([generator_feeds(info, config.calibration_seed, s, min(batch, config.calibration_n - s))
                              for s in range(0, config.calibration_n, batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


class _PhotoCalibration:
    """Calibration batches for an upscaler: (8, 3, side, side) low-resolution patches in [0, 1] of the
    training photos, degraded as in training (the evaluation photos are kept for the gate)."""

    def __init__(self, scale: int, config: QuantizeConfig, *, side: int = 64, batch: int = 8) -> None:
        from ..data import degrade, load_photos

        rng = np.random.default_rng(config.calibration_seed)
        lows = [low for low in (degrade(photo, scale)[1] for _, photo in load_photos("train")) if min(low.shape[:2]) >= side]
        patches = []
        for i in range(config.calibration_n // 16):  # 512 -> 32 patches of 64x64: ranges settle well before that
            low = lows[i % len(lows)]
            y, x = rng.integers(0, low.shape[0] - side + 1), rng.integers(0, low.shape[1] - side + 1)
            patches.append(low[y : y + side, x : x + side].transpose(2, 0, 1).astype(np.float32) / 255.0)  # (3, side, side)
        self._batches = iter([{"image": np.stack(patches[i : i + batch])} for i in range(0, len(patches), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _float_nodes(graph: onnx.GraphProto, *, config: QuantizeConfig) -> list[str]:
    """Names of the nodes that stay float: everything after the last Conv (Tanh, post-processing);
    with ``keep_last_float`` that Conv too; with ``keep_first_float`` everything up to the first Conv
    and the Conv itself (the latent is never rounded to 8 bits)."""
    convs = [i for i, n in enumerate(graph.node) if n.op_type in ("Conv", "Gemm")]
    if not convs:
        raise QuantizationError("no Conv left after the rewrite: not a DCGAN-style generator")
    last = convs[-1]
    tail = [i for i in range(last + 1, len(graph.node)) if graph.node[i].op_type not in _MOVERS]
    start = last if config.keep_last_float or not tail else tail[0]
    names = [n.name for n in graph.node[start:]]
    if config.keep_first_float:
        names += [n.name for n in graph.node[: convs[0] + 1]]
    return names


_MOVERS = ("DepthToSpace", "Slice", "Transpose", "Reshape")


def _last_conv_tensors(graph: onnx.GraphProto) -> list[str]:
    """The last Conv's output and the outputs of the DepthToSpace/Slice after it: (N, C, S, S) before Tanh."""
    last = [i for i, n in enumerate(graph.node) if n.op_type == "Conv"][-1]
    names = [graph.node[last].output[0]]
    for node in graph.node[last + 1 :]:
        if node.op_type not in _MOVERS or node.input[0] != names[-1]:
            break
        names.append(node.output[0])
    return names  # ops that only move (or drop) values: they commute with a per-tensor DequantizeLinear


def _sink_dequantize(graph: onnx.GraphProto) -> int:
    """Move each per-tensor DequantizeLinear past the DepthToSpace/Slice chain after it when that chain
    feeds float ops (the last layer's input): the chain then moves uint8 values, a quarter of the bytes,
    and is dequantized once, cropped. Returns how many were moved. Chains that end in a QuantizeLinear
    are left alone: onnxruntime already drops that Q/DQ pair and runs the chain on uint8."""
    inits = {t.name for t in graph.initializer}
    scalars = {t.name for t in graph.initializer if not t.dims}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    moved = 0
    for dq in [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in inits]:
        if not set(dq.input[1:]) <= scalars:
            continue
        chain, tensor = [], dq.output[0]
        while len(consumers.get(tensor, [])) == 1 and consumers[tensor][0].op_type in _MOVERS:
            chain.append(consumers[tensor][0])
            tensor = chain[-1].output[0]
        users = consumers.get(tensor, [])
        if not chain or not users or any(u.op_type == "QuantizeLinear" for u in users):
            continue
        # q -> DQ -> movers -> float users   becomes   q -> movers -> DQ -> float users
        chain[0].input[0] = dq.input[0]
        for node in chain:
            node.output[0] = f"{node.output[0]}_q"
        for a, b in zip(chain, chain[1:]):
            b.input[0] = a.output[0]
        dq.input[0], dq.output[0] = chain[-1].output[0], tensor
        nodes = [n for n in graph.node if n is not dq]
        nodes.insert(nodes.index(chain[-1]) + 1, dq)
        del graph.node[:]
        graph.node.extend(nodes)
        moved += 1
    return moved


def _quantize_static(data: bytes, make_reader: Callable[[], Any], *, source: str, activation_type: Any, calibrate_method: Any,
                     nodes_to_exclude: list[str] | None = None, op_types_to_quantize: list[str] | None = None,
                     extra_options: dict[str, Any] | None = None) -> onnx.ModelProto:
    """The QDQ graph ``quantize_static`` makes of the float graph ``data`` (int8 per-channel weights),
    calibrated on the batches of ``make_reader()``; its errors as QuantizationError (the reader's too: it
    is made inside), its pre-processing hint muted."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory(prefix="ganrt-quant-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        hint = _NoPreprocessHint()
        logging.getLogger().addFilter(hint)
        try:
            quantize_static(str(src), str(dst), make_reader(), quant_format=QuantFormat.QDQ, activation_type=activation_type,
                            weight_type=QuantType.QInt8, per_channel=True, calibrate_method=calibrate_method,
                            nodes_to_exclude=nodes_to_exclude, op_types_to_quantize=op_types_to_quantize,
                            extra_options=extra_options)
        except Exception as exc:  # onnxruntime.quantization raises plain exceptions of many kinds
            raise QuantizationError(f"{source}: onnxruntime.quantization failed: {str(exc).splitlines()[0][:200]}") from None
        finally:
            logging.getLogger().removeFilter(hint)
        return onnx.load(dst)


def quantize_graph(proto: onnx.ModelProto, info: ModelInfo, *, config: QuantizeConfig,
                   source: str = "model") -> tuple[onnx.ModelProto, int, float]:
    """(QDQ int8 graph, ConvTransposes rewritten, the rewrite's max abs difference) of a float32
    generator graph, before any quality check (``quantize_generator`` adds the gate and metadata)."""
    from onnxruntime.quantization import CalibrationMethod, QuantType

    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for node in proto.graph.node:  # names are how nodes_to_exclude finds nodes
        node.name = node.name or f"{node.op_type}_{node.output[0]}"
    rewritten, count = rewrite_conv_transpose(proto, mode=config.rewrite)
    if count == 0:
        raise QuantizationError(f"{source}: no ConvTranspose of the DCGAN shape to rewrite")
    rewrite_diff = check_rewrite(proto, rewritten, info)
    excluded = _float_nodes(rewritten.graph, config=config)
    overrides = {}
    if config.pre_tanh_range > 0 and not config.keep_last_float:
        r = float(config.pre_tanh_range)
        overrides = {name: [{"rmin": np.float32(-r), "rmax": np.float32(r)}] for name in _last_conv_tensors(rewritten.graph)}
    act = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}.get(config.activation_type)
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}.get(config.calibrate_method)
    if act is None or method is None:
        raise QuantizationError(f"activation_type {config.activation_type!r} / calibrate_method {config.calibrate_method!r} "
                                "unknown")
    qproto = _quantize_static(rewritten.SerializeToString(), lambda: GeneratorCalibration(info, config), source=source,
                              activation_type=act, calibrate_method=method, nodes_to_exclude=excluded,
                              extra_options={"ActivationSymmetric": config.activation_type == "int8",
                                             "TensorQuantOverrides": overrides})
    _sink_dequantize(qproto.graph)
    onnx.checker.check_model(qproto)
    return qproto, count, rewrite_diff


def quantize_upscaler_graph(data: bytes, info: ModelInfo, *, config: QuantizeConfig, source: str = "model") -> onnx.ModelProto:
    """The QDQ int8 graph of a float32 upscaler file's bytes, before any quality check (``quantize_upscaler``
    adds the gate and metadata): every Conv as QLinearConv (int8 per-channel weights, uint8 activations,
    calibrated on training-photo patches); the nearest upsampling and the residual sum stay float."""
    from onnxruntime.quantization import CalibrationMethod, QuantType

    return _quantize_static(data, lambda: _PhotoCalibration(info.scale, config), source=source, activation_type=QuantType.QUInt8,
                            calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv"])
