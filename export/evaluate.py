"""Upscaler quality on the held-out photos: PSNR and SSIM on Y against Pillow's bicubic.

Runs the exported ONNX file through the ganrt runtime (what users get), not the torch module.
The LR inputs are the bicubic downscale, or (``degradation="fixed-real"``) that downscale with
Gaussian noise sigma 5 and JPEG quality 75 (``export/degrade.degrade_fixed``); the bicubic
baseline upscales the same input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

import ganrt
from ganrt.evaluate.metrics import psnr_y, ssim_y
from ganrt.io.images import bicubic_resize, make_grid

from .data import PhotoSource, bundled_sources, wallpaper_sources
from .degrade import held_out_pair


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
                      keep_images: bool = True, degradation: str = "bicubic", window: int = 0
                      ) -> tuple[list[SRScore], dict[str, np.ndarray]]:
    """Scores per held-out photo (``sources``, default the five bundled ones) on the LR that
    ``degradation`` makes, and the (input, bicubic, model, original) images for crops
    (``keep_images``; the input enlarged by pixel repetition), each (4, H, W, 3) uint8, or only
    their ``window`` x ``window`` most detailed part (``detail_window``) when ``window`` > 0."""
    up = ganrt.load(model, kind="upscaler", threads=threads)
    s = up.scale
    scores, images = [], {}
    for src in bundled_sources("eval") if sources is None else sources:
        hr, lr = held_out_pair(src.name, src.load(), s, degradation)
        sr = up.upscale(lr)
        scores.append(score_images(src.name, hr, lr, sr, s))
        if keep_images:
            shown = lr.repeat(s, axis=0).repeat(s, axis=1)
            stack = np.stack([shown, bicubic_resize(lr, (hr.shape[1], hr.shape[0])), sr, hr])  # (4, H, W, 3)
            if window:
                y, x = detail_window(hr, window)
                stack = stack[:, y : y + window, x : x + window].copy()
            images[src.name] = stack
    return scores, images


def side_by_side(per_model: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per photo: input | bicubic | each model | original, from ``evaluate_upscaler``'s images of
    several models on the same inputs. -> {photo: (2 + models, H, W, 3)}."""
    first = next(iter(per_model.values()))
    return {name: np.stack([stack[0], stack[1], *(imgs[name][2] for imgs in per_model.values()), stack[3]])
            for name, stack in first.items()}


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


def comparison_table(per_model: dict[str, list[SRScore]]) -> str:
    """One table for several models scored on the same photos: photo | bicubic | each model, as
    PSNR / gain over bicubic (SSIM)."""
    names = list(per_model)
    rows = ["| photo | bicubic | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for per in zip(*per_model.values()):
        b = per[0]
        cells = [f"{sc.psnr_model:.2f} / {sc.gain_db:+.2f} ({sc.ssim_model:.4f})" for sc in per]
        rows.append(f"| {b.image} | {b.psnr_bicubic:.2f} ({b.ssim_bicubic:.4f}) | " + " | ".join(cells) + " |")
    mean = lambda scores, f: float(np.mean([getattr(sc, f) for sc in scores]))  # noqa: E731
    first = next(iter(per_model.values()))
    cells = [f"**{mean(sc, 'psnr_model'):.2f} / {mean(sc, 'psnr_model') - mean(sc, 'psnr_bicubic'):+.2f}** "
             f"({mean(sc, 'ssim_model'):.4f})" for sc in per_model.values()]
    bicubic = f"{mean(first, 'psnr_bicubic'):.2f} ({mean(first, 'ssim_bicubic'):.4f})"
    rows.append(f"| **mean** | {bicubic} | " + " | ".join(cells) + " |")
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


def detail_window(hr: np.ndarray, size: int) -> tuple[int, int]:
    """(y, x) of the size x size window of (H, W, 3) ``hr`` with the largest gradient energy, on a
    grid of half-window steps."""
    g = hr.astype(np.float32).mean(axis=2)
    energy = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1]
    step = max(size // 2, 1)
    best, pos = -1.0, (0, 0)
    for y in range(0, max(energy.shape[0] - size, 0) + 1, step):
        for x in range(0, max(energy.shape[1] - size, 0) + 1, step):
            e = float(energy[y : y + size, x : x + size].sum())
            if e > best:
                best, pos = e, (y, x)
    return pos


CROP_SIZE = 96  # the side of a crop in the figures, HR pixels


def crops(images: dict[str, np.ndarray], *, size: int = CROP_SIZE, zoom: int = 2) -> np.ndarray:
    """One row per photo: its images side by side (e.g. input | bicubic | model | original, the
    original last), a size x size crop around the original's most detailed window (largest
    gradient energy), enlarged ``zoom`` x (nearest) so pixels stay visible."""
    tiles, columns = [], 1
    for triple in images.values():
        columns = len(triple)
        y, x = detail_window(triple[-1], size)
        for img in triple:
            c = img[y : y + size, x : x + size]
            tiles.append(c.repeat(zoom, axis=0).repeat(zoom, axis=1))
    return make_grid(np.stack(tiles), nrow=columns, padding=4)
