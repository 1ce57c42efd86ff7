"""DCGAN and conditional GAN networks, and the classifier that judges their samples."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import ClassifierConfig, GANConfig, SRConfig


def _n_up(image_size: int) -> int:
    return int(math.log2(image_size)) - 2  # 4x4 -> image_size by stride-2 steps


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN paper init: conv weights N(0, 0.02), BatchNorm gamma N(1, 0.02), beta 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (N, nz) [+ label (N,) int64] -> image (N, C, S, S) in [-1, 1].

    Fractionally-strided (transposed) convolutions, BatchNorm and ReLU (or LeakyReLU), Tanh out.
    Conditional (Mirza & Osindero 2014): a learned label embedding is concatenated to z.
    """

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        act = (lambda: nn.LeakyReLU(0.2, inplace=True)) if cfg.g_leaky else (lambda: nn.ReLU(inplace=True))
        self.embed = nn.Embedding(cfg.num_classes, cfg.embed_dim) if cfg.num_classes else None
        in_dim = cfg.nz + (cfg.embed_dim if cfg.num_classes else 0)
        ch = cfg.ngf * 2 ** (_n_up(cfg.image_size) - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), act()]
        while ch > cfg.ngf:  # 4x4 -> S/2 x S/2, halving channels
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), act()]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, cfg.channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(label)], dim=1)  # (N, nz + embed_dim)
        return self.net(z[:, :, None, None])  # (N, C, S, S)


class Discriminator(nn.Module):
    """image (N, C, S, S) [+ label (N,)] -> logit (N,).

    Strided convolutions instead of pooling, LeakyReLU(0.2), BatchNorm on all but the first layer,
    no fully connected hidden layer. Conditional: one-hot label planes join the image channels.
    """

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.ndf
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.channels + cfg.num_classes, ch, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(_n_up(cfg.image_size) - 1):  # S/2 -> 4x4, doubling channels
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, inplace=True)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, 4, 1, 0)]  # 4x4 -> 1x1 logit
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if self.cfg.num_classes:
            n, _, h, w = x.shape
            planes = nn.functional.one_hot(label, self.cfg.num_classes).to(x.dtype)  # (N, K)
            x = torch.cat([x, planes[:, :, None, None].expand(n, -1, h, w)], dim=1)  # (N, C+K, S, S)
        return self.net(x).view(-1)


class Classifier(nn.Module):
    """uint8 images (N, S, S, C) -> (logits (N, K), features (N, F)).

    Takes the runtime's own image format, so the scaling to [-1, 1] and the NHWC -> NCHW transpose
    live in the exported graph and every caller feeds it images as they are.
    """

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width

        def block(cin: int, cout: int, n: int) -> list[nn.Module]:
            out: list[nn.Module] = []
            for i in range(n):
                out += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                        nn.ReLU(inplace=True)]
            return out + [nn.MaxPool2d(2)]

        self.body = nn.Sequential(*block(cfg.channels, w, 2), *block(w, 2 * w, 2), *block(2 * w, 4 * w, 1))
        side = cfg.image_size // 8
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * side * side, cfg.feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(cfg.feature_dim, cfg.num_classes))

    def forward_float(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C, S, S) float in [-1, 1] (the training path)."""
        f = self.features(self.body(x))  # (N, F)
        return self.head(f), f

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0  # (N, C, S, S)
        return self.forward_float(x)


class _ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRGenerator(nn.Module):
    """image (N, 3, H, W) in [0, 1] -> (N, 3, sH, sW), about [0, 1] (the runtime clips).

    Residual body at low resolution (SRResNet without BatchNorm), then one sub-pixel convolution
    (ESPCN): a 3x3 conv to 3*s^2 channels and PixelShuffle(s) (ONNX DepthToSpace). The network
    predicts the residual over an upsampling of the input (``cfg.skip``): nearest-neighbour, or a
    learned 5x5 sub-pixel convolution that starts as Pillow's bicubic. The body's last conv starts
    at zero, so training starts from that upsampling.
    """

    def __init__(self, cfg: SRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.width
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.body = nn.Sequential(*[_ResBlock(c) for _ in range(cfg.blocks)], nn.Conv2d(c, c, 3, padding=1))
        self.up = nn.Sequential(nn.Conv2d(c, 3 * cfg.scale**2, 3, padding=1), nn.PixelShuffle(cfg.scale))
        nn.init.zeros_(self.up[0].weight)  # start as exactly the skip's upsampling
        nn.init.zeros_(self.up[0].bias)
        self.skip = None
        if cfg.skip == "bicubic":
            self.skip = nn.Sequential(nn.Conv2d(3, 3 * cfg.scale**2, 5, padding=2), nn.PixelShuffle(cfg.scale))
            with torch.no_grad():
                self.skip[0].weight.copy_(bicubic_subpixel_kernel(cfg.scale))
                self.skip[0].bias.zero_()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = self.head(image - 0.5)  # (N, C, H, W)
        h = h + self.body(h)
        if self.skip is None:
            base = nn.functional.interpolate(image, scale_factor=self.cfg.scale, mode="nearest")  # (N, 3, sH, sW)
        else:
            base = self.skip(image - 0.5) + 0.5  # zero padding of (image - 0.5): mid-grey beyond the border
        return base + self.up(h)


def _cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution kernel; a = -0.5 is Pillow's BICUBIC."""
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def bicubic_subpixel_kernel(scale: int) -> torch.Tensor:
    """(3 s^2, 3, 5, 5) weights of a conv that, followed by PixelShuffle(s), upsamples by s with
    Pillow's bicubic kernel (half-pixel centres): output (s*i + a) samples input i + (a + 0.5)/s - 0.5."""
    taps = torch.arange(-2, 3, dtype=torch.float64)  # (5,) input offsets
    offsets = (torch.arange(scale, dtype=torch.float64) + 0.5) / scale - 0.5  # (s,) sub-pixel positions
    k1 = _cubic(taps[None, :] - offsets[:, None])  # (s, 5)
    k1 = k1 / k1.sum(dim=1, keepdim=True)
    k2 = k1[:, None, :, None] * k1[None, :, None, :]  # (s_y, s_x, 5, 5)
    w = torch.zeros(3, scale, scale, 3, 5, 5, dtype=torch.float64)  # (colour, a_y, a_x, in colour, ky, kx)
    for c in range(3):
        w[c, :, :, c] = k2
    return w.reshape(3 * scale * scale, 3, 5, 5).float()


class SRDiscriminator(nn.Module):
    """image (N, 3, h, w) -> (logit (N,), features (N, F)); SRGAN-style, global pooling for any patch size."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        layers: list[nn.Module] = [nn.Conv2d(3, w, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        chans = [(w, w, 2), (w, 2 * w, 1), (2 * w, 2 * w, 2), (2 * w, 4 * w, 1), (4 * w, 4 * w, 2)]
        for cin, cout, stride in chans:
            layers += [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(4 * w, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x * 2.0 - 1.0).mean(dim=(2, 3))  # (N, 4w) global average
        return self.head(f).view(-1), f
