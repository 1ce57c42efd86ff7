"""The docs' tables of measurements, generated from the committed results in ``benchmarks/results/``.

    python -m benchmarks.tables           # rewrite every generated table in README.md and docs/*.md
    python -m benchmarks.tables --check   # change nothing; exit 1 if a table differs from its source

A generated table sits between two marker comments, each a line of its own, in a markdown file::

    <!-- tables:compare-cpu begin -->
    ...
    <!-- tables:compare-cpu end -->

and everything between them is replaced by what ``TABLES[name]`` renders from its source file. So a
number is changed by re-measuring (the benchmark writes the JSON) and rerunning this script, never by
editing the doc: ``--check`` (run by ``tests/test_tables.py``) fails on a hand edit and on a JSON
re-measured without regenerating. Tables with no committed JSON behind them stay hand-written in the
docs, each beside the command that produced it.

The benchmark tables are formatted by ``ganrt.tools.bench.markdown_table``, the formatter
``ganrt bench`` and ``benchmarks.compare`` print with, so a table here reads like the
``results/*.md`` file written beside the same JSON.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganrt.tools.bench import Record, markdown_table
from ganrt_export.cas_table import report_brief, report_markdown

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- tables:(?P<name>[\w.-]+) (?P<kind>begin|end) -->$", re.MULTILINE)  # a line of its own


@dataclass(frozen=True)
class Table:
    """One generated block: where it goes, what it is made from, how."""

    doc: str  # markdown file, relative to the repository root
    source: str  # relative to the repository root
    render: Callable[[Any], str]  # the parsed JSON (or the text of a .md source) -> markdown


def records(data: dict[str, Any]) -> list[Record]:
    return [Record(**r) for r in data["records"]]


def caption(info: dict[str, Any]) -> str:
    """The machine line that ``benchmarks.compare`` writes above its table, plus the GEMM ceiling."""
    return (f"{info['cpu']}, {info['cores']} cores, {info['threads']} threads, device {info['device']}; "
            f"onnxruntime {info['onnxruntime']}, torch {info['torch']}; {info['date']}; "
            f"fp32 MatMul {info['gemm_gflops']:.0f} GFLOP/s")


def compare_table(data: dict[str, Any]) -> str:
    """``benchmarks.compare --json``: every record, with speed-ups over torch eager."""
    return f"{caption(data['machine'])}\n\n{markdown_table(records(data), baseline='torch')}"


def per_thread_tables(data: dict[str, Any]) -> str:
    """``benchmarks.int8 --json``: one table per thread count, as ``benchmarks.int8`` prints them."""
    rs = records(data)
    parts = []
    for threads in sorted({r.threads for r in rs}):
        parts.append(f"**{threads} thread{'s' if threads > 1 else ''}**\n\n"
                     + markdown_table([r for r in rs if r.threads == threads], baseline="torch"))
    info = data["machine"]
    head = (f"{info['cpu']}, {info['cores']} cores; onnxruntime {info['onnxruntime']}, torch {info['torch']}; "
            f"{info['date']}")
    gates = [f"- quality gate: `{q}`" for q in info.get("quality", {}).values()]
    return "\n\n".join([head, *parts, "\n".join(gates)] if gates else [head, *parts])


# The headline rows: batch 1 and the largest batch where a model is most often run (64 for the small
# generators, 8 for sr-x4, whose batch 8 is 8 whole 256x256 images).
HEADLINE = (("fashion-cgan", 1), ("fashion-cgan", 64), ("dcgan-64", 64), ("sr-x4", 1), ("sr-x4", 8))
HEADLINE_BACKENDS = (("ganrt", "ganrt fp32"), ("ganrt-stream", "ganrt fp32, streaming"), ("ganrt-int8", "ganrt int8"))


def rate(images_per_s: float) -> str:
    """Images/s to 3 or more significant digits: 15,611, 965, 11.9."""
    return f"{images_per_s:,.0f}" if images_per_s >= 100 else f"{images_per_s:.1f}"


def headline_table(data: dict[str, Any]) -> str:
    """The front page's few rows of ``compare-cpu.json``: images/s and the speed-up over torch eager."""
    by_key = {(r.model, r.batch_size, r.backend): r for r in records(data)}
    head = ["model", "batch", "torch eager", *(label for _, label in HEADLINE_BACKENDS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, batch in HEADLINE:
        torch = by_key[(model, batch, "torch")]
        row = [model + (f" ({torch.note})" if torch.note else ""), str(batch), rate(torch.images_per_s)]
        for backend, _ in HEADLINE_BACKENDS:
            r = by_key.get((model, batch, backend))
            row.append("–" if r is None else f"{rate(r.images_per_s)} ({r.images_per_s / torch.images_per_s:.2f}×)")
        lines.append("| " + " | ".join(row) + " |")
    return f"images/s (× torch eager); {caption(data['machine'])}\n\n" + "\n".join(lines)


PEER_BACKENDS = (("ort-naive", "onnxruntime by hand"), ("ganrt", "ganrt fp32"), ("ganrt-stream", "ganrt streaming"),
                 ("ganrt-int8", "ganrt int8"), ("torch-compile", "torch.compile"), ("openvino-latency", "OpenVINO latency"),
                 ("openvino-throughput", "OpenVINO throughput"), ("openvino-latency-bf16", "OpenVINO latency, bf16"))


def peers_table(data: dict[str, Any]) -> str:
    """A ``compare --int8 --compile --openvino`` run: every model and batch size measured, images/s of each
    backend and, in brackets, its ratio to ganrt fp32 (below 1: slower than ganrt); labelled by the CPU's flags.
    A backend the run has no record of gets no column."""
    rs = records(data)
    by_key = {(r.model, r.batch_size, r.backend): r for r in rs}
    ran = {r.backend for r in rs}
    backends = [(b, label) for b, label in PEER_BACKENDS if b in ran]
    head = ["model", "batch", "torch eager", *(label for _, label in backends)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, batch in dict.fromkeys((r.model, r.batch_size) for r in rs):
        ours = by_key.get((model, batch, "ganrt"))
        row = [model, str(batch), rate(by_key[(model, batch, "torch")].images_per_s)]
        for backend, _ in backends:
            r = by_key.get((model, batch, backend))
            row.append("–" if r is None else rate(r.images_per_s) if backend == "ganrt" or ours is None
                       else f"{rate(r.images_per_s)} ({r.images_per_s / ours.images_per_s:.2f}×)")
        lines.append("| " + " | ".join(row) + " |")
    info = data["machine"]
    flags = info.get("cpu_flags") or "unknown"
    peers = f", OpenVINO {info['openvino']}" if "openvino" in info else ""
    return (f"images/s (× ganrt fp32); CPU flags: {flags}{peers}; {caption(info)}\n\n" + "\n".join(lines))


def end_to_end_table(data: dict[str, Any]) -> str:
    """``benchmarks.end_to_end --json``: ``ganrt generate``'s work against pure sampling; peak RSS of long runs."""
    runs = [(data["date"], data["command"], data["throughput"])]
    if "second_run" in data:
        second = data["second_run"]
        runs.append((second["date"], second["command"], second))
    lines = ["| run | sampling images/s | PNG images/s | PNG / sampling | npz images/s | npz / sampling "
             "| file creation µs before / after |",
             "|---|---|---|---|---|---|---|"]
    for date, command, t in runs:
        lines.append(f"| {date}: `{command}` | {t['sample_images_per_s']:,.0f} | {t['png_images_per_s']:,.0f} "
                     f"| {100 * t['png_vs_sample']:.0f}% | {t['npz_images_per_s']:,.0f} | {100 * t['npz_vs_sample']:.0f}% "
                     f"| {t['create_us_before']:.0f} / {t['create_us_after']:.0f} |")
    rss = ["| `ganrt generate -n` | format | batch | peak RSS MB | seconds | images/s |", "|---|---|---|---|---|---|"]
    rss += [f"| {r['n']:,} | {r['format']} | {r['batch_size']} | {r['peak_rss_mb']:.1f} | {r['seconds']:.1f} "
            f"| {r['images_per_s']:,.0f} |" for r in data["rss"]]
    rss_run = data.get("rss_run", {})
    imp = data["import"]
    return "\n".join([
        f"{data['model']}, n = {data['n']:,}; {data['machine']}", "", *lines, "",
        f"Peak RSS ({rss_run.get('date', data['date'])}: `{rss_run.get('command', data['command'])}`):", "", *rss, "",
        f"`import ganrt`: median {imp['median_s']:.3f} s, minimum {imp['min_s']:.3f} s over {imp['runs']} fresh processes.",
    ])


def verbatim(text: str) -> str:
    """A table another command writes as markdown (``ganrt-export adversarial --table``), copied as it is."""
    return text.strip("\n")


TABLES: dict[str, Table] = {
    "headline": Table("README.md", "benchmarks/results/compare-cpu.json", headline_table),
    "compare-cpu": Table("docs/performance.md", "benchmarks/results/compare-cpu.json", compare_table),
    "headline-avx2": Table("README.md", "benchmarks/results/compare-cpu-avx2.json", peers_table),
    "compare-cpu-avx2": Table("docs/performance.md", "benchmarks/results/compare-cpu-avx2.json", compare_table),
    "compare-cpu-amx": Table("docs/performance.md", "benchmarks/results/compare-cpu-amx.json", peers_table),
    "compare-cpu-zen4": Table("docs/performance.md", "benchmarks/results/compare-cpu-zen4.json", peers_table),
    "compare-cpu-1thread": Table("docs/performance.md", "benchmarks/results/compare-cpu-1thread.json", compare_table),
    "int8-rewrites-cpu": Table("docs/performance.md", "benchmarks/results/int8-rewrites-cpu.json", per_thread_tables),
    "end-to-end-cpu": Table("docs/performance.md", "benchmarks/results/end-to-end-cpu.json", end_to_end_table),
    "adversarial": Table("docs/evaluation.md", "docs/adversarial.md", verbatim),
    "cas-fashion": Table("docs/evaluation.md", "benchmarks/results/cas-fashion.json", report_markdown),
    "cas-augment": Table("docs/evaluation.md", "benchmarks/results/cas-augment.json", report_markdown),
    "cas-fashion-60k": Table("docs/evaluation.md", "benchmarks/results/cas-fashion-60k.json", report_markdown),
    "cas-fashion-60k-previous": Table("docs/evaluation.md", "benchmarks/results/cas-fashion-60k-previous.json",
                                      report_markdown),
    "cas-val-60k": Table("docs/evaluation.md", "benchmarks/results/cas-val-60k.json", report_markdown),
    "cas-readme": Table("README.md", "benchmarks/results/cas-fashion-60k.json", report_brief),
}


class TablesError(Exception):
    """A doc's markers are missing, unbalanced or name no known table."""


def render(name: str, root: Path) -> str:
    table = TABLES[name]
    text = (root / table.source).read_text(encoding="utf-8")
    return table.render(json.loads(text) if table.source.endswith(".json") else text)


def fill(doc: str, text: str, tables: dict[str, str]) -> str:
    """``text`` with the block of each name in ``tables`` replaced by its rendering.

    Every name must have exactly one begin and one end marker, in that order; any other marker is an error.
    """
    out, pos, seen = [], 0, set()
    markers = list(MARKER.finditer(text))
    for begin, end in zip(markers[::2], markers[1::2], strict=False):
        name = begin["name"]
        if begin["kind"] != "begin" or end["kind"] != "end" or end["name"] != name:
            raise TablesError(f"{doc}: marker {begin[0]!r} is not followed by <!-- tables:{name} end -->")
        if name not in tables:
            raise TablesError(f"{doc}: {begin[0]!r} names no table of {doc} (known: {', '.join(sorted(tables))})")
        if name in seen:
            raise TablesError(f"{doc}: table {name!r} appears twice")
        seen.add(name)
        out += [text[pos:begin.end()], "\n", tables[name], "\n"]
        pos = end.start()
    if len(markers) % 2:
        raise TablesError(f"{doc}: marker {markers[-1][0]!r} has no partner")
    if missing := sorted(set(tables) - seen):
        raise TablesError(f"{doc}: no block for {', '.join(missing)} "
                          f"(add <!-- tables:{missing[0]} begin --> and <!-- tables:{missing[0]} end -->)")
    return "".join(out) + text[pos:]


def generated(root: Path) -> dict[str, tuple[str, str]]:
    """{doc: (its text now, its text with every table regenerated)}."""
    docs: dict[str, dict[str, str]] = {}
    for name, table in TABLES.items():
        docs.setdefault(table.doc, {})[name] = render(name, root)
    result = {}
    for doc, tables in docs.items():
        now = (root / doc).read_text(encoding="utf-8")
        result[doc] = (now, fill(doc, now, tables))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tables", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a doc's tables differ from the results")
    p.add_argument("--root", type=Path, default=ROOT, help="the repository root (default: this checkout)")
    a = p.parse_args(argv)
    try:
        docs = generated(a.root)
    except (TablesError, OSError, KeyError, ValueError) as e:
        print(f"benchmarks.tables: {e}", file=sys.stderr)
        return 1
    stale = [doc for doc, (now, new) in docs.items() if now != new]
    if a.check:
        for doc in stale:
            now, new = docs[doc]
            sys.stderr.writelines(difflib.unified_diff(now.splitlines(True), new.splitlines(True), f"{doc} (now)",
                                                       f"{doc} (from the results)"))
        if stale:
            print(f"benchmarks.tables: {', '.join(stale)} differ from the results; run python -m benchmarks.tables",
                  file=sys.stderr)
            return 1
        return 0
    for doc in stale:
        (a.root / doc).write_text(docs[doc][1], encoding="utf-8")
        print(f"rewrote the tables of {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
