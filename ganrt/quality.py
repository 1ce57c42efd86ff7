"""Sample quality judged by a classifier: label accuracy of conditional generators."""

from __future__ import annotations

from typing import Any

import numpy as np

from .classifier import Classifier
from .errors import ModelKindError, ParameterError
from .generator import Generator, check_count


def label_accuracy(gen: Generator, clf: Classifier, *, n: int = 10_000, seed: int = 0, batch_size: int = 500) -> dict[str, Any]:
    """Share of ``n`` samples (classes evenly: image i asks for class i % K) that ``clf`` puts in the asked class."""
    n = check_count("n", n)
    if not gen.info.conditional:
        raise ModelKindError(f"'{gen.name}' is unconditional: label accuracy needs a conditional generator")
    if tuple(gen.image_shape) != tuple(clf.image_shape):
        h, w, c = clf.image_shape
        raise ParameterError(f"'{clf.name}' needs ({h}, {w}, {c}) images; '{gen.name}' makes {tuple(gen.image_shape)}")
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
