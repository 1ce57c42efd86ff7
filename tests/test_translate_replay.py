"""``ganrt translate`` records its provenance in each PNG's text chunks; ``ganrt replay OUT.png --source IN``
translates the source again with the recorded translator (the bundled fashion-edges2clothes) and compares, bit
for bit, with the recorded hash and the file; the source must be given and match its recorded sha256."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ganrt.runs.replay import replay

BIN = Path(sys.executable).parent
MODEL = "fashion-edges2clothes"


def ganrt(*args):
    return subprocess.run([str(BIN / "ganrt"), *map(str, args)], capture_output=True, text=True, timeout=300)


def edges(side: int) -> Image.Image:
    """White outlines of two boxes on black, grayscale: what the translator was trained on."""
    x = np.zeros((side, side), np.uint8)
    for a, b in ((4, side - 5), (side // 3, 2 * side // 3)):
        x[a, a:b] = x[b, a:b] = x[a:b, a] = x[a:b, b] = 255
    return Image.fromarray(x, mode="L")


def test_a_translation_replays_bit_exactly_from_its_source(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    edges(32).save(src / "a.png")
    edges(40).save(src / "b.png")  # padded to 64x64 and cropped back
    made = ganrt("translate", src, "--model", MODEL, "--out", tmp_path / "out", "--threads", "1")
    assert made.returncode == 0, made.stderr
    with Image.open(tmp_path / "out" / "b.png") as im:
        assert im.text["translator"] == MODEL and len(im.text["source_sha256"]) == 64 and im.size == (40, 40)
    for name in ("a", "b"):
        done = ganrt("replay", tmp_path / "out" / f"{name}.png", "--source", src / f"{name}.png", "--threads", "1")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 images: 1 reproduced bit-exactly, 1 files on disk match" in done.stdout
    report = replay(tmp_path / "out" / "a.png", source=src / "a.png", threads=1)
    assert report.ok and report.model_sha256 == Image.open(tmp_path / "out" / "a.png").text["translator_sha256"]


def test_replay_of_a_translation_needs_its_own_source_and_sees_a_changed_file(tmp_path):
    edges(32).save(tmp_path / "a.png")
    assert ganrt("translate", tmp_path / "a.png", "--model", MODEL, "--out", tmp_path / "out").returncode == 0
    out = tmp_path / "out" / "a.png"
    alone = ganrt("replay", out, "--threads", "1")
    assert alone.returncode == 1 and "pass --source" in alone.stderr and "Traceback" not in alone.stderr
    edges(36).crop((0, 0, 32, 32)).save(tmp_path / "other.png")
    wrong = ganrt("replay", out, "--source", tmp_path / "other.png")
    assert wrong.returncode == 1 and "not its source" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
    with Image.open(out) as im:  # one pixel changed, the text chunks kept
        pixels, info = np.array(im), PngInfo()
        for k, v in im.text.items():
            info.add_text(k, v)
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(out, pnginfo=info)
    changed = ganrt("replay", out, "--source", tmp_path / "a.png", "--threads", "1")
    assert changed.returncode == 1 and "file: differs" in changed.stdout and "1 reproduced bit-exactly" in changed.stdout
