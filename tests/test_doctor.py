import json
import subprocess
import sys
from pathlib import Path

import ganrt
from ganrt.tools.doctor import cpu_features, diagnose

BIN = Path(sys.executable).parent


def test_cpu_features_from_cpuinfo_flags():
    text = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\nbugs\t\t: x\n"
    assert cpu_features(text) == {"AVX2": True, "AVX-512": True, "VNNI": True, "BF16": False}
    assert cpu_features("flags : sse2 avx_vnni amx_bf16") == {"AVX2": False, "AVX-512": False, "VNNI": True, "BF16": True}
    assert cpu_features("") == {"AVX2": False, "AVX-512": False, "VNNI": False, "BF16": False}


def test_doctor_runs_every_provider_on_a_model_and_says_what_ganrt_picks(cgan_path):
    import onnxruntime as ort

    report = diagnose(model=str(cgan_path), threads=1)
    assert report.onnxruntime_version == ort.__version__
    assert [p.name for p in report.providers][0] == "CPUExecutionProvider" and report.providers[0].runs
    assert {p.name for p in report.providers} == set(ort.get_available_providers())
    assert report.picks["cpu"] == "CPUExecutionProvider" and report.precision == "float32"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert report.picks["auto"] == "CPUExecutionProvider" and report.picks["cuda"].startswith("error: ")
        assert "GPU build" not in report.flavour
    assert report.usable_cpus >= 1


def test_doctor_command(cgan_path):
    out = subprocess.run([str(BIN / "ganrt"), "doctor"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for word in ("onnxruntime", "CPUExecutionProvider: runs", "cpu features", "AVX2", "threads", "--device auto"):
        assert word in out.stdout
    out = subprocess.run([str(BIN / "ganrt"), "doctor", "--json", "--model", str(cgan_path)],
                         capture_output=True, text=True, timeout=120)
    assert json.loads(out.stdout)["check_model"] == str(cgan_path)


def test_cuda_never_runs_silently_on_the_cpu(cgan_path, tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert ganrt.load(cgan_path, device="cuda").provider == "CUDAExecutionProvider"
        return
    out = subprocess.run([str(BIN / "ganrt"), "generate", "--model", str(cgan_path), "--device", "cuda",
                          "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "CUDAExecutionProvider" in out.stderr and not (tmp_path / "o").exists()
