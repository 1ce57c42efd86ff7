"""``adopt``: an ONNX file from any exporter -> a ganrt model file. onnx + onnxruntime only, no torch.

The source graph is wrapped, as graph nodes, in ganrt's contract for its kind:

- **generator**: inputs ``z`` (N, nz) float32 [and ``label`` (N,) int64]; output ``image`` (N, H, W, C)
  uint8. The wrapper reshapes the latent to the source's layout ((N, nz) or (N, nz, 1, 1), ...), turns
  an index into the source's float one-hot vector where it takes one (with optional ``label_b`` / ``alpha``
  inputs for class interpolation, as ganrt's own files have), transposes NHWC or reshapes a flat output
  to (N, C, H, W), and converts the value range to uint8 in the graph (``graph.append_uint8_output``).
- **upscaler**: input ``image`` (N, 3, H, W) float32 in [0, 1]; output ``upscaled`` (N, 3, sH, sW) float32
  in [0, 1]. The wrapper maps [0, 1] to the source's value range and back, and for a Y-channel network
  (ESPCN) converts RGB to YCbCr (the JPEG / Pillow full-range matrix), runs the network on Y, upscales
  Cb and Cr with a cubic resize in the graph, and converts back.
- **translator** (pix2pix, CycleGAN): input ``image`` (N, C_in, H, W) float32 in [0, 1]; output ``translated``
  (N, C_out, sH, sW) float32 in [0, 1] (s is usually 1), mapped to the source's value range and back as for
  upscalers. The size constraint is found by trying sizes (a U-Net of depth d takes multiples of 2^d); a
  network that sees the whole image (InstanceNorm without running statistics) is recorded as such.

What the file cannot state is measured by running it: the image shape, the scale, the receptive radius
(by perturbing single input pixels: what exact tiling depends on), that the output is finite, inside the
declared range and the same on a second run. The wrapped graph is checked against the source at batch
sizes 1, 3 and 8 before anything is written; a fixed batch dimension is made dynamic, or the error says
that the graph does not allow it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ganrt._version import __version__
from ganrt.core.errors import GanrtError
from ganrt.core.latent import PRIORS, sample_latents
from ganrt.core.schema import METADATA_KEY, ModelInfo
from ganrt.core.session import create_session
from ganrt.evaluate.explore import ALPHA, LABEL_B
from ganrt.io.files import atomic_write
from ganrt.io.images import float_to_uint8

from .files import check_output
from .graph import GraphError, add_label_mixing, append_uint8_output

KINDS = ("generator", "upscaler", "translator")
LABELS = ("none", "index", "onehot")
COLORS = ("rgb", "y")
COLOR_ORDERS = ("rgb", "bgr")
DEFAULT_RANGES = {"generator": (-1.0, 1.0), "upscaler": (0.0, 1.0), "translator": (-1.0, 1.0)}
PARITY_BATCH_SIZES = (1, 3, 8)
RANGE_SLACK = 0.02  # generator outputs may exceed the declared range by 2% of its width (float rounding of tanh)
RADIUS_SIZES = (64, 128, 256, 512)  # input sides tried when measuring the receptive radius
MULTIPLES = tuple(2**k for k in range(11))  # translators: size multiples tried, 1 .. 1024 (a U-Net of depth d: 2^d)
MIN_TRY_SIDE = 48  # translators: the smallest side tried when looking for the size multiple
# JPEG / Pillow full-range YCbCr (what pytorch/examples' ESPCN trains on: Image.convert("YCbCr")), in [0, 1] units
_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
_YCBCR_OFFSET = np.array([0.0, 0.5, 0.5], np.float32)
_FLOAT = {TensorProto.FLOAT: np.float32}
_INTS = {TensorProto.INT64: np.int64, TensorProto.INT32: np.int32}


class AdoptError(GanrtError, ValueError):
    """The source graph does not fit what was declared, or does not behave like a model of that kind."""


@dataclass(frozen=True)
class AdoptConfig:
    """What a user states about a source model; None: found from the graph (or the kind's default)."""

    kind: str
    name: str
    description: str = ""
    training_data: str = ""
    nz: int | None = None  # generators: latent size
    latent_shape: tuple[int, ...] | None = None  # the source's z shape without N: (nz,) or (nz, 1, 1)
    label: str | None = None  # none | index | onehot
    num_classes: int | None = None
    class_names: tuple[str, ...] = ()
    prior: str = "normal"
    value_range: tuple[float, float] | None = None  # of the source's output (upscalers: its input too)
    image_shape: tuple[int, int, int] | None = None  # (H, W, C): only for a flat (N, H*W*C) generator output
    color: str = "rgb"  # upscalers: rgb, or y (the network sees the Y channel; Cb/Cr are resized)
    color_order: str = "rgb"  # translators: the order of the 3 channels the network takes and gives (rgb or bgr)
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in the metadata (e.g. how the torch side made it)

    def check(self) -> None:
        def bad(why: str) -> AdoptError:
            return AdoptError(f"adopt: {why}")

        if self.kind not in KINDS:
            raise bad(f"--kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.name:
            raise bad("a model needs a --name")
        if self.label is not None and self.label not in LABELS:
            raise bad(f"--label must be one of {', '.join(LABELS)}, got {self.label!r}")
        if self.color not in COLORS:
            raise bad(f"--color must be one of {', '.join(COLORS)}, got {self.color!r}")
        if self.prior not in PRIORS:
            raise bad(f"--prior must be one of {', '.join(PRIORS)}, got {self.prior!r}")
        if self.value_range is not None and not (len(self.value_range) == 2 and self.value_range[0] < self.value_range[1]):
            raise bad(f"--value-range must be LOW,HIGH with LOW < HIGH, got {self.value_range}")
        if self.kind != "generator" and (self.label not in (None, "none") or self.nz is not None or self.num_classes):
            raise bad(f"--nz, --label and --classes are for generators, not {self.kind}s")
        if self.kind != "upscaler" and self.color != "rgb":
            raise bad("--color is for upscalers")
        if self.color_order not in COLOR_ORDERS or (self.kind != "translator" and self.color_order != "rgb"):
            raise bad(f"--color-order is for translators, one of {', '.join(COLOR_ORDERS)}, got {self.color_order!r}")
        if self.class_names and self.num_classes is not None and len(self.class_names) != self.num_classes:
            raise bad(f"{len(self.class_names)} class names for {self.num_classes} classes")

    @property
    def range(self) -> tuple[float, float]:
        return tuple(self.value_range) if self.value_range is not None else DEFAULT_RANGES[self.kind]


# -- reading the source --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tensor:
    name: str
    elem: int  # onnx TensorProto element type
    dims: tuple[int | None, ...]  # None: symbolic or unknown

    def describe(self) -> str:
        shape = ", ".join("N" if i == 0 else ("?" if d is None else str(d)) for i, d in enumerate(self.dims))
        return f"{self.name} {TensorProto.DataType.Name(self.elem).lower()} ({shape})"


def _tensor(value_info: onnx.ValueInfoProto) -> _Tensor:
    t = value_info.type.tensor_type
    return _Tensor(value_info.name, t.elem_type, tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim))


def _graph_inputs(proto: onnx.ModelProto) -> list[_Tensor]:
    inits = {i.name for i in proto.graph.initializer}
    return [_tensor(i) for i in proto.graph.input if i.name not in inits]


def _load(data: bytes, source: str) -> onnx.ModelProto:
    try:
        proto = onnx.load_from_string(data)
        onnx.checker.check_model(proto)
    except Exception as exc:  # onnx's DecodeError / ValidationError
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise AdoptError(f"{source} is not a valid ONNX model: {reason}") from None
    if any(p.key == METADATA_KEY for p in proto.metadata_props):
        raise AdoptError(f"{source} is already a ganrt model; `ganrt info {source}` shows its settings")
    if len(proto.graph.output) != 1:
        names = ", ".join(o.name for o in proto.graph.output)
        raise AdoptError(f"{source} has {len(proto.graph.output)} outputs ({names}); adopt takes a graph with one image output")
    return proto


def _dynamic_batch(proto: onnx.ModelProto) -> list[str]:
    """Make dim 0 of every input and output symbolic ("N"); returns the names whose batch was fixed."""
    fixed = []
    inits = {i.name for i in proto.graph.initializer}
    for vi in [*[i for i in proto.graph.input if i.name not in inits], *proto.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            fixed.append(f"{vi.name} ({dims[0].dim_value})")
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "N"
    del proto.graph.value_info[:]  # intermediate shapes of the fixed batch would contradict
    return fixed


class _Runner:
    """The source graph in onnxruntime (CPU, one thread: deterministic and comparable)."""

    def __init__(self, proto: onnx.ModelProto, source: str) -> None:
        self.source = source
        self.session = create_session(proto.SerializeToString(), device="cpu", threads=1, source=source)
        self.output = self.session.get_outputs()[0].name

    def __call__(self, feeds: dict[str, np.ndarray], *, quiet: bool = False) -> np.ndarray:
        """The output for ``feeds``; ``quiet``: a failure is expected (sizes being tried), onnxruntime logs nothing."""
        options = None
        if quiet:
            import onnxruntime

            options = onnxruntime.RunOptions()
            options.log_severity_level = 4  # fatal only
        try:
            return self.session.run([self.output], feeds, options)[0]
        except Exception as exc:  # onnxruntime's pybind errors
            from ganrt.core.run import ort_reason

            raise AdoptError(f"{self.source}: onnxruntime failed on inputs "
                             f"{ {k: tuple(v.shape) for k, v in feeds.items()} }: {ort_reason(exc)}") from None


# -- building the wrapped graph ------------------------------------------------------------------------
class _Builder:
    """Nodes and constants around the source graph, with names that cannot clash with the source's."""

    def __init__(self, proto: onnx.ModelProto) -> None:
        self.proto = proto
        self.nodes_before: list[onnx.NodeProto] = []
        self.nodes_after: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"ganrt_adopt_{stem}_{self._n}"

    def const(self, value: np.ndarray, stem: str = "c") -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], *, after: bool = False, out: str | None = None, **attrs: Any) -> str:
        out = out or self.name(op.lower())
        (self.nodes_after if after else self.nodes_before).append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def finish(self, inputs: list[onnx.ValueInfoProto], output: onnx.ValueInfoProto,
               extra_inits: list | None = None) -> onnx.ModelProto:
        g = self.proto.graph
        nodes = list(g.node)
        del g.node[:]
        g.node.extend(self.nodes_before + nodes + self.nodes_after)
        inits = {i.name for i in g.initializer}
        kept_inputs = [i for i in g.input if i.name in inits]  # overridable initializers stay inputs
        del g.input[:]
        g.input.extend(inputs + kept_inputs)
        g.initializer.extend(self.inits + (extra_inits or []))
        del g.output[:]
        g.output.append(output)
        return self.proto


def _rename_input(proto: onnx.ModelProto, old: str, new: str) -> None:
    for node in proto.graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        for attr in node.attribute:  # subgraphs (If / Loop bodies) that read the input
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                for n in sub.node:
                    n.input[:] = [new if i == old else i for i in n.input]


def _rename_output(proto: onnx.ModelProto, old: str, new: str) -> None:
    for node in proto.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]


# -- generators ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _GeneratorPlan:
    z: _Tensor
    latent_shape: tuple[int, ...]
    label: _Tensor | None
    label_kind: str  # none | index | onehot
    num_classes: int
    layout: str  # nchw | nhwc | flat
    image_shape: tuple[int, int, int]  # (H, W, C)


def _plan_generator(proto: onnx.ModelProto, config: AdoptConfig, run: _Runner, source: str) -> _GeneratorPlan:
    inputs = _graph_inputs(proto)
    floats = [t for t in inputs if t.elem in _FLOAT]
    if not floats:
        raise AdoptError(f"{source}: no float input to take the latent; inputs are {', '.join(t.describe() for t in inputs)}")
    z = floats[0]
    others = [t for t in inputs if t is not z]
    if len(others) > 1:
        raise AdoptError(f"{source}: a generator takes a latent and at most one label; inputs are "
                         f"{', '.join(t.describe() for t in inputs)}")
    latent = tuple(z.dims[1:])
    if config.latent_shape is not None:
        given = tuple(config.latent_shape)
        if latent and all(d is not None for d in latent) and latent != given:
            raise AdoptError(f"--latent-shape {','.join(map(str, given))} contradicts the graph: {z.describe()}")
        latent = given
    if not latent or any(d is None for d in latent):
        if config.nz is None:
            raise AdoptError(f"{source}: the latent input {z.describe()} has no fixed size; give --nz (and --latent-shape)")
        latent = (config.nz,) + (1,) * max(len(latent) - 1, 0) if latent else (config.nz,)
    nz = math.prod(latent)
    if config.nz is not None and config.nz != nz:
        raise AdoptError(f"--nz {config.nz} contradicts the graph: its latent input is {z.describe()} ({nz} values)")
    label = others[0] if others else None
    if label is None:
        kind = "none"
    elif label.elem in _INTS:
        kind = "index"
    elif label.elem in _FLOAT:
        kind = "onehot"
    else:
        raise AdoptError(f"{source}: the label input {label.describe()} is neither an integer index nor a float one-hot vector")
    if config.label is not None and config.label != kind:
        seen = label.describe() if label is not None else "no label input"
        raise AdoptError(f"--label {config.label} contradicts the graph: it has {seen} (that is --label {kind})")
    k = 0
    if kind == "onehot":
        k = label.dims[1] if len(label.dims) > 1 and label.dims[1] else (config.num_classes or 0)
        if config.num_classes is not None and k and config.num_classes != k:
            raise AdoptError(f"--classes {config.num_classes} contradicts the graph: its one-hot label is {label.describe()}")
    elif kind == "index":
        k = config.num_classes or 0
    if kind != "none" and k < 2:
        raise AdoptError(f"{source}: the label input {label.describe()} does not say how many classes; give --classes K")
    if kind == "none" and config.num_classes:
        raise AdoptError(f"--classes {config.num_classes}: the graph has no label input")
    feeds = _generator_feeds(z, latent, label, kind, k, 2)
    y = run(feeds)
    if y.ndim == 4:
        if y.shape[1] in (1, 3):
            layout, shape = "nchw", (y.shape[2], y.shape[3], y.shape[1])
        elif y.shape[3] in (1, 3):
            layout, shape = "nhwc", (y.shape[1], y.shape[2], y.shape[3])
        else:
            raise AdoptError(f"{source}: the output has shape {y.shape}: neither (N, C, H, W) nor (N, H, W, C) with C 1 or 3")
    elif y.ndim == 2:
        if config.image_shape is None or math.prod(config.image_shape) != y.shape[1]:
            hint = f" (it holds {y.shape[1]} values)" if config.image_shape is None else \
                f"; --image-shape {','.join(map(str, config.image_shape))} holds {math.prod(config.image_shape)}"
            raise AdoptError(f"{source}: the output is flat, shape {y.shape}: give --image-shape H,W,C{hint}")
        layout, shape = "flat", tuple(config.image_shape)
    else:
        raise AdoptError(f"{source}: the output has shape {y.shape}, not an image batch")
    if config.image_shape is not None and tuple(config.image_shape) != shape:
        raise AdoptError(f"--image-shape {','.join(map(str, config.image_shape))} contradicts the output, {shape}")
    if shape[2] not in (1, 3):
        raise AdoptError(f"{source}: images of {shape[2]} channels; ganrt generators make 1 or 3")
    return _GeneratorPlan(z, latent, label, kind, k, layout, shape)


def _generator_feeds(z: _Tensor, latent: tuple[int, ...], label: _Tensor | None, kind: str, k: int, n: int,
                     *, prior: str = "normal", seed: int = 0) -> dict[str, np.ndarray]:
    """Source-layout inputs of n images: the latents ganrt draws for images 0..n-1, labels i % K."""
    feeds = {z.name: sample_latents(seed, np.arange(n), math.prod(latent), prior=prior).reshape(n, *latent)}
    if kind != "none":
        idx = np.arange(n) % k
        if kind == "index":
            feeds[label.name] = idx.astype(_INTS[label.elem]).reshape(n, *[1] * (len(label.dims) - 1))
        else:
            onehot = np.eye(k, dtype=np.float32)[idx]
            feeds[label.name] = onehot.reshape(n, k, *[1] * (len(label.dims) - 2))
    return feeds


def _wrap_generator(proto: onnx.ModelProto, plan: _GeneratorPlan, value_range: tuple[float, float]) -> bytes:
    """The wrapped graph with a float (N, C, H, W) output in ``value_range`` (uint8 comes after)."""
    b = _Builder(proto)
    h, w, c = plan.image_shape
    inputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", int(math.prod(plan.latent_shape))])]
    src_z = b.name("source_z")
    _rename_input(proto, plan.z.name, src_z)
    b.node("Reshape", ["z", b.const(np.array([-1, *plan.latent_shape], np.int64), "latent_shape")], out=src_z)
    extra = []
    if plan.label_kind != "none":
        inputs.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]))
        src_label = b.name("source_label")
        _rename_input(proto, plan.label.name, src_label)
        if plan.label_kind == "index":
            x = "label" if plan.label.elem == TensorProto.INT64 else b.node("Cast", ["label"], to=plan.label.elem)
            b.node("Reshape", [x, b.const(np.array([-1, *[1] * (len(plan.label.dims) - 1)], np.int64))], out=src_label)
        else:  # one-hot, mixed with label_b by alpha (optional inputs, defaults 0: exactly the one-hot of label)
            depth, values = b.const(np.array(plan.num_classes, np.int64)), b.const(np.array([0.0, 1.0], np.float32))
            hot_a = b.node("OneHot", ["label", depth, values], axis=-1)  # (N, K)
            hot_b = b.node("OneHot", [LABEL_B, depth, values], axis=-1)  # (M, K)
            keep = b.node("Sub", [b.const(np.array(1.0, np.float32)), ALPHA])  # (M, 1)
            mixed = b.node("Add", [b.node("Mul", [hot_a, keep]), b.node("Mul", [hot_b, ALPHA])])
            shape = b.const(np.array([-1, plan.num_classes, *[1] * (len(plan.label.dims) - 2)], np.int64))
            b.node("Reshape", [mixed, shape], out=src_label)
            extra = [helper.make_tensor(LABEL_B, TensorProto.INT64, [1], [0]),
                     helper.make_tensor(ALPHA, TensorProto.FLOAT, [1, 1], [0.0])]
            inputs += [helper.make_tensor_value_info(LABEL_B, TensorProto.INT64, ["M"]),
                       helper.make_tensor_value_info(ALPHA, TensorProto.FLOAT, ["M", 1])]
    src_out = b.name("source_image")
    _rename_output(proto, proto.graph.output[0].name, src_out)
    if plan.layout == "nchw":
        b.node("Identity", [src_out], after=True, out="image")
    elif plan.layout == "nhwc":
        b.node("Transpose", [src_out], after=True, out="image", perm=[0, 3, 1, 2])
    else:  # flat (N, C*H*W) in C, H, W order, as torch's view(-1, C, H, W)
        b.node("Reshape", [src_out, b.const(np.array([-1, c, h, w], np.int64))], after=True, out="image")
    output = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", c, h, w])
    wrapped = b.finish(inputs, output, extra)
    if plan.label_kind == "index":
        try:  # an embedding lookup on the label (nn.Embedding): class interpolation, as in ganrt's own files
            add_label_mixing(wrapped, label=src_label)
        except GraphError:
            pass  # no single lookup: the file samples, but ganrt walk --classes says it cannot mix
    return append_uint8_output(wrapped.SerializeToString(), value_range)


# -- upscalers -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _UpscalerPlan:
    x: _Tensor
    channels: int  # what the source takes: 3 (rgb) or 1 (y)
    scale: int


def _plan_upscaler(proto: onnx.ModelProto, config: AdoptConfig, run: _Runner, source: str) -> _UpscalerPlan:
    inputs = _graph_inputs(proto)
    if len(inputs) != 1 or inputs[0].elem not in _FLOAT or len(inputs[0].dims) != 4:
        raise AdoptError(f"{source}: an upscaler takes one float (N, C, H, W) input; inputs are "
                         f"{', '.join(t.describe() for t in inputs)}")
    x = inputs[0]
    channels = 1 if config.color == "y" else 3
    if x.dims[1] is not None and x.dims[1] != channels:
        raise AdoptError(f"--color {config.color} means {channels} input channel(s), but the graph takes {x.describe()}"
                         + ("; give --color y for a network on the Y channel" if x.dims[1] == 1 else ""))
    fixed = [d for d in x.dims[2:] if d is not None]
    if fixed:
        raise AdoptError(f"{source}: the input {x.describe()} has a fixed size; ganrt upscales images of any size "
                         "(export it with dynamic H and W)")
    scales = set()
    for hh, ww in ((16, 16), (20, 28)):
        y = run({x.name: np.random.default_rng(hh).random((1, channels, hh, ww), dtype=np.float32)})
        if y.ndim != 4 or y.shape[1] != channels or y.shape[2] % hh or y.shape[3] % ww or y.shape[2] // hh != y.shape[3] // ww:
            raise AdoptError(f"{source}: a {hh}x{ww} input of {channels} channel(s) gave shape {y.shape}, "
                             f"not (1, {channels}, s*{hh}, s*{ww}) for an integer scale s")
        scales.add(y.shape[2] // hh)
    if len(scales) != 1 or min(scales) < 2:
        raise AdoptError(f"{source}: the scale is {sorted(scales)} for different sizes; an upscaler has one integer scale >= 2")
    return _UpscalerPlan(x, channels, scales.pop())


def _to_range(b: _Builder, t: str, value_range: tuple[float, float]) -> str:
    """Nodes before the source: [0, 1] -> the source's range."""
    lo, hi = value_range
    if (lo, hi) == (0.0, 1.0):
        return t
    return b.node("Add", [b.node("Mul", [t, b.const(np.float32(hi - lo))]), b.const(np.float32(lo))])


def _from_range(b: _Builder, t: str, value_range: tuple[float, float]) -> str:
    """Nodes after the source: its range -> [0, 1]."""
    lo, hi = value_range
    if (lo, hi) == (0.0, 1.0):
        return t
    shifted = b.node("Sub", [t, b.const(np.float32(lo))], after=True)
    return b.node("Mul", [shifted, b.const(np.float32(1.0 / (hi - lo)))], after=True)


def _wrap_upscaler(proto: onnx.ModelProto, plan: _UpscalerPlan, value_range: tuple[float, float]) -> bytes:
    b = _Builder(proto)
    src_in, src_out = b.name("source_image"), b.name("source_upscaled")
    _rename_input(proto, plan.x.name, src_in)
    _rename_output(proto, proto.graph.output[0].name, src_out)

    if plan.channels == 3:
        b.node("Identity", [_to_range(b, "image", value_range)], out=src_in)
        b.node("Identity", [_from_range(b, src_out, value_range)], after=True, out="upscaled")
    else:
        # (N, 3, H, W) RGB -> YCbCr by a 1x1 convolution; Y through the network, Cb/Cr resized (cubic), back to RGB
        fwd = b.const(_RGB_TO_YCBCR.reshape(3, 3, 1, 1), "rgb_to_ycbcr")
        ycc = b.node("Conv", ["image", fwd, b.const(_YCBCR_OFFSET, "ycbcr_offset")])
        split = b.const(np.array([1, 2], np.int64))
        y_name, cbcr = b.name("y"), b.name("cbcr")
        b.nodes_before.append(helper.make_node("Split", [ycc, split], [y_name, cbcr], axis=1))
        b.node("Identity", [_to_range(b, y_name, value_range)], out=src_in)
        # cubic x s of Cb/Cr as one 5x5 convolution per phase + DepthToSpace: onnxruntime's cubic Resize took
        # 225-240 ms for 2 x 256^2 -> 768^2 here, the convolution a few ms (benchmarks/NOTES.md)
        padded = b.node("Pad", [cbcr, b.const(np.array([0, 0, 2, 2, 0, 0, 2, 2], np.int64))], after=True, mode="edge")
        phases = b.node("Conv", [padded, b.const(cubic_phase_kernels(plan.scale, 2), "cubic_phases")], after=True, group=2)
        up = b.node("DepthToSpace", [phases], after=True, blocksize=plan.scale, mode="CRD")  # (N, 2, sH, sW)
        merged = b.node("Concat", [_from_range(b, src_out, value_range), up], after=True, axis=1)
        centred = b.node("Sub", [merged, b.const(_YCBCR_OFFSET.reshape(1, 3, 1, 1))], after=True)
        back = b.const(np.linalg.inv(_RGB_TO_YCBCR.astype(np.float64)).astype(np.float32).reshape(3, 3, 1, 1), "ycbcr_to_rgb")
        b.node("Conv", [centred, back], after=True, out="upscaled")
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])]
    output = helper.make_tensor_value_info("upscaled", TensorProto.FLOAT, ["N", 3, "sH", "sW"])
    wrapped = b.finish(inputs, output)
    onnx.checker.check_model(wrapped)
    return wrapped.SerializeToString()


# -- translators ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TranslatorPlan:
    x: _Tensor
    in_channels: int
    out_channels: int
    scale: int
    multiple: int  # H and W must be multiples of it (1: any size)
    fixed: tuple[int, int] | None  # (H, W) of a graph that takes one size only

    def sizes(self, h: int, w: int) -> tuple[int, int]:
        """(h, w) made a size the graph takes: rounded up to the multiple, or the fixed size."""
        if self.fixed is not None:
            return self.fixed
        m = self.multiple
        return -(-h // m) * m, -(-w // m) * m


def _plan_translator(proto: onnx.ModelProto, config: AdoptConfig, run: _Runner, source: str) -> _TranslatorPlan:
    """Channels from the graph; the size constraint and the scale by running it at sizes that are odd
    multiples of 1, 2, 4, ... (the first that gives an output of s times its size is the multiple)."""
    inputs = _graph_inputs(proto)
    if len(inputs) != 1 or inputs[0].elem not in _FLOAT or len(inputs[0].dims) != 4:
        raise AdoptError(f"{source}: a translator takes one float (N, C, H, W) input; inputs are "
                         f"{', '.join(t.describe() for t in inputs)}")
    x = inputs[0]
    channels = x.dims[1] or 3
    if (x.dims[2] is None) != (x.dims[3] is None):
        raise AdoptError(f"{source}: the input {x.describe()} fixes one side only; export it with both H and W dynamic "
                         "or both fixed")

    def scale_at(h: int, w: int) -> tuple[int, int] | None:  # (out channels, scale), or None: not a size it takes
        try:
            y = run({x.name: np.random.default_rng(h).random((1, channels, h, w), dtype=np.float32)}, quiet=True)
        except AdoptError:
            return None
        if y.ndim != 4 or y.shape[2] % h or y.shape[3] % w or y.shape[2] // h != y.shape[3] // w or y.shape[2] < h:
            return None
        return y.shape[1], y.shape[2] // h

    if x.dims[2] is not None:
        fixed = (x.dims[2], x.dims[3])
        found = scale_at(*fixed)
        if found is None:
            raise AdoptError(f"{source}: at its fixed size {fixed[1]}x{fixed[0]} the graph gives no image of an integer "
                             "scale of that size")
        return _TranslatorPlan(x, channels, found[0], found[1], 1, fixed)
    for m in MULTIPLES:
        q = max(-(-MIN_TRY_SIDE // m) | 1, 1)  # the smallest odd q with m*q >= MIN_TRY_SIDE: m*q is a multiple of m, not 2m
        found = scale_at(m * q, m * (q + 2) if m < MIN_TRY_SIDE else m * q)  # not square, unless sides get large
        if found is not None:
            return _TranslatorPlan(x, channels, found[0], found[1], m, None)
    raise AdoptError(f"{source}: the graph gives an output of an integer scale of its input at no size that is a "
                     f"multiple of 1, 2, 4, ... {MULTIPLES[-1]}; a translator maps an image to one of the same size")


def _wrap_translator(proto: onnx.ModelProto, plan: _TranslatorPlan, value_range: tuple[float, float]) -> bytes:
    b = _Builder(proto)
    src_in, src_out = b.name("source_image"), b.name("source_translated")
    _rename_input(proto, plan.x.name, src_in)
    _rename_output(proto, proto.graph.output[0].name, src_out)
    b.node("Identity", [_to_range(b, "image", value_range)], out=src_in)
    b.node("Identity", [_from_range(b, src_out, value_range)], after=True, out="translated")
    h, w = plan.fixed or ("H", "W")
    out_h, out_w = (h * plan.scale, w * plan.scale) if plan.fixed else ("sH", "sW")
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", plan.in_channels, h, w])]
    output = helper.make_tensor_value_info("translated", TensorProto.FLOAT, ["N", plan.out_channels, out_h, out_w])
    wrapped = b.finish(inputs, output)
    onnx.checker.check_model(wrapped)
    return wrapped.SerializeToString()


def _adopt_translator(proto: onnx.ModelProto, config: AdoptConfig, run: _Runner, source: str,
                      report: dict[str, Any]) -> tuple[bytes, ModelInfo]:
    """(wrapped graph, its metadata): plan, behaviour, wrap, parity, then the receptive radius of the wrapped
    graph, or ``whole_image`` where every output pixel depends on every input pixel."""
    plan = _plan_translator(proto, config, run, source)
    h, w = plan.sizes(24, 24)
    lo, hi = config.range
    x = np.random.default_rng(3).random((1, plan.in_channels, h, w), dtype=np.float32) * (hi - lo) + lo
    _check_behaviour(run, {plan.x.name: x}, source, config.range)
    wrapped = _wrap_translator(onnx.load_from_string(proto.SerializeToString()), plan, config.range)
    report["parity"] = _parity_translator(run, wrapped, plan, config)
    report["size_multiple"] = plan.multiple
    radius, whole = 0, False
    if plan.fixed is None:
        wrapped_run = _Runner(onnx.load_from_string(wrapped), source)
        sizes = tuple(sorted({plan.sizes(s, s)[0] for s in RADIUS_SIZES}))
        sizes = sizes if len(sizes) > 1 else (*sizes, 2 * sizes[0])
        found = _radius(lambda a: wrapped_run({"image": a}), plan.in_channels, plan.scale, sizes)
        radius, whole = (0, True) if found is None else (found, False)
        report["whole_image" if whole else "receptive_radius"] = True if whole else radius
    info = ModelInfo(kind="translator", name=config.name, image_shape=(*(plan.fixed or (0, 0)), plan.in_channels),
                     value_range=(0.0, 1.0), out_channels=plan.out_channels, color_order=config.color_order,
                     scale=plan.scale, receptive_radius=radius, whole_image=whole,
                     size_multiple=plan.multiple if plan.multiple > 1 else 0, description=config.description,
                     training_data=config.training_data, ganrt_version=__version__,
                     training={"adopted": {**_settings(config), **report}})
    return wrapped, info


def cubic_phase_kernels(scale: int, channels: int, a: float = -0.5) -> np.ndarray:
    """Conv weights (channels * scale^2, 1, 5, 5) for a depthwise convolution whose output channel
    ``c * scale^2 + py * scale + px``, rearranged by DepthToSpace (CRD), is the cubic (Keys, ``a`` = -0.5 as
    Pillow's BICUBIC) upsampling by ``scale`` with half-pixel centres: output pixel ``s*i + p`` samples the input
    at ``i + (p + 0.5) / s - 0.5``, so each phase is a fixed 5-tap filter over inputs i-2..i+2 (one tap 0).
    Edges: the input is padded by replicating 2 pixels (Pillow renormalises there instead)."""

    def keys(t: np.ndarray) -> np.ndarray:
        t = np.abs(t)
        near = ((a + 2) * t - (a + 3)) * t * t + 1
        far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
        return np.where(t <= 1, near, np.where(t < 2, far, 0.0))

    taps = np.arange(-2, 3)
    per_phase = np.stack([keys((p + 0.5) / scale - 0.5 - taps) for p in range(scale)])  # (scale, 5)
    kernel = per_phase[:, None, :, None] * per_phase[None, :, None, :]  # (py, px, 5, 5)
    return np.tile(kernel.reshape(scale * scale, 1, 5, 5), (channels, 1, 1, 1)).astype(np.float32)


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) float RGB in [0, 1] -> (N, 1, H, W) Y, the matrix the wrapper uses."""
    return np.einsum("c,nchw->nhw", _RGB_TO_YCBCR[0], rgb)[:, None]


def measure_radius(run: Any, channels: int, scale: int, *, source: str) -> int:
    """Input pixels each output pixel depends on, per side, found by perturbing single input pixels.

    ``run``: (1, C, H, W) float -> (1, C', sH, sW). Three pixels near the centre are each changed by a
    different amount; the farthest output change (in input pixels) is the radius. Any change counts, however
    small: an influence that fades through many random-weight layers, or a normalisation over the whole image,
    still flips roundings (a 1e-6 threshold measured 0 for an untrained 16-layer SRVGGNetCompact, whose
    radius is 18, and missed RealPLKSR's GroupNorm). If changes reach the
    border at every size in RADIUS_SIZES, the network sees the whole image and cannot be tiled: AdoptError.
    """
    radius = _radius(run, channels, scale, RADIUS_SIZES)
    if radius is None:
        raise AdoptError(f"{source}: changing one pixel changes the output up to the border of a {RADIUS_SIZES[-1]}-pixel "
                         "image: the network sees the whole image (global pooling or normalisation), so it cannot be tiled "
                         "exactly")
    return radius


def _radius(run: Any, channels: int, scale: int, sizes: tuple[int, ...]) -> int | None:
    """``measure_radius`` at square inputs of ``sizes``; None: the changes reach the border at every size."""
    rng = np.random.default_rng(7)
    for size in sizes:
        x = rng.random((1, channels, size, size), dtype=np.float32) * 0.8 + 0.1
        base = run(x)
        c = size // 2
        radius, reaches = 0, False
        for (py, px), delta in zip(((c, c), (c - 1, c + 2), (c + 3, c - 2)), (0.5, -0.4, 0.3)):
            x2 = x.copy()
            x2[0, :, py, px] += delta
            diff = np.abs(run(x2) - base).max(axis=(0, 1))  # (sH, sW)
            ys, xs = np.nonzero(diff > 0)  # exactly: an influence that fades below any threshold still flips a rounding
            if ys.size == 0:
                continue
            r = int(max(np.abs(ys // scale - py).max(), np.abs(xs // scale - px).max()))
            radius = max(radius, r)
            reaches |= bool(ys.min() == 0 or xs.min() == 0 or ys.max() == diff.shape[0] - 1 or xs.max() == diff.shape[1] - 1)
        if not reaches:
            return radius
    return None


# -- checks --------------------------------------------------------------------------------------------
def _check_behaviour(run: _Runner, feeds: dict[str, np.ndarray], source: str, value_range: tuple[float, float] | None) -> None:
    """Finite, the same on a second run, and (generators) inside the declared range."""
    a, b = run(feeds), run(feeds)
    if not np.all(np.isfinite(a)):
        raise AdoptError(f"{source}: the output holds NaN or infinity ({int(np.sum(~np.isfinite(a)))} of {a.size} values)")
    if not np.array_equal(a, b):
        raise AdoptError(f"{source}: two runs on the same input differ (max {float(np.abs(a - b).max()):.3g}): "
                         "the model is not deterministic (dropout or noise left on in eval mode?)")
    if value_range is not None:
        lo, hi = value_range
        slack = RANGE_SLACK * (hi - lo)
        if a.min() < lo - slack or a.max() > hi + slack:
            raise AdoptError(f"{source}: outputs span [{a.min():.3g}, {a.max():.3g}], outside the declared value range "
                             f"[{lo:g}, {hi:g}]; give --value-range LOW,HIGH (e.g. 0,1 for a sigmoid output)")


def _parity_generator(run: _Runner, wrapped: bytes, plan: _GeneratorPlan, config: AdoptConfig) -> dict[str, Any]:
    """The wrapped file's uint8 images against the source's float output converted as ganrt does."""
    session = create_session(wrapped, device="cpu", threads=1, source=config.name)
    worst, differing = 0, 0
    for n in PARITY_BATCH_SIZES:
        feeds = _generator_feeds(plan.z, plan.latent_shape, plan.label, plan.label_kind, plan.num_classes, n, prior=config.prior)
        y = run(feeds)
        if plan.layout == "nhwc":
            y = y.transpose(0, 3, 1, 2)
        elif plan.layout == "flat":
            h, w, c = plan.image_shape
            y = y.reshape(n, c, h, w)
        expected = float_to_uint8(y, config.range)
        ours = {"z": sample_latents(0, np.arange(n), int(math.prod(plan.latent_shape)), prior=config.prior)}
        if plan.label_kind != "none":
            ours["label"] = (np.arange(n) % plan.num_classes).astype(np.int64)
        got = session.run(None, ours)[0]
        d = np.abs(got.astype(int) - expected.astype(int))
        worst, differing = max(worst, int(d.max())), differing + int(np.count_nonzero(d))
        if d.max() > 1:
            raise AdoptError(f"the wrapped graph differs from the source by {int(d.max())}/255 at batch {n}; nothing was written")
    return {"max_abs_uint8": worst, "values_off_by_one": differing}


def _parity_upscaler(run: _Runner, wrapped: bytes, plan: _UpscalerPlan, config: AdoptConfig) -> dict[str, Any]:
    """The wrapped float output against the source's (Y channel: the Y of the wrapped RGB output)."""
    session = create_session(wrapped, device="cpu", threads=1, source=config.name)
    lo, hi = config.range
    worst = 0.0
    for n, (h, w) in zip(PARITY_BATCH_SIZES, ((19, 27), (16, 16), (8, 13))):
        x = np.random.default_rng(n).random((n, 3, h, w), dtype=np.float32)
        src_in = x if plan.channels == 3 else rgb_to_y(x)
        expected = (run({plan.x.name: src_in * (hi - lo) + lo}) - lo) / (hi - lo)
        got = session.run(None, {"image": x})[0]
        if plan.channels == 1:
            got = rgb_to_y(got) + 0.0
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > 1e-4:
        raise AdoptError(f"the wrapped graph differs from the source by {worst:.3g} (more than 1e-4); nothing was written")
    return {"max_abs": worst}


def _parity_translator(run: _Runner, wrapped: bytes, plan: _TranslatorPlan, config: AdoptConfig) -> dict[str, Any]:
    """The wrapped float output against the source's, both in [0, 1], at batch 1, 3 and 8."""
    session = create_session(wrapped, device="cpu", threads=1, source=config.name)
    lo, hi = config.range
    worst = 0.0
    for n, (h, w) in zip(PARITY_BATCH_SIZES, ((19, 27), (16, 16), (8, 13))):
        h, w = plan.sizes(h, w)
        x = np.random.default_rng(n).random((n, plan.in_channels, h, w), dtype=np.float32)
        expected = (run({plan.x.name: x * (hi - lo) + lo}) - lo) / (hi - lo)
        worst = max(worst, float(np.abs(session.run(None, {"image": x})[0] - expected).max()))
    if worst > 1e-4:
        raise AdoptError(f"the wrapped graph differs from the source by {worst:.3g} (more than 1e-4); nothing was written")
    return {"max_abs": worst}


# -- the whole step ------------------------------------------------------------------------------------
def adopt_bytes(data: bytes, config: AdoptConfig, *, source: str = "model") -> tuple[bytes, dict[str, Any]]:
    """(ganrt model file bytes, report) for the ONNX model ``data``; AdoptError when it does not fit."""
    config.check()
    proto = _load(data, source)
    fixed = _dynamic_batch(proto)
    try:
        run = _Runner(proto, source)
    except GanrtError as exc:
        raise AdoptError(f"{source}: onnxruntime cannot load it: {exc}") from None
    report: dict[str, Any] = {"source_sha256": hashlib.sha256(data).hexdigest(), "producer": proto.producer_name,
                              "made_batch_dynamic": fixed}
    if config.kind == "generator":
        plan = _plan_generator(proto, config, run, source)
        feeds = _generator_feeds(plan.z, plan.latent_shape, plan.label, plan.label_kind, plan.num_classes, 3, prior=config.prior)
        _check_behaviour(run, feeds, source, config.range)
        if fixed:
            _check_batches(run, plan, source, fixed)
        wrapped = _wrap_generator(onnx.load_from_string(proto.SerializeToString()), plan, config.range)
        report["parity"] = _parity_generator(run, wrapped, plan, config)
        class_names = tuple(config.class_names) or tuple(str(i) for i in range(plan.num_classes))
        info = ModelInfo(kind="generator", name=config.name, image_shape=plan.image_shape, value_range=config.range,
                         nz=int(math.prod(plan.latent_shape)), prior=config.prior, num_classes=plan.num_classes,
                         class_names=class_names if plan.num_classes else (), description=config.description,
                         training_data=config.training_data, ganrt_version=__version__,
                         training={"adopted": {**_settings(config), "latent_shape": list(plan.latent_shape),
                                               "label": plan.label_kind, "layout": plan.layout, **report}})
    elif config.kind == "translator":
        wrapped, info = _adopt_translator(proto, config, run, source, report)
    else:
        plan = _plan_upscaler(proto, config, run, source)
        x = np.random.default_rng(3).random((1, plan.channels, 24, 24), dtype=np.float32)
        _check_behaviour(run, {plan.x.name: x}, source, None)
        wrapped = _wrap_upscaler(onnx.load_from_string(proto.SerializeToString()), plan, config.range)
        report["parity"] = _parity_upscaler(run, wrapped, plan, config)
        wrapped_run = _Runner(onnx.load_from_string(wrapped), source)
        report["receptive_radius"] = radius = measure_radius(lambda a: wrapped_run({"image": a}), 3, plan.scale, source=source)
        info = ModelInfo(kind="upscaler", name=config.name, image_shape=(0, 0, 3), value_range=(0.0, 1.0), scale=plan.scale,
                         receptive_radius=radius, description=config.description, training_data=config.training_data,
                         ganrt_version=__version__,
                         training={"adopted": {**_settings(config), "color": config.color, **report}})
    info.validate(source=source)
    return _with_info(wrapped, info), report


def _check_batches(run: _Runner, plan: _GeneratorPlan, source: str, fixed: list[str]) -> None:
    for n in (1, 3):
        try:
            run(_generator_feeds(plan.z, plan.latent_shape, plan.label, plan.label_kind, plan.num_classes, n))
        except AdoptError as exc:
            raise AdoptError(f"{source}: its batch size is fixed ({', '.join(fixed)}) and the graph does not run at "
                             f"batch {n} once it is made dynamic ({str(exc).split(': ', 1)[-1][:160]}); "
                             "export it again with a dynamic batch axis") from None


def _settings(config: AdoptConfig) -> dict[str, Any]:
    return {"options": {k: v for k, v in {
        "nz": config.nz, "latent_shape": list(config.latent_shape) if config.latent_shape else None, "label": config.label,
        "classes": config.num_classes, "value_range": list(config.range), "image_shape": config.image_shape,
        "color": config.color if config.kind == "upscaler" else None,
        "color_order": config.color_order if config.kind == "translator" else None}.items() if v is not None}, **config.extra}


def _with_info(data: bytes, info: ModelInfo) -> bytes:
    proto = onnx.load_from_string(data)
    proto.producer_name, proto.producer_version = "ganrt-export adopt", __version__
    proto.doc_string = info.description
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, info.to_json()
    return proto.SerializeToString()


def read_model(path: Path) -> bytes:
    """The model's bytes, with weights that the exporter stored beside it (``model.onnx.data``) read in.

    External data is read only from regular files inside the model's own folder: a location that is
    absolute, climbs out with "..", or is a link, is refused (a model file must not make ganrt read elsewhere).
    """
    from onnx import external_data_helper

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise AdoptError(f"{path}: no such file") from None
    except Exception as exc:  # onnx's DecodeError on anything that is not a ModelProto
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise AdoptError(f"{path} is not a valid ONNX model: {reason}") from None
    folder = path.resolve().parent
    tensors = [t for t in external_data_helper._get_all_tensors(proto) if external_data_helper.uses_external_data(t)]
    for tensor in tensors:
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = folder / location
        if (not location or Path(location).is_absolute() or ".." in Path(location).parts or target.is_symlink()
                or not target.is_file()):
            raise AdoptError(f"{path}: tensor {tensor.name} keeps its data in {location!r}, which is not a file "
                             f"inside {folder}; keep the model and its .data file together")
    if tensors:
        external_data_helper.load_external_data_for_model(proto, str(folder))
    return proto.SerializeToString()


def adopt_file(source: str | Path, output: str | Path, config: AdoptConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """``ganrt-export adopt``: read ``source``, write the ganrt model ``output`` (only if every check passed)."""
    source, output = Path(source), Path(output)
    check_output(output, overwrite=overwrite)
    out, report = adopt_bytes(read_model(source), config, source=str(source))
    atomic_write(output, out)
    return report
