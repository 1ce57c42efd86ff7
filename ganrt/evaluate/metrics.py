"""Image-quality metrics in numpy: PSNR and SSIM on the luma (Y) channel, the super-resolution convention."""

from __future__ import annotations

import numpy as np


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float64 luma in [16, 235], ITU-R BT.601 (MATLAB's rgb2ycbcr)."""
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def _crop(y: np.ndarray, border: int) -> np.ndarray:
    return y[border:-border, border:-border] if border else y


def psnr_y(a: np.ndarray, b: np.ndarray, *, border: int = 0) -> float:
    """PSNR in dB between two uint8 RGB images on Y, with ``border`` pixels cropped on every side."""
    ya, yb = _crop(rgb_to_y(a), border), _crop(rgb_to_y(b), border)
    mse = float(np.mean((ya - yb) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _gauss_filter(x: np.ndarray, sigma: float = 1.5, size: int = 11) -> np.ndarray:
    """'valid' separable Gaussian filtering of (H, W): (H-size+1, W-size+1)."""
    r = np.arange(size) - size // 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    g /= g.sum()
    rows = np.lib.stride_tricks.sliding_window_view(x, size, axis=1) @ g  # (H, W-size+1)
    return np.lib.stride_tricks.sliding_window_view(rows, size, axis=0) @ g  # (H-size+1, W-size+1)


def ssim_y(a: np.ndarray, b: np.ndarray, *, border: int = 0) -> float:
    """SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) on Y."""
    x, y = _crop(rgb_to_y(a), border), _crop(rgb_to_y(b), border)
    if min(x.shape) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 after cropping, got {x.shape}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _gauss_filter(x), _gauss_filter(y)
    sxx = _gauss_filter(x * x) - mx**2
    syy = _gauss_filter(y * y) - my**2
    sxy = _gauss_filter(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(s.mean())
