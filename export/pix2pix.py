"""pix2pix on Fashion-MNIST: edges -> clothes (the "edges2shoes" task on 32x32 grayscale), trained, scored and drawn.

The recipe (Isola et al. 2017; junyanz/pytorch-CycleGAN-and-pix2pix's defaults):
- G: a U-Net (``UNet``: 4x4 stride-2 convolutions down, LeakyReLU 0.2, BatchNorm, skips concatenated, ReLU
  and 4x4 transposed convolutions up, tanh out), laid out as that repository's ``UnetGenerator``;
- D: a PatchGAN (``PatchDiscriminator``: ``NLayerDiscriminator``) on the pair (edges, image) concatenated;
- loss: G: BCE(D(x, G(x)), real) + 100 x L1(G(x), y); D: (BCE real + BCE fake) / 2;
- Adam, lr 2e-4, betas (0.5, 0.999); weights N(0, 0.02) (BatchNorm N(1, 0.02)).

Data: the Fashion-MNIST images padded to 32x32 (as the bundled fashion models), their edges from
scikit-image's Canny (``edge_images``): 255 on edges, 0 elsewhere. The pair is (edges, image).

Determinism: weights come from ``seed``; epoch e shuffles with a generator seeded by (seed, e); a run resumed
from any epoch's checkpoint ends with the same weights as one that was never stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganrt.io.images import make_grid

from .config import TranslatorConfig, TranslatorTrainConfig
from .data import Dataset, load_dataset
from .train import (
    CHECKPOINT_NAME,
    Checkpoint,
    CheckpointError,
    _ck_dict,
    _progress,
    _start_run,
    _to_float,
    _to_uint8,
    save_checkpoint,
)

KIND = "translator"
_CALIB_BATCHES = 16  # batches of training edges that set BatchNorm's running statistics after each epoch


# --- the networks ------------------------------------------------------------------------------------------
class UNet(nn.Module):
    """edges (N, C_in, S, S) in [-1, 1] -> image (N, C_out, S, S) in [-1, 1]; S a multiple of 2**num_downs.

    junyanz's ``UnetGenerator`` unrolled: level i halves the side with Conv(4, 2, 1) and comes back with
    ConvTranspose(4, 2, 1), its input concatenated to its output (the skip). Width ngf * 2**min(i, 3).
    """

    def __init__(self, cfg: TranslatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.ngf * 2 ** min(i, 3) for i in range(cfg.num_downs)]  # channels after down-level i
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        for i, w in enumerate(widths):
            c_in = cfg.in_channels if i == 0 else widths[i - 1]
            inner = i == len(widths) - 1
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, True)]
            layers.append(nn.Conv2d(c_in, w, 4, 2, 1, bias=False))  # BatchNorm: no bias, as theirs
            if 0 < i and not inner:
                layers.append(nn.BatchNorm2d(w))
            self.down.append(nn.Sequential(*layers))
            c_up_in = w if inner else 2 * w  # the innermost level has no skip below it
            c_out = cfg.out_channels if i == 0 else widths[i - 1]
            up: list[nn.Module] = [nn.ReLU(True), nn.ConvTranspose2d(c_up_in, c_out, 4, 2, 1, bias=i == 0)]
            up.append(nn.Tanh() if i == 0 else nn.BatchNorm2d(c_out))
            self.up.append(nn.Sequential(*up))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.down:
            x = down(x)  # (N, w_i, S / 2**(i+1), S / 2**(i+1))
            skips.append(x)
        x = self.up[-1](skips[-1])
        for i in range(len(self.up) - 2, -1, -1):
            x = self.up[i](torch.cat([skips[i], x], 1))  # (N, 2 w_i, ...) -> (N, w_{i-1}, 2x side)
        return x


class PatchDiscriminator(nn.Module):
    """(edges, image) (N, C_in + C_out, S, S) -> patch logits (N, 1, P, P): junyanz's ``NLayerDiscriminator``."""

    def __init__(self, cfg: TranslatorConfig) -> None:
        super().__init__()
        c = cfg.in_channels + cfg.out_channels
        layers: list[nn.Module] = [nn.Conv2d(c, cfg.ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, cfg.d_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < cfg.d_layers else 1
            layers += [nn.Conv2d(cfg.ndf * prev, cfg.ndf * mult, 4, stride, 1, bias=False), nn.BatchNorm2d(cfg.ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(cfg.ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, edges: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([edges, image], 1))


def init_weights(module: nn.Module) -> None:
    """pix2pix's ``init_type='normal'``: convolutions N(0, 0.02), BatchNorm weight N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# --- the data ----------------------------------------------------------------------------------------------
def edge_images(images: torch.Tensor, *, sigma: float) -> torch.Tensor:
    """(N, 1, S, S) uint8 -> (N, 1, S, S) uint8 Canny edges (scikit-image, ``sigma``): 255 on an edge, 0 elsewhere."""
    from skimage.feature import canny

    arr = images[:, 0].numpy()
    out = np.zeros_like(arr)
    for i, im in enumerate(arr):
        out[i] = canny(im.astype(np.float32) / 255.0, sigma=sigma).astype(np.uint8) * 255
    return torch.from_numpy(out)[:, None]


@dataclass(frozen=True)
class Pairs:
    """Aligned (edges, image) pairs with the image's class."""

    edges: torch.Tensor  # (N, 1, S, S) uint8
    images: torch.Tensor  # (N, 1, S, S) uint8
    labels: torch.Tensor  # (N,) int64
    dataset: Dataset


def edge_pairs(tcfg: TranslatorTrainConfig, cfg: TranslatorConfig, *, split: str = "train", limit: int = 0) -> Pairs:
    data = load_dataset(tcfg.dataset, split=split, data_dir=tcfg.data_dir, image_size=cfg.image_size,
                        channels=cfg.out_channels, limit=limit)
    return Pairs(edge_images(data.images[:, :1], sigma=tcfg.canny_sigma).expand(-1, cfg.in_channels, -1, -1).contiguous(),
                 data.images, data.labels, data)


def training_description(tcfg: TranslatorTrainConfig, pairs: Pairs) -> str:
    return f"{pairs.dataset.description}: Canny edges (scikit-image, sigma {tcfg.canny_sigma}) paired with their images"


# --- training ----------------------------------------------------------------------------------------------
def translate_torch(G: UNet, edges_u8: torch.Tensor, *, batch_size: int = 500) -> np.ndarray:
    """(N, C_in, S, S) uint8 edges through G in eval mode -> (N, S, S, C_out) uint8, rounded as the runtime rounds."""
    was_training = G.training
    G.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(edges_u8), batch_size):
            out.append(_to_uint8(G(_to_float(edges_u8[i : i + batch_size]))))
    G.train(was_training)
    return np.concatenate(out)


def _recalibrate(G: UNet, pairs: Pairs, tcfg: TranslatorTrainConfig, epoch: int) -> None:
    """BatchNorm's running statistics as exact averages over a fixed set of training batches (eval mode uses them)."""
    bns = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    was_training = G.training
    G.train()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    gen = torch.Generator().manual_seed(tcfg.seed * 1_000_003 + epoch + 7)
    pick = torch.randperm(len(pairs.labels), generator=gen)
    with torch.no_grad():
        for b in range(_CALIB_BATCHES):
            G(_to_float(pairs.edges[pick[b * tcfg.batch_size : (b + 1) * tcfg.batch_size]]))
    for m in bns:
        m.momentum = 0.1
    G.train(was_training)


def held_out_l1(G: UNet, pairs: Pairs) -> float:
    """Mean |G(x) - y| in [0, 1] pixel units on ``pairs`` (uint8-rounded outputs)."""
    out = translate_torch(G, pairs.edges).astype(np.float32)  # (N, S, S, C)
    target = pairs.images.permute(0, 2, 3, 1).numpy().astype(np.float32)
    return float(np.abs(out - target).mean() / 255.0)


def comparison_grid(edges: np.ndarray, outputs: np.ndarray, targets: np.ndarray, *, columns: int = 4) -> np.ndarray:
    """Rows of (edges | output | target) triplets, ``columns`` triplets per row: (H, W, C) uint8.

    Each argument is (N, S, S, C) uint8."""
    triplets = np.stack([edges, outputs, targets], 1).reshape(-1, *edges.shape[1:])  # (3N, S, S, C)
    return make_grid(triplets, nrow=3 * columns)


def load_models(ck: Checkpoint) -> tuple[UNet, PatchDiscriminator]:
    G, D = UNet(ck.model_config), PatchDiscriminator(ck.model_config)
    G.load_state_dict(ck.state["G"])
    D.load_state_dict(ck.state["D"])
    G.eval()
    return G, D


def train_translator(
    cfg: TranslatorConfig,
    tcfg: TranslatorTrainConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> Path:
    """Train (or resume) a pix2pix translator in ``run_dir``; returns the checkpoint's path.

    After each epoch: BatchNorm recalibrated, the L1 of G on the first ``tcfg.eval_n`` test pairs (never trained
    on) in the history, ``samples-epochNNN.png`` (edges | output | target on test pairs), a checkpoint;
    ``on_epoch(record)`` gets the history entry (the CLI logs it).
    """
    run_dir, ck, cfg, tcfg = _start_run(run_dir, resume, KIND, cfg, tcfg)
    pairs = edge_pairs(tcfg, cfg, limit=tcfg.limit)
    test = edge_pairs(tcfg, cfg, split="test", limit=tcfg.eval_n)
    torch.manual_seed(tcfg.seed)
    G, D = UNet(cfg), PatchDiscriminator(cfg)
    init_weights(G)
    init_weights(D)
    opt_g = torch.optim.Adam(G.parameters(), lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2))
    start, history, seconds = 0, [], 0.0
    if ck is not None:
        G.load_state_dict(ck.state["G"])
        D.load_state_dict(ck.state["D"])
        opt_g.load_state_dict(ck.state["opt_g"])
        opt_d.load_state_dict(ck.state["opt_d"])
        start, history, seconds = ck.epoch, ck.history, ck.train_seconds
    bs, n = tcfg.batch_size, len(pairs.labels)
    iters = n // bs
    if iters < 1:
        raise CheckpointError(f"{n} training pairs are fewer than batch_size = {bs}")
    bce = nn.BCEWithLogitsLoss()
    description = training_description(tcfg, pairs)
    show = slice(0, 16)
    for epoch in range(start, tcfg.epochs):
        t0 = time.perf_counter()
        G.train()
        D.train()
        gen = torch.Generator().manual_seed(tcfg.seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=gen)
        sums = {"loss_d": 0.0, "adv_g": 0.0, "l1": 0.0}
        bar = _progress(iters, f"epoch {epoch + 1}/{tcfg.epochs}", progress)
        for it in range(iters):
            idx = perm[it * bs : (it + 1) * bs]
            x, y = _to_float(pairs.edges[idx]), _to_float(pairs.images[idx])  # (bs, C, S, S) in [-1, 1]
            fake = G(x)
            opt_d.zero_grad(set_to_none=True)
            out_real = D(x, y)
            out_fake = D(x, fake.detach())
            loss_d = 0.5 * (bce(out_real, torch.ones_like(out_real)) + bce(out_fake, torch.zeros_like(out_fake)))
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad(set_to_none=True)
            out = D(x, fake)
            adv = bce(out, torch.ones_like(out))
            l1 = nn.functional.l1_loss(fake, y)
            (adv + tcfg.l1_weight * l1).backward()
            opt_g.step()
            sums["loss_d"] += loss_d.item()
            sums["adv_g"] += adv.item()
            sums["l1"] += l1.item() / 2.0  # [-1, 1] -> [0, 1] pixel units
            bar.update(1)
            if it % 20 == 0:
                bar.set_postfix(loss_d=f"{loss_d.item():.3f}", l1=f"{l1.item() / 2:.4f}")
        bar.close()
        _recalibrate(G, pairs, tcfg, epoch)
        seconds += time.perf_counter() - t0
        record = {"epoch": epoch + 1, **{k: v / iters for k, v in sums.items()}, "test_l1": held_out_l1(G, test),
                  "seconds": seconds}
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        from ganrt.io.png import save_png

        edges = test.edges[show].permute(0, 2, 3, 1).numpy()
        targets = test.images[show].permute(0, 2, 3, 1).numpy()
        save_png(run_dir / f"samples-epoch{epoch + 1:03d}.png",
                 comparison_grid(edges, translate_torch(G, test.edges[show]), targets))
        state = {"G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict()}
        save_checkpoint(run_dir / CHECKPOINT_NAME, _ck_dict(KIND, cfg, tcfg, epoch + 1, state, history, description, seconds))
    return run_dir / CHECKPOINT_NAME


def export_translator_checkpoint(checkpoint: str | os.PathLike, output: str | os.PathLike, *, name: str,
                                 description: str = "", overwrite: bool = False) -> dict[str, Any]:
    """Export a translator checkpoint's G through ``byom.export_translator`` (size multiple, radius or whole-image
    measured; parity with torch at batch sizes 1, 3 and 8); the training data and run go into the metadata."""
    from .byom import export_translator
    from .train import load_checkpoint

    ck = load_checkpoint(checkpoint)
    if ck.kind != KIND:
        raise CheckpointError(f"{checkpoint} is a {ck.kind} checkpoint, not a translator")
    G, _ = load_models(ck)
    cfg, tcfg = ck.model_config, ck.train_config
    return export_translator(
        G, output, name=name, value_range=(-1.0, 1.0), color_order="rgb",
        description=description or (f"pix2pix U-Net ({cfg.num_downs} levels, ngf {cfg.ngf}) trained with a "
                                    f"{cfg.d_layers}-layer PatchGAN: Canny edges -> the {cfg.image_size}x{cfg.image_size} "
                                    f"grayscale images they were taken from"),
        training_data=ck.data, overwrite=overwrite,
        extra={"epochs": ck.epoch, "train_seconds": round(ck.train_seconds, 1), "model_config": cfg.to_dict(),
               "train_config": tcfg.to_dict(), "final_test_l1": ck.history[-1].get("test_l1") if ck.history else None})


# --- evaluation (through the runtime) ------------------------------------------------------------------------
def _l1_psnr(images: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Mean L1 in [0, 1] units and mean per-image PSNR (dB, peak 255) of uint8 (N, ...) ``images`` to ``targets``."""
    from .quantize import psnr_uint8

    diff = np.abs(images.astype(np.float64) - targets.astype(np.float64))
    psnrs = [psnr_uint8(a, b) for a, b in zip(images, targets)]
    finite = [p for p in psnrs if np.isfinite(p)]
    return {"l1": round(float(diff.mean() / 255.0), 5), "psnr_db": round(float(np.mean(finite)), 3),
            "identical_images": len(psnrs) - len(finite)}


def _settings_of(tr: Any, *, dataset: str, data_dir: str) -> tuple[TranslatorTrainConfig, TranslatorConfig]:
    """The data settings a translator file was trained with (its training record, written by
    ``export_translator_checkpoint``), so its test edges are made as its training edges were; else the defaults."""
    record = tr.info.training.get("adopted", {})
    tc, mc = record.get("train_config", {}), record.get("model_config", {})
    tcfg = TranslatorTrainConfig(dataset=tc.get("dataset", dataset), data_dir=data_dir or tc.get("data_dir", ""),
                                 canny_sigma=float(tc.get("canny_sigma", 1.0)))
    cfg = TranslatorConfig(image_size=int(mc.get("image_size", 32)), in_channels=tr.in_channels,
                           out_channels=tr.out_channels, num_downs=1)  # only the size and the channels are read
    return tcfg, cfg


def evaluate_translator(model: str | os.PathLike, *, n: int = 0, classifier: str = "fashion-classifier",
                        dataset: str = "fashion-mnist", data_dir: str = "", threads: int | None = None) -> dict[str, Any]:
    """How a translator file does on the held-out test split, against two baselines, through the runtime.

    The edges are made as training made them (Canny's sigma from the file's training record). Scores, each on
    the first ``n`` test pairs (0 = all): L1 and PSNR to the targets of the model's outputs, of the identity
    (the edge image itself) and of the mean training image; ``classifier``'s accuracy on the outputs, on
    the real images and on the edges against the true classes. Returns the report (JSON-ready).
    """
    import ganrt

    tr = ganrt.load(model, kind="translator", threads=threads)
    tcfg, cfg = _settings_of(tr, dataset=dataset, data_dir=data_dir)
    test = edge_pairs(tcfg, cfg, split="test", limit=n)
    train = load_dataset(tcfg.dataset, split="train", data_dir=tcfg.data_dir, image_size=cfg.image_size,
                         channels=tr.out_channels)
    edges = test.edges.permute(0, 2, 3, 1).numpy()  # (N, S, S, C_in)
    targets = test.images.permute(0, 2, 3, 1).numpy()  # (N, S, S, C_out)
    t0 = time.perf_counter()
    outputs = tr.translate_many(edges)
    seconds = time.perf_counter() - t0
    outputs = outputs.reshape(targets.shape)
    mean = train.images.float().mean(0).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (S, S, C)
    identity = edges if edges.shape == targets.shape else np.repeat(edges[..., :1], targets.shape[-1], -1)
    report: dict[str, Any] = {
        "model": tr.name, "file_sha256": tr.sha256,
        "test_pairs": int(len(targets)), "data": test.dataset.description, "canny_sigma": tcfg.canny_sigma,
        "translate_seconds": round(seconds, 2),
        "model_vs_target": _l1_psnr(outputs, targets),
        "identity_vs_target": _l1_psnr(identity, targets),
        "mean_train_image_vs_target": _l1_psnr(np.broadcast_to(mean, targets.shape), targets),
    }
    if classifier:
        judge = ganrt.load(classifier, kind="classifier", threads=threads)
        labels = test.labels.numpy()
        if tuple(judge.image_shape) == tuple(targets.shape[1:]):
            acc = lambda x: round(float(np.mean(judge.predict(x)[0] == labels)), 4)  # noqa: E731
            report["classifier"] = {"name": judge.name, "accuracy_on_outputs": acc(outputs),
                                    "accuracy_on_real_images": acc(targets), "accuracy_on_edges": acc(identity)}
    return report


def figure(model: str | os.PathLike, *, per_class: int = 2, columns: int = 4, dataset: str = "fashion-mnist",
           data_dir: str = "", scale: int = 3) -> np.ndarray:
    """(edges | output | target) triplets of the first ``per_class`` test images of each class, through the
    runtime, enlarged ``scale`` times (nearest): the before/after picture of the docs. (H, W, C) uint8."""
    import ganrt

    tr = ganrt.load(model, kind="translator")
    tcfg, cfg = _settings_of(tr, dataset=dataset, data_dir=data_dir)
    test = edge_pairs(tcfg, cfg, split="test", limit=2000)
    pick = np.concatenate([np.nonzero(test.labels.numpy() == k)[0][:per_class] for k in range(int(test.labels.max()) + 1)])
    edges = test.edges[pick].permute(0, 2, 3, 1).numpy()
    targets = test.images[pick].permute(0, 2, 3, 1).numpy()
    outputs = tr.translate_many(edges).reshape(targets.shape)
    grid = comparison_grid(edges, outputs, targets, columns=columns)
    return grid.repeat(scale, 0).repeat(scale, 1)
