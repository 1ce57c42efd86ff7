"""``ganrt generate`` end to end against pure sampling, and the peak memory of long streaming runs.

    python -m benchmarks.end_to_end [--model fashion-cgan] [-n 20000] [--rounds 3] [--rss 20000,200000] [--out DIR]

1. Throughput, in one process, rounds interleaved: ``Generator.iter_batches`` (pure sampling, the
   library's default session) vs ``generate_run`` to PNG files and to npz shards with the session
   ``ganrt generate`` uses (no spinning), each making ``n`` images (the CLI's work after parsing its
   arguments). The ratio is what the issue's 60% target is about. Every round writes a folder of its
   own and all are removed only after the last round: on an ext4 without a journal (this VM), the
   kernel skips inodes freed in the last 1-6 minutes when it allocates one (``recently_deleted`` in
   ``fs/ext4/ialloc.c``), so deleting a round's 20,000 files made the next round's files cost
   ~500 instead of ~40 µs each. The CPU cost of creating a file in the output folder is measured
   before and after the rounds (``create_us``) and reported beside the ratio. The RSS runs of 2.
   write into the same folder, also kept until the end.
2. Peak RSS of ``ganrt generate -n N --format F`` for each N of ``--rss``, each run a fresh
   process (``ru_maxrss`` of the child): a streaming run must not grow with n.
3. ``import ganrt`` in ``--import-runs`` fresh processes: median and minimum seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ganrt
from ganrt.io.files import atomic_write
from ganrt.runs.writer import generate_run


def create_us(folder: Path, count: int = 1000) -> float:
    """CPU µs that ``atomic_write`` (how a run writes every file) takes for one small file in a new
    subfolder of ``folder``; the files are kept (see above)."""
    probe = folder / f"probe-{time.monotonic_ns()}"
    probe.mkdir()
    data = bytes(600)  # about one fashion-cgan PNG
    t0 = time.process_time()
    for i in range(count):
        atomic_write(os.path.join(probe, f"{i:06d}.png"), data)
    return round((time.process_time() - t0) / count * 1e6, 1)


def throughput(model: str, n: int, rounds: int, threads: int | None, batch_size: int | None,
               work: Path) -> dict[str, float]:
    gen = ganrt.load(model, threads=threads)  # pure sampling: the library's defaults
    cli = ganrt.load(model, threads=threads, spin=False)  # as `ganrt generate` loads it
    for g in (gen, cli):
        g.sample(min(n, 256), batch_size=batch_size)  # warm-up
    rates: dict[str, list[float]] = {"sample": [], "png": [], "npz": []}
    before = create_us(work)
    for r in range(rounds):
        for kind in rates:
            t0 = time.perf_counter()
            if kind == "sample":
                for _ in gen.iter_batches(n, seed=r, batch_size=batch_size):
                    pass
            else:
                generate_run(cli, work / f"{kind}-{r}", n=n, seed=r, fmt=kind, batch_size=batch_size)
            rates[kind].append(n / (time.perf_counter() - t0))
    after = create_us(work)
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {**{f"{k}_images_per_s": round(v, 1) for k, v in med.items()},
            "png_vs_sample": round(med["png"] / med["sample"], 3), "npz_vs_sample": round(med["npz"] / med["sample"], 3),
            "create_us_before": before, "create_us_after": after}


def peak_rss(model: str, n: int, fmt: str, batch_size: int | None, work: Path) -> dict[str, float]:
    """Peak RSS of one ``ganrt generate`` process (the CLI as a user runs it), writing under ``work``."""
    ganrt_bin = Path(sys.executable).with_name("ganrt")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(ganrt_bin), "generate", "-m", model, "-n", str(n), "--format", fmt,
                             "--out", str(work / f"rss-{n}-{fmt}"), "--no-progress"]
                            + (["--batch-size", str(batch_size)] if batch_size else []), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"ganrt generate -n {n} failed with status {status}")
    return {"n": n, "format": fmt, "batch_size": batch_size or "measured", "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "seconds": round(seconds, 1), "images_per_s": round(n / seconds, 1)}


def import_seconds(runs: int) -> dict[str, float]:
    """Seconds ``import ganrt`` takes in fresh processes (numpy included): median and minimum."""
    code = "import time; t = time.perf_counter(); import ganrt; print(time.perf_counter() - t)"
    times = sorted(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
                   for _ in range(runs))
    return {"runs": runs, "median_s": round(statistics.median(times), 3), "min_s": round(times[0], 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.end_to_end", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="fashion-cgan")
    p.add_argument("-n", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--rss", default="", help="comma-separated n for the peak-RSS runs, e.g. 20000,200000 (png)")
    p.add_argument("--rss-format", default="png")
    p.add_argument("--import-runs", type=int, default=10, help="fresh processes timing `import ganrt` (0: skip)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder to write the rounds under (default: the system's temporary folder)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    result = {"model": a.model, "n": a.n, "threads": a.threads, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    # the RSS runs first, while this process is small: a child's peak RSS (ru_maxrss) counts the pages it
    # shares with this process between fork and exec (after the throughput runs: ~180 MB for any n)
    # one folder for every run's files, removed only at the end (see the module docstring)
    work = Path(tempfile.mkdtemp(prefix="ganrt-e2e-", dir=a.out))
    result["out"] = str(work)
    try:
        result["rss"] = []
        for n in [int(v) for v in a.rss.split(",") if v]:
            result["rss"].append(peak_rss(a.model, n, a.rss_format, a.batch_size, work))
            print(json.dumps(result["rss"][-1]), file=sys.stderr)
        if a.n > 0:
            result["throughput"] = throughput(a.model, a.n, a.rounds, a.threads, a.batch_size, work)
            print(json.dumps(result["throughput"]), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if a.import_runs > 0:
        result["import"] = import_seconds(a.import_runs)
        print(json.dumps(result["import"]), file=sys.stderr)
    text = json.dumps(result, indent=1)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
