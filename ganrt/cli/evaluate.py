"""``ganrt eval``: sample quality against the real test set (``evaluate.fidelity``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ganrt.cli.options import load_generator, threads_option
from ganrt.core.bundled import DEFAULT_MODEL
from ganrt.kinds.registry import load


@click.command("eval")
@click.argument("model", default=DEFAULT_MODEL)
@click.option("-n", "n", type=int, default=10_000, show_default=True,
              help="Generated samples (classes evenly for conditional models).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--classifier", default="fashion-classifier", show_default=True, help="Feature extractor and judge.")
@click.option("--stats", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Reference statistics (default: NAME.stats.npz next to the classifier).")
@threads_option
@click.option("--json", "as_json", is_flag=True)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def eval_cmd(model, n, seed, classifier, stats, threads, as_json, progress):
    """Sample quality against the real test set, beside the same metrics of real held-out images.

    Fréchet distance and precision/recall in the classifier's feature space, a classifier-based
    Inception Score, and for conditional models the share of samples classified as the requested class.
    """
    from ganrt.evaluate.fidelity import evaluate, load_reference

    gen = load_generator(model, "cpu", threads)
    clf = load(classifier, kind="classifier", threads=threads)
    ref = load_reference(clf, stats)
    show = sys.stderr.isatty() if progress is None else progress
    with click.progressbar(length=max(n, 0), label="evaluating", file=sys.stderr, hidden=not show) as bar:
        report = evaluate(gen, clf, n=n, seed=seed, stats=ref, on_batch=bar.update)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    g, r = report["generated"], report["real"]
    click.echo(f"{report['model']}: {report['n']} samples (seed {seed}), judged by {report['classifier']} "
               f"against {ref.n_reference} images of the {report['reference']}")
    click.echo(f"  {'metric':<26} {'generated':>10} {'real held-out':>14}")
    rows = [("Frechet distance (lower)", "frechet_distance"), ("Inception Score (higher)", "inception_score"),
            ("precision (higher)", "precision"), ("recall (higher)", "recall")]
    if "label_accuracy" in g:
        rows.append(("label accuracy (higher)", "label_accuracy"))
    for title, key in rows:
        click.echo(f"  {title:<26} {g[key]:>10.4f} {r[key]:>14.4f}")
    click.echo(f"  (real held-out: {r['n']} real test images outside the reference; precision/recall on {g['pr_points']} "
               f"and {r['pr_points']} points, k = 3)")
    if "per_class" in g:
        click.echo("  label accuracy per class: " + ", ".join(f"{k} {v:.3f}" for k, v in g["per_class"].items()))
    click.echo("  predicted class shares: " + ", ".join(f"{k} {v:.3f}" for k, v in g["class_share"].items()))


COMMANDS = (eval_cmd,)
