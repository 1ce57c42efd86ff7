"""int8 generators: ConvTranspose rewritten as Conv + pixel shuffle, static QDQ quantization, a quality gate.

onnxruntime's CPU provider has no int8 ConvTranspose kernel (a quantized ConvTranspose runs
dequantized, slower than fp32), but it has QLinearConv, which uses VNNI. So each transposed
convolution of a DCGAN generator is first rewritten as an exactly equivalent Conv:

- stride 2, kernel 4, pad 1 (every upsampling layer): output row 2m + py depends on input rows
  {m - 1, m} through kernel taps {3, 1} (py = 0) and on {m, m + 1} through taps {2, 0} (py = 1),
  the same per column. One 2x2 Conv with pads 1 and 4 x Cout output channels computes all four
  phases on the (H + 1, W + 1) grid of 2x2 windows; window r holds phase 0 of output row 2r and
  phase 1 of output row 2r - 1. DepthToSpace (DCR) puts phase 1 at sub-row 0 and phase 0 at
  sub-row 1, so the (2H + 2, 2W + 2) result is the output shifted by one pixel, and a Slice crops
  the border. The multiply-adds are (H + 1)^2 / H^2 of the original (1.56x at 4x4 in, 1.06x at 32x32),
  against 2.25x for a 3x3 Conv with 4 x Cout channels.
- stride 1, kernel k, pad 0 on a 1x1 input (the first layer, latent -> k x k): a 1x1 Conv with
  k*k*Cout channels + DepthToSpace(k): a matrix product.

How the pixels are shuffled matters more than the convolutions (``phase-nhwc``, the default):
onnxruntime runs QLinearConv channels-last, and its uint8 DepthToSpace moves single values between
two layout Transposes (with the crop's Slice, ~30% of fashion-cgan's int8 time). Written channels-last
instead -- Transpose to NHWC, Reshape (N, h, w, 2, 2, C), Transpose (0, 1, 3, 2, 4, 5), Reshape, Slice,
Transpose back -- onnxruntime cancels the outer Transposes with its own and moves whole C-byte pixels:
1.3-2.5x the int8 images/s of the NCHW DepthToSpace (``benchmarks/NOTES.md``). The first layer becomes
a Gemm whose (N, k k Cout) output is already (N, k, k, Cout) channels-last.

An element-wise Relu right after a rewritten layer moves before the DepthToSpace (it commutes with
moving pixels), so onnxruntime fuses it into the quantized Conv. Then
``onnxruntime.quantization.quantize_static`` makes a QDQ graph (int8 per-channel weights, uint8
activations: the u8s8 VNNI path) calibrated on latents drawn from the model's own prior. The first
layer and its inputs stay float (rounding the latent to 8 bits costs most of the accuracy, the layer
~1% of the work); the last layer is int8 with Tanh's input quantized on a fixed [-3.5, 3.5]; Tanh
and the in-graph uint8 post-processing stay float. A DequantizeLinear in front of a DepthToSpace/crop
that feeds float ops is moved after them, so they move uint8 values.

The gate: on ``check_n`` latents, the int8 images against the fp32 images (both uint8, as the
runtime returns them) must reach ``min_psnr_db``, and where the bundled ``fashion-classifier`` fits
the images (32x32x1) its predictions must agree on ``min_agreement`` of them. A variant that fails
raises ``QuantizationError`` and nothing is written; one that passes carries its numbers in the
metadata (``training["quantization"]``) and ``precision: "int8"``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import helper

from ganrt.errors import GanrtError, ModelKindError, OutputError
from ganrt.images import atomic_write
from ganrt.latent import sample_latents
from ganrt.metadata import METADATA_KEY, ModelInfo
from ganrt.session import create_session

from .onnx import check_output

# 2x2 Conv kernel rows/cols for output phase p (0: even rows, 1: odd rows) of a stride-2, kernel-4,
# pad-1 ConvTranspose: the transposed kernel's taps applied to input rows (m - 1, m) resp. (m, m + 1)
_PHASE_TAPS = {0: [3, 1], 1: [2, 0]}
CLASSIFIER = "fashion-classifier"


class QuantizationError(GanrtError, RuntimeError):
    """An int8 variant cannot be made, or fails the quality gate against fp32: nothing is written."""


@dataclass(frozen=True)
class QuantizeConfig:
    """How a generator is quantized and checked.

    calibration_n 512: eight batches of 64; the min/max ranges settle well before that on these nets.
    check_n 2000: PSNR and classifier agreement in steps of 0.05%, enough to tell 99% from 98%.
    """

    calibration_n: int = 512
    calibration_seed: int = 1_000_003  # not the check's seed: the gate judges latents calibration never saw
    check_n: int = 2000
    check_seed: int = 0
    min_psnr_db: float = 35.0
    min_agreement: float = 0.99
    activation_type: str = "uint8"  # uint8 | int8
    calibrate_method: str = "minmax"  # minmax | percentile | entropy
    # The first layer in float: the latent (N, nz) -> (N, 16 C, 1, 1) matrix product, ~1% of the work;
    # quantizing z itself costs most of the accuracy (fashion-dcgan: 43.1 dB, 96.9% agreement -> 47.6 dB, 98.8%).
    keep_first_float: bool = True
    # The last layer (-> Tanh) in float: accurate even with the calibrated pre-Tanh range, but its float
    # Conv, layout reorder and dequantized input cost ~15% of the int8 time (DCGAN-64).
    keep_last_float: bool = False
    # With the last layer in int8: Tanh's input quantized on [-r, r] instead of the calibrated range, whose
    # saturated tails (|x| >> 3, where tanh is flat) waste the 256 levels; 0 = calibrated. tanh(3.5) = 0.998:
    # clipping costs < 0.3 of 255 levels. fashion-cgan: calibrated 34.5 dB, r 2.5 43.2 dB, 3.5 48.5 dB, 5 47.6 dB.
    pre_tanh_range: float = 3.5
    classifier: str = CLASSIFIER  # model name or path judging agreement where its image shape fits; "" = none
    # see REWRITES: phase-nhwc (2x2 Conv, pixels shuffled channels-last, crop; the first layer a Gemm),
    # phase (the same with an NCHW DepthToSpace), split (four 2x2 Convs, Concat), conv3x3
    rewrite: str = "phase-nhwc"


# --- the exact rewrite ------------------------------------------------------------------------------

def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _phase_weight(w: np.ndarray) -> np.ndarray:
    """ConvTranspose weight (Cin, Cout, 4, 4) -> 2x2 Conv weight (4 Cout, Cin, 2, 2).

    Output channel block b = 2 sy + sx (DepthToSpace DCR sub-position (sy, sx)) holds phase
    (1 - sy, 1 - sx): window r of the padded input gives phase 0 of row 2r, phase 1 of row 2r - 1."""
    blocks = []
    for sy in (0, 1):
        for sx in (0, 1):
            taps_y, taps_x = _PHASE_TAPS[1 - sy], _PHASE_TAPS[1 - sx]
            blocks.append(w[:, :, taps_y][:, :, :, taps_x].transpose(1, 0, 2, 3))  # (Cout, Cin, 2, 2)
    return np.concatenate(blocks, axis=0)


def _conv3x3_weight(w: np.ndarray) -> np.ndarray:
    """ConvTranspose weight (Cin, Cout, 4, 4) -> 3x3 Conv weight (4 Cout, Cin, 3, 3), pads 1, no crop:
    phase py reads input rows (m - 1, m) (py = 0, kernel rows 0, 1) or (m, m + 1) (py = 1, rows 1, 2);
    channel block 2 py + px, the unused row/column of each block is zero (the 2.25x multiply-adds)."""
    cin, cout = w.shape[:2]
    out = np.zeros((4, cout, cin, 3, 3), w.dtype)
    for py in (0, 1):
        for px in (0, 1):
            ty, tx = _PHASE_TAPS[py], _PHASE_TAPS[px]
            out[2 * py + px, :, :, py : py + 2, px : px + 2] = w[:, :, ty][:, :, :, tx].transpose(1, 0, 2, 3)
    return out.reshape(4 * cout, cin, 3, 3)


def _is_up2(a: dict[str, Any], w: np.ndarray) -> bool:
    return (list(a.get("strides", [1, 1])) == [2, 2] and list(a.get("pads", [0] * 4)) == [1] * 4
            and w.shape[2:] == (4, 4) and a.get("group", 1) == 1 and list(a.get("dilations", [1, 1])) == [1, 1]
            and not any(a.get("output_padding", [0, 0])) and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))


def _is_from_1x1(a: dict[str, Any], w: np.ndarray, in_shape: list | None) -> bool:
    return (in_shape is not None and in_shape[2:] == [1, 1] and list(a.get("strides", [1, 1])) == [1, 1]
            and not any(a.get("pads", [0] * 4)) and w.shape[2] == w.shape[3] and a.get("group", 1) == 1
            and not any(a.get("output_padding", [0, 0])))


REWRITES = ("phase-nhwc", "phase", "split", "conv3x3")
_ACTIVATIONS = ("Relu", "LeakyRelu")  # element-wise, moved from after the layer to right after its Conv


def _activation(like: onnx.NodeProto, source: str, target: str) -> onnx.NodeProto:
    """A copy of the activation node ``like`` (same op and attributes) from ``source`` to ``target``."""
    node = helper.make_node(like.op_type, [source], [target], name=target)
    node.attribute.extend(like.attribute)
    return node


def _split_phases(node: onnx.NodeProto, w: np.ndarray, bias: np.ndarray, *, act: onnx.NodeProto | None, final: str,
                  new_inits: list[onnx.TensorProto]) -> list[onnx.NodeProto]:
    """Four 2x2 Convs, one per output phase (py, px), each padded on its own sides (pads top 1 - py,
    left 1 - px, bottom py, right px) so it makes exactly (H, W): the original multiply-adds, no crop;
    Concat in DepthToSpace DCR order (block 2 py + px) and DepthToSpace into ``final``."""
    p = f"{node.name or node.output[0]}_rw"
    nodes, phases = [], []
    for py in (0, 1):
        for px in (0, 1):
            q = f"{p}{py}{px}"
            wp = w[:, :, _PHASE_TAPS[py]][:, :, :, _PHASE_TAPS[px]].transpose(1, 0, 2, 3)  # (Cout, Cin, 2, 2)
            new_inits += [onnx.numpy_helper.from_array(np.ascontiguousarray(wp, np.float32), f"{q}_w"),
                          onnx.numpy_helper.from_array(bias.astype(np.float32), f"{q}_b")]
            nodes.append(helper.make_node("Conv", [node.input[0], f"{q}_w", f"{q}_b"], [f"{q}_conv"], name=f"{q}_conv",
                                          kernel_shape=[2, 2], pads=[1 - py, 1 - px, py, px]))
            phases.append(f"{q}_conv")
            if act is not None:
                nodes.append(_activation(act, f"{q}_conv", f"{q}_relu"))
                phases[-1] = f"{q}_relu"
    nodes.append(helper.make_node("Concat", phases, [f"{p}_cat"], name=f"{p}_cat", axis=1))  # (N, 4 Cout, H, W)
    nodes.append(helper.make_node("DepthToSpace", [f"{p}_cat"], [final], name=f"{p}_d2s", blocksize=2, mode="DCR"))
    return nodes


def _shuffle_nhwc(p: str, conv_out: str, final: str, cout: int, h: int, w: int, new_inits: list) -> list[onnx.NodeProto]:
    """DepthToSpace(DCR, 2) + the one-pixel crop of (N, 4 Cout, h, w), done channels-last:
    (N, h, w, [sy, sx, Cout]) -> (N, h, sy, w, sx, Cout) moves whole Cout-channel pixels, where an NCHW
    DepthToSpace moves single values. onnxruntime runs QLinearConv channels-last and puts a Transpose
    to NCHW after it and back before the next one: those cancel with the two here."""
    new_inits += [onnx.numpy_helper.from_array(np.array(v, np.int64), f"{p}_{k}")
                  for k, v in (("split_shape", [0, h, w, 2, 2, cout]), ("merged_shape", [0, 2 * h, 2 * w, cout]),
                               ("starts", [1, 1]), ("ends", [-1, -1]), ("axes", [1, 2]),
                               ("nchw_shape", [0, 1, 2 * h - 2, 2 * w - 2]))]
    return [
        helper.make_node("Transpose", [conv_out], [f"{p}_nhwc"], name=f"{p}_to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", [f"{p}_nhwc", f"{p}_split_shape"], [f"{p}_split"], name=f"{p}_split"),
        helper.make_node("Transpose", [f"{p}_split"], [f"{p}_shuffled"], name=f"{p}_shuffle", perm=[0, 1, 3, 2, 4, 5]),
        helper.make_node("Reshape", [f"{p}_shuffled", f"{p}_merged_shape"], [f"{p}_merged"], name=f"{p}_merge"),
        helper.make_node("Slice", [f"{p}_merged", f"{p}_starts", f"{p}_ends", f"{p}_axes"], [f"{p}_cropped"], name=f"{p}_crop"),
        # one channel: (N, H, W, 1) -> (N, 1, H, W) moves nothing, so a Reshape. As a Transpose, onnxruntime
        # cancels it with the output's NHWC Transpose and runs the float tail on (N, H, W, 1), where its
        # element-wise kernels take a slow path (a trailing dimension of 1: ~40x slower, fashion-cgan)
        helper.make_node("Reshape", [f"{p}_cropped", f"{p}_nchw_shape"], [final], name=f"{p}_to_nchw") if cout == 1 else
        helper.make_node("Transpose", [f"{p}_cropped"], [final], name=f"{p}_to_nchw", perm=[0, 3, 1, 2]),
    ]


def rewrite_conv_transpose(proto: onnx.ModelProto, *, mode: str = "phase-nhwc") -> tuple[onnx.ModelProto, int]:
    """(a copy of ``proto`` with its generator ConvTransposes as Conv (the first one a Gemm with ``phase-nhwc``)
    + a pixel shuffle, how many were rewritten).

    Exact up to float summation order. Other ConvTransposes are left as they are."""
    if mode not in REWRITES:
        raise QuantizationError(f"rewrite mode must be one of {', '.join(REWRITES)}, got {mode!r}")
    proto = onnx.shape_inference.infer_shapes(proto)
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
              for v in list(graph.value_info) + list(graph.input)}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    new_inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    graph_outputs = {o.name for o in graph.output}
    moved: set[str] = set()  # outputs of the Relu nodes placed right after their Conv
    count = 0
    for node in graph.node:
        if node.op_type in _ACTIVATIONS and node.output[0] in moved:
            continue
        if node.op_type != "ConvTranspose" or node.input[1] not in inits:
            nodes.append(node)
            continue
        a = _attrs(node)
        w = onnx.numpy_helper.to_array(inits[node.input[1]])  # (Cin, Cout, kH, kW)
        cout = w.shape[1]
        bias = onnx.numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] else np.zeros(cout, w.dtype)
        if not _is_up2(a, w) and not _is_from_1x1(a, w, shapes.get(node.input[0])):
            nodes.append(node)
            continue
        count += 1
        out = node.output[0]
        users = consumers.get(out, [])
        # a lone Relu after the layer is element-wise: it commutes with DepthToSpace and the crop, and
        # placed right after the Conv it fuses into the quantized Conv
        act = users[0] if len(users) == 1 and users[0].op_type in _ACTIVATIONS and out not in graph_outputs else None
        final = act.output[0] if act is not None else out
        if act is not None:
            moved.add(final)
        if _is_up2(a, w) and mode == "split":
            nodes += _split_phases(node, w, bias, act=act, final=final, new_inits=new_inits)
            continue
        if _is_up2(a, w):
            block = 2
            # phase: the shuffle puts phase 1 first, so the (2H + 2)^2 result is cropped by one pixel
            crop = mode in ("phase", "phase-nhwc")
            if crop:
                wc, conv_attrs = _phase_weight(w), dict(kernel_shape=[2, 2], pads=[1, 1, 1, 1])
            else:
                wc, conv_attrs = _conv3x3_weight(w), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        else:  # from 1x1
            block = w.shape[2]
            # (Cin, Cout, k, k) -> (k, k, Cout, Cin): channel (y k + x) Cout + o, DCR order
            wc = w.transpose(2, 3, 1, 0).reshape(block * block * cout, w.shape[0], 1, 1)
            conv_attrs, crop = dict(kernel_shape=[1, 1]), False
        p = f"{node.name or node.output[0]}_rw"
        in_shape = shapes.get(node.input[0]) or []
        nhwc = mode == "phase-nhwc" and len(in_shape) == 4 and all(isinstance(d, int) for d in in_shape[2:])
        if nhwc and not crop:  # from 1x1: a matrix product, (N, Cin) x (Cin, k k Cout), as a Gemm
            wc = wc.reshape(len(wc), -1)
            conv = helper.make_node("Flatten", [node.input[0]], [f"{p}_flat"], name=f"{p}_flat")
            nodes += [conv, helper.make_node("Gemm", [f"{p}_flat", f"{p}_w", f"{p}_b"], [f"{p}_conv"], name=f"{p}_conv", transB=1)]
        else:
            nodes.append(helper.make_node("Conv", [node.input[0], f"{p}_w", f"{p}_b"], [f"{p}_conv"], name=f"{p}_conv", **conv_attrs))
        new_inits += [onnx.numpy_helper.from_array(np.ascontiguousarray(wc, np.float32), f"{p}_w"),
                      onnx.numpy_helper.from_array(np.tile(bias, block * block).astype(np.float32), f"{p}_b")]
        conv_out = f"{p}_conv"  # (N, block^2 Cout, H', W'); from the Gemm (N, k k Cout)
        if act is not None:
            nodes.append(_activation(act, conv_out, f"{p}_relu"))
            conv_out = f"{p}_relu"
        if nhwc and crop:
            nodes += _shuffle_nhwc(p, conv_out, final, cout, in_shape[2] + 1, in_shape[3] + 1, new_inits)
            continue
        if nhwc:
            # channel (y k + x) Cout + o is already the channels-last (N, k, k, Cout): a Reshape, then to
            # NCHW by a Transpose that cancels with the one onnxruntime puts before the next QLinearConv
            new_inits.append(onnx.numpy_helper.from_array(np.array([0, block, block, cout], np.int64), f"{p}_nhwc_shape"))
            nodes += [helper.make_node("Reshape", [conv_out, f"{p}_nhwc_shape"], [f"{p}_nhwc"], name=f"{p}_as_nhwc"),
                      helper.make_node("Transpose", [f"{p}_nhwc"], [final], name=f"{p}_to_nchw", perm=[0, 3, 1, 2])]
            continue
        d2s_out = f"{p}_d2s" if crop else final  # (N, Cout, block H', block W')
        nodes.append(helper.make_node("DepthToSpace", [conv_out], [d2s_out], name=f"{p}_d2s", blocksize=block, mode="DCR"))
        if crop:
            new_inits += [onnx.numpy_helper.from_array(np.array(v, np.int64), f"{p}_{k}")
                          for k, v in (("starts", [1, 1]), ("ends", [-1, -1]), ("axes", [2, 3]))]
            nodes.append(helper.make_node("Slice", [d2s_out, f"{p}_starts", f"{p}_ends", f"{p}_axes"], [final], name=f"{p}_crop"))
    used = {i for n in nodes for i in n.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    del graph.value_info[:]  # stale shapes of the removed tensors; onnxruntime infers its own
    onnx.checker.check_model(proto)
    return proto, count


REWRITE_TOLERANCE = 1e-5  # max abs difference of the float images (in [-1, 1]) before and after the rewrite


def _with_float_output(proto: onnx.ModelProto) -> bytes:
    """``proto`` with the float image before post-processing (``<output>_float``, (N, C, H, W)) as its output."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    name = f"{proto.graph.output[0].name}_float"
    del proto.graph.output[:]
    proto.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return proto.SerializeToString()


def check_rewrite(original: onnx.ModelProto, rewritten: onnx.ModelProto, info: ModelInfo, *,
                  batch_sizes: tuple[int, ...] = (1, 3, 8)) -> float:
    """Max abs difference of the float images between the two graphs; QuantizationError above REWRITE_TOLERANCE."""
    before = create_session(_with_float_output(original), device="cpu", source="original graph")
    after = create_session(_with_float_output(rewritten), device="cpu", source="rewritten graph")
    worst = 0.0
    for b in batch_sizes:
        feeds = generator_feeds(info, 0, 0, b)
        worst = max(worst, float(np.max(np.abs(before.run(None, feeds)[0] - after.run(None, feeds)[0]))))
    if not worst <= REWRITE_TOLERANCE:
        raise QuantizationError(f"the Conv rewrite differs from the ConvTranspose graph by {worst:.3g} (> {REWRITE_TOLERANCE:g})")
    return worst


# --- quantization -----------------------------------------------------------------------------------

def _info(proto: onnx.ModelProto, source: str, *, kinds: tuple[str, ...] = ("generator",)) -> ModelInfo:
    meta = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in meta:
        raise QuantizationError(f"{source} has no ganrt metadata: quantize a file made by ganrt-export")
    info = ModelInfo.from_json(meta[METADATA_KEY], source=source)
    if info.kind not in kinds:
        raise ModelKindError(f"{source} is a {info.kind}; int8 and fp16 variants are made for {' and '.join(k + 's' for k in kinds)}")
    if info.precision != "float32":
        raise QuantizationError(f"{source} is already {info.precision}; make variants from its float32 file")
    return info


def generator_feeds(info: ModelInfo, seed: int, start: int, n: int) -> dict[str, np.ndarray]:
    """The runtime's inputs for images start..start+n of run ``seed``: z (n, nz) from the model's
    prior, labels (n,) cycling over the classes for a conditional model."""
    idx = np.arange(start, start + n)
    feeds = {"z": sample_latents(seed, idx, info.nz, prior=info.prior)}
    if info.num_classes:
        feeds["label"] = (idx % info.num_classes).astype(np.int64)
    return feeds


class _NoPreprocessHint(logging.Filter):
    """quantize_static logs a hint to run its shape pre-processing on every call; the rewritten graph
    has no shapes it would add, so the hint is noise on the CLI's stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage()


class _Calibration:
    """onnxruntime.quantization's CalibrationDataReader protocol: ``get_next`` -> feeds or None."""

    def __init__(self, info: ModelInfo, config: QuantizeConfig, *, batch: int = 64) -> None:
        self._batches = iter([generator_feeds(info, config.calibration_seed, s, min(batch, config.calibration_n - s))
                              for s in range(0, config.calibration_n, batch)])

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


def quantize_graph(proto: onnx.ModelProto, info: ModelInfo, *, config: QuantizeConfig,
                   source: str = "model") -> tuple[onnx.ModelProto, int, float]:
    """(QDQ int8 graph, ConvTransposes rewritten, the rewrite's max abs difference) of a float32
    generator graph, before any quality check (``quantize_generator`` adds the gate and metadata)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

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
        raise QuantizationError(f"activation_type {config.activation_type!r} / calibrate_method {config.calibrate_method!r} unknown")
    with tempfile.TemporaryDirectory(prefix="ganrt-quant-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(rewritten, src)
        hint = _NoPreprocessHint()
        logging.getLogger().addFilter(hint)
        try:
            quantize_static(str(src), str(dst), _Calibration(info, config), quant_format=QuantFormat.QDQ,
                            activation_type=act, weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=method, nodes_to_exclude=excluded,
                            extra_options={"ActivationSymmetric": config.activation_type == "int8",
                                           "TensorQuantOverrides": overrides})
        except Exception as exc:  # onnxruntime.quantization raises plain exceptions of many kinds
            raise QuantizationError(f"{source}: onnxruntime.quantization failed: {str(exc).splitlines()[0][:200]}") from None
        finally:
            logging.getLogger().removeFilter(hint)
        qproto = onnx.load(dst)
    _sink_dequantize(qproto.graph)
    onnx.checker.check_model(qproto)
    return qproto, count, rewrite_diff


def quantize_generator(data: bytes, *, config: QuantizeConfig = QuantizeConfig(), source: str = "model") -> tuple[bytes, dict[str, Any]]:
    """(int8 file bytes, report) from a float32 ganrt generator's bytes; QuantizationError if the gate fails."""
    proto = onnx.load_from_string(data)
    info = _info(proto, source)
    qproto, count, rewrite_diff = quantize_graph(proto, info, config=config, source=source)
    scores = quality_gate(data, qproto.SerializeToString(), info, config=config, source=source)
    training = {**info.training, "quantization": {**scores, "calibration_n": config.calibration_n,
                                                  "calibrate_method": config.calibrate_method,
                                                  "activation_type": config.activation_type, "weight_type": "int8 per-channel",
                                                  "rewrite": config.rewrite, "keep_first_float": config.keep_first_float,
                                                  "keep_last_float": config.keep_last_float,
                                                  "pre_tanh_range": config.pre_tanh_range}}
    qinfo = variant_info(info, training)
    out = _with_metadata(qproto, proto, qinfo)
    return out, {"info": qinfo, "bytes": len(out), "rewritten": count, "rewrite_max_abs_diff": rewrite_diff, **scores}


VARIANT_SUFFIXES = {"int8": "int8", "float16": "fp16"}  # precision -> the variant's name suffix and label


def variant_info(info: ModelInfo, training: dict[str, Any], *, precision: str = "int8") -> ModelInfo:
    """The variant's settings: its own name (``NAME-int8``, ``NAME-fp16``, so outputs and provenance say
    which file made an image), a description that says so, its precision, the gate's numbers in ``training``."""
    suffix = VARIANT_SUFFIXES[precision]
    name = info.name if info.name.endswith(f"-{suffix}") else f"{info.name}-{suffix}"
    return dataclasses.replace(info, name=name, description=f"{info.description} ({suffix} variant)".strip(),
                               precision=precision, training=training)


def _with_metadata(qproto: onnx.ModelProto, proto: onnx.ModelProto, qinfo: ModelInfo) -> bytes:
    """The int8 graph's bytes, with the float file's producer and doc string and ``qinfo`` as its metadata."""
    qproto.producer_name, qproto.producer_version, qproto.doc_string = proto.producer_name, proto.producer_version, proto.doc_string
    del qproto.metadata_props[:]
    entry = qproto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, qinfo.to_json()
    return qproto.SerializeToString()


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 image batches of one shape, over every value."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def _images(session: Any, info: ModelInfo, config: QuantizeConfig, *, batch: int = 250) -> np.ndarray:
    """(check_n, H, W, C) uint8 from the generator ``session`` on the check latents."""
    out = [session.run(None, generator_feeds(info, config.check_seed, s, min(batch, config.check_n - s)))[0]
           for s in range(0, config.check_n, batch)]
    return np.concatenate(out)


def quality_gate(float_data: bytes, int8_data: bytes, info: ModelInfo, *, config: QuantizeConfig,
                 source: str = "model", label: str = "int8") -> dict[str, Any]:
    """{psnr_db, classifier_agreement (None if no classifier fits), check_n} of the ``label`` (int8, fp16)
    variant's images against the float32 file's; QuantizationError below a threshold."""
    import ganrt

    ref = _images(create_session(float_data, device="cpu", source=source), info, config)
    got = _images(create_session(int8_data, device="cpu", source=f"{source} ({label})"), info, config)
    psnr = psnr_uint8(ref, got)
    agreement = None
    judge = ganrt.load(config.classifier) if config.classifier else None
    if judge is not None and judge.info.kind != "classifier":
        raise ModelKindError(f"{config.classifier} is a {judge.info.kind}, not a classifier to judge agreement with")
    if judge is not None and tuple(judge.image_shape) == tuple(info.image_shape):
        agreement = float(np.mean(judge.predict(ref)[0] == judge.predict(got)[0]))
    scores = {"psnr_db": round(psnr, 2), "classifier_agreement": agreement, "check_n": config.check_n}
    if not psnr >= config.min_psnr_db:
        raise QuantizationError(f"{source}: {label} images reach {psnr:.2f} dB PSNR to fp32 (< {config.min_psnr_db:g} dB "
                                f"over {config.check_n} images); refused, nothing written")
    if agreement is not None and not agreement >= config.min_agreement:
        raise QuantizationError(f"{source}: the classifier agrees on {agreement:.2%} of {label} vs fp32 images "
                                f"(< {config.min_agreement:.0%}; PSNR {psnr:.2f} dB); refused, nothing written")
    return scores


# --- upscalers ----------------------------------------------------------------------------------------
class _PhotoCalibration:
    """Calibration batches for an upscaler: (8, 3, side, side) low-resolution patches in [0, 1] of the
    training photos, degraded as in training (the evaluation photos are kept for the gate)."""

    def __init__(self, scale: int, config: QuantizeConfig, *, side: int = 64, batch: int = 8) -> None:
        from .data import degrade, load_photos

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


def quantize_upscaler(data: bytes, *, config: QuantizeConfig = QuantizeConfig(), source: str = "model") -> tuple[bytes, dict[str, Any]]:
    """(int8 file bytes, report) from a float32 ganrt upscaler: every Conv as QLinearConv (int8
    per-channel weights, uint8 activations, calibrated on training-photo patches); the nearest
    upsampling and the residual sum stay float. Gate: the upscaled evaluation photos (whole images,
    through the runtime's tiler) reach ``min_psnr_db`` against the fp32 file's; else QuantizationError."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    proto = onnx.load_from_string(data)
    info = _info(proto, source, kinds=("upscaler",))
    with tempfile.TemporaryDirectory(prefix="ganrt-quant-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        hint = _NoPreprocessHint()
        logging.getLogger().addFilter(hint)
        try:
            quantize_static(str(src), str(dst), _PhotoCalibration(info.scale, config), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv"])
        except Exception as exc:  # onnxruntime.quantization raises plain exceptions of many kinds
            raise QuantizationError(f"{source}: onnxruntime.quantization failed: {str(exc).splitlines()[0][:200]}") from None
        finally:
            logging.getLogger().removeFilter(hint)
        qproto = onnx.load(dst)
    scores = upscaler_gate(data, qproto.SerializeToString(), info, config=config, source=source)
    training = {**info.training, "quantization": {**scores, "calibration_patches": config.calibration_n // 16,
                                                  "activation_type": "uint8", "weight_type": "int8 per-channel"}}
    qinfo = variant_info(info, training)
    out = _with_metadata(qproto, proto, qinfo)
    return out, {"info": qinfo, "bytes": len(out), **scores}


def upscaler_gate(float_data: bytes, variant_data: bytes, info: ModelInfo, *, config: QuantizeConfig, source: str = "model",
                  label: str = "int8") -> dict[str, Any]:
    """{psnr_db, check_photos}: the held-out photos upscaled whole (through the runtime's tiler) by the
    ``label`` variant against the float32 file; QuantizationError under ``min_psnr_db``."""
    from ganrt.upscaler import Upscaler

    from .data import degrade, load_photos

    ref_model = Upscaler(create_session(float_data, device="cpu", source=source), info, source=source)
    variant = Upscaler(create_session(variant_data, device="cpu", source=f"{source} ({label})"), info, source=source)
    lows = [degrade(photo, info.scale)[1] for _, photo in load_photos("eval")]
    ref = np.concatenate([ref_model.upscale(low).reshape(-1) for low in lows])
    got = np.concatenate([variant.upscale(low).reshape(-1) for low in lows])
    psnr = psnr_uint8(ref, got)
    if not psnr >= config.min_psnr_db:
        raise QuantizationError(f"{source}: {label} upscaled photos reach {psnr:.2f} dB PSNR to fp32 (< {config.min_psnr_db:g} dB); "
                                "refused, nothing written")
    return {"psnr_db": round(psnr, 2), "check_photos": len(lows)}


def write_variant(input: str | os.PathLike, output: str | os.PathLike, make, *, config: QuantizeConfig,
                  overwrite: bool = False) -> dict[str, Any]:
    """``make(bytes of input, config=, source=) -> (variant bytes, report)``, written to ``output`` only if it
    returns (a gate that fails raises and nothing is written); the output is checked before any work."""
    output = Path(output)
    check_output(output, overwrite=overwrite)
    try:
        data = Path(input).read_bytes()
    except OSError as exc:
        raise OutputError(f"cannot read {input}: {exc.strerror}") from None
    out, report = make(data, config=config, source=str(input))
    atomic_write(output, out)
    return report


def _quantize_any(data: bytes, *, config: QuantizeConfig, source: str) -> tuple[bytes, dict[str, Any]]:
    kind = _info(onnx.load_from_string(data), source, kinds=("generator", "upscaler")).kind
    return (quantize_upscaler if kind == "upscaler" else quantize_generator)(data, config=config, source=source)


def quantize_file(input: str | os.PathLike, output: str | os.PathLike, *, config: QuantizeConfig = QuantizeConfig(),
                  overwrite: bool = False) -> dict[str, Any]:
    """Write the int8 variant of the float32 ganrt generator or upscaler ``input`` to ``output`` if it passes the gate."""
    return write_variant(input, output, _quantize_any, config=config, overwrite=overwrite)
