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
