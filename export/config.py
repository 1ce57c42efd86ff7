"""Frozen configs for every model kind and for training; each is saved inside its checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ganrt.core.latent import PRIORS


def _from_dict(cls, raw: dict[str, Any]):
    """Rebuild a config from a checkpoint's dict, ignoring keys that a newer version removed."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in names})


@dataclass(frozen=True)
class GANConfig:
    """DCGAN (Radford et al. 2015) generator/discriminator pair; conditional when num_classes > 0."""

    image_size: int = 32  # 32 or 64
    channels: int = 1  # 1 (grayscale) or 3 (RGB)
    nz: int = 100  # latent size
    ngf: int = 64  # generator width: channels of the last hidden layer
    ndf: int = 64  # discriminator width: channels of the first layer
    num_classes: int = 0  # 0: unconditional; else the label is a second input of G and D
    embed_dim: int = 32  # size of G's learned label embedding, concatenated to z
    g_leaky: bool = False  # LeakyReLU(0.2) instead of ReLU in G (one of the GAN-hacks tips)

    def __post_init__(self) -> None:
        if self.image_size not in (32, 64):
            raise ValueError(f"image_size must be 32 or 64, got {self.image_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        for name in ("nz", "ngf", "ndf", "embed_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.num_classes < 0 or self.num_classes == 1:
            raise ValueError(f"num_classes must be 0 (unconditional) or >= 2, got {self.num_classes}")

    to_dict = asdict
    from_dict = classmethod(_from_dict)


@dataclass(frozen=True)
class ClassifierConfig:
    """A small CNN that judges samples; its penultimate layer is a feature space for metrics."""

    image_size: int = 32
    channels: int = 1
    num_classes: int = 10
    width: int = 32  # channels of the first block; doubled per block
    feature_dim: int = 128

    to_dict = asdict
    from_dict = classmethod(_from_dict)


@dataclass(frozen=True)
class TrainConfig:
    """The classic GAN recipe; defaults are the DCGAN paper's (Adam 2e-4, beta1 0.5, batch 128)."""

    dataset: str = "fashion-mnist"  # fashion-mnist | digits | idx (with data_dir)
    data_dir: str = ""  # a folder of MNIST-family IDX files; "" = where Debian installs them
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    k: int = 1  # discriminator steps per generator step
    prior: str = "normal"  # latent prior: normal | sphere | uniform
    vbn: bool = False  # virtual batch normalisation in G (reference batch fixed before training)
    joint_d: bool = False  # real and generated minibatches through D in one pass (shared BN statistics)
    init: str = ""  # start from this GAN run's weights and optimiser state (fine-tuning with another recipe)
    ema: float = 0.0  # decay of an exponential moving average of G's weights, sampled and exported (0 = off)
    eval_every: int = 0  # every this many epochs: FD etc. against the classifier's reference statistics (0 = never)
    eval_n: int = 2000  # samples per evaluation
    eval_classifier: str = "fashion-classifier"  # feature extractor (a name or an .onnx file with NAME.stats.npz beside it)
    ref_batch_size: int = 64
    limit: int = 0  # use only the first `limit` training images (0 = all): tiny test runs
    seed: int = 0

    def __post_init__(self) -> None:
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {self.prior!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")
        for name in ("epochs", "batch_size", "k", "ref_batch_size", "eval_n"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    to_dict = asdict
    from_dict = classmethod(_from_dict)


SR_SKIPS = ("nearest", "bicubic")


@dataclass(frozen=True)
class SRConfig:
    """Sub-pixel super-resolution generator (ESPCN / SRResNet style), RGB in, RGB x scale out."""

    scale: int = 4  # 2 or 4
    width: int = 32  # channels of the residual body
    blocks: int = 4  # residual blocks (conv-ReLU-conv + skip), no BatchNorm
    # What the body's residual is added to. "nearest": nearest-neighbour upsampling (the first
    # models; checkpoints without this key). "bicubic": a learned 5x5 sub-pixel convolution
    # initialised to Pillow's bicubic kernel, so training starts at bicubic quality and the body
    # spends its capacity on detail, not on interpolation; ~1% more FLOPs at width 48.
    skip: str = "nearest"

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale}")
        if self.width < 1 or self.blocks < 0:
            raise ValueError("width must be >= 1 and blocks >= 0")
        if self.skip not in SR_SKIPS:
            raise ValueError(f"skip must be one of {', '.join(SR_SKIPS)}, got {self.skip!r}")

    @property
    def receptive_radius(self) -> int:
        """Input pixels on each side that one output pixel depends on: one per 3x3 convolution."""
        return 2 * self.blocks + 3  # head, 2 per block, body tail, sub-pixel conv

    to_dict = asdict
    from_dict = classmethod(_from_dict)


@dataclass(frozen=True)
class SRTrainConfig:
    """Stage 1 (``pixel``): L1 loss for PSNR. Stage 2 (``adversarial``): L1 + adversarial (+ feature) loss."""

    stage: str = "pixel"  # pixel | adversarial
    init: str = ""  # stage 2 starts from this stage-1 checkpoint; stage 1 fine-tunes from it (fresh optimiser)
    epochs: int = 20
    steps_per_epoch: int = 100  # a checkpoint every epoch
    batch_size: int = 16
    patch: int = 32  # low-resolution patch side; the high-resolution crop is patch * scale
    lr: float = 5e-4
    adv_weight: float = 1e-3  # SRGAN's weight of the adversarial term
    feature_weight: float = 0.0  # L1 between D's features of SR and HR (no pretrained VGG offline)
    limit: int = 0  # use only the first `limit` bundled training photos (0 = all): tiny test runs
    photos: str = ""  # a folder of unpacked wallpaper packages (export/data.py's WALLPAPER_PHOTOS); "" = bundled photos only
    ema: float = 0.0  # decay of an exponential moving average of G's weights, evaluated and exported (0 = off)
    eval_every: int = 0  # every this many epochs: PSNR/SSIM on the five bundled held-out photos, in the history (0 = never)
    seed: int = 0
    # How LR patches are made (export/degrade.py): "bicubic" (Pillow's, the classic pairs) or "real"
    # (random blur, resize, noise, JPEG, Real-ESRGAN style; --eval-every then scores the fixed-real inputs).
    degradation: str = "bicubic"

    def __post_init__(self) -> None:
        if self.stage not in ("pixel", "adversarial"):
            raise ValueError(f"stage must be pixel or adversarial, got {self.stage!r}")
        if self.degradation not in ("bicubic", "real"):
            raise ValueError(f"degradation must be bicubic or real, got {self.degradation!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")
        for name in ("epochs", "steps_per_epoch", "batch_size", "patch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    to_dict = asdict
    from_dict = classmethod(_from_dict)


@dataclass(frozen=True)
class TranslatorConfig:
    """pix2pix (Isola et al. 2017): a U-Net generator and a PatchGAN discriminator (``export/pix2pix.py``)."""

    image_size: int = 32  # training side; the U-Net takes any multiple of 2**num_downs
    in_channels: int = 1  # edges
    out_channels: int = 1  # the image
    ngf: int = 8  # generator width of the outermost level; doubled per level up to 8 x ngf
    num_downs: int = 5  # U-Net levels: 32 -> 1 at 5
    ndf: int = 16  # discriminator width of the first layer
    d_layers: int = 2  # PatchGAN layers (pix2pix's 70x70 PatchGAN is 3 at 256x256; 2 sees 34x34 patches)

    def __post_init__(self) -> None:
        for name in ("image_size", "in_channels", "out_channels", "ngf", "num_downs", "ndf", "d_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size % 2**self.num_downs:
            raise ValueError(f"image_size {self.image_size} must be a multiple of 2**num_downs = {2**self.num_downs}")

    to_dict = asdict
    from_dict = classmethod(_from_dict)


@dataclass(frozen=True)
class TranslatorTrainConfig:
    """pix2pix's recipe: Adam 2e-4, beta1 0.5, adversarial loss + ``l1_weight`` (100) x L1."""

    dataset: str = "fashion-mnist"  # fashion-mnist | idx (with data_dir)
    data_dir: str = ""
    epochs: int = 10
    batch_size: int = 64  # pix2pix used 1-4 on a GPU; larger batches are faster per image on a CPU
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    l1_weight: float = 100.0
    canny_sigma: float = 1.0  # scikit-image's default
    limit: int = 0  # use only the first `limit` training images (0 = all): tiny test runs
    eval_n: int = 1000  # test pairs whose L1 is logged after each epoch
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_n"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or self.l1_weight < 0 or not self.canny_sigma > 0:
            raise ValueError("lr and canny_sigma must be > 0 and l1_weight >= 0")

    to_dict = asdict
    from_dict = classmethod(_from_dict)
