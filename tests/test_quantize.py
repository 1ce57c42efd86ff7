"""int8 variants: the exact Conv rewrite, the quantized file in the runtime, and the quality gate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch side needs the 'export' extra")
import onnx
import pytest

pytest.importorskip("onnxruntime.quantization")

import ganrt
from ganrt.core.errors import ModelKindError, OutputError, ParameterError
from ganrt_export.quantize import (
    REWRITES,
    GeneratorCalibration,
    QuantizationError,
    QuantizeConfig,
    check_rewrite,
    float32_info,
    quantize_file,
    rewrite_conv_transpose,
)

# The tiny models settle on far fewer latents. Their digit-like noise sits on the fashion classifier's
# decision boundaries, so its agreement means nothing here: the agreement test brings its own classifier.
FAST = QuantizeConfig(calibration_n=64, check_n=200, classifier="")


@pytest.fixture(scope="module")
def cgan_int8(cgan_path, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("int8") / "tiny-cgan-int8.onnx"
    return out, quantize_file(cgan_path, out, config=FAST)


@pytest.mark.parametrize("mode", REWRITES)
@pytest.mark.parametrize("which", ["cgan_path", "dcgan_path"])
def test_rewrite_is_exact(which, mode, request):
    proto = onnx.load(request.getfixturevalue(which))
    rewritten, count = rewrite_conv_transpose(proto, mode=mode)
    assert count == 4  # 1x1 -> 4x4, then 4 -> 8 -> 16 -> 32
    assert not [n for n in rewritten.graph.node if n.op_type == "ConvTranspose"]
    assert check_rewrite(proto, rewritten, float32_info(proto, which), batch_sizes=(1, 5)) <= 1e-5


def test_int8_file_samples_uint8_images_close_to_fp32(cgan_int8, cgan):
    path, report = cgan_int8
    q = ganrt.load(path)
    assert q.precision == "int8" and q.info.precision == "int8"
    quant = q.info.training["quantization"]
    assert quant["psnr_db"] >= 35.0 and quant["calibration_n"] == FAST.calibration_n and quant["check_n"] == FAST.check_n
    assert quant["psnr_db"] == report["psnr_db"] and report["rewritten"] == 4
    assert q.info.training["model_config"] == cgan.info.training["model_config"]  # the float file's metadata is kept
    images = q.sample(7, seed=3, labels=2)
    assert images.dtype == np.uint8 and images.shape == (7, *cgan.image_shape)
    ref = cgan.sample(7, seed=3, labels=2)
    assert np.mean(np.abs(images.astype(int) - ref.astype(int))) < 3.0  # 35 dB is an RMS error of 4.5 levels
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert ops >= {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm",
                   "Transpose"} and not ops & {"ConvTranspose", "DepthToSpace"}
    # static scales: an image does not depend on the batch it was made in (resume and replay rely on it)
    np.testing.assert_array_equal(q.sample(20, seed=4, batch_size=20), q.sample(20, seed=4, batch_size=3))


def test_int8_of_an_int8_file_is_refused(cgan_int8, tmp_path):
    with pytest.raises(QuantizationError, match="already int8"):
        quantize_file(cgan_int8[0], tmp_path / "again.onnx", config=FAST)
    assert not (tmp_path / "again.onnx").exists()


def test_gate_refuses_low_psnr_and_writes_nothing(cgan_path, tmp_path):
    out = tmp_path / "q.onnx"
    with pytest.raises(QuantizationError, match=r"dB PSNR to fp32 \(< 200 dB"):
        quantize_file(cgan_path, out, config=dataclasses.replace(FAST, min_psnr_db=200.0))
    assert list(tmp_path.iterdir()) == []


def test_gate_refuses_a_broken_calibration(dcgan_path, tmp_path, monkeypatch):
    """Ranges calibrated on latents a thousand times too small clip every real activation."""
    real = GeneratorCalibration.get_next

    def tiny(self):
        feeds = real(self)
        return None if feeds is None else {**feeds, "z": feeds["z"] * 1e-3}

    monkeypatch.setattr(GeneratorCalibration, "get_next", tiny)
    with pytest.raises(QuantizationError, match="refused, nothing written"):
        quantize_file(dcgan_path, tmp_path / "q.onnx", config=FAST)
    assert list(tmp_path.iterdir()) == []


def test_gate_checks_classifier_agreement(cgan_path, classifier_path, tmp_path):
    strict = dataclasses.replace(FAST, classifier=str(classifier_path), min_agreement=1.01)
    with pytest.raises(QuantizationError, match="classifier agrees on"):
        quantize_file(cgan_path, tmp_path / "q.onnx", config=strict)
    assert list(tmp_path.iterdir()) == []


def test_only_float_generators_are_quantized(classifier_path, cgan_path, tmp_path):
    with pytest.raises(ModelKindError, match="is a classifier"):
        quantize_file(classifier_path, tmp_path / "q.onnx", config=FAST)
    with pytest.raises(OutputError, match="must end in .onnx"):
        quantize_file(cgan_path, tmp_path / "q.png", config=FAST)


def test_cli_quantize(cgan_path, tmp_path):
    from click.testing import CliRunner

    from ganrt_export.cli import cli

    out = tmp_path / "q.onnx"
    args = ["quantize", str(cgan_path), str(out), "--calibration-n", "64", "--check-n", "200", "--classifier", ""]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "dB" in res.output and "pre-process" not in res.output
    assert ganrt.load(out).precision == "int8"
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and isinstance(again.exception, OutputError)


def test_export_precision_is_checked_before_any_work(tmp_path):
    from ganrt_export.onnx import export_checkpoint

    with pytest.raises(ParameterError, match="precision must be one of float32, int8"):
        export_checkpoint(tmp_path / "missing.pt", tmp_path / "x.onnx", name="x", precision="fp16")


def test_rewrite_moves_leaky_relu_and_stays_exact():
    """--g-leaky generators: the LeakyRelu (with its slope) moves before DepthToSpace like a Relu."""
    import torch

    from ganrt_export.config import GANConfig, TrainConfig
    from ganrt_export.models import Generator
    from ganrt_export.onnx import export_module
    from ganrt_export.train import Checkpoint

    cfg = GANConfig(ngf=4, nz=8, num_classes=0, g_leaky=True)
    torch.manual_seed(0)
    ck = Checkpoint(kind="gan", model_config=cfg, train_config=TrainConfig(), epoch=0, state={}, history=[], class_names=(),
                    data="none", train_seconds=0.0, path=Path("-"))
    proto = onnx.load_from_string(export_module(Generator(cfg).eval(), ck, name="leaky")[0])
    rewritten, count = rewrite_conv_transpose(proto)
    leaky = [n for n in rewritten.graph.node if n.op_type == "LeakyRelu"]
    assert count == 4 and len(leaky) == 3 and all(n.attribute[0].f == pytest.approx(0.2) for n in leaky)
    names = [n.op_type for n in rewritten.graph.node]
    assert all(names[i - 1] in ("Conv", "Gemm") for i, op in enumerate(names) if op == "LeakyRelu")  # right after its layer
    assert check_rewrite(proto, rewritten, float32_info(proto, "leaky"), batch_sizes=(2,)) <= 1e-5


def test_int8_upscaler_matches_fp32_on_photos_and_is_gated(sr2_path, sr2, tmp_path):
    out = tmp_path / "sr2-int8.onnx"
    report = quantize_file(sr2_path, out, config=FAST)
    assert report["psnr_db"] >= 35 and report["check_photos"] == 5
    up = ganrt.load(out)
    assert up.precision == "int8" and up.info.training["quantization"]["psnr_db"] == report["psnr_db"]
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # the Convs run as QLinearConv in onnxruntime
    image = np.random.default_rng(0).integers(0, 256, (21, 17, 3), dtype=np.uint8)
    a, b = sr2.upscale(image), up.upscale(image)
    assert a.shape == b.shape == (42, 34, 3) and np.abs(a.astype(int) - b).mean() < 2
    with pytest.raises(QuantizationError, match="refused, nothing written"):
        quantize_file(sr2_path, tmp_path / "no.onnx", config=dataclasses.replace(FAST, min_psnr_db=200.0))
    assert not (tmp_path / "no.onnx").exists()


def test_channels_last_shuffle_leaves_no_layout_transposes(cgan_int8, tmp_path):
    """The speed of the int8 file rests on onnxruntime cancelling its NHWC<->NCHW Transposes around each
    QLinearConv with the rewrite's own: after its optimisations only the 6-d pixel shuffles remain
    (an onnxruntime that stops doing this would make the file ~1.5x slower; this says so at once)."""
    from ganrt.core.session import onnxruntime

    ort = onnxruntime()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    opts.log_severity_level = 3
    ort.InferenceSession(str(cgan_int8[0]), opts, providers=["CPUExecutionProvider"])
    graph = onnx.load(tmp_path / "optimized.onnx").graph
    qconvs = [n for n in graph.node if n.op_type == "QLinearConv"]
    assert len(qconvs) == 3 and all(a.i == 1 for n in qconvs for a in n.attribute if a.name == "channels_last")
    perms = [list(a.ints) for n in graph.node if n.op_type == "Transpose" for a in n.attribute if a.name == "perm"]
    assert perms and all(len(p) == 6 for p in perms[:-1]), perms  # the last may be the output's NHWC one
    assert "DepthToSpace" not in {n.op_type for n in graph.node}
