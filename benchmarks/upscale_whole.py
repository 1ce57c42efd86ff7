"""``Upscaler.upscale`` of a whole photo against a hand-written whole-image ``session.run`` of the same file.

    python -m benchmarks.upscale_whole [--model sr-x4] [--size 1024] [--rounds 3] [--threads 2] [--json FILE]

In one process, interleaved rounds (``ganrt.tools.bench.measure``, one image per call):
- ``by-hand``: an onnxruntime session with default options (``threads`` intra-op threads) on the whole
  image, the float conversion and the uint8 rounding written by hand around it (what a user writes);
- ``ganrt``: ``upscale(photo)`` as shipped (tiles from the default memory budget, run on the lanes);
- ``ganrt-tile256``: ``upscale(photo, tile=256)`` (the old default tile side).
Then each variant once more in a fresh process for its peak RSS (sampled from /proc every 5 ms), and a check that
``ganrt``'s image equals the whole-image result (one tile, ``tile`` = the image side) byte for byte.
The photo is scikit-image's astronaut resized with Pillow's bicubic to ``size`` x ``size``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = ("by-hand", "ganrt", "ganrt-tile256")


def photo(size: int) -> np.ndarray:
    import skimage.data
    from PIL import Image

    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((size, size), Image.BICUBIC))  # (size, size, 3)


def callables(model: str, threads: int) -> dict:
    import ganrt
    from ganrt.core.session import onnxruntime

    ort = onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    plain = ort.InferenceSession(str(ganrt.resolve_model(model)), sess_options=opts, providers=["CPUExecutionProvider"])
    name = plain.get_inputs()[0].name
    up = ganrt.load(model, threads=threads)

    def by_hand(img: np.ndarray) -> np.ndarray:
        x = img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        (y,) = plain.run(None, {name: x})
        return np.clip(np.rint(y[0] * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)

    return {"by-hand": by_hand, "ganrt": up.upscale, "ganrt-tile256": lambda img: up.upscale(img, tile=256)}, up


def child(model: str, size: int, threads: int, variant: str) -> dict:
    from ganrt.tools.bench import RssSampler

    img = photo(size)
    fns, _ = callables(model, threads)
    sampler = RssSampler()  # /proc/self/statm every 5 ms: ru_maxrss survives exec, so a child would report its parent's
    base = sampler.rss()
    sampler.start()
    t0 = time.perf_counter()
    out = fns[variant](img)
    seconds = time.perf_counter() - t0
    peak = sampler.stop()
    sampler.close()
    return {"variant": variant, "seconds": round(seconds, 2), "peak_rss_mb": round(peak / 2**20),
            "before_mb": round(base / 2**20), "output_mb": round(out.nbytes / 2**20)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.upscale_whole", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="sr-x4")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.model, a.size, a.threads, a.child)))
        return 0
    from ganrt.tools.bench import machine, measure

    img = photo(a.size)
    fns, up = callables(a.model, a.threads)
    same = bool(np.array_equal(up.upscale(img), up.upscale(img, tile=a.size)))
    t0 = time.perf_counter()
    timings = measure({k: (lambda b, f=f: f(img)) for k, f in fns.items()}, 1, rounds=a.rounds, min_seconds=0.01)
    seconds = {k: 1.0 / float(np.median(t.rates)) for k, t in timings.items()}
    wall = time.perf_counter() - t0
    memory = []
    for v in VARIANTS:
        cmd = [sys.executable, "-m", "benchmarks.upscale_whole", "--child", v, "--model", a.model, "--size", str(a.size),
               "--threads", str(a.threads)]
        memory.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]))
    result = {"machine": machine(), "model": a.model, "input": f"{a.size}x{a.size}", "threads": a.threads,
              "lanes": up.lanes, "tile": list(up.tile_for(a.size, a.size)), "rounds": a.rounds,
              "seconds_median": {k: round(v, 3) for k, v in seconds.items()},
              "speed_vs_by_hand": {k: round(seconds["by-hand"] / v, 3) for k, v in seconds.items()},
              "per_round_seconds": {k: [round(1.0 / r, 3) for r in t.rates] for k, t in timings.items()},
              "equal_to_whole_image": same, "fresh_process": memory, "wall_s": round(wall, 1),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(json.dumps(result, indent=1))
    if a.json:
        from ganrt.io.files import atomic_write

        atomic_write(a.json, (json.dumps(result, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
