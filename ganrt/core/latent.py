"""Latent priors, the truncation trick and latent-space arithmetic, in numpy.

Seeding by index: the latent of image ``i`` is a pure function of ``(seed, i)``. Random bits come
from a counter-based hash (splitmix64's finaliser) of seed, index, round and component, so any
subset of indices can be drawn in any order, in one vectorised call, with no generator state to
carry: batching, threads, resuming and splitting a run across machines cannot change an image.
Training (``export/``) draws its latents with this same module.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ganrt.core.errors import ParameterError

PRIORS = ("normal", "sphere", "uniform")
# A seed is a signed 64-bit integer: the hash takes it modulo 2**64, so this range is the one where every
# seed gives its own images (a wider one would alias: seed 3 and 2**64 + 3 were the same run).
MIN_SEED, MAX_SEED = -(1 << 63), (1 << 63) - 1
# Image indices are int64 (the hash multiplies them as uint64): 0 .. 2**63 - 1; a run start .. start+n-1
# must end there, so start + n is at most INDEX_LIMIT.
INDEX_LIMIT = 1 << 63

_M64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_INDEX_SALT = np.uint64(0xD1B54A32D192ED03)
# After this many rejection rounds the few components still outside [-t, t] are drawn uniformly
# in [-t, t]: the limit of a normal truncated that tightly, and a bound on the work.
_MAX_ROUNDS = 64


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective avalanche on uint64 (wraps modulo 2**64)."""
    x = (x ^ (x >> np.uint64(30))) * _MUL1
    x = (x ^ (x >> np.uint64(27))) * _MUL2
    return x ^ (x >> np.uint64(31))


_FEW = 4  # up to this many indices, their keys are hashed in Python ints: ~10 numpy calls cost more than the bits


def _keys(seed: int, indices: np.ndarray) -> np.ndarray:
    """One uint64 key per index, (N,), from a seed in MIN_SEED..MAX_SEED (negative ones as their two's complement)."""
    if len(indices) <= _FEW:  # the same bits as below, for a batch-1 call (~10 us of its ~40 us of latents)
        s, salt = _seed_key(int(seed) & _M64), int(_INDEX_SALT)
        return np.array([_mix_int(((i * salt) & _M64) ^ s) for i in indices.tolist()], dtype=np.uint64)
    x = indices.astype(np.uint64)
    x *= _INDEX_SALT
    x ^= np.uint64(_seed_key(int(seed) & _M64))
    return _mix64_inplace(x)


def _mix64_inplace(x: np.ndarray) -> np.ndarray:
    """``_mix64(x)`` bit for bit, overwriting ``x`` (uint64) with one temporary: at batch 1 the ufunc calls and
    their allocations, not the arithmetic, are the cost."""
    t = np.right_shift(x, np.uint64(30))
    x ^= t
    x *= _MUL1
    np.right_shift(x, np.uint64(27), out=t)
    x ^= t
    x *= _MUL2
    np.right_shift(x, np.uint64(31), out=t)
    x ^= t
    return x


def _mix_int(x: int) -> int:
    """``_mix64`` of one value in 0..2**64-1, in Python ints: the same bits, no numpy calls."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


@functools.lru_cache(maxsize=64)
def _seed_key(seed: int) -> int:
    """``_mix64`` of one seed (already taken modulo 2**64)."""
    return _mix_int(seed)


def _offsets(counters: np.ndarray) -> np.ndarray:
    """The counter term of the hash, (counter + 1) * golden, uint64 of ``counters``' shape."""
    return (counters.astype(np.uint64) + np.uint64(1)) * _GOLDEN


def _unit(bits: np.ndarray) -> np.ndarray:
    """Uniform float64 in (0, 1) from the top 53 of 64 random bits."""
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / (1 << 53))


def _uniform53(keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Uniform float64 in (0, 1) from (key, counter); keys (N, 1), counters (N, M) or (M,)."""
    return _unit(_mix64(keys + _offsets(counters)))


def _shape(u1: np.ndarray, u2: np.ndarray | None, base: str) -> np.ndarray:
    """``uniform`` in [-1, 1) from u1, or ``normal`` by Box-Muller from (u1, u2)."""
    if base == "uniform":
        return 2.0 * u1 - 1.0
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _draw(keys: np.ndarray, counters: np.ndarray, base: str) -> np.ndarray:
    """Draw ``normal`` (Box-Muller over counters 2c, 2c+1) or ``uniform`` in [-1, 1)."""
    c2 = counters.astype(np.uint64) * np.uint64(2)
    return _shape(_uniform53(keys, c2), None if base == "uniform" else _uniform53(keys, c2 + np.uint64(1)), base)


@functools.lru_cache(maxsize=16)
def _first_offsets(nz: int, base: str) -> np.ndarray:
    """``_offsets`` of round 0's counters, 2c then 2c + 1 for each component c, as one (2 nz,) array
    (uniform: 2c only, (nz,)): made once per nz instead of per call."""
    c2 = np.arange(nz, dtype=np.uint64) * np.uint64(2)
    offsets = _offsets(c2 if base == "uniform" else np.concatenate([c2, c2 + np.uint64(1)]))
    offsets.flags.writeable = False
    return offsets


def _first_draw(keys: np.ndarray, nz: int, base: str) -> np.ndarray:
    """``_draw(keys, arange(nz), base)``, bit for bit, in one pass over (N, 2 nz) hashes: at batch 1
    the ufunc calls, not the arithmetic, are the cost."""
    h = _mix64_inplace(keys + _first_offsets(nz, base))  # (N, 2 nz) uint64 (uniform: (N, nz))
    np.right_shift(h, np.uint64(11), out=h)
    u = h.astype(np.float64)  # _unit's steps, in place on u
    u += 0.5
    u *= 1.0 / (1 << 53)
    if base == "uniform":
        u *= 2.0
        u -= 1.0
        return u
    r = np.log(u[:, :nz])  # Box-Muller as _shape: sqrt(-2 log u1) * cos(2 pi u2), the same operations in order
    r *= -2.0
    np.sqrt(r, out=r)
    c = (2.0 * np.pi) * u[:, nz:]
    np.cos(c, out=c)
    r *= c
    return r


def check_seed(seed: int) -> int:
    """``seed`` as an int; ``ParameterError`` unless it is an integer in MIN_SEED..MAX_SEED (no aliasing)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not MIN_SEED <= seed <= MAX_SEED:
        raise ParameterError(f"seed must be an integer in {MIN_SEED}..{MAX_SEED} (-2**63..2**63-1: 64 bits, "
                             f"each seed its own images), got {seed!r}")
    return int(seed)


def check_span(start: int, n: int) -> None:
    """A run of images start .. start+n-1 must end at or before the last index, INDEX_LIMIT - 1."""
    if start + n > INDEX_LIMIT:
        raise ParameterError(f"images {start}..{start + n - 1} run past the last image index {INDEX_LIMIT - 1} "
                             f"(2**63-1): start + n must be at most 2**63, so start at most {INDEX_LIMIT - n} for n = {n}")


def index_range(start: int, stop: int) -> np.ndarray:
    """Indices start .. stop-1 as int64 (np.arange without a dtype turns to float64 near 2**63)."""
    return np.arange(start, stop, dtype=np.int64)


def as_indices(indices: np.ndarray | Sequence[int]) -> np.ndarray:
    """Image indices (N,) int64, each in 0..INDEX_LIMIT-1; ``ParameterError`` for anything else."""
    try:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    except (OverflowError, TypeError, ValueError):
        raise ParameterError(f"image indices must be integers in 0..{INDEX_LIMIT - 1} (2**63-1), "
                             f"got {str(list(indices) if not isinstance(indices, np.ndarray) else indices)[:80]}") from None
    if idx.size and idx.min() < 0:
        raise ParameterError(f"image indices must be >= 0, got {int(idx.min())}")
    return idx


def check_truncation(truncation: float | None) -> float | None:
    if truncation is None:
        return None
    t = float(truncation)
    if not np.isfinite(t) or t <= 0:
        raise ParameterError(f"truncation must be a positive number (e.g. 0.7), got {truncation!r}")
    return t


def sample_latents(
    seed: int,
    indices: np.ndarray | Sequence[int],
    nz: int,
    *,
    prior: str = "normal",
    truncation: float | None = None,
) -> np.ndarray:
    """Latents for image ``indices`` of run ``seed``: (N, nz) float32.

    Priors: ``normal`` N(0, I); ``sphere`` uniform on the sphere of radius sqrt(nz) (a normal
    draw, normalised); ``uniform`` U[-1, 1) per component. The truncation trick resamples every
    component whose magnitude exceeds ``truncation`` (for ``sphere``, before normalising).
    """
    if prior not in PRIORS:
        raise ParameterError(f"unknown latent prior {prior!r}; expected one of {', '.join(PRIORS)}")
    return draw_latents(check_seed(seed), as_indices(indices), nz, prior, check_truncation(truncation))


def draw_latents(seed: int, idx: np.ndarray, nz: int, prior: str, t: float | None) -> np.ndarray:
    """``sample_latents`` of arguments it has already checked: an int seed in MIN_SEED..MAX_SEED, indices (N,)
    int64 >= 0, a prior of PRIORS, a checked truncation. A generator's own batches come here: at batch 1 the
    checks were a tenth of the latents' time, and every argument was checked once for the whole run."""
    base = "uniform" if prior == "uniform" else "normal"
    keys = _keys(seed, idx)[:, None]  # (N, 1)
    z = _first_draw(keys, nz, base)  # (N, nz) float64
    if t is not None:
        for rnd in range(1, _MAX_ROUNDS + 1):
            rows, cols = np.nonzero(np.abs(z) > t)
            if rows.size == 0:
                break
            ctr = np.uint64(rnd * nz) + cols.astype(np.uint64)
            k = keys[rows, 0]
            if rnd < _MAX_ROUNDS:
                z[rows, cols] = _draw(k, ctr, base)
            else:
                z[rows, cols] = t * _draw(k, ctr, "uniform")
    if prior == "sphere":
        z *= np.sqrt(nz) / np.linalg.norm(z, axis=1, keepdims=True)
    return z.astype(np.float32)


def project(z: np.ndarray, prior: str) -> np.ndarray:
    """Bring latents computed by arithmetic back onto the prior's support (the sphere's radius)."""
    z = np.asarray(z, dtype=np.float32)
    if prior == "sphere":
        norm = np.linalg.norm(z, axis=-1, keepdims=True)
        z = z * (np.sqrt(z.shape[-1]) / np.maximum(norm, 1e-12))
    return z.astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Linear interpolation; a, b (nz,), t scalar or (T,) -> (nz,) or (T, nz)."""
    t = np.asarray(t, dtype=np.float64)[..., None]
    return ((1.0 - t) * a + t * b).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation (keeps the norm profile of Gaussian latents); shapes as in lerp."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, dtype=np.float64)[..., None]
    cos = np.dot(a64, b64) / max(np.linalg.norm(a64) * np.linalg.norm(b64), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:  # (anti)parallel within rounding: the arc is a line
        return lerp(a, b, t[..., 0])
    s = np.sin(omega)
    return (np.sin((1.0 - t) * omega) / s * a64 + np.sin(t * omega) / s * b64).astype(np.float32)


def interpolate(a: np.ndarray, b: np.ndarray, steps: int, *, method: str = "slerp") -> np.ndarray:
    """``steps`` latents from a to b inclusive: (steps, nz)."""
    if steps < 2:
        raise ParameterError(f"interpolation needs at least 2 steps, got {steps}")
    if method not in ("slerp", "lerp"):
        raise ParameterError(f"unknown interpolation method {method!r}; expected slerp or lerp")
    t = np.linspace(0.0, 1.0, steps)
    return (slerp if method == "slerp" else lerp)(a, b, t)


def mean_latent(z: np.ndarray) -> np.ndarray:
    """Mean of a group of latents (N, nz) -> (nz,): the DCGAN paper averages 3 per concept."""
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or len(z) == 0:
        raise ParameterError("mean_latent needs a non-empty (N, nz) array")
    return z.mean(axis=0)


def arithmetic(a: np.ndarray, b: np.ndarray, c: np.ndarray, *, prior: str = "normal") -> np.ndarray:
    """DCGAN vector arithmetic ``a - b + c`` on (group-mean) latents, projected back onto the prior."""
    return project(np.asarray(a) - np.asarray(b) + np.asarray(c), prior)
