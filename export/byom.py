"""Bring your own model: a torch generator, upscaler or translator from anywhere -> a ganrt model file.

``export_generator`` / ``export_upscaler`` / ``export_translator`` take an ``nn.Module`` in eval mode. What the module takes is
found by calling it (the latent layout, the label input), everything else by ``adopt`` on the exported
graph (image shape, scale, receptive radius, range, determinism); then the file's images are compared
with the module's own at batch sizes 1, 3 and 8 before it is written. ``load_module`` is the CLI's way in:
``MODULE:ATTR`` (uvicorn's convention) plus a weights file.
"""

from __future__ import annotations

import importlib
import inspect
import io
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganrt.core.latent import sample_latents
from ganrt.core.session import create_session
from ganrt.io.files import atomic_write
from ganrt.io.images import float_to_uint8

from .adopt import PARITY_BATCH_SIZES, AdoptConfig, AdoptError, adopt_bytes, rgb_to_y
from .files import check_output

OPSET = 17
STATE_DICT_KEYS = ("params_ema", "params", "state_dict", "model", "netG", "generator")  # where checkpoints keep weights
_ATEN_OP = re.compile(r"operator '?(aten::\w+|prim::\w+|\w+::\w+)'?")


class ModuleError(AdoptError):
    """The module, its import or its weights do not fit what was asked."""


# -- the module: how it is called ----------------------------------------------------------------------
def _latent_candidates(module: nn.Module, nz: int | None, latent_shape: tuple[int, ...] | None) -> list[tuple[int, ...]]:
    if latent_shape is not None:
        return [tuple(latent_shape)]
    first = _first_layer(module)
    if nz is None:  # the first layer with weights says how wide its input is
        nz = first.in_features if isinstance(first, nn.Linear) else getattr(first, "in_channels", None)
        if nz is None:
            raise ModuleError("cannot tell the latent size from the module: give --nz")
    return [(nz,), (nz, 1, 1)] if isinstance(first, nn.Linear) else [(nz, 1, 1), (nz,)]


def _first_layer(module: nn.Module) -> nn.Module | None:
    return next((m for m in module.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d, nn.Conv2d))), None)


def _label_candidates(label: str | None, k: int | None) -> list[tuple[str, Any]]:
    """(kind, make(n) -> tensor) in the order they are tried."""
    out: list[tuple[str, Any]] = []
    if k is None:
        return out
    if label in (None, "index"):
        out.append(("index", lambda n: torch.arange(n) % k))
    if label in (None, "onehot"):
        out.append(("onehot", lambda n: torch.eye(k)[torch.arange(n) % k]))
        out.append(("onehot", lambda n: torch.eye(k)[torch.arange(n) % k].reshape(n, k, 1, 1)))
    return out


def _call(module: nn.Module, args: tuple) -> torch.Tensor | None:
    try:
        with torch.inference_mode():
            y = module(*args)
    except (RuntimeError, TypeError, ValueError, IndexError):
        return None
    return y if isinstance(y, torch.Tensor) else None


def _generator_args(module: nn.Module, *, nz, latent_shape, label, num_classes, prior) -> tuple[tuple[int, ...], str, Any]:
    """(latent shape, label kind, make_label) with which ``module(z[, label])`` returns an image batch."""
    takes = len([p for p in inspect.signature(module.forward).parameters.values()
                 if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
    first = _first_layer(module)
    width = first.in_features if isinstance(first, nn.Linear) else getattr(first, "in_channels", None)
    if nz is not None and width is not None and width not in (nz, nz + (num_classes or 0)):
        raise ModuleError(f"--nz {nz} contradicts the module: its first layer ({type(first).__name__}) takes {width} inputs")
    if label == "none" or (label is None and takes < 2):
        labels = [("none", None)]
    else:
        labels = _label_candidates(label, num_classes)
        if not labels:
            raise ModuleError("the module takes a label: give --classes K (and --label index or onehot)")
    tried = []
    for shape in _latent_candidates(module, nz, latent_shape):
        z = torch.from_numpy(sample_latents(0, np.arange(2), int(np.prod(shape)), prior=prior).reshape(2, *shape))
        for kind, make in labels:
            y = _call(module, (z,) if make is None else (z, make(2)))
            if y is not None and y.ndim in (2, 4) and y.shape[0] == 2:
                return shape, kind, make
            tried.append(f"z {tuple(z.shape)}" + ("" if make is None else f", {kind} label {tuple(make(2).shape)}"))
    raise ModuleError(f"the module returned no image batch for any of: {'; '.join(tried)}; "
                      "give --latent-shape and --label as the module expects them")


# -- export and parity -----------------------------------------------------------------------------------
def _to_onnx(module: nn.Module, args: tuple, names: list[str], dynamic: dict[str, dict[int, str]]) -> bytes:
    """The plain graph a user would make by hand (TorchScript exporter, dynamic axes); the op it cannot export named."""
    buf = io.BytesIO()
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, buf, input_names=names[:-1], output_names=names[-1:], opset_version=OPSET,
                              dynamic_axes=dynamic, dynamo=False)
    except Exception as exc:  # torch.onnx raises its own error types, and RuntimeError from tracing
        text = str(exc)
        op = _ATEN_OP.search(text)
        first = text.splitlines()[0][:200] if text else type(exc).__name__
        why = f"the operator {op.group(1)} has no ONNX export" if op else first
        raise ModuleError(f"torch.onnx cannot export the module: {why}") from None
    return buf.getvalue()


def _torch_parity(data: bytes, module: nn.Module, reference, feeds) -> float:
    session = create_session(data, device="cpu", threads=1, source="exported model")
    worst = 0.0
    for n in PARITY_BATCH_SIZES:
        args, ours = feeds(n)
        with torch.inference_mode():
            expected = reference(module(*args).float().numpy(), args)
        got = session.run(None, ours)[0]
        worst = max(worst, float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max()))
    return worst


def export_generator(module: nn.Module, output: str | Path, *, name: str, nz: int | None = None,
                     latent_shape: tuple[int, ...] | None = None, label: str | None = None, num_classes: int | None = None,
                     class_names: tuple[str, ...] = (), prior: str = "normal", value_range: tuple[float, float] = (-1.0, 1.0),
                     image_shape: tuple[int, int, int] | None = None, description: str = "", training_data: str = "",
                     overwrite: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a ganrt generator file for ``module`` (eval mode): ``z`` (N, nz) [+ ``label`` (N,) int64] -> uint8 images.

    The latent layout ((N, nz) or (N, nz, 1, 1)) and the label input (none, an int64 index, a float one-hot
    vector) are found by calling the module unless given; the file's images equal the module's, converted
    from ``value_range`` to uint8, within 1/255 at batch sizes 1, 3 and 8, or nothing is written.
    """
    output = Path(output)
    check_output(output, overwrite=overwrite)
    _check_module(module)
    shape, kind, make = _generator_args(module, nz=nz, latent_shape=latent_shape, label=label, num_classes=num_classes,
                                        prior=prior)
    z = torch.from_numpy(sample_latents(0, np.arange(2), int(np.prod(shape)), prior=prior).reshape(2, *shape))
    args = (z,) if make is None else (z, make(2))
    names = ["z"] + ([] if make is None else ["label"]) + ["image"]
    plain = _to_onnx(module, args, names, {n: {0: "N"} for n in names})
    config = AdoptConfig(kind="generator", name=name, description=description, training_data=training_data,
                         latent_shape=shape, label=kind, num_classes=num_classes if kind != "none" else None,
                         class_names=tuple(class_names), prior=prior, value_range=tuple(value_range), image_shape=image_shape,
                         extra={"from": "torch module", **(extra or {})})
    data, report = adopt_bytes(plain, config, source=name)
    k = num_classes or 0

    def feeds(n: int):
        zz = sample_latents(0, np.arange(n), int(np.prod(shape)), prior=prior)
        targs = (torch.from_numpy(zz.reshape(n, *shape)),) + (() if make is None else (make(n),))
        ours = {"z": zz} | ({} if make is None else {"label": (np.arange(n) % k).astype(np.int64)})
        return targs, ours

    h, w, c = report_shape(data)  # once: it opens a session on the file

    def reference(y: np.ndarray, _args) -> np.ndarray:
        y = y.reshape(len(y), c, h, w) if y.ndim == 2 else y
        y = y.transpose(0, 3, 1, 2) if y.shape[1] not in (1, 3) and y.shape[3] in (1, 3) else y
        return float_to_uint8(y, tuple(value_range))

    worst = _torch_parity(data, module, reference, feeds)
    if worst > 1:
        raise ModuleError(f"the file's images differ from the module's by {worst:.0f}/255 (more than 1); nothing was written")
    report["torch_parity_max_abs_uint8"] = int(worst)
    atomic_write(output, data)
    return report


def export_upscaler(module: nn.Module, output: str | Path, *, name: str, color: str = "rgb",
                    value_range: tuple[float, float] = (0.0, 1.0), description: str = "", training_data: str = "",
                    overwrite: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a ganrt upscaler file for ``module`` (eval mode): RGB (N, 3, H, W) in [0, 1] -> (N, 3, sH, sW).

    ``color`` "y": the module upscales the Y channel (ESPCN); Cb and Cr are upscaled by a cubic resize in
    the graph. The scale and the receptive radius are measured; the file's output equals the module's
    within 1e-4 at batch sizes 1, 3 and 8 (for "y": the Y of the output), or nothing is written.
    """
    output = Path(output)
    check_output(output, overwrite=overwrite)
    _check_module(module)
    channels = 1 if color == "y" else 3
    x = torch.rand(1, channels, 16, 16, generator=torch.Generator().manual_seed(0))
    plain = _to_onnx(module, (x,), ["image", "upscaled"], {"image": {0: "N", 2: "H", 3: "W"},
                                                         "upscaled": {0: "N", 2: "sH", 3: "sW"}})
    config = AdoptConfig(kind="upscaler", name=name, description=description, training_data=training_data, color=color,
                         value_range=tuple(value_range), extra={"from": "torch module", **(extra or {})})
    data, report = adopt_bytes(plain, config, source=name)
    lo, hi = value_range

    def feeds(n: int):
        rgb = np.random.default_rng(n).random((n, 3, 13, 17), dtype=np.float32)
        src = rgb if channels == 3 else rgb_to_y(rgb)
        return (torch.from_numpy(src * (hi - lo) + lo),), {"image": rgb}

    session = create_session(data, device="cpu", threads=1, source=name)
    worst = 0.0
    for n in PARITY_BATCH_SIZES:
        targs, ours = feeds(n)
        with torch.inference_mode():
            expected = (module(*targs).float().numpy() - lo) / (hi - lo)
        got = session.run(None, ours)[0]
        got = got if channels == 3 else rgb_to_y(got)
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > 1e-4:
        raise ModuleError(f"the file's output differs from the module's by {worst:.3g} (more than 1e-4); nothing was written")
    report["torch_parity_max_abs"] = worst
    atomic_write(output, data)
    return report


TRANSLATOR_EXAMPLE_SIDES = (64, 128, 256, 512)  # example input sides tried for the export (a U-Net needs 2^depth)


def export_translator(module: nn.Module, output: str | Path, *, name: str, value_range: tuple[float, float] = (-1.0, 1.0),
                      color_order: str = "rgb", description: str = "", training_data: str = "", overwrite: bool = False,
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a ganrt translator file for ``module`` (eval mode; pix2pix / CycleGAN generators): (N, C_in, H, W)
    in [0, 1] -> (N, C_out, sH, sW) in [0, 1], the module working in ``value_range`` ([-1, 1] for theirs).

    Exported with dynamic H and W at the first example side that the module takes; the size multiple, the
    scale and the receptive radius (or that it sees the whole image) are measured by ``adopt``; the file's
    output equals the module's within 1e-4 at batch sizes 1, 3 and 8, or nothing is written.
    """
    output = Path(output)
    check_output(output, overwrite=overwrite)
    _check_module(module)
    first = _first_layer(module)
    channels = getattr(first, "in_channels", 3) if isinstance(first, nn.Conv2d) else 3
    lo, hi = value_range
    x = None
    for side in TRANSLATOR_EXAMPLE_SIDES:
        x = torch.rand(2, channels, side, side, generator=torch.Generator().manual_seed(0)) * (hi - lo) + lo
        y = _call(module, (x,))
        if y is not None and y.ndim == 4 and y.shape[0] == 2:
            break
    else:
        raise ModuleError(f"the module returned no image batch for (2, {channels}, S, S) inputs, "
                          f"S in {', '.join(map(str, TRANSLATOR_EXAMPLE_SIDES))}")
    plain = _to_onnx(module, (x,), ["image", "translated"], {"image": {0: "N", 2: "H", 3: "W"},
                                                           "translated": {0: "N", 2: "sH", 3: "sW"}})
    config = AdoptConfig(kind="translator", name=name, description=description, training_data=training_data,
                         value_range=tuple(value_range), color_order=color_order,
                         extra={"from": "torch module", **(extra or {})})
    data, report = adopt_bytes(plain, config, source=name)
    multiple = max(int(report["size_multiple"]), 1)
    session = create_session(data, device="cpu", threads=1, source=name)
    worst = 0.0
    for n, (h, w) in zip(PARITY_BATCH_SIZES, ((13, 17), (16, 16), (9, 11))):
        h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        image = np.random.default_rng(n).random((n, channels, h, w), dtype=np.float32)
        with torch.inference_mode():
            expected = (module(torch.from_numpy(image * (hi - lo) + lo)).float().numpy() - lo) / (hi - lo)
        worst = max(worst, float(np.abs(session.run(None, {"image": image})[0] - expected).max()))
    if worst > 1e-4:
        raise ModuleError(f"the file's output differs from the module's by {worst:.3g} (more than 1e-4); nothing was written")
    report["torch_parity_max_abs"] = worst
    atomic_write(output, data)
    return report


def report_shape(data: bytes) -> tuple[int, int, int]:
    """(H, W, C) of the images a generator file makes, from its metadata."""
    from ganrt.core.session import read_info

    return read_info(create_session(data, device="cpu", threads=1, source="exported model"), source="exported model").image_shape


def _check_module(module: Any) -> None:
    if not isinstance(module, nn.Module):
        raise ModuleError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if module.training:
        raise ModuleError(f"{type(module).__name__} is in training mode: call .eval() first "
                          "(BatchNorm and dropout behave differently in training)")


# -- MODULE:ATTR and a weights file (the CLI) ------------------------------------------------------------
def import_attr(spec: str, *, path: str | Path | None = None) -> Any:
    """``package.module:Attr.sub`` -> the object (uvicorn's convention); ``path`` is searched first."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ModuleError(f"{spec!r} is not MODULE:ATTR (e.g. models.dcgan:Generator)")
    if path is not None:
        sys.path.insert(0, str(Path(path).resolve()))
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the user's module raises while it imports
        reason = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ModuleError(f"cannot import {module_name}: {type(exc).__name__}: {reason}"
                          + ("" if path else " (--path DIR adds the folder it lives in)")) from None
    finally:
        if path is not None:
            sys.path.pop(0)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModuleError(f"{module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def load_weights(module: nn.Module | None, file: str | Path, *, trust_pickle: bool = False) -> nn.Module:
    """``module`` with the state dict in ``file`` (``torch.save``; ``nn.DataParallel``'s ``module.`` prefixes
    stripped; checkpoints that keep it under params_ema / state_dict / ... unwrapped). A whole pickled
    module is loaded only with ``trust_pickle`` (loading it runs code from the file) and replaces ``module``."""
    file = Path(file)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModuleError(f"{file}: no such file") from None
    except Exception as exc:  # pickle's UnpicklingError for anything but tensors and containers, zip errors
        if not trust_pickle:
            if "weights_only" in str(exc) or "Unsupported global" in str(exc):
                raise ModuleError(f"{file} holds a pickled object, not only weights; loading it runs code from the file: "
                                  "pass --trust-pickle if you trust where it came from") from None
            raise ModuleError(f"{file} is not a torch.save file: {str(exc).splitlines()[0][:160]}") from None
        try:
            state = torch.load(file, map_location="cpu", weights_only=False)
        except Exception as exc2:  # the user's pickle: any error its code raises
            raise ModuleError(f"{file} cannot be loaded: {type(exc2).__name__}: {str(exc2).splitlines()[0][:160]}") from None
    if isinstance(state, nn.Module):
        return state.module if isinstance(state, nn.DataParallel) else state
    if isinstance(state, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(state.get(key), dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModuleError(f"{file} holds no state dict (a dict of tensors)")
    if module is None:
        raise ModuleError(f"{file} holds a state dict: give MODULE:ATTR, the class it belongs to")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}  # saved from nn.DataParallel
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
             for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = [f"{label} {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise ModuleError(f"{file} does not fit {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict(state)
    return module


def build_module(spec: str | None, *, kwargs: dict[str, Any] | None = None, weights: str | Path | None = None,
                 trust_pickle: bool = False, path: str | Path | None = None) -> nn.Module:
    """The CLI's module: ``spec`` (a class, a factory or an instance) called with ``kwargs``, then ``weights``."""
    module = None
    if spec is not None:
        obj = import_attr(spec, path=path)
        if isinstance(obj, nn.Module):
            module = obj
        elif callable(obj):
            try:
                module = obj(**(kwargs or {}))
            except Exception as exc:  # the user's constructor
                raise ModuleError(f"{spec}(**{kwargs or {}}) failed: {type(exc).__name__}: {str(exc)[:200]}") from None
        if not isinstance(module, nn.Module):
            raise ModuleError(f"{spec} gave a {type(module).__name__}, not a torch.nn.Module")
    if weights is not None:
        if module is None and not trust_pickle:
            raise ModuleError("without MODULE:ATTR the weights file must hold a whole module: that needs --trust-pickle")
        if path is not None:  # a pickled module's classes are imported by name, from the same folder as MODULE's
            sys.path.insert(0, str(Path(path).resolve()))
        try:
            module = load_weights(module, weights, trust_pickle=trust_pickle)
        finally:
            if path is not None:
                sys.path.pop(0)
    if module is None:
        raise ModuleError("give MODULE:ATTR, or --weights FILE holding a whole module (with --trust-pickle)")
    return module.eval()
