"""``ganrt export-triton``: a Triton Inference Server model repository for a generator."""

from __future__ import annotations

from pathlib import Path

import click

from ganrt.cli.options import load_generator


@click.command("export-triton")
@click.argument("model")
@click.argument("outdir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--name", default=None, help="The model's name in Triton (default: its own name).")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True, help="Model instances per device.")
@click.option("--kind", type=click.Choice(("cpu", "gpu")), default="cpu", show_default=True, help="Instance group kind.")
@click.option("--tensorrt", is_flag=True, help="GPU: run through onnxruntime's TensorRT provider (FP32).")
@click.option("--tensorrt-fp16", is_flag=True, help="GPU: TensorRT in FP16 (faster; images not bit-equal to local ones).")
@click.option("--max-queue-delay-us", type=click.IntRange(min=0), default=100, show_default=True,
              help="Dynamic batching: wait this long to fill a batch.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an earlier export of this model in OUTDIR.")
def export_triton(model, outdir, name, max_batch_size, instances, kind, tensorrt, tensorrt_fp16, max_queue_delay_us, overwrite):
    """Write a Triton Inference Server model repository for MODEL (a generator) into OUTDIR, with a client example."""
    from ganrt.tools.triton import TritonConfig
    from ganrt.tools.triton import export_triton as export

    config = TritonConfig(name=name, max_batch_size=max_batch_size, instances=instances, kind=kind, tensorrt=tensorrt,
                          tensorrt_fp16=tensorrt_fp16, max_queue_delay_us=max_queue_delay_us)
    folder = export(load_generator(model, "cpu", None), outdir, config=config, overwrite=overwrite)
    click.echo(f"{folder}: config.pbtxt, 1/model.onnx, client.py -> tritonserver --model-repository={outdir.resolve()}")


COMMANDS = (export_triton,)
