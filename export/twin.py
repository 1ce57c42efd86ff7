"""The torch twin of a ganrt ONNX file: the eager model a user would run, with the file's weights.

The benchmarks compare torch, plain onnxruntime and ganrt on the *same* weights, and the training
checkpoints of the bundled models are not shipped. A generator's ONNX file keeps the torch
parameter names (``net.3.weight``), with each BatchNorm already folded into the transposed
convolution before it (``net.3.weight`` scaled, ``net.3.weight_bias`` the shift). The twin loads
those folded weights and sets every BatchNorm to the identity, so torch still runs the layers a
user's model has (ConvTranspose, BatchNorm, ReLU) and computes the same function as the file.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from ganrt.core.schema import METADATA_KEY, ModelInfo

from .config import GANConfig, SRConfig
from .models import Generator, SRGenerator


class TwinError(ValueError):
    """The file is not a generator or upscaler that ``export/`` made: no torch twin can be built."""


def _info(proto: onnx.ModelProto, source: str) -> ModelInfo:
    meta = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in meta:
        raise TwinError(f"{source} has no ganrt metadata")
    return ModelInfo.from_json(meta[METADATA_KEY], source=source)


def torch_twin(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelInfo]:
    """(eval-mode torch module, its ModelInfo) with the weights of the ganrt ONNX file at ``path``."""
    proto = onnx.load(str(path))
    info = _info(proto, str(path))
    weights = {t.name: torch.from_numpy(np.array(numpy_helper.to_array(t))) for t in proto.graph.initializer}
    raw = info.training.get("model_config")
    if not raw:
        raise TwinError(f"{path}: its metadata has no model_config (not made by ganrt-export)")
    if info.kind == "upscaler":
        model: torch.nn.Module = SRGenerator(SRConfig.from_dict(raw))
        state = {k: weights[k] for k in model.state_dict()}
    elif info.kind == "generator":
        model = Generator(GANConfig.from_dict(raw))
        state = _unfold_batchnorm(model, weights)
    else:
        raise TwinError(f"{path} is a {info.kind}; a twin is built for generators and upscalers")
    model.load_state_dict(state)
    return model.eval(), info


def _unfold_batchnorm(model: Generator, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """State dict for ``model`` from folded weights: each BatchNorm becomes ``x + shift``."""
    state = {}
    layers = list(model.net)
    for i, layer in enumerate(layers):
        if isinstance(layer, torch.nn.ConvTranspose2d):
            state[f"net.{i}.weight"] = weights[f"net.{i}.weight"]
            if layer.bias is not None:
                state[f"net.{i}.bias"] = weights[f"net.{i}.bias"]
        elif isinstance(layer, torch.nn.BatchNorm2d):
            shift = weights[f"net.{i - 1}.weight_bias"]  # (C,)
            c = shift.shape[0]
            # (x - 0) / sqrt((1 - eps) + eps) * 1 + shift == x + shift, exactly in float32
            state.update({f"net.{i}.weight": torch.ones(c), f"net.{i}.bias": shift,
                          f"net.{i}.running_mean": torch.zeros(c), f"net.{i}.running_var": torch.full((c,), 1.0 - layer.eps),
                          f"net.{i}.num_batches_tracked": torch.tensor(0)})
    if model.embed is not None:
        state["embed.weight"] = weights["embed.weight"]
    return state
