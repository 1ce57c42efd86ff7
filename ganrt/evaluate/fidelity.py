"""Sample-quality metrics in a classifier's feature space: Fréchet distance, Inception Score, precision/recall.

The feature extractor is a ganrt ``Classifier`` (the bundled ``fashion-classifier``): its
penultimate layer (F = 128 features) plays the role Inception-v3's pool layer plays in FID, and its
class probabilities the role of Inception's in the Inception Score. Numbers are therefore comparable
between models judged by the same classifier, not with published FID/IS values.

- Fréchet distance (Heusel et al. 2017): ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)``
  between Gaussians fitted to generated features and to real test-set features (the reference
  statistics, ``ReferenceStats``, computed by ``ganrt-export reference-stats``).
- Inception Score (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))``, over all N samples (one
  split); at most K (10) for K classes.
- Precision / recall (Kynkäänniemi et al. 2019): each set's manifold is the union of balls around
  its points with radius the distance to the point's k-th nearest neighbour (k = 3); precision is
  the share of generated points inside the real manifold, recall the share of real points inside
  the generated one. They need the feature sets themselves, so they use at most ``pr_cap`` points
  of each side (the first ones: generated images are i.i.d. by index, so these are a random subset).

Streaming: the mean/covariance and the IS sums are accumulated batch by batch (float64), so memory
stays O(F^2 + pr_cap * F) for any N. numpy only: no scipy at import or anywhere here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.core.errors import ModelFormatError, ParameterError
from ganrt.core.model import file_sha256
from ganrt.kinds.classifier import Classifier, softmax
from ganrt.kinds.generator import Generator, check_count

# what a generator is scored on (``evaluate``'s "generated", training's per-epoch history), in report order
METRICS = ("frechet_distance", "inception_score", "precision", "recall", "label_accuracy")
PR_CAP = 5000  # points per side for precision/recall: the k-NN distances are O(cap^2) work, O(cap * chunk) memory
PR_K = 3  # Kynkäänniemi et al.'s default neighbourhood size
STATS_FORMAT = "ganrt-reference-stats-1"
STATS_COMMAND = "ganrt-export reference-stats"


# -- the metrics on plain arrays ------------------------------------------------------------------
def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigen-decomposition.

    Eigenvalues that round-off made slightly negative are clipped to 0 (a covariance is PSD).
    """
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``tr((S1 S2)^1/2)`` equals ``tr((S1^1/2 S2 S1^1/2)^1/2)``; the second form is a symmetric PSD
    matrix, so its eigenvalues are real and >= 0 (up to round-off) and eigh is stable, where
    sqrtm of the non-symmetric product can return complex parts.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ParameterError(f"means {mu1.shape}, {mu2.shape} and covariances {s1.shape}, {s2.shape} do not match")
    r1 = _sqrt_psd(s1)
    m = r1 @ s2 @ r1
    tr_cross = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_cross)
    return max(d, 0.0)  # round-off can leave -1e-12 for identical sets


class Moments:
    """Streaming mean and covariance of feature rows (float64, shifted by the first batch's mean
    so that sums of squares do not cancel catastrophically)."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self._shift: np.ndarray | None = None
        self._sum = np.zeros(dim)
        self._outer = np.zeros((dim, dim))

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64)  # (B, F)
        if self._shift is None:
            self._shift = x.mean(axis=0)
        d = x - self._shift
        self.n += len(x)
        self._sum += d.sum(axis=0)
        self._outer += d.T @ d

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean (F,), covariance (F, F)) with the unbiased 1/(n-1) normalisation."""
        if self.n < 2:
            raise ParameterError(f"a covariance needs at least 2 samples, got {self.n}")
        m = self._sum / self.n
        cov = (self._outer - self.n * np.outer(m, m)) / (self.n - 1)
        return m + self._shift, cov


class ScoreSums:
    """Streaming Inception Score: E_x KL(p(y|x) || p(y)) = E_x sum p log p - sum p(y) log p(y)."""

    def __init__(self, k: int) -> None:
        self.n, self._neg_entropy, self._marginal = 0, 0.0, np.zeros(k)

    def add(self, probs: np.ndarray) -> None:
        p = np.asarray(probs, np.float64)  # (B, K)
        self.n += len(p)
        self._neg_entropy += float((p * np.log(np.clip(p, 1e-30, None))).sum())
        self._marginal += p.sum(axis=0)

    def result(self) -> float:
        py = self._marginal / self.n
        return float(np.exp(self._neg_entropy / self.n - (py * np.log(np.clip(py, 1e-30, None))).sum()))


def inception_score(probs: np.ndarray) -> float:
    """IS of class probabilities (N, K) in one split."""
    s = ScoreSums(np.asarray(probs).shape[1])
    s.add(probs)
    return s.result()


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)), float64, clipped at 0 against round-off."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.clip(d, 0, None)


def knn_radii(x: np.ndarray, k: int = PR_K, *, chunk: int = 1000) -> np.ndarray:
    """Squared distance from each row of ``x`` to its k-th nearest other row: (N,)."""
    x = np.asarray(x, np.float64)
    if len(x) <= k:
        raise ParameterError(f"k-NN radii with k={k} need more than {k} points, got {len(x)}")
    out = np.empty(len(x))
    for i in range(0, len(x), chunk):  # (chunk, N) at a time: bounded memory
        d = _sq_dists(x[i : i + chunk], x)
        out[i : i + chunk] = np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself (distance 0)
    return out


def _coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, *, chunk: int = 1000) -> float:
    """Share of ``points`` inside at least one ball (centre, squared radius)."""
    inside = 0
    for i in range(0, len(points), chunk):
        d = _sq_dists(points[i : i + chunk], centres)
        inside += int((d <= radii[None, :]).any(axis=1).sum())
    return inside / len(points)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = PR_K) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of feature sets real (N, F), fake (M, F)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ParameterError(f"feature sets must be (N, F) with the same F, got {real.shape} and {fake.shape}")
    precision = _coverage(fake, real, knn_radii(real, k))
    recall = _coverage(real, fake, knn_radii(fake, k))
    return precision, recall


# -- reference statistics -------------------------------------------------------------------------
@dataclass(frozen=True)
class ReferenceStats:
    """The real data as the classifier sees it; made by ``ganrt-export reference-stats``.

    ``mu``/``sigma``: features of the reference half of the real test set (the FD reference);
    ``pr_features``: up to ``pr_cap`` of those features, the real side of precision/recall.
    ``heldout_*``: the other half of the test set, scored like a generator to give each metric's
    real-data value (label accuracy: the classifier's accuracy on them, with their true labels).
    """

    classifier_sha256: str
    data: str  # what the reference is, in words
    n_reference: int
    mu: np.ndarray  # (F,) float64
    sigma: np.ndarray  # (F, F) float64
    pr_features: np.ndarray  # (M, F) float32
    heldout_features: np.ndarray  # (H, F) float32
    heldout_logits: np.ndarray  # (H, K) float32
    heldout_labels: np.ndarray  # (H,) int64

    def save(self, path: str | Path) -> None:
        from ganrt.io.files import atomic_write
        from ganrt.io.npz import encode_npz

        arrays = {k: getattr(self, k) for k in ("mu", "sigma", "heldout_logits", "heldout_labels")}
        # float16 features: half the size, and 3 significant digits move FD / P&R by far less than their sampling noise
        arrays |= {"pr_features": self.pr_features.astype(np.float16),
                   "heldout_features": self.heldout_features.astype(np.float16)}
        meta = {"format": STATS_FORMAT, "classifier_sha256": self.classifier_sha256, "data": self.data,
                "n_reference": self.n_reference}
        atomic_write(path, encode_npz(meta=np.array(repr(meta)), **arrays))

    @classmethod
    def load(cls, path: str | Path) -> ReferenceStats:
        import ast

        try:
            with np.load(path, allow_pickle=False) as z:
                meta = ast.literal_eval(str(z["meta"]))
                if meta.get("format") != STATS_FORMAT:
                    raise ModelFormatError(f"{path} is not a ganrt reference-statistics file ({STATS_FORMAT})")
                arr = {k: z[k] for k in ("mu", "sigma", "pr_features", "heldout_features", "heldout_logits", "heldout_labels")}
        except (OSError, KeyError, ValueError, SyntaxError) as exc:
            raise ModelFormatError(f"{path} is not a readable reference-statistics file: {exc}") from None
        return cls(
            classifier_sha256=meta["classifier_sha256"], data=meta["data"], n_reference=int(meta["n_reference"]),
            mu=arr["mu"].astype(np.float64), sigma=arr["sigma"].astype(np.float64),
            pr_features=arr["pr_features"].astype(np.float32), heldout_features=arr["heldout_features"].astype(np.float32),
            heldout_logits=arr["heldout_logits"].astype(np.float32), heldout_labels=arr["heldout_labels"].astype(np.int64),
        )


def check_fit(gen: Generator, clf: Classifier) -> None:
    """The generator's images must have the classifier's input shape."""
    if tuple(gen.image_shape) != tuple(clf.image_shape):
        h, w, c = clf.image_shape
        raise ParameterError(f"'{clf.name}' needs ({h}, {w}, {c}) uint8 images; '{gen.name}' makes {tuple(gen.image_shape)}")


def stats_path(clf: Classifier) -> Path:
    """Where a classifier's reference statistics live: next to its file, ``NAME.stats.npz``."""
    if clf.path is None:
        raise ParameterError(f"'{clf.name}' has no file, so no reference statistics next to it")
    return clf.path.with_name(clf.path.stem + ".stats.npz")


def load_reference(clf: Classifier, path: str | Path | None = None) -> ReferenceStats:
    """The classifier's reference statistics; an error if they were made with another classifier file."""
    path = Path(path) if path is not None else stats_path(clf)
    if not path.is_file():
        raise ModelFormatError(f"no reference statistics for '{clf.name}' at {path}; make them with `{STATS_COMMAND}`")
    stats = ReferenceStats.load(path)
    if clf.path is not None and stats.classifier_sha256 != file_sha256(clf.path):
        raise ModelFormatError(f"{path} was made with another version of '{clf.name}'; remake it with `{STATS_COMMAND}`")
    return stats


def make_reference(clf: Classifier, images: np.ndarray, labels: np.ndarray, *, data: str, pr_cap: int = PR_CAP,
                   seed: int = 0) -> ReferenceStats:
    """Reference statistics from the real test set, uint8 images (N, H, W, C) and labels (N,).

    A fixed random half of it is the reference (FD statistics, precision/recall points); the other
    half is the real held-out set that is scored like a generator. Neither half was seen in training.
    """
    perm = np.random.default_rng(seed).permutation(len(images))
    ref, held = np.sort(perm[: len(perm) // 2]), np.sort(perm[len(perm) // 2 :])
    _, feats = clf.run(images[ref])
    moments = Moments(feats.shape[1])
    moments.add(feats)
    mu, sigma = moments.result()
    h_logits, h_feats = clf.run(images[held])
    return ReferenceStats(
        classifier_sha256=file_sha256(clf.path) if clf.path is not None else "", data=data, n_reference=len(ref),
        mu=mu, sigma=sigma, pr_features=feats[:pr_cap], heldout_features=h_feats, heldout_logits=h_logits,
        heldout_labels=np.asarray(labels, np.int64)[held],
    )


# -- scoring a stream of images -------------------------------------------------------------------
@dataclass
class _Scorer:
    """Accumulates every metric over batches of (features, logits[, requested labels])."""

    stats: ReferenceStats
    num_classes: int
    pr_cap: int
    moments: Moments = field(init=False)
    scores: ScoreSums = field(init=False)
    kept: list[np.ndarray] = field(default_factory=list)
    n_kept: int = 0
    hits: np.ndarray | None = None
    counts: np.ndarray | None = None
    predicted: np.ndarray = field(init=False)  # (K,) samples per predicted class: gaps show mode collapse

    def __post_init__(self) -> None:
        self.moments = Moments(self.stats.mu.size)
        self.scores = ScoreSums(self.num_classes)
        self.predicted = np.zeros(self.num_classes, np.int64)

    def add(self, feats: np.ndarray, logits: np.ndarray, labels: np.ndarray | None) -> None:
        self.moments.add(feats)
        probs = softmax(logits.astype(np.float64))
        self.scores.add(probs)
        self.predicted += np.bincount(probs.argmax(1), minlength=self.num_classes)
        if self.n_kept < self.pr_cap:  # the first pr_cap feature rows only: bounded memory
            take = feats[: self.pr_cap - self.n_kept]
            self.kept.append(take.astype(np.float32))
            self.n_kept += len(take)
        if labels is not None:
            if self.hits is None:
                self.hits, self.counts = np.zeros(self.num_classes, np.int64), np.zeros(self.num_classes, np.int64)
            np.add.at(self.counts, labels, 1)
            np.add.at(self.hits, labels, probs.argmax(1) == labels)

    def result(self) -> dict[str, Any]:
        mu, sigma = self.moments.result()
        fake = np.concatenate(self.kept)
        real = self.stats.pr_features[: len(fake)]  # equal sizes on both sides, as in the paper
        precision, recall = precision_recall(real, fake)
        out: dict[str, Any] = {
            "n": self.moments.n,
            "frechet_distance": frechet_distance(mu, sigma, self.stats.mu, self.stats.sigma),
            "inception_score": self.scores.result(),
            "precision": precision,
            "recall": recall,
            "pr_points": len(fake),
            "class_share": (self.predicted / self.moments.n).tolist(),
        }
        if self.hits is not None:
            out["label_accuracy"] = float(self.hits.sum() / self.counts.sum())
            out["per_class"] = [float(h / c) if c else float("nan") for h, c in zip(self.hits, self.counts)]
        return out


def score_features(batches: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray | None]], stats: ReferenceStats,
                   num_classes: int, *, pr_cap: int = PR_CAP) -> dict[str, Any]:
    """Every metric of a stream of (features (B, F), logits (B, K), requested labels (B,) or None)."""
    scorer = _Scorer(stats, num_classes, check_count("pr_cap", pr_cap, minimum=PR_K + 1))
    for feats, logits, labels in batches:
        scorer.add(feats, logits, labels)
    return scorer.result()


def real_scores(stats: ReferenceStats, n: int, *, pr_cap: int = PR_CAP) -> dict[str, Any]:
    """The metrics of real held-out images (min(n, H) of them), scored exactly like a generator's samples."""
    m = min(n, len(stats.heldout_features))
    out = score_features([(stats.heldout_features[:m], stats.heldout_logits[:m], stats.heldout_labels[:m])],
                         stats, stats.heldout_logits.shape[1], pr_cap=pr_cap)
    out.pop("per_class")
    out.pop("class_share")
    return out


def evaluate(gen: Generator, clf: Classifier, *, n: int = 10_000, seed: int = 0, stats: ReferenceStats | None = None,
             batch_size: int = 500, pr_cap: int = PR_CAP, on_batch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Score ``n`` samples of ``gen`` (classes evenly for conditional models) against the real data.

    Returns {"model", "classifier", "n", "seed", "generated": metrics, "real": metrics of real
    held-out images}; ``on_batch(k)`` is called after every k images (a progress bar).
    """
    n = check_count("n", n)
    check_fit(gen, clf)
    stats = stats if stats is not None else load_reference(clf)

    def stream():
        for batch in gen.iter_batches(n, seed=seed, batch_size=batch_size):
            logits, feats = clf.run(batch.images)
            yield feats, logits, batch.labels
            if on_batch is not None:
                on_batch(len(batch.images))

    generated = score_features(stream(), stats, clf.num_classes, pr_cap=pr_cap)
    names = list(gen.class_names or clf.class_names or [str(i) for i in range(clf.num_classes)])
    generated["class_share"] = dict(zip(names, generated["class_share"]))
    if "per_class" in generated:
        generated["per_class"] = dict(zip(names, generated["per_class"]))
    return {
        "model": gen.name, "classifier": clf.name, "n": n, "seed": seed, "reference": stats.data,
        "generated": generated, "real": real_scores(stats, n, pr_cap=pr_cap),
        "classifier_test_accuracy": clf.test_accuracy,
    }
