"""``ganrt-export spandrel``: tiny random-weight models of the architectures spandrel knows, built with
spandrel's own classes and saved as bare state dicts, become ganrt upscalers where ganrt can tile them
exactly (images equal torch's within 1/255, tiled equal whole), and are refused with the reason otherwise."""

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch side needs the 'export' extra")
if importlib.util.find_spec("spandrel") is None:  # not importorskip: spandrel imports only beside a torchvision stand-in
    pytest.skip("spandrel is not installed (pip install --no-deps spandrel==0.4.2 && pip install 'ganrt[spandrel]')",
                allow_module_level=True)
import third_party as tp
import torch

import ganrt
from ganrt_export.spandrel_import import SpandrelError, export_spandrel, import_spandrel

BIN = Path(sys.executable).parent


def arch(module: str, cls: str | None = None):
    import_spandrel()
    return getattr(importlib.import_module(f"spandrel.architectures.{module}"), cls or module)


# name -> (spandrel class, its settings): small enough to export in a second or two
EXPORTED = {
    "ESRGAN": (("ESRGAN",), {"num_filters": 8, "num_blocks": 1, "scale": 4}),
    "RealESRGAN Compact": (("Compact",), {"num_feat": 8, "num_conv": 2, "upscale": 4}),
    "SPAN": (("SPAN",), {"num_in_ch": 3, "num_out_ch": 3, "feature_channels": 8, "upscale": 2}),
    "PLKSR": (("PLKSR",), {"dim": 8, "n_blocks": 1, "upscaling_factor": 2, "kernel_size": 7}),
    "Swift-SRGAN": (("SwiftSRGAN",), {"num_channels": 8, "num_blocks": 1, "upscale_factor": 2}),
    "MoSR": (("MoSR",), {"upscale": 2, "n_block": 1, "dim": 8}),
}
window = {"embed_dim": 12, "depths": [1], "num_heads": [2], "window_size": 4, "upscale": 2, "img_size": 16}
# name -> (spandrel class, its settings, what the refusal says)
REFUSED = {
    "RCAN": (("RCAN",), {"scale": 2, "n_resgroups": 1, "n_resblocks": 1, "n_feats": 8, "reduction": 4}, "channel attention"),
    "HAT": (("HAT",), {**window, "upsampler": "pixelshuffle", "squeeze_factor": 4}, "channel attention"),
    "DAT": (("DAT",), {"embed_dim": 32, "depth": [1], "num_heads": [2], "split_size": [2, 4], "upscale": 2, "img_size": 16},
            "channel attention"),
    "SwinIR": (("SwinIR",), {**window, "upsampler": "pixelshuffledirect"}, "not translation-equivariant"),
    "Swin2SR": (("Swin2SR",), {**window, "upsampler": "pixelshuffledirect"}, "not translation-equivariant"),
    "OmniSR": (("OmniSR",), {"num_feat": 8, "block_num": 1, "window_size": 4, "up_scale": 2}, "not translation-equivariant"),
    "MoESR": (("MoESR",), {"scale": 2, "dim": 8, "n_blocks": 1, "n_block": 1}, "not translation-equivariant"),
    "RealCUGAN": (("RealCUGAN", "UpCunet2x"), {}, "not translation-equivariant"),
    "SAFMN": (("SAFMN",), {"dim": 8, "n_blocks": 1, "upscaling_factor": 2}, "a multiple of 8 pixels"),
    "RealESRGAN x2plus": (("ESRGAN",), {"in_nc": 12, "num_filters": 8, "num_blocks": 1, "scale": 4, "shuffle_factor": 2},
                          "a multiple of 4 pixels"),  # pixel-unshuffle by 2, then x4: Real-ESRGAN's x2 layout
    # GroupNorm(1, dim) normalises each block over the whole image: adopt's exact perturbation sees it
    "RealPLKSR": (("PLKSR", "RealPLKSR"), {"dim": 8, "n_blocks": 1, "upscaling_factor": 2, "kernel_size": 7},
                  "sees the whole image"),
    "DnCNN": (("DnCNN",), {}, "scale 1"),
    "Compact x1": (("Compact",), {"num_feat": 8, "num_conv": 2, "upscale": 1}, "scale 1"),
}


def build(spec: tuple, kwargs: dict, path: Path, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    module = arch(*spec)(**kwargs).eval()
    torch.save(module.state_dict(), path)  # a bare state dict, as these models are shared
    return module


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients with texture, (H, W, 3) uint8."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 100 * np.sin(xx / 7 + c) * np.cos(yy / 9 - c) for c in range(3)], -1)
    return np.clip(img + np.random.default_rng(seed).normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_exported_architectures_match_torch_and_tile_exactly(tmp_path, name):
    spec, kwargs = EXPORTED[name]
    module = build(spec, kwargs, tmp_path / "model.pth")
    report = export_spandrel(tmp_path / "model.pth", tmp_path / "model.onnx")
    assert report["spandrel"]["architecture"] == name
    assert report["torch_parity_max_abs"] < 1e-4 and report["tiled_vs_whole_max_abs_uint8"] <= 1
    up = ganrt.load(tmp_path / "model.onnx", threads=1)
    assert up.scale == report["spandrel"]["scale"] and up.receptive_radius == report["receptive_radius"]
    images = np.stack([photo(21, 30, seed) for seed in range(2)])
    assert np.abs(up.upscale_many(images).astype(int) - tp.upscaler_reference(module, images).astype(int)).max() <= 1
    img = photo(75, 61)
    tile = 4 * up.receptive_radius + 16  # the default overlap (2 x radius + 8) fits twice
    assert np.abs(up.upscale(img, tile=4096).astype(int) - up.upscale(img, tile=tile).astype(int)).max() <= 1


def test_what_spandrel_said_is_in_the_file(tmp_path):
    spec, kwargs = EXPORTED["ESRGAN"]
    build(spec, kwargs, tmp_path / "model.pth")
    export_spandrel(tmp_path / "model.pth", tmp_path / "4x_tiny.onnx")
    up = ganrt.load(tmp_path / "4x_tiny.onnx", threads=1)
    about = up.info.training["adopted"]["spandrel"]
    assert up.info.name == "4x_tiny" and up.info.description == "ESRGAN x4 (spandrel)"
    assert about["architecture_id"] == "ESRGAN" and about["tags"] == ["8nf", "1nb"] and about["scale"] == 4
    assert about["size_requirements"] == {"minimum": 2, "multiple_of": 1, "square": False}
    assert about["spandrel_version"] == import_spandrel().__version__


def test_a_one_channel_model_runs_on_y(tmp_path):
    build(("ESRGAN",), {"in_nc": 1, "out_nc": 1, "num_filters": 8, "num_blocks": 1, "scale": 2}, tmp_path / "gray.pth")
    report = export_spandrel(tmp_path / "gray.pth", tmp_path / "gray.onnx")
    up = ganrt.load(tmp_path / "gray.onnx", threads=1)
    assert up.scale == 2 and report["tiled_vs_whole_max_abs_uint8"] <= 1
    assert up.info.training["adopted"]["color"] == "y"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_architectures_say_why_and_write_nothing(tmp_path, name):
    spec, kwargs, why = REFUSED[name]
    build(spec, kwargs, tmp_path / "model.pth")
    with pytest.raises(SpandrelError, match=why):
        export_spandrel(tmp_path / "model.pth", tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_the_command_line(tmp_path):
    spec, kwargs = EXPORTED["RealESRGAN Compact"]
    build(spec, kwargs, tmp_path / "compact.pth")
    out = tmp_path / "compact.onnx"
    cmd = [str(BIN / "ganrt-export"), "spandrel", str(tmp_path / "compact.pth"), str(out), "--name", "compact-tiny"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "RealESRGAN Compact x4 (8nf, 2nc), spandrel" in run.stdout and "receptive radius" in run.stdout
    assert ganrt.load(out, threads=1).info.name == "compact-tiny"

    spec, kwargs, _ = REFUSED["RCAN"]
    build(spec, kwargs, tmp_path / "rcan.pth")
    run = subprocess.run([str(BIN / "ganrt-export"), "spandrel", str(tmp_path / "rcan.pth"), str(tmp_path / "rcan.onnx")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and run.stderr.startswith("error: RCAN: ") and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "rcan.onnx").exists()


def test_files_spandrel_cannot_read(tmp_path):
    torch.save({"encoder.weight": torch.zeros(4, 3)}, tmp_path / "other.pth")
    with pytest.raises(SpandrelError, match="recognises no architecture"):
        export_spandrel(tmp_path / "other.pth", tmp_path / "out.onnx")
    (tmp_path / "text.pth").write_text("not a model")
    with pytest.raises(SpandrelError, match="spandrel cannot load it"):
        export_spandrel(tmp_path / "text.pth", tmp_path / "out.onnx")
    with pytest.raises(SpandrelError, match="no such file"):
        export_spandrel(tmp_path / "absent.pth", tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_without_spandrel_the_line_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "spandrel", None)  # what an environment without it shows import
    with pytest.raises(SpandrelError, match="pip install --no-deps spandrel"):
        import_spandrel()


def test_importing_spandrel_leaves_no_torchvision_stand_in():
    import_spandrel()
    tv = sys.modules.get("torchvision")
    assert tv is None or hasattr(tv, "__file__")  # a real torchvision, or none
