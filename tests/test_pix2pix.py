"""pix2pix training (export/pix2pix.py, `ganrt-export train translator`): a tiny U-Net + PatchGAN on the edges of
sklearn digits trains, checkpoints and resumes to the same weights; it exports as a ganrt translator equal to torch;
`ganrt-export translator-eval` scores it against the identity and the mean image, by an independent computation."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch side needs the 'export' extra")
import torch

import ganrt
from ganrt_export.config import TranslatorConfig, TranslatorTrainConfig
from ganrt_export.pix2pix import (
    UNet,
    edge_images,
    edge_pairs,
    evaluate_translator,
    export_translator_checkpoint,
    load_models,
    train_translator,
    translate_torch,
)
from ganrt_export.train import CheckpointError, load_checkpoint

BIN = Path(sys.executable).parent
TINY = TranslatorConfig(ngf=4, ndf=4)


def _tcfg(**kw):
    return TranslatorTrainConfig(**{"dataset": "digits", "epochs": 2, "batch_size": 32, "limit": 96, "eval_n": 16, **kw})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A two-epoch tiny run and its export."""
    folder = tmp_path_factory.mktemp("pix2pix")
    ck = load_checkpoint(train_translator(TINY, _tcfg(), folder / "run", progress=False))
    report = export_translator_checkpoint(folder / "run", folder / "tiny.onnx", name="tiny-edges")
    return folder, ck, report


def _equal(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_unet_shapes_and_canny_edges():
    x = torch.zeros(2, 1, 64, 96)
    assert UNet(TINY)(x).shape == (2, 1, 64, 96)  # any multiple of 2**5
    square = torch.zeros(1, 1, 32, 32, dtype=torch.uint8)
    square[0, 0, 8:24, 8:24] = 200
    edges = edge_images(square, sigma=1.0)
    assert edges.dtype == torch.uint8 and set(edges.unique().tolist()) == {0, 255}
    assert edges[0, 0, 16, 16] == 0 and edges[0, 0, 0, 0] == 0 and edges[0, 0, 8:24, 7:9].any()  # the square's border


def test_resumed_run_equals_uninterrupted_run(run, tmp_path):
    _, straight, _ = run
    train_translator(TINY, _tcfg(epochs=1), tmp_path / "b", progress=False)
    resumed = load_checkpoint(train_translator(TINY, _tcfg(epochs=2), tmp_path / "b", resume=True, progress=False))
    assert straight.kind == resumed.kind == "translator" and straight.epoch == resumed.epoch == 2
    assert _equal(straight.state["G"], resumed.state["G"]) and _equal(straight.state["D"], resumed.state["D"])
    assert [h["l1"] for h in straight.history] == [h["l1"] for h in resumed.history]
    assert all(np.isfinite(v) for h in straight.history for v in h.values())
    with pytest.raises(CheckpointError, match="--resume"):
        train_translator(TINY, _tcfg(epochs=1), tmp_path / "b", progress=False)


def test_export_is_a_translator_equal_to_torch(run):
    folder, ck, report = run
    tr = ganrt.load(folder / "tiny.onnx")
    assert tr.info.kind == "translator" and (tr.in_channels, tr.out_channels) == (1, 1)
    assert tr.size_multiple == 32 and not tr.whole_image and report["torch_parity_max_abs"] <= 1e-4
    record = tr.info.training["adopted"]  # the file takes [0, 1]; the network's [-1, 1] is wrapped inside
    assert tr.info.value_range == (0.0, 1.0) and record["options"]["value_range"] == [-1.0, 1.0]
    assert record["train_config"]["canny_sigma"] == 1.0 and record["epochs"] == 2 and "digits" in tr.info.training_data
    pairs = edge_pairs(ck.train_config, ck.model_config, split="test", limit=8)
    G, _ = load_models(ck)
    ours = tr.translate_many(pairs.edges.permute(0, 2, 3, 1).numpy())
    theirs = translate_torch(G, pairs.edges)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_eval_scores_match_an_independent_computation(run):
    folder, ck, _ = run
    report = evaluate_translator(folder / "tiny.onnx", n=40, classifier="fashion-classifier")
    pairs = edge_pairs(ck.train_config, ck.model_config, split="test", limit=40)
    edges = pairs.edges[:, 0].numpy().astype(float)
    targets = pairs.images[:, 0].numpy().astype(float)
    assert report["test_pairs"] == 40
    assert report["identity_vs_target"]["l1"] == pytest.approx(np.abs(edges - targets).mean() / 255, abs=1e-5)
    mse = ((edges - targets) ** 2).mean(axis=(1, 2))
    assert report["identity_vs_target"]["psnr_db"] == pytest.approx(np.mean(10 * np.log10(255**2 / mse)), abs=1e-3)
    out = ganrt.load(folder / "tiny.onnx").translate_many(pairs.edges[:, 0].numpy()).astype(float)
    assert report["model_vs_target"]["l1"] == pytest.approx(np.abs(out - targets).mean() / 255, abs=1e-5)
    c = report["classifier"]
    assert c["name"] == "fashion-classifier" and all(0.0 <= c[k] <= 1.0 for k in c if k.startswith("accuracy"))


def test_cli_trains_evaluates_and_refuses_bad_settings(tmp_path):
    cmd = [str(BIN / "ganrt-export"), "train", "translator", "--dataset", "digits", "--limit", "64", "--eval-n", "8",
           "--batch-size", "32", "--ngf", "4", "--ndf", "4", "--epochs", "1", "--threads", "1", "--no-progress"]
    done = subprocess.run(cmd + ["--run-dir", str(tmp_path / "r")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "epoch 1: loss_d" in done.stdout and "test_l1" in done.stdout
    bad = subprocess.run(cmd + ["--run-dir", str(tmp_path / "bad"), "--num-downs", "6"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "multiple of 2**num_downs = 64" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad" / "checkpoint.pt").exists()
    exported = subprocess.run([str(BIN / "ganrt-export"), "export", str(tmp_path / "r"), str(tmp_path / "t.onnx"), "--name", "t"],
                              capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0 and "parity max abs diff" in exported.stdout, exported.stderr
    assert ganrt.load(tmp_path / "t.onnx").info.kind == "translator"
    out = subprocess.run([str(BIN / "ganrt-export"), "translator-eval", str(tmp_path / "t.onnx"), "-n", "20", "--json",
                          str(tmp_path / "r.json"), "--figure", str(tmp_path / "f.png")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "| identity (the edges) |" in out.stdout and json.loads((tmp_path / "r.json").read_text())["test_pairs"] == 20
    assert (tmp_path / "f.png").stat().st_size > 0


def test_int8_and_fp16_variants_pass_the_gate_or_are_refused(run, tmp_path):
    from ganrt_export.half import half_file
    from ganrt_export.quantize import QuantizationError, QuantizeConfig, quantize_file
    from ganrt_export.quantize.translator import check_images

    folder, _, _ = run
    src = folder / "tiny.onnx"
    config = QuantizeConfig(calibration_n=64, check_n=64)
    fp32 = ganrt.load(src)
    edges = check_images(fp32.info, split="test", n=64)  # the test split's edges, as the file was trained on
    assert edges.shape == (64, 32, 32, 1) and set(np.unique(edges)) <= {0, 255}
    for make, name, precision in ((quantize_file, "int8", "int8"), (half_file, "fp16", "float16")):
        report = make(src, tmp_path / f"{name}.onnx", config=config)
        variant = ganrt.load(tmp_path / f"{name}.onnx")
        assert variant.name == f"tiny-edges-{name}" and variant.info.precision == precision
        assert variant.info.kind == "translator" and variant.size_multiple == fp32.size_multiple
        from ganrt_export.quantize import psnr_uint8

        measured = psnr_uint8(fp32.translate_many(edges), variant.translate_many(edges))
        assert report["psnr_db"] >= 35.0 and measured == pytest.approx(report["psnr_db"], abs=0.01)
        strict = QuantizeConfig(calibration_n=64, check_n=64, min_psnr_db=200.0)
        with pytest.raises(QuantizationError, match="refused, nothing written"):
            make(src, tmp_path / f"{name}-strict.onnx", config=strict)
        assert not (tmp_path / f"{name}-strict.onnx").exists()
