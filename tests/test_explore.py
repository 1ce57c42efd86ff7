"""Latent-space tools on tiny real models: class interpolation, latent walks, arithmetic grids."""

import numpy as np
import pytest
from PIL import Image

from ganrt.core.errors import ModelKindError, ParameterError
from ganrt.evaluate.explore import arithmetic_grid, class_interpolation, class_tour, latent_walk, supports_class_mixing


def test_class_interpolation_ends_at_the_two_classes(cgan):
    assert supports_class_mixing(cgan)
    frames = class_interpolation(cgan, 1, "7", 5, index=3, seed=2)
    assert frames.shape == (5, 32, 32, 1)
    np.testing.assert_array_equal(frames[0], cgan.images_at([3], seed=2, labels=[1])[0])
    np.testing.assert_array_equal(frames[-1], cgan.images_at([3], seed=2, labels=[7])[0])
    assert not np.array_equal(frames[2], frames[0]) and not np.array_equal(frames[2], frames[-1])


def test_exported_label_mixing_leaves_sampling_unchanged(cgan_path):
    """Fed only z and label, the rewritten graph gives the plain graph's images bit for bit."""
    import onnxruntime as ort

    import ganrt

    gen = ganrt.load(cgan_path)
    sess = ort.InferenceSession(str(cgan_path))
    z, y = gen.latents(16, seed=5), np.arange(16) % 10
    plain = sess.run(None, {"z": z, "label": y})[0]
    zeros = sess.run(None, {"z": z, "label": y, "label_b": np.full(16, 9), "alpha": np.zeros((16, 1), np.float32)})[0]
    np.testing.assert_array_equal(plain, zeros)


def test_class_tools_refuse_unconditional_models(dcgan):
    with pytest.raises(ModelKindError, match="unconditional"):
        class_interpolation(dcgan, 0, 1, 3)
    with pytest.raises(ParameterError, match="at least two classes"):
        class_tour(dcgan, [0], 3)


def test_latent_walk_loops_through_its_keyframes(dcgan):
    frames = latent_walk(dcgan, [4, 9, 2], 6, seed=1)
    assert frames.shape == (18, 32, 32, 1)
    for leg, key in enumerate([4, 9, 2]):
        np.testing.assert_array_equal(frames[leg * 6], dcgan.images_at([key], seed=1)[0])
    with pytest.raises(ParameterError):
        latent_walk(dcgan, [4], 6)


def test_arithmetic_grid_layout(cgan):
    grid = arithmetic_grid(cgan, [0, 1, 2], [3, 4, 5], [6, 7], seed=0, label=2, variations=5)
    # 4 rows x 6 columns of 32-pixel tiles with 2-pixel padding
    assert grid.shape == (4 * 34 + 2, 6 * 34 + 2, 1)
    exact = cgan.arithmetic([0, 1, 2], [3, 4, 5], [6, 7], seed=0, label=2)
    np.testing.assert_array_equal(grid[2 + 3 * 34 : 2 + 3 * 34 + 32, 2 + 5 * 34 : 2 + 5 * 34 + 32], exact)
    with pytest.raises(ParameterError, match="at least one image index"):
        arithmetic_grid(cgan, [], [1], [2])


def test_walk_and_arithmetic_cli(cgan_path, tmp_path):
    from test_cli import ganrt

    out = ganrt("walk", "-m", cgan_path, "--classes", "0,7,9", "--steps", "4", "--out", tmp_path / "t.gif", check=True)
    assert Image.open(tmp_path / "t.gif").n_frames == 12 and "12 frames" in out.stdout
    ganrt("walk", "-m", cgan_path, "--keyframes", "0,5", "--steps", "3", "--out", tmp_path / "w.png", check=True)
    ganrt("arithmetic", "-m", cgan_path, "--a", "0,1,2", "--b", "3,4,5", "--c", "6,7,8", "--out", tmp_path / "a.png", check=True)
    assert Image.open(tmp_path / "a.png").size == (6 * 34 + 2 + 4, 4 * 34 + 2 + 4)
    bad = ganrt("arithmetic", "-m", cgan_path, "--a", "x", "--b", "3", "--c", "6", "--out", tmp_path / "b.png")
    assert bad.returncode != 0 and "--a" in bad.stderr and "Traceback" not in bad.stderr
