"""``ganrt upscale``: image files, folders and globs through an upscaler into a folder of PNGs."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import click

from ganrt.cli.options import device_option, threads_option
from ganrt.core.errors import ImageError, OutputError
from ganrt.io.files import atomic_write
from ganrt.io.images import DEFAULT_MAX_PIXELS, read_image
from ganrt.kinds.registry import load

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _expand_inputs(inputs: tuple[str, ...]) -> list[Path]:
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


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", "-m", default="sr-x4", show_default=True, help="An upscaler: a bundled name or an .onnx file.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Folder for the upscaled PNGs.")
@click.option("--tile", type=click.IntRange(min=1), default=None, help="Tile side in input pixels (default 256): bounds memory.")
@click.option("--overlap", type=click.IntRange(min=0), default=None, help="Tile overlap in input pixels (default: exact tiles).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Refuse larger inputs.")
@device_option
@threads_option
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def upscale(inputs, model, out, tile, overlap, max_pixels, device, threads, overwrite, progress):
    """Upscale image files (files, folders and globs) into --out DIR as PNG."""
    up = load(model, device=device, threads=threads, kind="upscaler")
    paths = _expand_inputs(inputs)
    targets = {}
    for p in paths:  # check every input (header) and output name before writing anything
        read_image(p, max_pixels=max_pixels, load=False)
        target = out / f"{p.stem}.png"
        if target in targets.values():
            raise OutputError(f"two inputs would both write {target}; rename one of them")
        if target.exists() and not overwrite:
            raise OutputError(f"{target} exists; pass --overwrite to replace it")
        targets[p] = target
    up.check_options(tile=tile, overlap=overlap)  # bad --tile / --overlap fail before any work
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    show = sys.stderr.isatty() if progress is None else progress
    with click.progressbar(paths, label="upscaling", file=sys.stderr, hidden=not show) as bar:
        for p in bar:
            im = read_image(p, max_pixels=max_pixels)
            result = up.upscale(im, tile=tile, overlap=overlap)
            buf = io.BytesIO()
            result.save(buf, format="PNG")
            atomic_write(targets[p], buf.getvalue())
    click.echo(f"{len(paths)} images upscaled x{up.scale} by {up.name} -> {out}")


COMMANDS = (upscale,)
