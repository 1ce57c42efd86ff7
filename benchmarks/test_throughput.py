"""pytest-benchmark suites of the runtime's hot paths (bundled models, no torch).

    pytest benchmarks/ --benchmark-only

Not part of the test run (``testpaths`` is ``tests``). For torch side by side, see
``python -m benchmarks.compare``; for ``ganrt generate`` end to end, ``python -m benchmarks.end_to_end``.
"""

import numpy as np
import pytest

import ganrt
from ganrt.core.latent import sample_latents
from ganrt.io.png import encode_pngs


@pytest.fixture(scope="module")
def cgan():
    return ganrt.load("fashion-cgan")


@pytest.mark.parametrize("batch", [1, 64, 256])
def test_sample(benchmark, cgan, batch):
    benchmark.extra_info["images"] = batch
    out = benchmark(cgan.sample, batch, batch_size=batch)
    assert out.shape == (batch, 32, 32, 1)


def test_latents_256(benchmark):
    z = benchmark(sample_latents, 0, np.arange(256), 100)
    assert z.shape == (256, 100)


def test_encode_64_pngs(benchmark, cgan):
    images = cgan.sample(64)
    texts = [{"model": "fashion-cgan", "index": str(i)} for i in range(64)]
    files = benchmark(encode_pngs, images, texts=texts)
    assert len(files) == 64


def test_upscale_x2_64px(benchmark):
    up = ganrt.load("sr-x2")
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = benchmark(up.upscale, image)
    assert out.shape == (128, 128, 3)


def test_classify_256(benchmark):
    clf = ganrt.load("fashion-classifier")
    images = np.random.default_rng(0).integers(0, 256, (256, 32, 32, 1), dtype=np.uint8)
    logits, _ = benchmark(clf.run, images)
    assert logits.shape == (256, 10)
