"""Score the ablation runs (runs/ablation/VARIANT-sSEED/model.onnx) with `ganrt eval` and print a Markdown table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

VARIANTS = {
    "baseline": "the plain recipe",
    "sphere": "`--prior sphere`",
    "vbn": "`--vbn`",
    "k2": "`--k 2`",
    "gleaky": "`--g-leaky`",
    "jointd": "`--joint-d`",
}
N = 5000


def score(model: Path) -> dict:
    cache = model.with_suffix(f".eval{N}.json")
    if not cache.exists():
        out = subprocess.run([str(Path(sys.executable).parent / "ganrt"), "eval", str(model), "-n", str(N), "--json",
                              "--threads", "1", "--no-progress"], capture_output=True, text=True, check=True)
        cache.write_text(out.stdout)
    return json.loads(cache.read_text())


def main(root: str = "runs/ablation") -> None:
    rows = ["| variant | flag | seeds | FD (lower) | label accuracy | IS | precision | recall |",
            "|---|---|---|---|---|---|---|---|"]
    real = None
    for v, flag in VARIANTS.items():
        reports = [score(p) for p in sorted(Path(root).glob(f"{v}-s*/model.onnx"))]
        if not reports:
            continue
        real = reports[0]["real"]
        g = [r["generated"] for r in reports]

        def cell(key: str, fmt: str) -> str:
            vals = [x[key] for x in g]
            return " / ".join(format(x, fmt) for x in vals) + (
                f" (mean {format(sum(vals) / len(vals), fmt)})" if len(vals) > 1 else "")

        rows.append(f"| {v} | {flag} | {len(g)} | {cell('frechet_distance', '.2f')} | {cell('label_accuracy', '.3f')} | "
                    f"{cell('inception_score', '.2f')} | {cell('precision', '.3f')} | {cell('recall', '.3f')} |")
    if real:
        rows.append(f"| real held-out | | | {real['frechet_distance']:.2f} | {real['label_accuracy']:.3f} | "
                    f"{real['inception_score']:.2f} | {real['precision']:.3f} | {real['recall']:.3f} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main(*sys.argv[1:])
