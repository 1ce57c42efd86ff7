"""int8 and fp16 variants of translators: their calibration and check inputs, and their quality gate.

Inputs come from what the file was trained on: a ganrt pix2pix file (its training record has the
``train_config`` of ``export/pix2pix.py``) gets Canny edges of Fashion-MNIST as it was trained on, the
training split for calibration and the test split for the gate; any other translator gets the bundled
photos (``data.load_photos``: training photos for calibration, the held-out ones for the gate), cropped
to 256x256 (a multiple of every U-Net's size multiple up to 2^8) in the file's channel count.

The gate: the variant's images against the float32 file's (both uint8, through the runtime's
``Translator``, whole images) must reach ``config.min_psnr_db`` (35 dB) over every value; else
``QuantizationError`` and nothing is written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ganrt.core.schema import ModelInfo
from ganrt.core.session import create_session

from .calibrate import _quantize_static
from .config import DEFAULT_CONFIG, QuantizationError, QuantizeConfig
from .variants import float32_info, psnr_uint8, variant_info, with_metadata

PHOTO_SIDE = 256


def check_images(info: ModelInfo, *, split: str, n: int) -> np.ndarray:
    """(N, H, W, C_in) uint8 inputs for the translator ``info`` (see the module docstring); ``split`` train | test."""
    record = info.training.get("adopted", {})
    c = info.image_shape[2]
    if "train_config" in record:  # a ganrt pix2pix file: its own kind of input
        from ..config import TranslatorConfig, TranslatorTrainConfig
        from ..pix2pix import edge_pairs

        tc = record["train_config"]
        tcfg = TranslatorTrainConfig(dataset=tc.get("dataset", "fashion-mnist"), data_dir=tc.get("data_dir", ""),
                                     canny_sigma=float(tc.get("canny_sigma", 1.0)))
        cfg = TranslatorConfig(image_size=int(record.get("model_config", {}).get("image_size", 32)), in_channels=c,
                               out_channels=info.out_channels, num_downs=1)
        return edge_pairs(tcfg, cfg, split=split, limit=n).edges.permute(0, 2, 3, 1).numpy()
    from ..data import load_photos

    out = []
    for _, photo in load_photos("train" if split == "train" else "eval"):
        if min(photo.shape[:2]) < PHOTO_SIDE:
            continue
        crop = photo[:PHOTO_SIDE, :PHOTO_SIDE]  # (256, 256, 3)
        if c == 1:
            crop = np.round(crop @ np.array([0.299, 0.587, 0.114]))[..., None].astype(np.uint8)
        elif c != 3:
            raise QuantizationError(f"{info.name} takes {c} channels; variants of translators are checked on photos "
                                    "(1 or 3 channels) or on the edges a ganrt pix2pix file was trained on")
        out.append(crop)
    return np.stack(out[: max(n, 1)])


class _Calibration:
    """onnxruntime.quantization's reader: the translator's training inputs in [0, 1], ``batch`` at a time."""

    def __init__(self, info: ModelInfo, config: QuantizeConfig, *, batch: int = 64) -> None:
        x = check_images(info, split="train", n=config.calibration_n).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        self._batches = iter([{"image": x[i : i + batch]} for i in range(0, len(x), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def translator_gate(float_data: bytes, variant_data: bytes, info: ModelInfo, *, config: QuantizeConfig,
                    source: str = "model", label: str = "int8") -> dict[str, Any]:
    """{psnr_db, check_n}: the ``label`` variant's translations of the check inputs against the float32 file's;
    QuantizationError under ``config.min_psnr_db``."""
    from ganrt.kinds.translator import Translator

    images = check_images(info, split="test", n=config.check_n)
    ref = Translator(create_session(float_data, device="cpu", source=source), info, source=source)
    got = Translator(create_session(variant_data, device="cpu", source=f"{source} ({label})"), info, source=source)
    psnr = psnr_uint8(ref.translate_many(images), got.translate_many(images))
    if not psnr >= config.min_psnr_db:
        raise QuantizationError(f"{source}: {label} translations reach {psnr:.2f} dB PSNR to fp32 (< {config.min_psnr_db:g} dB "
                                f"over {len(images)} images); refused, nothing written")
    return {"psnr_db": round(psnr, 2), "check_n": int(len(images))}


def quantize_translator(data: bytes, *, config: QuantizeConfig = DEFAULT_CONFIG,
                        source: str = "model") -> tuple[bytes, dict[str, Any]]:
    """(int8 file bytes, report) from a float32 ganrt translator: Conv and ConvTranspose with int8 per-channel
    weights and uint8 activations (QDQ, MinMax-calibrated on its training inputs); the gate as above."""
    from onnxruntime.quantization import CalibrationMethod, QuantType

    proto = onnx.load_from_string(data)
    info = float32_info(proto, source, kinds=("translator",))
    qproto = _quantize_static(data, lambda: _Calibration(info, config), source=source, activation_type=QuantType.QUInt8,
                              calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv", "ConvTranspose"])
    scores = translator_gate(data, qproto.SerializeToString(), info, config=config, source=source)
    training = {**info.training, "quantization": {**scores, "calibration_n": config.calibration_n,
                                                  "activation_type": "uint8", "weight_type": "int8 per-channel",
                                                  "op_types": ["Conv", "ConvTranspose"]}}
    qinfo = variant_info(info, training)
    out = with_metadata(qproto, proto, qinfo)
    return out, {"info": qinfo, "bytes": len(out), **scores}
