import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BIN = Path(sys.executable).parent


def ganrt(*args):
    return subprocess.run([str(BIN / "ganrt"), *map(str, args)], capture_output=True, text=True, timeout=300)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height but holds no pixel data (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.fixture()
def images(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(rng.integers(0, 256, (9, 11), dtype=np.uint8)).save(src / "b.jpg")
    Image.fromarray(rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)).save(src / "c.png")
    return src


def test_upscale_files_folders_and_globs(sr2_path, images, tmp_path):
    out = ganrt("upscale", "--model", sr2_path, images, "--out", tmp_path / "o1")
    assert out.returncode == 0, out.stderr
    sizes = {p.name: (Image.open(p).size, Image.open(p).mode) for p in (tmp_path / "o1").iterdir()}
    assert sizes == {"a.png": ((60, 40), "RGB"), "b.png": ((22, 18), "L"), "c.png": ((10, 14), "RGBA")}
    out = ganrt("upscale", "--model", sr2_path, str(images / "*.png"), "--out", tmp_path / "o2", "--tile", 8, "--overlap", 3)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == ["a.png", "c.png"]
    out = ganrt("upscale", "--model", sr2_path, images / "a.png", "--out", tmp_path / "o1")
    assert out.returncode == 1 and "--overwrite" in out.stderr


@pytest.mark.parametrize("name, content, args, message", [
    ("junk.png", b"this is not an image", [], "is not an image"),
    ("empty.png", b"", [], "is not an image"),
    ("huge.png", png_header(100_000, 100_000), [], "raise it with --max-pixels"),
    ("huge.png", png_header(100_000, 100_000), ["--max-pixels", str(10**11)], "decompression-bomb guard of"),
])
def test_bad_images_one_line_no_output(sr2_path, tmp_path, name, content, args, message):
    (tmp_path / name).write_bytes(content)
    out = ganrt("upscale", "--model", sr2_path, tmp_path / name, "--out", tmp_path / "o", *args)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert not (tmp_path / "o").exists()


def test_truncated_image_leaves_no_partial_file(sr2_path, images, tmp_path):
    data = (images / "a.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    out = ganrt("upscale", "--model", sr2_path, tmp_path / "t.png", "--out", tmp_path / "o")
    assert out.returncode == 1 and "truncated" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert list((tmp_path / "o").glob("*")) == []


def test_zero_size_image_in_the_api(sr2):
    from ganrt.core.errors import ParameterError

    with pytest.raises(ParameterError, match="zero-size"):
        sr2.upscale(Image.new("RGB", (0, 0)))


def test_upscaler_and_generator_are_not_swapped(sr2_path, cgan_path, images, tmp_path):
    out = ganrt("generate", "--model", sr2_path, "--grid", tmp_path / "g.png")
    assert out.returncode == 1 and "not a generator" in out.stderr
    out = ganrt("upscale", "--model", cgan_path, images, "--out", tmp_path / "o")
    assert out.returncode == 1 and "not an upscaler" in out.stderr
    out = ganrt("generate", "--model", cgan_path, "--upscale", cgan_path, "--grid", tmp_path / "g.png")
    assert out.returncode == 1 and "not an upscaler" in out.stderr
    assert not (tmp_path / "g.png").exists() and not (tmp_path / "o").exists()


def test_generate_then_upscale(cgan_path, sr2_path, tmp_path):
    out = ganrt("generate", "--model", cgan_path, "-n", 3, "--upscale", sr2_path, "--out", tmp_path / "o")
    assert out.returncode == 0, out.stderr
    import ganrt as api

    expected = api.load(sr2_path).upscale(api.load(cgan_path).sample(3)[1])
    im = Image.open(tmp_path / "o" / "000001.png")
    got = np.asarray(im)
    assert got.shape == (64, 64) and im.text["upscaler"] == str(sr2_path.resolve())
    assert im.text["upscaler_sha256"] == api.load(sr2_path).sha256
    np.testing.assert_array_equal(got, expected[..., 0])
    # provenance covers the upscaler: replay regenerates and upscales, from the manifest or one PNG; a lone PNG's
    # text chunks never open a path, so the upscaler file is passed as the generator is
    for args in ([tmp_path / "o"], [tmp_path / "o" / "000002.png", "--model", cgan_path, "--upscaler", sr2_path]):
        out = ganrt("replay", *args)
        assert out.returncode == 0, out.stdout + out.stderr
    out = ganrt("replay", tmp_path / "o" / "000002.png", "--model", cgan_path)
    assert out.returncode == 1 and "--upscaler" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_memory_budget_option(sr4_path, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(src / "a.png")
    for budget in ("1", "1024"):  # 1 MB: several tiles on the lanes; 1024: the whole image
        out = ganrt("upscale", "--model", sr4_path, src / "a.png", "--out", tmp_path / budget, "--memory-budget", budget)
        assert out.returncode == 0, out.stderr
    assert (tmp_path / "1" / "a.png").read_bytes() == (tmp_path / "1024" / "a.png").read_bytes()
    out = ganrt("upscale", "--model", sr4_path, src / "a.png", "--out", tmp_path / "bad", "--memory-budget", "0")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1 and "memory_budget must be a whole number of MB" in lines[0], out.stderr
    assert not (tmp_path / "bad").exists()


def test_progress_counts_tiles(sr4_path, tmp_path):
    """One large photo is many tiles: the bar counts them (tiles_for gives the total; on_tile each as it ends)."""
    import ganrt as api

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)).save(src / "big.png")
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(src / "small.png")
    up = api.load(sr4_path)
    done = []
    up.upscale(np.asarray(Image.open(src / "big.png")), memory_budget=1, on_tile=done.append)
    total = up.tiles_for(150, 200, memory_budget=1)
    assert total > 1 and sum(done) == total
    out = ganrt("upscale", "--model", sr4_path, src, "--out", tmp_path / "o", "--memory-budget", "1", "--progress")
    assert out.returncode == 0, out.stderr
    expected = total + up.tiles_for(20, 30, memory_budget=1)
    # off a terminal click prints the label only; the bar's length is the total it names
    assert f"upscaling 2 images: {expected} tiles" in out.stderr, out.stderr
