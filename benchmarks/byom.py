"""Bring your own model: four models from elsewhere, exported with ``ganrt_export.byom``, ganrt vs torch eager.

    python -m benchmarks.byom [--json FILE] [--threads N] [--rounds R] [--seconds S]
    python -m benchmarks.byom --table FILE [--docs docs/byom.md]   # its markdown table (into the docs' markers)

The models are the architectures of ``tests/third_party.py`` (as their repositories define them) at
their authors' default sizes, with seeded random weights (speed does not depend on the weights):

- ``dcgan``: pytorch/examples DCGAN ``Generator`` (nz 100, ngf 64): z (N, 100, 1, 1) -> 64x64x3;
- ``cdcgan``: znxlwm's one-hot cDCGAN ``generator`` (d 128): z and a float one-hot label -> 32x32x1;
- ``espcn``: pytorch/examples ESPCN ``Net`` (x3) on the Y channel;
- ``srvgg``: Real-ESRGAN's ``SRVGGNetCompact`` (num_feat 64, num_conv 16, x4, PReLU), its convolutions
  re-drawn by ``signal_init``: with PyTorch's default initialisation the input's influence dies out
  over 16 layers (the body's output then depends on the biases only, and the measured receptive
  radius is 0); trained weights should not behave like that.

Backends, both making uint8 NHWC images; everything runs in one process, interleaved rounds
(``ganrt.tools.bench.measure``), so the ratios compare:

- ``torch``: eager under ``inference_mode``, the module called as the authors' scripts call it: DCGAN
  ``netG(torch.randn(N, 100, 1, 1))``; cDCGAN with z viewed (N, 100, 1, 1) and ``onehot[labels]``
  (labels i mod 10); ESPCN through super_resolve.py's pipeline (Pillow's YCbCr, the net on Y,
  Pillow's bicubic chroma, back to RGB: ``third_party.espcn_reference``); SRVGGNetCompact through
  Real-ESRGAN's ``enhance`` conversion (``third_party.upscaler_reference``). The uint8 conversion is
  included in torch's time, as ganrt's graph includes it in ganrt's.
- ``ganrt``: ``ganrt.load(file)`` as shipped and ``ganrt bench``'s own callable (``model_backend``):
  generators ``sample(b)`` of fresh indices, upscalers ``upscale_many`` of 256x256 RGB inputs.

Generators at batch 1 and 64, upscalers at batch 1 (256x256 inputs). Beside the speed: each export's
time and report (parity against the ONNX source and against the module, receptive radius), the
largest difference between tiled (tile 128) and whole-image output on a 512x512 photo-like input,
and ganrt's images against torch's on the benchmark's own inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ganrt
from ganrt.core.latent import sample_latents
from ganrt.io.files import atomic_write
from ganrt.tools.bench import RssSampler, gemm_gflops, machine, markdown_table, measure, model_backend, record, to_json
from ganrt.tools.doctor import cpu_features

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))  # third_party.py (the four architectures) and test_byom.photo live with the tests
import third_party as tp  # noqa: E402
from test_byom import photo  # noqa: E402

from ganrt_export.byom import export_generator, export_upscaler  # noqa: E402

SIDE = 256  # upscalers' input side, as in `ganrt bench` (kinds.upscaler.BENCH_IMAGE_SIDE)
TILE_CHECK = (512, 128)  # tiled vs whole: a 512x512 input in tiles of 128
GENERATOR_BATCHES = (1, 64)
UPSCALER_BATCHES = (1,)


def flops_per_image(module: torch.nn.Module, *args: torch.Tensor) -> float:
    """FLOPs (2 x multiply-adds of convolutions and matmuls) of one call on ``args`` of batch 1."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(*args)
    return float(counter.get_total_flops())


def signal_init(module: torch.nn.Module, *, seed: int = 0, slope: float = 0.25, last: float = 0.1) -> torch.nn.Module:
    """Seeded He-normal convolutions for a PReLU network (``slope``: the slopes' mean), zero biases, the last
    convolution scaled by ``last`` (a small residual on top of the nearest-neighbour base, as after training)."""
    g = torch.Generator().manual_seed(seed)
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for i, conv in enumerate(convs):
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            std = (2.0 / (1.0 + slope**2) / fan_in) ** 0.5 * (last if i == len(convs) - 1 else 1.0)
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * std)
            conv.bias.zero_()
    return module


class Subject:
    """One model: its torch module, how the authors' script calls it, its ganrt file and what the export said."""

    def __init__(self, name: str, module: torch.nn.Module, kind: str, path: Path, export_s: float, report: dict[str, Any],
                 torch_fn: Callable[[int], np.ndarray], flops: float, note: str, threads: int) -> None:
        self.name, self.module, self.kind, self.path, self.note = name, module, kind, path, note
        self.export_s, self.report, self.flops = export_s, report, flops
        self.torch_fn = torch_fn
        self.model = ganrt.load(path, threads=threads)
        self.ganrt_fn, _ = model_backend(self.model)  # what `ganrt bench` times

    def backends(self) -> dict[str, Callable[[int], Any]]:
        return {"torch": self.torch_fn, "ganrt": self.ganrt_fn}


def _torch_dcgan(module: torch.nn.Module) -> Callable[[int], np.ndarray]:
    def fn(b: int) -> np.ndarray:  # dcgan/main.py: noise = torch.randn(b, nz, 1, 1); fake = netG(noise)
        with torch.inference_mode():
            return tp.to_uint8(module(torch.randn(b, 100, 1, 1)), (-1.0, 1.0))

    return fn


def _torch_cdcgan(module: torch.nn.Module) -> Callable[[int], np.ndarray]:
    onehot = torch.eye(10).view(10, 10, 1, 1)  # the script's onehot table, (10, 10, 1, 1)

    def fn(b: int) -> np.ndarray:  # z_ = randn(b, 100).view(-1, 100, 1, 1); y_ = onehot[labels]; G(z_, y_)
        with torch.inference_mode():
            z = torch.randn(b, 100).view(-1, 100, 1, 1)
            return tp.to_uint8(module(z, onehot[torch.arange(b) % 10]), (-1.0, 1.0))

    return fn


def _bench_image() -> np.ndarray:
    """The input `ganrt bench` upscales (kinds.upscaler._bench): 256x256 RGB noise from seed 0."""
    return np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)


def _torch_espcn(module: torch.nn.Module) -> Callable[[int], np.ndarray]:
    image = _bench_image()
    return lambda b: np.stack([tp.espcn_reference(module, image) for _ in range(b)])  # super_resolve.py, one photo a call


def _torch_srvgg(module: torch.nn.Module) -> Callable[[int], np.ndarray]:
    image = _bench_image()
    return lambda b: tp.upscaler_reference(module, np.repeat(image[None], b, 0))  # RealESRGANer.enhance's conversion


def build(tmp: Path, *, threads: int, log: Callable[[str], None]) -> list[Subject]:
    """The four at their authors' default sizes, each exported (and timed) into ``tmp``."""
    made = []
    dcgan, _ = tp.tiny_dcgan(ngf=64)
    cdcgan, _ = tp.tiny_cdcgan(d=128)
    espcn, _ = tp.tiny_espcn(upscale_factor=3)
    srvgg = signal_init(tp.tiny_srvgg(num_feat=64, num_conv=16, upscale=4, act_type="prelu")[0])
    y = torch.rand(1, 1, SIDE, SIDE)
    specs = [
        ("dcgan", dcgan, "generator", dict(), _torch_dcgan, (torch.randn(1, 100, 1, 1),), "nz 100, ngf 64, 64x64x3"),
        ("cdcgan", cdcgan, "generator", dict(label="onehot", num_classes=10, class_names=tuple("0123456789")), _torch_cdcgan,
         (torch.randn(1, 100, 1, 1), torch.eye(10)[:1].view(1, 10, 1, 1)), "d 128, one-hot label, 32x32x1"),
        ("espcn", espcn, "upscaler", dict(color="y"), _torch_espcn, (y,), "x3, Y channel; torch: super_resolve.py's pipeline"),
        ("srvgg", srvgg, "upscaler", dict(), _torch_srvgg, (torch.rand(1, 3, SIDE, SIDE),), "num_feat 64, num_conv 16, x4"),
    ]
    for name, module, kind, options, torch_fn, example, note in specs:
        path = tmp / f"{name}.onnx"
        t0 = time.perf_counter()
        export = export_generator if kind == "generator" else export_upscaler
        report = export(module, path, name=name, **options)
        export_s = time.perf_counter() - t0
        flops = flops_per_image(module, *example)  # upscalers: per 256x256 input (ESPCN: its Y channel)
        log(f"{name}: exported in {export_s:.1f} s, {path.stat().st_size / 1e6:.1f} MB, {flops / 1e9:.2f} GFLOP/image; "
            f"parity {report['parity']}")
        made.append(Subject(name, module, kind, path, export_s, report, torch_fn(module), flops, note, threads))
    return made


def checks(s: Subject) -> dict[str, Any]:
    """What the export reported, ganrt's images against torch's on the benchmark's inputs, and (upscalers) tiling."""
    r = s.report
    out: dict[str, Any] = {"export_s": round(s.export_s, 2), "file_mb": round(s.path.stat().st_size / 1e6, 2),
                           "parity_vs_onnx_source": r["parity"], "flops_per_image": s.flops, "note": s.note}
    if s.kind == "generator":
        out["parity_vs_module_max_abs_uint8"] = r["torch_parity_max_abs_uint8"]
        n = 16
        z = torch.from_numpy(sample_latents(0, np.arange(n), 100).reshape(n, 100, 1, 1))  # the latents of seed 0
        labels = np.arange(n) % 10
        args = (z,) if s.model.num_classes == 0 else (z, torch.eye(10)[labels].view(n, 10, 1, 1))
        with torch.inference_mode():
            theirs = tp.to_uint8(s.module(*args), (-1.0, 1.0))
        ours = s.model.sample(n, seed=0, **({"labels": labels} if s.model.num_classes else {}))
        out["ganrt_vs_torch_max_abs_uint8"] = int(np.abs(ours.astype(int) - theirs.astype(int)).max())
    else:
        out["parity_vs_module_max_abs"] = r["torch_parity_max_abs"]
        out["receptive_radius"] = r["receptive_radius"]
        image = photo(SIDE, SIDE)
        ours = s.model.upscale(image)
        if s.name == "espcn":
            # super_resolve.py truncates Y and resizes Cb/Cr with Pillow; compared as tests/test_byom.py does: in
            # YCbCr, where neither picture clipped RGB (a clipped pixel no longer holds its Y)
            from PIL import Image

            theirs = tp.espcn_reference(s.module, image)
            inside = ((ours > 0) & (ours < 255)).all(-1) & ((theirs > 0) & (theirs < 255)).all(-1)
            a, b = (np.asarray(Image.fromarray(x).convert("YCbCr")).astype(int) for x in (ours, theirs))
            d = np.abs(a - b)[inside]  # (pixels, 3)
            out["ganrt_vs_script_ycbcr"] = {"pixels_compared": round(float(inside.mean()), 3), "y_max": int(d[:, 0].max()),
                                           "y_mean": round(float(d[:, 0].mean()), 3), "chroma_max": int(d[:, 1:].max())}
        else:
            theirs = tp.upscaler_reference(s.module, image[None])[0]
            out["ganrt_vs_torch_max_abs_uint8"] = int(np.abs(ours.astype(int) - theirs.astype(int)).max())
        side, tile = TILE_CHECK
        big = photo(side, side)
        whole, tiles = s.model.upscale(big, tile=4 * side), s.model.upscale(big, tile=tile)
        out["tiling"] = {"input": f"{side}x{side}", "tile": tile, "overlap": s.model.check_options(tile=tile)[1],
                         "max_abs_uint8": int(np.abs(whole.astype(int) - tiles.astype(int)).max()),
                         "values_differing": int(np.count_nonzero(whole != tiles))}
    return out


def busy_cores(seconds: float = 2.0) -> float:
    """Cores kept busy by other processes, from /proc/stat over ``seconds`` while this one sleeps: on a shared
    machine it says whether the numbers that follow were measured on free cores."""

    def ticks() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]  # all, idle + iowait

    (a0, i0), _ = ticks(), time.sleep(seconds)
    a1, i1 = ticks()
    cores = os.cpu_count() or 1
    return round(cores * (1.0 - (i1 - i0) / max(1, a1 - a0)), 2)


def run(*, threads: int, rounds: int, min_seconds: float, log: Callable[[str], None]) -> tuple[list, dict, float]:
    torch.set_num_threads(threads)
    gemm = gemm_gflops(threads=threads)
    log(f"onnxruntime MatMul 2048^2 fp32, {threads} threads: {gemm:.1f} GFLOP/s")
    records, models = [], {}
    sampler = RssSampler()
    with tempfile.TemporaryDirectory() as tmp:
        for s in build(Path(tmp), threads=threads, log=log):
            models[s.name] = checks(s)
            log(f"{s.name}: {json.dumps({k: v for k, v in models[s.name].items() if k != 'note'})}")
            for b in GENERATOR_BATCHES if s.kind == "generator" else UPSCALER_BATCHES:
                t0 = time.perf_counter()
                timings = measure(s.backends(), b, rounds=rounds, min_seconds=min_seconds, sampler=sampler)
                for backend, t in timings.items():
                    records.append(record(s.name, backend, b, t, flops_per_image=s.flops, gemm=gemm, threads=threads,
                                          device="cpu", note=s.note))
                t, g = records[-2].images_per_s, records[-1].images_per_s
                took = time.perf_counter() - t0
                log(f"{s.name} batch {b}: torch {t:,.1f}, ganrt {g:,.1f} images/s ({g / t:.2f}x; {took:.0f} s)")
            s.model.close()
    sampler.close()
    later = gemm_gflops(threads=threads)  # the ceiling again: one measurement can land in a busy moment
    log(f"onnxruntime MatMul at the end: {later:.1f} GFLOP/s")
    return records, models, max(gemm, later)


def table(results: dict[str, Any]) -> str:
    """The markdown table of a results file: images/s torch vs ganrt, and the checks beside them."""
    m = results["machine"]
    rate = {(r["model"], r["backend"], r["batch_size"]): r["images_per_s"] for r in results["records"]}
    flags = ", ".join(k for k, v in m["cpu_features"].items() if v) or "none of AVX2/AVX-512/VNNI/BF16"
    head = (f"images/s; {m['cpu']} ({flags}), {m['cores']} cores, {m['threads']} threads; onnxruntime {m['onnxruntime']}, "
            f"torch {m['torch']}; {m['date']}; fp32 MatMul {m['gemm_gflops']:.0f} GFLOP/s")
    if "busy_cores_before" in m:
        head += f"; other processes kept {m['busy_cores_before']:.1f} of {m['cores']} cores busy before the run"
    columns = ["model", "batch", "torch eager", "ganrt", "× torch", "parity (source / module)", "ganrt − torch", "tiled − whole",
               "export"]
    lines = [head, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, c in results["models"].items():
        for (model, backend, b), t in rate.items():
            if model != name or backend != "torch":
                continue
            g = rate[(name, "ganrt", b)]
            if "tiling" in c:
                parity = f"{c['parity_vs_onnx_source']['max_abs']:.1e} / {c['parity_vs_module_max_abs']:.1e}"
                tiling = f"{c['tiling']['max_abs_uint8']}/255 (r {c['receptive_radius']})"
            else:
                parity = f"{c['parity_vs_onnx_source']['max_abs_uint8']}/255 / {c['parity_vs_module_max_abs_uint8']}/255"
                tiling = "–"
            if "ganrt_vs_script_ycbcr" in c:
                y = c["ganrt_vs_script_ycbcr"]
                vs = f"Y ≤ {y['y_max']}, CbCr ≤ {y['chroma_max']}"
            else:
                vs = f"{c['ganrt_vs_torch_max_abs_uint8']}/255"
            row = [name, str(b), f"{t:,.1f}", f"{g:,.1f}", f"{g / t:.2f}×", parity, vs, tiling, f"{c['export_s']:.1f} s"]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


DOCS_MARKERS = ("<!-- byom:table begin -->", "<!-- byom:table end -->")


def write_docs(path: Path, text: str) -> None:
    """Replace what lies between the DOCS_MARKERS in ``path`` with ``text``."""
    doc = path.read_text()
    begin, end = DOCS_MARKERS
    head, sep, rest = doc.partition(begin)
    _, sep2, tail = rest.partition(end)
    if not (sep and sep2):
        raise SystemExit(f"{path}: no {begin} ... {end} markers")
    atomic_write(path, f"{head}{begin}\n{text}\n{end}{tail}".encode())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.byom", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, default=None, help="write the records and checks here")
    p.add_argument("--table", type=Path, default=None, help="print the markdown table of this results file and exit")
    p.add_argument("--docs", type=Path, default=None, help="with --table: write the table between the markers of this file")
    p.add_argument("--threads", type=int, default=2, help="threads for torch and onnxruntime (default 2)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=1.0, help="minimum seconds per backend per round")
    a = p.parse_args(argv)
    if a.table:
        text = table(json.loads(a.table.read_text()))
        if a.docs:
            write_docs(a.docs, text)
        print(text)
        return 0
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    busy = busy_cores()
    log(f"before the run, other processes kept {busy:.2f} of {os.cpu_count()} cores busy")
    t0 = time.perf_counter()
    records, models, gemm = run(threads=a.threads, rounds=a.rounds, min_seconds=a.seconds, log=log)
    info = {**machine(), "cpu_features": cpu_features(Path("/proc/cpuinfo").read_text()), "torch": torch.__version__,
            "threads": a.threads, "device": "cpu", "busy_cores_before": busy,
            "load_average_after": [round(v, 2) for v in os.getloadavg()], "gemm_gflops": round(gemm, 2), "rounds": a.rounds,
            "min_seconds": a.seconds,
            "seconds_total": round(time.perf_counter() - t0, 1), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    results = json.loads(to_json(records, machine=info, models=models))
    print(markdown_table(records, baseline="torch"))
    print()
    print(table(results))
    if a.json:
        atomic_write(a.json, (json.dumps(results, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
