"""What the command modules share: the --device / --threads options, loading a generator, label and output checks."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ganrt.core.errors import OutputError
from ganrt.core.session import DEVICES
from ganrt.kinds.generator import Generator
from ganrt.kinds.registry import load

GRID_MAX = 256  # --grid shows at most the first 256 images (16 x 16)

device_option = click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
                              help="cuda never falls back to the CPU silently; auto picks CUDA when it works.")
threads_option = click.option("--threads", type=click.IntRange(min=1), default=None,
                              help="onnxruntime threads (default: one per core).")


def load_generator(model: str, device: str, threads: int | None, *, spin: bool = True) -> Generator:
    return load(model, device=device, threads=threads, kind="generator", spin=spin)


def labels_arg(gen: Generator, label: str | None, labels: str | None, n: int):
    if label is not None and labels is not None:
        raise click.UsageError("give --label or --labels, not both")
    if label is not None:
        return label
    if labels is not None:
        values = [v.strip() for v in labels.split(",") if v.strip()]
        if not values:
            raise click.UsageError("--labels needs a comma-separated list such as 0,3,Sneaker")
        classes = np.array([gen.label_index(v) for v in values], dtype=np.int64)
        return np.resize(classes, n)  # the list repeats over the n images
    return None


def check_new_file(path: Path, overwrite: bool, option: str) -> None:
    if path.exists() and not overwrite:
        raise OutputError(f"{option} {path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise OutputError(f"{option} {path}: folder {path.parent} does not exist")


def check_png_or_gif(out: Path, overwrite: bool) -> None:
    if out.suffix.lower() not in (".png", ".gif"):
        raise OutputError(f"--out {out} must end in .png or .gif")
    check_new_file(out, overwrite, "--out")


