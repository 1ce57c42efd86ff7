"""``ganrt-export``: train and export models (the torch side; needs the ``export`` extra)."""

from __future__ import annotations

import click
import numpy as np

from ganrt.cli import run

from .config import SR_SKIPS

_EXTRA_HINT = "ganrt-export needs torch and onnx: pip install torch==2.13.0 && pip install 'ganrt[export]'"


def _require_torch() -> None:
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise click.ClickException(f"{exc.name or 'torch'} is not installed. {_EXTRA_HINT}") from None


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


TORCH_FREE = ("adopt",)  # commands that need onnx and onnxruntime only


@click.group()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Train DCGAN / cGAN generators and the sample classifier, export them, or bring your own model."""
    if ctx.invoked_subcommand in TORCH_FREE:
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise click.ClickException("onnx is not installed: `ganrt-export adopt` needs onnx and onnxruntime, not torch: "
                                       "pip install 'ganrt[cpu,adopt]'") from None
    else:
        _require_torch()


_data_options = [
    click.option("--dataset", type=click.Choice(["fashion-mnist", "idx", "digits"]), default="fashion-mnist", show_default=True),
    click.option("--data-dir", default="", help="Folder of MNIST-family IDX files (default: Debian's Fashion-MNIST)."),
    click.option("--limit", type=click.IntRange(min=0), default=0, help="Use only the first N training images (0 = all)."),
    click.option("--run-dir", required=True, type=click.Path(file_okay=False), help="Checkpoints and sample grids go here."),
    click.option("--resume", is_flag=True, help="Continue the run in --run-dir from its last checkpoint (same --epochs: "
                 "the same weights as an uninterrupted run; more --epochs extends it, and stretches a cosine schedule)."),
    click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads."),
    click.option("--progress/--no-progress", default=True, show_default=True),
]


def data_options(fn):
    for option in reversed(_data_options):
        fn = option(fn)
    return fn


@cli.group()
def train() -> None:
    """Train a model; a checkpoint is written every epoch (resumable with --resume)."""


@train.command("gan")
@data_options
@click.option("--conditional/--unconditional", default=True, show_default=True, help="cGAN (label input) or DCGAN.")
@click.option("--image-size", type=click.Choice(["32", "64"]), default="32", show_default=True)
@click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True)
@click.option("--nz", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--ngf", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--ndf", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--embed-dim", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--g-leaky", is_flag=True, help="LeakyReLU in the generator.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--lr", type=float, default=2e-4, show_default=True)
@click.option("--beta1", type=float, default=0.5, show_default=True)
@click.option("--beta2", type=float, default=0.999, show_default=True)
@click.option("--k", "k", type=click.IntRange(min=1), default=1, show_default=True, help="D steps per G step.")
@click.option("--prior", type=click.Choice(["normal", "sphere", "uniform"]), default="normal", show_default=True)
@click.option("--vbn", is_flag=True, help="Virtual batch normalisation in G.")
@click.option("--ref-batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--joint-d", is_flag=True, help="Real and generated minibatches through D in one pass (default: separately).")
@click.option("--init", default="", help="Start from this GAN run's weights and optimiser state (fine-tune with this recipe).")
@click.option("--ema", type=float, default=0.0, show_default=True,
              help="Exponential moving average of G's weights (e.g. 0.999); 0 = off.")
@click.option("--eval-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Every K epochs (and the last): FD, IS, precision/recall, label accuracy; keeps best.pt by FD.")
@click.option("--eval-n", type=click.IntRange(min=10), default=2000, show_default=True, help="Samples per evaluation.")
@click.option("--eval-classifier", default="fashion-classifier", show_default=True, help="Feature extractor for --eval-every.")
def train_gan_cmd(dataset, data_dir, limit, run_dir, resume, epochs, seed, threads, progress, conditional, image_size,
                  channels, nz, ngf, ndf, embed_dim, g_leaky, batch_size, lr, beta1, beta2, k, prior, vbn, ref_batch_size,
                  joint_d, init, ema, eval_every, eval_n, eval_classifier):
    """Train a DCGAN (--unconditional) or conditional GAN."""
    from .config import GANConfig, TrainConfig
    from .train import train_gan

    _threads(threads)
    cfg = GANConfig(image_size=int(image_size), channels=int(channels), nz=nz, ngf=ngf, ndf=ndf,
                    num_classes=10 if conditional else 0, embed_dim=embed_dim, g_leaky=g_leaky)
    tcfg = TrainConfig(dataset=dataset, data_dir=data_dir, epochs=epochs, batch_size=batch_size, lr=lr, beta1=beta1,
                       beta2=beta2, k=k, prior=prior, vbn=vbn, ref_batch_size=ref_batch_size, joint_d=joint_d, limit=limit,
                       seed=seed, init=init, ema=ema, eval_every=eval_every, eval_n=eval_n, eval_classifier=eval_classifier)
    path = train_gan(cfg, tcfg, run_dir, resume=resume, progress=progress, on_metrics=_echo_metrics)
    click.echo(f"checkpoint: {path}")


def _echo_metrics(epoch: int, m: dict[str, float]) -> None:
    from ganrt.evaluate.fidelity import METRICS

    click.echo(f"epoch {epoch}: " + ", ".join(f"{k} {m[k]:.4f}" for k in METRICS if k in m))


@train.command("classifier")
@data_options
@click.option("--width", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
def train_classifier_cmd(dataset, data_dir, limit, run_dir, resume, epochs, seed, threads, progress, width, batch_size, lr):
    """Train the sample classifier (judges generated images; >= 90% test accuracy on Fashion-MNIST)."""
    from .config import ClassifierConfig, TrainConfig
    from .train import train_classifier

    _threads(threads)
    path = train_classifier(
        ClassifierConfig(width=width),
        TrainConfig(dataset=dataset, data_dir=data_dir, epochs=epochs, batch_size=batch_size, lr=lr, beta1=0.9, limit=limit,
                    seed=seed),
        run_dir, resume=resume, progress=progress,
    )
    click.echo(f"checkpoint: {path}")


@train.command("sr")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False), help="Checkpoints go here.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --run-dir from its last checkpoint "
                   "(same --epochs: the same weights as an uninterrupted run).")
@click.option("--scale", type=click.Choice(["2", "3", "4"]), default="4", show_default=True)
@click.option("--width", type=click.IntRange(min=1), default=48, show_default=True)
@click.option("--blocks", type=click.IntRange(min=0), default=6, show_default=True)
@click.option("--skip", type=click.Choice(SR_SKIPS), default="nearest", show_default=True,
              help="What the body's residual is added to: nearest-neighbour, or a learned sub-pixel conv that starts as bicubic.")
@click.option("--stage", type=click.Choice(["pixel", "adversarial"]), default="pixel", show_default=True,
              help="pixel: L1 loss (PSNR); adversarial: L1 + GAN loss, starting from --init.")
@click.option("--init", default="",
              help="Upscaler run (or checkpoint) to start from: required by the adversarial stage; "
                   "the pixel stage fine-tunes it (same --scale/--width/--blocks/--skip).")
@click.option("--degradation", type=click.Choice(["bicubic", "real"]), default="bicubic", show_default=True,
              help="How LR patches are made: bicubic, or real (random blur, resize, noise, JPEG; export/degrade.py).")
@click.option("--epochs", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--patch", type=click.IntRange(min=4), default=32, show_default=True, help="Low-resolution patch side.")
@click.option("--lr", type=float, default=5e-4, show_default=True)
@click.option("--adv-weight", type=float, default=1e-3, show_default=True)
@click.option("--feature-weight", type=float, default=0.0, show_default=True, help="L1 on the discriminator's features.")
@click.option("--photos", default="", type=click.Path(file_okay=False),
              help="Also train on the wallpaper photos listed in export/data.py, unpacked under this folder (docs/sr-data.md).")
@click.option("--ema", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0, show_default=True,
              help="Decay of a moving average of the weights, which is evaluated and exported (0 = off).")
@click.option("--eval-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Every N epochs: PSNR/SSIM gain over bicubic on the five held-out photos (their fixed-real inputs "
                   "with --degradation real), logged and kept in the history.")
@click.option("--limit", type=click.IntRange(min=0), default=0, help="Use only the first N bundled training photos.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None)
@click.option("--progress/--no-progress", default=True, show_default=True)
def train_sr_cmd(run_dir, resume, scale, width, blocks, skip, stage, init, degradation, epochs, steps_per_epoch, batch_size,
                 patch, lr, adv_weight, feature_weight, photos, ema, eval_every, limit, seed, threads, progress):
    """Train an upscaler on the photos bundled with scikit-image and scikit-learn (and --photos)."""
    from .config import SRConfig, SRTrainConfig
    from .train import train_sr

    _threads(threads)
    tcfg = SRTrainConfig(stage=stage, init=init, epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size,
                         patch=patch, lr=lr, adv_weight=adv_weight, feature_weight=feature_weight, photos=photos, ema=ema,
                         eval_every=eval_every, limit=limit, seed=seed, degradation=degradation)
    cfg = SRConfig(scale=int(scale), width=width, blocks=blocks, skip=skip)
    path = train_sr(cfg, tcfg, run_dir, resume=resume, progress=progress, on_epoch=_echo_sr_epoch)
    click.echo(f"checkpoint: {path}")


def _echo_sr_epoch(record: dict[str, float]) -> None:
    click.echo(f"epoch {record['epoch']}: " + ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "epoch"))


@train.command("translator")
@_data_options[0]  # --dataset
@_data_options[1]  # --data-dir
@_data_options[2]  # --limit
@_data_options[3]  # --run-dir
@_data_options[4]  # --resume
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--ngf", type=click.IntRange(min=1), default=16, show_default=True, help="U-Net width of the outermost level.")
@click.option("--num-downs", type=click.IntRange(min=1), default=5, show_default=True, help="U-Net levels (32 -> 1 at 5).")
@click.option("--ndf", type=click.IntRange(min=1), default=16, show_default=True, help="PatchGAN width of the first layer.")
@click.option("--d-layers", type=click.IntRange(min=1), default=2, show_default=True, help="PatchGAN layers.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lr", type=float, default=2e-4, show_default=True)
@click.option("--beta1", type=float, default=0.5, show_default=True)
@click.option("--l1-weight", type=float, default=100.0, show_default=True, help="lambda of the L1 term (pix2pix: 100).")
@click.option("--canny-sigma", type=float, default=1.0, show_default=True, help="scikit-image Canny's Gaussian sigma.")
@click.option("--eval-n", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Test pairs whose L1 is logged after each epoch.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def train_translator_cmd(dataset, data_dir, limit, run_dir, resume, epochs, ngf, num_downs, ndf, d_layers, batch_size, lr, beta1,
                         l1_weight, canny_sigma, eval_n, seed, threads, progress):
    """Train a pix2pix translator: Fashion-MNIST's Canny edges -> the clothes (U-Net G, PatchGAN D, adversarial + L1)."""
    from .config import TranslatorConfig, TranslatorTrainConfig
    from .pix2pix import train_translator

    _threads(threads)
    try:
        cfg = TranslatorConfig(ngf=ngf, num_downs=num_downs, ndf=ndf, d_layers=d_layers)
        tcfg = TranslatorTrainConfig(data_dir=data_dir, dataset=dataset, epochs=epochs,
                                     batch_size=batch_size, lr=lr, beta1=beta1, l1_weight=l1_weight,
                                     canny_sigma=canny_sigma, limit=limit, eval_n=eval_n, seed=seed)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    path = train_translator(cfg, tcfg, run_dir, resume=resume, progress=progress, on_epoch=_echo_sr_epoch)
    click.echo(f"checkpoint: {path}")


@cli.command("export")
@click.argument("checkpoint", type=click.Path())
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="Model name stored in the file (e.g. fashion-cgan).")
@click.option("--description", default="", help="One line stored in the file's metadata.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--precision", type=click.Choice(["float32", "int8", "float16"]), default="float32", show_default=True,
              help="int8 (generators) or float16 (GPUs): written only if it passes the quality gate against float32 "
                   "(see `quantize`).")
def export_cmd(checkpoint, output, name, description, overwrite, precision):
    """Export CHECKPOINT (a file or run folder) to OUTPUT.onnx, after a parity check against torch."""
    from .onnx import export_checkpoint

    report = export_checkpoint(checkpoint, output, name=name, description=description, overwrite=overwrite, precision=precision)
    click.echo(f"wrote {output}: parity max abs diff {report['max_abs_diff']:.2e} at batch sizes {report['batch_sizes']}")
    if "quantization" in report:
        click.echo(_quality_line(report["quantization"]))


def _quality_line(report: dict) -> str:
    from .quantize import VARIANT_SUFFIXES

    label = VARIANT_SUFFIXES[report["info"].precision]
    if report["info"].kind == "translator":
        return f"{label} vs float32 on {report['check_n']} held-out inputs, translated: PSNR {report['psnr_db']:.2f} dB"
    if "check_photos" in report:  # an upscaler
        return f"{label} vs float32 on the {report['check_photos']} held-out photos, upscaled: PSNR {report['psnr_db']:.2f} dB"
    agreement = report["classifier_agreement"]
    judged = f", classifier agreement {agreement:.2%}" if agreement is not None else " (no classifier fits these images)"
    return f"{label} vs float32 on {report['check_n']} images: PSNR {report['psnr_db']:.2f} dB{judged}"


@cli.command("quantize")
@click.argument("input", type=click.Path(exists=True, dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--calibration-n", type=click.IntRange(min=1), default=512, show_default=True,
              help="Latents the int8 ranges are calibrated on.")
@click.option("--check-n", type=click.IntRange(min=1), default=2000, show_default=True, help="Images the quality gate compares.")
@click.option("--classifier", default="fashion-classifier", show_default=True,
              help="Classifier (name or file) whose predictions must agree, where its image shape fits; '' for none.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--precision", type=click.Choice(["int8", "fp16"]), default="int8", show_default=True,
              help="int8: for CPUs with VNNI; fp16: half precision for GPUs (--device cuda).")
def quantize_cmd(input, output, calibration_n, check_n, classifier, overwrite, precision):
    """Write an int8 (or fp16) variant of the float32 generator or upscaler INPUT (a ganrt file) to OUTPUT.onnx.

    Refused, and nothing written, unless its images reach 35 dB PSNR to the float32 images and (for
    generators of 32x32x1 images) the bundled fashion-classifier agrees on 99% of them. Upscalers are
    judged on the held-out photos, upscaled whole."""
    from .quantize import QuantizeConfig, quantize_file

    config = QuantizeConfig(calibration_n=calibration_n, check_n=check_n, classifier=classifier)
    if precision == "fp16":
        from .half import half_file

        report = half_file(input, output, config=config, overwrite=overwrite)
    else:
        report = quantize_file(input, output, config=config, overwrite=overwrite)
    rewritten = (f"{report['rewritten']} ConvTranspose rewritten (max abs diff {report['rewrite_max_abs_diff']:.1e}); "
                 if "rewritten" in report else "")
    click.echo(f"wrote {output}: {rewritten}{_quality_line(report)}")


@cli.command("reference-stats")
@click.option("--classifier", default="fashion-classifier", show_default=True, help="The feature extractor (name or .onnx).")
@click.option("--dataset", type=click.Choice(["fashion-mnist", "idx", "digits"]), default="fashion-mnist", show_default=True)
@click.option("--data-dir", default="", help="Folder of MNIST-family IDX files (default: Debian's Fashion-MNIST).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Default: NAME.stats.npz next to the classifier (shipped with it).")
def reference_stats_cmd(classifier, dataset, data_dir, out):
    """Real test-set statistics in the classifier's feature space, for `ganrt eval` (Fréchet distance etc.)."""
    import ganrt
    from ganrt.evaluate.fidelity import make_reference, stats_path

    from .data import load_dataset

    clf = ganrt.load(classifier, kind="classifier")
    h, w, c = clf.image_shape
    test = load_dataset(dataset, split="test", data_dir=data_dir, image_size=h, channels=c)
    images = test.images.permute(0, 2, 3, 1).contiguous().numpy()  # (N, C, S, S) -> the runtime's (N, S, S, C)
    stats = make_reference(clf, images, test.labels.numpy(), data=test.description.split(" (")[0])
    path = out or stats_path(clf)
    stats.save(path)
    click.echo(f"wrote {path}: reference {stats.n_reference} + held-out {len(stats.heldout_labels)} real images of {stats.data}")


@cli.command("adversarial")
@click.argument("checkpoint", type=click.Path())
@click.option("--onnx", "onnx_model", default="fashion-classifier", show_default=True,
              help="The same classifier exported (judges the uint8-rounded adversarial images).")
@click.option("-n", "n", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Real test images (a fixed random subset).")
@click.option("--eps", default="0.25,0.5,1,1.5,2,3", show_default=True, help="L2 budgets, [0, 1] pixel units.")
@click.option("--figure-eps", type=float, default=1.0, show_default=True, help="PGD budget of the figure.")
@click.option("--examples", type=click.IntRange(min=1, max=10), default=6, show_default=True,
              help="Figure rows (one class each).")
@click.option("--table", "table_path", type=click.Path(dir_okay=False), default=None, help="Write the table (Markdown) here.")
@click.option("--figure", "figure_path", type=click.Path(dir_okay=False), required=True,
              help="PNG: original | perturbation | adversarial.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads.")
def adversarial_cmd(checkpoint, onnx_model, n, eps, figure_eps, examples, table_path, figure_path, seed, threads):
    """FGSM and L2 PGD against a classifier CHECKPOINT: fooling rate vs L2 norm, and a figure."""
    from pathlib import Path

    import torch

    import ganrt
    from ganrt.io.png import save_png

    from .adversarial import figure, fooling_table, markdown_table
    from .adversarial import predict_logits as _logits_of
    from .data import load_dataset
    from .onnx import model_from_checkpoint
    from .train import load_checkpoint

    _threads(threads)
    try:
        budgets = tuple(float(v) for v in eps.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"--eps needs comma-separated numbers, got {eps!r}") from None
    ck = load_checkpoint(checkpoint)
    if ck.kind != "classifier":
        raise click.BadParameter(f"{checkpoint} is a {ck.kind} checkpoint, not a classifier", param_hint="CHECKPOINT")
    model = model_from_checkpoint(ck)
    cfg = ck.model_config
    test = load_dataset(ck.train_config.dataset, split="test", data_dir=ck.train_config.data_dir,
                        image_size=cfg.image_size, channels=cfg.channels)
    pick = torch.from_numpy(np.random.default_rng(seed).permutation(len(test.labels))[:n])
    images, labels = test.images[pick], test.labels[pick]
    rows, clean = fooling_table(model, ganrt.load(onnx_model, kind="classifier"), images, labels, budgets)
    table = markdown_table(rows, clean, len(labels))
    click.echo(table)
    if table_path:
        Path(table_path).write_text(table)
    with torch.no_grad():
        right = _logits_of(model, images).argmax(1) == labels
    first = [int(torch.nonzero((labels == k) & right)[0]) for k in range(examples) if bool(((labels == k) & right).any())]
    save_png(figure_path, figure(model, images[first], labels[first], test.class_names, figure_eps))
    click.echo(f"wrote {figure_path}" + (f" and {table_path}" if table_path else ""))


@cli.command("sr-eval")
@click.argument("models", nargs=-1, required=True)
@click.option("--photos", default="", type=click.Path(file_okay=False),
              help="Also score the six held-out wallpaper photos unpacked under this folder (docs/sr-data.md).")
@click.option("--degradation", type=click.Choice(["bicubic", "fixed-real"]), default="bicubic", show_default=True,
              help="The LR inputs: bicubic downscale, or fixed-real (bicubic, Gaussian noise sigma 5, JPEG quality 75, seeded).")
@click.option("--crops", type=click.Path(file_okay=False), default=None,
              help="Folder for NAME-crops.png: input | bicubic | model | original.")
@click.option("--side-by-side", "side_path", type=click.Path(dir_okay=False), default=None,
              help="PNG of crops input | bicubic | each model | original (SET is added before the suffix for the wallpapers).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the scores as JSON.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="onnxruntime threads (default: one per core).")
def sr_eval_cmd(models, photos, degradation, crops, side_path, json_path, threads):
    """PSNR / SSIM (Y, border = scale) of upscalers against bicubic on the held-out photos."""
    import json
    from pathlib import Path

    from ganrt.io.png import save_png

    from .evaluate import CROP_SIZE, comparison_table, evaluate_upscaler, held_out_sets, markdown_table, side_by_side, summary
    from .evaluate import crops as make_crops

    sets = held_out_sets(photos)
    report = {"degradation": degradation}
    keep = bool(crops or side_path)
    kept: dict[str, dict[str, dict]] = {set_name: {} for set_name in sets}
    scored: dict[str, dict[str, list]] = {set_name: {} for set_name in sets}
    for model in models:
        report[model] = {}
        for set_name, sources in sets.items():
            scores, images = evaluate_upscaler(model, sources=sources, threads=threads, keep_images=keep,
                                               degradation=degradation, window=CROP_SIZE)
            click.echo(f"{set_name} held-out photos, {degradation} inputs\n" + markdown_table(model, scores) + "\n")
            report[model][set_name] = summary(scores)
            scored[set_name][Path(model).stem] = scores
            suffix = "" if set_name == "bundled" else f"-{set_name}"
            if crops:
                Path(crops).mkdir(parents=True, exist_ok=True)
                save_png(Path(crops) / f"{Path(model).stem}{suffix}-crops.png", make_crops(images))
            if side_path:
                kept[set_name][model] = images
    if len(scored["bundled"]) > 1:
        for set_name, per_model in scored.items():
            click.echo(f"{set_name} held-out photos, {degradation} inputs: PSNR (Y, dB) / gain over bicubic (SSIM)\n"
                       + comparison_table(per_model) + "\n")
    if side_path:
        for set_name, per_model in kept.items():
            out = Path(side_path)
            out = out if set_name == "bundled" else out.with_name(f"{out.stem}-{set_name}{out.suffix}")
            out.parent.mkdir(parents=True, exist_ok=True)
            save_png(out, make_crops(side_by_side(per_model)))
            click.echo(f"wrote {out}: input | bicubic | {' | '.join(Path(m).stem for m in models)} | original")
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2))


@cli.command("translator-eval")
@click.argument("model")
@click.option("-n", "n", type=click.IntRange(min=0), default=0, show_default=True, help="Test pairs (0 = all 10,000).")
@click.option("--classifier", default="fashion-classifier", show_default=True,
              help="Classifier whose accuracy on the outputs is reported ('' for none).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the report as JSON.")
@click.option("--figure", "figure_path", type=click.Path(dir_okay=False), default=None,
              help="PNG: edges | output | target for two test images per class.")
@click.option("--data-dir", default="", help="Folder of the IDX files (default: the one in the model's training record).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="onnxruntime threads.")
def translator_eval_cmd(model, n, classifier, json_path, figure_path, data_dir, threads):
    """L1 / PSNR of an edges -> image translator on the held-out test split vs the identity and the mean image,
    and a classifier's accuracy on its outputs (export/pix2pix.py)."""
    import json
    import shlex
    import sys

    from ganrt.io.files import atomic_write
    from ganrt.io.png import save_png

    from .pix2pix import evaluate_translator, figure

    report = evaluate_translator(model, n=n, classifier=classifier, data_dir=data_dir, threads=threads)
    report["command"] = "ganrt-export " + shlex.join(sys.argv[1:])
    rows = [("model", report["model_vs_target"]), ("identity (the edges)", report["identity_vs_target"]),
            ("mean training image", report["mean_train_image_vs_target"])]
    click.echo(f"{report['test_pairs']} test pairs of {report['data']}")
    click.echo("| output | L1 (0..1) | PSNR (dB) |\n|---|---|---|")
    for label, r in rows:
        click.echo(f"| {label} | {r['l1']:.4f} | {r['psnr_db']:.2f} |")
    if "classifier" in report:
        c = report["classifier"]
        click.echo(f"{c['name']} accuracy: outputs {c['accuracy_on_outputs']:.2%}, real images "
                   f"{c['accuracy_on_real_images']:.2%}, edges {c['accuracy_on_edges']:.2%}")
    if json_path:
        atomic_write(json_path, (json.dumps(report, indent=2) + "\n").encode())
    if figure_path:
        save_png(figure_path, figure(model, data_dir=data_dir))
        click.echo(f"wrote {figure_path}")


def _floats(text: str | None, option: str, count: int | None = None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}", param_hint=option) from None
    if count is not None and len(values) != count:
        raise click.BadParameter(f"expected {count} comma-separated numbers, got {text!r}", param_hint=option)
    return values


def _ints(text: str | None, option: str, count: int | None = None) -> tuple[int, ...] | None:
    values = _floats(text, option, count)
    if values is not None and any(v != int(v) or v < 1 for v in values):
        raise click.BadParameter(f"expected positive integers, got {text!r}", param_hint=option)
    return None if values is None else tuple(int(v) for v in values)


def model_options(fn):
    """What a user states about a model of their own (``adopt``, ``torch``): None means found by running it."""
    for option in reversed([
        click.option("--kind", type=click.Choice(["generator", "upscaler", "translator"]), required=True),
        click.option("--name", default=None, help="Model name stored in the file (default: OUTPUT's stem)."),
        click.option("--description", default="", help="One line stored in the file's metadata."),
        click.option("--training-data", default="", help="What it was trained on (stored in the metadata)."),
        click.option("--nz", type=click.IntRange(min=1), default=None, help="Generators: latent size (default: from the model)."),
        click.option("--latent-shape", default=None, help="Generators: the model's z shape without N, e.g. 100,1,1."),
        click.option("--label", type=click.Choice(["none", "index", "onehot"]), default=None,
                     help="Generators: the label input (default: from the model)."),
        click.option("--classes", type=click.IntRange(min=2), default=None, help="Generators: number of classes."),
        click.option("--class-names", default=None, help="Comma-separated class names."),
        click.option("--prior", type=click.Choice(["normal", "sphere", "uniform"]), default="normal", show_default=True),
        click.option("--value-range", default=None,
                     help="LOW,HIGH of the model's images (default -1,1 as pix2pix and CycleGAN; upscalers 0,1)."),
        click.option("--image-shape", default=None, help="H,W,C: only for a generator whose output is flat (N, H*W*C)."),
        click.option("--color", type=click.Choice(["rgb", "y"]), default="rgb", show_default=True,
                     help="Upscalers: y for a network on the Y channel (ESPCN); Cb/Cr are upscaled bicubically."),
        click.option("--color-order", type=click.Choice(["rgb", "bgr"]), default="rgb", show_default=True,
                     help="Translators: the order of the three channels the network takes and gives."),
        click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists."),
    ]):
        fn = option(fn)
    return fn


def _adopt_config(kind, name, description, training_data, nz, latent_shape, label, classes, class_names, prior,
                  value_range, image_shape, color, color_order="rgb"):
    from .adopt import AdoptConfig

    names = tuple(c.strip() for c in class_names.split(",")) if class_names else ()
    return AdoptConfig(kind=kind, name=name, description=description, training_data=training_data, nz=nz,
                       latent_shape=_ints(latent_shape, "--latent-shape"), label=label,
                       num_classes=classes if classes is not None else (len(names) or None), class_names=names,
                       prior=prior, value_range=_floats(value_range, "--value-range", 2),
                       image_shape=_ints(image_shape, "--image-shape", 3), color=color, color_order=color_order)


def _echo_adopted(output, report: dict) -> None:
    parity = report.get("parity", {})
    said = ", ".join(f"{k} {v}" for k, v in parity.items())
    radius = f", receptive radius {report['receptive_radius']}" if "receptive_radius" in report else ""
    if report.get("whole_image"):
        radius = ", sees the whole image (never tiled)"
    if report.get("size_multiple", 1) > 1:
        radius += f", sides multiples of {report['size_multiple']}"
    dynamic = f"; batch made dynamic ({', '.join(report['made_batch_dynamic'])})" if report.get("made_batch_dynamic") else ""
    click.echo(f"{output}: parity {said}{radius}{dynamic}")


@cli.command("adopt")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@model_options
def adopt_cmd(source, output, kind, name, description, training_data, nz, latent_shape, label, classes, class_names, prior,
              value_range, image_shape, color, color_order, overwrite):
    """Turn an ONNX file from any exporter into a ganrt model (onnx + onnxruntime; no torch)."""
    from pathlib import Path

    from .adopt import adopt_file

    config = _adopt_config(kind, name or Path(output).stem, description, training_data, nz, latent_shape, label, classes,
                           class_names, prior, value_range, image_shape, color, color_order)
    _echo_adopted(output, adopt_file(source, output, config, overwrite=overwrite))


@cli.command("torch")
@click.argument("args", metavar="[MODULE:ATTR] OUTPUT", nargs=-1, required=True)
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="A state dict saved with torch.save (nn.DataParallel's module. prefixes are stripped).")
@click.option("--kwargs", "kwargs_json", default=None, help="JSON object of keyword arguments for MODULE:ATTR.")
@click.option("--path", "import_path", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Folder searched first for MODULE.")
@click.option("--trust-pickle", is_flag=True, help="Allow a weights file that holds a whole pickled module (runs its code).")
@model_options
def torch_cmd(args, weights, kwargs_json, import_path, trust_pickle, kind, name, description, training_data, nz,
              latent_shape, label, classes, class_names, prior, value_range, image_shape, color, color_order, overwrite):
    """Export your own torch generator, upscaler or translator (MODULE:ATTR + --weights) as a ganrt model, parity-checked.

    MODULE:ATTR may be left out when --weights holds a whole pickled module (with --trust-pickle)."""
    import json

    if len(args) > 2:
        raise click.UsageError(f"expected [MODULE:ATTR] OUTPUT, got {len(args)} arguments")
    spec, output = (None, args[0]) if len(args) == 1 else args

    from .byom import build_module, export_generator, export_translator, export_upscaler

    try:
        kwargs = json.loads(kwargs_json) if kwargs_json else {}
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--kwargs") from None
    if not isinstance(kwargs, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"upscale_factor\": 3}'", param_hint="--kwargs")
    from pathlib import Path

    name = name or Path(output).stem
    config = _adopt_config(kind, name, description, training_data, nz, latent_shape, label, classes, class_names, prior,
                           value_range, image_shape, color, color_order)
    config.check()
    module = build_module(spec, kwargs=kwargs, weights=weights, trust_pickle=trust_pickle, path=import_path)
    extra = {"module": spec, "kwargs": kwargs}
    if kind == "generator":
        report = export_generator(module, output, name=name, nz=nz, latent_shape=config.latent_shape, label=label,
                                  num_classes=config.num_classes, class_names=config.class_names, prior=prior,
                                  value_range=config.range, image_shape=config.image_shape, description=description,
                                  training_data=training_data, overwrite=overwrite, extra=extra)
    elif kind == "translator":
        report = export_translator(module, output, name=name, value_range=config.range, color_order=color_order,
                                   description=description, training_data=training_data, overwrite=overwrite, extra=extra)
    else:
        report = export_upscaler(module, output, name=name, color=color, value_range=config.range, description=description,
                                 training_data=training_data, overwrite=overwrite, extra=extra)
    _echo_adopted(output, report)


@cli.command("spandrel")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--name", default=None, help="Model name stored in the file (default: OUTPUT's stem).")
@click.option("--description", default="", help="One line stored in the file's metadata (default: the architecture and scale).")
@click.option("--training-data", default="", help="What it was trained on (stored in the metadata).")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def spandrel_cmd(model, output, name, description, training_data, overwrite):
    """Export a super-resolution MODEL (.pth, .safetensors) that spandrel recognises as a ganrt upscaler."""
    from .spandrel_import import export_spandrel

    report = export_spandrel(model, output, name=name, description=description, training_data=training_data,
                             overwrite=overwrite)
    about = report["spandrel"]
    click.echo(f"{about['architecture']} x{about['scale']} ({', '.join(about['tags']) or 'no tags'}), "
               f"spandrel {about['spandrel_version']}")
    _echo_adopted(output, report)


@cli.command("cas")
@click.option("--model", "models", multiple=True, default=("fashion-cgan", "fashion-cgan-int8"), show_default=True,
              help="Conditional generator (name or .onnx); repeat for several.")
@click.option("--variant", "variants", multiple=True, default=("plain",), show_default=True,
              help="How samples are drawn: plain or e.g. truncation=1.5,spread=1.2,keep=0.5,balanced=no (spread: latents "
                   "scaled by it; keep: the fraction kept per class by the filter classifier's confidence). Repeat for "
                   "several; augmentation uses the first.")
@click.option("--n", type=click.IntRange(min=1), default=60_000, show_default=True, help="Images per training set.")
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--width", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="Seeds 0..K-1 for every row.")
@click.option("--first-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seeds FIRST..FIRST+K-1 instead (one part of a grid run in several processes; see cas-merge).")
@click.option("--subsets", default="1000,5000", show_default=True, help="Real subset sizes for augmentation.")
@click.option("--augment-n", type=click.IntRange(min=0), default=0, help="Synthetic images added to a subset (0 = --n).")
@click.option("--match-steps/--same-epochs", default=True, show_default=True,
              help="A subset alone gets the augmented set's number of steps (more epochs), or the same epochs.")
@click.option("--parts", default="real,synthetic,augment", show_default=True,
              help="Which rows: real, synthetic, augment (= alone: the subsets alone, and augmented: with synthetic images).")
@click.option("--eval", "eval_on", type=click.Choice(["test", "val"]), default="test", show_default=True,
              help="test: the real test split; val: the last 10,000 training images (to choose variants without the test set).")
@click.option("--dataset", type=click.Choice(["fashion-mnist", "idx", "digits"]), default="fashion-mnist", show_default=True)
@click.option("--data-dir", default="", help="Folder of MNIST-family IDX files (default: Debian's Fashion-MNIST).")
@click.option("--limit", type=click.IntRange(min=0), default=0, help="Only the first N real train (and test) images (0 = all).")
@click.option("--filter-classifier", default="fashion-classifier", show_default=True, help="Scores samples for keep < 1.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch and onnxruntime CPU threads.")
@click.option("--budget-minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Start no further seed that the last seed's time says would end after this (report the seeds done).")
@click.option("--json", "json_path", required=True, type=click.Path(dir_okay=False), help="Write the report here.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), default=None, help="Write the table here too.")
@click.option("--overwrite", is_flag=True, help="Replace existing --json / --markdown files.")
def cas_cmd(models, variants, n, epochs, width, batch_size, lr, seeds, first_seed, subsets, augment_n, match_steps, parts,
            eval_on, dataset, data_dir, limit, filter_classifier, threads, budget_minutes, json_path, md_path, overwrite):
    """The Classification Accuracy Score: train the classifier recipe on generated images, score on real ones."""
    import json
    import shlex
    import sys
    from pathlib import Path

    from ganrt.core.errors import OutputError
    from ganrt.io.files import atomic_write

    from .cas import CASConfig, Variant, report_markdown, run_cas

    outputs = [Path(p) for p in (json_path, md_path) if p]
    for out in outputs:
        if out.exists() and not overwrite:
            raise OutputError(f"{out} exists; pass --overwrite to replace it")
        if not out.parent.is_dir():
            raise OutputError(f"folder {out.parent} does not exist")
    cfg = CASConfig(models=tuple(models), variants=tuple(Variant.parse(v) for v in variants), n=n, epochs=epochs,
                    width=width, batch_size=batch_size, lr=lr, seeds=tuple(range(first_seed, first_seed + seeds)),
                    subsets=_ints(subsets, "--subsets") or (), augment_n=augment_n, match_steps=match_steps,
                    parts=tuple(p.strip() for p in parts.split(",") if p.strip()), eval=eval_on, dataset=dataset,
                    data_dir=data_dir, filter_classifier=filter_classifier, limit=limit)
    _threads(threads or 1)
    command = "ganrt-export " + shlex.join(sys.argv[1:])
    partial = Path(f"{json_path}.partial")  # the report so far, for a long run that is stopped; removed at the end

    def save_partial(report) -> None:
        atomic_write(partial, (json.dumps({**report, "command": command}, indent=1) + "\n").encode())

    report = run_cas(cfg, log=lambda line: click.echo(line, err=True), on_report=save_partial,
                     budget_s=budget_minutes * 60 if budget_minutes else None)
    report["command"] = command
    table = report_markdown(report)
    atomic_write(json_path, (json.dumps(report, indent=1) + "\n").encode())
    partial.unlink(missing_ok=True)
    if md_path:
        atomic_write(md_path, (table + "\n").encode())
    click.echo(table)


@cli.command("cas-merge")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "json_path", required=True, type=click.Path(dir_okay=False), help="Write the merged report here.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --json file.")
def cas_merge_cmd(reports, json_path, overwrite):
    """One report from `ganrt-export cas` runs of the same grid on other seeds (e.g. --first-seed in parallel)."""
    import json
    from pathlib import Path

    from ganrt.core.errors import OutputError
    from ganrt.io.files import atomic_write

    from .cas_table import merge_reports, report_markdown

    out = Path(json_path)
    if out.exists() and not overwrite:
        raise OutputError(f"{out} exists; pass --overwrite to replace it")
    parts = []
    for path in reports:
        try:
            parts.append(json.loads(Path(path).read_text()))
        except ValueError as exc:
            raise click.BadParameter(f"{path} is not JSON: {exc}", param_hint="REPORTS") from None
    try:
        merged = merge_reports(parts)
    except (ValueError, KeyError) as exc:
        raise click.ClickException(f"cannot merge: {exc}") from None
    atomic_write(out, (json.dumps(merged, indent=1) + "\n").encode())
    click.echo(report_markdown(merged))


def main() -> None:
    run(cli)


if __name__ == "__main__":
    main()
