"""fp16 variants for GPUs: the float32 graph in half precision, checked against it like int8 is.

Weights and activations become float16 (``onnxruntime.transformers.float16``); the inputs (latents,
labels, the optional label_b / alpha; an upscaler's image) and the output keep their types, with
Casts inside the graph, so the runtime calls an fp16 file exactly as it calls the float32 one. A
generator's in-graph post-processing (Sub, Mul, Round, Clip, Cast to uint8) stays float32: rounding
to 0..255 in half precision would move pixels across .5 boundaries for nothing.

The gate is ``export.quantize``'s (PSNR to the float32 images; classifier agreement where the bundled
classifier fits; upscalers on the held-out photos), run on the CPU. There onnxruntime has few float16
kernels and computes most nodes in float32 between Casts, so the gate measures what half-precision
storage of weights and activations costs; a GPU adds half-precision arithmetic inside cuDNN's kernels
(they accumulate in float32), which the gate does not see. The variant is for ``--device cuda``; on the
CPU it runs at about the float32 speed (a DCGAN-64 probe: 390 vs 368 images/s at batch 8, one run).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import onnx

from .quantize import (
    DEFAULT_CONFIG,
    QuantizeConfig,
    float32_info,
    quality_gate,
    upscaler_gate,
    variant_info,
    with_metadata,
    write_variant,
)

_POST_PREFIX = "post_"  # outputs of the generator's in-graph post-processing (export/graph.py append_uint8_output)


def half_graph(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of ``proto``: same input and output types; post-processing nodes kept float32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for node in proto.graph.node:  # the block list goes by node name
        node.name = node.name or f"{node.op_type}_{node.output[0]}"
    keep = [n.name for n in proto.graph.node if any(o.startswith(_POST_PREFIX) for o in n.output)]
    with warnings.catch_warnings():  # it warns about values out of float16's range; the gate judges the result
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(proto, keep_io_types=True, node_block_list=keep)
    _sort_nodes(half.graph)  # the converter appends the inputs' Casts at the end
    onnx.checker.check_model(half)
    return half


def _sort_nodes(graph: onnx.GraphProto) -> None:
    """Order ``graph``'s nodes so each comes after the nodes whose outputs it reads (stable otherwise)."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise ValueError(f"graph has a cycle or reads a missing tensor at {pending[0].name}")
        for n in ready:
            known.update(n.output)
        ordered += ready
        pending = [n for n in pending if not any(n is r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)


def half_model(data: bytes, *, config: QuantizeConfig = DEFAULT_CONFIG, source: str = "model") -> tuple[bytes, dict[str, Any]]:
    """(fp16 file bytes, report) from a float32 ganrt generator, upscaler or translator; QuantizationError if the
    gate fails (translators: ``quantize.translator.translator_gate``)."""
    proto = onnx.load_from_string(data)
    info = float32_info(proto, source, kinds=("generator", "upscaler", "translator"))
    half = half_graph(proto)
    if info.kind == "translator":
        from .quantize.translator import translator_gate

        scores = translator_gate(data, half.SerializeToString(), info, config=config, source=source, label="fp16")
    elif info.kind == "upscaler":
        scores = upscaler_gate(data, half.SerializeToString(), info, config=config, source=source, label="fp16")
    else:
        scores = quality_gate(data, half.SerializeToString(), info, config=config, source=source, label="fp16")
    training = {**info.training, "half": {**scores, "computed_on": "cpu (float16 storage, mostly float32 arithmetic)",
                                          "float32_nodes": "post-processing"}}
    hinfo = variant_info(info, training, precision="float16")
    out = with_metadata(half, proto, hinfo)
    return out, {"info": hinfo, "bytes": len(out), **scores}


def half_file(input: str | os.PathLike, output: str | os.PathLike, *, config: QuantizeConfig = DEFAULT_CONFIG,
              overwrite: bool = False) -> dict[str, Any]:
    """Write the fp16 variant of the float32 ganrt file ``input`` to ``output`` if it passes the gate."""
    return write_variant(input, output, half_model, config=config, overwrite=overwrite)
