"""``ganrt interpolate``, ``walk`` and ``arithmetic``: latent-space pictures (``evaluate.explore``)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ganrt.cli.options import check_new_file, check_png_or_gif, device_option, load_generator
from ganrt.core.bundled import DEFAULT_MODEL
from ganrt.io.images import make_grid, save_gif, save_grid


@click.command()
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rows", type=click.IntRange(min=1), default=4, show_default=True, help="Row r walks from image 2r to image 2r+1.")
@click.option("--steps", type=click.IntRange(min=2), default=8, show_default=True)
@click.option("--label", default=None, help="Class for every row (default: row r uses class r).")
@click.option("--method", type=click.Choice(["slerp", "lerp"]), default="slerp", show_default=True)
@click.option("--truncation", type=float, default=None)
@device_option
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help=".png: a rows x steps grid; .gif: an animation.")
@click.option("--overwrite", is_flag=True)
def interpolate(model, seed, rows, steps, label, method, truncation, device, out, overwrite):
    """Walk the latent space between pairs of images: a grid PNG or an animated GIF."""
    check_png_or_gif(out, overwrite)
    gen = load_generator(model, device, None)
    gen.check_batch(rows * steps, "an interpolation grid")  # every frame is held: the grid or GIF is written whole
    walks = []
    for r in range(rows):
        row_label = label if label is not None else (r % gen.num_classes if gen.num_classes else None)
        walks.append(gen.interpolate(2 * r, 2 * r + 1, steps, seed=seed, label=row_label, method=method, truncation=truncation))
    if out.suffix.lower() == ".png":
        save_grid(out, np.concatenate(walks), nrow=steps)
    else:
        frames = [make_grid(np.stack([w[t] for w in walks]), nrow=rows) for t in range(steps)]
        save_gif(out, frames + frames[-2:0:-1])  # there and back: a seamless loop
    click.echo(f"{rows} walks of {steps} steps -> {out}")


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"needs comma-separated image indices such as 0,1,2, got {text!r}", param_hint=option) from None


@click.command()
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--keyframes", default="0,1,2,3", show_default=True,
              help="Images whose latents the walk visits (then back to the first).")
@click.option("--classes", default=None,
              help="Instead: one latent (--index) through these classes' label embeddings, e.g. 'all' or 0,7,9.")
@click.option("--index", type=click.IntRange(min=0), default=0, show_default=True,
              help="The image whose latent a --classes tour keeps.")
@click.option("--steps", type=click.IntRange(min=2), default=12, show_default=True, help="Frames per leg.")
@click.option("--label", default=None, help="Class for a latent walk of a conditional model (default 0).")
@click.option("--truncation", type=float, default=None)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help=".gif: the looping animation; .png: its frames as a grid.")
@click.option("--overwrite", is_flag=True)
def walk(model, seed, keyframes, classes, index, steps, label, truncation, out, overwrite):
    """A looping walk through latent space (or, with --classes, between label embeddings) as an animated GIF."""
    from ganrt.evaluate.explore import class_tour, latent_walk

    check_png_or_gif(out, overwrite)
    gen = load_generator(model, "cpu", None)
    if classes is not None:
        names = list(range(gen.num_classes)) if classes == "all" else [v.strip() for v in classes.split(",") if v.strip()]
        frames = list(class_tour(gen, names, steps, index=index, seed=seed, truncation=truncation))
    else:
        frames = list(latent_walk(gen, _int_list(keyframes, "--keyframes"), steps, seed=seed, label=label, truncation=truncation))
    if out.suffix.lower() == ".gif":
        save_gif(out, frames)
    else:
        save_grid(out, np.stack(frames), nrow=steps)
    click.echo(f"{len(frames)} frames -> {out}")


@click.command()
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--a", "a", required=True, help="Image indices of concept A, e.g. 0,1,2 (the paper averages three).")
@click.option("--b", "b", required=True, help="... of concept B (subtracted).")
@click.option("--c", "c", required=True, help="... of concept C (added).")
@click.option("--label", default=None, help="Class for a conditional model (default 0).")
@click.option("--variations", type=click.IntRange(min=0), default=5, show_default=True, help="Results with +-0.25 uniform noise.")
@click.option("--truncation", type=float, default=None)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="The grid (.png).")
@click.option("--overwrite", is_flag=True)
def arithmetic(model, seed, a, b, c, label, variations, truncation, out, overwrite):
    """DCGAN vector arithmetic mean(A) - mean(B) + mean(C), as a grid: each group and its mean, then the results."""
    from ganrt.evaluate.explore import arithmetic_grid

    check_new_file(out, overwrite, "--out")
    gen = load_generator(model, "cpu", None)
    grid = arithmetic_grid(gen, _int_list(a, "--a"), _int_list(b, "--b"), _int_list(c, "--c"), seed=seed, label=label,
                           variations=variations, truncation=truncation)
    save_grid(out, grid[None], nrow=1)
    click.echo(f"rows A, B, C (images | mean), then A - B + C (exact | +-noise) -> {out}")


COMMANDS = (interpolate, walk, arithmetic)
