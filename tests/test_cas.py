"""The Classification Accuracy Score (export/cas.py, `ganrt-export cas`) on tiny real data: scikit-learn's
digits, the tiny conditional GAN and classifier of conftest.py (trained on digits too), one or a few epochs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the Classification Accuracy Score trains with the torch side")

import ganrt  # noqa: E402
from ganrt.core.errors import ParameterError  # noqa: E402
from ganrt_export.cas import CASConfig, Variant, real_subset, report_markdown, run_cas, synthetic_dataset  # noqa: E402
from ganrt_export.data import load_dataset  # noqa: E402

BIN = Path(sys.executable).parent


def test_synthetic_set_is_class_balanced_and_is_the_generators_images(cgan):
    data = synthetic_dataset(cgan, Variant(), 53, seed=4)
    assert data.images.shape == (53, 1, 32, 32) and data.images.dtype == torch.uint8
    counts = np.bincount(data.labels.numpy(), minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 53  # 53 = 5 x 10 + 3
    again = cgan.sample(53, labels=data.labels.tolist(), seed=4)  # (N, H, W, C)
    assert np.array_equal(data.images.numpy().transpose(0, 2, 3, 1), again)

    unbalanced = synthetic_dataset(cgan, Variant(balanced=False), 200, seed=4)
    assert np.array_equal(unbalanced.labels.numpy(), np.random.default_rng(4).integers(0, 10, 200))


def test_filtering_keeps_the_most_confident_per_class_and_stays_balanced(cgan, classifier_path):
    clf = ganrt.load(classifier_path, kind="classifier")
    kept = synthetic_dataset(cgan, Variant(keep=0.5), 40, seed=2, classifier=clf)
    labels = kept.labels.numpy()
    assert np.array_equal(np.bincount(labels, minlength=10), np.full(10, 4))
    # the pool it chose from: 8 per class, the same latents (seed 2) and balanced labels
    pool_labels = np.arange(80) % 10
    pool = cgan.sample(80, labels=pool_labels.tolist(), seed=2)
    _, probs = clf.predict(pool)
    conf = probs[np.arange(80), pool_labels]
    kept_conf = clf.predict(kept.images.numpy().transpose(0, 2, 3, 1))[1][np.arange(40), labels]
    for c in range(10):
        threshold = np.sort(conf[pool_labels == c])[-4]  # the 4th highest of class c's 8
        assert (kept_conf[labels == c] >= threshold - 1e-6).all()
    with pytest.raises(ParameterError, match="classifier"):
        synthetic_dataset(cgan, Variant(keep=0.5), 40, seed=2)


def test_spread_scales_the_latents_of_the_same_run(cgan):
    """``spread=s``: image i is rendered from s times the latent of image i of the run (the same labels)."""
    plain = synthetic_dataset(cgan, Variant(), 20, seed=3)
    wide = synthetic_dataset(cgan, Variant.parse("spread=1.5"), 20, seed=3)
    assert Variant.parse("spread=1.5").label == "spread 1.5"
    assert np.array_equal(wide.labels.numpy(), plain.labels.numpy())
    z = cgan.latents(20, seed=3)
    expected = cgan.render(z * np.float32(1.5), plain.labels.numpy())
    assert np.array_equal(wide.images.numpy().transpose(0, 2, 3, 1), expected)
    assert not np.array_equal(wide.images.numpy(), plain.images.numpy())
    with pytest.raises(ParameterError, match="spread"):
        Variant.parse("spread=0")


def test_real_subset_is_balanced_distinct_and_refuses_too_many():
    data = load_dataset("digits", split="train")
    sub = real_subset(data, 100, seed=1)
    assert len(sub.labels) == 100
    assert np.array_equal(np.bincount(sub.labels.numpy(), minlength=10), np.full(10, 10))
    rows = {bytes(x.numpy().tobytes()) for x in sub.images}
    assert len(rows) >= 95  # picked without replacement (digits holds a few duplicate images)
    assert not torch.equal(real_subset(data, 100, seed=2).images, sub.images)  # the seed picks the subset
    with pytest.raises(ParameterError, match="real images asked for"):
        real_subset(data, len(data.labels) + 1, seed=0)


@pytest.mark.parametrize("text, message", [("keep=2", "keep must be in"), ("truncation=-1", "truncation must be"),
                                           ("colour=1", "bad variant item")])
def test_bad_variants_are_refused(text, message):
    with pytest.raises(ParameterError, match=message):
        Variant.parse(text)


def test_grid_schema_steps_and_accuracy_above_chance(cgan_path, classifier_path):
    cfg = CASConfig(models=(str(cgan_path),), variants=(Variant(), Variant(keep=0.5)), n=400, epochs=3, width=8,
                    batch_size=32, seeds=(0, 1), subsets=(50, 100), augment_n=100, dataset="digits",
                    filter_classifier=str(classifier_path))
    report = run_cas(cfg)
    rows = report["rows"]
    kinds = [(r["kind"], r["real_n"], r["synthetic_n"], r["variant"]) for r in rows]
    assert kinds == [("real", 400, 0, ""), ("synthetic", 0, 400, "plain"), ("synthetic", 0, 400, "keep 0.5 by confidence"),
                     ("real-subset", 50, 0, ""), ("real+synthetic", 50, 100, "plain"),
                     ("real-subset", 100, 0, ""), ("real+synthetic", 100, 100, "plain")]
    for r in rows:
        assert len(r["accuracies"]) == 2 and all(0.0 <= a <= 1.0 for a in r["accuracies"])
        assert r["mean"] == pytest.approx(np.mean(r["accuracies"]))
        assert r["std"] == pytest.approx(np.std(r["accuracies"], ddof=1))
    by = {(r["kind"], r["real_n"]): r for r in rows}
    # a subset alone gets the augmented set's steps: 150 // 32 = 4 a epoch for 3 epochs; 50 alone: 1 a epoch, 12 epochs
    assert by[("real+synthetic", 50)]["epochs"] == 3 and by[("real+synthetic", 50)]["steps"] == 12
    assert by[("real-subset", 50)]["epochs"] == 12 and by[("real-subset", 50)]["steps"] == 12
    assert by[("real", 400)]["mean"] > 0.3  # chance is 0.1; 36 steps on 400 real digits
    assert report["eval_set"] == "scikit-learn digits test split"
    assert report["filter_classifier"] == str(classifier_path)
    table = report_markdown(report)
    assert table.count("\n| ") == len(rows) + 1 and "±" in table and "real training set" in table


def test_cli_writes_the_report_and_refuses_bad_input_in_one_line(cgan_path, tmp_path):
    out = tmp_path / "cas.json"
    args = [str(BIN / "ganrt-export"), "cas", "--model", str(cgan_path), "--dataset", "digits", "--n", "100", "--epochs",
            "1", "--width", "4", "--batch-size", "50", "--seeds", "1", "--parts", "real,synthetic", "--json", str(out),
            "--markdown", str(tmp_path / "cas.md"), "--threads", "1"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert report["format"] == "ganrt-cas-1" and [r["kind"] for r in report["rows"]] == ["real", "synthetic"]
    assert report["command"].startswith("ganrt-export cas --model")
    table = (tmp_path / "cas.md").read_text()
    assert table.startswith("`ganrt-export cas --model") and "\n\nScored on scikit-learn digits test split" in table

    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "exists; pass --overwrite" in again.stderr and "Traceback" not in again.stderr
    bad = subprocess.run([*args[:-6], "--variant", "keep=0", "--json", str(tmp_path / "bad.json")], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == ["error: keep must be in (0, 1], got 0.0"]
    assert not (tmp_path / "bad.json").exists()


def test_budget_stops_between_seeds_and_merged_parts_equal_one_run(cgan_path):
    from ganrt_export.cas_table import merge_reports

    cfg = CASConfig(models=(str(cgan_path),), n=100, epochs=1, width=4, batch_size=25, seeds=(0, 1),
                    parts=("real", "synthetic"), dataset="digits")
    whole = run_cas(cfg)
    first = run_cas(cfg, budget_s=1e-9)  # after seed 0 another seed cannot fit
    assert first["seeds_done"] == [0] and "stopped after 1 of 2 seeds" in first["stopped"]
    assert [len(r["accuracies"]) for r in first["rows"]] == [1, 1]
    second = run_cas(CASConfig(**{**cfg.__dict__, "seeds": (1,)}))
    merged = merge_reports([second, first])
    assert merged["seeds_done"] == [0, 1]
    assert [r["accuracies"] for r in merged["rows"]] == [r["accuracies"] for r in whole["rows"]]  # training is deterministic
    assert [r["std"] for r in merged["rows"]] == pytest.approx([r["std"] for r in whole["rows"]])
    assert merge_reports([first, whole])["rows"] == merge_reports([whole])["rows"]  # seed 0 twice: the same run, kept once
    tampered = {**first, "rows": [{**r, "accuracies": [r["accuracies"][0] + 0.01]} for r in first["rows"]]}
    with pytest.raises(ValueError, match="seed 0 of row .* has two accuracies"):
        merge_reports([tampered, whole])
    other = run_cas(CASConfig(**{**cfg.__dict__, "seeds": (1,), "epochs": 2, "parts": ("real",)}))
    with pytest.raises(ValueError, match="differ in epochs"):
        merge_reports([first, other])
