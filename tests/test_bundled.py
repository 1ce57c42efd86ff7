"""The models shipped inside the package: present, small, loadable, and as good as their cards say."""

import numpy as np
import pytest

import ganrt

BUNDLED = ("fashion-cgan", "fashion-dcgan", "fashion-classifier")
UPSCALERS = {"sr-x2": 2, "sr-x4": 4}


def test_bundled_models_are_installed_and_small():
    models = ganrt.available_models()
    assert set(BUNDLED) | set(UPSCALERS) <= set(models)
    assert sum(models[name].stat().st_size for name in BUNDLED) < 20 * 2**20
    assert all(models[name].stat().st_size < 5 * 2**20 for name in UPSCALERS)
    for name in (*BUNDLED, *UPSCALERS):
        assert (ganrt.MODELS_DIR / f"{name}.md").is_file(), f"{name} has no model card"


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_settings(name):
    m = ganrt.load(name)
    assert m.name == name and m.image_shape == (32, 32, 1)
    assert "Fashion-MNIST" in m.info.training_data
    if name != "fashion-dcgan":
        assert m.class_names[7] == "Sneaker" and m.num_classes == 10


def test_default_model_is_the_conditional_one():
    assert ganrt.DEFAULT_MODEL == "fashion-cgan"
    g = ganrt.load(ganrt.DEFAULT_MODEL)
    x = g.sample(16, labels="Sneaker", seed=1)
    assert x.shape == (16, 32, 32, 1) and x.dtype == np.uint8


def test_classifier_is_accurate_on_real_images():
    clf = ganrt.load("fashion-classifier")
    assert clf.test_accuracy >= 0.90  # measured on the 10k real test images at training time


def test_cgan_samples_are_mostly_of_the_requested_class():
    """A quality floor on a small sample (docs/models.md reports 10,000 samples): fails if a retrain regresses."""
    from ganrt.evaluate.fidelity import evaluate

    report = evaluate(ganrt.load("fashion-cgan"), ganrt.load("fashion-classifier"), n=1000, seed=123)
    assert report["generated"]["label_accuracy"] >= 0.80


@pytest.mark.parametrize("name, scale", sorted(UPSCALERS.items()))
def test_bundled_upscalers_beat_bicubic_on_a_held_out_photo(name, scale):
    """A floor on one evaluation photo (docs/models.md has all of them): fails if a retrain regresses."""
    pytest.importorskip("skimage")
    from ganrt.evaluate.metrics import psnr_y
    from ganrt.io.images import bicubic_resize
    from ganrt_export.data import degrade, load_photo

    up = ganrt.load(name)
    assert up.scale == scale and up.info.kind == "upscaler"
    hr, lr = degrade(load_photo("coffee"), scale)
    bicubic = psnr_y(bicubic_resize(lr, (hr.shape[1], hr.shape[0])), hr, border=scale)
    assert psnr_y(up.upscale(lr), hr, border=scale) > bicubic + 0.5


TRANSLATOR = "fashion-edges2clothes"


def test_bundled_translator_settings_info_models_and_bench():
    from click.testing import CliRunner

    from ganrt.cli import cli
    from ganrt.tools.bench import bench_model

    path = ganrt.available_models()[TRANSLATOR]
    assert path.stat().st_size < 5 * 2**20 and (ganrt.MODELS_DIR / f"{TRANSLATOR}.md").is_file()
    tr = ganrt.load(TRANSLATOR)
    assert tr.info.kind == "translator" and (tr.in_channels, tr.out_channels) == (1, 1) and tr.scale == 1
    assert tr.size_multiple == 32 and tr.fit(28, 28).how == "pad" and "Fashion-MNIST" in tr.info.training_data
    assert tr.info.training["adopted"]["options"]["value_range"] == [-1.0, 1.0]  # the network's range, wrapped in [0, 1]
    runner = CliRunner()
    info = runner.invoke(cli, ["info", TRANSLATOR])
    assert info.exit_code == 0 and "translator" in info.output and "sides multiples of 32" in info.output
    listed = runner.invoke(cli, ["models"])
    assert listed.exit_code == 0 and TRANSLATOR in listed.output
    (rec,) = bench_model(tr, batch_sizes=[1], rounds=1, min_seconds=0.05)
    assert rec.images_per_s > 0 and rec.batch_size == 1
    bench = runner.invoke(cli, ["bench", TRANSLATOR, "--batch-sizes", "1", "--rounds", "1", "--seconds", "0.05"])
    assert bench.exit_code == 0, bench.output


def test_bundled_translator_beats_the_identity_and_the_mean_image():
    """Floors on 300 held-out test pairs (the card has all 10,000: L1 0.064 vs 0.247 and 0.177): fails if a retrain regresses."""
    pytest.importorskip("skimage")
    pytest.importorskip("torch")
    from ganrt_export.pix2pix import evaluate_translator

    report = evaluate_translator(TRANSLATOR, n=300)
    model = report["model_vs_target"]
    for baseline in ("identity_vs_target", "mean_train_image_vs_target"):
        assert model["l1"] < report[baseline]["l1"] and model["psnr_db"] > report[baseline]["psnr_db"]
    c = report["classifier"]
    assert c["accuracy_on_outputs"] > c["accuracy_on_edges"] and c["accuracy_on_outputs"] >= 0.70  # 80.22 % on all 10,000


def test_bundled_translator_fp16_variant_is_close_to_fp32():
    fp32, fp16 = ganrt.load(TRANSLATOR), ganrt.load(f"{TRANSLATOR}-fp16")
    assert fp16.info.precision == "float16" and fp16.info.training["half"]["psnr_db"] >= 35.0
    assert (ganrt.MODELS_DIR / f"{TRANSLATOR}-fp16.md").is_file() and f"{TRANSLATOR}-int8" not in ganrt.available_models()
    edges = np.zeros((4, 32, 32, 1), np.uint8)
    for i, (a, b) in enumerate(((6, 26), (4, 28), (8, 24), (10, 22))):  # outlines of boxes
        edges[i, a, a:b] = edges[i, b, a:b] = edges[i, a:b, a] = edges[i, a:b, b] = 255
    mse = np.mean((fp32.translate_many(edges).astype(float) - fp16.translate_many(edges).astype(float)) ** 2)
    assert mse == 0 or 10 * np.log10(255**2 / mse) >= 35.0
