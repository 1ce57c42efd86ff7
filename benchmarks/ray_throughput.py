"""Images/s of `ganrt generate`: plain, and sharded over 1 and 2 local Ray workers.

    python -m benchmarks.ray_throughput [--model fashion-cgan] [-n 4000] [--format png]

Two views, each repeated ``--repeat`` times (best kept):
- ``cli``: the command a user runs, timed from outside: process start, model load, for --ray also
  starting a local Ray instance and its workers, the images, the manifest.
- ``warm``: one process with Ray already started (``ray.init(num_cpus=2)``); times only
  ``generate_run`` vs ``generate_on_ray``: the pool's start (actors, model load) and the run.
Every run's folder is checked to be byte-identical to the first plain run's.
"""

from __future__ import annotations

import argparse
import filecmp
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def same(a: Path, b: Path) -> bool:
    names = sorted(os.listdir(a))
    return names == sorted(os.listdir(b)) and not filecmp.cmpfiles(a, b, names, shallow=False)[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="fashion-cgan")
    parser.add_argument("-n", type=int, default=4000)
    parser.add_argument("--format", default="png", choices=("png", "npz"))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    ganrt_bin = str(Path(sys.executable).parent / "ganrt")
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="ganrt-bench-"))
    ref = work / "ref"
    rows = []
    try:
        base = [ganrt_bin, "generate", "-m", args.model, "-n", str(args.n), "--format", args.format, "--shard-size", "500",
                "--no-progress", "--overwrite"]
        subprocess.run(base + ["--out", str(ref)], check=True, capture_output=True)
        for name, extra in (("plain", []), ("ray, 1 worker", ["--ray", "--ray-workers", "1"]),
                            ("ray, 2 workers", ["--ray", "--ray-workers", "2"])):
            best = float("inf")
            for _ in range(args.repeat):
                out = work / "cli"
                t0 = time.perf_counter()
                subprocess.run(base + ["--out", str(out)] + extra, check=True, capture_output=True)
                best = min(best, time.perf_counter() - t0)
                assert same(ref, out), f"{name}: not byte-identical"
            rows.append(("cli", name, best))

        import ray

        import ganrt
        from ganrt.runs.cluster import ClusterConfig, generate_on_ray

        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
        try:
            gen = ganrt.load(args.model)
            gen1 = ganrt.load(args.model, threads=1)
            kw = dict(n=args.n, fmt=args.format, shard_size=500, overwrite=True)
            runs = (("plain, 2 threads", lambda out: ganrt.generate_run(gen, out, **kw)),
                    ("plain, 1 thread", lambda out: ganrt.generate_run(gen1, out, **kw)),
                    ("ray, 1 worker", lambda out: generate_on_ray(gen, out, **kw, cluster=ClusterConfig(workers=1))),
                    ("ray, 2 workers", lambda out: generate_on_ray(gen, out, **kw, cluster=ClusterConfig(workers=2))))
            for name, run in runs:
                best = float("inf")
                for _ in range(args.repeat):
                    out = work / "warm"
                    t0 = time.perf_counter()
                    run(out)
                    best = min(best, time.perf_counter() - t0)
                    assert same(ref, out), f"{name}: not byte-identical"
                rows.append(("warm", name, best))
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.model}, n={args.n}, {args.format}, {os.cpu_count()} CPUs, best of {args.repeat}; every folder byte-identical; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other jobs share the machine)")
    print("| view | run | seconds | images/s |")
    print("|---|---|---:|---:|")
    for view, name, secs in rows:
        print(f"| {view} | {name} | {secs:.2f} | {args.n / secs:.0f} |")


if __name__ == "__main__":
    main()
