"""A super-resolution ``.pth`` that spandrel recognises -> a ganrt upscaler (``ganrt-export spandrel``).

spandrel (PyPI) finds the architecture and its settings from the state dict alone (ESRGAN, Real-ESRGAN
compact, SPAN, SwinIR, HAT, DAT, ...). ganrt tiles any image exactly, with tiles of any size starting
anywhere, so it can serve only networks whose output pixel depends on a bounded neighbourhood, the same
wherever the image starts. What cannot be served is refused, with the reason, before any export:

- spandrel's descriptor: inpainting and face models, scale 1 (restoration), channels other than 3 -> 3
  or 1 -> 1 (run on Y), inputs that must be a multiple of N pixels or square;
- the module: a layer that pools over the whole image (channel attention: RCAN, HAT, DAT, ...), and a
  shift test in torch (window attention: SwinIR, Swin2SR, OmniSR, ...; stride-2 stages).

The rest goes through ``byom.export_upscaler`` (ONNX export, scale and receptive radius measured, parity
with the module at batch 1, 3 and 8), and then the file itself must tile: its tiled output must equal
its whole-image output, or nothing is written.

spandrel declares torchvision but uses it only in two architectures that are no upscalers (LaMa
inpainting, RestoreFormer faces), and imports them when it is imported. PyPI's torchvision is a CUDA
build that does not load beside the CPU torch (``operator torchvision::nms does not exist``), so where no
torchvision loads, spandrel is imported beside a stand-in of the three names those two files take; the
stand-in raises if either is ever run and is gone from ``sys.modules`` afterwards.
"""

from __future__ import annotations

import enum
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import ganrt
from ganrt.io.files import atomic_write

from .adopt import AdoptError
from .byom import ModuleError, export_upscaler
from .files import check_output

INSTALL = "pip install --no-deps spandrel==0.4.2 && pip install 'ganrt[spandrel]'"  # --no-deps: see the docstring
PURPOSES = {"FaceSR": "a face restoration model (aligned face crops of a fixed size, not tiles of any image)",
            "Restoration": "a restoration model (scale 1: denoising, deblurring, JPEG), not an upscaler",
            "Inpainting": "an inpainting model (it takes an image and a mask)"}
_STAND_IN = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


class SpandrelError(ModuleError):
    """spandrel is missing, does not recognise the file, or recognises a model ganrt cannot serve."""


def import_spandrel() -> types.ModuleType:
    """The spandrel package (beside a torchvision stand-in where no torchvision loads); SpandrelError if missing."""
    if sys.modules.get("spandrel") is not None:
        return sys.modules["spandrel"]
    try:
        import torchvision  # noqa: F401
    except Exception:  # missing (ImportError), or PyPI's CUDA build beside the CPU torch (RuntimeError)
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]  # what a failed import left half-made
        return _import_beside_stand_in()
    return _import()


def _import() -> types.ModuleType:
    try:
        import spandrel
    except ImportError as exc:
        if exc.name != "spandrel":
            raise SpandrelError(f"spandrel cannot be imported: {exc}") from None
        raise SpandrelError(f"spandrel is not installed: {INSTALL}") from None
    return spandrel


def _import_beside_stand_in() -> types.ModuleType:
    tv, transforms, functional = (types.ModuleType(name) for name in _STAND_IN)

    class InterpolationMode(enum.Enum):  # torchvision's names, as LaMa refers to them
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    def needs_torchvision(*_args: Any, **_kwargs: Any) -> Any:
        raise SpandrelError("this spandrel architecture runs torchvision, which is not installed beside this torch")

    functional.InterpolationMode = InterpolationMode
    functional.rotate = functional.normalize = needs_torchvision
    tv.transforms, transforms.functional = transforms, functional
    sys.modules.update(zip(_STAND_IN, (tv, transforms, functional)))
    try:
        return _import()
    finally:
        for name in _STAND_IN:
            sys.modules.pop(name, None)


def load_descriptor(path: str | Path) -> Any:
    """spandrel's ``ImageModelDescriptor`` for the file; SpandrelError naming spandrel's reason otherwise."""
    spandrel = import_spandrel()
    path = Path(path)
    if not path.is_file():
        raise SpandrelError(f"{path}: no such file")
    try:
        return spandrel.ModelLoader().load_from_file(path)
    except spandrel.UnsupportedModelError:
        raise SpandrelError(f"{path}: spandrel {spandrel.__version__} recognises no architecture in its state dict "
                            "(keys and shapes match none it knows)") from None
    except Exception as exc:  # its restricted unpickler, zip/safetensors readers, and an architecture's own load
        reason = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise SpandrelError(f"{path}: spandrel cannot load it: {type(exc).__name__}: {reason}") from None


def describe(descriptor: Any) -> dict[str, Any]:
    """What spandrel says about the model, as stored in the file's metadata."""
    spandrel = import_spandrel()
    req = descriptor.size_requirements
    return {"spandrel_version": spandrel.__version__, "architecture": descriptor.architecture.name,
            "architecture_id": str(descriptor.architecture.id), "purpose": descriptor.purpose, "tags": list(descriptor.tags),
            "scale": descriptor.scale, "input_channels": descriptor.input_channels,
            "output_channels": descriptor.output_channels, "tiling": descriptor.tiling.name,
            "size_requirements": {"minimum": req.minimum, "multiple_of": req.multiple_of, "square": req.square}}


def check_fits(descriptor: Any) -> str:
    """The ``color`` ganrt runs the model with ("rgb" or "y"); SpandrelError saying why it cannot serve it."""
    arch = descriptor.architecture.name
    if descriptor.purpose in PURPOSES or descriptor.scale < 2:
        raise SpandrelError(f"{arch} is {PURPOSES.get(descriptor.purpose, PURPOSES['Restoration'])}; "
                            "ganrt serves upscalers of scale >= 2")
    if descriptor.purpose != "SR":
        raise SpandrelError(f"{arch}: purpose {descriptor.purpose!r}, not super-resolution")
    channels = (descriptor.input_channels, descriptor.output_channels)
    if channels not in ((3, 3), (1, 1)):
        raise SpandrelError(f"{arch} maps {channels[0]} to {channels[1]} channels; ganrt runs RGB (3 -> 3) "
                            "or one channel as Y (1 -> 1)")
    req = descriptor.size_requirements
    if req.multiple_of > 1 or req.square:
        need = " and ".join(([f"a multiple of {req.multiple_of} pixels"] if req.multiple_of > 1 else [])
                            + (["square"] if req.square else []))
        raise SpandrelError(f"{arch} needs inputs {need}; ganrt's tiles have any size and start anywhere, "
                            "and padding them would change what the border pixels see")
    return "rgb" if channels[0] == 3 else "y"


class _Called(nn.Module):
    """The network as spandrel calls it: most architectures are ``model(x)``; a few unwrap or rescale
    (MMRealSR returns a tuple). ``_call_fn`` is spandrel's own (private: it has no public way to get it),
    without the padding and clamp of its ``__call__`` (ganrt clamps when it converts to uint8)."""

    def __init__(self, descriptor: Any) -> None:
        super().__init__()
        self.model = descriptor.model
        self.call = getattr(descriptor, "_call_fn", None)

    def forward(self, x):
        return self.model(x) if self.call is None else self.call(self.model, x)


def export_spandrel(pth_path: str | Path, output: str | Path, *, name: str | None = None, description: str = "",
                    training_data: str = "", overwrite: bool = False) -> dict[str, Any]:
    """Write a ganrt upscaler file for the super-resolution model spandrel finds in ``pth_path``.

    ``name`` defaults to ``output``'s stem, as for ``ganrt-export torch``. Refused (SpandrelError, nothing
    written) when spandrel does not recognise the file, when it is not an upscaler ganrt can tile (see the
    module docstring), when the architecture does not export to ONNX, or when the exported file's tiled
    output differs from its whole-image output. The report is ``export_upscaler``'s plus ``spandrel``
    (what spandrel said, also stored in the file) and ``tiled_vs_whole_max_abs_uint8``.
    """
    output = Path(output)
    check_output(output, overwrite=overwrite)
    descriptor = load_descriptor(pth_path)
    color = check_fits(descriptor)
    about = describe(descriptor)
    arch, name = about["architecture"], name or output.stem
    module = _Called(descriptor).eval()
    _check_local(module, arch)
    _check_shift(module, descriptor.input_channels, descriptor.scale, arch)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / output.name
        try:
            report = export_upscaler(module, staged, name=name, color=color,
                                     description=description or f"{arch} x{about['scale']} (spandrel)",
                                     training_data=training_data, extra={"from": "spandrel", "spandrel": about})
        except AdoptError as exc:  # ModuleError from the export, AdoptError from the measurements and parity
            reason = str(exc).removeprefix(f"{name}: ")
            raise SpandrelError(f"{arch}: {reason}") from None
        report["tiled_vs_whole_max_abs_uint8"] = _check_tiling(staged, arch)
        atomic_write(output, staged.read_bytes())
    report["spandrel"] = about
    return report


def _check_local(module: nn.Module, arch: str) -> None:
    """SpandrelError if a layer pools over the whole image (channel attention, as in RCAN and HAT).

    Such a layer makes every output pixel depend on every input pixel. With random or small weights the
    effect can stay below what perturbing one pixel shows, so the measured radius would not catch it."""
    pools = [name for name, m in module.named_modules()
             if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) and m.output_size in (1, (1, 1))]
    if pools:
        more = f" (and {len(pools) - 1} more like it)" if len(pools) > 1 else ""
        raise SpandrelError(f"{arch}: the layer {pools[0]}{more} averages each channel over the whole image (channel "
                            "attention), so every output pixel depends on every input pixel: ganrt cannot tile it exactly")


SHIFT = (3, 5)  # input pixels; odd and no multiple of 2, 4 or 8, the usual window and downsampling grids
SHIFT_SIDE, SHIFT_KEEP = 128, 32  # a 128^2 input; its last 32 rows and columns (91+ pixels from the cut) compared


def _check_shift(module: nn.Module, channels: int, scale: int, arch: str) -> None:
    """SpandrelError if the torch module is not translation-equivariant: cutting SHIFT pixels off the top
    and left of the input must leave the bottom-right corner of the output as it was (both runs share that
    border, so only a network whose output depends on where the image starts fails). Window attention
    (SwinIR, HAT, ...) and stride-2 stages fail it, as tiles starting anywhere would; checked in torch,
    before an export that would fail less clearly (shapes fixed at the traced size, or a crash of the tracer)."""
    dy, dx = SHIFT
    x = torch.rand(1, channels, SHIFT_SIDE, SHIFT_SIDE, generator=torch.Generator().manual_seed(0))
    keep = SHIFT_KEEP * scale
    try:
        with torch.inference_mode():
            whole, cut = module(x), module(x[:, :, dy:, dx:])  # (1, C, sS, sS), (1, C, s(S-dy), s(S-dx))
    except Exception as exc:  # whatever the architecture's forward raises
        raise SpandrelError(f"{arch} fails in torch on a {SHIFT_SIDE}x{SHIFT_SIDE} input: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
    expected = (1, channels, scale * SHIFT_SIDE, scale * SHIFT_SIDE)
    if not isinstance(whole, torch.Tensor) or tuple(whole.shape) != expected:
        got = tuple(whole.shape) if isinstance(whole, torch.Tensor) else type(whole).__name__
        raise SpandrelError(f"{arch}: a {SHIFT_SIDE}x{SHIFT_SIDE} input gave {got}, not {expected} as spandrel's scale "
                            f"{scale} says")
    worst = float((whole[:, :, -keep:, -keep:] - cut[:, :, -keep:, -keep:]).abs().max()) * 255
    if worst > 0.5:  # half a uint8 step: what a tile starting elsewhere could change in ganrt's images
        raise SpandrelError(f"{arch}: cutting {dy} rows and {dx} columns off the input changes the output "
                            f"{SHIFT_SIDE - SHIFT_KEEP - max(SHIFT)}+ pixels from the cut by {worst:.0f}/255: the network is not "
                            "translation-equivariant (attention windows or a downsampling grid fixed to the image corner), "
                            "so ganrt cannot tile it")


def _check_tiling(path: Path, arch: str) -> int:
    """Largest uint8 difference between tiled and whole-image output of the file; SpandrelError above 1.

    Tiles of 4r+16 pixels (the default overlap 2r+8 fits twice), an image of two to three tiles a side
    whose last tiles start at odd offsets: what the shift test in torch did not show, the file shows here.
    """
    up = ganrt.load(path, kind="upscaler", threads=1)
    tile = max(24, 4 * up.receptive_radius + 16)
    h, w = tile + tile // 2 + 5, 2 * tile + 3
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 8, (h, w, 3))
    image = np.stack([128 + 100 * np.sin(xx / 7 + c) * np.cos(yy / 9 - c) for c in range(3)], -1) + noise
    image = np.clip(image, 0, 255).astype(np.uint8)  # smooth gradients with texture, (H, W, 3)
    whole = up.upscale(image, tile=max(h, w)).astype(int)
    worst = int(np.abs(up.upscale(image, tile=tile).astype(int) - whole).max())
    if worst > 1:
        raise SpandrelError(f"{arch}: tiled output differs from the whole image by {worst}/255 (receptive radius "
                            f"{up.receptive_radius}, tiles of {tile}): the network sees farther than its measured radius or "
                            "depends on where the image starts, so ganrt cannot tile it")
    return worst
