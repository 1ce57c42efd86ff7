"""Per-call cost of ``Generator.sample`` at small batches, beside a bare ``session.run`` (compare's ``ort-naive``).

    python -m benchmarks.call_overhead [--models fashion-cgan,dcgan-64] [--batch-sizes 1,2,8] [--rounds 7]

In one process, interleaved rounds (``ganrt.tools.bench.measure``), for each model and batch size:
``ort-naive`` (compare's own callable: default session on the plain export, numpy latents, float output
to uint8 in numpy); ``ganrt`` as shipped (the way each size runs is measured on the calls, ``lanes.Route``);
``ganrt-threads`` / ``ganrt-lane`` / ``ganrt-split``: the same file with that one way forced (``threads`` is
what every small batch did before); ``latents``: ``sample_latents`` alone. Prints ms per call and the ratio
to ``ort-naive``; ``--json`` writes the records.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

import ganrt
from benchmarks.compare import subjects
from ganrt.core import latent
from ganrt.io.files import atomic_write
from ganrt.kinds.lanes import Route
from ganrt.tools.bench import machine, measure


def forced(path: Path, way: str, threads: int):
    g = ganrt.load(path, threads=threads)
    g._lanes.route = Route(lambda b: (way,) if way != "split" or b >= g.lanes else ("lane",))
    return g


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.call_overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="fashion-cgan,dcgan-64")
    p.add_argument("--batch-sizes", default="1,2,8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seconds", type=float, default=0.3)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in subjects(a.models.split(","), Path(tmp), threads=a.threads, device="cpu", compile_=False,
                          log=lambda m: None):
            ways = {w: forced(s.path, w, a.threads) for w in ("threads", "lane", "split")}
            counter = iter(range(1 << 30, 1 << 62, 1 << 16))
            backends = {"ort-naive": s.backends()["ort-naive"], "ganrt": s.backends()["ganrt"]}
            for w, g in ways.items():
                backends[f"ganrt-{w}"] = lambda b, g=g: g.sample(b, start=next(counter), batch_size=b)
            backends["latents"] = lambda b: latent.sample_latents(0, range(7, 7 + b), s.ganrt.nz, prior=s.ganrt.prior)
            for b in (int(x) for x in a.batch_sizes.split(",")):
                t = measure(backends, b, rounds=a.rounds, min_seconds=a.seconds)
                ms = {k: 1e3 * b / float(sorted(v.rates)[len(v.rates) // 2]) for k, v in t.items()}
                chosen = s.ganrt._lanes.route.chosen().get(b, "-") if s.ganrt._lanes else "-"
                rows.append({"model": s.name, "batch_size": b, "ms_per_call": {k: round(v, 4) for k, v in ms.items()},
                             "ganrt_chose": chosen})
                ratios = ", ".join(f"{k} {v:.3f} ms ({ms['ort-naive'] / v:.2f}x)" for k, v in ms.items())
                print(f"{s.name} batch {b}: {ratios}; ganrt chose {chosen}", flush=True)
    if a.json:
        import json

        atomic_write(a.json, (json.dumps({"machine": machine(), "rows": rows}, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
