"""The docs' tables of measurements match the committed results, and the docs' relative links resolve."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from benchmarks.tables import ROOT, TABLES, main

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def copy_docs(tmp_path: Path) -> Path:
    """The files ``benchmarks.tables`` reads and writes, copied under ``tmp_path`` at the same paths."""
    for rel in {t.doc for t in TABLES.values()} | {t.source for t in TABLES.values()}:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, tmp_path / rel)
    return tmp_path


def test_committed_tables_match_the_results():
    assert main(["--check"]) == 0


def test_a_number_edited_by_hand_fails_the_check(tmp_path, capsys):
    root = copy_docs(tmp_path)
    doc = root / "docs/performance.md"
    text = doc.read_text(encoding="utf-8")
    assert text.count("| 15,610.6 |") == 1  # fashion-cgan int8 at batch 64, from compare-cpu.json
    doc.write_text(text.replace("| 15,610.6 |", "| 15,910.6 |"), encoding="utf-8")

    assert main(["--check", "--root", str(root)]) == 1
    assert "+| fashion-cgan | ganrt-int8 | 64 | 15,610.6 |" in capsys.readouterr().err
    assert doc.read_text(encoding="utf-8") != text  # --check writes nothing

    assert main(["--root", str(root)]) == 0  # regenerating restores the measured number
    assert doc.read_text(encoding="utf-8") == text
    assert main(["--check", "--root", str(root)]) == 0


def test_a_remeasured_json_without_regenerating_fails_the_check(tmp_path):
    root = copy_docs(tmp_path)
    path = root / "benchmarks/results/compare-cpu.json"
    data = json.loads(path.read_text())
    data["records"][0]["images_per_s"] *= 1.5  # fashion-cgan, torch, batch 1: every x torch of that row group moves
    path.write_text(json.dumps(data))
    assert main(["--check", "--root", str(root)]) == 1
    assert main(["--root", str(root)]) == 0
    assert main(["--check", "--root", str(root)]) == 0


@pytest.mark.parametrize("damage", ["drop the end marker", "unknown table", "a table twice"])
def test_broken_markers_are_an_error(tmp_path, capsys, damage):
    root = copy_docs(tmp_path)
    doc = root / "docs/performance.md"
    text = doc.read_text(encoding="utf-8")
    block = re.search(r"<!-- tables:compare-cpu begin -->\n.*?<!-- tables:compare-cpu end -->\n", text, re.S)[0]
    if damage == "drop the end marker":
        text = text.replace("<!-- tables:compare-cpu end -->\n", "")
    elif damage == "unknown table":
        text += "\n<!-- tables:no-such-table begin -->\n<!-- tables:no-such-table end -->\n"
    else:
        text += "\n" + block
    doc.write_text(text, encoding="utf-8")
    assert main(["--check", "--root", str(root)]) == 1
    assert main(["--root", str(root)]) == 1  # nothing is written from damaged markers
    assert doc.read_text(encoding="utf-8") == text
    assert "docs/performance.md" in capsys.readouterr().err


FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE = re.compile(FENCE.pattern + r"|`[^`\n]*`", re.S | re.M)  # fenced blocks and code spans hold no links
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\[[^\]]+\]:\s*(\S+)", re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The fragments a link into ``path`` may name: its headings' slugs (a ``#`` line in a code block is no heading)."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m[1]) for m in re.finditer(r"^#{1,6}\s+(.*)$", text, re.M)}


def relative_links(path: Path) -> list[str]:
    text = CODE.sub("", path.read_text(encoding="utf-8"))
    targets = [m[1] or m[2] for m in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # http:, https:, mailto: ...


def test_docs_exist():
    assert {p.name for p in DOCS} >= {"README.md", "runtime.md", "performance.md", "reliability.md", "scale-out.md",
                                      "torch-side.md", "models.md", "evaluation.md", "layout.md"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    broken = []
    for target in relative_links(doc):
        file, _, fragment = target.partition("#")
        resolved = (doc.parent / file).resolve() if file else doc
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {resolved.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_check_sees_links():
    """The parser finds inline links, images, reference links and fragments, and skips code and URLs."""
    text = ("[a](docs/x.md) ![b](docs/y.png) [c](docs/x.md#sec) [d](https://e.org) `[e](f.md)`\n"
            "```\n[g](h.md)\n```\n[ref]: docs/z.md\n")
    assert [m[1] or m[2] for m in LINK.finditer(CODE.sub("", text))] == [
        "docs/x.md", "docs/y.png", "docs/x.md#sec", "https://e.org", "docs/z.md"]
    assert slug("Memory and time of a large photo") == "memory-and-time-of-a-large-photo"
    assert slug("`ganrt generate` end to end") == "ganrt-generate-end-to-end"
