"""int8 (and, through ``half.py``, fp16) variants of ganrt files, refused unless they pass a quality gate.

One module per step, each importing only the ones before it:

- ``config``: ``QuantizeConfig``, ``QuantizationError``, the generator inputs drawn for calibration and checks;
- ``rewrite``: a DCGAN generator's ConvTransposes rewritten exactly as Conv + pixel shuffle (onnxruntime
  has no int8 ConvTranspose kernel), and the check that the rewrite is exact;
- ``calibrate``: the calibration data and ``quantize_static``, which makes the QDQ int8 graph;
- ``variants``: the float32 file a variant is made from, the quality gates, the variant's metadata,
  and writing the file (``quantize_file``).
"""

from .calibrate import GeneratorCalibration, quantize_graph, quantize_upscaler_graph
from .config import CLASSIFIER, DEFAULT_CONFIG, QuantizationError, QuantizeConfig, generator_feeds
from .rewrite import REWRITE_TOLERANCE, REWRITES, check_rewrite, rewrite_conv_transpose
from .variants import (
    VARIANT_SUFFIXES,
    float32_info,
    psnr_uint8,
    quality_gate,
    quantize_file,
    quantize_generator,
    quantize_upscaler,
    upscaler_gate,
    variant_info,
    with_metadata,
    write_variant,
)

__all__ = [
    "CLASSIFIER",
    "DEFAULT_CONFIG",
    "REWRITES",
    "REWRITE_TOLERANCE",
    "VARIANT_SUFFIXES",
    "GeneratorCalibration",
    "QuantizationError",
    "QuantizeConfig",
    "check_rewrite",
    "float32_info",
    "generator_feeds",
    "psnr_uint8",
    "quality_gate",
    "quantize_file",
    "quantize_generator",
    "quantize_graph",
    "quantize_upscaler",
    "quantize_upscaler_graph",
    "rewrite_conv_transpose",
    "upscaler_gate",
    "variant_info",
    "with_metadata",
    "write_variant",
]
