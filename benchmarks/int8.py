"""int8 vs float32 vs torch eager, on the same weights, in one process with interleaved rounds.

    python -m benchmarks.int8 [--threads 1,2] [--batch-sizes 1,64,256] [--models fashion-cgan,dcgan-64] [--json FILE]
                              [--rewrites phase,...]

The subset of ``python -m benchmarks.compare --int8`` that the int8 work needs, at several thread
counts in one process: ``torch`` (eager twin of the float file), ``ganrt`` (the float32 file) and
``ganrt-int8`` (its int8 variant from ``export.quantize``, made in this run and gated as
``ganrt-export quantize`` gates it; one the gate refuses is timed all the same and says so).
The canonical DCGAN-64 has random weights and 64x64x3 images that no bundled classifier judges:
its gate is PSNR only. ``--rewrites`` adds one backend per named ConvTranspose rewrite
(``ganrt-int8-MODE``, see ``export.quantize.REWRITES``), made in the run with the same calibration.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

import torch

import ganrt
from benchmarks.compare import int8_variant, subjects
from ganrt.io.files import atomic_write
from ganrt.tools.bench import Record, gemm_gflops, machine, markdown_table, measure, record, to_json


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.int8", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="fashion-cgan,dcgan-64")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batch-sizes", default="1,64,256")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=0.5, help="minimum seconds per backend per round")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--rewrites", default="", help="also time int8 variants made with these rewrites (comma-separated)")
    a = p.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    records: list[Record] = []
    quality: dict[str, str] = {}  # model -> the line that reports its int8 variant's quality

    def note(line: str) -> None:
        quality[line.split(":")[0]] = line
        log(line)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        for threads in (int(t) for t in a.threads.split(",")):
            torch.set_num_threads(threads)
            gemm = gemm_gflops(threads=threads)
            log(f"threads {threads}: onnxruntime MatMul 2048^2 fp32 {gemm:.1f} GFLOP/s")
            # the int8 files are made again for each thread count: same latents, same bytes
            for s in subjects(a.models.split(","), Path(tmp_name), threads=threads, device="cpu", compile_=False, int8=True,
                              log=note):
                backends = {k: v for k, v in s.backends().items() if k in ("torch", "ganrt", "ganrt-int8")}
                for mode in filter(None, a.rewrites.split(",")):
                    path, q = int8_variant(s.path, Path(tmp_name), rewrite=mode)
                    log(f"{s.name}: int8 rewrite {mode}: {q}")
                    backends[f"ganrt-int8-{mode}"] = functools.partial(s._ganrt, model=ganrt.load(path, threads=threads))
                for b in (int(x) for x in a.batch_sizes.split(",")):
                    timings = measure(backends, b, rounds=a.rounds, min_seconds=a.seconds)
                    for backend, t in timings.items():
                        records.append(record(s.name, backend, b, t, flops_per_image=s.flops, gemm=gemm, threads=threads,
                                              device="cpu", note=f"{threads} threads"))
                    rates = {k: records[-len(timings) + i].images_per_s for i, k in enumerate(timings)}
                    log(f"{s.name} threads {threads} batch {b}: " + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items())
                        + f" images/s; int8/fp32 {rates['ganrt-int8'] / rates['ganrt']:.2f}x, "
                        f"int8/torch {rates['ganrt-int8'] / rates['torch']:.2f}x, "
                        f"fp32/torch {rates['ganrt'] / rates['torch']:.2f}x")
    info = {**machine(), "torch": torch.__version__, "rounds": a.rounds, "min_seconds": a.seconds,
            "seconds_total": round(time.perf_counter() - t0, 1), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "quality": quality}
    for threads in sorted({r.threads for r in records}):
        print(f"\n{threads} threads\n\n" + markdown_table([r for r in records if r.threads == threads], baseline="torch"))
    print("\n" + "\n".join(quality.values()))
    if a.json:
        atomic_write(a.json, to_json(records, machine=info).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
