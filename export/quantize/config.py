"""What every step of making a variant shares: how it is made and checked (``QuantizeConfig``), the
error when it cannot be (``QuantizationError``), and the generator inputs it draws (``generator_feeds``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ganrt.core.errors import GanrtError
from ganrt.core.latent import sample_latents
from ganrt.core.schema import ModelInfo

CLASSIFIER = "fashion-classifier"


class QuantizationError(GanrtError, RuntimeError):
    """An int8 variant cannot be made, or fails the quality gate against fp32: nothing is written."""


@dataclass(frozen=True)
class QuantizeConfig:
    """How a generator is quantized and checked.

    calibration_n 512: eight batches of 64; the min/max ranges settle well before that on these nets.
    check_n 2000: PSNR and classifier agreement in steps of 0.05%, enough to tell 99% from 98%.
    """

    calibration_n: int = 512
    calibration_seed: int = 1_000_003  # not the check's seed: the gate judges latents calibration never saw
    check_n: int = 2000
    check_seed: int = 0
    min_psnr_db: float = 35.0
    min_agreement: float = 0.99
    activation_type: str = "uint8"  # uint8 | int8
    calibrate_method: str = "minmax"  # minmax | percentile | entropy
    # The first layer in float: the latent (N, nz) -> (N, 16 C, 1, 1) matrix product, ~1% of the work;
    # quantizing z itself costs most of the accuracy (fashion-dcgan: 43.1 dB, 96.9% agreement -> 47.6 dB, 98.8%).
    keep_first_float: bool = True
    # The last layer (-> Tanh) in float: accurate even with the calibrated pre-Tanh range, but its float
    # Conv, layout reorder and dequantized input cost ~15% of the int8 time (DCGAN-64).
    keep_last_float: bool = False
    # With the last layer in int8: Tanh's input quantized on [-r, r] instead of the calibrated range, whose
    # saturated tails (|x| >> 3, where tanh is flat) waste the 256 levels; 0 = calibrated. tanh(3.5) = 0.998:
    # clipping costs < 0.3 of 255 levels. fashion-cgan: calibrated 34.5 dB, r 2.5 43.2 dB, 3.5 48.5 dB, 5 47.6 dB.
    pre_tanh_range: float = 3.5
    classifier: str = CLASSIFIER  # model name or path judging agreement where its image shape fits; "" = none
    # see rewrite.REWRITES: phase-nhwc (2x2 Conv, pixels shuffled channels-last, crop; the first layer a Gemm),
    # phase (the same with an NCHW DepthToSpace), split (four 2x2 Convs, Concat), conv3x3
    rewrite: str = "phase-nhwc"


DEFAULT_CONFIG = QuantizeConfig()  # the default of every ``config=``: one frozen instance, shared


def generator_feeds(info: ModelInfo, seed: int, start: int, n: int) -> dict[str, np.ndarray]:
    """The runtime's inputs for images start..start+n of run ``seed``: z (n, nz) from the model's
    prior, labels (n,) cycling over the classes for a conditional model."""
    idx = np.arange(start, start + n)
    feeds = {"z": sample_latents(seed, idx, info.nz, prior=info.prior)}
    if info.num_classes:
        feeds["label"] = (idx % info.num_classes).astype(np.int64)
    return feeds
