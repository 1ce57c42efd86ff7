"""Training: the classic GAN recipe (DCGAN / cGAN) and the sample classifier, with resumable checkpoints.

The recipe (Radford et al. 2015; Salimans et al. 2016; the GAN-hacks tips):
- Adam, lr 2e-4, betas (0.5, 0.999);
- each discriminator step sees the real minibatch and the generated minibatch in two separate
  forward passes (separate BatchNorm statistics), their gradients summed into one update
  (``joint_d``: one pass over their concatenation instead, for the ablation);
- ``k`` discriminator steps per generator step; non-saturating generator loss;
- optional virtual batch normalisation: a reference batch R, fixed before training, is run with
  every batch X so that G's BatchNorm layers normalise X with the statistics of R u X.

Determinism: weights come from ``seed``; epoch e shuffles with a generator seeded by (seed, e);
latents are drawn by ``ganrt.core.latent`` from a global draw counter. So a run resumed from any
epoch's checkpoint ends with the same weights as one that was never stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganrt.core.errors import GanrtError
from ganrt.core.latent import sample_latents
from ganrt.io.images import save_grid

from .config import (
    ClassifierConfig,
    GANConfig,
    SRConfig,
    SRTrainConfig,
    TrainConfig,
    TranslatorConfig,
    TranslatorTrainConfig,
)
from .data import (
    WALLPAPER_PACKAGES,
    CropStream,
    Dataset,
    PhotoSource,
    bundled_sources,
    degrade,
    load_dataset,
    sr_training_sources,
)
from .degrade import degrade_real, held_out_pair
from .evaluate import score_images
from .models import Classifier, Discriminator, Generator, SRDiscriminator, SRGenerator

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"  # the checkpoint with the lowest Fréchet distance so far (with --eval-every)
CHECKPOINT_FORMAT = "ganrt-checkpoint-1"
_AUX_SEED_OFFSET = 1 << 32  # latents for the grid, the VBN reference batch and BN calibration
_GRID_INDEX, _REF_INDEX, _CALIB_INDEX, _EVAL_INDEX = 0, 1 << 20, 1 << 21, 1 << 22


class CheckpointError(GanrtError, ValueError):
    """A checkpoint is missing, truncated, corrupt, or of the wrong kind."""


_CONFIGS = {"gan": (GANConfig, TrainConfig), "classifier": (ClassifierConfig, TrainConfig), "sr": (SRConfig, SRTrainConfig),
            "translator": (TranslatorConfig, TranslatorTrainConfig)}  # translator: export/pix2pix.py


@dataclass(frozen=True)
class Checkpoint:
    kind: str  # "gan" | "classifier" | "sr" | "translator"
    model_config: GANConfig | ClassifierConfig | SRConfig
    train_config: TrainConfig | SRTrainConfig
    epoch: int  # completed epochs
    state: dict[str, Any]  # "G", "D", "opt_g", "opt_d" | "model", "opt"; sr: "G", "opt_g" (+ "D", "opt_d")
    history: list[dict[str, float]]
    class_names: tuple[str, ...]
    data: str
    train_seconds: float
    path: Path


def save_checkpoint(path: Path, ck: dict[str, Any]) -> None:
    """Atomic: a killed run leaves the previous checkpoint, never half of a new one."""
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(ck, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint with ``weights_only=True`` (no code runs on load) and validate it."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files; all mean the same here
        why = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): {why}") from None
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a ganrt checkpoint (expected format {CHECKPOINT_FORMAT})")
    try:
        kind = raw["kind"]
        cfg_cls, tcfg_cls = _CONFIGS[kind]
        return Checkpoint(
            kind=kind,
            model_config=cfg_cls.from_dict(raw["model_config"]),
            train_config=tcfg_cls.from_dict(raw["train_config"]),
            epoch=int(raw["epoch"]),
            state=raw["state"],
            history=list(raw["history"]),
            class_names=tuple(raw["class_names"]),
            data=str(raw["data"]),
            train_seconds=float(raw["train_seconds"]),
            path=path,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: checkpoint is missing or has a bad field ({exc})") from None


def _ck_dict(kind, model_cfg, tcfg, epoch, state, history, data: Dataset | str, seconds) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "kind": kind,
        "model_config": model_cfg.to_dict(),
        "train_config": tcfg.to_dict(),
        "epoch": epoch,
        "state": state,
        "history": history,
        "class_names": list(data.class_names) if isinstance(data, Dataset) else [],
        "data": data.description if isinstance(data, Dataset) else data,
        "train_seconds": seconds,
    }


def _to_float(images_u8: torch.Tensor) -> torch.Tensor:
    return images_u8.to(torch.float32) / 127.5 - 1.0  # uint8 [0, 255] -> [-1, 1]


def _latents(tcfg: TrainConfig, nz: int, start: int, n: int, *, aux: bool = False) -> torch.Tensor:
    seed = tcfg.seed + (_AUX_SEED_OFFSET if aux else 0)
    return torch.from_numpy(sample_latents(seed, np.arange(start, start + n), nz, prior=tcfg.prior))


def _aux_labels(cfg: GANConfig, n: int) -> torch.Tensor | None:
    return torch.arange(n) % cfg.num_classes if cfg.num_classes else None


_RESUME_FREE = ("epochs", "eval_every", "eval_n", "eval_classifier", "photos")  # a resumed run may change these


def _start_run(run_dir: str | os.PathLike, resume: bool, kind: str, cfg, tcfg):
    """Create ``run_dir``; with ``resume`` take the stored settings (only the epoch count may grow,
    and the evaluation settings change).

    Returns (run_dir, checkpoint or None, model config, train config).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CHECKPOINT_NAME
    if not resume:
        if path.exists():
            raise CheckpointError(f"{run_dir} already holds a checkpoint; pass --resume to continue it "
                                  "or choose another --run-dir")
        return run_dir, None, cfg, tcfg
    ck = load_checkpoint(path)
    if ck.kind != kind:
        raise CheckpointError(f"{path} is a {ck.kind} checkpoint, not a {kind} one")
    free = {f: getattr(tcfg, f) for f in _RESUME_FREE if hasattr(tcfg, f)}  # settings that do not change the weights
    return run_dir, ck, ck.model_config, dataclasses.replace(ck.train_config, **free)


def recalibrate_batchnorm(G: Generator, tcfg: TrainConfig, *, batches: int = 16, batch_size: int = 256) -> None:
    """Set G's BatchNorm running statistics to exact population values for inference.

    With VBN they are the reference batch's statistics (R u {x} for one image x is R, in the limit);
    otherwise a cumulative average over ``batches`` batches from the prior. Training runs BN in
    batch mode and never reads these buffers, so overwriting them does not change training.
    """
    bns = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    was_training = G.training
    G.train()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    nz = G.cfg.nz
    with torch.no_grad():
        if tcfg.vbn:
            G(_latents(tcfg, nz, _REF_INDEX, tcfg.ref_batch_size, aux=True), _aux_labels(G.cfg, tcfg.ref_batch_size))
        else:
            for b in range(batches):
                G(_latents(tcfg, nz, _CALIB_INDEX + b * batch_size, batch_size, aux=True), _aux_labels(G.cfg, batch_size))
    for m in bns:
        m.momentum = 0.1
    G.train(was_training)


def sample_grid(G: Generator, tcfg: TrainConfig, n: int = 100) -> np.ndarray:
    """Fixed latents (and labels cycling over classes): (n, S, S, C) uint8 for the per-epoch grid."""
    was_training = G.training
    G.eval()
    with torch.no_grad():
        x = G(_latents(tcfg, G.cfg.nz, _GRID_INDEX, n, aux=True), _aux_labels(G.cfg, n))
    G.train(was_training)
    return _to_uint8(x)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """G's output (N, C, S, S) in [-1, 1] -> (N, S, S, C) uint8, rounded as exported files round."""
    return ((x.permute(0, 2, 3, 1) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def gan_metrics(G: Generator, tcfg: TrainConfig, clf, stats, *, batch_size: int = 500) -> dict[str, float]:
    """FD, IS, precision/recall (and label accuracy) of ``tcfg.eval_n`` samples of G, as ``ganrt eval`` scores them.

    The samples are fixed (aux latents, labels cycling over classes), so epochs are compared on the
    same latents; they go through the same uint8 rounding and ONNX classifier as exported samples.
    """
    from ganrt.evaluate.fidelity import METRICS, score_features

    was_training = G.training
    G.eval()

    def stream():
        with torch.no_grad():
            for i in range(0, tcfg.eval_n, batch_size):
                m = min(batch_size, tcfg.eval_n - i)
                labels = (torch.arange(i, i + m) % G.cfg.num_classes) if G.cfg.num_classes else None
                x = G(_latents(tcfg, G.cfg.nz, _EVAL_INDEX + i, m, aux=True), labels)  # (m, C, S, S) in [-1, 1]
                logits, feats = clf.run(_to_uint8(x))
                yield feats, logits, None if labels is None else labels.numpy()

    try:
        report = score_features(stream(), stats, clf.num_classes)
    finally:
        G.train(was_training)
    return {k: float(report[k]) for k in METRICS if k in report}


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, dynamic_ncols=True, leave=True)


def train_gan(
    cfg: GANConfig,
    tcfg: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    on_metrics: Callable[[int, dict[str, float]], None] | None = None,
) -> Path:
    """Train (or resume) a DCGAN / cGAN in ``run_dir``; returns the checkpoint's path.

    With ``tcfg.eval_every`` the metrics of ``gan_metrics`` join the epoch's history entry (and go to
    ``on_metrics(epoch, metrics)``), and ``best.pt`` keeps the checkpoint with the lowest FD.
    """
    run_dir, ck, cfg, tcfg = _start_run(run_dir, resume, "gan", cfg, tcfg)
    clf = stats = None
    if tcfg.eval_every:
        import ganrt
        from ganrt.evaluate.fidelity import load_reference

        clf = ganrt.load(tcfg.eval_classifier, kind="classifier", threads=1)
        stats = load_reference(clf)
        h, w, c = clf.image_shape
        if (cfg.image_size, cfg.image_size, cfg.channels) != (h, w, c):
            raise CheckpointError(f"--eval-every: '{clf.name}' needs ({h}, {w}, {c}) images; this model makes "
                                  f"({cfg.image_size}, {cfg.image_size}, {cfg.channels})")
    data = load_dataset(tcfg.dataset, data_dir=tcfg.data_dir, image_size=cfg.image_size, channels=cfg.channels, limit=tcfg.limit)
    if cfg.num_classes and cfg.num_classes != len(data.class_names):
        raise CheckpointError(f"model has {cfg.num_classes} classes but {data.description} has {len(data.class_names)}")
    torch.manual_seed(tcfg.seed)
    G, D = Generator(cfg), Discriminator(cfg)
    opt_g = torch.optim.Adam(G.parameters(), lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2))
    start, history, seconds = 0, [], 0.0
    source = ck
    if ck is None and tcfg.init:  # fine-tune: weights and optimiser state of another run, this run's recipe
        source = load_checkpoint(tcfg.init)
        if source.kind != "gan" or source.model_config != cfg:
            raise CheckpointError(f"--init {tcfg.init} is not a GAN run with this configuration ({cfg})")
        seconds = source.train_seconds
    if source is not None:
        G.load_state_dict(source.state["G"])
        D.load_state_dict(source.state["D"])
        opt_g.load_state_dict(source.state["opt_g"])
        opt_d.load_state_dict(source.state["opt_d"])
    if ck is not None:
        start, history, seconds = ck.epoch, ck.history, ck.train_seconds
    # G_ema: an exponential moving average of G's weights (Karras et al. 2018), what is sampled and exported
    G_ema = copy.deepcopy(G) if tcfg.ema else None
    if G_ema is not None and source is not None and "G_ema" in source.state:
        G_ema.load_state_dict(source.state["G_ema"])
    G_out = G_ema if G_ema is not None else G
    best_fd = min((h["frechet_distance"] for h in history if "frechet_distance" in h), default=math.inf)

    bs, k, n = tcfg.batch_size, tcfg.k, len(data.labels)
    iters = (n // bs) // k  # each iteration: k D steps (k real minibatches) + 1 G step
    if iters < 1:
        raise CheckpointError(f"{n} training images are fewer than batch_size*k = {bs * k}")
    ones, zeros = torch.ones(bs), torch.zeros(bs)
    bce = nn.BCEWithLogitsLoss()
    if tcfg.vbn:
        ref_z = _latents(tcfg, cfg.nz, _REF_INDEX, tcfg.ref_batch_size, aux=True)  # R, fixed
        ref_y = _aux_labels(cfg, tcfg.ref_batch_size)

    def generate(z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if not tcfg.vbn:
            return G(z, y)
        y_all = None if y is None else torch.cat([ref_y, y])
        return G(torch.cat([ref_z, z]), y_all)[len(ref_z) :]  # BN statistics of R u X

    G.train()
    D.train()
    for epoch in range(start, tcfg.epochs):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(tcfg.seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=gen)
        sums = {"loss_d": 0.0, "loss_g": 0.0, "d_real": 0.0, "d_fake": 0.0}
        bar = _progress(iters, f"epoch {epoch + 1}/{tcfg.epochs}", progress)
        for it in range(iters):
            for j in range(k):
                step = it * k + j
                idx = perm[step * bs : (step + 1) * bs]
                real, y_real = _to_float(data.images[idx]), data.labels[idx]
                draw = (epoch * iters * k + step) * bs
                z = _latents(tcfg, cfg.nz, draw, bs)
                y_fake = torch.randint(cfg.num_classes, (bs,), generator=gen) if cfg.num_classes else None
                fake = generate(z, y_fake)
                opt_d.zero_grad(set_to_none=True)
                if tcfg.joint_d:  # one pass over real u fake (2bs images): BN statistics of the mixture
                    y_both = torch.cat([y_real, y_fake]) if cfg.num_classes else None
                    out_real, out_fake = D(torch.cat([real, fake.detach()]), y_both).split(bs)
                    loss_real, loss_fake = bce(out_real, ones), bce(out_fake, zeros)
                    (loss_real + loss_fake).backward()
                else:
                    out_real = D(real, y_real if cfg.num_classes else None)  # real batch: its own BN statistics
                    loss_real = bce(out_real, ones)
                    loss_real.backward()
                    out_fake = D(fake.detach(), y_fake)  # generated batch: a separate pass
                    loss_fake = bce(out_fake, zeros)
                    loss_fake.backward()  # gradients of both passes accumulate into one update
                opt_d.step()
            opt_g.zero_grad(set_to_none=True)
            loss_g = bce(D(fake, y_fake), ones)  # non-saturating loss on the last D step's batch
            loss_g.backward()
            opt_g.step()
            if G_ema is not None:
                with torch.no_grad():
                    for pe, p in zip(G_ema.parameters(), G.parameters()):
                        pe.lerp_(p, 1.0 - tcfg.ema)
            loss_d = loss_real.item() + loss_fake.item()
            sums["loss_d"] += loss_d
            sums["loss_g"] += loss_g.item()
            sums["d_real"] += torch.sigmoid(out_real.detach()).mean().item()
            sums["d_fake"] += torch.sigmoid(out_fake.detach()).mean().item()
            bar.update(1)
            if it % 10 == 0:
                bar.set_postfix(loss_d=f"{loss_d:.3f}", loss_g=f"{loss_g.item():.3f}")
        bar.close()
        recalibrate_batchnorm(G, tcfg)
        if G_ema is not None:
            recalibrate_batchnorm(G_ema, tcfg)
        seconds += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, **{key: v / iters for key, v in sums.items()}, "seconds": seconds})
        evaluated = tcfg.eval_every and ((epoch + 1) % tcfg.eval_every == 0 or epoch + 1 == tcfg.epochs)
        if evaluated:  # not timed: `seconds` is training time
            history[-1].update(gan_metrics(G_out, tcfg, clf, stats))
            if on_metrics is not None:
                on_metrics(epoch + 1, history[-1])
        save_grid(run_dir / f"samples-epoch{epoch + 1:03d}.png", sample_grid(G_out, tcfg), nrow=10)
        state = {"G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict()}
        if G_ema is not None:
            state["G_ema"] = G_ema.state_dict()
        ck_data = _ck_dict("gan", cfg, tcfg, epoch + 1, state, history, data, seconds)
        save_checkpoint(run_dir / CHECKPOINT_NAME, ck_data)
        if evaluated and history[-1]["frechet_distance"] < best_fd:
            best_fd = history[-1]["frechet_distance"]
            save_checkpoint(run_dir / BEST_NAME, ck_data)
    return run_dir / CHECKPOINT_NAME


def evaluate_classifier(model: Classifier, data: Dataset, *, batch_size: int = 1000) -> float:
    """Top-1 accuracy on ``data``."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(data.labels), batch_size):
            logits, _ = model.forward_float(_to_float(data.images[i : i + batch_size]))
            correct += int((logits.argmax(1) == data.labels[i : i + batch_size]).sum())
    return correct / len(data.labels)


def classifier_epoch(model: Classifier, opt: torch.optim.Optimizer, train: Dataset, tcfg: TrainConfig, epoch: int,
                     *, progress: bool = False) -> float:
    """One epoch of the classifier recipe on ``train``; returns the mean loss.

    The recipe: minibatches of ``tcfg.batch_size`` in an order seeded by (seed, epoch), random
    horizontal flips, cross-entropy, a cosine learning-rate schedule over ``tcfg.epochs`` that is a
    function of the epoch alone (so a resumed run and the Classification Accuracy Score's runs,
    ``export/cas.py``, train exactly as ``train_classifier`` does).
    """
    torch.manual_seed(tcfg.seed * 1_000_003 + epoch)  # dropout
    gen = torch.Generator().manual_seed(tcfg.seed * 1_000_003 + epoch)
    for group in opt.param_groups:
        group["lr"] = tcfg.lr * 0.5 * (1 + math.cos(math.pi * epoch / tcfg.epochs))
    bs, n = tcfg.batch_size, len(train.labels)
    iters = max(n // bs, 1)
    perm = torch.randperm(n, generator=gen)
    model.train()
    total = 0.0
    bar = _progress(iters, f"epoch {epoch + 1}/{tcfg.epochs}", progress)
    for it in range(iters):
        idx = perm[it * bs : (it + 1) * bs]
        x = _to_float(train.images[idx])  # (b, C, S, S) in [-1, 1]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        logits, _ = model.forward_float(x)
        loss = nn.functional.cross_entropy(logits, train.labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()
        bar.update(1)
        if it % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return total / iters


def train_classifier(
    cfg: ClassifierConfig,
    tcfg: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Train (or resume) the sample classifier: Adam with a cosine schedule, random flips."""
    run_dir, ck, cfg, tcfg = _start_run(run_dir, resume, "classifier", cfg, tcfg)
    kw = dict(data_dir=tcfg.data_dir, image_size=cfg.image_size, channels=cfg.channels)
    train = load_dataset(tcfg.dataset, split="train", limit=tcfg.limit, **kw)
    test = load_dataset(tcfg.dataset, split="test", **kw)
    torch.manual_seed(tcfg.seed)
    model = Classifier(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2))
    start, history, seconds = 0, [], 0.0
    if ck is not None:
        model.load_state_dict(ck.state["model"])
        opt.load_state_dict(ck.state["opt"])
        start, history, seconds = ck.epoch, ck.history, ck.train_seconds
    for epoch in range(start, tcfg.epochs):
        t0 = time.perf_counter()
        loss = classifier_epoch(model, opt, train, tcfg, epoch, progress=progress)
        acc = evaluate_classifier(model, test)
        seconds += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": loss, "test_accuracy": acc, "seconds": seconds})
        if progress:
            print(f"epoch {epoch + 1}: test accuracy {acc:.4f}", flush=True)
        state = {"model": model.state_dict(), "opt": opt.state_dict()}
        save_checkpoint(run_dir / CHECKPOINT_NAME, _ck_dict("classifier", cfg, tcfg, epoch + 1, state, history, train, seconds))
    return run_dir / CHECKPOINT_NAME


class PatchSampler:
    """Random training pairs: an HR crop of (patch * scale)^2 streamed from the photos
    (``CropStream``: photos decoded one at a time, never all kept), flipped and rotated at random,
    and its LR: Pillow's bicubic downscale, or with ``degradation="real"`` a random real-world
    degradation (``export/degrade.degrade_real``). Deterministic per ``rng``: one sampler per (seed, epoch)."""

    def __init__(self, sources: list[PhotoSource], scale: int, patch: int, rng: np.random.Generator, *,
                 degradation: str = "bicubic") -> None:
        self.crops = CropStream(sources, patch * scale, rng)
        self.rng, self.scale, self.degradation = rng, scale, degradation

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR (n, 3, p, p), HR (n, 3, p*s, p*s)) float in [0, 1]."""
        lrs, hrs = [], []
        for crop in self.crops.take(n):
            if self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            crop = np.rot90(crop, int(self.rng.integers(0, 4)))
            hr, lr = degrade(np.ascontiguousarray(crop), self.scale)
            if self.degradation == "real":
                lr = degrade_real(hr, self.scale, self.rng)
            hrs.append(hr)
            lrs.append(lr)
        to_t = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
        return to_t(lrs), to_t(hrs)


def upscale_torch(G: SRGenerator, lr: np.ndarray) -> np.ndarray:
    """One (h, w, 3) uint8 image through the torch module, rounded to uint8 as the runtime does."""
    x = torch.from_numpy(np.array(lr, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, h, w)
    with torch.inference_mode():
        y = G(x)[0].clamp(0, 1).permute(1, 2, 0)  # (sh, sw, 3)
    return (y * 255.0).round().to(torch.uint8).numpy()


def sr_held_out_scores(G: SRGenerator, degradation: str = "bicubic") -> dict[str, float]:
    """Mean PSNR / SSIM (Y, border = scale) of G and of bicubic on the five bundled held-out photos,
    their LR made by the evaluation ``degradation`` (bicubic or fixed-real)."""
    was_training = G.training
    G.eval()
    scores = []
    for src in bundled_sources("eval"):
        hr, lr = held_out_pair(src.name, src.load(), G.cfg.scale, degradation)
        scores.append(score_images(src.name, hr, lr, upscale_torch(G, lr), G.cfg.scale))
    G.train(was_training)
    mean = lambda f: float(np.mean([getattr(sc, f) for sc in scores]))  # noqa: E731
    gain = mean("psnr_model") - mean("psnr_bicubic")
    return {"eval_psnr": mean("psnr_model"), "eval_gain_db": gain, "eval_ssim": mean("ssim_model")}


def _sr_description(tcfg: SRTrainConfig, sources: list[PhotoSource]) -> str:
    bundled = [s.name for s in sources if s.key.startswith("pixels:")]
    text = "scikit-image / scikit-learn photos: " + ", ".join(bundled)
    walls = [s.name for s in sources if not s.key.startswith("pixels:")]
    if walls:
        versions = ", ".join(f"{p} {v}" for p, (v, _) in WALLPAPER_PACKAGES.items())
        text += f"; Debian wallpaper photos ({versions}): " + ", ".join(walls)
    return text


def train_sr(
    cfg: SRConfig,
    tcfg: SRTrainConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> Path:
    """Train (or resume) an upscaler: stage ``pixel`` (L1) or ``adversarial`` (L1 + GAN + feature loss).

    Stage 2 starts from the stage-1 checkpoint given as ``tcfg.init``; stage 1 given ``tcfg.init``
    fine-tunes that checkpoint (e.g. a bicubic-trained model on ``tcfg.degradation="real"``). Each epoch is
    ``steps_per_epoch`` steps on fresh random patches; a checkpoint follows it. With ``tcfg.ema``
    an average of the weights is kept (``G_ema``: what is evaluated and exported); with
    ``tcfg.eval_every`` the history records its held-out PSNR / SSIM. ``on_epoch(record)`` gets
    each epoch's history entry (the CLI logs it).
    """
    run_dir, ck, cfg, tcfg = _start_run(run_dir, resume, "sr", cfg, tcfg)
    sources = sr_training_sources(tcfg.photos, limit=tcfg.limit)
    torch.manual_seed(tcfg.seed)
    G = SRGenerator(cfg)
    opt_g = torch.optim.Adam(G.parameters(), lr=tcfg.lr, betas=(0.9, 0.999))
    adversarial = tcfg.stage == "adversarial"
    D = SRDiscriminator() if adversarial else None
    opt_d = torch.optim.Adam(D.parameters(), lr=tcfg.lr, betas=(0.9, 0.999)) if adversarial else None
    start, history, seconds = 0, [], 0.0
    if ck is not None:
        G.load_state_dict(ck.state["G"])
        opt_g.load_state_dict(ck.state["opt_g"])
        if adversarial:
            D.load_state_dict(ck.state["D"])
            opt_d.load_state_dict(ck.state["opt_d"])
        start, history, seconds = ck.epoch, ck.history, ck.train_seconds
    elif adversarial or tcfg.init:
        if not tcfg.init:
            raise CheckpointError("the adversarial stage starts from a pixel-stage checkpoint: pass --init RUN_DIR")
        init = load_checkpoint(tcfg.init)
        if init.kind != "sr" or init.model_config != cfg:
            raise CheckpointError(f"--init {tcfg.init} is not an upscaler with this configuration ({cfg})")
        # Both stages start from what the earlier run exported (its EMA weights), with a fresh optimiser;
        # the training time carries on from it.
        G.load_state_dict(init.state.get("G_ema", init.state["G"]))
        seconds = init.train_seconds
    G_ema = copy.deepcopy(G) if tcfg.ema else None
    if G_ema is not None and ck is not None and "G_ema" in ck.state:
        G_ema.load_state_dict(ck.state["G_ema"])
    G_out = G_ema if G_ema is not None else G
    bce = nn.BCEWithLogitsLoss()
    total_steps = tcfg.epochs * tcfg.steps_per_epoch
    description = _sr_description(tcfg, sources)
    for epoch in range(start, tcfg.epochs):
        t0 = time.perf_counter()
        sampler = PatchSampler(sources, cfg.scale, tcfg.patch, np.random.default_rng([tcfg.seed, epoch]),
                               degradation=tcfg.degradation)
        sums = {"l1": 0.0, "adv_g": 0.0, "loss_d": 0.0}
        bar = _progress(tcfg.steps_per_epoch, f"epoch {epoch + 1}/{tcfg.epochs}", progress)
        G.train()
        for it in range(tcfg.steps_per_epoch):
            step = epoch * tcfg.steps_per_epoch + it
            for group in opt_g.param_groups:  # cosine schedule, a function of the step alone
                group["lr"] = tcfg.lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            lr_img, hr_img = sampler.batch(tcfg.batch_size)
            sr = G(lr_img)
            l1 = nn.functional.l1_loss(sr, hr_img)
            loss = l1
            if adversarial:
                opt_d.zero_grad(set_to_none=True)
                out_real, _ = D(hr_img)  # real and generated through D separately, as in the GAN recipe
                out_fake, _ = D(sr.detach().clamp(0, 1))
                loss_d = bce(out_real, torch.ones_like(out_real)) + bce(out_fake, torch.zeros_like(out_fake))
                loss_d.backward()
                opt_d.step()
                logit, feat_sr = D(sr.clamp(0, 1))
                adv = bce(logit, torch.ones_like(logit))
                loss = loss + tcfg.adv_weight * adv
                if tcfg.feature_weight:
                    with torch.no_grad():
                        _, feat_hr = D(hr_img)
                    loss = loss + tcfg.feature_weight * nn.functional.l1_loss(feat_sr, feat_hr)
                sums["adv_g"] += adv.item()
                sums["loss_d"] += loss_d.item()
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            if G_ema is not None:
                with torch.no_grad():
                    for pe, p in zip(G_ema.parameters(), G.parameters()):
                        pe.lerp_(p, 1.0 - tcfg.ema)
            sums["l1"] += l1.item()
            bar.update(1)
            if it % 10 == 0:
                bar.set_postfix(l1=f"{l1.item():.4f}")
        bar.close()
        seconds += time.perf_counter() - t0
        record = {"epoch": epoch + 1, **{k: v / tcfg.steps_per_epoch for k, v in sums.items()}, "seconds": seconds}
        if tcfg.eval_every and ((epoch + 1) % tcfg.eval_every == 0 or epoch + 1 == tcfg.epochs):
            record.update(sr_held_out_scores(G_out, "fixed-real" if tcfg.degradation == "real" else "bicubic"))
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        state = {"G": G.state_dict(), "opt_g": opt_g.state_dict()}
        if G_ema is not None:
            state["G_ema"] = G_ema.state_dict()
        if adversarial:
            state.update(D=D.state_dict(), opt_d=opt_d.state_dict())
        save_checkpoint(run_dir / CHECKPOINT_NAME, _ck_dict("sr", cfg, tcfg, epoch + 1, state, history, description, seconds))
    return run_dir / CHECKPOINT_NAME
