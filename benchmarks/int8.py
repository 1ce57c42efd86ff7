"""int8 vs float32 vs torch eager, on the same weights, in one process with interleaved rounds.

    python -m benchmarks.int8 [--threads 1,2] [--batch-sizes 1,64,256] [--models fashion-cgan,dcgan-64] [--json FILE]

Backends per model (uint8 NHWC images from fresh latents, as in ``benchmarks.compare``):
``torch`` (eager twin of the float file), ``ganrt`` (the float32 file), ``ganrt-int8`` (its int8
variant from ``export.quantize``, made in this run and gated as ``ganrt-export quantize`` gates it).
The canonical DCGAN-64 has random weights and 64x64x3 images that no bundled classifier judges:
its gate is PSNR only, and if it refuses, the ungated int8 graph is timed and the record says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import onnx
import torch

import ganrt
from ganrt.bench import Record, gemm_gflops, machine, markdown_table, measure, record, to_json
from ganrt.images import atomic_write

from benchmarks.compare import Subject, _twin_checkpoint, dcgan64
from export.onnx import export_module
from export.quantize import QuantizationError, QuantizeConfig, _info, quantize_generator, quantize_graph
from export.twin import torch_twin


def _float_file(name: str, tmp: Path) -> tuple[Path, torch.nn.Module, object]:
    if name == "dcgan-64":
        model, ck = dcgan64()
        data, _ = export_module(model, ck, name="dcgan-64", description="canonical DCGAN 64x64x3, random weights")
        path = tmp / "dcgan-64.onnx"
        atomic_write(path, data)
        return path, model, ck
    path = ganrt.resolve_model(name)
    model, info = torch_twin(path)
    return path, model, _twin_checkpoint(info)


def _int8_file(float_path: Path, tmp: Path, config: QuantizeConfig) -> tuple[Path, dict]:
    data = float_path.read_bytes()
    out = tmp / f"{float_path.stem}-int8.onnx"
    try:
        qdata, report = quantize_generator(data, config=config, source=float_path.name)
        quality = {k: report[k] for k in ("psnr_db", "classifier_agreement", "check_n")}
    except QuantizationError as exc:  # timed anyway, labelled: throughput of a variant the gate refused
        proto = onnx.load_from_string(data)
        qdata = quantize_graph(proto, _info(proto, float_path.name), config=config)[0].SerializeToString()
        quality = {"refused": str(exc)}
    atomic_write(out, qdata)
    return out, quality


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.int8", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="fashion-cgan,dcgan-64")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batch-sizes", default="1,64,256")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=0.5, help="minimum seconds per backend per round")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    records: list[Record] = []
    quality: dict[str, dict] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files = {}
        for name in a.models.split(","):
            fpath, model, ck = _float_file(name, tmp)
            qpath, quality[name] = _int8_file(fpath, tmp, QuantizeConfig())
            files[name] = (fpath, model, ck, qpath)
            log(f"{name}: int8 quality {quality[name]}")
        for threads in (int(t) for t in a.threads.split(",")):
            torch.set_num_threads(threads)
            gemm = gemm_gflops(threads=threads)
            log(f"threads {threads}: onnxruntime MatMul 2048^2 fp32 {gemm:.1f} GFLOP/s")
            for name, (fpath, model, ck, qpath) in files.items():
                s = Subject(name, model, ck, fpath, threads=threads, device="cpu", compile_=False)
                int8 = ganrt.load(qpath, threads=threads)
                count = [0]

                def sample_int8(b: int, int8=int8, count=count):
                    count[0] += b
                    return int8.sample(b, seed=0, start=count[0], batch_size=b)

                backends = {"torch": s.backends()["torch"], "ganrt": s.backends()["ganrt"], "ganrt-int8": sample_int8}
                for b in (int(x) for x in a.batch_sizes.split(",")):
                    timings = measure(backends, b, rounds=a.rounds, min_seconds=a.seconds)
                    for backend, t in timings.items():
                        records.append(record(name, backend, b, t, flops_per_image=s.flops, gemm=gemm, threads=threads,
                                              device="cpu", note=f"{threads} threads"))
                    rates = {k: records[-len(timings) + i].images_per_s for i, k in enumerate(timings)}
                    log(f"{name} threads {threads} batch {b}: " + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items())
                        + f" images/s; int8/fp32 {rates['ganrt-int8'] / rates['ganrt']:.2f}x, "
                        f"int8/torch {rates['ganrt-int8'] / rates['torch']:.2f}x, fp32/torch {rates['ganrt'] / rates['torch']:.2f}x")
    info = {**machine(), "torch": torch.__version__, "rounds": a.rounds, "min_seconds": a.seconds,
            "seconds_total": round(time.perf_counter() - t0, 1), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "quality": quality}
    for threads in sorted({r.threads for r in records}):
        print(f"\n{threads} threads\n\n" + markdown_table([r for r in records if r.threads == threads], baseline="torch"))
    print("\nquality: " + json.dumps(quality))
    if a.json:
        atomic_write(a.json, to_json(records, machine=info).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
