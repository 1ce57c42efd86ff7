"""Tiny real models, trained for a few steps on scikit-learn's digits and exported to ONNX.

Training needs the torch side: without torch (a runtime-only install, ``.ci/run``'s second stage) every
test that asks for one of these models is skipped, and the runtime's other tests still run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

NEEDS_TORCH = "the tiny test models are trained with the torch side: install the 'export' extra"


def _train_export(tmp: Path, name: str, *, conditional: bool = True, kind: str = "gan", scale: int = 2, **train_kw) -> Path:
    pytest.importorskip("torch", reason=NEEDS_TORCH)
    from ganrt_export.config import ClassifierConfig, GANConfig, SRConfig, SRTrainConfig, TrainConfig
    from ganrt_export.onnx import export_checkpoint
    from ganrt_export.train import train_classifier, train_gan, train_sr

    run = tmp / name
    if kind == "sr":  # two training photos, a few steps: real weights, not a useful upscaler
        cfg = SRConfig(scale=scale, width=8, blocks=1)
        ck = train_sr(cfg, SRTrainConfig(epochs=1, steps_per_epoch=3, batch_size=4, patch=12, limit=2), run, progress=False)
    elif kind == "gan":
        cfg = GANConfig(ngf=8, ndf=8, num_classes=10 if conditional else 0, embed_dim=4)
        tcfg = TrainConfig(dataset="digits", epochs=1, batch_size=32, limit=256, **train_kw)
        ck = train_gan(cfg, tcfg, run, progress=False)
    else:
        cfg = ClassifierConfig(width=4, feature_dim=16)
        tcfg = TrainConfig(dataset="digits", epochs=1, batch_size=64, lr=3e-3, beta1=0.9, limit=512)
        ck = train_classifier(cfg, tcfg, run, progress=False)
    out = tmp / f"{name}.onnx"
    export_checkpoint(ck, out, name=name, description=f"tiny test {kind}")
    return out


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def cgan_path(models_dir) -> Path:
    return _train_export(models_dir, "tiny-cgan", conditional=True)


@pytest.fixture(scope="session")
def dcgan_path(models_dir) -> Path:
    return _train_export(models_dir, "tiny-dcgan", conditional=False, prior="sphere")


@pytest.fixture(scope="session")
def classifier_path(models_dir) -> Path:
    return _train_export(models_dir, "tiny-classifier", kind="classifier")


@pytest.fixture(scope="session")
def cgan(cgan_path):
    import ganrt

    return ganrt.load(cgan_path)


@pytest.fixture(scope="session")
def dcgan(dcgan_path):
    import ganrt

    return ganrt.load(dcgan_path)


@pytest.fixture(scope="session")
def sr2_path(models_dir) -> Path:
    return _train_export(models_dir, "tiny-sr-x2", kind="sr", scale=2)


@pytest.fixture(scope="session")
def sr4_path(models_dir) -> Path:
    return _train_export(models_dir, "tiny-sr-x4", kind="sr", scale=4)


@pytest.fixture(scope="session")
def sr2(sr2_path):
    import ganrt

    return ganrt.load(sr2_path)


@pytest.fixture(scope="session")
def sr4(sr4_path):
    import ganrt

    return ganrt.load(sr4_path)


@pytest.fixture(scope="session")
def classifier_stats(classifier_path) -> Path:
    """Reference statistics of the tiny classifier on the digits test split, next to its file."""
    import ganrt
    from ganrt.evaluate.fidelity import make_reference, stats_path
    from ganrt_export.data import load_dataset

    clf = ganrt.load(classifier_path)
    test = load_dataset("digits", split="test")
    stats = make_reference(clf, test.images.permute(0, 2, 3, 1).contiguous().numpy(), test.labels.numpy(),
                           data="digits test split")
    stats.save(stats_path(clf))
    return stats_path(clf)
