"""Real, offline training data: MNIST-family IDX files (Fashion-MNIST from Debian) and sklearn digits
for the GANs; for the upscalers, the photos inside scikit-image / scikit-learn and Debian's wallpaper
photographs (``WALLPAPER_PHOTOS``), streamed as random crops by ``CropStream``.

Everything is read from local disk; nothing is downloaded, so training works on offline machines.
Images come out as uint8 (N, C, S, S) tensors with their int64 labels; 28x28 is padded to 32x32.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganrt.core.errors import GanrtError

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
    from ganrt.io.images import bicubic_resize

    h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
    hr = hr[:h, :w]
    return hr, bicubic_resize(hr, (w // scale, h // scale))


# --- Real high-resolution photographs: Debian desktop wallpapers -----------------------------------
# The one record of the wallpaper photos used for the upscalers: package, path inside the
# package (as `dpkg -x` unpacks it), name, licence (Debian copyright file; plasma: also the
# wallpaper's own upstream metadata), split and the file's sha256 at the pinned versions.
# Every other image in these packages (98 candidates looked at) is a render or digital art.
# The `eval` photos are held out like SR_EVAL_PHOTOS: `sr_training_sources` refuses to train on them.

WALLPAPER_PACKAGES = {  # package: (pinned Debian bookworm version, sha256 of the .deb)
    "mate-backgrounds": ("1.26.0-1", "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04"),
    "plasma-workspace-wallpapers": ("4:5.27.5-2", "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b"),
}
WALLPAPER_FETCH_HINT = (
    "fetch them with: apt-get update && apt-get download "
    + " ".join(f"{p}={v}" for p, (v, _) in WALLPAPER_PACKAGES.items())
    + " && for d in *.deb; do p=$(dpkg-deb -f $d Package); mkdir -p DIR/$p && dpkg -x $d DIR/$p; done"
    " (no install, no root; see docs/sr-data.md)"
)


@dataclass(frozen=True)
class WallpaperPhoto:
    package: str
    path: str  # relative to the package's unpacked root
    name: str
    size: tuple[int, int]  # (W, H)
    split: str  # train | eval
    licence: str
    sha256: str = ""  # of the file; "" = not checked


_MATE = "GPL-2+ (mate-backgrounds copyright: © {})"
_PLASMA = "GPL-2+ (Debian's blanket stanza for plasma-workspace-wallpapers); upstream LGPL-3.0, © {}"


def _mate(name: str, size: tuple[int, int], split: str, who: str, sha: str) -> WallpaperPhoto:
    path = f"usr/share/backgrounds/mate/nature/{name}.jpg"
    return WallpaperPhoto("mate-backgrounds", path, name, size, split, _MATE.format(who), sha)


def _plasma(name: str, split: str, who: str, sha: str) -> WallpaperPhoto:
    path = f"usr/share/wallpapers/{name}/contents/images/2560x1600.jpg"
    return WallpaperPhoto("plasma-workspace-wallpapers", path, name, (2560, 1600), split, _PLASMA.format(who), sha)


WALLPAPER_PHOTOS = (
    _mate("Aqua", (2560, 1600), "train", "2008 Charles Barbin",
          "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce"),
    _mate("Blinds", (1920, 1200), "train", "2008 Lennart Poettering, 2008 Andrea Cimitan",
          "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600"),
    _mate("FreshFlower", (1600, 1203), "train", "2005 Jens Ansorg",
          "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e"),
    _mate("Garden", (2560, 1600), "train", "2008 Charles Barbin",
          "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78"),
    _mate("GreenMeadow", (1280, 1024), "train", "2005 Timothy Schellhase, 2008 Lapo Calamandrei",
          "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832"),
    _mate("RainDrops", (1920, 1200), "train", '2008 "blackcombwhistler07"',
          "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16"),
    _mate("Storm", (1920, 1280), "train", "2008 Sergey Nazarov",
          "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957"),
    _mate("TwoWings", (2560, 1600), "train", "2008 Charles Barbin, 2008 Hylke Bons",
          "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb"),
    _mate("Wood", (2560, 1920), "train", "2008 Jean-François Fortin Tam",
          "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07"),
    _mate("YellowFlower", (2560, 1600), "train", "2008 Charles Barbin",
          "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306"),
    _plasma("DarkestHour", "train", "Risto Saukonpää", "8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce"),
    _plasma("FallenLeaf", "train", "Martin Klapetek", "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de"),
    _plasma("Grey", "train", "Sigi Sagi", "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed"),
    _plasma("Kite", "train", "Risto Saukonpää", "bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8"),
    _plasma("OneStandsOut", "train", "Risto Saukonpää", "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd"),
    # held out: never trained on
    _mate("Dune", (1680, 1050), "eval", "2007 Marco Cogoni, 2008 Hylke Bons",
          "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91"),
    _mate("LadyBird", (2560, 1600), "eval", "2008 Charles Barbin",
          "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d"),
    _plasma("ColdRipple", "eval", "Risto Saukonpää", "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f"),
    _plasma("ColorfulCups", "eval", "Dmitri Popov", "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d"),
    _plasma("Path", "eval", "Risto Saukonpää", "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8"),
    _plasma("summer_1am", "eval", "Risto Saukonpää", "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8"),
)


@dataclass(frozen=True)
class PhotoSource:
    """One photo that is decoded only when ``load()`` is called (and dropped by the caller after)."""

    name: str
    size: tuple[int, int]  # (H, W)
    key: str  # content identity, for the leak check: "sha256:..." of the file, or "bundled:<name>"
    load: Callable[[], np.ndarray]  # -> (H, W, 3) uint8


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """A photo file as (H, W, 3) uint8."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot decode photo {path}: {exc}") from None


def wallpaper_sources(root: str | os.PathLike, split: str, *,
                      table: tuple[WallpaperPhoto, ...] = WALLPAPER_PHOTOS) -> list[PhotoSource]:
    """The ``split`` wallpaper photos under ``root`` (a folder with one ``dpkg -x`` tree per package).

    Every listed file of the split must be there, with the listed sha256: the split and the
    numbers it gives are those of the pinned package versions, or nothing.
    """
    from PIL import Image

    if split not in ("train", "eval"):
        raise DataError(f"split must be train or eval, got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"photo folder {root} does not exist; {WALLPAPER_FETCH_HINT.replace('DIR', str(root))}")
    wanted = [p for p in table if p.split == split]
    found = [p for p in wanted if (root / p.package / p.path).is_file()]
    if not found:
        raise DataError(f"{root} holds none of the {len(wanted)} listed {split} wallpaper photos "
                        f"(e.g. {wanted[0].package}/{wanted[0].path}); {WALLPAPER_FETCH_HINT.replace('DIR', str(root))}")
    if len(found) < len(wanted):
        missing = ", ".join(f"{p.package}/{p.path}" for p in wanted if p not in found)
        raise DataError(f"{root} lacks {len(wanted) - len(found)} of the {len(wanted)} {split} wallpaper photos: {missing}")
    sources = []
    for p in found:
        path = root / p.package / p.path
        digest = _sha256(path)
        if p.sha256 and digest != p.sha256:
            version = WALLPAPER_PACKAGES.get(p.package, ("?",))[0]
            raise DataError(f"{path}: sha256 {digest[:12]}... is not the listed {p.sha256[:12]}... ({p.package} {version})")
        with Image.open(path) as img:  # header only
            w, h = img.size
        sources.append(PhotoSource(p.name, (h, w), f"sha256:{digest}", lambda path=path: read_rgb(path)))
    return sources


def bundled_sources(split: str, *, limit: int = 0) -> list[PhotoSource]:
    """The scikit-image / scikit-learn photos of ``split`` (small: each is decoded once here, for
    its size and a hash of its pixels)."""
    if split not in ("train", "eval"):
        raise DataError(f"split must be train or eval, got {split!r}")
    names = SR_TRAIN_PHOTOS if split == "train" else SR_EVAL_PHOTOS
    sources = []
    for n in names[:limit] if limit else names:
        img = load_photo(n)
        key = "pixels:" + hashlib.sha256(img.tobytes()).hexdigest()
        sources.append(PhotoSource(n.split(":")[-1], img.shape[:2], key, lambda n=n: load_photo(n)))
    return sources


def held_out_sources(photos_dir: str | os.PathLike = "") -> list[PhotoSource]:
    """Today's five held-out photos, then (with ``photos_dir``) the six held-out wallpapers."""
    return bundled_sources("eval") + (wallpaper_sources(photos_dir, "eval") if photos_dir else [])


def check_no_leak(train: list[PhotoSource], *, photos_dir: str | os.PathLike = "",
                  table: tuple[WallpaperPhoto, ...] = WALLPAPER_PHOTOS) -> None:
    """Raise if a held-out photo is among ``train``: by name, by listed sha256, or by content (the
    bundled eval photos' pixels; the held-out wallpaper files found under ``photos_dir``)."""
    held = [p for p in table if p.split == "eval"]
    clash = {p.name for p in held} & {p.name for p in table if p.split == "train"}
    if clash:
        raise DataError(f"the wallpaper table lists {', '.join(sorted(clash))} as both train and eval")
    names = {n.split(":")[-1].lower() for n in SR_EVAL_PHOTOS} | {p.name.lower() for p in held}
    keys = {f"sha256:{p.sha256}" for p in held if p.sha256} | {s.key for s in bundled_sources("eval")}
    if photos_dir:
        keys |= {f"sha256:{_sha256(Path(photos_dir) / p.package / p.path)}" for p in held
                 if (Path(photos_dir) / p.package / p.path).is_file()}
    leaked = [s.name for s in train if s.name.lower() in names or s.key in keys]
    if leaked:
        raise DataError(f"held-out photos would be trained on: {', '.join(leaked)}; the split in export/data.py leaks")


def sr_training_sources(photos_dir: str | os.PathLike = "", *, limit: int = 0,
                        table: tuple[WallpaperPhoto, ...] = WALLPAPER_PHOTOS) -> list[PhotoSource]:
    """The upscalers' training photos: the bundled ones (the first ``limit``, 0 = all), then the
    wallpapers under ``photos_dir`` (if given); refused if any held-out photo is among them."""
    train = bundled_sources("train", limit=limit)
    if photos_dir:
        train += wallpaper_sources(photos_dir, "train", table=table)
    check_no_leak(train, photos_dir=photos_dir, table=table)
    return train


class CropStream:
    """Random (side, side, 3) uint8 crops from photo sources, without keeping the photos decoded.

    A shuffle buffer: a photo is decoded, up to ``crops_per_photo`` crops (about half its area) are
    copied out of it and it is dropped; each draw takes crops at random from the buffer, refilled
    from another photo when it runs low. Memory: ``buffer`` crops plus one decoded photo.
    Defaults: 1024 crops of 128^2 are 50 MB and mix about 8 photos in every batch; one decode of
    a 2560x1600 JPEG (~0.1 s) serves 128 crops, a few % of a one-thread training step's time.
    Photos are chosen so that crops are spread over the photos in proportion to their area.
    Deterministic for a given ``rng``.
    """

    def __init__(self, sources: list[PhotoSource], side: int, rng: np.random.Generator, *,
                 buffer: int = 1024, crops_per_photo: int = 128) -> None:
        self.sources = [s for s in sources if min(s.size) >= side]
        if not self.sources:
            raise DataError(f"no training photo is at least {side} pixels on a side")
        self.side, self.rng, self.buffer_size = side, rng, max(buffer, 1)
        area = np.array([s.size[0] * s.size[1] for s in self.sources], dtype=np.float64)
        self.n_crops = np.clip(np.round(area / side**2 / 2), 1, crops_per_photo).astype(int)
        self.p = area / self.n_crops / (area / self.n_crops).sum()
        self.buffer: list[np.ndarray] = []
        self.decodes = 0  # photos decoded so far (tests read it)

    def _refill(self) -> None:
        k = int(self.rng.choice(len(self.sources), p=self.p))
        img = self.sources[k].load()  # (H, W, 3), dropped at the end of this method
        self.decodes += 1
        s = self.side
        for _ in range(self.n_crops[k]):
            y = int(self.rng.integers(0, img.shape[0] - s + 1))
            x = int(self.rng.integers(0, img.shape[1] - s + 1))
            self.buffer.append(img[y : y + s, x : x + s].copy())  # a copy: a view would keep the photo alive

    def take(self, n: int) -> list[np.ndarray]:
        while len(self.buffer) < max(n, self.buffer_size // 2):
            self._refill()
        out = []
        for _ in range(n):
            i = int(self.rng.integers(0, len(self.buffer)))
            self.buffer[i], self.buffer[-1] = self.buffer[-1], self.buffer[i]
            out.append(self.buffer.pop())
        return out
