"""The exact rewrite of a DCGAN generator's ConvTransposes as Conv + pixel shuffle, and its check.

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
moving pixels), so onnxruntime fuses it into the quantized Conv.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import helper

from ganrt.core.schema import ModelInfo
from ganrt.core.session import create_session

from .config import QuantizationError, generator_feeds

# 2x2 Conv kernel rows/cols for output phase p (0: even rows, 1: odd rows) of a stride-2, kernel-4,
# pad-1 ConvTranspose: the transposed kernel's taps applied to input rows (m - 1, m) resp. (m, m + 1)
_PHASE_TAPS = {0: [3, 1], 1: [2, 0]}


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
        has_bias = len(node.input) > 2 and node.input[2]
        bias = onnx.numpy_helper.to_array(inits[node.input[2]]) if has_bias else np.zeros(cout, w.dtype)
        up2 = _is_up2(a, w)
        if not up2 and not _is_from_1x1(a, w, shapes.get(node.input[0])):
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
        if up2 and mode == "split":
            nodes += _split_phases(node, w, bias, act=act, final=final, new_inits=new_inits)
        else:
            nodes += _as_conv(node, w, bias, up2=up2, mode=mode, act=act, final=final,
                              in_shape=shapes.get(node.input[0]) or [], new_inits=new_inits)
    used = {i for n in nodes for i in n.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    del graph.value_info[:]  # stale shapes of the removed tensors; onnxruntime infers its own
    onnx.checker.check_model(proto)
    return proto, count


def _as_conv(node: onnx.NodeProto, w: np.ndarray, bias: np.ndarray, *, up2: bool, mode: str, act: onnx.NodeProto | None,
             final: str, in_shape: list, new_inits: list[onnx.TensorProto]) -> list[onnx.NodeProto]:
    """The nodes that replace the ConvTranspose ``node`` (and its activation ``act``) in the modes other than
    ``split``: one Conv (a Gemm for the first layer with ``phase-nhwc``), the activation, and the pixel
    shuffle into ``final``; their weights go to ``new_inits``."""
    cout = w.shape[1]
    if up2:
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
    nhwc = mode == "phase-nhwc" and len(in_shape) == 4 and all(isinstance(d, int) for d in in_shape[2:])
    if nhwc and not crop:  # from 1x1: a matrix product, (N, Cin) x (Cin, k k Cout), as a Gemm
        wc = wc.reshape(len(wc), -1)
        nodes = [helper.make_node("Flatten", [node.input[0]], [f"{p}_flat"], name=f"{p}_flat"),
                 helper.make_node("Gemm", [f"{p}_flat", f"{p}_w", f"{p}_b"], [f"{p}_conv"], name=f"{p}_conv", transB=1)]
    else:
        nodes = [helper.make_node("Conv", [node.input[0], f"{p}_w", f"{p}_b"], [f"{p}_conv"], name=f"{p}_conv", **conv_attrs)]
    new_inits += [onnx.numpy_helper.from_array(np.ascontiguousarray(wc, np.float32), f"{p}_w"),
                  onnx.numpy_helper.from_array(np.tile(bias, block * block).astype(np.float32), f"{p}_b")]
    conv_out = f"{p}_conv"  # (N, block^2 Cout, H', W'); from the Gemm (N, k k Cout)
    if act is not None:
        nodes.append(_activation(act, conv_out, f"{p}_relu"))
        conv_out = f"{p}_relu"
    if nhwc and crop:
        return nodes + _shuffle_nhwc(p, conv_out, final, cout, in_shape[2] + 1, in_shape[3] + 1, new_inits)
    if nhwc:
        # channel (y k + x) Cout + o is already the channels-last (N, k, k, Cout): a Reshape, then to
        # NCHW by a Transpose that cancels with the one onnxruntime puts before the next QLinearConv
        new_inits.append(onnx.numpy_helper.from_array(np.array([0, block, block, cout], np.int64), f"{p}_nhwc_shape"))
        return nodes + [helper.make_node("Reshape", [conv_out, f"{p}_nhwc_shape"], [f"{p}_nhwc"], name=f"{p}_as_nhwc"),
                        helper.make_node("Transpose", [f"{p}_nhwc"], [final], name=f"{p}_to_nchw", perm=[0, 3, 1, 2])]
    d2s_out = f"{p}_d2s" if crop else final  # (N, Cout, block H', block W')
    nodes.append(helper.make_node("DepthToSpace", [conv_out], [d2s_out], name=f"{p}_d2s", blocksize=block, mode="DCR"))
    if crop:
        new_inits += [onnx.numpy_helper.from_array(np.array(v, np.int64), f"{p}_{k}")
                      for k, v in (("starts", [1, 1]), ("ends", [-1, -1]), ("axes", [2, 3]))]
        nodes.append(helper.make_node("Slice", [d2s_out, f"{p}_starts", f"{p}_ends", f"{p}_axes"], [final], name=f"{p}_crop"))
    return nodes


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

