"""Peak memory of tiled upscaling of a large photo: the output plus a bounded working set.

    python -m benchmarks.upscale_memory [--model sr-x4] [--size 4000x3000] [--tile 256]

Each run is a fresh process (peak RSS is per process). The photo is scikit-image's
hubble_deep_field, resized with Pillow's bicubic to the requested size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _child(model: str, width: int, height: int, tile: int) -> dict:
    import numpy as np
    import skimage.data
    from PIL import Image

    import ganrt

    photo = np.asarray(Image.fromarray(skimage.data.hubble_deep_field()).resize((width, height), Image.BICUBIC))
    up = ganrt.load(model)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    out = up.upscale(photo, tile=tile)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    s = up.scale
    band = min(tile, height) * s * width * s * 3 * 4
    return {
        "model": model, "input": f"{width}x{height}", "output": f"{out.shape[1]}x{out.shape[0]}", "tile": tile,
        "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 2**20), "rss_before_upscale_mb": round(base / 2**20),
        "output_mb": round(out.nbytes / 2**20), "band_mb": round(band / 2**20),
        "working_set_mb": round((peak - base - out.nbytes) / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sr-x4")
    parser.add_argument("--size", default="4000x3000")
    parser.add_argument("--tile", type=int, nargs="+", default=[256])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    if args.child:
        print(json.dumps(_child(args.model, width, height, args.tile[0])))
        return
    print("| model | input | output | tile | seconds | peak RSS MB | RSS before MB | output MB "
          "| float band MB | working set MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for tile in args.tile:
        cmd = [sys.executable, "-m", "benchmarks.upscale_memory", "--child", "--model", args.model, "--size", args.size,
               "--tile", str(tile)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(f"| {r['model']} | {r['input']} | {r['output']} | {r['tile']} | {r['seconds']} | {r['peak_rss_mb']} | "
              f"{r['rss_before_upscale_mb']} | {r['output_mb']} | {r['band_mb']} | {r['working_set_mb']} |", flush=True)


if __name__ == "__main__":
    main()
