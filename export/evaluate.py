"""Upscaler quality on the held-out photos: PSNR and SSIM on Y against Pillow's bicubic.

Runs the exported ONNX file through the ganrt runtime (what users get), not the torch module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

import ganrt
from ganrt.evaluate.metrics import psnr_y, ssim_y
from ganrt.io.images import bicubic_resize, make_grid

from .data import PhotoSource, bundled_sources, degrade, wallpaper_sources


@dataclass(frozen=True)
class SRScore:
    image: str
    size: str  # HR size evaluated, WxH
    psnr_bicubic: float
    psnr_model: float
    ssim_bicubic: float
    ssim_model: float

    @property
    def gain_db(self) -> float:
        return self.psnr_model - self.psnr_bicubic


def score_images(name: str, hr: np.ndarray, lr: np.ndarray, sr: np.ndarray, scale: int) -> SRScore:
    """PSNR / SSIM on Y (border = scale) of ``sr`` and of Pillow's bicubic upscaling of ``lr``, against ``hr``."""
    bic = bicubic_resize(lr, (hr.shape[1], hr.shape[0]))
    return SRScore(
        image=name, size=f"{hr.shape[1]}x{hr.shape[0]}",
        psnr_bicubic=psnr_y(bic, hr, border=scale), psnr_model=psnr_y(sr, hr, border=scale),
        ssim_bicubic=ssim_y(bic, hr, border=scale), ssim_model=ssim_y(sr, hr, border=scale),
    )


def held_out_sets(photos_dir: str = "") -> dict[str, list[PhotoSource]]:
    """The held-out photos by set: ``bundled`` (today's five), and ``wallpapers`` (six) with ``photos_dir``."""
    sets = {"bundled": bundled_sources("eval")}
    if photos_dir:
        sets["wallpapers"] = wallpaper_sources(photos_dir, "eval")
    return sets


def evaluate_upscaler(model: str, *, sources: list[PhotoSource] | None = None, threads: int | None = None,
                      keep_images: bool = True) -> tuple[list[SRScore], dict[str, np.ndarray]]:
    """Scores per held-out photo (``sources``, default the five bundled ones), and the (bicubic,
    model, original) images for crops (``keep_images``)."""
    up = ganrt.load(model, kind="upscaler", threads=threads)
    s = up.scale
    scores, images = [], {}
    for src in bundled_sources("eval") if sources is None else sources:
        hr, lr = degrade(src.load(), s)
        sr = up.upscale(lr)
        scores.append(score_images(src.name, hr, lr, sr, s))
        if keep_images:
            images[src.name] = np.stack([bicubic_resize(lr, (hr.shape[1], hr.shape[0])), sr, hr])
    return scores, images


def markdown_table(model: str, scores: list[SRScore]) -> str:
    rows = [f"| {model} | photo | bicubic PSNR | {model} PSNR | gain | bicubic SSIM | {model} SSIM |",
            "|---|---|---|---|---|---|---|"]
    for sc in scores:
        rows.append(f"| | {sc.image} ({sc.size}) | {sc.psnr_bicubic:.2f} | {sc.psnr_model:.2f} | {sc.gain_db:+.2f} dB "
                    f"| {sc.ssim_bicubic:.4f} | {sc.ssim_model:.4f} |")
    mean = lambda f: float(np.mean([getattr(sc, f) for sc in scores]))  # noqa: E731
    rows.append(f"| | **mean** | {mean('psnr_bicubic'):.2f} | {mean('psnr_model'):.2f} | "
                f"**{mean('psnr_model') - mean('psnr_bicubic'):+.2f} dB** | {mean('ssim_bicubic'):.4f} | "
                f"{mean('ssim_model'):.4f} |")
    return "\n".join(rows)


def summary(scores: list[SRScore]) -> dict:
    return {
        "per_image": [asdict(sc) | {"gain_db": sc.gain_db} for sc in scores],
        "mean_psnr_bicubic": float(np.mean([sc.psnr_bicubic for sc in scores])),
        "mean_psnr_model": float(np.mean([sc.psnr_model for sc in scores])),
        "mean_gain_db": float(np.mean([sc.gain_db for sc in scores])),
        "mean_ssim_bicubic": float(np.mean([sc.ssim_bicubic for sc in scores])),
        "mean_ssim_model": float(np.mean([sc.ssim_model for sc in scores])),
    }


def crops(images: dict[str, np.ndarray], *, size: int = 96, zoom: int = 2) -> np.ndarray:
    """One row per photo: bicubic | model | original, a size x size crop around the most detailed
    window (largest gradient energy), enlarged ``zoom`` x (nearest) so pixels stay visible."""
    tiles = []
    for triple in images.values():
        hr = triple[2].astype(np.float32).mean(axis=2)
        gy, gx = np.abs(np.diff(hr, axis=0))[:, :-1], np.abs(np.diff(hr, axis=1))[:-1]
        energy = gy + gx
        step = size // 2
        best, pos = -1.0, (0, 0)
        for y in range(0, max(energy.shape[0] - size, 0) + 1, step):
            for x in range(0, max(energy.shape[1] - size, 0) + 1, step):
                e = float(energy[y : y + size, x : x + size].sum())
                if e > best:
                    best, pos = e, (y, x)
        y, x = pos
        for img in triple:
            c = img[y : y + size, x : x + size]
            tiles.append(c.repeat(zoom, axis=0).repeat(zoom, axis=1))
    return make_grid(np.stack(tiles), nrow=3, padding=4)
