"""Post-processing of exported graphs (onnx only, no torch): class interpolation for conditional generators,
and the uint8 output every generator file ends with.

A conditional generator's graph looks up its label embedding with ``Gather(embed.weight, label)``.
``add_label_mixing`` rewrites that lookup as

    e = Gather(E, label) * (1 - alpha) + Gather(E, label_b) * alpha

where ``label_b`` (N,) int64 and ``alpha`` (N, 1) float32 are *optional* inputs: graph inputs that
are also initializers (defaults ``label_b = [0]``, ``alpha = [[0]]``, broadcast over the batch).
Fed neither, ``e * 1 + E[0] * 0`` equals ``e`` bit for bit, so sampling is unchanged and a runtime
that only knows ``z`` and ``label`` runs the file as before; fed both, the generator renders any
point between two classes' embeddings (``ganrt.evaluate.explore.class_interpolation``).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import TensorProto, helper

from ganrt.evaluate.explore import ALPHA, LABEL_B  # the optional inputs' names: the runtime feeds them


class GraphError(ValueError):
    """The graph does not have the shape this post-processing expects."""


def add_label_mixing(proto: onnx.ModelProto, *, label: str = "label") -> None:
    """Rewrite the label-embedding lookup in place (see the module docstring); ``label``: the tensor of
    class indices that the lookup reads (the graph input, or what an adopted graph feeds its source)."""
    g = proto.graph
    gathers = [n for n in g.node if n.op_type == "Gather" and len(n.input) == 2 and n.input[1] == label]
    if len(gathers) != 1:
        raise GraphError(f"expected one Gather on the label input, found {len(gathers)}")
    lookup = gathers[0]
    table, out = lookup.input[0], lookup.output[0]
    lookup.output[0] = f"{out}_a"
    g.initializer.extend([helper.make_tensor(LABEL_B, TensorProto.INT64, [1], [0]),
                          helper.make_tensor(ALPHA, TensorProto.FLOAT, [1, 1], [0.0]),
                          helper.make_tensor(f"{out}_one", TensorProto.FLOAT, [], [1.0])])
    g.input.extend([helper.make_tensor_value_info(LABEL_B, TensorProto.INT64, ["M"]),
                    helper.make_tensor_value_info(ALPHA, TensorProto.FLOAT, ["M", 1])])
    new = [
        helper.make_node("Gather", [table, LABEL_B], [f"{out}_b"]),  # (M, E)
        helper.make_node("Sub", [f"{out}_one", ALPHA], [f"{out}_1ma"]),  # (M, 1)
        helper.make_node("Mul", [f"{out}_a", f"{out}_1ma"], [f"{out}_wa"]),  # (N, E)
        helper.make_node("Mul", [f"{out}_b", ALPHA], [f"{out}_wb"]),
        helper.make_node("Add", [f"{out}_wa", f"{out}_wb"], [out]),  # the lookup's old output: the rest is untouched
    ]
    at = list(g.node).index(lookup) + 1
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(nodes[:at] + new + nodes[at:])


def append_uint8_output(data: bytes, value_range: tuple[float, float]) -> bytes:
    """The generator ``data`` with its post-processing in the graph: float (N, C, H, W) in
    ``value_range`` -> uint8 (N, H, W, C), the same float32 steps as ``ganrt.io.images.float_to_uint8``
    (subtract low, scale to 0..255, round half to even, clip, cast, transpose), so Python touches
    no float arrays and onnxruntime returns a quarter of the bytes."""
    proto = onnx.load_from_string(data)
    graph = proto.graph
    out = graph.output[0]
    name, dims = out.name, [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]  # [N, C, H, W]
    for node in graph.node:
        node.output[:] = [f"{name}_float" if o == name else o for o in node.output]
    lo, hi = value_range
    graph.initializer.extend([
        onnx.numpy_helper.from_array(np.array(lo, np.float32), "post_low"),
        onnx.numpy_helper.from_array(np.array(255.0 / (hi - lo), np.float32), "post_scale"),
        onnx.numpy_helper.from_array(np.array(0.0, np.float32), "post_min"),
        onnx.numpy_helper.from_array(np.array(255.0, np.float32), "post_max"),
    ])
    make = onnx.helper.make_node
    graph.node.extend([
        make("Sub", [f"{name}_float", "post_low"], ["post_shifted"]),
        make("Mul", ["post_shifted", "post_scale"], ["post_scaled"]),
        make("Round", ["post_scaled"], ["post_rounded"]),  # half to even, as np.rint
        make("Clip", ["post_rounded", "post_min", "post_max"], ["post_clipped"]),
        make("Cast", ["post_clipped"], ["post_uint8"], to=onnx.TensorProto.UINT8),
        make("Transpose", ["post_uint8"], [name], perm=[0, 2, 3, 1]),  # (N, H, W, C)
    ])
    n, c, h, w = dims
    del graph.output[:]
    graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.UINT8, [n, h, w, c]))
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
