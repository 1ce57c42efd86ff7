"""The upscalers' photo data: the wallpaper table, the folder loader, the leak check, the crop stream."""

from __future__ import annotations

import gc
import os
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch side needs the 'export' extra")
from PIL import Image  # noqa: E402

from ganrt_export.data import (  # noqa: E402
    SR_EVAL_PHOTOS,
    WALLPAPER_PHOTOS,
    CropStream,
    DataError,
    PhotoSource,
    WallpaperPhoto,
    check_no_leak,
    sr_training_sources,
    wallpaper_sources,
)

# Where the unpacked wallpaper packages are (docs/sr-data.md); the real-data tests skip without them.
REAL_PHOTOS = Path(os.environ.get("GANRT_SR_PHOTOS", "/work/srdata/extracted"))
needs_real = pytest.mark.skipif(not all((REAL_PHOTOS / p.package / p.path).is_file() for p in WALLPAPER_PHOTOS),
                                reason=f"the wallpaper photos are not unpacked under {REAL_PHOTOS} (set GANRT_SR_PHOTOS)")


def _jpeg_folder(root: Path, names_splits: list[tuple[str, str]], size=(400, 300)) -> tuple[WallpaperPhoto, ...]:
    """Generated JPEGs (smooth gradients plus noise) in a dpkg -x like tree, and their table."""
    rng = np.random.default_rng(0)
    table = []
    for name, split in names_splits:
        rel = f"usr/share/wallpapers/{name}/contents/images/{size[0]}x{size[1]}.jpg"
        path = root / "test-wallpapers" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
        img = np.stack([xx * 255 // size[0], yy * 255 // size[1], (xx + yy) % 256], axis=2)  # (H, W, 3)
        img = img + rng.integers(0, 30, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
        table.append(WallpaperPhoto("test-wallpapers", rel, name, size, split, "test"))
    return tuple(table)


def test_table_is_the_documented_split():
    train = [p.name for p in WALLPAPER_PHOTOS if p.split == "train"]
    held = [p.name for p in WALLPAPER_PHOTOS if p.split == "eval"]
    assert len(train) == 15 and sorted(held) == sorted(["Dune", "LadyBird", "ColdRipple", "ColorfulCups", "Path", "summer_1am"])
    assert not set(train) & set(held) and all(p.licence and len(p.sha256) == 64 for p in WALLPAPER_PHOTOS)


def test_missing_or_empty_folder_names_the_fetch_commands(tmp_path):
    with pytest.raises(DataError, match="does not exist.*apt-get download .*mate-backgrounds=1.26.0-1.*dpkg -x"):
        wallpaper_sources(tmp_path / "nope", "train")
    with pytest.raises(DataError, match="holds none of the 15 listed train.*apt-get download"):
        wallpaper_sources(tmp_path, "train")
    table = _jpeg_folder(tmp_path, [("A", "train"), ("B", "train")])
    (tmp_path / table[1].package / table[1].path).unlink()
    with pytest.raises(DataError, match="lacks 1 of the 2 train .*B/contents"):
        wallpaper_sources(tmp_path, "train", table=table)


def test_a_file_of_another_version_is_refused(tmp_path):
    p = next(p for p in WALLPAPER_PHOTOS if p.split == "eval")
    gen = _jpeg_folder(tmp_path, [("X", "eval")])[0]
    table = (WallpaperPhoto(gen.package, gen.path, p.name, gen.size, "eval", p.licence, p.sha256),)
    with pytest.raises(DataError, match="sha256 .* is not the listed"):
        wallpaper_sources(tmp_path, "eval", table=table)


def test_held_out_photos_are_never_trained_on(tmp_path):
    table = _jpeg_folder(tmp_path, [("A", "train"), ("B", "train"), ("H", "eval")])
    assert [s.name for s in sr_training_sources(tmp_path, limit=1, table=table)] == ["astronaut", "A", "B"]
    # a train entry under another name whose bytes are a held-out file
    shutil.copy(tmp_path / table[2].package / table[2].path, tmp_path / table[1].package / table[1].path)
    with pytest.raises(DataError, match="would be trained on: B"):
        sr_training_sources(tmp_path, limit=1, table=table)
    with pytest.raises(DataError, match="both train and eval"):
        check_no_leak([], table=table + (WallpaperPhoto("p", "x.jpg", "H", (1, 1), "train", "test"),))
    with pytest.raises(DataError, match="would be trained on: camera"):  # a bundled held-out name
        check_no_leak([PhotoSource("camera", (1, 1), "x", lambda: None)], table=table)
    assert "camera" in SR_EVAL_PHOTOS


def test_crop_stream_decodes_photos_one_at_a_time(tmp_path):
    """The stream keeps crops, not photos: its memory stays below one decoded photo plus the buffer,
    far below all photos decoded, and the photos are decoded again (not cached) as it goes on."""
    table = _jpeg_folder(tmp_path, [(f"P{i}", "train") for i in range(8)])
    sources = wallpaper_sources(tmp_path, "train", table=table)
    photo_bytes = 400 * 300 * 3
    tracemalloc.start()
    stream = CropStream(sources, 32, np.random.default_rng(0), buffer=16, crops_per_photo=8)
    crops = []
    for _ in range(40):
        batch = stream.take(4)
        assert len(batch) == 4 and all(c.shape == (32, 32, 3) and c.dtype == np.uint8 for c in batch)
        crops.append(batch[0])  # the caller keeps a few crops; those are small
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert stream.decodes > len(sources)  # photos come back by decoding again
    assert peak < 3 * photo_bytes < len(sources) * photo_bytes  # never all photos at once
    assert current < photo_bytes  # nothing photo-sized is kept between draws
    again = CropStream(sources, 32, np.random.default_rng(0), buffer=16, crops_per_photo=8)
    assert np.array_equal(again.take(4)[0], crops[0])  # deterministic for a given rng


def test_crop_stream_needs_photos_as_large_as_a_crop(tmp_path):
    table = _jpeg_folder(tmp_path, [("A", "train")], size=(40, 30))
    with pytest.raises(DataError, match="at least 64 pixels"):
        CropStream(wallpaper_sources(tmp_path, "train", table=table), 64, np.random.default_rng(0))


@needs_real
def test_the_real_wallpapers_match_the_table():
    train = wallpaper_sources(REAL_PHOTOS, "train")
    held = wallpaper_sources(REAL_PHOTOS, "eval")
    table = {p.name: p for p in WALLPAPER_PHOTOS}
    assert len(train) == 15 and len(held) == 6
    assert all(s.size == (table[s.name].size[1], table[s.name].size[0]) for s in train + held)
    names = [s.name for s in sr_training_sources(REAL_PHOTOS)]
    assert len(names) == 30 and not set(names) & {s.name for s in held}
    crop = CropStream(train, 128, np.random.default_rng(0), buffer=4, crops_per_photo=4).take(2)
    assert crop[0].shape == (128, 128, 3)
