import numpy as np
import pytest

from ganrt.core import latent
from ganrt.core.errors import ParameterError


def test_latent_of_an_index_does_not_depend_on_the_other_indices():
    full = latent.sample_latents(7, np.arange(100), 16)
    part = latent.sample_latents(7, [50, 3, 99], 16)
    np.testing.assert_array_equal(part, full[[50, 3, 99]])


def test_seeds_give_different_streams_and_large_and_negative_seeds_work():
    a = latent.sample_latents(0, np.arange(4), 8)
    b = latent.sample_latents(1, np.arange(4), 8)
    assert not np.allclose(a, b)
    for seed in (-1, -(2**63), 2**63 - 1, np.int64(-5), np.uint64(7)):
        z = latent.sample_latents(seed, np.arange(3), 8)
        assert z.shape == (3, 8) and np.isfinite(z).all()
    assert not np.array_equal(latent.sample_latents(-1, [0], 8), latent.sample_latents(1, [0], 8))


def test_seeds_outside_64_bits_are_refused_not_aliased():
    """The hash takes a seed modulo 2**64: 3 and 2**64 + 3 gave the same latents. Out-of-range seeds are refused."""
    for seed in (2**63, -(2**63) - 1, 2**64 + 3, -(2**70), 2**200, 1.0, True, "3"):
        with pytest.raises(ParameterError, match=r"seed must be an integer in -9223372036854775808\.\.9223372036854775807"):
            latent.sample_latents(seed, [0], 8)


@pytest.mark.parametrize("prior", latent.PRIORS)
def test_priors_have_their_distribution(prior):
    z = latent.sample_latents(3, np.arange(20000), 32, prior=prior)
    assert z.dtype == np.float32 and z.shape == (20000, 32)
    if prior == "normal":
        assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    elif prior == "sphere":
        np.testing.assert_allclose(np.linalg.norm(z, axis=1), np.sqrt(32), rtol=1e-5)
        assert abs(z.mean()) < 0.01
    else:
        assert z.min() >= -1 and z.max() < 1 and abs(z.std() - 1 / np.sqrt(3)) < 0.01


def test_truncation_bounds_components_and_keeps_determinism():
    z = latent.sample_latents(0, np.arange(2000), 64, truncation=0.5)
    assert np.abs(z).max() <= 0.5
    assert np.abs(z).max() > 0.45  # still spread over the whole interval
    np.testing.assert_array_equal(z[10:12], latent.sample_latents(0, [10, 11], 64, truncation=0.5))
    tiny = latent.sample_latents(0, np.arange(50), 64, truncation=1e-6)
    assert np.abs(tiny).max() <= 1e-6


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_bad_truncation_is_refused(bad):
    with pytest.raises(ParameterError, match="truncation"):
        latent.sample_latents(0, [0], 4, truncation=bad)


def test_unknown_prior_is_refused():
    with pytest.raises(ParameterError, match="prior"):
        latent.sample_latents(0, [0], 4, prior="cauchy")


def test_interpolation_endpoints_and_slerp_keeps_norm_on_sphere():
    a, b = latent.sample_latents(0, [0, 1], 64, prior="sphere")
    path = latent.interpolate(a, b, 9, method="slerp")
    np.testing.assert_allclose(path[0], a, atol=1e-6)
    np.testing.assert_allclose(path[-1], b, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 8.0, rtol=1e-5)
    mid = latent.interpolate(a, b, 3, method="lerp")[1]
    np.testing.assert_allclose(mid, (a + b) / 2, atol=1e-6)
    with pytest.raises(ParameterError):
        latent.interpolate(a, b, 1)


def test_vector_arithmetic_projects_to_the_prior():
    z = latent.sample_latents(0, np.arange(9), 16, prior="sphere")
    a, b, c = (latent.mean_latent(z[i : i + 3]) for i in (0, 3, 6))
    out = latent.arithmetic(a, b, c, prior="sphere")
    assert out.shape == (16,)
    np.testing.assert_allclose(np.linalg.norm(out), 4.0, rtol=1e-5)
    np.testing.assert_allclose(latent.arithmetic(a, b, c, prior="normal"), a - b + c, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, -1, latent.MIN_SEED, latent.MAX_SEED, 987654321])
def test_keys_of_a_few_indices_hashed_in_python_match_the_vectorised_hash(seed, monkeypatch):
    """Up to ``_FEW`` indices are hashed in Python ints (batch-1 calls); the bits must be numpy's."""
    cases = [[0], [latent.INDEX_LIMIT - 1], [5, 7], [0, 1, 2, 3], [1 << 62, 3, 9]]
    fast = [latent._keys(seed, np.array(c, np.int64)) for c in cases]
    monkeypatch.setattr(latent, "_FEW", 0)
    for c, keys in zip(cases, fast):
        assert keys.dtype == np.uint64
        np.testing.assert_array_equal(keys, latent._keys(seed, np.array(c, np.int64)))
