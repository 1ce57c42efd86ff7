"""The models shipped inside the package: present, small, loadable, and as good as their cards say."""

import numpy as np
import pytest

import ganrt

BUNDLED = ("fashion-cgan", "fashion-dcgan", "fashion-classifier")


def test_bundled_models_are_installed_and_small():
    models = ganrt.available_models()
    assert set(BUNDLED) <= set(models)
    assert sum(p.stat().st_size for p in models.values()) < 20 * 2**20
    for name in BUNDLED:
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
    """A quality floor on a small sample (the README reports 10,000 samples): fails if a retrain regresses."""
    from ganrt.quality import label_accuracy

    report = label_accuracy(ganrt.load("fashion-cgan"), ganrt.load("fashion-classifier"), n=1000, seed=123)
    assert report["accuracy"] >= 0.80
