"""``ganrt info``, ``models``, ``doctor`` and ``bench``: what a model file holds, what is bundled, what this machine offers."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ganrt.cli.options import check_new_file, device_option, threads_option, timeout_option
from ganrt.core.bundled import DEFAULT_MODEL, available_models, resolve_model
from ganrt.core.kind import KINDS
from ganrt.core.plain import describe
from ganrt.core.text import printable
from ganrt.io.files import atomic_write
from ganrt.kinds.registry import load


@click.command()
@click.option("--model", "-m", default=None, help="Model used to check each provider (default: the bundled default).")
@threads_option
@timeout_option
@click.option("--json", "as_json", is_flag=True)
def doctor(model, threads, as_json):
    """What this machine offers ganrt: onnxruntime build, providers (each run on a tiny model), CPU, threads."""
    from ganrt.tools.doctor import diagnose

    report = diagnose(model=model, threads=threads)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    for line in report.lines():
        click.echo(printable(line))


@click.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
def info(model, as_json):
    """Show a model's settings (read from the file's metadata).

    A plain ONNX file (no ganrt metadata) shows its inputs and outputs and the `ganrt-export adopt` line
    that would make it a ganrt model, guessed from their shapes and types.
    """
    plain = describe(resolve_model(model), source=model)
    if not plain.ganrt:
        click.echo(json.dumps(plain.to_dict(), indent=2) if as_json else "\n".join(printable(line) for line in plain.lines()))
        return
    m = load(model)
    meta = m.info
    if as_json:
        click.echo(json.dumps(m.settings(), indent=2))
        return
    kind = KINDS[meta.kind]
    rows = [("name", meta.name), ("kind", meta.kind), ("file", str(m.path)), ("sha256", m.sha256), *kind.rows(meta)]
    if meta.num_classes:
        names = ", ".join(f"{i}={c}" for i, c in enumerate(meta.class_names)) or str(meta.num_classes)
        rows += [("classes", names)]
    per = kind.flops_per
    rows += [("precision", f"{m.precision} (output {m.output_type})"),
             ("compute", f"{meta.flops / 1e6:,.2f} MFLOP per {per}" if meta.flops else "not stated in the file")]
    rows += [("value range", f"{meta.value_range[0]:g}..{meta.value_range[1]:g}"), ("training data", meta.training_data),
             ("ganrt version", meta.ganrt_version), ("description", meta.description)]
    if meta.training.get("test_accuracy") is not None:
        rows.append(("test accuracy", f"{meta.training['test_accuracy']:.4f}"))
    for key, value in rows:
        click.echo(f"{key:>14}  {printable(value)}")  # the file's strings are anyone's: no escape codes


@click.command()
def models():
    """List the bundled models."""
    bundled = available_models()
    if not bundled:
        click.echo("no bundled models are installed")
        return
    rows = []
    for name in bundled:
        m = load(name)
        classes = f"{m.num_classes:>3} classes" if m.num_classes else ""  # nothing for models without classes
        rows.append((name, m.info.kind, KINDS[m.info.kind].shape(m.info), classes,
                     m.info.description + ("  (default)" if name == DEFAULT_MODEL else "")))
    widths = [max(len(row[k]) for row in rows) for k in range(4)]  # columns as wide as their longest entry
    for row in rows:
        click.echo(printable("  ".join(f"{cell:<{w}}" for cell, w in zip(row[:4], widths)) + "  " + row[4]))


@click.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.option("--batch-sizes", default="1,8,64,256", show_default=True, help="Comma-separated batch sizes to time.")
@click.option("--rounds", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Timing rounds; the median is reported.")
@click.option("--seconds", type=click.FloatRange(0.01, 3600), default=1.0, show_default=True, help="Minimum seconds per round.")
@device_option
@threads_option
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write the records as JSON.")
def bench(model, batch_sizes, rounds, seconds, device, threads, json_path):
    """Measure MODEL on this machine: images/s, latency, peak RSS and GFLOP/s beside the GEMM ceiling."""
    from ganrt.tools.bench import bench_model, machine, markdown_table, to_json

    try:
        sizes = [int(b) for b in batch_sizes.split(",") if b.strip()]
    except ValueError:
        raise click.UsageError(f"--batch-sizes takes integers such as 1,8,64, got {batch_sizes!r}") from None
    if json_path is not None:
        check_new_file(json_path, True, "--json")
    loaded = load(model, device=device, threads=threads)
    records = bench_model(loaded, batch_sizes=sizes, rounds=rounds, min_seconds=seconds, threads=threads,
                          on_result=lambda r: click.echo(f"batch {r.batch_size}: {r.images_per_s:,.1f} images/s", err=True))
    info = machine()
    click.echo(f"{loaded.name} on {info['cpu']} ({info['cores']} cores), {loaded.provider}, onnxruntime {info['onnxruntime']}\n")
    click.echo(markdown_table(records))
    if json_path is not None:
        atomic_write(json_path, to_json(records, machine=info).encode())


COMMANDS = (info, models, doctor, bench)
