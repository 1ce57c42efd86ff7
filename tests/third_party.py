"""Models from elsewhere, as their authors' repositories define them, for the "bring your own model" tests.

Not a test module: the tests import it (``import third_party``; pytest puts ``tests/`` on ``sys.path``).
Each architecture below is rebuilt layer for layer from the file cited above it, with the same
attribute names (so a state dict saved by the authors' code loads here, and ours there), the same
constructor defaults and the same forward. Only what cannot live in a library module is changed,
and each change is named where it is made.

For each model:

- ``tiny_*()`` returns ``(module, settings)``: the module in eval mode with seeded random weights and
  small widths (tests run in seconds), and the settings a user would state on the command line
  (``kind``, ``nz``, ``latent_shape``, ``label``, ``classes``, ``value_range``, ``color``).
- ``found(module)`` gives what ganrt should find by running the module instead (image shape, scale,
  receptive radius), worked out here from the architecture, not measured.
- ``*_reference()`` is the picture torch gives, converted the way the documentation (or the authors'
  own inference script) says, for comparing with ganrt's uint8 output.
- ``export_plain()`` writes the ONNX file a user would make by hand with ``torch.onnx.export``.

Without torch, importing this module skips the importing test (``pytest.importorskip``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the third-party models are torch modules: install the 'export' extra")
nn = torch.nn
F = torch.nn.functional


# --- a. DCGAN generator ------------------------------------------------------------------------------------
# pytorch/examples, dcgan/main.py, class Generator, at commit 77f55b912142e11fcfdf5b530231fb9c52f181e8
# (the file last changed in cc8e404cbcbf3a3c326789260deed89ee04b3408). BSD-3-Clause.
# Changed: nz, ngf and nc are module globals set from argparse there (defaults --nz 100, --ngf 64, and nc = 3
# for every data set but mnist); here they are constructor arguments with those defaults.
class Generator(nn.Module):
    """z (N, nz, 1, 1) -> tanh image (N, nc, 64, 64) in [-1, 1]. State-dict keys ``main.<i>.*``."""

    def __init__(self, ngpu, nz=100, ngf=64, nc=3):
        super().__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),  # (N, nz, 1, 1) -> (N, ngf*8, 4, 4)
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),  # -> (N, ngf*4, 8, 8)
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),  # -> (N, ngf*2, 16, 16)
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),  # -> (N, ngf, 32, 32)
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),  # -> (N, nc, 64, 64)
            nn.Tanh(),
        )

    def forward(self, input):
        # the authors' multi-GPU branch, kept: never taken on CPU or with ngpu=1, so it is not in an export
        if (input.is_cuda or input.is_xpu) and self.ngpu > 1:
            return nn.parallel.data_parallel(self.main, input, range(self.ngpu))
        return self.main(input)


# --- b. conditional DCGAN generator with a float one-hot label --------------------------------------------
# znxlwm/pytorch-MNIST-CelebA-cGAN-cDCGAN, pytorch_MNIST_cDCGAN.py, class generator, at commit
# bc8be7888af1ea98f82af15b4e913cf6aed938e1 (the file last changed in 5a5d69b7af4ae684f7d1ea20257fadc4ab71f63e).
# The repository has no licence file: this is the architecture (layers, names, forward) rebuilt for tests,
# not a copy of the file. Chosen over the same repository's MLP cGAN (pytorch_MNIST_cGAN.py), whose output
# is a flat (N, 784) that its script reshapes outside the module, because this one returns an image tensor.
# Its training script feeds MNIST resized to 32x32 and normalised to [-1, 1], z = randn(N, 100).view(-1, 100, 1, 1)
# and the label as one-hot rows of eye(10) viewed (10, 10, 1, 1): see one_hot().
# Unchanged, including the lower-case class name and the 100 and 10 written into the layers.
class generator(nn.Module):  # the authors' name, lower case
    """z (N, 100, 1, 1) and a float one-hot label (N, 10, 1, 1) -> tanh image (N, 1, 32, 32) in [-1, 1]."""

    def __init__(self, d=128):
        super().__init__()
        self.deconv1_1 = nn.ConvTranspose2d(100, d * 2, 4, 1, 0)  # z -> (N, 2d, 4, 4)
        self.deconv1_1_bn = nn.BatchNorm2d(d * 2)
        self.deconv1_2 = nn.ConvTranspose2d(10, d * 2, 4, 1, 0)  # label -> (N, 2d, 4, 4)
        self.deconv1_2_bn = nn.BatchNorm2d(d * 2)
        self.deconv2 = nn.ConvTranspose2d(d * 4, d * 2, 4, 2, 1)  # -> (N, 2d, 8, 8)
        self.deconv2_bn = nn.BatchNorm2d(d * 2)
        self.deconv3 = nn.ConvTranspose2d(d * 2, d, 4, 2, 1)  # -> (N, d, 16, 16)
        self.deconv3_bn = nn.BatchNorm2d(d)
        self.deconv4 = nn.ConvTranspose2d(d, 1, 4, 2, 1)  # -> (N, 1, 32, 32)

    def weight_init(self, mean, std):
        """The authors' initialisation (their script calls ``G.weight_init(mean=0.0, std=0.02)``)."""
        for m in self._modules.values():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                m.weight.data.normal_(mean, std)
                m.bias.data.zero_()

    def forward(self, input, label):
        x = F.relu(self.deconv1_1_bn(self.deconv1_1(input)))
        y = F.relu(self.deconv1_2_bn(self.deconv1_2(label)))
        x = torch.cat([x, y], 1)  # (N, 4d, 4, 4)
        x = F.relu(self.deconv2_bn(self.deconv2(x)))
        x = F.relu(self.deconv3_bn(self.deconv3(x)))
        return F.tanh(self.deconv4(x))


# --- c. ESPCN ----------------------------------------------------------------------------------------------
# pytorch/examples, super_resolution/model.py, class Net, at commit 77f55b912142e11fcfdf5b530231fb9c52f181e8
# (the file last changed in 645c7c386e62d2fb1d50f4621c1a52645a13869f). BSD-3-Clause. Unchanged.
class Net(nn.Module):
    """Y channel (N, 1, H, W) in [0, 1] -> (N, 1, rH, rW), r = upscale_factor. No output activation:
    values leave [0, 1] and super_resolve.py clips them (see espcn_reference)."""

    def __init__(self, upscale_factor):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(1, 64, (5, 5), (1, 1), (2, 2))
        self.conv2 = nn.Conv2d(64, 64, (3, 3), (1, 1), (1, 1))
        self.conv3 = nn.Conv2d(64, 32, (3, 3), (1, 1), (1, 1))
        self.conv4 = nn.Conv2d(32, upscale_factor**2, (3, 3), (1, 1), (1, 1))
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)
        self._initialize_weights()

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = self.relu(self.conv3(x))
        return self.pixel_shuffle(self.conv4(x))  # (N, r*r, H, W) -> (N, 1, rH, rW)

    def _initialize_weights(self):
        nn.init.orthogonal_(self.conv1.weight, nn.init.calculate_gain("relu"))
        nn.init.orthogonal_(self.conv2.weight, nn.init.calculate_gain("relu"))
        nn.init.orthogonal_(self.conv3.weight, nn.init.calculate_gain("relu"))
        nn.init.orthogonal_(self.conv4.weight)


# --- d. Real-ESRGAN's compact upscaler ---------------------------------------------------------------------
# xinntao/Real-ESRGAN, realesrgan/archs/srvgg_arch.py, class SRVGGNetCompact, at commit
# a4abfb2979a7bbff3f69f58f58ae324608821e27 (the file last changed in 696e1a6741c912db9d566a162cada43763e57756).
# BSD-3-Clause. Changed: the @ARCH_REGISTRY.register() decorator (basicsr's registry) is dropped.
# The released weights use it with num_conv=32 (realesr-general-x4v3) or 16 (realesr-animevideov3).
class SRVGGNetCompact(nn.Module):
    """RGB (N, 3, H, W) in [0, 1] -> (N, 3, uH, uW), u = upscale: convolutions at the input size, one
    PixelShuffle, plus the nearest-neighbour upsampled input (the network learns the residual).
    act_type 'prelu' has one slope per channel (PReLU(num_feat)); 'relu' and 'leakyrelu' (0.1) are in place."""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"):
        super().__init__()
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.num_feat = num_feat
        self.num_conv = num_conv
        self.upscale = upscale
        self.act_type = act_type

        def activation():
            # as the authors' if/elif chain: another act_type leaves the name unbound there (NameError) too
            if act_type == "relu":
                return nn.ReLU(inplace=True)
            if act_type == "prelu":
                return nn.PReLU(num_parameters=num_feat)
            if act_type == "leakyrelu":
                return nn.LeakyReLU(negative_slope=0.1, inplace=True)
            raise NameError(f"act_type {act_type!r}: expected 'relu', 'prelu' or 'leakyrelu'")

        # body.<2i> are the convolutions, body.<2i+1> the activations (PReLU weights are state-dict keys)
        self.body = nn.ModuleList()
        self.body.append(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1))
        self.body.append(activation())
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(activation())
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = x
        for i in range(0, len(self.body)):
            out = self.body[i](out)
        out = self.upsampler(out)  # (N, C*u*u, H, W) -> (N, C, uH, uW)
        base = F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        out += base
        return out


# --- tiny seeded instances ---------------------------------------------------------------------------------

SEED = 1234


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed torch's global generator for the block and restore it afterwards (the caller's RNG is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _settle(module: nn.Module, *inputs: torch.Tensor) -> nn.Module:
    """Give every BatchNorm the running statistics of one batch (``inputs``) and random affine terms, give
    every PReLU random slopes, and switch to eval mode. Fresh BatchNorm statistics (mean 0, var 1) would
    shrink the activations layer by layer, and the generators' pictures would be flat grey."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, exactly that batch's statistics
        with torch.no_grad():
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.2)
    for m in module.modules():
        if isinstance(m, nn.PReLU):
            with torch.no_grad():
                m.weight.uniform_(0.0, 0.5)
    if norms:
        module.train()
        with torch.no_grad():
            module(*inputs)
        for m in norms:
            m.momentum = 0.1  # BatchNorm2d's default, so the state matches a freshly built module
    return module.eval()


def tiny_dcgan(*, ngf: int = 8, nc: int = 3, seed: int = SEED) -> tuple[Generator, dict[str, Any]]:
    """pytorch/examples' DCGAN generator with ngf 8 (64 there): z (N, 100, 1, 1) -> (N, nc, 64, 64) in [-1, 1]."""
    with _seeded(seed):
        module = _settle(Generator(1, ngf=ngf, nc=nc), torch.randn(16, 100, 1, 1))
    settings = {"kind": "generator", "nz": 100, "latent_shape": (100, 1, 1), "label": "none", "classes": 0,
                "prior": "normal", "value_range": (-1.0, 1.0)}
    return module, settings


def tiny_cdcgan(*, d: int = 8, seed: int = SEED) -> tuple[generator, dict[str, Any]]:
    """znxlwm's MNIST cDCGAN generator with d 8 (128 there): z (N, 100, 1, 1), one-hot (N, 10, 1, 1)
    -> (N, 1, 32, 32) in [-1, 1]."""
    with _seeded(seed):
        z = torch.randn(20, 100, 1, 1)
        label = torch.from_numpy(one_hot(np.arange(20) % 10, 10))
        module = _settle(generator(d), z, label)
    settings = {"kind": "generator", "nz": 100, "latent_shape": (100, 1, 1), "label": "onehot", "classes": 10,
                "label_shape": (10, 1, 1), "prior": "normal", "value_range": (-1.0, 1.0)}
    return module, settings


def tiny_espcn(*, upscale_factor: int = 3, seed: int = SEED) -> tuple[Net, dict[str, Any]]:
    """pytorch/examples' ESPCN at its only size (no width argument; 64-64-32 channels): Y (N, 1, H, W) in
    [0, 1] -> (N, 1, 3H, 3W). Biases stay at PyTorch's defaults, the weights are the authors' orthogonal init."""
    with _seeded(seed):
        module = Net(upscale_factor).eval()
    return module, {"kind": "upscaler", "value_range": (0.0, 1.0), "color": "y"}


def tiny_srvgg(*, num_feat: int = 8, num_conv: int = 2, upscale: int = 4, act_type: str = "prelu",
               seed: int = SEED) -> tuple[SRVGGNetCompact, dict[str, Any]]:
    """Real-ESRGAN's SRVGGNetCompact with 8 features and 2 body convolutions (64 and 16 by default):
    RGB (N, 3, H, W) in [0, 1] -> (N, 3, 4H, 4W)."""
    with _seeded(seed):
        module = _settle(SRVGGNetCompact(num_feat=num_feat, num_conv=num_conv, upscale=upscale, act_type=act_type))
    return module, {"kind": "upscaler", "value_range": (0.0, 1.0), "color": "rgb"}


def found(module: nn.Module) -> dict[str, Any]:
    """What running the module should show, from its architecture: a generator's image shape (H, W, C);
    an upscaler's scale and receptive radius, in input pixels (an output pixel depends on the input
    pixels within that distance of its source pixel: the sum of the convolutions' half kernels)."""
    if isinstance(module, Generator):
        return {"image_shape": (64, 64, module.main[-2].out_channels)}
    if isinstance(module, generator):
        return {"image_shape": (32, 32, 1)}
    if isinstance(module, Net):  # 5x5, then three 3x3
        return {"scale": module.pixel_shuffle.upscale_factor, "radius": 2 + 1 + 1 + 1}
    if isinstance(module, SRVGGNetCompact):  # num_conv + 2 convolutions, all 3x3; the nearest base adds nothing
        return {"scale": module.upscale, "radius": module.num_conv + 2}
    raise TypeError(f"not one of the third-party models here: {type(module).__name__}")


# --- inputs as the authors' scripts make them ----------------------------------------------------------------

def latents(batch: int, nz: int = 100, *, seed: int = 0) -> np.ndarray:
    """Standard-normal z (batch, nz, 1, 1) float32, the shape both DCGAN scripts feed (torch.randn there)."""
    return np.random.default_rng(seed).standard_normal((batch, nz, 1, 1), dtype=np.float32)


def one_hot(labels: Sequence[int] | np.ndarray, classes: int, *, trailing: tuple[int, ...] = (1, 1)) -> np.ndarray:
    """Float32 one-hot rows (N, classes, *trailing): znxlwm's ``onehot[y_]`` with
    ``onehot = eye(10).view(10, 10, 1, 1)``; ``trailing=()`` gives the MLP cGAN's (N, 10)."""
    labels = np.asarray(labels, dtype=np.int64)
    return np.eye(classes, dtype=np.float32)[labels].reshape(len(labels), classes, *trailing)


# --- torch references ----------------------------------------------------------------------------------------

def _as_tensors(inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> list[torch.Tensor]:
    values = inputs.values() if isinstance(inputs, Mapping) else inputs
    return [torch.from_numpy(np.ascontiguousarray(v)) for v in values]


def to_uint8(x: torch.Tensor, value_range: tuple[float, float]) -> np.ndarray:
    """The documented conversion: float (N, C, H, W) in [lo, hi] -> uint8 (N, H, W, C) of
    (x - lo) * 255 / (hi - lo), in float32, rounded half to even (torch.round), clipped to 0..255."""
    lo, hi = value_range
    y = (x.to(torch.float32) - lo) * (255.0 / (hi - lo))
    return torch.round(y).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def generator_reference(module: nn.Module, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray], *,
                        value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """torch's pictures for ``inputs`` (forward's arguments in order: z, then the label if any) as uint8
    (N, H, W, C) after the documented conversion."""
    with torch.inference_mode():
        return to_uint8(module(*_as_tensors(inputs)), value_range)


def upscaler_reference(module: nn.Module, images: np.ndarray, *,
                       value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """torch's upscaled pictures of uint8 RGB ``images`` (N, H, W, 3) -> uint8 (N, sH, sW, 3). For [0, 1]
    this is Real-ESRGAN's own inference (realesrgan/utils.py, RealESRGANer.enhance): float32 / 255 in,
    clamp to [0, 1], * 255, round half to even (numpy's round) out."""
    lo, hi = value_range
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(images, np.uint8).transpose(0, 3, 1, 2)))  # (N, 3, H, W)
    x = x.to(torch.float32) / 255.0 * (hi - lo) + lo
    with torch.inference_mode():
        return to_uint8(module(x), value_range)


def espcn_reference(module: nn.Module, image: np.ndarray) -> np.ndarray:
    """What pytorch/examples super_resolution/super_resolve.py (commit 6f616144dffdc9cdee82d4690c9885070ea4e2e3)
    makes of one RGB uint8 photo (H, W, 3): Pillow's YCbCr; Y / 255 (ToTensor) through the net; * 255,
    clipped, and *truncated* to uint8 (np.uint8 of a float array, not rounded); Cb and Cr resized with
    Pillow's BICUBIC to the new size; merged and converted back to RGB. Returns (rH, rW, 3) uint8.

    The truncation makes the script's Y up to 1/255 darker than the documented (rounded) conversion."""
    from PIL import Image

    img = Image.fromarray(np.asarray(image, np.uint8), mode="RGB").convert("YCbCr")
    y, cb, cr = img.split()
    # torchvision's ToTensor on an 'L' image: uint8 (H, W) -> float32 / 255; the script then views (1, 1, H, W)
    x = torch.from_numpy(np.array(y, np.uint8)).to(torch.float32).div(255).view(1, -1, y.size[1], y.size[0])
    with torch.inference_mode():
        out = module(x)
    out_img_y = out[0].detach().numpy()
    out_img_y *= 255.0
    out_img_y = out_img_y.clip(0, 255)
    out_img_y = Image.fromarray(np.uint8(out_img_y[0]), mode="L")
    out_img_cb = cb.resize(out_img_y.size, Image.BICUBIC)
    out_img_cr = cr.resize(out_img_y.size, Image.BICUBIC)
    return np.asarray(Image.merge("YCbCr", [out_img_y, out_img_cb, out_img_cr]).convert("RGB"))


# --- a plain ONNX file, as a user would export it ------------------------------------------------------------

def export_plain(module: nn.Module, example: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
                 path: str | Path, *, input_names: Sequence[str], output_names: Sequence[str] = ("output",),
                 fixed_batch: bool = False, dynamic_hw: bool = False, dynamo: bool = True,
                 opset: int = 18) -> Path:
    """``torch.onnx.export`` of ``module`` at ``example`` (forward's arguments in order), no metadata and
    no passes: the file a user writes by hand. The batch axis N of every input and output is dynamic
    unless ``fixed_batch``; ``dynamic_hw`` makes H and W dynamic too (upscalers). ``dynamo`` picks
    the torch.export-based exporter or the TorchScript one. With a dynamic batch, give an example
    batch of 2 or more: torch.export specialises a dimension of size 1."""
    values = list(example.values()) if isinstance(example, Mapping) else list(example)
    args = tuple(v if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v)) for v in values)
    path = Path(path)
    kw: dict[str, Any] = {"input_names": list(input_names), "output_names": list(output_names),
                          "opset_version": opset, "dynamo": dynamo}
    if dynamo:
        if not fixed_batch or dynamic_hw:
            dims = {} if fixed_batch else {0: torch.export.Dim("N", min=1)}
            if dynamic_hw:
                dims.update({2: torch.export.Dim("H", min=1), 3: torch.export.Dim("W", min=1)})
            kw["dynamic_shapes"] = tuple(dict(dims) for _ in args)
    else:
        axes_in = {} if fixed_batch else {0: "N"}
        axes_out = dict(axes_in)
        if dynamic_hw:
            axes_in.update({2: "H", 3: "W"})
            axes_out.update({2: "H_out", 3: "W_out"})
        if axes_in:
            kw["dynamic_axes"] = {**{n: axes_in for n in input_names}, **{n: axes_out for n in output_names}}
    with torch.inference_mode():
        torch.onnx.export(module, args, str(path), **kw)
    return path


# --- e. pix2pix / CycleGAN generators ------------------------------------------------------------------------
# junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py, classes ResnetGenerator, ResnetBlock, UnetGenerator
# and UnetSkipConnectionBlock, at commit 78913853ab4a4f5eba717af8433809300c99f0bb. BSD licence (the repository's
# LICENSE). Unchanged: the layers, their order and attribute names (``model.<i>``, ``conv_block.<i>``), the
# constructor defaults, the forwards, the ``assert`` on n_blocks. Changed for the linter only: ``super()`` without
# arguments and an f-string in the padding error. Both work in [-1, 1] (tanh out; the data loader
# normalises inputs with mean 0.5, std 0.5). get_norm_layer('instance') at that commit passes
# track_running_stats=True; the repository's later versions pass False, which is how CycleGAN's released
# models run (statistics of each image, in eval mode too): cyclegan_instance_norm() below.
class ResnetGenerator(nn.Module):
    """(N, input_nc, H, W) -> (N, output_nc, H, W), H and W multiples of 4 (two stride-2 convolutions and two
    transposed ones). CycleGAN's resnet_9blocks / resnet_6blocks."""

    def __init__(self, input_nc, output_nc, ngf=64, norm_layer=nn.BatchNorm2d, use_dropout=False, n_blocks=6,
                 padding_type='reflect'):
        assert(n_blocks >= 0)
        super().__init__()
        self.input_nc = input_nc
        self.output_nc = output_nc
        self.ngf = ngf
        if type(norm_layer) == functools.partial:  # noqa: E721  (the authors' test)
            use_bias = norm_layer.func == nn.InstanceNorm2d
        else:
            use_bias = norm_layer == nn.InstanceNorm2d

        model = [nn.ReflectionPad2d(3),
                 nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
                 norm_layer(ngf),
                 nn.ReLU(True)]

        n_downsampling = 2
        for i in range(n_downsampling):  # (N, ngf*mult, H, W) -> (N, 2*ngf*mult, H/2, W/2)
            mult = 2**i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=use_bias),
                      norm_layer(ngf * mult * 2),
                      nn.ReLU(True)]

        mult = 2**n_downsampling
        for i in range(n_blocks):
            model += [ResnetBlock(ngf * mult, padding_type=padding_type, norm_layer=norm_layer, use_dropout=use_dropout,
                                  use_bias=use_bias)]

        for i in range(n_downsampling):  # back up: (N, ngf*mult, h, w) -> (N, ngf*mult/2, 2h, 2w)
            mult = 2**(n_downsampling - i)
            model += [nn.ConvTranspose2d(ngf * mult, int(ngf * mult / 2), kernel_size=3, stride=2, padding=1,
                                         output_padding=1, bias=use_bias),
                      norm_layer(int(ngf * mult / 2)),
                      nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3)]
        model += [nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0)]
        model += [nn.Tanh()]

        self.model = nn.Sequential(*model)

    def forward(self, input):
        return self.model(input)


class ResnetBlock(nn.Module):
    """x + (pad, 3x3 conv, norm, ReLU, [dropout], pad, 3x3 conv, norm)(x), at constant size."""

    def __init__(self, dim, padding_type, norm_layer, use_dropout, use_bias):
        super().__init__()
        self.conv_block = self.build_conv_block(dim, padding_type, norm_layer, use_dropout, use_bias)

    def build_conv_block(self, dim, padding_type, norm_layer, use_dropout, use_bias):
        conv_block = []
        p = 0
        if padding_type == 'reflect':
            conv_block += [nn.ReflectionPad2d(1)]
        elif padding_type == 'replicate':
            conv_block += [nn.ReplicationPad2d(1)]
        elif padding_type == 'zero':
            p = 1
        else:
            raise NotImplementedError(f'padding [{padding_type}] is not implemented')

        conv_block += [nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias),
                       norm_layer(dim),
                       nn.ReLU(True)]
        if use_dropout:
            conv_block += [nn.Dropout(0.5)]

        p = 0
        if padding_type == 'reflect':
            conv_block += [nn.ReflectionPad2d(1)]
        elif padding_type == 'replicate':
            conv_block += [nn.ReplicationPad2d(1)]
        elif padding_type == 'zero':
            p = 1
        else:
            raise NotImplementedError(f'padding [{padding_type}] is not implemented')
        conv_block += [nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias),
                       norm_layer(dim)]

        return nn.Sequential(*conv_block)

    def forward(self, x):
        out = x + self.conv_block(x)
        return out


class UnetGenerator(nn.Module):
    """(N, input_nc, H, W) -> (N, output_nc, H, W), H and W multiples of 2^num_downs (at least 2^5: the five
    outer blocks are always built). pix2pix's unet_256 is num_downs 8, unet_128 is 7."""

    def __init__(self, input_nc, output_nc, num_downs, ngf=64, norm_layer=nn.BatchNorm2d, use_dropout=False):
        super().__init__()

        # construct unet structure
        unet_block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, input_nc=None, submodule=None, norm_layer=norm_layer,
                                             innermost=True)
        for i in range(num_downs - 5):
            unet_block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, input_nc=None, submodule=unet_block,
                                                 norm_layer=norm_layer, use_dropout=use_dropout)
        unet_block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, input_nc=None, submodule=unet_block, norm_layer=norm_layer)
        unet_block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, input_nc=None, submodule=unet_block, norm_layer=norm_layer)
        unet_block = UnetSkipConnectionBlock(ngf, ngf * 2, input_nc=None, submodule=unet_block, norm_layer=norm_layer)
        unet_block = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=unet_block, outermost=True,
                                             norm_layer=norm_layer)

        self.model = unet_block

    def forward(self, input):
        return self.model(input)


class UnetSkipConnectionBlock(nn.Module):
    """X -> cat(X, up(submodule(down(X)))) (the outermost block returns up(...) alone): each level halves H and W
    on the way down (4x4 stride-2 convolutions) and doubles them on the way up (4x4 stride-2 transposed)."""

    def __init__(self, outer_nc, inner_nc, input_nc=None,
                 submodule=None, outermost=False, innermost=False, norm_layer=nn.BatchNorm2d, use_dropout=False):
        super().__init__()
        self.outermost = outermost
        if type(norm_layer) == functools.partial:  # noqa: E721  (the authors' test)
            use_bias = norm_layer.func == nn.InstanceNorm2d
        else:
            use_bias = norm_layer == nn.InstanceNorm2d
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = norm_layer(inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = norm_layer(outer_nc)

        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            down = [downconv]
            up = [uprelu, upconv, nn.Tanh()]
            model = down + [submodule] + up
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            down = [downrelu, downconv]
            up = [uprelu, upconv, upnorm]
            model = down + up
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            down = [downrelu, downconv, downnorm]
            up = [uprelu, upconv, upnorm]

            if use_dropout:
                model = down + [submodule] + up + [nn.Dropout(0.5)]
            else:
                model = down + [submodule] + up

        self.model = nn.Sequential(*model)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        else:
            return torch.cat([x, self.model(x)], 1)


def cyclegan_instance_norm():
    """The repository's later get_norm_layer('instance'): no affine terms, no running statistics."""
    return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)


def tiny_cyclegan(*, ngf: int = 4, n_blocks: int = 2, seed: int = SEED) -> tuple[ResnetGenerator, dict[str, Any]]:
    """CycleGAN's ResnetGenerator with ngf 4 and 2 blocks (64 and 9 there), InstanceNorm without running
    statistics, reflection padding: it sees the whole image (each norm layer uses the statistics of all of it)."""
    with _seeded(seed):
        module = ResnetGenerator(3, 3, ngf=ngf, norm_layer=cyclegan_instance_norm(), n_blocks=n_blocks).eval()
    return module, {"kind": "translator", "value_range": (-1.0, 1.0)}


def tiny_resnet_batchnorm(*, ngf: int = 4, n_blocks: int = 2, seed: int = SEED) -> tuple[ResnetGenerator, dict[str, Any]]:
    """The same ResnetGenerator with BatchNorm (``--netG resnet_9blocks --norm batch``, pix2pix's norm): in eval
    mode fully convolutional, so it can be tiled exactly."""
    with _seeded(seed):
        module = _settle(ResnetGenerator(3, 3, ngf=ngf, norm_layer=nn.BatchNorm2d, n_blocks=n_blocks),
                         torch.rand(4, 3, 64, 64) * 2 - 1)
    return module, {"kind": "translator", "value_range": (-1.0, 1.0)}


def tiny_pix2pix(*, num_downs: int = 5, ngf: int = 4, seed: int = SEED) -> tuple[UnetGenerator, dict[str, Any]]:
    """pix2pix's UnetGenerator with 5 levels and ngf 4 (8 and 64 for unet_256), BatchNorm: sides must be
    multiples of 2^5 = 32; convolutional in eval mode, with a receptive field wider than small images."""
    with _seeded(seed):
        module = _settle(UnetGenerator(3, 3, num_downs, ngf=ngf, norm_layer=nn.BatchNorm2d),
                         torch.rand(4, 3, 64, 64) * 2 - 1)
    return module, {"kind": "translator", "value_range": (-1.0, 1.0)}


def found_translator(module: nn.Module) -> dict[str, Any]:
    """What adopting a pix2pix / CycleGAN generator should find, from its architecture: the size multiple
    (2 per stride-2 level) and whether it sees the whole image (InstanceNorm without running statistics)."""
    whole = any(isinstance(m, nn.InstanceNorm2d) and not m.track_running_stats for m in module.modules())
    if isinstance(module, ResnetGenerator):
        return {"multiple": 4, "whole_image": whole, "scale": 1}
    if isinstance(module, UnetGenerator):
        levels = sum(isinstance(m, UnetSkipConnectionBlock) for m in module.modules())
        return {"multiple": 2**levels, "whole_image": whole, "scale": 1}
    raise TypeError(f"not a pix2pix / CycleGAN generator: {type(module).__name__}")


def translator_reference(module: nn.Module, images: np.ndarray, *,
                         value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """torch's translation of uint8 images (N, H, W, C) -> uint8 (N, H, W, C'): the repository's test-time
    pipeline (ToTensor, Normalize(0.5, 0.5): x / 255 * 2 - 1), then the documented conversion out."""
    lo, hi = value_range
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(images, np.uint8).transpose(0, 3, 1, 2)))  # (N, C, H, W)
    x = x.to(torch.float32) / 255.0 * (hi - lo) + lo
    with torch.inference_mode():
        return to_uint8(module(x), value_range)
