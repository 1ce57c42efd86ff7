"""Issue 18's polish, found by trying the CLI as a new user: labelled grids, `ganrt models` columns, .gitignore,
labels shorter than n, the PNG encoder's choice by size, upscale progress counted in tiles. Bundled models only."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganrt
from ganrt.io.captions import captioned
from ganrt.io.images import make_grid

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def ganrt_cli(*args):
    return subprocess.run([str(BIN / "ganrt"), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_grid_labels_draw_each_class_name_under_its_image(tmp_path):
    out = ganrt_cli("generate", "-n", "6", "--seed", "2", "--labels", "0,7,8", "--grid", tmp_path / "g.png", "--grid-labels")
    assert out.returncode == 0, out.stderr
    gen = ganrt.load("fashion-cgan")
    names = ["T-shirt/top", "Sneaker", "Bag"] * 2
    cells = captioned(gen.sample(6, seed=2, labels=[0, 7, 8, 0, 7, 8]), names)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g.png"))[..., None], make_grid(cells))
    h = gen.image_shape[0]
    strips = cells[:, h + 1 :]  # below each image: its caption
    assert all((s < 128).any() for s in strips)  # ink is drawn
    assert not np.array_equal(strips[0], strips[1]) and np.array_equal(strips[0], strips[3])  # by name
    plain = ganrt_cli("generate", "-n", "6", "--seed", "2", "--labels", "0,7,8", "--grid", tmp_path / "p.png")
    assert plain.returncode == 0 and Image.open(tmp_path / "p.png").size != Image.open(tmp_path / "g.png").size


def test_grid_labels_refuse_an_unconditional_model_and_a_missing_grid(tmp_path):
    out = ganrt_cli("generate", "-m", "fashion-dcgan", "-n", "4", "--grid", tmp_path / "g.png", "--grid-labels")
    assert out.returncode == 2 and "unconditional" in out.stderr and not (tmp_path / "g.png").exists()
    out = ganrt_cli("generate", "-n", "4", "--out", tmp_path / "r", "--grid-labels")
    assert out.returncode == 2 and "--grid" in out.stderr and not (tmp_path / "r").exists()


def test_models_shows_classes_only_for_models_that_have_them():
    out = ganrt_cli("models")
    assert out.returncode == 0
    rows = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert "10 classes" in rows["fashion-cgan"]
    for name in ("fashion-dcgan", "sr-x4"):
        assert "classes" not in rows[name] and " - " not in rows[name]
    # columns line up whatever the longest name: each model's description starts at the same column
    starts = {line.index(load_description(name)) for name, line in rows.items()}
    assert len(starts) == 1, starts


def load_description(name: str) -> str:
    import ganrt

    return ganrt.load(name).info.description[:20]


def test_the_readme_runtime_venv_is_ignored():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "check-ignore", "-q", ".venv-rt/bin/python"], cwd=ROOT)
    assert out.returncode == 0  # README's first command makes .venv-rt/


def test_small_pngs_keep_their_bytes_and_large_ones_go_through_pillow_with_z_rle():
    import hashlib
    import io
    import zlib

    from ganrt.io.png import PILLOW_FROM_BYTES, encode_pngs, read_png

    # golden: ganrt's own encoder's bytes before the size switch (a run's 32x32 PNGs must not change)
    x = ((np.arange(2 * 32 * 32 * 3).reshape(2, 32, 32, 3) * 7) % 251).astype(np.uint8)
    g = ((np.arange(3 * 40 * 24).reshape(3, 40, 24, 1) * 13) % 256).astype(np.uint8)
    assert hashlib.sha256(b"".join(encode_pngs(x, texts=[{"seed": "1", "model": "m"}, None]))).hexdigest() == \
        "fb20e6e01506dea82c510a26155879c71f31c32902e9a15f8ed27527b1ce5a43"
    assert hashlib.sha256(b"".join(encode_pngs(g))).hexdigest() == \
        "677710f38b8465575a41d8392cb97e000522f8ee7cf5abccefab1698ee513224"
    side = int(np.ceil(np.sqrt(PILLOW_FROM_BYTES / 3)))
    big = ((np.arange(2 * side * side * 3).reshape(2, side, side, 3) * 7) % 251).astype(np.uint8)
    files = encode_pngs(big, texts=[{"model": "m", "note": "ü€"}, None])
    assert files == encode_pngs(big, texts=[{"model": "m", "note": "ü€"}, None])  # deterministic
    buf = io.BytesIO()
    Image.fromarray(big[1]).save(buf, format="PNG", compress_type=zlib.Z_RLE)
    assert files[1] == buf.getvalue()  # Pillow's encoder with Z_RLE, nothing added
    image, text = read_png(files[0], shape=big.shape[1:])
    assert np.array_equal(image, big[0]) and text == {"model": "m", "note": "ü€"}


def test_upscale_and_translate_output_goes_through_the_one_png_encoder(tmp_path):
    """`ganrt upscale` writes what io.png.encode_png makes of the result (Z_RLE), not Pillow's default PNG."""
    from ganrt.io.images import pil_bytes
    from ganrt.io.png import encode_png

    rng = np.random.default_rng(4)
    photo = tmp_path / "in" / "p.png"
    photo.parent.mkdir()
    Image.fromarray((rng.integers(0, 40, (70, 90, 3)) + np.arange(90)[None, :, None] * 2).astype(np.uint8)).save(photo)
    proc = ganrt_cli("upscale", photo, "-m", "sr-x2", "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    written = (tmp_path / "out" / "p.png").read_bytes()
    pixels = np.asarray(ganrt.load("sr-x2").upscale(Image.open(photo)))
    assert written == encode_png(pixels)
    gray = Image.fromarray(pixels[..., 0])
    assert pil_bytes(gray, text={"k": "v"}) == encode_png(pixels[..., :1], text={"k": "v"})
    rgba = Image.fromarray(np.dstack([pixels, pixels[..., :1]]))
    assert np.array_equal(np.asarray(Image.open(__import__("io").BytesIO(pil_bytes(rgba)))), np.asarray(rgba))


def test_the_cli_repeats_a_short_label_list_and_the_api_refuses_it_and_both_say_so(tmp_path):
    out = ganrt_cli("generate", "-n", "5", "--labels", "0,Sneaker", "--out", tmp_path / "r")
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "r" / "manifest.jsonl").read_text().splitlines()[1:]
    import json

    assert [json.loads(line)["label"] for line in lines] == [0, 7, 0, 7, 0]
    with pytest.raises(ganrt.LabelError, match="one per image.*--labels repeats"):
        ganrt.load("fashion-cgan").sample(5, labels=[0, 7])
    help_text = " ".join(ganrt_cli("generate", "--help").stdout.split())
    assert "repeated over the images" in help_text and "API repeats nothing" in help_text
