"""Sample-quality metrics: known values on constructed data, and the bad inputs, on tiny real models."""

import types

import numpy as np
import pytest

import ganrt
from ganrt.core.errors import ModelFormatError, ParameterError
from ganrt.evaluate.fidelity import (
    Moments,
    ReferenceStats,
    evaluate,
    frechet_distance,
    inception_score,
    knn_radii,
    load_reference,
    precision_recall,
)


def _rotation(d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(500, 16)) @ np.random.default_rng(1).normal(size=(16, 16))
    m = Moments(16)
    m.add(x)
    mu, sigma = m.result()
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    # covariances with shared eigenvectors R: FD = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    d = 12
    rng = np.random.default_rng(2)
    r = _rotation(d, 3)
    a, b = rng.uniform(0.1, 4, d), rng.uniform(0.1, 4, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = frechet_distance(mu1, (r * a) @ r.T, mu2, (r * b) @ r.T)
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_with_non_commuting_covariances_matches_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    s1, s2 = a @ a.T + 0.1 * np.eye(8), b @ b.T  # s2 singular-ish directions are fine
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ParameterError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_streamed_moments_equal_the_whole_set_covariance():
    x = 1000.0 + np.random.default_rng(5).normal(size=(997, 6))  # a large offset: sums of squares would cancel
    m = Moments(6)
    for i in range(0, len(x), 100):
        m.add(x[i : i + 100])
    mu, sigma = m.result()
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)


def test_inception_score_known_values():
    k = 10
    assert inception_score(np.eye(k)[np.arange(1000) % k]) == pytest.approx(k)  # confident, classes even: K
    assert inception_score(np.tile(np.eye(k)[3], (50, 1))) == pytest.approx(1.0)  # one class: 1
    assert inception_score(np.full((50, k), 1 / k)) == pytest.approx(1.0)  # unsure: 1


def test_precision_recall_on_points_of_a_line():
    real = np.c_[np.arange(100.0), np.zeros(100)]  # spacing 1: 3rd neighbour at 2 inside, at 3 at the ends
    np.testing.assert_allclose(knn_radii(real, 3), [9.0] + [4.0] * 98 + [9.0])
    fake = real[:50]  # the left half of the real manifold, exactly
    p, r = precision_recall(real, fake, k=3)
    assert p == 1.0 and r == pytest.approx(0.53)  # real points 0..52: within 3 of fake point 49, an end
    far = fake + [0.0, 100.0]
    assert precision_recall(real, far, k=3) == (0.0, 0.0)
    mixed = np.r_[fake[:25], far[:25]]
    assert precision_recall(real, mixed, k=3)[0] == 0.5


def test_knn_radii_needs_more_than_k_points():
    with pytest.raises(ParameterError, match="more than 3"):
        knn_radii(np.zeros((3, 2)), 3)


def test_evaluate_tiny_cgan_is_batch_size_independent(cgan, classifier_path, classifier_stats):
    clf = ganrt.load(classifier_path)
    a = evaluate(cgan, clf, n=120, seed=1, batch_size=120)
    b = evaluate(cgan, clf, n=120, seed=1, batch_size=7)
    assert a["generated"]["frechet_distance"] == pytest.approx(b["generated"]["frechet_distance"], rel=1e-6)
    assert a["generated"]["label_accuracy"] == b["generated"]["label_accuracy"]
    assert a["generated"]["precision"] == b["generated"]["precision"] and a["generated"]["pr_points"] == 120
    # the real held-out images are nearer the real reference than a few-step tiny generator's samples
    assert a["real"]["frechet_distance"] < a["generated"]["frechet_distance"]


def test_evaluate_caps_the_precision_recall_points(dcgan, classifier_path, classifier_stats):
    report = evaluate(dcgan, ganrt.load(classifier_path), n=60, pr_cap=25)
    assert report["generated"]["pr_points"] == 25 and report["generated"]["n"] == 60


@pytest.mark.parametrize("n", [0, -5])
def test_evaluate_rejects_n_below_one(cgan, classifier_path, classifier_stats, n):
    with pytest.raises(ParameterError, match="n must be an integer >= 1"):
        evaluate(cgan, ganrt.load(classifier_path), n=n)


def test_extractor_shape_mismatch_names_the_shape_needed(cgan, classifier_path, classifier_stats):
    clf = ganrt.load(classifier_path)
    big = types.SimpleNamespace(name="big-classifier", image_shape=(64, 64, 3), num_classes=10)
    with pytest.raises(ParameterError,
                       match=r"'big-classifier' needs \(64, 64, 3\) uint8 images; 'tiny-cgan' makes \(32, 32, 1\)"):
        evaluate(cgan, big, n=10, stats=load_reference(clf))


def test_eval_cli_errors_are_one_line(cgan_path, classifier_path, classifier_stats, sr2_path):
    from test_cli import ganrt as run_ganrt

    out = run_ganrt("eval", cgan_path, "-n", 0, "--classifier", classifier_path)
    assert out.returncode == 1 and "n must be an integer >= 1" in out.stderr and "Traceback" not in out.stderr
    out = run_ganrt("eval", cgan_path, "--classifier", sr2_path)
    assert out.returncode == 1 and "not a classifier" in out.stderr


def test_reference_stats_of_another_classifier_are_refused(classifier_path, classifier_stats, tmp_path):
    clf = ganrt.load(classifier_path)
    stats = ReferenceStats.load(classifier_stats)
    other = tmp_path / "other.stats.npz"
    ReferenceStats(**{**stats.__dict__, "classifier_sha256": "0" * 64}).save(other)
    with pytest.raises(ModelFormatError, match="another version"):
        load_reference(clf, other)
    with pytest.raises(ModelFormatError, match="ganrt-export reference-stats"):
        load_reference(clf, tmp_path / "missing.npz")


def test_eval_text_output_shows_generated_beside_real(cgan_path, classifier_path, classifier_stats):
    from test_cli import run

    res, _ = run("eval", cgan_path, "-n", 30, "--classifier", classifier_path, "--no-progress")
    assert res.exit_code == 0, res.output
    assert "Frechet distance" in res.output and "real held-out" in res.output and "label accuracy" in res.output


def test_training_reports_metrics_and_keeps_the_best_checkpoint_by_fd(tmp_path, classifier_path, classifier_stats):
    from ganrt_export.config import GANConfig, TrainConfig
    from ganrt_export.train import BEST_NAME, load_checkpoint, train_gan

    seen = []
    cfg = GANConfig(ngf=4, ndf=4, num_classes=10, embed_dim=4)
    tcfg = TrainConfig(dataset="digits", epochs=3, batch_size=32, limit=128, eval_every=2, eval_n=40,
                       eval_classifier=str(classifier_path))
    last = load_checkpoint(train_gan(cfg, tcfg, tmp_path / "r", progress=False, on_metrics=lambda e, m: seen.append(e)))
    assert seen == [2, 3]  # every 2 epochs, and the last
    fds = {h["epoch"]: h["frechet_distance"] for h in last.history if "frechet_distance" in h}
    assert set(fds) == {2, 3} and all("label_accuracy" in h for h in last.history if h["epoch"] in fds)
    best = load_checkpoint(tmp_path / "r" / BEST_NAME)
    assert best.epoch == min(fds, key=fds.get)
    # the recorded FD is what the runtime measures on the exported model's samples (same latents aside)
    assert 0 < fds[best.epoch] < 1e4
