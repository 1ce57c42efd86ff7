"""Side by side: torch eager, plain onnxruntime and ganrt on the same weights and thread count.

    python -m benchmarks.compare [--quick] [--json FILE] [--markdown FILE] [--threads N] [--device cpu|cuda]

Backends, each making uint8 NHWC images from fresh latents (or upscaling a 256x256 photo):
- ``torch``: eager under ``inference_mode``; latents from ``torch.randn``, uint8 by torch ops;
- ``ort-naive``: onnxruntime with default session options on the plain export (the exporter's
  graph as it comes), float output turned into uint8 in numpy: what a user writes by hand;
- ``ganrt``: the runtime as shipped (``Generator.sample`` / ``Upscaler.upscale``), one call per batch.
- ``ganrt-stream`` (generators): batches taken one at a time from one long ``Generator.iter_batches``
  stream, what ``ganrt generate`` and bulk sampling do. With lanes the stream makes one whole batch per
  lane at once, so its "latency" is the time between batches, not one batch's latency.
- ``torch-compile`` (``--compile``, or always with ``--device cuda``): ``torch.compile`` of the eager model
  (inductor on the CPU: it needs a C compiler; a failure is logged and the backend left out).
- ``openvino-latency`` / ``openvino-throughput`` (``--openvino``, CPU; the ``bench`` extra): OpenVINO's runtime on
  the same ONNX file ganrt runs, compiled with the LATENCY or THROUGHPUT performance hint and ``threads``
  inference threads; generators get numpy latents (as ``ort-naive``) and the file's uint8 images, upscalers the
  float conversion and rounding by hand. THROUGHPUT splits a batch over the compiled model's optimal number
  of infer requests (an ``AsyncInferQueue``), what that hint is for. Both in float32; on a CPU where OpenVINO
  would pick bf16 by itself (AMX, AVX-512 BF16), ``openvino-latency-bf16`` is that default beside them.
- ``ganrt-1lane`` (``--one-lane``, generators): the runtime with ``lanes=1``, each batch one multi-threaded run;
- ``ganrt-fp16`` (``--fp16``): the fp16 variant made in the run by ``export.half`` (for ``--device cuda``);
- ``ganrt-cudagraph`` (``--device cuda``, generators): the float32 file replayed from captured CUDA graphs;
- ``ganrt-int8`` (``--int8``): the bundled int8 variant (``NAME-int8``), or one made in the run by
  ``export.quantize``; a generator variant the quality gate refuses is timed all the same and its
  records say so.

Models: the bundled ``fashion-cgan``; the canonical DCGAN at 64x64x3 (nz 100, widths 64) from a
fixed seed, throughput only; the bundled ``sr-x4`` on a 256x256 crop of scikit-image's astronaut.
torch runs the "twin" of each bundled file (``export.twin``): the file's own weights.
Translators (``--models pix2pix-unet256,cyclegan-resnet9``, batch 1, at ``--translator-sides``): pix2pix's
``UnetGenerator(3, 3, 8)`` with BatchNorm and CycleGAN's ``ResnetGenerator(3, 3, n_blocks=9)`` with
InstanceNorm, rebuilt as junyanz/pytorch-CycleGAN-and-pix2pix defines them (``tests/third_party.py``),
random weights (speed only), width ``--translator-ngf`` (the authors' 64 by default), exported by
``ganrt-export torch --kind translator``'s function; torch eager runs the same module on the astronaut
(256: a crop; 1024: bicubic-enlarged), the test-time conversion x / 127.5 - 1 and back to uint8.

Everything runs in one process, so ratios are comparable; absolute numbers drift on a shared
machine. See ``ganrt.tools.bench`` for how rounds, latency, RSS and GFLOP/s are measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

import ganrt
from ganrt.core.session import onnxruntime
from ganrt.io.files import atomic_write
from ganrt.io.images import float_to_uint8
from ganrt.tools.bench import (
    DEFAULT_BATCH_SIZES,
    Record,
    RssSampler,
    gemm_gflops,
    machine,
    markdown_table,
    measure,
    record,
    to_json,
)
from ganrt_export.config import GANConfig, SRConfig, TrainConfig
from ganrt_export.models import Generator
from ganrt_export.onnx import OUTPUT_NAMES, count_flops, example_inputs, export_module, plain_onnx
from ganrt_export.train import Checkpoint
from ganrt_export.twin import torch_twin

SR_INPUT = 256  # side of the upscaler's input
SR_MAX_BATCH = 8  # 8 x (1024 x 1024 x 48 channels) of activations is already ~2 GB


def dcgan64(seed: int = 0) -> tuple[torch.nn.Module, Checkpoint]:
    """The canonical DCGAN generator at 64x64x3 (random weights, BatchNorm statistics randomised)."""
    cfg = GANConfig(image_size=64, channels=3, nz=100, ngf=64, ndf=64)
    torch.manual_seed(seed)
    model = Generator(cfg)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # as after training: not the identity
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    ck = Checkpoint(kind="gan", model_config=cfg, train_config=TrainConfig(), epoch=0, state={}, history=[], class_names=(),
                    data="none: random weights, throughput only", train_seconds=0.0, path=Path("-"))
    return model.eval(), ck


def _twin_checkpoint(info) -> Checkpoint:
    kind = "sr" if info.kind == "upscaler" else "gan"
    cfg = (SRConfig if kind == "sr" else GANConfig).from_dict(info.training["model_config"])
    return Checkpoint(kind=kind, model_config=cfg, train_config=TrainConfig(prior=info.prior) if kind == "gan" else None,
                      epoch=0, state={}, history=[], class_names=info.class_names, data="", train_seconds=0.0, path=Path("-"))


class Subject:
    """One model under test: its torch module, plain export, ganrt model, and per-backend callables."""

    def __init__(self, name: str, model: torch.nn.Module, ck: Checkpoint, ganrt_path: Path, *, threads: int, device: str,
                 compile_: bool, note: str = "", int8_path: Path | None = None, fp16_path: Path | None = None,
                 one_lane: bool = False, openvino: bool = False) -> None:
        self.name, self.note, self.ck, self.path = name, note, ck, ganrt_path
        self.kind = ck.kind
        self.flops = count_flops(model, ck) * (SR_INPUT * SR_INPUT if ck.kind == "sr" else 1)  # per image
        dev = torch.device(device)
        self.torch_model = model.to(dev)
        self.device = dev
        self.compiled = torch.compile(self.torch_model) if compile_ else None
        example = example_inputs(ck, 2, (8, 8))  # the exporter's own example inputs (8x8 images for upscalers)
        plain = plain_onnx(model.cpu(), example, outputs=OUTPUT_NAMES[ck.kind], any_size=ck.kind == "sr").SerializeToString()
        self.torch_model.to(dev)
        ort = onnxruntime()
        providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # the same thread count as torch; nothing else changed
        self.naive = ort.InferenceSession(plain, sess_options=opts, providers=providers)
        self.ganrt = ganrt.load(ganrt_path, device=device, threads=threads)
        self.int8 = ganrt.load(int8_path, device=device, threads=threads) if int8_path else None
        self.fp16 = ganrt.load(fp16_path, device=device, threads=threads) if fp16_path else None
        self.one_lane = ganrt.load(ganrt_path, device=device, threads=threads, lanes=1) if one_lane and ck.kind == "gan" else None
        # generators on CUDA: the same file replayed from captured CUDA graphs, one per batch size
        self.graphs = ganrt.load(ganrt_path, device=device, cuda_graph=True) if device == "cuda" and ck.kind == "gan" else None
        self.photo = _photo() if ck.kind == "sr" else None
        self.openvino = openvino_models(ganrt_path, threads) if openvino and device == "cpu" else {}
        self._count = 0
        self._streams: dict[int, Iterator] = {}  # batch size -> an endless iter_batches of self.ganrt

    # each backend: fn(batch) -> uint8 images (B, H, W, C)
    def backends(self) -> dict[str, Callable[[int], np.ndarray]]:
        out = {"torch": lambda b: self._torch(self.torch_model, b), "ort-naive": self._naive, "ganrt": self._ganrt}
        if self.kind == "gan":
            out["ganrt-stream"] = self._stream
        if self.compiled is not None:
            out["torch-compile"] = lambda b: self._torch(self.compiled, b)
        if self.int8 is not None:
            out["ganrt-int8"] = lambda b: self._ganrt(b, self.int8)
        if self.fp16 is not None:
            out["ganrt-fp16"] = lambda b: self._ganrt(b, self.fp16)
        if self.graphs is not None:
            out["ganrt-cudagraph"] = lambda b: self._ganrt(b, self.graphs)
        if self.one_lane is not None:
            out["ganrt-1lane"] = lambda b: self._ganrt(b, self.one_lane)
        for hint, compiled in self.openvino.items():
            out[f"openvino-{hint}"] = lambda b, c=compiled, h=hint: self._openvino(c, h, b)
        return out

    def _feeds(self, b: int) -> dict[str, np.ndarray]:
        """Inputs of a batch of b for a backend that takes the ganrt file's own inputs (OpenVINO)."""
        if self.kind == "sr":
            return {"image": np.repeat(self.photo[None], b, 0).transpose(0, 3, 1, 2).astype(np.float32) / 255.0}
        cfg = self.ck.model_config
        feeds = {"z": np.random.standard_normal((b, cfg.nz)).astype(np.float32)}
        if cfg.num_classes:
            feeds["label"] = np.arange(b, dtype=np.int64) % cfg.num_classes
        return feeds

    def _openvino(self, compiled, hint: str, b: int) -> np.ndarray:
        feeds = self._feeds(b)
        if hint.startswith("latency"):
            y = compiled(feeds)[compiled.outputs[0]]
        else:  # THROUGHPUT: the batch in parts, one per infer request, run at once
            import openvino as ov

            parts = np.array_split(np.arange(b), min(b, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
            results: dict[int, np.ndarray] = {}
            queue = ov.AsyncInferQueue(compiled, len(parts))
            queue.set_callback(lambda request, k: results.__setitem__(k, request.get_output_tensor(0).data.copy()))
            for k, idx in enumerate(parts):
                queue.start_async({name: v[idx[0] : idx[-1] + 1] for name, v in feeds.items()}, k)
            queue.wait_all()
            y = np.concatenate([results[k] for k in range(len(parts))])
        if self.kind == "sr":
            return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        return y  # the ganrt file's own uint8 (B, H, W, C)

    def _torch(self, model, b: int) -> np.ndarray:
        with torch.inference_mode():
            if self.kind == "sr":
                x = torch.from_numpy(np.repeat(self.photo[None], b, 0)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
                y = model(x).mul(255.0).round().clamp(0, 255)
            else:
                cfg = self.ck.model_config
                z = torch.randn(b, cfg.nz, device=self.device)
                labels = (torch.arange(b, device=self.device) % cfg.num_classes) if cfg.num_classes else None
                y = model(z, labels).add(1.0).mul(127.5).round().clamp(0, 255)
            return y.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def _naive(self, b: int) -> np.ndarray:
        if self.kind == "sr":
            x = np.repeat(self.photo[None], b, 0).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
            (y,) = self.naive.run(None, {"image": x})
            return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        cfg = self.ck.model_config
        feeds = {"z": np.random.standard_normal((b, cfg.nz)).astype(np.float32)}
        if cfg.num_classes:
            feeds["label"] = np.arange(b, dtype=np.int64) % cfg.num_classes
        (y,) = self.naive.run(None, feeds)
        return float_to_uint8(y, (-1.0, 1.0))

    def _stream(self, b: int) -> np.ndarray:
        if b not in self._streams:
            self._streams[b] = self.ganrt.iter_batches(1 << 40, seed=1, batch_size=b)
        return next(self._streams[b]).images

    def _ganrt(self, b: int, model=None) -> np.ndarray:
        model = model or self.ganrt
        if self.kind == "sr":
            return model.upscale_many(np.repeat(self.photo[None], b, 0))
        self._count += b
        return model.sample(b, seed=0, start=self._count, batch_size=b)


def _photo() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[:SR_INPUT, 100 : 100 + SR_INPUT])  # (256, 256, 3) uint8


def int8_variant(float_path: Path, tmp: Path, *, rewrite: str | None = None) -> tuple[Path, dict]:
    """(path of the int8 variant of ``float_path``, its quality): the bundled ``NAME-int8`` when there is
    one (as shipped), else made in ``tmp`` by ``export.quantize``; with ``rewrite`` always made, with that
    ConvTranspose rewrite. A generator variant the gate refuses is written all the same, for timing only:
    its quality says ``refused`` and why."""
    import onnx

    from ganrt_export.quantize import (
        QuantizationError,
        QuantizeConfig,
        float32_info,
        quantize_generator,
        quantize_graph,
        quantize_upscaler,
    )

    config = QuantizeConfig() if rewrite is None else QuantizeConfig(rewrite=rewrite)
    bundled = ganrt.available_models().get(f"{float_path.stem}-int8")
    if bundled is not None and rewrite is None:
        info = ganrt.load(bundled).info
        return bundled, {k: v for k, v in info.training.get("quantization", {}).items()
                         if k in ("psnr_db", "classifier_agreement")}
    data = float_path.read_bytes()
    proto = onnx.load_from_string(data)
    kind = float32_info(proto, float_path.name, kinds=("generator", "upscaler")).kind
    try:
        quantize = quantize_upscaler if kind == "upscaler" else quantize_generator
        qdata, report = quantize(data, config=config, source=float_path.name)
        quality = {k: report[k] for k in ("psnr_db", "classifier_agreement", "check_n", "check_photos") if k in report}
    except QuantizationError as exc:
        if kind == "upscaler":
            raise
        qdata = quantize_graph(proto, float32_info(proto, float_path.name), config=config)[0].SerializeToString()
        quality = {"refused": str(exc)}
    out = tmp / f"{float_path.stem}-int8{'-' + rewrite if rewrite else ''}.onnx"
    atomic_write(out, qdata)
    return out, quality


def fp16_variant(float_path: Path, tmp: Path) -> tuple[Path, dict]:
    """(path of the fp16 variant of ``float_path`` made in ``tmp`` by ``export.half``, its gate's numbers)."""
    from ganrt_export.half import half_model

    data, report = half_model(float_path.read_bytes(), source=float_path.name)
    out = tmp / f"{float_path.stem}-fp16.onnx"
    atomic_write(out, data)
    return out, {k: report[k] for k in ("psnr_db", "classifier_agreement", "check_photos") if k in report}


TRANSLATORS = ("pix2pix-unet256", "cyclegan-resnet9")


class TranslatorSubject:
    """A junyanz generator (random weights) at one input side: torch eager, plain onnxruntime and ganrt, batch 1.

    The same ``name``/``kind``/``flops``/``note``/``backends()`` as ``Subject``; ``max_batch`` 1 (one 1024x1024
    image of a width-64 U-Net is several GB of activations already)."""

    max_batch = 1

    def __init__(self, arch: str, side: int, tmp: Path, *, threads: int, device: str, ngf: int = 64) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        import third_party as tp  # the architectures as the repository defines them

        from benchmarks.byom import flops_per_image
        from ganrt_export.byom import export_translator

        torch.manual_seed(0)
        if arch == "pix2pix-unet256":  # --netG unet_256 --norm batch: 8 levels, sides multiples of 256
            module = tp._settle(tp.UnetGenerator(3, 3, 8, ngf=ngf, norm_layer=torch.nn.BatchNorm2d),
                                torch.rand(2, 3, 256, 256) * 2 - 1)
        elif arch == "cyclegan-resnet9":  # --netG resnet_9blocks --norm instance: sees the whole image
            module = tp.ResnetGenerator(3, 3, ngf=ngf, norm_layer=tp.cyclegan_instance_norm(), n_blocks=9).eval()
        else:
            raise ValueError(f"unknown translator {arch!r}; expected one of {', '.join(TRANSLATORS)}")
        self.name, self.kind, self.side = f"{arch}@{side}", "translator", side
        self.note = f"random weights, ngf {ngf}: speed only"
        path = tmp / f"{arch}-ngf{ngf}.onnx"
        if not path.exists():
            export_translator(module, path, name=arch, description=f"{arch} ngf {ngf}, random weights")
        self.photo = _translator_photo(side)  # (side, side, 3) uint8
        self.flops = flops_per_image(module, torch.zeros(1, 3, side, side))
        dev = torch.device(device)
        self.torch_model, self.device = module.to(dev), dev
        ort = onnxruntime()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        plain = path.with_suffix(".plain.onnx")  # the file a user writes by hand with torch.onnx.export
        if not plain.exists():
            tp.export_plain(module.cpu(), [torch.rand(2, 3, 256, 256) * 2 - 1], plain, input_names=["image"],
                            output_names=["translated"], dynamic_hw=True, dynamo=False)
        self.naive = ort.InferenceSession(str(plain), sess_options=opts, providers=providers)
        self.torch_model.to(dev)
        self.ganrt = ganrt.load(path, device=device, threads=threads)

    def backends(self) -> dict[str, Callable[[int], np.ndarray]]:
        return {"torch": self._torch, "ort-naive": self._naive,
                "ganrt": lambda b: self.ganrt.translate_many(np.repeat(self.photo[None], b, 0))}

    def _torch(self, b: int) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.repeat(self.photo[None], b, 0)).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            y = self.torch_model(x).add(1.0).mul(127.5).round().clamp(0, 255)
            return y.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def _naive(self, b: int) -> np.ndarray:
        x = np.repeat(self.photo[None], b, 0).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(127.5) - np.float32(1.0)
        (y,) = self.naive.run(None, {self.naive.get_inputs()[0].name: x})
        return float_to_uint8(y, (-1.0, 1.0))


def _translator_photo(side: int) -> np.ndarray:
    import skimage.data

    from ganrt.io.images import bicubic_resize

    photo = skimage.data.astronaut()  # (512, 512, 3)
    return np.ascontiguousarray(photo[:side, :side] if side <= 512 else bicubic_resize(photo, (side, side)))


def cpu_flags() -> str:
    """The CPU's vector features that decide int8 and fp32 speed, e.g. ``avx2`` or ``avx2 avx512f avx512_vnni``
    (``ganrt.kinds.variants.cpu_flags``; empty where unknown): tables are labelled by them."""
    from benchmarks.end_to_end import cpu_flags as flags

    return " ".join(flags())


def openvino_models(path: Path, threads: int) -> dict:
    """hint -> OpenVINO's CPU compilation of the ONNX file ``path`` (dynamic batch) with that performance hint.

    ``latency`` and ``throughput`` compute in float32, as ganrt's fp32 file does: OpenVINO's CPU plugin otherwise
    picks the CPU's own precision (bf16 on CPUs with AMX or AVX-512 BF16), a different computation. Where it would,
    ``latency-bf16`` (say) is that default too, what a user who never sets the hint gets.
    """
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    settings = {"INFERENCE_NUM_THREADS": threads}
    out = {hint.lower(): core.compile_model(model, "CPU", {**settings, "PERFORMANCE_HINT": hint,
                                                           "INFERENCE_PRECISION_HINT": "f32"})
           for hint in ("LATENCY", "THROUGHPUT")}
    default = core.get_property("CPU", "INFERENCE_PRECISION_HINT")  # an ov.Type: bf16 on AMX, f32 on AVX2
    if default != ov.Type.f32:
        out[f"latency-{default.get_type_name()}"] = core.compile_model(model, "CPU", {**settings, "PERFORMANCE_HINT": "LATENCY"})
    return out


def subjects(names: list[str], tmp: Path, *, threads: int, device: str, compile_: bool, int8: bool = False,
             fp16: bool = False, one_lane: bool = False, openvino: bool = False, translator_sides: tuple[int, ...] = (256, 1024),
             translator_ngf: int = 64, log=print) -> list:
    out: list = []
    for name in names:
        if name in TRANSLATORS:
            out += [TranslatorSubject(name, side, tmp, threads=threads, device=device, ngf=translator_ngf)
                    for side in translator_sides]
            continue
        if name == "dcgan-64":
            model, ck = dcgan64()
            data, _ = export_module(model, ck, name="dcgan-64", description="canonical DCGAN 64x64x3, random weights")
            path = tmp / "dcgan-64.onnx"
            atomic_write(path, data)
            note = "throughput only"
        else:
            path = ganrt.resolve_model(name)
            model, info = torch_twin(path)
            ck, note = _twin_checkpoint(info), ""
        int8_path = None
        if int8:
            int8_path, quality = int8_variant(path, tmp)
            log(f"{name}: int8 variant {quality}")
            note = "; ".join(filter(None, [note, "int8 refused by the gate" if "refused" in quality else ""]))
        fp16_path = None
        if fp16:
            fp16_path, quality = fp16_variant(path, tmp)
            log(f"{name}: fp16 variant {quality}")
        out.append(Subject(name, model, ck, path, threads=threads, device=device, compile_=compile_, note=note,
                           int8_path=int8_path, fp16_path=fp16_path, one_lane=one_lane, openvino=openvino))
    return out


def run(*, models: list[str], batch_sizes: list[int], threads: int, device: str, rounds: int, min_seconds: float,
        compile_: bool, int8: bool = False, fp16: bool = False, one_lane: bool = False, openvino: bool = False,
        translator_sides=(256, 1024),
        translator_ngf: int = 64, log=print) -> tuple[list[Record], float]:
    torch.set_num_threads(threads)
    gemm = gemm_gflops(threads=threads)
    log(f"onnxruntime MatMul 2048^2 fp32, {threads} threads: {gemm:.1f} GFLOP/s")
    sampler = RssSampler()
    records: list[Record] = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in subjects(models, Path(tmp), threads=threads, device=device, compile_=compile_, int8=int8, fp16=fp16,
                          one_lane=one_lane, openvino=openvino, translator_sides=translator_sides,
                          translator_ngf=translator_ngf, log=log):
            for b in batch_sizes:
                if (s.kind == "sr" and b > SR_MAX_BATCH) or b > getattr(s, "max_batch", b):
                    continue
                t0 = time.perf_counter()
                backends = s.backends()
                if "torch-compile" in backends:
                    try:
                        backends["torch-compile"](b)
                    except Exception as exc:  # inductor needs a C compiler and may fail on a CPU or op it lacks
                        log(f"{s.name} batch {b}: torch-compile left out: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
                        del backends["torch-compile"]
                timings = measure(backends, b, rounds=rounds, min_seconds=min_seconds, sampler=sampler)
                for backend, t in timings.items():
                    records.append(record(s.name, backend, b, t, flops_per_image=s.flops, gemm=gemm, threads=threads,
                                          device=device, note=s.note))
                rates = ", ".join(f"{k} {records[-len(timings) + i].images_per_s:,.0f}" for i, k in enumerate(timings))
                log(f"{s.name} batch {b}: {rates} images/s ({time.perf_counter() - t0:.0f} s)")
    sampler.close()
    # the ceiling again at the end: on a shared machine one measurement can land in a busy moment
    later = gemm_gflops(threads=threads)
    log(f"onnxruntime MatMul at the end: {later:.1f} GFLOP/s; the higher of the two is the ceiling")
    if later > gemm:
        gemm = later
        records = [dataclasses.replace(r, gemm_gflops=round(gemm, 2)) for r in records]
    return records, gemm


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="batch 1 and 64, 3 short rounds: under a minute on 2 cores")
    p.add_argument("--json", type=Path, default=None, help="write the records here")
    p.add_argument("--markdown", type=Path, default=None, help="write the table here")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for torch and onnxruntime (default: all cores)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--models", default="fashion-cgan,dcgan-64,sr-x4")
    p.add_argument("--batch-sizes", default=None, help=f"comma-separated (default {','.join(map(str, DEFAULT_BATCH_SIZES))})")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--seconds", type=float, default=None, help="minimum seconds per backend per round")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (always on with --device cuda)")
    p.add_argument("--int8", action="store_true",
                   help="also time each model's int8 variant (bundled NAME-int8, or made by export.quantize)")
    p.add_argument("--one-lane", action="store_true",
                   help="also time the generators with lanes=1 (one multi-threaded run per batch)")
    p.add_argument("--openvino", action="store_true",
                   help="also time OpenVINO's runtime on the same file, LATENCY and THROUGHPUT hints "
                        "(pip install 'ganrt[bench]')")
    p.add_argument("--fp16", action="store_true",
                   help="also time each model's fp16 variant (made in the run by export.half; for --device cuda)")
    p.add_argument("--translator-sides", default="256,1024", help="input sides the translators are timed at")
    p.add_argument("--translator-ngf", type=int, default=64, help="translators' width (the authors' 64)")
    a = p.parse_args(argv)
    batch_sizes = [int(b) for b in a.batch_sizes.split(",")] if a.batch_sizes else (
        [1, 64] if a.quick else list(DEFAULT_BATCH_SIZES))
    rounds = a.rounds or (3 if a.quick else 5)
    seconds = a.seconds or (0.25 if a.quick else 1.0)
    t0 = time.perf_counter()
    records, gemm = run(models=a.models.split(","), batch_sizes=batch_sizes, threads=a.threads, device=a.device, rounds=rounds,
                        min_seconds=seconds, compile_=a.compile or a.device == "cuda", int8=a.int8, fp16=a.fp16,
                        one_lane=a.one_lane, openvino=a.openvino,
                        translator_sides=tuple(int(v) for v in a.translator_sides.split(",")),
                        translator_ngf=a.translator_ngf, log=lambda m: print(m, file=sys.stderr))
    extra = {"openvino": __import__("openvino").__version__} if a.openvino else {}
    extra["cpu_flags"] = cpu_flags()
    info = {**machine(), **extra, "torch": torch.__version__, "threads": a.threads, "device": a.device, "gemm_gflops": gemm,
            "rounds": rounds, "min_seconds": seconds, "seconds_total": round(time.perf_counter() - t0, 1),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if a.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    table = markdown_table(records, baseline="torch")
    head = f"{info['cpu']}, {info['cores']} cores, {a.threads} threads, device {a.device}" + (
        f" ({info['gpu']})" if a.device == "cuda" else "")
    text = f"{head}; onnxruntime {info['onnxruntime']}, torch {info['torch']}; {info['date']}\n\n{table}\n"
    print(text)
    if a.markdown:
        atomic_write(a.markdown, text.encode())
    if a.json:
        atomic_write(a.json, to_json(records, machine=info).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
