"""``ganrt generate`` (a run folder, a grid, on Ray) and ``ganrt replay`` (regenerate and compare bit for bit)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from ganrt.cli.options import (
    GRID_MAX,
    check_new_file,
    device_option,
    labels_arg,
    load_generator,
    threads_option,
    timeout_option,
)
from ganrt.core.bundled import DEFAULT_MODEL
from ganrt.core.errors import OutputError
from ganrt.core.text import printable
from ganrt.io.captions import captioned
from ganrt.io.images import save_grid
from ganrt.kinds.registry import load
from ganrt.runs.format import model_classes
from ganrt.runs.formats import FORMAT_CHOICES, LAYOUTS, format_for
from ganrt.runs.writer import DEFAULT_SHARD_SIZE, SWITCH_INTERVAL_S, generate_run


@click.command()
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True, help="A bundled model name or an .onnx file.")
@click.option("-n", "n", type=int, default=64, show_default=True, help="Number of images.")
@click.option("--seed", type=int, default=0, show_default=True, help="Image i depends only on (seed, i, label, truncation).")
@click.option("--start", type=click.IntRange(min=0), default=0, help="First image index (split a run across machines).")
@click.option("--label", default=None, help="One class (index or name) for every image.")
@click.option("--labels", default=None,
              help="Comma-separated classes, repeated over the images (default: cycle all classes). The Python API "
                   "repeats nothing: its labels= list has one label per image, a shorter one is an error.")
@click.option("--truncation", type=float, default=None, help="Truncation trick: resample latent components beyond +-T.")
@click.option("--batch-size", type=int, default=None, help="Images per onnxruntime call (default 64).")
@device_option
@threads_option
@timeout_option
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder for 000000.png, ... (or shards).")
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="png", show_default=True,
              help="png: a PNG per image; npz, webdataset (.tar), parquet (Hugging Face datasets; extra 'parquet'): shards.")
@click.option("--layout", type=click.Choice(list(LAYOUTS)), default="flat", show_default=True,
              help="PNG files: flat (OUT/000123.png) or imagefolder (OUT/<class name>/000123.png, as torchvision's "
                   "ImageFolder and the Hugging Face imagefolder builder read).")
@click.option("--shard-size", type=click.IntRange(min=1), default=DEFAULT_SHARD_SIZE, show_default=True,
              help="Images per npz, webdataset or parquet shard.")
@click.option("--grid", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help=f"Also write a grid of the first {GRID_MAX} images (.png/.jpg).")
@click.option("--grid-labels", is_flag=True,
              help="Write each grid image's class name under it (Pillow's built-in bitmap font).")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier run in --out (its files are removed first) and an existing --grid.")
@click.option("--upscale", "upscale_model", default=None, help="Then upscale every image with this upscaler (e.g. sr-x4).")
@click.option("--resume", is_flag=True,
              help="Continue the interrupted run in --out (same arguments): checks its manifest and model, "
                   "makes only the missing images.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              help="Shard the run over a Ray cluster (extra 'ray'): HOST:PORT, or no value for the local instance. Same files.")
@click.option("--ray-workers", type=click.IntRange(min=1), default=None,
              help="With --ray: actors (default: one per CPU; per GPU with --device cuda).")
def generate(model, n, seed, start, label, labels, truncation, batch_size, device, threads, out, fmt, layout, shard_size, grid,
             grid_labels, overwrite, upscale_model, resume, progress, ray_address, ray_workers):
    """Generate N images with a generator model (with manifest.jsonl: provenance of every image)."""
    if out is None and grid is None:
        raise click.UsageError("nothing to write: give --out DIR and/or --grid FILE")
    if resume and (overwrite or out is None):
        raise click.UsageError("--resume continues the run in --out DIR; it goes without --overwrite")
    if ray_address is not None and out is None:
        raise click.UsageError("--ray writes a run: give --out DIR")
    fmt = format_for(fmt, layout)
    if grid_labels and grid is None:
        raise click.UsageError("--grid-labels labels the grid: give --grid FILE")
    here = device if ray_address is None else "cpu"  # with --ray the workers run on --device; here only checks and the grid
    # no busy-waiting onnxruntime threads: the PNG writers need the cores between calls (benchmarks/NOTES.md)
    gen = load_generator(model, here, threads, spin=False)
    upscaler = load(upscale_model, device=here, threads=threads, kind="upscaler", spin=False) if upscale_model else None
    label_spec = labels_arg(gen, label, labels, n) if n > 0 else None
    gen.iter_batches(n, seed=seed, labels=label_spec, truncation=truncation, batch_size=batch_size, start=start)  # checks only
    if grid is not None:
        if out is not None and grid.resolve().is_relative_to(out.resolve()):  # it would replace or mix with the run's files
            raise OutputError(f"--grid {grid} lies inside --out {out}: write the grid outside the run folder")
        check_new_file(grid, overwrite or resume, "--grid")
    names = model_classes(gen)
    if grid_labels and names is None:
        raise click.UsageError(f"--grid-labels: {gen.name} is unconditional, its images have no class to show")
    note = ""
    if out is not None:
        show = sys.stderr.isatty() if progress is None else progress
        run_args = dict(n=n, seed=seed, labels=label_spec, truncation=truncation, batch_size=batch_size, start=start, fmt=fmt,
                        shard_size=shard_size, overwrite=overwrite, resume=resume, upscaler=upscaler)
        with click.progressbar(length=n, label="generating", file=sys.stderr, hidden=not show) as bar:
            if ray_address is None:
                # this process is the CLI's own: a short GIL switch interval keeps lanes and writers busy (NOTES)
                result = generate_run(gen, out, **run_args, on_batch=bar.update, switch_interval=SWITCH_INTERVAL_S)
            else:
                from ganrt.runs.cluster import ClusterConfig, generate_on_ray

                config = ClusterConfig(address=ray_address or None, workers=ray_workers, device=device, threads=threads)
                result = generate_on_ray(gen, out, **run_args, cluster=config, on_progress=lambda p: bar.update(p.done - bar.pos))
        if resume:
            note = f" (resumed: {result.reused} checked and kept, {result.generated} made)"
    if grid is not None:
        k = min(n, GRID_MAX)
        head = label_spec[:k] if isinstance(label_spec, np.ndarray) else label_spec
        shown = gen.sample(k, seed=seed, labels=head, truncation=truncation, batch_size=batch_size, start=start)
        if upscaler is not None:
            shown = upscaler.upscale_many(shown)
        if grid_labels:
            shown = captioned(shown, [names[y] for y in gen.resolve_labels(head, np.arange(start, start + k))])
        save_grid(grid, shown)
    where = [str(p) for p in (out, grid) if p is not None]
    click.echo(f"{n} images from {gen.name} (seed {seed}) -> {', '.join(where)}{note}")


@click.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--index", "indices", type=click.IntRange(min=0), multiple=True,
              help="Replay only image I (repeatable; default: all).")
@click.option("--model", "-m", default=None, help="The run's model file, if not where the manifest says (its sha256 must match); "
              "a lone PNG names only a bundled model.")
@click.option("--upscaler", default=None, help="The run's upscaler (--upscale), likewise.")
@click.option("--source", type=click.Path(dir_okay=False), default=None,
              help="For a PNG made by `ganrt translate`: the image it was translated from (its sha256 must match).")
@click.option("--device", type=click.Choice(("cpu", "cuda", "tensorrt")), default=None,
              help="Default: the kind of device the run was made on.")
@threads_option
@timeout_option
def replay(manifest, indices, model, upscaler, source, device, threads):
    """Regenerate a run's images from MANIFEST (or its folder, or one PNG's text chunks) and check them bit for bit."""
    from ganrt.runs.replay import replay as replay_run

    report = replay_run(manifest, indices=list(indices) or None, model=model, upscaler=upscaler, device=device, threads=threads,
                        source=source)
    click.echo(f"{report.manifest}: model {printable(report.model)} (sha256 {report.model_sha256[:12]}...), made on "
               f"{report.recorded_provider}, replayed on {report.provider}")
    shown = 0
    for im in report.images:
        if indices or not im.ok:
            if shown < 20 or indices:
                click.echo(f"  {im.index:>8}  {printable(im.file)}  {'reproduced' if im.reproduced else 'NOT reproduced'}  "
                           f"file: {im.on_disk}")
            shown += 1
    good = sum(im.reproduced for im in report.images)
    match = sum(im.on_disk == "match" for im in report.images)
    total = len(report.images)
    click.echo(f"{total} images: {good} reproduced bit-exactly, {match} files on disk match")
    for problem in report.problems:  # the run itself is damaged: replay is a verification (exit 1)
        click.echo(f"problem: {printable(problem)}")
    if not report.ok:
        if report.provider != report.recorded_provider:
            click.echo(f"note: bit-exact replay is promised on the device kind the run was made on ({report.recorded_provider})",
                       err=True)
        sys.exit(1)


COMMANDS = (generate, replay)
