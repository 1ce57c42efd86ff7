"""``ganrt doctor``: what this machine offers ganrt (onnxruntime build, providers, CPU), and what ganrt would pick.

Every provider onnxruntime lists is started alone on a small model (a bundled generator) and made to
produce one image; a provider that is listed but cannot run is reported, not assumed.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.core.errors import GanrtError
from ganrt.core.run import run_session

CPUINFO = Path("/proc/cpuinfo")
# feature -> the /proc/cpuinfo flags that provide it (any of them)
CPU_FEATURES = {
    "AVX2": ("avx2",),
    "AVX-512": ("avx512f",),
    "VNNI": ("avx512_vnni", "avx_vnni"),
    "BF16": ("avx512_bf16", "amx_bf16"),
}


@dataclass(frozen=True)
class ProviderCheck:
    name: str
    runs: bool
    detail: str  # "ok", the reason it did not run, or how far its image is from the CPU's


@dataclass(frozen=True)
class DoctorReport:
    onnxruntime_version: str
    flavour: str  # which wheel provides onnxruntime: CPU build or GPU build
    providers: tuple[ProviderCheck, ...]
    cpu_model: str
    cpu_features: dict[str, bool] | None  # None: no /proc/cpuinfo (not Linux)
    cpus: int  # os.cpu_count()
    usable_cpus: int  # this process's CPU affinity
    physical_cores: int | None  # onnxruntime's default thread count is about one per physical core
    threads: str
    picks: dict[str, str]  # --device cpu/auto/cuda -> the provider ganrt would use, or why not
    check_model: str
    precision: str
    variant: dict | None = None  # kinds.variants' measured choice for the check model (None: it has no int8 sibling)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        feats = "unknown (no /proc/cpuinfo)" if self.cpu_features is None else \
            "  ".join(f"{k} {'yes' if v else 'no'}" for k, v in self.cpu_features.items())
        rows = [
            ("onnxruntime", f"{self.onnxruntime_version} ({self.flavour})"),
            *[("provider", f"{p.name}: {'runs' if p.runs else 'does NOT run'} ({p.detail})") for p in self.providers],
            ("cpu", self.cpu_model or "unknown"),
            ("cpu features", feats),
            ("cpus", f"{self.cpus} ({self.usable_cpus} usable by this process, "
                     f"{self.physical_cores if self.physical_cores is not None else '?'} physical cores)"),
            ("threads", self.threads),
            *[(f"--device {d}", pick) for d, pick in self.picks.items()],
            ("variant", f"{self.check_model}: {self.precision}"),
            ("fastest variant", self._variant_line()),
        ]
        return [f"{k:>17}  {v}" for k, v in rows]


    def _variant_line(self) -> str:
        v = self.variant
        if not v:
            return f"{self.check_model} has no int8 variant to compare"
        if "error" in v:
            return f"not measured: {v['error']}"
        rates = ", ".join(f"{k} {r:,.0f}" for k, r in v["images_per_s"].items())
        how = f"cached from {v['measured']}" if v["cached"] else f"measured now ({v['measured']})"
        return (f"{v['fastest']} ({rates} images/s, int8 {v['int8_over_float32']:.2f}x float32 on {v['cpu_flags']}; "
                f"{how}): load(name, variant='fastest') picks it")


def cpu_features(cpuinfo: str) -> dict[str, bool]:
    """AVX2 / AVX-512 / VNNI / BF16 from the text of /proc/cpuinfo (its first ``flags`` line)."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    return {name: any(f in flags for f in wanted) for name, wanted in CPU_FEATURES.items()}


def _cpuinfo_field(cpuinfo: str, key: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith(key):
            return line.partition(":")[2].strip()
    return ""


def _physical_cores(cpuinfo: str) -> int | None:
    cores, physical = set(), ""
    for line in cpuinfo.splitlines():
        if line.startswith("physical id"):
            physical = line.partition(":")[2].strip()
        elif line.startswith("core id"):
            cores.add((physical, line.partition(":")[2].strip()))
    return len(cores) or None


def _flavour() -> str:
    from importlib import metadata

    installed = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            installed.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    if len(installed) == 2:
        return f"BROKEN: both {installed[0]} and {installed[1]} are installed; uninstall both, then install one"
    if not installed:
        return "installed outside pip"
    return ("GPU build: " if "gpu" in installed[0] else "CPU build: ") + installed[0]


def _one_image(session: Any) -> np.ndarray:
    """One image from a generator session, from fixed inputs (z of ones, label 0)."""
    feeds = {}
    for inp in session.get_inputs():
        if inp.name == "z":
            nz = inp.shape[-1] if isinstance(inp.shape[-1], int) else 100
            feeds["z"] = np.ones((1, nz), np.float32)
        else:
            feeds[inp.name] = np.zeros((1,), np.int64)
    return run_session(session, [session.get_outputs()[0].name], feeds, source="doctor")[0]  # stoppable: --timeout, Ctrl-C


def diagnose(*, model: str | None = None, threads: int | None = None) -> DoctorReport:
    """Inspect onnxruntime, its providers, the CPU, and the choices ganrt makes; ``model``: the check model."""
    from ganrt.core.bundled import DEFAULT_MODEL, resolve_model
    from ganrt.core.session import DEVICES, onnxruntime, provider_session
    from ganrt.kinds.registry import load

    ort = onnxruntime()
    name = model or DEFAULT_MODEL
    path = resolve_model(name)
    checks, reference = [], None
    for provider in ["CPUExecutionProvider"] + [p for p in ort.get_available_providers() if p != "CPUExecutionProvider"]:
        try:
            image = _one_image(provider_session(path, provider, threads=threads))
        except GanrtError as exc:
            checks.append(ProviderCheck(provider, False, str(exc)))
            continue
        except Exception as exc:  # a provider that starts but fails to run: its own error types
            checks.append(ProviderCheck(provider, False, f"failed to run one image: {str(exc).splitlines()[0][:150]}"))
            continue
        if reference is None:
            reference, detail = image, "one image made"
        else:
            detail = f"one image made; max |difference| from the CPU's: {float(np.abs(image - reference).max()):.2e}"
        checks.append(ProviderCheck(provider, True, detail))
    picks, precision = {}, ""
    for device in DEVICES:
        try:
            m = load(name, device=device, threads=threads)
            picks[device] = m.provider
            precision = precision or m.precision
        except GanrtError as exc:
            picks[device] = f"error: {exc}"
    from ganrt.kinds.variants import candidates, choice_dict, fastest_variant

    try:
        variant = choice_dict(fastest_variant(name, threads=threads)) if "int8" in candidates(name) else None
    except GanrtError as exc:
        variant = {"error": str(exc)}
    text = CPUINFO.read_text(errors="replace") if CPUINFO.is_file() else ""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return DoctorReport(
        onnxruntime_version=ort.__version__,
        flavour=_flavour(),
        providers=tuple(checks),
        cpu_model=_cpuinfo_field(text, "model name"),
        cpu_features=cpu_features(text) if text else None,
        cpus=os.cpu_count() or 1,
        usable_cpus=usable,
        physical_cores=_physical_cores(text) if text else None,
        threads=f"{threads} (--threads)" if threads else "onnxruntime's default: one per physical core (--threads N to set)",
        picks=picks,
        check_model=name,
        precision=precision,
        variant=variant,
    )
