"""The Classification Accuracy Score (Ravuri & Vinyals 2019): is generated data worth training on?

Train the project's classifier recipe (``train.classifier_epoch``: Adam, cosine schedule, flips; the
bundled ``fashion-classifier`` was made by it) on ``n`` generated images, class-balanced, and score
it on the real test set, beside the same recipe on ``n`` real images. Then augmentation: a small,
class-balanced real subset (1,000 and 5,000 images) trained alone and with synthetic images added.
Every row is trained once per seed and reported as mean and standard deviation over the seeds; the
seed also picks the generated images (sample seed) and the real subset.

Generator-side levers, none of which retrains the GAN:
- ``truncation``: the truncation trick (components of z beyond it are resampled);
- ``balanced``: labels cycle over the classes (exactly n/K each) instead of uniform random labels;
- ``spread``: latents of the prior scaled by this factor (> 1: more varied images than the prior the GAN was
  trained on; the opposite of truncation);
- ``keep`` < 1: draw n/keep images and keep, per class, the ``keep`` fraction that a classifier
  (the bundled ``fashion-classifier``, trained on the *real* training set) gives the highest
  probability of the class asked for. That classifier has seen the real labels; the score of a
  filtered set is therefore not "generator alone", and the report says so.

``match_steps``: a real subset trained alone gets as many optimiser steps as the same subset with
synthetic images added (more epochs over fewer images), so an augmentation gain is not merely
more training steps.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ganrt.core.errors import ParameterError

from .cas_table import report_markdown  # noqa: F401  (the report's table, torch-free)
from .config import ClassifierConfig, TrainConfig
from .data import Dataset, load_dataset
from .models import Classifier
from .train import classifier_epoch, evaluate_classifier

VAL_SIZE = 10_000  # eval="val": the last 10,000 training images are held out, subsets come from the rest
PARTS = ("real", "synthetic", "augment", "alone", "augmented")  # augment = alone + augmented (the subset rows)


@dataclass(frozen=True)
class Variant:
    """How the generated training set is drawn from a generator (no retraining)."""

    truncation: float | None = None
    keep: float = 1.0  # fraction kept per class by the filter classifier's confidence (1: no filter)
    balanced: bool = True  # labels cycle over the classes; False: uniform random labels
    spread: float = 1.0  # latents scaled by this (1: the prior itself)

    def __post_init__(self) -> None:
        if not 0.0 < self.spread <= 10.0:
            raise ParameterError(f"spread must be in (0, 10], got {self.spread}")
        if not 0.0 < self.keep <= 1.0:
            raise ParameterError(f"keep must be in (0, 1], got {self.keep}")
        if self.truncation is not None and not self.truncation > 0:
            raise ParameterError(f"truncation must be > 0, got {self.truncation}")

    @property
    def label(self) -> str:
        parts = [] if self.balanced else ["random labels"]
        if self.truncation is not None:
            parts.append(f"truncation {self.truncation:g}")
        if self.spread != 1.0:
            parts.append(f"spread {self.spread:g}")
        if self.keep < 1.0:
            parts.append(f"keep {self.keep:g} by confidence")
        return ", ".join(parts) or "plain"

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``plain`` or ``truncation=1.5,keep=0.5,balanced=no``."""
        if text.strip() in ("", "plain"):
            return cls()
        kw: dict[str, Any] = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            try:
                if not sep:
                    raise ValueError
                if key == "truncation":
                    kw[key] = float(value)
                elif key in ("keep", "spread"):
                    kw[key] = float(value)
                elif key == "balanced":
                    if value not in ("yes", "no"):
                        raise ValueError
                    kw[key] = value == "yes"
                else:
                    raise ValueError
            except ValueError:
                raise ParameterError(f"bad variant item {item!r} in {text!r}; expected plain or "
                                     "truncation=FLOAT,spread=FLOAT,keep=FRACTION,balanced=yes|no") from None
        return cls(**kw)


@dataclass(frozen=True)
class CASConfig:
    """The grid; the defaults are the issue's (60,000 images, 6 epochs, width 16, 3 seeds)."""

    models: tuple[str, ...] = ("fashion-cgan", "fashion-cgan-int8")
    variants: tuple[Variant, ...] = (Variant(),)  # each model x each variant for "synthetic"; the first for "augment"
    n: int = 60_000  # images per synthetic-only / real-only training set
    epochs: int = 6
    width: int = 16
    batch_size: int = 128
    lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    subsets: tuple[int, ...] = (1000, 5000)  # real images in the augmentation rows
    augment_n: int = 0  # synthetic images added to a subset; 0 = n
    match_steps: bool = True
    parts: tuple[str, ...] = PARTS
    eval: str = "test"  # test: the real test split; val: the last VAL_SIZE training images (for choosing variants)
    dataset: str = "fashion-mnist"
    data_dir: str = ""
    filter_classifier: str = "fashion-classifier"
    limit: int = 0  # tests: only the first `limit` real training images (and as many test images)

    def __post_init__(self) -> None:
        if self.eval not in ("test", "val"):
            raise ParameterError(f"eval must be test or val, got {self.eval!r}")
        bad = [p for p in self.parts if p not in PARTS]
        if bad or not self.parts:
            raise ParameterError(f"parts must be among {', '.join(PARTS)}, got {', '.join(self.parts) or 'none'}")
        for name in ("n", "epochs", "width", "batch_size"):
            if getattr(self, name) < 1:
                raise ParameterError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.seeds or not self.models or not self.variants:
            raise ParameterError("at least one seed, one model and one variant are needed")
        if any(s < 1 for s in self.subsets) or self.augment_n < 0:
            raise ParameterError("subset sizes must be >= 1 and augment_n >= 0")

    @property
    def synthetic_added(self) -> int:
        return self.augment_n or self.n

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["variants"] = [v.label for v in self.variants]
        return d


def balanced_labels(n: int, num_classes: int) -> np.ndarray:
    """(n,) int64 cycling 0..K-1: every class n // K or n // K + 1 times."""
    return (np.arange(n) % num_classes).astype(np.int64)


def _dataset(images_nhwc: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...], description: str) -> Dataset:
    return Dataset(images=torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2))),  # (N, C, S, S)
                   labels=torch.from_numpy(np.asarray(labels, dtype=np.int64)), class_names=class_names,
                   description=description)


def synthetic_dataset(generator: Any, variant: Variant, n: int, *, seed: int, classifier: Any = None) -> Dataset:
    """``n`` images from a conditional ganrt ``generator`` drawn as ``variant`` says.

    With ``variant.keep`` < 1, ``classifier`` (a ganrt classifier) scores ceil(n / keep) draws and,
    per class, the n_c most confident for their class are kept, so the set stays balanced.
    """
    info = generator.info
    if not info.conditional:
        raise ParameterError(f"'{generator.name}' is unconditional; the Classification Accuracy Score needs labels")
    k = info.num_classes
    rng = np.random.default_rng(seed)
    want = balanced_labels(n, k) if variant.balanced else rng.integers(0, k, n)
    if variant.keep >= 1.0:
        images = _draw(generator, want, seed, variant)
        labels = want
    else:
        if classifier is None:
            raise ParameterError("keep < 1 needs a classifier to filter with")
        per_class = np.bincount(want, minlength=k)
        draws = balanced_labels(k * math.ceil(per_class.max() / variant.keep), k)  # every class over-drawn alike
        pool = _draw(generator, draws, seed, variant)
        _, probs = classifier.predict(pool)
        conf = probs[np.arange(len(draws)), draws]  # (M,) p(asked class | image)
        chosen = []
        for c in range(k):
            idx = np.flatnonzero(draws == c)
            chosen.append(idx[np.argsort(-conf[idx], kind="stable")[: per_class[c]]])
        order = np.sort(np.concatenate(chosen))
        images, labels = pool[order], draws[order]
    names = info.class_names or tuple(str(i) for i in range(k))
    return _dataset(images, labels, tuple(names), f"{n} images of {generator.name} ({variant.label})")


def _draw(generator: Any, labels: np.ndarray, seed: int, variant: Variant) -> np.ndarray:
    """Images 0 .. len(labels)-1 of run ``seed`` with these labels, latents as ``variant`` draws them."""
    if variant.spread == 1.0:
        return generator.sample(len(labels), labels=labels.tolist(), seed=seed, truncation=variant.truncation)
    z = generator.latents(len(labels), seed=seed, truncation=variant.truncation) * np.float32(variant.spread)
    return generator.render(z, labels)


def real_subset(data: Dataset, n: int, *, seed: int) -> Dataset:
    """A class-balanced random subset of ``n`` images of ``data`` (all of it when n = len(data))."""
    total = len(data.labels)
    if n > total:
        raise ParameterError(f"{n} real images asked for, but {data.description} has {total}")
    if n == total:
        return data
    k = len(data.class_names)
    counts = np.bincount(balanced_labels(n, k), minlength=k)
    labels = data.labels.numpy()
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        if len(idx) < counts[c]:
            raise ParameterError(f"class {c} has {len(idx)} images in {data.description}; "
                                 f"a balanced subset of {n} needs {counts[c]}")
        picked.append(rng.choice(idx, counts[c], replace=False))
    order = torch.from_numpy(np.sort(np.concatenate(picked)))
    return Dataset(data.images[order], data.labels[order], data.class_names, f"{n} of {data.description}")


def concat(a: Dataset, b: Dataset) -> Dataset:
    return Dataset(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]), a.class_names,
                   f"{a.description} + {b.description}")


def _steps_per_epoch(n: int, cfg: CASConfig) -> int:
    return max(n // cfg.batch_size, 1)  # as train.classifier_epoch: the last partial batch is dropped


def fit_and_score(train: Dataset, test: Dataset, cfg: CASConfig, *, seed: int, epochs: int) -> dict[str, float]:
    """The classifier recipe (as ``ganrt-export train classifier``) on ``train``; accuracy on ``test``."""
    shape = tuple(train.images.shape[1:])  # (C, S, S)
    model_cfg = ClassifierConfig(image_size=shape[1], channels=shape[0], num_classes=len(train.class_names), width=cfg.width)
    tcfg = TrainConfig(dataset=cfg.dataset, epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, beta1=0.9, seed=seed)
    torch.manual_seed(seed)
    model = Classifier(model_cfg)
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2))
    t0 = time.perf_counter()
    for epoch in range(epochs):
        classifier_epoch(model, opt, train, tcfg, epoch)
    seconds = time.perf_counter() - t0
    return {"accuracy": evaluate_classifier(model, test), "train_seconds": seconds,
            "steps": epochs * _steps_per_epoch(len(train.labels), cfg)}


@dataclass
class Row:
    """One line of the report: a training set, scored once per seed."""

    kind: str  # real | synthetic | real-subset | real+synthetic
    real_n: int
    synthetic_n: int
    model: str = ""
    variant: str = ""
    epochs: int = 0
    steps: int = 0
    accuracies: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": self.mean, "std": self.std}


def _splits(cfg: CASConfig) -> tuple[Dataset, Dataset]:
    kw = dict(data_dir=cfg.data_dir, image_size=32, channels=1)
    train = load_dataset(cfg.dataset, split="train", limit=cfg.limit, **kw)
    if cfg.eval == "test":
        test = load_dataset(cfg.dataset, split="test", **kw)
        if cfg.limit:
            test = Dataset(test.images[: cfg.limit], test.labels[: cfg.limit], test.class_names, test.description)
        return train, test
    cut = len(train.labels) - min(VAL_SIZE, len(train.labels) // 6)
    val = Dataset(train.images[cut:], train.labels[cut:], train.class_names,
                  f"the last {len(train.labels) - cut} of {train.description}")
    return Dataset(train.images[:cut], train.labels[:cut], train.class_names, f"the first {cut} of {train.description}"), val


def run_cas(cfg: CASConfig, *, log: Callable[[str], None] = lambda _: None,
            on_report: Callable[[dict[str, Any]], None] | None = None, budget_s: float | None = None) -> dict[str, Any]:
    """Train and score every row of the grid; returns the report (``report_markdown`` renders it).

    ``on_report(report)`` is called after each training run with the report so far (``complete``
    False), to save it: a run killed later still leaves every finished training run on disk.
    With ``budget_s``, no further seed is started when the last one's time says it would end after the
    budget; the report names the seeds done and says why it stopped.
    """
    import ganrt
    from ganrt.tools.bench import machine
    from ganrt.tools.doctor import CPUINFO, cpu_features

    real, test = _splits(cfg)
    if cfg.n > len(real.labels) and "real" in cfg.parts:
        raise ParameterError(f"n = {cfg.n} real images asked for, but {real.description} has {len(real.labels)}")
    big = max(cfg.subsets, default=0)
    subset_rows = {"alone", "augmented"} & ({"alone", "augmented"} if "augment" in cfg.parts else set(cfg.parts))
    if subset_rows and big > len(real.labels):
        raise ParameterError(f"a real subset of {big} asked for, but {real.description} has {len(real.labels)}")
    threads = torch.get_num_threads()
    gens = {m: ganrt.load(m, threads=threads) for m in cfg.models}
    for name, g in gens.items():
        if not g.info.conditional or g.info.num_classes != len(real.class_names) or tuple(g.image_shape) != (32, 32, 1):
            raise ParameterError(f"'{name}' must be a conditional generator of (32, 32, 1) images with "
                                 f"{len(real.class_names)} classes, as {real.description}")
    needs_filter = any(v.keep < 1 for v in cfg.variants)
    clf = ganrt.load(cfg.filter_classifier, kind="classifier", threads=threads) if needs_filter else None

    plan: list[tuple[Row, Callable[[int], Dataset]]] = []  # every row and how its training set is made for a seed
    if "real" in cfg.parts:
        plan.append((Row("real", cfg.n, 0, epochs=cfg.epochs), lambda s: real_subset(real, cfg.n, seed=s)))
    if "synthetic" in cfg.parts:
        for m in cfg.models:
            for v in cfg.variants:
                plan.append((Row("synthetic", 0, cfg.n, m, v.label, epochs=cfg.epochs),
                             lambda s, m=m, v=v: synthetic_dataset(gens[m], v, cfg.n, seed=s, classifier=clf)))
    if subset_rows:
        add, v = cfg.synthetic_added, cfg.variants[0]
        for sub in cfg.subsets:
            # as near as whole epochs allow, the number of optimiser steps of the augmented set's cfg.epochs epochs
            alone = round(cfg.epochs * _steps_per_epoch(sub + add, cfg) / _steps_per_epoch(sub, cfg)) \
                if cfg.match_steps else cfg.epochs
            if "alone" in subset_rows:
                plan.append((Row("real-subset", sub, 0, epochs=alone), lambda s, sub=sub: real_subset(real, sub, seed=s)))
            for m in cfg.models if "augmented" in subset_rows else ():
                plan.append((Row("real+synthetic", sub, add, m, v.label, epochs=cfg.epochs),
                             lambda s, sub=sub, m=m: concat(real_subset(real, sub, seed=s),
                                                            synthetic_dataset(gens[m], v, add, seed=s, classifier=clf))))
    rows = [row for row, _ in plan]
    t_start = time.perf_counter()
    seeds_done: list[int] = []
    stopped = None
    info = machine()
    try:
        info["cpu_features"] = cpu_features(CPUINFO.read_text())
    except OSError:
        info["cpu_features"] = None
    info.update(torch=torch.__version__, torch_threads=threads, nice=os.nice(0))

    def report(*, complete: bool) -> dict[str, Any]:
        """The rows trained so far; ``complete``: the run ended (all seeds, or stopped by its budget)."""
        return {"format": "ganrt-cas-1", "complete": complete, "config": cfg.to_dict(), "seeds_done": list(seeds_done),
                "stopped": stopped, "eval_set": test.description, "train_pool": real.description,
                "filter_classifier": cfg.filter_classifier if needs_filter else None,
                "machine": {**info, "load_average": list(os.getloadavg())}, "seconds": time.perf_counter() - t_start,
                "rows": [r.to_dict() for r in rows if r.accuracies]}

    # seed-major: every row once per seed, so a run stopped by its time budget has whole seeds of every row
    for seed in cfg.seeds:
        t_seed = time.perf_counter()
        for row, make in plan:
            out = fit_and_score(make(seed), test, cfg, seed=seed, epochs=row.epochs)
            row.steps = out["steps"]
            row.accuracies.append(out["accuracy"])
            row.train_seconds.append(out["train_seconds"])
            log(f"{row.kind:15s} real {row.real_n:>6} synthetic {row.synthetic_n:>6} {row.model} {row.variant} "
                f"seed {seed}: accuracy {out['accuracy']:.4f} ({out['train_seconds']:.0f} s, {out['steps']} steps)")
            if on_report is not None:
                on_report(report(complete=False))
        seeds_done.append(seed)
        elapsed, last = time.perf_counter() - t_start, time.perf_counter() - t_seed
        if budget_s and seed != cfg.seeds[-1] and elapsed + last > budget_s:
            stopped = (f"stopped after {len(seeds_done)} of {len(cfg.seeds)} seeds: another would end after the "
                       f"time budget of {budget_s / 60:.0f} min (the last took {last / 60:.0f} min)")
            log(stopped)
            break
    return report(complete=True)
