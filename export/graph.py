"""Post-processing of exported graphs: class interpolation for conditional generators.

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

import onnx
from onnx import TensorProto, helper

from ganrt.evaluate.explore import ALPHA, LABEL_B  # the optional inputs' names: the runtime feeds them


class GraphError(ValueError):
    """The graph does not have the shape this post-processing expects."""


def add_label_mixing(proto: onnx.ModelProto) -> None:
    """Rewrite the label-embedding lookup in place (see the module docstring)."""
    g = proto.graph
    gathers = [n for n in g.node if n.op_type == "Gather" and len(n.input) == 2 and n.input[1] == "label"]
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
