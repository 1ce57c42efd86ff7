"""int8 and fp16 variants: the float32 file they are made from, the quality gates, the variant's
metadata, and writing it.

The gate: on ``check_n`` latents, the variant's images against the fp32 images (both uint8, as the
runtime returns them) must reach ``min_psnr_db``, and where the bundled ``fashion-classifier`` fits
the images (32x32x1) its predictions must agree on ``min_agreement`` of them; an upscaler's variant
must reach ``min_psnr_db`` on the held-out photos, upscaled whole. A variant that fails raises
``QuantizationError`` and nothing is written; one that passes carries its numbers in the metadata
(``training["quantization"]``) and its precision (``"int8"``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ganrt.core.errors import ModelKindError, OutputError
from ganrt.core.schema import METADATA_KEY, ModelInfo
from ganrt.core.session import create_session
from ganrt.io.files import atomic_write

from ..files import check_output
from .calibrate import quantize_graph, quantize_upscaler_graph
from .config import DEFAULT_CONFIG, QuantizationError, QuantizeConfig, generator_feeds

VARIANT_SUFFIXES = {"int8": "int8", "float16": "fp16"}  # precision -> the variant's name suffix and label


def float32_info(proto: onnx.ModelProto, source: str, *, kinds: tuple[str, ...] = ("generator",)) -> ModelInfo:
    """The settings of the float32 ganrt file ``proto`` that a variant is made from: QuantizationError
    without ganrt metadata or if it is a variant already, ModelKindError unless its kind is in ``kinds``."""
    meta = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in meta:
        raise QuantizationError(f"{source} has no ganrt metadata: quantize a file made by ganrt-export")
    info = ModelInfo.from_json(meta[METADATA_KEY], source=source)
    if info.kind not in kinds:
        raise ModelKindError(f"{source} is a {info.kind}; int8 and fp16 variants are made for "
                             f"{' and '.join(k + 's' for k in kinds)}")
    if info.precision != "float32":
        raise QuantizationError(f"{source} is already {info.precision}; make variants from its float32 file")
    return info


def variant_info(info: ModelInfo, training: dict[str, Any], *, precision: str = "int8") -> ModelInfo:
    """The variant's settings: its own name (``NAME-int8``, ``NAME-fp16``, so outputs and provenance say
    which file made an image), a description that says so, its precision, the gate's numbers in ``training``."""
    suffix = VARIANT_SUFFIXES[precision]
    name = info.name if info.name.endswith(f"-{suffix}") else f"{info.name}-{suffix}"
    return dataclasses.replace(info, name=name, description=f"{info.description} ({suffix} variant)".strip(),
                               precision=precision, training=training)


def with_metadata(qproto: onnx.ModelProto, proto: onnx.ModelProto, qinfo: ModelInfo) -> bytes:
    """The variant graph ``qproto``'s bytes, with the float file ``proto``'s producer and doc string and
    ``qinfo`` as its metadata (``qproto`` is changed in place)."""
    qproto.producer_name, qproto.producer_version = proto.producer_name, proto.producer_version
    qproto.doc_string = proto.doc_string
    del qproto.metadata_props[:]
    entry = qproto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, qinfo.to_json()
    return qproto.SerializeToString()


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 image batches of one shape, over every value."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def _images(session: Any, info: ModelInfo, config: QuantizeConfig, *, batch: int = 250) -> np.ndarray:
    """(check_n, H, W, C) uint8 from the generator ``session`` on the check latents."""
    out = [session.run(None, generator_feeds(info, config.check_seed, s, min(batch, config.check_n - s)))[0]
           for s in range(0, config.check_n, batch)]
    return np.concatenate(out)


def quality_gate(float_data: bytes, int8_data: bytes, info: ModelInfo, *, config: QuantizeConfig,
                 source: str = "model", label: str = "int8") -> dict[str, Any]:
    """{psnr_db, classifier_agreement (None if no classifier fits), check_n} of the ``label`` (int8, fp16)
    variant's images against the float32 file's; QuantizationError below a threshold."""
    import ganrt

    ref = _images(create_session(float_data, device="cpu", source=source), info, config)
    got = _images(create_session(int8_data, device="cpu", source=f"{source} ({label})"), info, config)
    psnr = psnr_uint8(ref, got)
    agreement = None
    judge = ganrt.load(config.classifier) if config.classifier else None
    if judge is not None and judge.info.kind != "classifier":
        raise ModelKindError(f"{config.classifier} is a {judge.info.kind}, not a classifier to judge agreement with")
    if judge is not None and tuple(judge.image_shape) == tuple(info.image_shape):
        agreement = float(np.mean(judge.predict(ref)[0] == judge.predict(got)[0]))
    scores = {"psnr_db": round(psnr, 2), "classifier_agreement": agreement, "check_n": config.check_n}
    if not psnr >= config.min_psnr_db:
        raise QuantizationError(f"{source}: {label} images reach {psnr:.2f} dB PSNR to fp32 (< {config.min_psnr_db:g} dB "
                                f"over {config.check_n} images); refused, nothing written")
    if agreement is not None and not agreement >= config.min_agreement:
        raise QuantizationError(f"{source}: the classifier agrees on {agreement:.2%} of {label} vs fp32 images "
                                f"(< {config.min_agreement:.0%}; PSNR {psnr:.2f} dB); refused, nothing written")
    return scores


def upscaler_gate(float_data: bytes, variant_data: bytes, info: ModelInfo, *, config: QuantizeConfig, source: str = "model",
                  label: str = "int8") -> dict[str, Any]:
    """{psnr_db, check_photos}: the held-out photos upscaled whole (through the runtime's tiler) by the
    ``label`` variant against the float32 file; QuantizationError under ``min_psnr_db``."""
    from ganrt.kinds.upscaler import Upscaler

    from ..data import degrade, load_photos

    ref_model = Upscaler(create_session(float_data, device="cpu", source=source), info, source=source)
    variant = Upscaler(create_session(variant_data, device="cpu", source=f"{source} ({label})"), info, source=source)
    lows = [degrade(photo, info.scale)[1] for _, photo in load_photos("eval")]
    ref = np.concatenate([ref_model.upscale(low).reshape(-1) for low in lows])
    got = np.concatenate([variant.upscale(low).reshape(-1) for low in lows])
    psnr = psnr_uint8(ref, got)
    if not psnr >= config.min_psnr_db:
        raise QuantizationError(f"{source}: {label} upscaled photos reach {psnr:.2f} dB PSNR to fp32 "
                                f"(< {config.min_psnr_db:g} dB); refused, nothing written")
    return {"psnr_db": round(psnr, 2), "check_photos": len(lows)}


def quantize_generator(data: bytes, *, config: QuantizeConfig = DEFAULT_CONFIG,
                       source: str = "model") -> tuple[bytes, dict[str, Any]]:
    """(int8 file bytes, report) from a float32 ganrt generator's bytes; QuantizationError if the gate fails."""
    proto = onnx.load_from_string(data)
    info = float32_info(proto, source)
    qproto, count, rewrite_diff = quantize_graph(proto, info, config=config, source=source)
    scores = quality_gate(data, qproto.SerializeToString(), info, config=config, source=source)
    training = {**info.training, "quantization": {**scores, "calibration_n": config.calibration_n,
                                                  "calibrate_method": config.calibrate_method,
                                                  "activation_type": config.activation_type, "weight_type": "int8 per-channel",
                                                  "rewrite": config.rewrite, "keep_first_float": config.keep_first_float,
                                                  "keep_last_float": config.keep_last_float,
                                                  "pre_tanh_range": config.pre_tanh_range}}
    qinfo = variant_info(info, training)
    out = with_metadata(qproto, proto, qinfo)
    return out, {"info": qinfo, "bytes": len(out), "rewritten": count, "rewrite_max_abs_diff": rewrite_diff, **scores}


def quantize_upscaler(data: bytes, *, config: QuantizeConfig = DEFAULT_CONFIG,
                      source: str = "model") -> tuple[bytes, dict[str, Any]]:
    """(int8 file bytes, report) from a float32 ganrt upscaler: every Conv as QLinearConv (int8
    per-channel weights, uint8 activations, calibrated on training-photo patches); the nearest
    upsampling and the residual sum stay float. Gate: the upscaled evaluation photos (whole images,
    through the runtime's tiler) reach ``min_psnr_db`` against the fp32 file's; else QuantizationError."""
    proto = onnx.load_from_string(data)
    info = float32_info(proto, source, kinds=("upscaler",))
    qproto = quantize_upscaler_graph(data, info, config=config, source=source)
    scores = upscaler_gate(data, qproto.SerializeToString(), info, config=config, source=source)
    training = {**info.training, "quantization": {**scores, "calibration_patches": config.calibration_n // 16,
                                                  "activation_type": "uint8", "weight_type": "int8 per-channel"}}
    qinfo = variant_info(info, training)
    out = with_metadata(qproto, proto, qinfo)
    return out, {"info": qinfo, "bytes": len(out), **scores}


def write_variant(input: str | os.PathLike, output: str | os.PathLike, make, *, config: QuantizeConfig,
                  overwrite: bool = False) -> dict[str, Any]:
    """``make(bytes of input, config=, source=) -> (variant bytes, report)``, written to ``output`` only if it
    returns (a gate that fails raises and nothing is written); the output is checked before any work."""
    output = Path(output)
    check_output(output, overwrite=overwrite)
    try:
        data = Path(input).read_bytes()
    except OSError as exc:
        raise OutputError(f"cannot read {input}: {exc.strerror}") from None
    out, report = make(data, config=config, source=str(input))
    atomic_write(output, out)
    return report


def _quantize_any(data: bytes, *, config: QuantizeConfig, source: str) -> tuple[bytes, dict[str, Any]]:
    kind = float32_info(onnx.load_from_string(data), source, kinds=("generator", "upscaler", "translator")).kind
    if kind == "translator":
        from .translator import quantize_translator  # imports this module: here, not at the top

        return quantize_translator(data, config=config, source=source)
    return (quantize_upscaler if kind == "upscaler" else quantize_generator)(data, config=config, source=source)


def quantize_file(input: str | os.PathLike, output: str | os.PathLike, *, config: QuantizeConfig = DEFAULT_CONFIG,
                  overwrite: bool = False) -> dict[str, Any]:
    """Write the int8 variant of the float32 ganrt generator, upscaler or translator ``input`` to ``output`` if it
    passes the gate."""
    return write_variant(input, output, _quantize_any, config=config, overwrite=overwrite)
