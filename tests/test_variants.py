"""load(variant="fastest") and ganrt doctor: the float32 / int8 choice is measured on this CPU and cached."""

import shutil

import pytest

import ganrt
from ganrt.core.errors import ParameterError
from ganrt.kinds import variants


@pytest.fixture()
def pair(cgan_path, tmp_path, monkeypatch):
    """A file and an '-int8' sibling (the same network: which one wins is up to the measurement)."""
    monkeypatch.setenv("GANRT_CACHE", str(tmp_path / "cache"))
    shutil.copy(cgan_path, tmp_path / "g.onnx")
    shutil.copy(cgan_path, tmp_path / "g-int8.onnx")
    return tmp_path / "g.onnx"


def test_measured_once_then_cached(pair, monkeypatch):
    first = variants.fastest_variant(str(pair), threads=1)
    assert not first.cached and set(first.images_per_s) == {"float32", "int8"}
    assert all(r > 0 for r in first.images_per_s.values())
    assert first.fastest == str(pair if first.images_per_s["float32"] >= first.images_per_s["int8"]
                                else pair.with_name("g-int8.onnx"))
    assert first.cpu_flags == variants.cpu_flags() and first.onnxruntime
    monkeypatch.setattr(variants, "_probe", lambda files, threads: pytest.fail("measured again"))
    again = variants.fastest_variant(str(pair), threads=1)
    assert again.cached and again.images_per_s == first.images_per_s and again.fastest == first.fastest
    assert variants.cache_path().is_file()


def test_the_faster_one_is_loaded(pair, monkeypatch):
    monkeypatch.setattr(variants, "_probe", lambda files, threads: {"float32": 100.0, "int8": 140.0})
    choice = variants.fastest_variant(str(pair), threads=1, refresh=True)
    assert choice.fastest == str(pair.with_name("g-int8.onnx")) and choice.speedup() == pytest.approx(1.4)
    with ganrt.load(pair, variant="fastest", threads=1) as g:
        assert g.path.name == "g-int8.onnx"
    monkeypatch.setattr(variants, "_probe", lambda files, threads: {"float32": 100.0, "int8": 60.0})
    assert variants.fastest_variant(str(pair), threads=2).fastest == str(pair)  # another thread count: its own entry


def test_a_file_without_a_sibling_is_its_own_choice(cgan_path, tmp_path, monkeypatch):
    monkeypatch.setenv("GANRT_CACHE", str(tmp_path / "cache"))
    shutil.copy(cgan_path, tmp_path / "lone.onnx")
    choice = variants.fastest_variant(str(tmp_path / "lone.onnx"))
    assert choice.fastest == str(tmp_path / "lone.onnx") and choice.images_per_s == {}
    assert not variants.cache_path().exists()  # nothing measured, nothing written


@pytest.mark.parametrize("kw, match", [(dict(variant="smallest"), "variant must be 'fastest' or None"),
                                       (dict(variant="fastest", device="cuda"), "measured on the CPU")])
def test_bad_variant_requests(pair, kw, match):
    with pytest.raises(ParameterError, match=match):
        ganrt.load(pair, **kw)


def test_doctor_reports_the_measured_choice(monkeypatch, tmp_path):
    from ganrt.tools.doctor import diagnose

    monkeypatch.setenv("GANRT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(variants, "_probe", lambda files, threads: {"float32": 300.0, "int8": 420.0})
    report = diagnose(threads=1)  # the bundled fashion-cgan and fashion-cgan-int8
    assert report.variant["fastest"] == "fashion-cgan-int8" and report.variant["int8_over_float32"] == 1.4
    line = next(ln for ln in report.lines() if "fastest variant" in ln)
    assert "fashion-cgan-int8" in line and "1.40x" in line and variants.cpu_flags() in line
