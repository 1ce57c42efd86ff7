"""ganrt's PNG encoder (numpy row filters + zlib Z_RLE, ``io.png``) against Pillow, by image size, in one process.

    python -m benchmarks.png_encoder [--sizes 32,64,128,256,512,1024] [--rounds 5] [--json FILE]

For each square size, RGB and grayscale: the median milliseconds per image of ``io.png._encode_own``
(what ganrt wrote before this benchmark), of Pillow with ``compress_type=zlib.Z_RLE`` (level 6, its
adaptive filters) and of Pillow's defaults (what ``pil_bytes`` used), rounds interleaved; and each
one's bytes. The images are a photo (scikit-image's astronaut, Pillow-bicubic resized: smooth, like an
upscaler's output) so the compressors see real content. ``encode_pngs`` switches to Pillow at the
size this measures (``io.png.PILLOW_FROM_PIXELS``).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import zlib

import numpy as np
from PIL import Image

from ganrt.io.png import _encode_own
from ganrt.tools.bench import machine


def photo(size: int, channels: int) -> np.ndarray:
    try:
        from skimage import data

        base = Image.fromarray(data.astronaut())
    except ImportError:  # without scikit-image: a smooth synthetic image
        y, x = np.mgrid[0:512, 0:512]
        base = Image.fromarray(np.stack([(x + y) % 256, (x * 3) % 256, (y * 5) % 256], -1).astype(np.uint8))
    im = base.resize((size, size), Image.BICUBIC)
    arr = np.asarray(im.convert("L") if channels == 1 else im)
    return arr.reshape(size, size, channels)


def pillow(image: np.ndarray, **opts) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(buf, format="PNG", **opts)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.png_encoder", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="32,64,128,256,512,1024")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    # each encodes a batch (B, H, W, C) as a run hands it over: ganrt's in one call (its row filters are
    # vectorised over the batch), Pillow's image by image
    encoders = {"ganrt": lambda batch: _encode_own(batch),
                "pillow_rle": lambda batch: [pillow(im, compress_type=zlib.Z_RLE) for im in batch],
                "pillow_default": lambda batch: [pillow(im) for im in batch]}
    rows = []
    for size in [int(s) for s in a.sizes.split(",")]:
        for channels in (3, 1):
            image = photo(size, channels)
            reps = min(64, max(1, int(1_000_000 // (size * size))))  # a batch of up to 64, about 1 Mpixel
            batch = np.repeat(image[None], reps, axis=0)
            times: dict[str, list[float]] = {k: [] for k in encoders}
            for _ in range(a.rounds):
                for name, enc in encoders.items():
                    t0 = time.perf_counter()
                    enc(batch)
                    times[name].append((time.perf_counter() - t0) / reps * 1e3)
            row = {"size": size, "channels": channels, "batch": reps}
            for name, enc in encoders.items():
                data = enc(image[None])[0]
                assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))).reshape(image.shape), image)
                row |= {f"{name}_ms": round(statistics.median(times[name]), 3), f"{name}_bytes": len(data)}
            row["ganrt_vs_pillow_rle"] = round(row["ganrt_ms"] / row["pillow_rle_ms"], 2)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    from benchmarks.end_to_end import cpu_flags

    result = {"command": " ".join(["python -m benchmarks.png_encoder", *(argv if argv is not None else sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(), "cpu_flags": cpu_flags(),
              "pillow": Image.__version__, "zlib": zlib.ZLIB_RUNTIME_VERSION, "rows": rows}
    text = json.dumps(result, indent=1)
    print(text)
    if a.json:
        open(a.json, "w").write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
