"""Sample quality judged by a classifier: label accuracy (conditional) and class coverage (any generator)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .classifier import Classifier
from .errors import ModelKindError, ParameterError
from .generator import Generator, check_count


def check_fit(gen: Generator, clf: Classifier) -> None:
    """The generator's images must have the classifier's input shape."""
    if tuple(gen.image_shape) != tuple(clf.image_shape):
        h, w, c = clf.image_shape
        raise ParameterError(f"'{clf.name}' needs ({h}, {w}, {c}) uint8 images; '{gen.name}' makes {tuple(gen.image_shape)}")


def class_coverage(gen: Generator, clf: Classifier, *, n: int = 10_000, seed: int = 0, batch_size: int = 500) -> dict[str, Any]:
    """Share of ``n`` samples that ``clf`` puts in each class: a collapsed generator leaves classes empty."""
    n = check_count("n", n)
    check_fit(gen, clf)
    counts = np.zeros(clf.num_classes, np.int64)
    confidence = 0.0
    for batch in gen.iter_batches(n, seed=seed, batch_size=batch_size):
        pred, probs = clf.predict(batch.images)
        counts += np.bincount(pred, minlength=clf.num_classes)
        confidence += float(probs.max(axis=1).sum())
    names = clf.class_names or tuple(str(i) for i in range(clf.num_classes))
    return {
        "model": gen.name,
        "classifier": clf.name,
        "n": n,
        "seed": seed,
        "class_share": {names[i]: float(counts[i] / n) for i in range(clf.num_classes)},
        "mean_confidence": confidence / n,
        "classifier_test_accuracy": clf.test_accuracy,
    }


def label_accuracy(gen: Generator, clf: Classifier, *, n: int = 10_000, seed: int = 0, batch_size: int = 500) -> dict[str, Any]:
    """Share of ``n`` samples (classes evenly: image i asks for class i % K) that ``clf`` puts in the asked class."""
    n = check_count("n", n)
    if not gen.info.conditional:
        raise ModelKindError(f"'{gen.name}' is unconditional: label accuracy needs a conditional generator")
    check_fit(gen, clf)
    k = gen.num_classes
    hits, counts = np.zeros(k, np.int64), np.zeros(k, np.int64)
    for batch in gen.iter_batches(n, seed=seed, batch_size=batch_size):
        pred, _ = clf.predict(batch.images)
        np.add.at(counts, batch.labels, 1)
        np.add.at(hits, batch.labels, pred == batch.labels)
    names = gen.class_names or tuple(str(i) for i in range(k))
    return {
        "model": gen.name,
        "classifier": clf.name,
        "n": n,
        "seed": seed,
        "accuracy": float(hits.sum() / counts.sum()),
        "per_class": {names[i]: float(hits[i] / counts[i]) if counts[i] else float("nan") for i in range(k)},
        "classifier_test_accuracy": clf.test_accuracy,
    }
