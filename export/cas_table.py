"""The Classification Accuracy Score report (``export/cas.py``) as a markdown table; no torch, so that
``benchmarks.tables`` renders the docs' tables from the committed JSON where only the runtime is installed."""

from __future__ import annotations

from typing import Any


def accuracy_cell(r: dict[str, Any], *, most: int, digits: int = 4) -> str:
    """mean ± std over a row's seeds; a single seed has no spread, and says so."""
    n = len(r["accuracies"])
    text = f"{r['mean']:.{digits}f} (1 seed)" if n == 1 else f"{r['mean']:.{digits}f} ± {r['std']:.{digits}f}"
    return text if n == most or n == 1 else f"{text} ({n} seeds)"


def _by_seed(r: dict[str, Any], cfg: dict[str, Any]) -> dict[int, float]:
    seeds = r.get("seeds") or cfg["seeds"][: len(r["accuracies"])]  # a grid runs seed-major: its first seeds
    return dict(zip(seeds, r["accuracies"], strict=False))


def gap_cell(r: dict[str, Any], rows: list[dict[str, Any]], cfg: dict[str, Any]) -> str:
    """Accuracy minus that of the real images alone (the real row of n, or the same subset), on the seeds both have."""
    if r["kind"] in ("real", "real-subset"):
        return "–"
    want = ("real", cfg["n"]) if r["kind"] == "synthetic" else ("real-subset", r["real_n"])
    base = next((b for b in rows if (b["kind"], b["real_n"]) == want), None)
    if base is None:
        return "–"
    mine, theirs = _by_seed(r, cfg), _by_seed(base, cfg)
    common = sorted(set(mine) & set(theirs))
    if not common:
        return "–"
    diff = sum(mine[s] - theirs[s] for s in common) / len(common)
    return f"{100 * diff:+.1f} points" + ("" if len(common) == len(theirs) else f" (seed{'s' if len(common) > 1 else ''} "
                                           f"{', '.join(map(str, common))})")


def report_markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table: accuracy mean ± std over the seeds, the gap to real-trained."""
    cfg = report["config"]
    rows = report["rows"]
    most = max((len(r["accuracies"]) for r in rows), default=0)
    lines = ["| trained on | real | synthetic | generator (variant) | epochs | accuracy (mean ± std) "
             "| vs real alone, same seeds |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        gap = gap_cell(r, rows, cfg)
        gen = f"{r['model']} ({r['variant']})" if r["model"] else "–"
        lines.append(f"| {r['kind']} | {r['real_n']:,} | {r['synthetic_n']:,} | {gen} | {r['epochs']} "
                     f"| {accuracy_cell(r, most=most)} | {gap} |")
    m = report["machine"]
    flags = ", ".join(k for k, v in (m.get("cpu_features") or {}).items() if v) or "none of AVX2/AVX-512/VNNI/BF16"
    seeds = cfg["seeds"][:most]
    head = (f"Scored on {report['eval_set']}; classifier width {cfg['width']}, batch {cfg['batch_size']}, lr {cfg['lr']:g}, "
            f"seeds {', '.join(map(str, seeds))} (mean ± std over {len(seeds)}); {m['cpu']} ({flags}), "
            f"torch {m['torch']} on {m['torch_threads']} thread(s), nice {m.get('nice', '?')}; {report['seconds'] / 60:.0f} min, "
            f"load average {m['load_average'][0]:.1f} at the end.")
    notes = []
    if report.get("filter_classifier"):
        notes.append(f"\"keep\" variants are filtered by `{report['filter_classifier']}`, a classifier trained on the "
                     "real training set: they use real labelled data, not the generator alone.")
    if not report.get("complete", True):
        notes.append("This run was stopped before it ended: these are the training runs it had finished "
                     "(a row's seeds are given where it has fewer than the others).")
    if report.get("stopped"):
        notes.append(f"This run {report['stopped']}.")
    if cfg["match_steps"] and any(r["kind"] == "real-subset" for r in rows):
        notes.append("A real subset alone is trained for as many steps as with the synthetic images added (more epochs).")
    command = [f"`{report['command']}`"] if report.get("command") else []
    return "\n\n".join([*command, head, "\n".join(lines), *notes])



def _describe(r: dict[str, Any]) -> str:
    gen = f"{r['model']}" + (f" ({r['variant']})" if r["variant"] != "plain" else "")
    if r["kind"] == "real":
        return f"{r['real_n']:,} real"
    if r["kind"] == "synthetic":
        return f"{r['synthetic_n']:,} {gen}"
    if r["kind"] == "real-subset":
        return f"{r['real_n']:,} real alone ({r['epochs']} epochs, {r['steps']} steps)"
    return f"{r['real_n']:,} real + {r['synthetic_n']:,} {gen} ({r['epochs']} epochs, {r['steps']} steps)"


def report_brief(report: dict[str, Any]) -> str:
    """The front page's short form of ``report_markdown``: what it was trained on, accuracy, the gap."""
    cfg, rows = report["config"], report["rows"]
    most = max((len(r["accuracies"]) for r in rows), default=0)
    lines = [f"| trained on | accuracy on {report['eval_set'].split(' (')[0]} (mean ± std, {most} seeds) "
             "| vs real alone, same seeds |", "|---|---|---|"]
    for r in rows:
        gap = gap_cell(r, rows, cfg)
        lines.append(f"| {_describe(r)} | {accuracy_cell(r, most=most, digits=3)} | {gap} |")
    return "\n".join(lines)


# the settings that must agree for reports to be one grid (seeds, models, variants, parts and subsets may differ)
_SAME = ("n", "epochs", "width", "batch_size", "lr", "augment_n", "match_steps", "eval", "dataset", "data_dir",
         "limit", "filter_classifier")


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Reports of one grid (other seeds, other rows, or runs stopped part way) as one report.

    Rows are matched by what they trained on; a row's seeds are its report's first ones (the grid
    runs seed-major), joined in seed order. A seed of a row in two reports must have the same
    accuracy (training is deterministic: it is the same run) and is kept once. Raises ValueError
    when the grids' settings differ or one seed of a row has two different accuracies.
    """
    from statistics import fmean, stdev

    if not reports:
        raise ValueError("nothing to merge")
    first = reports[0]["config"]
    for rep in reports[1:]:
        diff = [k for k in _SAME if rep["config"].get(k) != first.get(k)]
        if diff:
            raise ValueError(f"the reports are not one grid: they differ in {', '.join(diff)}")
    key = lambda r: (r["kind"], r["real_n"], r["synthetic_n"], r["model"], r["variant"])  # noqa: E731
    rows: dict[tuple, dict[str, Any]] = {}
    runs: dict[tuple, dict[int, tuple[float, float]]] = {}
    for rep in reports:
        for r in rep["rows"]:
            k = key(r)
            rows.setdefault(k, r)
            got = runs.setdefault(k, {})
            for seed, acc, secs in zip(rep["config"]["seeds"], r["accuracies"], r["train_seconds"], strict=False):
                if seed in got and got[seed][0] != acc:
                    raise ValueError(f"seed {seed} of row {k} has two accuracies, {got[seed][0]} and {acc}")
                got[seed] = (acc, secs)
    out_rows = []
    for k, r in rows.items():
        seeds = sorted(runs[k])
        acc = [runs[k][s][0] for s in seeds]
        out_rows.append({**r, "seeds": seeds, "accuracies": acc, "train_seconds": [runs[k][s][1] for s in seeds],
                         "mean": fmean(acc), "std": stdev(acc) if len(acc) > 1 else 0.0})
    all_seeds = sorted({s for got in runs.values() for s in got})
    merged = dict(reports[0])
    merged.update(rows=out_rows, seeds_done=all_seeds, seconds=max(rep["seconds"] for rep in reports),
                  complete=all(rep.get("complete", True) for rep in reports),
                  stopped="; ".join(rep["stopped"] for rep in reports if rep.get("stopped")) or None,
                  command=" && ".join(rep.get("command", "?") for rep in reports),
                  config={**first, "seeds": all_seeds, "models": sorted({m for rep in reports for m in rep["config"]["models"]}),
                          "variants": list(dict.fromkeys(v for rep in reports for v in rep["config"]["variants"])),
                          "parts": list(dict.fromkeys(p for rep in reports for p in rep["config"]["parts"]))})
    if any(rep.get("filter_classifier") for rep in reports):
        merged["filter_classifier"] = next(rep["filter_classifier"] for rep in reports if rep.get("filter_classifier"))
    return merged
