"""Translators (issue 20): pix2pix's UnetGenerator and CycleGAN's ResnetGenerator (tests/third_party.py, as the
repository defines them), tiny and random, become ganrt files; ganrt's images equal torch's after the documented
[-1, 1] -> uint8 conversion; convolutional ones tile exactly, the whole-image one refuses tiles; sizes the network
does not take are reflect-padded and cropped back, or resized to a fixed size and back."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch side needs the 'export' extra")
import third_party as tp
import torch
from PIL import Image

import ganrt
from ganrt.core.errors import ModelFormatError, ParameterError
from ganrt.core.schema import ModelInfo
from ganrt.io.images import bicubic_resize
from ganrt_export.adopt import AdoptConfig, AdoptError, adopt_file
from ganrt_export.byom import export_translator

BIN = Path(sys.executable).parent


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients with texture, uint8 (h, w, 3)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    img = np.stack([128 + 100 * np.sin(xx / 7 + c) * np.cos(yy / 9 - c) for c in range(3)], -1) + rng.normal(0, 8, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def worst(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape, (a.shape, b.shape)
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def torch_padded(module, img: np.ndarray, multiple: int) -> np.ndarray:
    """torch on ``img`` reflect-padded at the bottom and right to multiples of ``multiple``, cropped back."""
    h, w = img.shape[:2]
    hh, ww = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    padded = np.pad(img, ((0, hh - h), (0, ww - w), (0, 0)), mode="reflect")
    return tp.translator_reference(module, padded[None])[0, :h, :w]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """name -> (module, path, report) for the three tiny generators, exported from the module."""
    folder = tmp_path_factory.mktemp("translators")
    out = {}
    for name, make in (("cyclegan", tp.tiny_cyclegan), ("resnet-bn", tp.tiny_resnet_batchnorm), ("unet", tp.tiny_pix2pix)):
        module, _ = make()
        path = folder / f"{name}.onnx"
        out[name] = module, path, export_translator(module, path, name=name)
    return out


def test_cyclegan_sees_the_whole_image_and_refuses_tiles(files):
    module, path, report = files["cyclegan"]
    tr = ganrt.load(path, kind="translator")
    expect = tp.found_translator(module)
    assert tr.whole_image and expect["whole_image"] and report["whole_image"] is True
    assert tr.size_multiple == expect["multiple"] == 4 and tr.scale == 1 and (tr.in_channels, tr.out_channels) == (3, 3)
    assert report["torch_parity_max_abs"] <= 1e-4
    imgs = np.stack([photo(64, 96, seed) for seed in range(2)])
    assert worst(tr.translate_many(imgs), tp.translator_reference(module, imgs)) <= 1
    with pytest.raises(ParameterError, match="sees the whole image .* no tiles can give its result exactly"):
        tr.translate(imgs[0], tile=32)
    odd = photo(50, 70, 3)  # not multiples of 4: padded to 52x72, cropped back
    assert tr.fit(50, 70).how == "pad" and tr.fit(50, 70).size == (52, 72)
    assert worst(tr.translate(odd), torch_padded(module, odd, 4)) <= 1


def test_resnet_with_batchnorm_tiles_exactly(files):
    module, path, report = files["resnet-bn"]
    tr = ganrt.load(path)
    assert not tr.whole_image and tr.size_multiple == 4 and tr.receptive_radius == report["receptive_radius"] > 0
    img = photo(150, 130, 1)  # padded to 152x132
    whole = tr.translate(img)
    assert worst(whole, torch_padded(module, img, 4)) <= 1
    overlap = tr.default_overlap  # 2 x radius + 8, rounded up to a multiple of 4
    assert overlap % 4 == 0 and overlap >= 2 * tr.receptive_radius
    for tile in (overlap + 4, 90):  # 90 is rounded down to 88: tiles must be sizes the network takes, on its stride grid
        assert worst(tr.translate(img, tile=tile), whole) <= 1
    assert tr.check_options(tile=90)[:2] == (88, overlap)
    with pytest.raises(ParameterError, match=f"needs an overlap of {overlap}, so tiles of at least {overlap + 4}"):
        tr.translate(img, tile=overlap)


def test_unet_pads_to_its_multiple_and_crops_back(files):
    module, path, report = files["unet"]
    tr = ganrt.load(path)
    assert tr.size_multiple == tp.found_translator(module)["multiple"] == 32 and not tr.whole_image
    img = photo(70, 100, 2)  # padded to 96x128
    fit = tr.fit(70, 100)
    assert (fit.how, fit.size) == ("pad", (96, 128)) and fit.describe() == "padded 100x70 to 128x96 (reflect) and cropped back"
    got = tr.translate(img)
    assert got.shape == img.shape and worst(got, torch_padded(module, img, 32)) <= 1
    big = photo(300, 200, 4)  # padded to 320x224; tiles of 256 with the default overlap (2 x radius + 8, to 32)
    assert worst(tr.translate(big, tile=256), tr.translate(big)) <= 1
    with pytest.raises(ParameterError, match="overlap \\(256\\) must be smaller than the tile \\(256\\)"):
        tr.translate(big, tile=256, overlap=250)


def test_pillow_in_pillow_out_and_bad_arrays(files):
    module, path, _ = files["resnet-bn"]
    tr = ganrt.load(path)
    img = photo(40, 48, 5)
    out = tr.translate(Image.fromarray(img))
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (48, 40)
    np.testing.assert_array_equal(np.asarray(out), tr.translate(img))
    rgba = np.concatenate([img, np.full((40, 48, 1), 77, np.uint8)], 2)
    kept = tr.translate(Image.fromarray(rgba, mode="RGBA"))
    assert kept.mode == "RGBA" and np.all(np.asarray(kept)[..., 3] == 77)
    for bad, match in [(img[..., 0], "translates \\(H, W, 3\\) or \\(H, W, 4\\) images, got shape \\(40, 48\\)"),
                       (img.astype(np.float32), "needs uint8 pixels"),
                       (img[:0], "zero-size")]:
        with pytest.raises(ParameterError, match=match):
            tr.translate(bad)
    with pytest.raises(ParameterError, match="overlap is for tiles"):
        tr.translate(img, overlap=8)


def test_a_fixed_size_graph_is_resized_to_it_and_back(tmp_path):
    module, _ = tp.tiny_pix2pix()
    src = tp.export_plain(module, [torch.zeros(2, 3, 64, 64)], tmp_path / "fixed.onnx", input_names=["x"], dynamo=False)
    report = adopt_file(src, tmp_path / "t.onnx", AdoptConfig(kind="translator", name="fixed"))
    tr = ganrt.load(tmp_path / "t.onnx")
    assert tr.fixed_size == (64, 64) and tr.info.image_shape == (64, 64, 3) and report["parity"]["max_abs"] <= 1e-4
    img = photo(50, 70, 6)
    assert tr.fit(50, 70).how == "resize"
    got = tr.translate(img)
    expected = bicubic_resize(tp.translator_reference(module, bicubic_resize(img, (64, 64))[None])[0], (70, 50))
    assert got.shape == img.shape and worst(got, expected) <= 1
    with pytest.raises(ParameterError, match="takes 64x64 images only"):
        tr.translate(img, tile=32)


def test_plain_onnx_adopted_equals_the_module(files, tmp_path):
    module, path, _ = files["unet"]
    src = tp.export_plain(module, [torch.zeros(2, 3, 64, 64)], tmp_path / "unet.onnx", input_names=["x"],
                          dynamic_hw=True, dynamo=False)
    report = adopt_file(src, tmp_path / "adopted.onnx", AdoptConfig(kind="translator", name="unet-plain"))
    assert report["size_multiple"] == 32 and report["receptive_radius"] == ganrt.load(path).receptive_radius
    img = photo(64, 96, 7)
    assert worst(ganrt.load(tmp_path / "adopted.onnx").translate(img), ganrt.load(path).translate(img)) <= 1
    with pytest.raises(AdoptError, match="--nz, --label and --classes are for generators, not translators"):
        adopt_file(src, tmp_path / "x.onnx", AdoptConfig(kind="translator", name="x", nz=10))
    assert not (tmp_path / "x.onnx").exists()


def test_metadata_fields_are_optional_and_checked():
    up = ModelInfo(kind="upscaler", name="u", image_shape=(0, 0, 3), scale=4)
    assert "out_channels" not in up.to_json() and "whole_image" not in up.to_json()  # other kinds' files unchanged
    tr = ModelInfo(kind="translator", name="t", image_shape=(0, 0, 3), out_channels=1, scale=1, size_multiple=32,
                   color_order="bgr", whole_image=True)
    assert ModelInfo.from_json(tr.to_json()) == tr
    for change, match in [({"color_order": "grb"}, "color_order 'grb'"), ({"out_channels": 0}, "1..64 channels in and out"),
                          ({"whole_image": "yes"}, "whole_image must be true or false")]:
        raw = json.loads(tr.to_json()) | change
        with pytest.raises(ModelFormatError, match=match):
            ModelInfo.from_json(json.dumps(raw))


def ganrt_cli(*args):
    return subprocess.run([str(BIN / "ganrt"), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_cli_translates_folders_into_pngs_and_refuses_in_one_line(files, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo(50, 70)).save(src / "a.png")
    Image.fromarray(photo(32, 32, 1)[..., 0]).save(src / "b.jpg")  # grey: converted to RGB for a 3-channel model
    _, unet, _ = files["unet"]
    out = ganrt_cli("translate", src, "--model", unet, "--out", tmp_path / "o")
    assert out.returncode == 0, out.stderr
    assert "a.png: padded 70x50 to 96x64 (reflect) and cropped back" in out.stdout
    assert {p.name: Image.open(p).size for p in (tmp_path / "o").iterdir()} == {"a.png": (70, 50), "b.png": (32, 32)}
    _, cyclegan, _ = files["cyclegan"]
    (tmp_path / "junk.png").write_bytes(b"not an image")
    for args, message in [((src, "--model", cyclegan, "--tile", "32"), "sees the whole image"),
                          ((tmp_path / "junk.png", "--model", unet), "is not an image"),
                          ((src, "--model", "sr-x4"), "is an upscaler model, not a translator"),
                          ((src, "--model", unet, "--tile", "64"), "too small for exact tiles")]:
        bad = ganrt_cli("translate", *args, "--out", tmp_path / "o2")
        lines = bad.stderr.strip().splitlines()
        assert bad.returncode == 1 and len(lines) == 1 and message in lines[0], bad.stderr
        assert not (tmp_path / "o2").exists()  # refused before anything was written
    again = ganrt_cli("translate", src, "--model", unet, "--out", tmp_path / "o")
    assert again.returncode == 1 and "exists; pass --overwrite" in again.stderr
    info = ganrt_cli("info", unet)
    assert info.returncode == 0 and "sides multiples of 32" in info.stdout, info.stdout + info.stderr


def test_export_cli_torch_kind_translator(tmp_path):
    module, _ = tp.tiny_pix2pix()
    weights = tmp_path / "unet.pth"
    torch.save(module.state_dict(), weights)
    out = tmp_path / "unet.onnx"
    run = subprocess.run([str(BIN / "ganrt-export"), "torch", "third_party:UnetGenerator", str(out), "--weights", str(weights),
                          "--kwargs", json.dumps({"input_nc": 3, "output_nc": 3, "num_downs": 5, "ngf": 4}),
                          "--path", str(Path(__file__).parent), "--kind", "translator"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "sides multiples of 32" in run.stdout and "receptive radius" in run.stdout
    img = photo(64, 64, 8)
    assert worst(ganrt.load(out).translate(img), tp.translator_reference(module, img[None])[0]) <= 1


def test_adopt_cli_with_bgr_colour_order_and_no_torch_at_run_time(files, tmp_path):
    module, _, _ = files["resnet-bn"]
    src = tp.export_plain(module, [torch.zeros(2, 3, 64, 64)], tmp_path / "plain.onnx", input_names=["x"],
                          dynamic_hw=True, dynamo=False)
    out = tmp_path / "bgr.onnx"
    run = subprocess.run([str(BIN / "ganrt-export"), "adopt", str(src), str(out), "--kind", "translator", "--color-order", "bgr"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "receptive radius" in run.stdout and "sides multiples of 4" in run.stdout
    img = photo(48, 64, 9)
    np.save(tmp_path / "img.npy", img)
    got, given = str(tmp_path / "got.npy"), str(tmp_path / "img.npy")
    script = (f"import sys, numpy as np, ganrt; tr = ganrt.load({str(out)!r}); "
              f"np.save({got!r}, tr.translate(np.load({given!r}))); assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # the network sees (and gives) B, G, R: ganrt reverses the channels on the way in and out
    expected = tp.translator_reference(module, img[None, ..., ::-1].copy())[0, ..., ::-1]
    assert worst(np.load(tmp_path / "got.npy"), expected) <= 1
