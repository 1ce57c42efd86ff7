"""Real, offline training data: MNIST-family IDX files (Fashion-MNIST from Debian) and sklearn digits.

Everything is read from local disk; nothing is downloaded, so training works on offline machines.
Images come out as uint8 (N, C, S, S) tensors with their int64 labels; 28x28 is padded to 32x32.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganrt.errors import GanrtError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGIT_CLASSES = tuple(str(d) for d in range(10))
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(GanrtError, ValueError):
    """Training data is missing or malformed."""


@dataclass(frozen=True)
class Dataset:
    images: torch.Tensor  # (N, C, S, S) uint8
    labels: torch.Tensor  # (N,) int64
    class_names: tuple[str, ...]
    description: str


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzipped): magic 0x0000 TT DD, DD big-endian uint32 dims, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 0
    body = raw[4 + 4 * ndim :]
    if len(body) != count * dtype.itemsize:
        raise DataError(f"{path}: header says {dims} ({count * dtype.itemsize} bytes) but {len(body)} bytes follow")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _find(data_dir: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (data_dir / name).is_file():
            return data_dir / name
    raise DataError(
        f"{stem}[.gz] not found in {data_dir}; install Debian's dataset-fashion-mnist "
        "(apt-get install dataset-fashion-mnist) or pass --data-dir with MNIST-family IDX files"
    )


def _to_size(images: np.ndarray, image_size: int, channels: int) -> torch.Tensor:
    """(N, H, W) uint8 -> (N, C, S, S) uint8: pad 28 -> 32 with background, upscale to 64 if asked."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8))[:, None]  # (N, 1, H, W)
    h = x.shape[-1]
    if h < 32:
        left = (32 - h) // 2
        x = torch.nn.functional.pad(x, (left, 32 - h - left, left, 32 - h - left))
    if image_size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x.float(), size=(image_size, image_size), mode="bilinear", align_corners=False)
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x.expand(-1, channels, -1, -1).contiguous()


def load_dataset(
    name: str = "fashion-mnist",
    *,
    split: str = "train",
    data_dir: str = "",
    image_size: int = 32,
    channels: int = 1,
    limit: int = 0,
) -> Dataset:
    """Load ``fashion-mnist`` (or any MNIST-family ``idx`` folder) or sklearn's ``digits``."""
    if split not in ("train", "test"):
        raise DataError(f"split must be train or test, got {split!r}")
    if name in ("fashion-mnist", "idx"):
        folder = Path(data_dir) if data_dir else FASHION_MNIST_DIR
        prefix = "train" if split == "train" else "t10k"
        images = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{folder}: expected (N, H, W) images and (N,) labels, got {images.shape} and {labels.shape}")
        classes = FASHION_CLASSES if name == "fashion-mnist" else tuple(str(i) for i in range(int(labels.max()) + 1))
        description = f"Fashion-MNIST {split} split ({folder})" if name == "fashion-mnist" else f"IDX {split} split ({folder})"
    elif name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise DataError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
        d = load_digits()
        x = (d.images * (255.0 / 16.0)).round().astype(np.uint8)  # (1797, 8, 8), 0..16 -> 0..255
        x = x.repeat(4, axis=1).repeat(4, axis=2)  # 8x8 -> 32x32, nearest
        cut = int(len(x) * 0.8)  # fixed split: first 80% train, rest test
        sel = slice(0, cut) if split == "train" else slice(cut, None)
        images, labels, classes = x[sel], d.target[sel], DIGIT_CLASSES
        description = f"scikit-learn digits {split} split"
    else:
        raise DataError(f"unknown dataset {name!r}; expected fashion-mnist, idx (with --data-dir) or digits")
    if limit:
        images, labels = images[:limit], labels[:limit]
    return Dataset(
        images=_to_size(images, image_size, channels),
        labels=torch.from_numpy(np.asarray(labels, dtype=np.int64)),
        class_names=classes,
        description=description,
    )


# Super-resolution photographs that ship inside scikit-image and scikit-learn. The split is fixed
# here: the evaluation photos are never trained on (skimage's `cat` is the same photo as
# `chelsea`, so it is left out; synthetic images such as colorwheel and checkerboard too).
SR_TRAIN_PHOTOS = (
    "astronaut", "stereo_motorcycle", "hubble_deep_field", "immunohistochemistry", "retina", "sklearn:china",
    "brick", "grass", "gravel", "moon", "coins", "clock", "cell", "page", "text",
)
SR_EVAL_PHOTOS = ("chelsea", "coffee", "rocket", "sklearn:flower", "camera")


def load_photo(name: str) -> np.ndarray:
    """One bundled photo as (H, W, 3) uint8 (grayscale photos replicated to RGB)."""
    if name.startswith("sklearn:"):
        try:
            from sklearn.datasets import load_sample_image
        except ImportError:
            raise DataError("the sklearn photos need scikit-learn: pip install scikit-learn") from None
        img = load_sample_image(name.split(":", 1)[1] + ".jpg")
    else:
        try:
            import skimage.data
        except ImportError:
            raise DataError("the training photos need scikit-image: pip install scikit-image") from None
        loader = getattr(skimage.data, name, None)
        if loader is None:
            raise DataError(f"scikit-image has no photo {name!r}")
        img = loader()
        if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity)
            img = img[0]
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3], dtype=np.uint8)


def load_photos(split: str, *, limit: int = 0) -> list[tuple[str, np.ndarray]]:
    """The fixed ``train`` or ``eval`` photos as (name, (H, W, 3) uint8)."""
    if split not in ("train", "eval"):
        raise DataError(f"split must be train or eval, got {split!r}")
    names = SR_TRAIN_PHOTOS if split == "train" else SR_EVAL_PHOTOS
    names = names[:limit] if limit else names
    return [(n.split(":")[-1], load_photo(n)) for n in names]


def degrade(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(HR cropped to a multiple of scale, its bicubic downscale by ``scale``), both uint8."""
    from ganrt.images import bicubic_resize

    h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
    hr = hr[:h, :w]
    return hr, bicubic_resize(hr, (w // scale, h // scale))
