"""The model-file schema: what ganrt stores in an ONNX file's metadata and how it is read back.

This module is the contract between the torch side (``export/`` writes it) and the runtime (which
reads and validates it). The settings live under one metadata key as JSON, with a schema version so
that older files keep loading when fields are added.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ganrt.core.errors import ModelFormatError
from ganrt.core.kind import KINDS

METADATA_KEY = "ganrt"
SCHEMA_VERSION = 1
PRECISIONS = ("float32", "float16", "bfloat16", "int8")
MAX_METADATA_BYTES = 1 << 20  # 1 MiB: settings, not payloads
# JSON nested deeper than this is refused (ganrt's own files nest 4 deep): `info --json` and `export-triton`
# re-encode the metadata, and Python's encoder recurses (a RecursionError from 500 levels on)
MAX_METADATA_DEPTH = 32
MAX_IMAGE_SIDE = 16384  # larger declared sizes are refused: a bogus file must not make ganrt allocate terabytes
MAX_CLASSES = 100_000
MAX_NZ = 1 << 20
COLOR_ORDERS = ("rgb", "bgr")
MAX_CHANNELS = 64  # translators: channels in or out
# fields added after schema 1 -> their defaults: written only when set, read as the default when absent
OPTIONAL_FIELDS = {"out_channels": 0, "color_order": "rgb", "whole_image": False, "size_multiple": 0}


def fixed_image_shape(info: ModelInfo) -> str | None:
    """The check of kinds whose images have one size: (H, W) within MAX_IMAGE_SIDE, 1 or 3 channels."""
    h, w, c = info.image_shape
    if not (1 <= h <= MAX_IMAGE_SIDE and 1 <= w <= MAX_IMAGE_SIDE) or c not in (1, 3):
        return f"image_shape {info.image_shape} must be (H, W in 1..{MAX_IMAGE_SIDE}, C in 1 or 3)"
    return None


@dataclass(frozen=True)
class ModelInfo:
    """Settings of a ganrt model file; ``image_shape`` is (H, W, C) of the images it makes or reads.

    Upscalers take any size: their ``image_shape`` is (0, 0, C), and ``scale`` and
    ``receptive_radius`` (input pixels each output pixel depends on, per side) tell the tiler
    how far apart tiles must overlap to be exact.

    Translators (image in, image out) add ``out_channels``, ``color_order``, ``whole_image`` (the
    network sees the whole image: never tiled) and ``size_multiple`` (height and width must be
    multiples of it; 0: any size). A fixed (H, W) in ``image_shape`` means that size only. These
    fields came after schema 1 and are optional: ``to_json`` leaves them out at their defaults, so
    the files of the other kinds are what they were.
    """

    kind: str
    name: str
    image_shape: tuple[int, int, int]
    value_range: tuple[float, float] = (-1.0, 1.0)
    nz: int = 0
    prior: str = "normal"
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    scale: int = 0
    receptive_radius: int = 0
    precision: str = "float32"  # what the network computes in: float32 | int8 | float16 (outputs may be uint8)
    flops: float = 0.0  # FLOPs (2 x multiply-adds) per image; upscalers: per input pixel; 0 = not stated
    out_channels: int = 0  # translators: channels of the image that comes out (image_shape[2] goes in)
    color_order: str = "rgb"  # translators: rgb | bgr, the order of 3 channels that the network takes and gives
    whole_image: bool = False  # translators: output pixels depend on the whole input (InstanceNorm, pooling, a huge field)
    size_multiple: int = 0  # translators: H and W must be multiples of this (a U-Net of depth d: 2^d); 0 = any
    description: str = ""
    training_data: str = ""
    ganrt_version: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def conditional(self) -> bool:
        return self.kind == "generator" and self.num_classes > 0

    def to_json(self) -> str:
        raw = {k: v for k, v in asdict(self).items() if k not in OPTIONAL_FIELDS or v != OPTIONAL_FIELDS[k]}
        return json.dumps(raw, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, source: str = "model") -> ModelInfo:
        def bad(why: str) -> ModelFormatError:
            return ModelFormatError(f"{source}: invalid ganrt metadata: {why}")

        if len(text.encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES:
            raise bad(f"over {MAX_METADATA_BYTES} bytes")
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested arrays
            raise bad(f"not JSON ({str(exc)[:100]})") from None
        if not isinstance(raw, dict):
            raise bad("expected a JSON object")
        if _depth(raw) > MAX_METADATA_DEPTH:
            raise bad(f"nested deeper than {MAX_METADATA_DEPTH} levels")
        version = raw.get("schema_version")
        if not _is_int(version) or not 1 <= version <= SCHEMA_VERSION:
            raise bad(f"schema_version {version!r} is not supported (this ganrt reads 1..{SCHEMA_VERSION})")
        known = set(cls.__dataclass_fields__)
        raw = {k: v for k, v in raw.items() if k in known}  # newer optional fields are ignored
        try:
            info = cls(
                kind=_str(raw, "kind"),
                name=_str(raw, "name"),
                image_shape=tuple(_ints(raw, "image_shape", 3)),
                value_range=tuple(_number(raw, "value_range", v) for v in _list(raw, "value_range", (-1.0, 1.0))),
                nz=_int_field(raw, "nz"),
                prior=_text(raw, "prior", "normal"),
                num_classes=_int_field(raw, "num_classes"),
                class_names=tuple(_text(raw, "class_names", c, value=True) for c in _list(raw, "class_names", ())),
                scale=_int_field(raw, "scale"),
                receptive_radius=_int_field(raw, "receptive_radius"),
                flops=_number(raw, "flops", raw.get("flops", 0.0)),
                out_channels=_int_field(raw, "out_channels"),
                color_order=_text(raw, "color_order", "rgb"),
                whole_image=_bool(raw, "whole_image"),
                size_multiple=_int_field(raw, "size_multiple"),
                precision=_text(raw, "precision", "float32"),
                description=_text(raw, "description", ""),
                training_data=_text(raw, "training_data", ""),
                ganrt_version=_text(raw, "ganrt_version", ""),
                training=_dict(raw, "training"),
                schema_version=version,
            )
        except KeyError as exc:
            raise bad(f"missing field {exc}") from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise bad(str(exc)[:200]) from None
        info.validate(source=source)
        return info

    def validate(self, *, source: str = "model") -> None:
        def bad(why: str) -> ModelFormatError:
            return ModelFormatError(f"{source}: invalid ganrt metadata: {why}")

        kind = KINDS.get(self.kind)
        if kind is None:
            raise bad(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if len(self.value_range) != 2 or not -1e30 < self.value_range[0] < self.value_range[1] < 1e30:
            raise bad(f"value_range {self.value_range} must be (low, high) with low < high")
        if not 0 <= self.num_classes <= MAX_CLASSES or (self.class_names and len(self.class_names) != self.num_classes):
            raise bad(f"{len(self.class_names)} class names for {self.num_classes} classes")
        why = kind.check(self)  # the kind's own fields: image shape, latent, scale, ...
        if why:
            raise bad(why)
        if self.precision not in PRECISIONS:
            raise bad(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if not 0 <= self.flops < 1e18:
            raise bad(f"flops {self.flops} must be >= 0")
        if self.color_order not in COLOR_ORDERS:
            raise bad(f"color_order {self.color_order!r} is not one of {', '.join(COLOR_ORDERS)}")
        if not 0 <= self.size_multiple <= MAX_IMAGE_SIDE or not 0 <= self.out_channels <= MAX_CHANNELS:
            raise bad(f"size_multiple {self.size_multiple} must be in 0..{MAX_IMAGE_SIDE}, "
                      f"out_channels {self.out_channels} in 0..{MAX_CHANNELS}")


def _str(raw: dict, key: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _bool(raw: dict, key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def _ints(raw: dict, key: str, length: int) -> list[int]:
    value = raw[key]
    if not isinstance(value, (list, tuple)) or len(value) != length or not all(_is_int(v) for v in value):
        raise ValueError(f"{key} must be a list of {length} integers, got {str(value)[:60]}")
    return list(value)


# Types are checked exactly: "4" and 4.7 are not an integer, true is not a number (bool is an int in Python).
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_field(raw: dict, key: str) -> int:
    value = raw.get(key, 0)
    if not _is_int(value):
        raise ValueError(f"{key} must be an integer, got {json.dumps(value)[:40]}")
    return value


def _number(raw: dict, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must hold numbers, got {json.dumps(value)[:40]}")
    return float(value)


def _text(raw: dict, key: str, default: Any, *, value: bool = False) -> str:
    text = default if value else raw.get(key, default)
    if not isinstance(text, str):
        raise ValueError(f"{key} must hold text, got {json.dumps(text)[:40]}")
    return text


def _list(raw: dict, key: str, default: Any) -> list | tuple:
    value = raw.get(key, default)
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{key} must be a list, got {json.dumps(value)[:40]}")
    return value


def _dict(raw: dict, key: str) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be a JSON object, got {json.dumps(value)[:40]}")
    return value


def _depth(value: Any) -> int:
    """How deeply a JSON value nests (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            if level <= MAX_METADATA_DEPTH:
                stack.extend((child, level + 1) for child in children)
    return deepest
