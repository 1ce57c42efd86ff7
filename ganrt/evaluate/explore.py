"""Latent-space tools: class interpolation, looping latent walks (GIF frames), vector-arithmetic grids.

Everything here renders through a loaded ``Generator`` and returns uint8 images, so the CLI only
writes files. Image ``i``'s latent is the one ``Generator.sample`` gives image ``i`` (same seed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ganrt.core import latent
from ganrt.core.errors import ModelKindError, ParameterError
from ganrt.core.memory import check_fits
from ganrt.io.images import make_grid
from ganrt.kinds.generator import Generator, check_count

LABEL_B, ALPHA = "label_b", "alpha"  # optional inputs that ganrt-export adds to conditional generators


def supports_class_mixing(gen: Generator) -> bool:
    """Whether the file has the optional ``label_b`` / ``alpha`` inputs (exported by ganrt >= this version)."""
    names = {i.name for i in gen.session.get_overridable_initializers()}
    return gen.info.conditional and {LABEL_B, ALPHA} <= names


def _check_mixing(gen: Generator) -> None:
    if not gen.info.conditional:
        raise ModelKindError(f"'{gen.name}' is unconditional: class interpolation needs a conditional generator")
    if not supports_class_mixing(gen):
        raise ModelKindError(f"'{gen.name}' has no label-mixing inputs; re-export it with `ganrt-export export` "
                             "(the optional label_b / alpha inputs came with ganrt's evaluation release)")


def render_mixed(gen: Generator, z: np.ndarray, label_a: np.ndarray, label_b: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Images with label embedding (1 - alpha) E[label_a] + alpha E[label_b]: (N, H, W, C) uint8.

    z (N, nz); label_a, label_b (N,) class indices; alpha (N,) in any range (0..1 interpolates).
    """
    _check_mixing(gen)
    z = np.ascontiguousarray(z, np.float32)
    n = len(z)
    ya, yb = (np.broadcast_to(gen.resolve_labels(v, np.arange(n)), (n,)).astype(np.int64) for v in (label_a, label_b))
    a = np.ascontiguousarray(np.broadcast_to(np.asarray(alpha, np.float32).reshape(-1), (n,))[:, None])  # (N, 1)
    return gen._run(z, np.ascontiguousarray(ya), extra={LABEL_B: np.ascontiguousarray(yb), ALPHA: a})


def class_interpolation(gen: Generator, a: int | str, b: int | str, steps: int, *, index: int = 0, seed: int = 0,
                        truncation: float | None = None) -> np.ndarray:
    """Image ``index``'s latent rendered along the straight line from class a's embedding to class b's:
    (steps, H, W, C) uint8, first = class a, last = class b."""
    _check_mixing(gen)
    steps = check_count("steps", steps, minimum=2)
    z = np.repeat(gen.latents(1, seed=seed, start=index, truncation=truncation), steps, axis=0)  # (steps, nz)
    ya, yb = gen.label_index(a), gen.label_index(b)
    return render_mixed(gen, z, np.full(steps, ya), np.full(steps, yb), np.linspace(0.0, 1.0, steps))


def class_tour(gen: Generator, classes: Sequence[int | str], steps: int, *, index: int = 0, seed: int = 0,
               truncation: float | None = None) -> list[np.ndarray]:
    """A loop through several classes (last back to first) for one latent: frames (H, W, C), for a GIF."""
    if len(classes) < 2:
        raise ParameterError("a class tour needs at least two classes")
    gen.check_batch(len(classes) * check_count("steps", steps, minimum=2), "a class tour")
    frames: list[np.ndarray] = []
    for a, b in zip(classes, list(classes[1:]) + [classes[0]]):
        frames += list(class_interpolation(gen, a, b, steps + 1, index=index, seed=seed, truncation=truncation)[:-1])
    return frames


def latent_walk(gen: Generator, keyframes: Sequence[int], steps: int, *, seed: int = 0, label: int | str | None = None,
                method: str = "slerp", truncation: float | None = None) -> np.ndarray:
    """A closed walk through the latents of images ``keyframes`` (back to the first): (K * steps, H, W, C).

    Each leg has ``steps`` frames (the next keyframe starts the next leg), so the frames loop seamlessly.
    """
    steps = check_count("steps", steps, minimum=2)
    keys = [check_count("keyframe", k, minimum=0) for k in keyframes]
    if len(keys) < 2:
        raise ParameterError("a latent walk needs at least two keyframes")
    gen.check_batch(len(keys) * steps, "a walk")  # every frame is held: the GIF is written whole
    z = np.concatenate([gen.latents(1, seed=seed, start=k, truncation=truncation) for k in keys])  # (K, nz)
    legs = [latent.interpolate(z[i], z[(i + 1) % len(z)], steps + 1, method=method)[:-1] for i in range(len(z))]
    path = latent.project(np.concatenate(legs), gen.prior)
    return gen.render(path, label if label is not None else (0 if gen.info.conditional else None))


def arithmetic_grid(gen: Generator, a: Sequence[int], b: Sequence[int], c: Sequence[int], *, seed: int = 0,
                    label: int | str | None = None, variations: int = 5, jitter: float = 0.25,
                    truncation: float | None = None) -> np.ndarray:
    """The DCGAN paper's figure: rows a, b, c (their images, then the image of their mean latent) and a
    result row: mean(a) - mean(b) + mean(c), then ``variations`` results with uniform noise +-jitter
    added (the paper's 0.25). Returns the grid as one (H', W', C) uint8 image."""
    variations = check_count("variations", variations, minimum=0)
    seed = latent.check_seed(seed)
    groups = [latent.as_indices(list(g)) for g in (a, b, c)]
    if any(g.size == 0 for g in groups):
        raise ParameterError("each group needs at least one image index >= 0")
    width = max(max(len(g) for g in groups) + 1, variations + 1)
    h, w, ch = gen.image_shape
    check_fits(gen.batch_bytes(4 * width) + 4 * (h + 2) * width * (w + 2) * ch, f"an arithmetic grid {width:,} images wide",
               hint="use fewer --variations")
    y = label if label is not None else (0 if gen.info.conditional else None)
    blank = np.full((1, *gen.image_shape), 255, np.uint8)
    rows, means = [], []
    for g in groups:
        z = latent.sample_latents(seed, g, gen.nz, prior=gen.prior, truncation=truncation)  # (k, nz)
        means.append(latent.mean_latent(z))
        shown = gen.render(np.concatenate([z, latent.project(means[-1][None], gen.prior)]), y)  # images, then the mean's
        rows.append(np.concatenate([shown[:-1], np.repeat(blank, width - len(shown), 0), shown[-1:]]))
    result = latent.arithmetic(*means, prior="normal")  # (nz,), projected below
    rng = np.random.default_rng(seed % (1 << 64))  # numpy takes seeds >= 0; this keeps -2**63..2**63-1 distinct
    zs = np.concatenate([result[None], result + rng.uniform(-jitter, jitter, (variations, gen.nz))])
    out = gen.render(latent.project(zs.astype(np.float32), gen.prior), y)
    rows.append(np.concatenate([np.repeat(blank, width - len(out), 0), out[1:], out[:1]]))
    return make_grid(np.concatenate(rows), nrow=width)
