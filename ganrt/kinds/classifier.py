"""``Classifier``: judges images (the bundled ``fashion-classifier``); logits and features per image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ganrt.core.errors import ModelFormatError, ParameterError
from ganrt.core.kind import Kind, register
from ganrt.core.model import Model
from ganrt.core.run import run_session
from ganrt.core.schema import ModelInfo, fixed_image_shape

DEFAULT_BATCH_SIZE = 500


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities (N, K) of logits (N, K), computed stably (max subtracted per row)."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Classifier(Model):
    """uint8 images (N, H, W, C) in, class probabilities and a feature vector per image out."""

    def __init__(self, session: Any, info: ModelInfo, *, source: str, path: Path | None = None) -> None:
        super().__init__(session, info, source=source, path=path)
        inputs = session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(uint8)":
            raise ModelFormatError(f"{source}: a classifier takes one uint8 (N, H, W, C) input")
        self._input = inputs[0].name
        self._outputs = [o.name for o in session.get_outputs()]  # logits (N, K), features (N, F)

    @property
    def test_accuracy(self) -> float | None:
        """Accuracy on the real held-out test set, measured at training time (the ceiling for samples)."""
        value = self.info.training.get("test_accuracy")
        return float(value) if value is not None else None

    def _check(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.image_shape):
            h, w, c = self.image_shape
            raise ParameterError(
                f"'{self.name}' needs uint8 images of shape (N, {h}, {w}, {c}), got {images.dtype} {images.shape}"
            )
        return np.ascontiguousarray(images)

    def run(self, images: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
        """(logits (N, K) float32, features (N, F) float32)."""
        images = self._check(images)
        logits, feats = [], []
        for i in range(0, len(images), batch_size):
            lo, fe = run_session(self.session, self._outputs, {self._input: images[i : i + batch_size]}, source=self.source)
            logits.append(lo)
            feats.append(fe)
        return np.concatenate(logits), np.concatenate(feats)

    def predict(self, images: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
        """(labels (N,) int64, probabilities (N, K) float32)."""
        logits, _ = self.run(images, batch_size=batch_size)
        probs = softmax(logits)
        return probs.argmax(axis=1).astype(np.int64), probs


def _check(info: ModelInfo) -> str | None:
    if info.num_classes < 2:
        return "a classifier needs num_classes >= 2"
    return fixed_image_shape(info)


def _bench(clf: Classifier) -> tuple[Any, float | None]:
    """``run`` on uint8 noise of the model's image shape."""
    images = np.random.default_rng(0).integers(0, 256, (256, *clf.image_shape), dtype=np.uint8)
    return (lambda b: clf.run(np.resize(images, (b, *clf.image_shape)), batch_size=b)), clf.info.flops or None


CLASSIFIER = register(Kind(
    name="classifier", model_class=Classifier,
    inputs="images (N, H, W, C) uint8",
    outputs="logits (N, K) float32, features (N, F) float32",
    fields=("num_classes", "class_names"),
    check=_check, shape=lambda info: "x".join(map(str, info.image_shape)),
    rows=lambda info: [("image", "x".join(map(str, info.image_shape)))], bench=_bench,
))
