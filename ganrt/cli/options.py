"""What the command modules share: the --device / --threads options, loading a generator, label and output checks,
input images (files, folders, globs) and the PNG each one becomes."""

from __future__ import annotations

from pathlib import Path

import click

from ganrt.core.errors import ImageError, OutputError
from ganrt.core.run import set_default_timeout
from ganrt.core.session import DEVICES, MAX_THREADS
from ganrt.io.images import DEFAULT_MAX_PIXELS, read_image
from ganrt.kinds.generator import Generator, LabelCycle
from ganrt.kinds.registry import load

GRID_MAX = 256  # --grid shows at most the first 256 images (16 x 16)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

device_option = click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
                              help="cuda never falls back to the CPU silently; auto picks CUDA when it works.")
threads_option = click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=None,
                              help="onnxruntime threads (default: one per core).")
timeout_option = click.option("--timeout", type=click.FloatRange(min=0, min_open=True, max=1e8), default=None,
                              expose_value=False, callback=lambda ctx, param, value: set_default_timeout(value),
                              help="Stop an onnxruntime call that runs longer than this many seconds (a model that "
                                   "never ends); Ctrl-C stops one at once.")


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
        return LabelCycle(tuple(gen.label_index(v) for v in values))  # repeats over the n images, made per batch
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


def expand_inputs(inputs: tuple[str, ...]) -> list[Path]:
    """Files as given, image files inside folders (sorted, not recursive), and glob patterns."""
    import glob

    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
        elif not p.exists() and any(ch in item for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item))
            if not matches:
                raise ImageError(f"{item} matches no file")
            paths += [m for m in matches if m.is_file()]
        else:
            paths.append(p)
    if not paths:
        raise ImageError("no input images found")
    return paths


def image_targets(paths: list[Path], out: Path, *, overwrite: bool, max_pixels: int) -> dict[Path, Path]:
    """input -> out/STEM.png, after checking every input's header and every output name (before anything is written)."""
    targets: dict[Path, Path] = {}
    for p in paths:
        read_image(p, max_pixels=max_pixels, load=False)
        target = out / f"{p.stem}.png"
        if target in targets.values():
            raise OutputError(f"two inputs would both write {target}; rename one of them")
        if target.exists() and not overwrite:
            raise OutputError(f"{target} exists; pass --overwrite to replace it")
        targets[p] = target
    return targets


def make_folder(out: Path) -> None:
    """Create the --out folder (and its parents); an existing file there is an OutputError."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create --out {out}: {exc.strerror or exc}") from None


def image_folder_options(*, verb: str, tile_help: str):
    """The options of a command that turns image files into a folder of PNGs (``upscale``, ``translate``):
    --out, --tile, --overlap, --max-pixels, --device, --threads, --overwrite, --progress."""
    options = [
        click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
                     help=f"Folder for the {verb} PNGs."),
        click.option("--tile", type=click.IntRange(min=1), default=None, help=tile_help),
        click.option("--overlap", type=click.IntRange(min=0), default=None,
                     help="Tile overlap in input pixels (default: exact tiles)."),
        click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
                     help="Refuse larger inputs."),
        device_option,
        threads_option,
        timeout_option,
        click.option("--overwrite", is_flag=True, help="Replace existing output files."),
        click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."),
    ]

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate

