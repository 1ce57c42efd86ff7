"""``ganrt upscale``: image files, folders and globs through an upscaler into a folder of PNGs."""

from __future__ import annotations

import sys
import threading

import click

from ganrt.cli.options import expand_inputs, image_folder_options, image_targets, make_folder
from ganrt.io.files import atomic_write
from ganrt.io.images import pil_bytes, read_image
from ganrt.kinds.registry import load


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", "-m", default="sr-x4", show_default=True, help="An upscaler: a bundled name or an .onnx file.")
@image_folder_options(verb="upscaled", tile_help="Tile side in input pixels (default: from --memory-budget).")
@click.option("--memory-budget", type=int, default=None, metavar="MB",
              help="Working memory for the tiles in flight, in MB (default 1024): the fewest tiles that fit.")
def upscale(inputs, model, memory_budget, out, tile, overlap, max_pixels, device, threads, overwrite, progress):
    """Upscale image files (files, folders and globs) into --out DIR as PNG."""
    up = load(model, device=device, threads=threads, kind="upscaler")
    paths = expand_inputs(inputs)
    targets = image_targets(paths, out, overwrite=overwrite, max_pixels=max_pixels)
    up.check_options(tile=tile, overlap=overlap, memory_budget=memory_budget)  # bad options fail before any work
    make_folder(out)
    show = sys.stderr.isatty() if progress is None else progress
    # the bar counts tiles, not files: one large photo is many tiles (the headers say each image's size)
    total = sum(up.tiles_for(*read_image(p, max_pixels=max_pixels, load=False).size[::-1], tile=tile, overlap=overlap,
                             memory_budget=memory_budget) for p in paths)
    lock = threading.Lock()  # tiles finish on the lane threads
    with click.progressbar(length=total, label=f"upscaling {len(paths)} images: {total} tiles", file=sys.stderr,
                           hidden=not show) as bar:
        def on_tile(k: int) -> None:
            with lock:
                bar.update(k)

        for p in paths:
            im = read_image(p, max_pixels=max_pixels)
            result = up.upscale(im, tile=tile, overlap=overlap, memory_budget=memory_budget, on_tile=on_tile)
            atomic_write(targets[p], pil_bytes(result))
    click.echo(f"{len(paths)} images upscaled x{up.scale} by {up.name} -> {out}")


COMMANDS = (upscale,)
