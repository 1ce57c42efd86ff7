import threading

import numpy as np
import pytest
from PIL import Image

import ganrt
from ganrt.core.errors import ModelKindError, ParameterError
from ganrt.io.images import bicubic_resize

RNG = np.random.default_rng(0)


def photo(h, w, c=3):
    """A smooth real-looking test image (gradients + texture), uint8."""
    skimage_data = pytest.importorskip("skimage.data", reason="the test photo comes with scikit-image (the 'export' extra)")
    base = skimage_data.astronaut()
    img = np.asarray(Image.fromarray(base).resize((w, h), Image.BICUBIC))
    return img if c == 3 else img[..., 0]


def test_settings_from_the_file(sr2, sr4):
    assert sr2.scale == 2 and sr4.scale == 4
    assert sr4.receptive_radius == 5  # head + 2 per block + body tail + sub-pixel conv, 1 block
    assert sr4.info.kind == "upscaler" and sr4.info.value_range == (0.0, 1.0)


@pytest.mark.parametrize("shape", [(37, 53), (64, 64), (101, 30), (5, 200)])
@pytest.mark.parametrize("tile, overlap", [(30, None), (24, 10), (33, 14), (40, 30)])
def test_tiled_equals_whole_image(sr4, shape, tile, overlap):
    img = photo(*shape)
    whole = sr4.upscale(img, tile=4096)
    tiled = sr4.upscale(img, tile=tile, overlap=overlap)
    assert tiled.shape == (shape[0] * 4, shape[1] * 4, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 2


def test_small_overlap_still_blends_without_seams(sr2):
    img = photo(60, 60)
    whole = sr2.upscale(img, tile=4096)
    tiled = sr2.upscale(img, tile=20, overlap=2)  # less than 2 x receptive radius: approximate
    assert np.abs(tiled.astype(int) - whole.astype(int)).mean() < 2.0


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (3, 2)])
def test_tiny_images(sr2, shape):
    out = sr2.upscale(photo(*shape, c=1) if shape != (1, 1) else np.full(shape, 200, np.uint8))
    assert out.shape == (shape[0] * 2, shape[1] * 2) and out.dtype == np.uint8


def test_grayscale_goes_through_rgb_and_back(sr2):
    gray = photo(30, 41, c=1)
    out = sr2.upscale(gray)
    assert out.shape == (60, 82)
    rgb = sr2.upscale(np.repeat(gray[..., None], 3, axis=2))
    expected = np.rint(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    np.testing.assert_array_equal(out, np.clip(expected, 0, 255).astype(np.uint8))
    assert sr2.upscale(gray[..., None]).shape == (60, 82, 1)


def test_alpha_is_upscaled_separately_with_bicubic(sr2):
    rgba = np.concatenate([photo(20, 25), RNG.integers(0, 256, (20, 25, 1), dtype=np.uint8)], axis=2)
    out = sr2.upscale(rgba)
    assert out.shape == (40, 50, 4)
    np.testing.assert_array_equal(out[..., :3], sr2.upscale(rgba[..., :3]))
    np.testing.assert_array_equal(out[..., 3], bicubic_resize(rgba[..., 3], (50, 40)))


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "I;16", "1"])
def test_pillow_images_in_and_out(sr2, mode):
    im = Image.fromarray(photo(16, 20)).convert(mode) if mode != "I;16" else Image.fromarray(
        photo(16, 20, c=1).astype(np.uint16) * 257)
    out = sr2.upscale(im)
    assert isinstance(out, Image.Image) and out.size == (40, 32)
    assert out.mode in ("L", "RGB", "RGBA", "LA")


@pytest.mark.parametrize("image, match", [
    (np.zeros((0, 5, 3), np.uint8), "zero-size"),
    (np.zeros((4, 4, 3), np.float32), "uint8"),
    (np.zeros((4, 4, 2), np.uint8), "shape"),
    (np.zeros((2, 4, 4, 3), np.uint8), "shape"),
])
def test_bad_arrays(sr2, image, match):
    with pytest.raises(ParameterError, match=match):
        sr2.upscale(image)


@pytest.mark.parametrize("kw, match", [(dict(tile=0), "tile"), (dict(tile=10, overlap=10), "smaller than the tile"),
                                       (dict(overlap=-1), "overlap"), (dict(batch_size=0), "batch_size")])
def test_bad_options(sr2, kw, match):
    with pytest.raises(ParameterError, match=match):
        sr2.upscale(photo(8, 8), **kw)


def test_thread_safe(sr4):
    imgs = [photo(20 + i, 30 - i) for i in range(4)]
    expected = [sr4.upscale(im, tile=12, overlap=11) for im in imgs]
    got, errors = [None] * 4, []

    def work(i):
        try:
            got[i] = sr4.upscale(imgs[i], tile=12, overlap=11)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errors
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


def test_kinds_are_not_mixed(sr2_path, cgan_path):
    with pytest.raises(ModelKindError, match="not a generator"):
        ganrt.load(sr2_path, kind="generator")
    with pytest.raises(ModelKindError, match="not an upscaler"):
        ganrt.load(cgan_path, kind="upscaler")


def test_export_parity_at_several_sizes(models_dir, sr4_path):
    from ganrt_export.onnx import check_parity, model_from_checkpoint
    from ganrt_export.train import load_checkpoint

    ck = load_checkpoint(models_dir / "tiny-sr-x4")
    assert check_parity(model_from_checkpoint(ck), ck, sr4_path.read_bytes()) <= 1e-4


def test_metrics_known_values():
    from ganrt.evaluate.metrics import psnr_y, ssim_y

    a = photo(64, 64)
    assert psnr_y(a, a) == float("inf") and ssim_y(a, a) == pytest.approx(1.0)
    b = np.clip(a.astype(int) + 4, 0, 255).astype(np.uint8)  # Y shifts by about 4 * 219/255
    assert psnr_y(a, b, border=2) == pytest.approx(10 * np.log10(255**2 / (4 * 219 / 255) ** 2), abs=0.2)
    assert ssim_y(a, b) < 1.0


def _whole_by_hand(up, img):
    """The whole-image result written out: one session.run of the whole image, rounded to uint8."""
    x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(1.0 / 255.0)
    (y,) = up.session.run(None, {up.session.get_inputs()[0].name: x})
    return np.clip(np.rint(y[0] * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)


@pytest.mark.parametrize("shape", [(64, 64), (101, 30), (5, 200), (90, 77)])
@pytest.mark.parametrize("budget", [1, 1024])
def test_budgeted_tiles_on_lanes_equal_the_whole_image(sr4_path, shape, budget):
    up = ganrt.load(sr4_path, threads=2)  # two lanes
    assert up.lanes == 2
    img = photo(*shape)
    th, tw = up.tile_for(*shape, memory_budget=budget)
    if budget == 1:  # 1 MB: tiles of the smallest exact size, several per image
        assert th * tw < shape[0] * shape[1]
    np.testing.assert_array_equal(up.upscale(img, memory_budget=budget), _whole_by_hand(up, img))
    with ganrt.load(sr4_path, threads=2, lanes=1) as one:
        np.testing.assert_array_equal(one.upscale(img, memory_budget=budget), _whole_by_hand(up, img))


def test_plan_tiles_fits_the_budget_and_keeps_lanes_busy():
    from ganrt.kinds.tiling import plan_tiles

    assert plan_tiles(1024, 1024, overlap=38, max_pixels=2_000_000, lanes=1) == (1024, 1024)  # fits whole
    assert plan_tiles(1024, 1024, overlap=38, max_pixels=2_000_000, lanes=2) == (1024, 531)  # one tile per lane
    # small: two tiles would recompute 15 % of it; whole on the threaded session was faster (0.362 vs 0.413 s)
    assert plan_tiles(256, 256, overlap=38, max_pixels=2_000_000, lanes=2) == (256, 256)
    for h, w, cap, lanes in [(3000, 4000, 700_000, 2), (777, 333, 50_000, 3), (256, 256, 10_000, 2)]:
        th, tw = plan_tiles(h, w, overlap=20, max_pixels=cap, lanes=lanes)
        assert th * tw <= cap and th <= h and tw <= w
    assert plan_tiles(30, 30, overlap=20, max_pixels=1, lanes=2) == (30, 30)  # no smaller exact tile exists


@pytest.mark.parametrize("budget", [0, -5, 1.5, "1024", True])
def test_bad_memory_budget(sr2, budget):
    with pytest.raises(ParameterError, match="memory_budget must be a whole number of MB"):
        sr2.upscale(photo(8, 8), memory_budget=budget)
