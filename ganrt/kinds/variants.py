"""Which variant of a model (float32 ``NAME`` or int8 ``NAME-int8``) runs fastest on this CPU: measured, not assumed.

int8 wins by 2-5x on a CPU with VNNI (the README's Zen 5 run) and by much less, or not at all, without it
(1.15-1.39x on an AVX2-only EPYC, issue 16). So ``load(name, variant="fastest")`` and ``ganrt doctor`` time
the variants here: a short probe (interleaved rounds of each kind's own ``bench`` call at one batch size),
whose result is cached per model file, CPU flags, onnxruntime version and thread count in
``$GANRT_CACHE`` (default ``~/.cache/ganrt``)/``variants.json``, so it runs once per machine. Images of a
variant do not change with the choice: the choice is between two files, each with its own quality gate.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ganrt.core.bundled import available_models, resolve_model
from ganrt.core.errors import ParameterError
from ganrt.core.kind import KINDS
from ganrt.core.model import file_sha256
from ganrt.io.files import atomic_write

VARIANTS = ("float32", "int8")
PROBE_BATCH = 64  # generators: a batch where per-call overhead is small; upscalers: one 256x256 input (bench's)
PROBE_ROUNDS = 3
PROBE_SECONDS = 0.15  # per variant and round: the probe takes about a second for a generator


@dataclass(frozen=True)
class VariantChoice:
    """The measured choice for one model on this machine."""

    model: str  # what the caller named
    fastest: str  # the file's name (a bundled name, or a path) that ran fastest
    images_per_s: dict[str, float]  # variant name -> median images/s of the probe
    cpu_flags: str
    onnxruntime: str
    threads: int | None
    measured: str  # UTC date of the probe
    cached: bool  # read from the cache, not measured in this process

    def speedup(self) -> float:
        """int8 over float32 images/s in the probe (1.0 when there is one variant)."""
        rates = list(self.images_per_s.values())
        return rates[-1] / rates[0] if len(rates) == 2 and rates[0] > 0 else 1.0


def cpu_flags() -> str:
    """The vector features of this CPU that decide which variant wins (``avx2``, ``avx512_vnni``, ...)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "unknown"
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    wanted = re.compile(r"^(avx2|avx512[a-z_0-9]*|avx_vnni|amx[a-z_0-9]*)$")
    return " ".join(sorted(f for f in line.partition(":")[2].split() if wanted.match(f))) or "none"


def candidates(name: str) -> dict[str, Path]:
    """variant -> file for ``name``: the float32 file and, where it exists, its int8 sibling (bundled
    ``NAME-int8``, or ``STEM-int8.onnx`` beside a file). ``name`` may name either variant."""
    base = str(name).removesuffix("-int8")
    bundled = available_models()
    if base in bundled:
        files = {"float32": bundled[base], "int8": bundled.get(f"{base}-int8")}
    else:
        path = resolve_model(name)
        stem = path.stem.removesuffix("-int8")
        files = {"float32": path.with_name(f"{stem}.onnx"), "int8": path.with_name(f"{stem}-int8.onnx")}
    return {k: v for k, v in files.items() if v is not None and v.is_file()}


def cache_path() -> Path:
    return Path(os.environ.get("GANRT_CACHE") or Path.home() / ".cache" / "ganrt") / "variants.json"


def _key(files: dict[str, Path], flags: str, ort_version: str, threads: int | None) -> str:
    sums = ",".join(f"{k}={file_sha256(p)[:16]}" for k, p in sorted(files.items()))
    return f"{sums}|{flags}|onnxruntime {ort_version}|threads {threads}"


def _probe(files: dict[str, Path], threads: int | None) -> dict[str, float]:
    """variant -> median images/s: ``Kind.bench``'s call at PROBE_BATCH (upscalers: 1), rounds interleaved."""
    from ganrt.kinds.registry import load

    models = {k: load(p, threads=threads) for k, p in files.items()}
    try:
        calls = {}
        for k, m in models.items():
            fn, _ = KINDS[m.info.kind].bench(m)
            b = PROBE_BATCH if m.info.kind == "generator" else 1
            fn(b)  # warm-up: allocations, kernel choice
            calls[k] = (fn, b)
        rates: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(PROBE_ROUNDS):
            for k, (fn, b) in calls.items():
                n, t0 = 0, time.perf_counter()
                while (elapsed := time.perf_counter() - t0) < PROBE_SECONDS or n == 0:
                    fn(b)
                    n += b
                rates[k].append(n / max(elapsed, 1e-9))
        return {k: round(float(np.median(v)), 1) for k, v in rates.items()}
    finally:
        for m in models.values():
            m.close()


def fastest_variant(name: str, *, threads: int | None = None, refresh: bool = False) -> VariantChoice:
    """The variant of ``name`` with the most images/s on this machine (measured once, then cached)."""
    from ganrt.core.session import onnxruntime

    files = candidates(name)
    if "float32" not in files:
        raise ParameterError(f"'{name}': no float32 file to compare its variants with")
    flags, version = cpu_flags(), onnxruntime().__version__
    bundled = str(name).removesuffix("-int8") in available_models()
    label = {k: p.stem if bundled else str(p) for k, p in files.items()}  # what load() is then given
    if len(files) == 1:
        return VariantChoice(str(name), label["float32"], {}, flags, version, threads, "", False)
    key, path = _key(files, flags, version, threads), cache_path()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    hit = cache.get(key) if not refresh else None
    if isinstance(hit, dict) and set(hit.get("images_per_s", {})) == set(files):
        rates, measured, cached = hit["images_per_s"], hit.get("measured", ""), True
    else:
        rates, measured, cached = _probe(files, threads), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), False
        cache[key] = {"images_per_s": rates, "measured": measured}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, (json.dumps(cache, indent=1, sort_keys=True) + "\n").encode())
        except OSError:  # a read-only home: the choice still holds for this process
            pass
    best = max(VARIANTS, key=lambda k: rates.get(k, -1.0))
    ordered = {k: rates[k] for k in VARIANTS if k in rates}
    return VariantChoice(str(name), label[best], ordered, flags, version, threads, measured, cached)


def choice_dict(choice: VariantChoice) -> dict:
    return {**asdict(choice), "int8_over_float32": round(choice.speedup(), 2)}
