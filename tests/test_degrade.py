"""Real-world degradations (export/degrade.py): each step does what it says, the random pipeline is
seeded, the fixed evaluation pipeline is the issue's, and training on it never sees a held-out photo."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch side needs the 'export' extra")

from ganrt_export.data import degrade, held_out_sources, load_photo  # noqa: E402
from ganrt_export.degrade import (  # noqa: E402
    DegradeConfig,
    DegradeError,
    FixedDegradation,
    RoundConfig,
    blur,
    degrade_fixed,
    degrade_real,
    gaussian_kernel,
    gaussian_noise,
    held_out_pair,
    jpeg,
    poisson_noise,
    resize,
)
from tests.test_sr_data import REAL_PHOTOS, needs_real  # where the unpacked wallpapers are; skip without them


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 128x128 crop of a real photo (chelsea, a held-out photo: only used to test the functions)."""
    return load_photo("chelsea")[60:188, 150:278].copy()


def _high_freq(img: np.ndarray) -> float:
    g = img.astype(np.float64).mean(axis=2)
    return float(np.mean(np.diff(g, axis=0) ** 2) + np.mean(np.diff(g, axis=1) ** 2))


def test_random_pipeline_is_seeded_and_has_the_lr_shape(photo):
    a = degrade_real(photo, 4, np.random.default_rng(7))
    b = degrade_real(photo, 4, np.random.default_rng(7))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    others = [degrade_real(photo, 4, np.random.default_rng(s)) for s in range(8)]
    assert len({o.tobytes() for o in others}) == 8  # the seed matters
    _, bic = degrade(photo, 4)
    assert all(np.abs(o.astype(int) - bic).mean() > 0.5 for o in others)  # not the bicubic LR
    assert degrade_real(photo[:, :96], 2, np.random.default_rng(0)).shape == (64, 48, 3)
    with pytest.raises(DegradeError, match="multiple of the scale"):
        degrade_real(photo[:126], 4, np.random.default_rng(0))


def test_second_order_and_steps_can_be_switched_off(photo):
    off = RoundConfig(blur_prob=0.0, resize_prob=(0.0, 0.0, 1.0), noise_prob=0.0, jpeg_prob=0.0)
    cfg = DegradeConfig(first=off, second=off, final_methods=("bicubic",), final_jpeg_prob=0.0)
    _, bic = degrade(photo, 4)
    assert np.array_equal(degrade_real(photo, 4, np.random.default_rng(0), cfg), bic)  # nothing left but the resize
    with pytest.raises(DegradeError, match="resize_prob"):
        RoundConfig(resize_prob=(0.5, 0.5, 0.5))
    with pytest.raises(DegradeError, match="JPEG quality"):
        jpeg(photo, 100)


def test_jpeg_error_grows_as_quality_falls(photo):
    err = {q: np.abs(jpeg(photo, q).astype(int) - photo).mean() for q in (95, 75, 30)}
    assert 0 < err[95] < err[75] < err[30]


def test_gaussian_noise_has_the_asked_std_and_gray_noise_is_shared():
    flat = np.full((200, 200, 3), 128, np.uint8)
    noisy = gaussian_noise(flat, 5.0, np.random.default_rng(0)).astype(np.float64) - 128
    assert abs(noisy.std() - 5.0) < 0.1 and abs(noisy.mean()) < 0.1
    assert abs(np.corrcoef(noisy[..., 0].ravel(), noisy[..., 1].ravel())[0, 1]) < 0.05  # colour noise
    gray = gaussian_noise(flat, 5.0, np.random.default_rng(0), gray=True)
    assert np.array_equal(gray[..., 0], gray[..., 2]) and gray.std() > 4


def test_poisson_noise_depends_on_the_signal():
    peak = 500.0
    dark, bright = np.full((200, 200, 3), 32, np.uint8), np.full((200, 200, 3), 224, np.uint8)
    std = lambda v, img: (poisson_noise(img, peak, np.random.default_rng(0)).astype(np.float64) - v).std()  # noqa: E731
    expect = lambda v: 255 * np.sqrt(v / 255 / peak)  # noqa: E731
    assert abs(std(32, dark) - expect(32)) < 0.1 * expect(32)
    assert abs(std(224, bright) - expect(224)) < 0.1 * expect(224)
    assert std(224, bright) > 2 * std(32, dark)


def test_blur_keeps_the_mean_and_lowers_high_frequencies(photo):
    k = gaussian_kernel(15, 2.0, 2.0)
    assert abs(k.sum() - 1) < 1e-12 and np.allclose(k, k.T)
    out = blur(photo, k)
    assert out.shape == photo.shape
    assert _high_freq(out) < 0.3 * _high_freq(photo)
    assert abs(out.astype(float).mean() - photo.mean()) < 1.0
    assert np.array_equal(blur(photo, gaussian_kernel(1, 1.0, 1.0)), photo)  # a 1x1 kernel is the identity
    aniso = blur(photo, gaussian_kernel(21, 3.0, 0.3, 0.0))  # blurs along x (columns), barely along y
    gx = lambda im: np.mean(np.diff(im.astype(float), axis=1) ** 2)  # noqa: E731
    gy = lambda im: np.mean(np.diff(im.astype(float), axis=0) ** 2)  # noqa: E731
    assert gx(aniso) / gx(photo) < 0.5 * gy(aniso) / gy(photo)


def test_resize_methods_and_size(photo):
    outs = {m: resize(photo, (50, 40), m) for m in ("bicubic", "bilinear", "area")}
    assert all(o.shape == (40, 50, 3) for o in outs.values())
    assert not np.array_equal(outs["bicubic"], outs["area"])
    with pytest.raises(DegradeError, match="resize method"):
        resize(photo, (50, 40), "lanczos7")


def test_fixed_eval_pipeline_is_the_issue_one():
    hr = load_photo("coffee")[:203, :301]  # not multiples of 4: cropped first
    hr2, lr = degrade_fixed("coffee", hr, 4)
    assert hr2.shape == (200, 300, 3) and lr.shape == (50, 75, 3)
    _, bic = degrade(hr, 4)
    again = degrade_fixed("coffee", hr, 4)[1]
    assert np.array_equal(lr, again)  # seeded by the name: the same whatever else ran before
    assert not np.array_equal(lr, degrade_fixed("other", hr, 4)[1])
    y = np.array([0.299, 0.587, 0.114])
    err_y = lambda img: ((img.astype(float) - bic) @ y).std()  # noqa: E731
    assert err_y(jpeg(bic, 75)) < err_y(lr) < 8.0  # the noise adds to JPEG q75's own error
    by_hand = jpeg(gaussian_noise(bic, 5.0, np.random.default_rng([0, __import__("zlib").crc32(b"coffee")])), 75)
    assert np.array_equal(lr, by_hand)
    assert np.array_equal(held_out_pair("coffee", hr, 4, "fixed-real")[1], lr)
    assert np.array_equal(held_out_pair("coffee", hr, 4, "bicubic")[1], bic)
    assert not np.array_equal(degrade_fixed("coffee", hr, 4, FixedDegradation(jpeg_quality=95))[1], lr)
    with pytest.raises(DegradeError, match="fixed-real"):
        held_out_pair("coffee", hr, 4, "real")


def test_training_on_real_degradation_fine_tunes_init_and_scores_fixed_real(tmp_path):
    import torch

    from ganrt_export.config import SRConfig, SRTrainConfig
    from ganrt_export.train import CheckpointError, load_checkpoint, train_sr

    cfg = SRConfig(scale=4, width=4, blocks=1, skip="bicubic")
    tcfg = lambda **kw: SRTrainConfig(**{"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "patch": 8, "limit": 2,  # noqa: E731
                                          "eval_every": 1, **kw})
    base = load_checkpoint(train_sr(cfg, tcfg(), tmp_path / "base", progress=False))
    real = load_checkpoint(train_sr(cfg, tcfg(degradation="real", init=str(tmp_path / "base"), lr=1e-12),
                                    tmp_path / "real", progress=False))
    assert real.train_config.degradation == "real"
    # lr ~ 0: the fine-tuned weights are the init's, so the run really started from it
    assert all(torch.allclose(real.state["G"][k], base.state["G"][k], atol=1e-6) for k in base.state["G"])
    # --eval-every scores the fixed-real inputs: the same weights score lower than on bicubic inputs
    assert real.history[0]["eval_psnr"] < base.history[0]["eval_psnr"] - 0.3
    for name in ("chelsea", "coffee", "rocket", "flower", "camera"):
        assert name not in real.data
    with pytest.raises(CheckpointError, match="configuration"):
        train_sr(SRConfig(scale=4, width=8, blocks=1, skip="bicubic"), tcfg(init=str(tmp_path / "base")),
                 tmp_path / "other", progress=False)


@needs_real
def test_real_degradation_training_set_holds_no_held_out_photo():
    from ganrt_export.data import sr_training_sources
    from ganrt_export.train import PatchSampler

    train = sr_training_sources(REAL_PHOTOS)
    held = held_out_sources(REAL_PHOTOS)
    assert len(held) == 11 and not ({s.key for s in train} & {s.key for s in held})
    assert not ({s.name.lower() for s in train} & {s.name.lower() for s in held})
    sampler = PatchSampler(train, 4, 8, np.random.default_rng(0), degradation="real")
    lr, hr = sampler.batch(2)
    assert tuple(lr.shape) == (2, 3, 8, 8) and tuple(hr.shape) == (2, 3, 32, 32)
    assert {s.name for s in sampler.crops.sources} <= {s.name for s in train}


def test_sr_eval_scores_fixed_real_inputs_and_draws_the_side_by_side(sr4_path, tmp_path):
    import json

    from click.testing import CliRunner
    from PIL import Image

    from ganrt_export.cli import cli
    from ganrt_export.evaluate import CROP_SIZE

    out, side = tmp_path / "s.json", tmp_path / "side.png"
    args = ["sr-eval", str(sr4_path), "sr-x4", "--threads", "1", "--json", str(out)]
    res = CliRunner().invoke(cli, [*args, "--degradation", "fixed-real", "--side-by-side", str(side)])
    assert res.exit_code == 0, res.output
    assert "fixed-real inputs" in res.output and "wrote" in res.output
    table = res.output.split("gain over bicubic (SSIM)\n")[1].split("\n\n")[0].splitlines()
    assert table[0] == f"| photo | bicubic | {sr4_path.stem} | sr-x4 |" and len(table) == 2 + 5 + 1  # the two models side by side
    real = json.loads(out.read_text())
    assert real["degradation"] == "fixed-real"
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    clean = json.loads(out.read_text())
    # the same models and photos score lower on noisy JPEG inputs, and so does bicubic
    assert real["sr-x4"]["bundled"]["mean_psnr_bicubic"] < clean["sr-x4"]["bundled"]["mean_psnr_bicubic"] - 0.5
    assert real["sr-x4"]["bundled"]["mean_psnr_model"] < clean["sr-x4"]["bundled"]["mean_psnr_model"] - 0.5
    with Image.open(side) as img:  # five photos x (input | bicubic | 2 models | original), crops zoomed 2x, 4 px gaps
        assert img.size == (5 * (2 * CROP_SIZE + 4) + 4, 5 * (2 * CROP_SIZE + 4) + 4)
    res = CliRunner().invoke(cli, [*args, "--degradation", "real"])
    assert res.exit_code != 0 and "fixed-real" in res.output


def test_bundled_sr_x4_real_beats_bicubic_and_sr_x4_on_a_degraded_held_out_photo():
    """A floor on one photo (the model card has all eleven): fails if a retrain regresses."""
    import ganrt
    from ganrt.evaluate.metrics import psnr_y
    from ganrt.io.images import bicubic_resize

    hr, lr = degrade_fixed("flower", load_photo("sklearn:flower"), 4)
    real, plain = ganrt.load("sr-x4-real"), ganrt.load("sr-x4")
    assert real.scale == 4 and "degradations" in real.info.description
    bic = psnr_y(bicubic_resize(lr, (hr.shape[1], hr.shape[0])), hr, border=4)
    got = psnr_y(real.upscale(lr), hr, border=4)
    assert got > bic + 0.5 and got > psnr_y(plain.upscale(lr), hr, border=4) + 0.4  # card: +0.84 vs sr-x4's +0.10
