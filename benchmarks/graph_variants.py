"""Where a generator's time goes besides the network: post-processing, IO binding, ganrt's own work.

    python -m benchmarks.graph_variants [--model fashion-cgan] [--threads 1] [--batch-sizes 1,64,256]

In one process, rounds interleaved, on the same weights (the shipped file, and the same graph
with its in-graph post-processing cut off):
- ``float+numpy``: the float graph, then ``float_to_uint8`` in numpy (the old runtime);
- ``uint8 run``: the shipped graph (post-processing inside), ``session.run``;
- ``uint8 bound``: the shipped graph with IO binding into a preallocated array (what ganrt does);
- ``ganrt.sample``: the whole call, latents from (seed, index) included.
Also: PNG encoding of the same images, Pillow vs ganrt's encoder, with a run's nine text chunks.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time

import numpy as np
import onnx

import ganrt
from ganrt.core.run import run_bound
from ganrt.core.session import create_session
from ganrt.io.images import float_to_uint8
from ganrt.io.png import encode_pngs


def float_graph(path) -> bytes:
    """The shipped generator with the post-processing nodes (outputs ``post_*`` and the final image) cut off."""
    proto = onnx.load(str(path))
    graph = proto.graph
    name = graph.output[0].name
    keep = [n for n in graph.node if not (n.output[0].startswith("post_") or n.output[0] == name)]
    for n in keep:
        n.output[:] = [name if o == f"{name}_float" else o for o in n.output]
    del graph.node[:]
    graph.node.extend(keep)
    del graph.output[:]
    graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return proto.SerializeToString()


def rounds(fns: dict, per_call: int, *, n_rounds: int, seconds: float) -> dict[str, float]:
    rates = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(n_rounds):
        for k, f in fns.items():
            calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                f()
                calls += 1
            rates[k].append(calls * per_call / (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in rates.items()}


def png_pillow(images: np.ndarray, texts: list[dict]) -> list[bytes]:
    from PIL import Image, PngImagePlugin

    out = []
    for image, text in zip(images, texts):
        info = PngImagePlugin.PngInfo()
        for k, v in text.items():
            info.add_text(k, v)
        buf = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="PNG", compress_level=6, pnginfo=info)
        out.append(buf.getvalue())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.graph_variants", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="fashion-cgan")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-sizes", default="1,64,256")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--seconds", type=float, default=0.2)
    a = p.parse_args(argv)
    path = ganrt.resolve_model(a.model)
    gen = ganrt.load(path, threads=a.threads)
    plain = create_session(float_graph(path), threads=a.threads)
    shipped = create_session(path, threads=a.threads)
    for b in [int(v) for v in a.batch_sizes.split(",")]:
        feeds = {"z": np.random.default_rng(0).standard_normal((b, gen.nz)).astype(np.float32)}
        if gen.info.conditional:
            feeds["label"] = np.arange(b, dtype=np.int64) % gen.num_classes
        out = np.empty((b, *gen.image_shape), np.uint8)
        res = rounds({
            "float+numpy": lambda: float_to_uint8(plain.run(None, feeds)[0], gen.info.value_range),
            "uint8 run": lambda: shipped.run(None, feeds)[0],
            "uint8 bound": lambda: run_bound(shipped, feeds, "image", out, source="x"),
            "ganrt.sample": lambda: gen.sample(b, batch_size=b),
        }, b, n_rounds=a.rounds, seconds=a.seconds)
        base = res["float+numpy"]
        print(f"{a.model} batch {b}, {a.threads} thread(s): "
              + ", ".join(f"{k} {v:,.0f}/s ({v / base:.2f}x)" for k, v in res.items()))
    images = gen.sample(256)
    texts = [{"model": gen.name, "model_sha256": "0" * 64, "seed": "0", "index": str(i), "label": "3", "truncation": "",
              "ganrt": ganrt.__version__, "provider": "CPUExecutionProvider", "precision": "float32"} for i in range(256)]
    res = rounds({"pillow": lambda: png_pillow(images, texts), "ganrt": lambda: encode_pngs(images, texts=texts)}, 256,
                 n_rounds=a.rounds, seconds=a.seconds)
    print(f"PNG encoding of 256 {a.model} images with 9 text chunks: pillow {res['pillow']:,.0f}/s, "
          f"ganrt {res['ganrt']:,.0f}/s ({res['ganrt'] / res['pillow']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
