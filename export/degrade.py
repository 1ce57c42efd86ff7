"""Degradations for upscalers of real photos (``sr-x4-real``), in numpy and Pillow.

Real photos are not bicubic downscales: they were blurred by the lens and by motion, resized by
cameras and web pages, carry sensor noise, and were JPEG-compressed, often more than once. A model
trained on bicubic pairs sharpens all of that. Real-ESRGAN (Wang et al. 2021) trains on a random
*second-order* degradation instead; ``degrade_real`` follows its structure:

    round 1, at HR scale:    blur -> random resize -> noise -> JPEG
    round 2 (probability):   blur -> resize to about LR size -> noise
    final:                   resize to exactly 1/scale (random method) -> JPEG

Each step is one function on (H, W, 3) uint8 (every intermediate image is 8-bit, as a real file
is). Every random choice comes from the ``rng`` passed in, so a seed gives the same image.

The ranges (``DegradeConfig``) are milder than Real-ESRGAN's (sigma of noise up to 15 instead of
30, JPEG quality from 40 instead of 30, no sinc or plateau kernels): our x4 body is far smaller
than RRDBNet and has less capacity to spend on undoing heavy damage.

``degrade_fixed`` is the evaluation pipeline, with no random choices except the noise itself:
bicubic x 1/scale, Gaussian noise sigma = 5 (of 255), JPEG quality 75, seeded by the photo's name.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field

import numpy as np

from ganrt.core.errors import GanrtError

RESIZE_METHODS = ("bicubic", "bilinear", "area")
EVAL_DEGRADATIONS = ("bicubic", "fixed-real")  # what sr-eval and --eval-every score on
TRAIN_DEGRADATIONS = ("bicubic", "real")  # what train sr makes its LR patches with


class DegradeError(GanrtError, ValueError):
    """A degradation setting is out of range."""


def _pil_filter(method: str):
    from PIL import Image

    try:
        return {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                "area": Image.Resampling.BOX}[method]
    except KeyError:
        raise DegradeError(f"resize method must be one of {', '.join(RESIZE_METHODS)}, got {method!r}") from None


# --- the steps -------------------------------------------------------------------------------------

def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float = 0.0) -> np.ndarray:
    """(size, size) float64 anisotropic Gaussian, summing to 1: standard deviations ``sigma_x`` and
    ``sigma_y`` (pixels) along axes rotated by ``theta`` (radians). Isotropic when sigma_x == sigma_y."""
    if size < 1 or size % 2 == 0:
        raise DegradeError(f"kernel size must be odd and >= 1, got {size}")
    if sigma_x <= 0 or sigma_y <= 0:
        raise DegradeError(f"kernel sigmas must be > 0, got {sigma_x}, {sigma_y}")
    r = np.arange(size, dtype=np.float64) - size // 2
    xx, yy = np.meshgrid(r, r)  # (size, size)
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy  # coordinates along the kernel's own axes
    k = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return k / k.sum()


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 convolved with ``kernel`` (odd square), borders reflected; same size."""
    from scipy import fft

    k = kernel.shape[0]
    p = k // 2
    x = np.pad(img.transpose(2, 0, 1).astype(np.float32), ((0, 0), (p, p), (p, p)), mode="reflect")  # (3, H+2p, W+2p)
    shape = tuple(fft.next_fast_len(n, real=True) for n in x.shape[1:])
    # Convolution by FFT (a few ms at 128^2, where a direct 21x21 one takes ~100); zero-padded to
    # ``shape``, output (i, j) is the full convolution at (i, j), so the valid part starts at k - 1.
    y = fft.irfft2(fft.rfft2(x, s=shape) * fft.rfft2(kernel.astype(np.float32), s=shape), s=shape)
    y = y[:, k - 1 : k - 1 + img.shape[0], k - 1 : k - 1 + img.shape[1]].transpose(1, 2, 0)  # (H, W, 3)
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def resize(img: np.ndarray, size: tuple[int, int], method: str = "bicubic") -> np.ndarray:
    """(H, W, 3) uint8 resized to ``size`` = (width, height) with Pillow's ``method`` (area = box)."""
    from PIL import Image

    w, h = size
    if w < 1 or h < 1:
        raise DegradeError(f"resize target must be at least 1x1, got {w}x{h}")
    return np.asarray(Image.fromarray(img).resize((w, h), _pil_filter(method)), dtype=np.uint8)


def _add(img: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img.astype(np.float32) + noise), 0, 255).astype(np.uint8)


def gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator, *, gray: bool = False) -> np.ndarray:
    """Add N(0, sigma^2) noise (sigma on 0..255), per channel, or one value for all three (``gray``)."""
    if sigma < 0:
        raise DegradeError(f"noise sigma must be >= 0, got {sigma}")
    shape = img.shape[:2] + ((1,) if gray else (img.shape[2],))
    return _add(img, rng.normal(0.0, sigma, size=shape).astype(np.float32))


def poisson_noise(img: np.ndarray, peak: float, rng: np.random.Generator, *, gray: bool = False) -> np.ndarray:
    """Shot noise: a pixel of value v counts Poisson(v / 255 * peak) photons; the noise is signal
    dependent, with std 255 * sqrt(v / 255 / peak) (about 255 * sqrt(0.5 / peak) at mid-grey).
    ``gray``: drawn on the luma and added to all three channels."""
    if peak <= 0:
        raise DegradeError(f"Poisson peak must be > 0, got {peak}")
    x = img.astype(np.float64) / 255.0
    if gray:
        x = (x @ np.array([0.299, 0.587, 0.114]))[..., None]  # (H, W, 1)
    noise = (rng.poisson(x * peak) / peak - x) * 255.0
    return _add(img, noise.astype(np.float32))


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 through Pillow's JPEG encoder at ``quality`` (1..95, 4:2:0 as Pillow defaults) and back."""
    from PIL import Image

    if not 1 <= quality <= 95:
        raise DegradeError(f"JPEG quality must be in 1..95, got {quality}")
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as out:
        return np.asarray(out.convert("RGB"), dtype=np.uint8)


# --- the random pipeline ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RoundConfig:
    """One round of random degradation. Probabilities in [0, 1]; ranges are (low, high)."""

    blur_prob: float = 1.0
    sigma: tuple[float, float] = (0.2, 2.0)  # blur std, pixels of this round's input
    aniso_prob: float = 0.4  # else isotropic; anisotropic: two sigmas and a random angle
    kernel_size: tuple[int, int] = (7, 21)  # odd sizes drawn from this range, as Real-ESRGAN
    resize_prob: tuple[float, float, float] = (0.2, 0.6, 0.2)  # up, down, keep
    resize_range: tuple[float, float] = (0.3, 1.5)  # factor: up draws from (1, high), down from (low, 1)
    noise_prob: float = 1.0
    gaussian_prob: float = 0.5  # else Poisson
    noise_sigma: tuple[float, float] = (1.0, 15.0)  # Gaussian std on 0..255
    poisson_peak: tuple[float, float] = (150.0, 8000.0)  # log-uniform; mid-grey std about 15 .. 2
    gray_prob: float = 0.4
    jpeg_prob: float = 1.0
    jpeg_quality: tuple[int, int] = (40, 95)

    def __post_init__(self) -> None:
        probs = {"blur_prob": self.blur_prob, "aniso_prob": self.aniso_prob, "noise_prob": self.noise_prob,
                 "gaussian_prob": self.gaussian_prob, "gray_prob": self.gray_prob, "jpeg_prob": self.jpeg_prob}
        for name, p in probs.items():
            if not 0.0 <= p <= 1.0:
                raise DegradeError(f"{name} must be in [0, 1], got {p}")
        if len(self.resize_prob) != 3 or min(self.resize_prob) < 0 or abs(sum(self.resize_prob) - 1.0) > 1e-6:
            raise DegradeError(f"resize_prob must be three probabilities (up, down, keep) summing to 1, got {self.resize_prob}")
        ranges = {"sigma": self.sigma, "resize_range": self.resize_range, "noise_sigma": self.noise_sigma,
                  "poisson_peak": self.poisson_peak, "kernel_size": self.kernel_size, "jpeg_quality": self.jpeg_quality}
        for name, (lo, hi) in ranges.items():
            if not 0 < lo <= hi:
                raise DegradeError(f"{name} must be (low, high) with 0 < low <= high, got {(lo, hi)}")
        if self.kernel_size[1] < 1 or self.jpeg_quality[1] > 95:
            raise DegradeError("kernel_size must reach an odd size >= 1 and jpeg_quality stay within 1..95")


@dataclass(frozen=True)
class DegradeConfig:
    """Real-ESRGAN-style second-order degradation; round 2 works near the LR size."""

    first: RoundConfig = field(default_factory=RoundConfig)
    second: RoundConfig = field(default_factory=lambda: RoundConfig(
        blur_prob=0.8, sigma=(0.2, 1.2), resize_prob=(0.3, 0.4, 0.3), resize_range=(0.5, 1.2),
        noise_sigma=(1.0, 12.0), poisson_peak=(250.0, 8000.0), jpeg_prob=0.0))
    second_order_prob: float = 0.5
    final_methods: tuple[str, ...] = RESIZE_METHODS
    final_jpeg_prob: float = 1.0
    final_jpeg_quality: tuple[int, int] = (40, 95)

    def __post_init__(self) -> None:
        for name in ("second_order_prob", "final_jpeg_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise DegradeError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for m in self.final_methods:
            _pil_filter(m)
        lo, hi = self.final_jpeg_quality
        if not 1 <= lo <= hi <= 95:
            raise DegradeError(f"final_jpeg_quality must be (low, high) within 1..95, got {(lo, hi)}")


def random_blur(img: np.ndarray, cfg: RoundConfig, rng: np.random.Generator) -> np.ndarray:
    lo, hi = cfg.kernel_size
    sizes = [k for k in range(int(lo), int(hi) + 1) if k % 2 == 1] or [int(hi) | 1]
    size = int(rng.choice(sizes))
    sx = float(rng.uniform(*cfg.sigma))
    if rng.random() < cfg.aniso_prob:
        sy, theta = float(rng.uniform(*cfg.sigma)), float(rng.uniform(0.0, np.pi))
    else:
        sy, theta = sx, 0.0
    return blur(img, gaussian_kernel(size, sx, sy, theta))


def random_resize(img: np.ndarray, cfg: RoundConfig, rng: np.random.Generator, base: tuple[int, int]) -> np.ndarray:
    """Resize to ``base`` = (width, height) times a random factor (up, down or 1), random method."""
    mode = int(rng.choice(3, p=np.asarray(cfg.resize_prob, dtype=np.float64)))
    lo, hi = cfg.resize_range
    factor = float(rng.uniform(1.0, hi)) if mode == 0 else float(rng.uniform(lo, 1.0)) if mode == 1 else 1.0
    method = RESIZE_METHODS[int(rng.integers(len(RESIZE_METHODS)))]
    w, h = max(1, round(base[0] * factor)), max(1, round(base[1] * factor))
    return img if (w, h) == (img.shape[1], img.shape[0]) else resize(img, (w, h), method)


def random_noise(img: np.ndarray, cfg: RoundConfig, rng: np.random.Generator) -> np.ndarray:
    gray = bool(rng.random() < cfg.gray_prob)
    if rng.random() < cfg.gaussian_prob:
        return gaussian_noise(img, float(rng.uniform(*cfg.noise_sigma)), rng, gray=gray)
    lo, hi = np.log(cfg.poisson_peak)
    return poisson_noise(img, float(np.exp(rng.uniform(lo, hi))), rng, gray=gray)


def random_jpeg(img: np.ndarray, quality: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    return jpeg(img, int(rng.integers(quality[0], quality[1] + 1)))


def random_round(img: np.ndarray, cfg: RoundConfig, rng: np.random.Generator, base: tuple[int, int]) -> np.ndarray:
    """One round: blur, resize around ``base`` (width, height), noise, JPEG, each with its probability.
    The random draws happen whether or not a step runs, so one seed's later choices do not shift."""
    do = rng.random(4) < np.array([cfg.blur_prob, 1.0, cfg.noise_prob, cfg.jpeg_prob])
    if do[0]:
        img = random_blur(img, cfg, rng)
    img = random_resize(img, cfg, rng, base)
    if do[2]:
        img = random_noise(img, cfg, rng)
    if do[3]:
        img = random_jpeg(img, cfg.jpeg_quality, rng)
    return img


def degrade_real(hr: np.ndarray, scale: int, rng: np.random.Generator, cfg: DegradeConfig = DegradeConfig()) -> np.ndarray:
    """(H, W, 3) uint8 with H, W multiples of ``scale`` -> its random real-world LR, (H/scale, W/scale, 3) uint8."""
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise DegradeError(f"HR size {w}x{h} is not a multiple of the scale {scale}")
    lr_size = (w // scale, h // scale)
    img = random_round(hr, cfg.first, rng, (w, h))
    second, final_jpeg = rng.random(2) < np.array([cfg.second_order_prob, cfg.final_jpeg_prob])
    if second:
        img = random_round(img, cfg.second, rng, lr_size)
    method = cfg.final_methods[int(rng.integers(len(cfg.final_methods)))]
    if (img.shape[1], img.shape[0]) != lr_size:
        img = resize(img, lr_size, method)
    if final_jpeg:
        img = random_jpeg(img, cfg.final_jpeg_quality, rng)
    return img


# --- the fixed evaluation pipeline ------------------------------------------------------------------

@dataclass(frozen=True)
class FixedDegradation:
    """The evaluation inputs of issue 19: bicubic x 1/scale, Gaussian noise, JPEG; no other randomness."""

    noise_sigma: float = 5.0  # on 0..255, per channel
    jpeg_quality: int = 75
    seed: int = 0  # the noise of a photo is drawn from (seed, crc32 of its name): the same whatever the order


def degrade_fixed(name: str, hr: np.ndarray, scale: int, cfg: FixedDegradation = FixedDegradation()
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(HR cropped to a multiple of scale, its fixed real-world LR), both uint8."""
    from .data import degrade

    hr, lr = degrade(hr, scale)
    rng = np.random.default_rng([cfg.seed, zlib.crc32(name.encode())])
    return hr, jpeg(gaussian_noise(lr, cfg.noise_sigma, rng), cfg.jpeg_quality)


def held_out_pair(name: str, hr: np.ndarray, scale: int, degradation: str = "bicubic") -> tuple[np.ndarray, np.ndarray]:
    """(HR, LR) of a held-out photo under an evaluation degradation (``EVAL_DEGRADATIONS``)."""
    from .data import degrade

    if degradation == "bicubic":
        return degrade(hr, scale)
    if degradation == "fixed-real":
        return degrade_fixed(name, hr, scale)
    raise DegradeError(f"evaluation degradation must be one of {', '.join(EVAL_DEGRADATIONS)}, got {degradation!r}")
