"""``ganrt translate``: image files, folders and globs through a translator (pix2pix, CycleGAN) into a folder of PNGs."""

from __future__ import annotations

import sys

import click
import numpy as np

from ganrt.cli.options import expand_inputs, image_folder_options, image_targets, make_folder
from ganrt.core.model import file_sha256
from ganrt.io.files import atomic_write
from ganrt.io.images import pil_bytes, read_image
from ganrt.kinds.registry import load
from ganrt.runs.format import sha256_hex
from ganrt.runs.replay import translation_text


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", "-m", required=True, help="A translator: a bundled name or an .onnx file.")
@image_folder_options(verb="translated", tile_help="Tile side in input pixels (default: the whole image at once); exact, "
                                                  "refused for models that see the whole image.")
def translate(inputs, model, out, tile, overlap, max_pixels, device, threads, overwrite, progress):
    """Translate image files (files, folders and globs) into --out DIR as PNG; says how each size was fitted."""
    tr = load(model, device=device, threads=threads, kind="translator")
    paths = expand_inputs(inputs)
    targets = image_targets(paths, out, overwrite=overwrite, max_pixels=max_pixels)
    tr.check_options(tile=tile, overlap=overlap)  # bad --tile / --overlap, or a tile it cannot take, fail before any work
    make_folder(out)
    show = sys.stderr.isatty() if progress is None else progress
    fitted = []
    with click.progressbar(paths, label="translating", file=sys.stderr, hidden=not show) as bar:
        for p in bar:
            im = read_image(p, max_pixels=max_pixels)
            fit = tr.fit(im.height, im.width)
            result = tr.translate(im, tile=tile, overlap=overlap)
            # provenance for `ganrt replay OUT.png --source IN`: the source file's hash, the translator, the tiles
            text = translation_text(tr, file_sha256(p), sha256_hex(np.asarray(result)), tile=tile, overlap=overlap)
            atomic_write(targets[p], pil_bytes(result, text=text))
            if fit.how != "none":
                fitted.append(f"{p.name}: {fit.describe()}")
    for line in fitted:
        click.echo(line)
    how = f"in tiles of {tile}" if tile else "whole"
    click.echo(f"{len(paths)} images translated ({how}) by {tr.name} -> {out}")


COMMANDS = (translate,)
