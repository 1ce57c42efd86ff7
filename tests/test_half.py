"""fp16 variants: the half-precision graph in the runtime, unchanged inputs and outputs, the gate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch side needs the 'export' extra")
import onnx
import pytest

pytest.importorskip("onnxruntime.transformers.float16")

import ganrt
from ganrt.core.errors import ModelKindError, OutputError
from ganrt.evaluate.explore import class_interpolation
from ganrt_export.half import half_file
from ganrt_export.quantize import QuantizationError, QuantizeConfig

FAST = QuantizeConfig(check_n=200, classifier="")


@pytest.fixture(scope="module")
def cgan_fp16(cgan_path, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fp16") / "tiny-cgan-fp16.onnx"
    return out, half_file(cgan_path, out, config=FAST)


def test_fp16_generator_is_called_like_fp32_and_close_to_it(cgan_fp16, cgan):
    path, report = cgan_fp16
    h = ganrt.load(path)
    assert h.precision == "float16" and h.name == f"{cgan.name}-fp16" and "fp16 variant" in h.info.description
    assert h.info.training["half"]["psnr_db"] == report["psnr_db"] >= 35.0
    graph = onnx.load(path).graph
    # inputs and output keep their types: the runtime feeds float32 latents and reads uint8 images
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.input] == \
           [(i.name, i.type.tensor_type.elem_type) for i in onnx.load(cgan.path).graph.input]
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    weights = [t for t in graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    # the post-processing reads float32: a Cast from float16 sits in front of its Sub
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in graph.initializer if t.name.startswith("post_"))
    a, b = cgan.sample(64, seed=5, labels=3), h.sample(64, seed=5, labels=3)
    assert a.shape == b.shape and b.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2  # 65 dB on the bundled model: a level here and there
    np.testing.assert_array_equal(h.sample(20, seed=4, batch_size=20), h.sample(20, seed=4, batch_size=3))


def test_fp16_generator_keeps_class_mixing(cgan_fp16, cgan):
    h = ganrt.load(cgan_fp16[0])
    a, b = class_interpolation(cgan, 1, 7, 4), class_interpolation(h, 1, 7, 4)
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_fp16_upscaler_is_close_to_fp32(sr2_path, sr2, tmp_path):
    out = tmp_path / "sr2-fp16.onnx"
    report = half_file(sr2_path, out, config=FAST)
    h = ganrt.load(out)
    assert h.precision == "float16" and report["psnr_db"] >= 35.0 and report["check_photos"] > 0
    photo = np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    a, b = sr2.upscale(photo), h.upscale(photo)
    assert a.shape == b.shape == (80, 104, 3) and np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_fp16_gate_refuses_and_writes_nothing(cgan_path, tmp_path):
    out = tmp_path / "h.onnx"
    with pytest.raises(QuantizationError, match=r"fp16 images reach .* dB PSNR to fp32 \(< 200 dB"):
        half_file(cgan_path, out, config=dataclasses.replace(FAST, min_psnr_db=200.0))
    assert list(tmp_path.iterdir()) == []


def test_fp16_of_a_variant_or_a_classifier_is_refused(cgan_fp16, classifier_path, tmp_path):
    with pytest.raises(QuantizationError, match="already float16"):
        half_file(cgan_fp16[0], tmp_path / "again.onnx", config=FAST)
    with pytest.raises(ModelKindError, match="classifier"):
        half_file(classifier_path, tmp_path / "c.onnx", config=FAST)
    with pytest.raises(OutputError, match="exists"):
        half_file(classifier_path.parent / "tiny-cgan.onnx", cgan_fp16[0], config=FAST)  # never overwritten without --overwrite
    assert list(tmp_path.iterdir()) == []


def test_cli_quantize_fp16(cgan_path, tmp_path):
    from click.testing import CliRunner

    from ganrt_export.cli import cli

    out = tmp_path / "h.onnx"
    res = CliRunner().invoke(cli, ["quantize", str(cgan_path), str(out), "--precision", "fp16", "--check-n", "200",
                                   "--classifier", ""])
    assert res.exit_code == 0, res.output
    assert "fp16 vs float32 on 200 images: PSNR" in res.output
    assert ganrt.load(out).precision == "float16"
