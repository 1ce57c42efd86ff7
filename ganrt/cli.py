"""``ganrt``: the command line, a thin layer over the library API.

Every user error is a ``GanrtError`` raised by the library; ``main`` prints it as one line and
exits non-zero. Arguments are all checked before the first image is made or file written.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import click
import numpy as np

from . import DEFAULT_MODEL, __version__, available_models, load
from .errors import GanrtError, ImageError, OutputError
from .generator import Generator
from .images import DEFAULT_MAX_PIXELS, atomic_write, make_grid, read_image, save_gif, save_grid
from .session import DEVICES
from .writer import DEFAULT_SHARD_SIZE, FORMATS, generate_run

GRID_MAX = 256  # --grid shows at most the first 256 images (16 x 16)

_device_option = click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
                              help="cuda never falls back to the CPU silently; auto picks CUDA when it works.")
_threads_option = click.option("--threads", type=click.IntRange(min=1), default=None, help="onnxruntime threads (default: one per core).")


def _load_generator(model: str, device: str, threads: int | None, *, spin: bool = True) -> Generator:
    return load(model, device=device, threads=threads, kind="generator", spin=spin)


def _labels_arg(gen: Generator, label: str | None, labels: str | None, n: int):
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


def _check_new_file(path: Path, overwrite: bool, option: str) -> None:
    if path.exists() and not overwrite:
        raise OutputError(f"{option} {path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise OutputError(f"{option} {path}: folder {path.parent} does not exist")


def _check_png_or_gif(out: Path, overwrite: bool) -> None:
    if out.suffix.lower() not in (".png", ".gif"):
        raise OutputError(f"--out {out} must end in .png or .gif")
    _check_new_file(out, overwrite, "--out")


@click.group()
@click.version_option(__version__, prog_name="ganrt")
def cli() -> None:
    """Sample GAN generators exported to ONNX: fast, reproducible, torch-free."""


@cli.command()
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True, help="A bundled model name or an .onnx file.")
@click.option("-n", "n", type=int, default=64, show_default=True, help="Number of images.")
@click.option("--seed", type=int, default=0, show_default=True, help="Image i depends only on (seed, i, label, truncation).")
@click.option("--start", type=click.IntRange(min=0), default=0, help="First image index (split a run across machines).")
@click.option("--label", default=None, help="One class (index or name) for every image.")
@click.option("--labels", default=None, help="Comma-separated classes, repeated over the images (default: cycle all classes).")
@click.option("--truncation", type=float, default=None, help="Truncation trick: resample latent components beyond +-T.")
@click.option("--batch-size", type=int, default=None, help="Images per onnxruntime call (default 64).")
@_device_option
@_threads_option
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder for 000000.png, ... (or npz shards).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="png", show_default=True)
@click.option("--shard-size", type=click.IntRange(min=1), default=DEFAULT_SHARD_SIZE, show_default=True, help="Images per npz shard.")
@click.option("--grid", type=click.Path(path_type=Path, dir_okay=False), default=None, help=f"Also write a grid of the first {GRID_MAX} images (.png/.jpg).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier run in --out (its files are removed first) and an existing --grid.")
@click.option("--upscale", "upscale_model", default=None, help="Then upscale every image with this upscaler (e.g. sr-x4).")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out (same arguments): checks its manifest and model, makes only the missing images.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              help="Shard the run over a Ray cluster (extra 'ray'): HOST:PORT, or no value for the local instance. Same files.")
@click.option("--ray-workers", type=click.IntRange(min=1), default=None, help="With --ray: actors (default: one per CPU; per GPU with --device cuda).")
def generate(model, n, seed, start, label, labels, truncation, batch_size, device, threads, out, fmt, shard_size, grid,
             overwrite, upscale_model, resume, progress, ray_address, ray_workers):
    """Generate N images with a generator model (with manifest.jsonl: provenance of every image)."""
    if out is None and grid is None:
        raise click.UsageError("nothing to write: give --out DIR and/or --grid FILE")
    if resume and (overwrite or out is None):
        raise click.UsageError("--resume continues the run in --out DIR; it goes without --overwrite")
    if ray_address is not None and out is None:
        raise click.UsageError("--ray writes a run: give --out DIR")
    here = device if ray_address is None else "cpu"  # with --ray the workers run on --device; here only checks and the grid
    # no busy-waiting onnxruntime threads: the PNG writers need the cores between calls (benchmarks/NOTES.md)
    gen = _load_generator(model, here, threads, spin=False)
    upscaler = load(upscale_model, device=here, threads=threads, kind="upscaler", spin=False) if upscale_model else None
    label_spec = _labels_arg(gen, label, labels, n) if n > 0 else None
    gen.iter_batches(n, seed=seed, labels=label_spec, truncation=truncation, batch_size=batch_size, start=start)  # checks only
    if grid is not None:
        _check_new_file(grid, overwrite or resume, "--grid")
    note = ""
    if out is not None:
        show = sys.stderr.isatty() if progress is None else progress
        run_args = dict(n=n, seed=seed, labels=label_spec, truncation=truncation, batch_size=batch_size, start=start, fmt=fmt,
                        shard_size=shard_size, overwrite=overwrite, resume=resume, upscaler=upscaler)
        with click.progressbar(length=n, label="generating", file=sys.stderr, hidden=not show) as bar:
            if ray_address is None:
                result = generate_run(gen, out, **run_args, on_batch=bar.update)
            else:
                from .cluster import ClusterConfig, generate_on_ray

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
        save_grid(grid, shown)
    where = [str(p) for p in (out, grid) if p is not None]
    click.echo(f"{n} images from {gen.name} (seed {seed}) -> {', '.join(where)}{note}")


@cli.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--index", "indices", type=click.IntRange(min=0), multiple=True, help="Replay only image I (repeatable; default: all).")
@click.option("--model", "-m", default=None, help="The run's model file, if not where the manifest says (its sha256 must match).")
@click.option("--device", type=click.Choice(("cpu", "cuda", "tensorrt")), default=None, help="Default: the kind of device the run was made on.")
@_threads_option
def replay(manifest, indices, model, device, threads):
    """Regenerate a run's images from MANIFEST (or its folder, or one PNG's text chunks) and check them bit for bit."""
    from .replay import replay as replay_run

    report = replay_run(manifest, indices=list(indices) or None, model=model, device=device, threads=threads)
    click.echo(f"{report.manifest}: model {report.model} (sha256 {report.model_sha256[:12]}...), made on "
               f"{report.recorded_provider}, replayed on {report.provider}")
    shown = 0
    for im in report.images:
        if indices or not im.ok:
            if shown < 20 or indices:
                click.echo(f"  {im.index:>8}  {im.file}  {'reproduced' if im.reproduced else 'NOT reproduced'}  file: {im.on_disk}")
            shown += 1
    good = sum(im.reproduced for im in report.images)
    match = sum(im.on_disk == "match" for im in report.images)
    total = len(report.images)
    click.echo(f"{total} images: {good} reproduced bit-exactly, {match} files on disk match")
    if not report.ok:
        if report.provider != report.recorded_provider:
            click.echo(f"note: bit-exact replay is promised on the device kind the run was made on ({report.recorded_provider})", err=True)
        sys.exit(1)


@cli.command()
@click.option("--model", "-m", default=None, help="Model used to check each provider (default: the bundled default).")
@_threads_option
@click.option("--json", "as_json", is_flag=True)
def doctor(model, threads, as_json):
    """What this machine offers ganrt: onnxruntime build, providers (each run on a tiny model), CPU, threads."""
    from .doctor import diagnose

    report = diagnose(model=model, threads=threads)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    for line in report.lines():
        click.echo(line)


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


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", "-m", default="sr-x4", show_default=True, help="An upscaler: a bundled name or an .onnx file.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Folder for the upscaled PNGs.")
@click.option("--tile", type=click.IntRange(min=1), default=None, help="Tile side in input pixels (default 256): bounds memory.")
@click.option("--overlap", type=click.IntRange(min=0), default=None, help="Tile overlap in input pixels (default: exact tiles).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True, help="Refuse larger inputs.")
@_device_option
@_threads_option
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


@cli.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
def info(model, as_json):
    """Show a model's settings (read from the file's metadata)."""
    m = load(model)
    meta = m.info
    if as_json:
        click.echo(json.dumps({**json.loads(meta.to_json()), "path": str(m.path), "sha256": m.sha256}, indent=2))
        return
    h, w, c = meta.image_shape
    image = f"{h}x{w}x{c}" if meta.kind != "upscaler" else f"any size, {c} channels, x{meta.scale}"
    rows = [("name", meta.name), ("kind", meta.kind), ("file", str(m.path)), ("sha256", m.sha256), ("image", image)]
    if meta.kind == "generator":
        rows += [("latent", f"{meta.nz} ({meta.prior})")]
    if meta.num_classes:
        names = ", ".join(f"{i}={c}" for i, c in enumerate(meta.class_names)) or str(meta.num_classes)
        rows += [("classes", names)]
    per = "input pixel" if meta.kind == "upscaler" else "image"
    rows += [("precision", f"{m.precision} (output {m.output_type})"),
             ("compute", f"{meta.flops / 1e6:,.2f} MFLOP per {per}" if meta.flops else "not stated in the file")]
    rows += [("value range", f"{meta.value_range[0]:g}..{meta.value_range[1]:g}"), ("training data", meta.training_data),
             ("ganrt version", meta.ganrt_version), ("description", meta.description)]
    if meta.training.get("test_accuracy") is not None:
        rows.append(("test accuracy", f"{meta.training['test_accuracy']:.4f}"))
    for key, value in rows:
        click.echo(f"{key:>14}  {value}")


@cli.command()
def models():
    """List the bundled models."""
    bundled = available_models()
    if not bundled:
        click.echo("no bundled models are installed")
        return
    for name in bundled:
        m = load(name)
        h, w, c = m.image_shape
        default = "  (default)" if name == DEFAULT_MODEL else ""
        shape = f"{h}x{w}x{c}" if m.info.kind != "upscaler" else f"x{m.info.scale} RGB"
        click.echo(f"{name:<20} {m.info.kind:<11} {shape:<9} {m.num_classes or '-':>3} classes  {m.info.description}{default}")


@cli.command()
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rows", type=click.IntRange(min=1), default=4, show_default=True, help="Row r walks from image 2r to image 2r+1.")
@click.option("--steps", type=click.IntRange(min=2), default=8, show_default=True)
@click.option("--label", default=None, help="Class for every row (default: row r uses class r).")
@click.option("--method", type=click.Choice(["slerp", "lerp"]), default="slerp", show_default=True)
@click.option("--truncation", type=float, default=None)
@_device_option
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help=".png: a rows x steps grid; .gif: an animation.")
@click.option("--overwrite", is_flag=True)
def interpolate(model, seed, rows, steps, label, method, truncation, device, out, overwrite):
    """Walk the latent space between pairs of images: a grid PNG or an animated GIF."""
    _check_png_or_gif(out, overwrite)
    gen = _load_generator(model, device, None)
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


@cli.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.option("--batch-sizes", default="1,8,64,256", show_default=True, help="Comma-separated batch sizes to time.")
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True, help="Timing rounds; the median is reported.")
@click.option("--seconds", type=click.FloatRange(min=0.01), default=1.0, show_default=True, help="Minimum seconds per round.")
@_device_option
@_threads_option
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Also write the records as JSON.")
def bench(model, batch_sizes, rounds, seconds, device, threads, json_path):
    """Measure MODEL on this machine: images/s, latency, peak RSS and GFLOP/s beside the GEMM ceiling."""
    from .bench import bench_model, machine, markdown_table, to_json

    try:
        sizes = [int(b) for b in batch_sizes.split(",") if b.strip()]
    except ValueError:
        raise click.UsageError(f"--batch-sizes takes integers such as 1,8,64, got {batch_sizes!r}") from None
    if json_path is not None:
        _check_new_file(json_path, True, "--json")
    loaded = load(model, device=device, threads=threads)
    records = bench_model(loaded, batch_sizes=sizes, rounds=rounds, min_seconds=seconds, threads=threads,
                          on_result=lambda r: click.echo(f"batch {r.batch_size}: {r.images_per_s:,.1f} images/s", err=True))
    info = machine()
    click.echo(f"{loaded.name} on {info['cpu']} ({info['cores']} cores), {loaded.provider}, onnxruntime {info['onnxruntime']}\n")
    click.echo(markdown_table(records))
    if json_path is not None:
        atomic_write(json_path, to_json(records, machine=info).encode())


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"needs comma-separated image indices such as 0,1,2, got {text!r}", param_hint=option) from None


@cli.command()
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--keyframes", default="0,1,2,3", show_default=True, help="Images whose latents the walk visits (then back to the first).")
@click.option("--classes", default=None, help="Instead: one latent (--index) through these classes' label embeddings, e.g. 'all' or 0,7,9.")
@click.option("--index", type=click.IntRange(min=0), default=0, show_default=True, help="The image whose latent a --classes tour keeps.")
@click.option("--steps", type=click.IntRange(min=2), default=12, show_default=True, help="Frames per leg.")
@click.option("--label", default=None, help="Class for a latent walk of a conditional model (default 0).")
@click.option("--truncation", type=float, default=None)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help=".gif: the looping animation; .png: its frames as a grid.")
@click.option("--overwrite", is_flag=True)
def walk(model, seed, keyframes, classes, index, steps, label, truncation, out, overwrite):
    """A looping walk through latent space (or, with --classes, between label embeddings) as an animated GIF."""
    from .explore import class_tour, latent_walk

    _check_png_or_gif(out, overwrite)
    gen = _load_generator(model, "cpu", None)
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


@cli.command()
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
    from .explore import arithmetic_grid

    _check_new_file(out, overwrite, "--out")
    gen = _load_generator(model, "cpu", None)
    grid = arithmetic_grid(gen, _int_list(a, "--a"), _int_list(b, "--b"), _int_list(c, "--c"), seed=seed, label=label,
                           variations=variations, truncation=truncation)
    save_grid(out, grid[None], nrow=1)
    click.echo(f"rows A, B, C (images | mean), then A - B + C (exact | +-noise) -> {out}")


@cli.command("eval")
@click.argument("model", default=DEFAULT_MODEL)
@click.option("-n", "n", type=int, default=10_000, show_default=True, help="Generated samples (classes evenly for conditional models).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--classifier", default="fashion-classifier", show_default=True, help="Feature extractor and judge.")
@click.option("--stats", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Reference statistics (default: NAME.stats.npz next to the classifier).")
@_threads_option
@click.option("--json", "as_json", is_flag=True)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def eval_cmd(model, n, seed, classifier, stats, threads, as_json, progress):
    """Sample quality against the real test set, beside the same metrics of real held-out images.

    Fréchet distance and precision/recall in the classifier's feature space, a classifier-based
    Inception Score, and for conditional models the share of samples classified as the requested class.
    """
    from .fidelity import evaluate, load_reference

    gen = _load_generator(model, "cpu", threads)
    clf = load(classifier, kind="classifier", threads=threads)
    ref = load_reference(clf, stats)
    show = sys.stderr.isatty() if progress is None else progress
    with click.progressbar(length=max(n, 0), label="evaluating", file=sys.stderr, hidden=not show) as bar:
        report = evaluate(gen, clf, n=n, seed=seed, stats=ref, on_batch=bar.update)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    g, r = report["generated"], report["real"]
    click.echo(f"{report['model']}: {report['n']} samples (seed {seed}), judged by {report['classifier']} "
               f"against {ref.n_reference} images of the {report['reference']}")
    click.echo(f"  {'metric':<26} {'generated':>10} {'real held-out':>14}")
    rows = [("Frechet distance (lower)", "frechet_distance"), ("Inception Score (higher)", "inception_score"),
            ("precision (higher)", "precision"), ("recall (higher)", "recall")]
    if "label_accuracy" in g:
        rows.append(("label accuracy (higher)", "label_accuracy"))
    for title, key in rows:
        click.echo(f"  {title:<26} {g[key]:>10.4f} {r[key]:>14.4f}")
    click.echo(f"  (real held-out: {r['n']} real test images outside the reference; precision/recall on {g['pr_points']} "
               f"and {r['pr_points']} points, k = 3)")
    if "per_class" in g:
        click.echo("  label accuracy per class: " + ", ".join(f"{k} {v:.3f}" for k, v in g["per_class"].items()))
    click.echo("  predicted class shares: " + ", ".join(f"{k} {v:.3f}" for k, v in g["class_share"].items()))


@cli.command("export-triton")
@click.argument("model")
@click.argument("outdir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--name", default=None, help="The model's name in Triton (default: its own name).")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True, help="Model instances per device.")
@click.option("--kind", type=click.Choice(("cpu", "gpu")), default="cpu", show_default=True, help="Instance group kind.")
@click.option("--tensorrt", is_flag=True, help="GPU: run through onnxruntime's TensorRT provider (FP32).")
@click.option("--tensorrt-fp16", is_flag=True, help="GPU: TensorRT in FP16 (faster; images not bit-equal to local ones).")
@click.option("--max-queue-delay-us", type=click.IntRange(min=0), default=100, show_default=True, help="Dynamic batching: wait this long to fill a batch.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an earlier export of this model in OUTDIR.")
def export_triton(model, outdir, name, max_batch_size, instances, kind, tensorrt, tensorrt_fp16, max_queue_delay_us, overwrite):
    """Write a Triton Inference Server model repository for MODEL (a generator) into OUTDIR, with a client example."""
    from .triton import TritonConfig, export_triton as export

    config = TritonConfig(name=name, max_batch_size=max_batch_size, instances=instances, kind=kind, tensorrt=tensorrt,
                          tensorrt_fp16=tensorrt_fp16, max_queue_delay_us=max_queue_delay_us)
    folder = export(_load_generator(model, "cpu", None), outdir, config=config, overwrite=overwrite)
    click.echo(f"{folder}: config.pbtxt, 1/model.onnx, client.py -> tritonserver --model-repository={outdir.resolve()}")


_INTERRUPTED = "interrupted: every file written so far is complete; the same command with --resume continues"


def run(group: click.Group) -> None:
    """Run a click group as a console script: user errors become one line and a non-zero exit."""
    try:
        group.main(standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C (SIGINT) into Abort
        click.echo(_INTERRUPTED, err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GanrtError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def main() -> None:
    run(cli)


if __name__ == "__main__":
    main()
