"""What a plain ONNX file (one without ganrt metadata) holds, and the ``ganrt-export adopt`` line that would fit it.

The guess reads only what onnxruntime reports of the graph's inputs and outputs -- names, element types and
shapes -- so it needs neither ``onnx`` nor torch. It is a guess: ``adopt`` runs the graph, finds the image
shape and the scale, and checks the wrapped graph against the original. What the shapes cannot tell (the
number of classes of an index label, the value range) is left to the user and said so.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ganrt.core.kind import article
from ganrt.core.modelfile import check_model_file
from ganrt.core.schema import METADATA_KEY
from ganrt.core.session import create_session

FLOATS = ("float", "float16", "double", "bfloat16")
INDEX_TYPES = ("int64", "int32")
CHANNELS = (1, 3)  # ganrt images: grey (or the Y of YCbCr) and RGB
# words in an input's name that say which of two float vectors is the label (cGANs name it y, label, c, ...)
_LABEL_WORDS = {"y", "c", "label", "labels", "class", "classes", "cls", "cond", "condition", "onehot", "attr", "attrs"}
_LATENT_WORDS = {"z", "noise", "latent", "latents", "code"}
_EXPECTED = ("a generator takes a float latent (N, nz) or (N, nz, 1, 1), with at most one label beside it "
             "(int64 (N,) or float one-hot (N, K)); an upscaler takes one float image (N, 1|3, H, W) of free H, W")


class Port(NamedTuple):
    """One graph input or output as onnxruntime reports it: ``Port("z", "float", ("N", 100, 1, 1))``.

    ``shape`` holds ints for fixed dimensions, the dimension's name for a symbolic one, ``"?"`` for one with
    neither; it is None when even the rank is unknown.
    """

    name: str
    type: str
    shape: tuple[int | str, ...] | None

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.name}: {self.type}, rank unknown"
        dims = ", ".join(map(str, self.shape)) + ("," if len(self.shape) == 1 else "")  # (N,) like Python's tuples
        return f"{self.name}: {self.type} ({dims})"


@dataclass(frozen=True)
class PlainModel:
    """A file's inputs and outputs and, where no ganrt metadata is there, the ``adopt`` line guessed from them.

    ``producer`` is the exporter's name (``pytorch``, ``tf2onnx``; None where the file does not say); onnxruntime
    does not expose the producer's version. ``suggestion`` is one command line, or None where no guess fits or the
    file is already a ganrt model; ``why`` says why, one sentence a line, including every placeholder to fill.
    """

    path: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    producer: str | None
    ganrt: bool  # the file carries ganrt metadata: ``ganrt.load`` serves it as it is
    suggestion: str | None
    why: str

    def to_dict(self) -> dict[str, Any]:
        def ports(items: tuple[Port, ...]) -> list[dict[str, Any]]:
            return [{"name": p.name, "type": p.type, "shape": None if p.shape is None else list(p.shape)} for p in items]

        return {"path": self.path, "ganrt": self.ganrt, "producer": self.producer, "inputs": ports(self.inputs),
                "outputs": ports(self.outputs), "suggestion": self.suggestion, "why": self.why.splitlines()}

    def lines(self) -> list[str]:
        rows = [("file", self.path), ("format", "plain ONNX (no ganrt metadata)" if not self.ganrt else "ganrt model"),
                ("producer", self.producer or "not stated in the file")]
        rows += [("input", p.describe()) for p in self.inputs] + [("output", p.describe()) for p in self.outputs]
        out = [f"{key:>14}  {value}" for key, value in rows]
        if self.suggestion:
            out += ["", "To make it a ganrt model (a guess from its inputs and outputs):", self.suggestion]
        else:
            out.append("")
        return out + [f"# {line}" for line in self.why.splitlines()]


def describe(path: str | os.PathLike, *, source: str | None = None) -> PlainModel:
    """Open ``path`` (any ONNX file) and guess the ``adopt`` line for it; ``ModelFormatError`` if it is not ONNX.

    The file gets the same checks as ``ganrt.load`` gives it (external data inside its folder) and a one-thread
    CPU session: only its inputs and outputs are read, nothing is run.
    """
    path = Path(path)
    source = source or str(path)
    check_model_file(path, source=source)
    session = create_session(path, device="cpu", threads=1, source=source)
    meta = session.get_modelmeta()
    inputs = tuple(_port(arg) for arg in session.get_inputs())
    outputs = tuple(_port(arg) for arg in session.get_outputs())
    tagged = METADATA_KEY in meta.custom_metadata_map
    if tagged:
        suggestion, why = None, f"{source} is already a ganrt model: `ganrt info` shows its settings"
    else:
        suggestion, why = suggest(inputs, outputs, in_path=str(path))
    return PlainModel(path=source, inputs=inputs, outputs=outputs, producer=meta.producer_name or None,
                      ganrt=tagged, suggestion=suggestion, why=why)


def suggest(inputs: tuple[Port, ...], outputs: tuple[Port, ...], *, in_path: str = "IN.onnx") -> tuple[str | None, str]:
    """(the ``ganrt-export adopt`` command line for a graph of these inputs and outputs, or None; why).

    Placeholders the shapes cannot fill (``K`` classes of an index label, ``H,W,C`` of a flat output that is
    no square image) stay in the line, and ``why`` names each one.
    """
    guess = _generator(inputs) or _upscaler(inputs)
    if guess is None:
        return None, f"no guess fits: {_EXPECTED}; this graph takes {'; '.join(p.describe() for p in inputs) or 'no inputs'}"
    kind, args, notes = guess
    if len(outputs) != 1:
        return None, (f"no guess fits: the inputs look like {article(kind)}, but adopt wraps one image output and this graph has "
                      f"{len(outputs)}: {'; '.join(p.describe() for p in outputs)}")
    found = _generator_output(outputs[0]) if kind == "generator" else _upscaler_output(outputs[0], inputs[0])
    if isinstance(found, str):
        return None, f"no guess fits: the inputs look like {article(kind)}, but {found}"
    out_args, out_notes = found
    notes += out_notes
    if kind == "generator":
        notes.append("--value-range -1,1 is the default for generators (a Tanh output); the shapes do not tell the range, "
                     "so pass --value-range 0,1 for a Sigmoid output")
    else:
        notes.append("--value-range 0,1 is the default for upscalers; pass --value-range -1,1 if the model works on [-1, 1]")
        notes.append("a network whose output keeps the input's size (pix2pix, CycleGAN) is --kind translator instead "
                     "(default --value-range -1,1); adopt finds its size constraint and whether it sees the whole image")
    target = Path(in_path)
    command = ["ganrt-export", "adopt", shlex.quote(in_path), shlex.quote(str(target.with_name(f"{target.stem}-ganrt.onnx"))),
               *args, *out_args]
    return " ".join(command), "\n".join(notes)


def _port(arg: Any) -> Port:
    """An onnxruntime ``NodeArg`` -> Port: ``tensor(float)`` -> ``float``, unnamed unknown dimensions -> ``"?"``."""
    kind = re.fullmatch(r"tensor\((\w+)\)", arg.type)
    shape = None if arg.shape is None else tuple("?" if d is None else d for d in arg.shape)
    return Port(arg.name, kind.group(1) if kind else arg.type, shape)


def _fixed(dim: int | str) -> bool:
    return isinstance(dim, int) and dim > 0


def _vector(p: Port) -> int | None:
    """K of a float (N, K) or (N, K, 1, 1) input (a latent or a one-hot label), else None."""
    if p.type not in FLOATS or p.shape is None or not (len(p.shape) == 2 or (len(p.shape) == 4 and p.shape[2:] == (1, 1))):
        return None
    return int(p.shape[1]) if _fixed(p.shape[1]) else None


def _is_index(p: Port) -> bool:
    return p.type in INDEX_TYPES and p.shape is not None and len(p.shape) == 1


def _words(name: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", name.lower())) - {""}


def _split(a: Port, b: Port) -> tuple[Port, Port, str | None] | None:
    """(latent, label, a note when only the inputs' order decided) of a two-input graph, or None."""
    if _is_index(a) != _is_index(b):
        latent, label = (b, a) if _is_index(a) else (a, b)
        return (latent, label, None) if _vector(latent) else None
    if not (_vector(a) and _vector(b)):
        return None
    for first, second in ((a, b), (b, a)):
        if _words(second.name) & _LABEL_WORDS and not _words(first.name) & _LABEL_WORDS:
            return first, second, None
        if _words(first.name) & _LATENT_WORDS and not _words(second.name) & _LATENT_WORDS:
            return first, second, None
    return a, b, (f"both inputs are float vectors and their names do not say which is the label: "
                  f"'{a.name}' (the first) is taken as the latent")


def _batch_note(p: Port) -> list[str]:
    if p.shape and _fixed(p.shape[0]):
        return [f"the batch dimension of '{p.name}' is fixed at {p.shape[0]}: adopt makes it dynamic where the graph allows"]
    return []


def _generator(inputs: tuple[Port, ...]) -> tuple[str, list[str], list[str]] | None:
    """("generator", adopt options, notes) where the inputs are a latent and at most one label, else None."""
    if len(inputs) == 1:
        latent, label, note = inputs[0], None, None
    elif len(inputs) == 2 and (split := _split(*inputs)):
        latent, label, note = split
    else:
        return None
    nz = _vector(latent)
    if nz is None:
        return None
    args = ["--kind", "generator", "--nz", str(nz)]
    if len(latent.shape) == 4:  # (N, nz, 1, 1): the DCGAN layout
        args += ["--latent-shape", f"{nz},1,1"]
    notes = [f"the latent is {latent.describe()}"] + ([note] if note else []) + _batch_note(latent)
    if label is None:
        args += ["--label", "none"]
    elif _is_index(label):
        args += ["--label", "index", "--classes", "K"]
        notes.append(f"the label is {label.describe()}, a class index; replace K with the number of classes "
                     "(the graph's shapes do not tell it)")
    else:
        classes = _vector(label)
        args += ["--label", "onehot", "--classes", str(classes)]
        notes.append(f"the label is {label.describe()}, one-hot over {classes} classes")
    return "generator", args, notes


def _layout(shape: tuple[int | str, ...]) -> tuple[str, int] | None:
    """("NCHW" or "NHWC", channels) of a rank-4 image shape whose channel axis holds 1 or 3, else None."""
    if shape[1] in CHANNELS and shape[3] not in CHANNELS:
        return "NCHW", int(shape[1])
    if shape[3] in CHANNELS and shape[1] not in CHANNELS:
        return "NHWC", int(shape[3])
    if shape[1] in CHANNELS:  # both could be channels, (N, 3, 3, 3): torch exports NCHW
        return "NCHW", int(shape[1])
    return None


def _upscaler(inputs: tuple[Port, ...]) -> tuple[str, list[str], list[str]] | None:
    """("upscaler", adopt options, notes) where the one input is a float image of free height and width, else None."""
    if len(inputs) != 1 or inputs[0].type not in FLOATS or inputs[0].shape is None or len(inputs[0].shape) != 4:
        return None
    image = inputs[0]
    found = _layout(image.shape)
    if found is None:
        return None
    layout, channels = found
    spatial = image.shape[2:] if layout == "NCHW" else image.shape[1:3]
    if any(_fixed(d) for d in spatial):  # a fixed-size input is no upscaler ganrt can tile
        return None
    color = "y" if channels == 1 else "rgb"
    notes = [f"the image is {image.describe()}, {layout}"]
    if color == "y":
        notes.append("1 channel: taken as the Y of YCbCr, as in ESPCN (--color y); the chroma is upscaled bicubically")
    return "upscaler", ["--kind", "upscaler", "--color", color], notes + _batch_note(image)


def _square(size: int) -> tuple[int, int, int] | None:
    """(H, W, C) of a square image of ``size`` values, 1 or 3 channels (at most one fits: 3 is no square)."""
    for channels in CHANNELS:
        side = math.isqrt(size // channels)
        if size % channels == 0 and side * side * channels == size:
            return side, side, channels
    return None


def _generator_output(out: Port) -> tuple[list[str], list[str]] | str:
    """(extra adopt options, notes) for a generator's output, or why it is no image."""
    if out.type not in FLOATS:
        return f"its output {out.describe()} is not a float image"
    if out.shape is None:
        return [], [f"the output is {out.describe()}; adopt finds the image shape by running the graph"]
    if len(out.shape) == 4:
        found = _layout(out.shape)
        if found is None:
            return f"its output {out.describe()} has no axis of 1 or 3 channels"
        layout, channels = found
        h, w = out.shape[2:] if layout == "NCHW" else out.shape[1:3]
        size = f"{h}x{w}x{channels}" if _fixed(h) and _fixed(w) else "found when adopt runs the graph"
        return [], [f"the output is {out.describe()}, {layout}; image {size}"]
    if len(out.shape) == 3 and _fixed(out.shape[1]) and _fixed(out.shape[2]):  # (N, H, W): grey
        return ["--image-shape", f"{out.shape[1]},{out.shape[2]},1"], [f"the output is {out.describe()}, a grey image"]
    if len(out.shape) == 2:  # (N, H*W*C): flat
        if _fixed(out.shape[1]) and (square := _square(int(out.shape[1]))):
            h, w, c = square
            return ["--image-shape", f"{h},{w},{c}"], [
                f"the output {out.describe()} is flat: --image-shape says how to fold it; {h},{w},{c} is the one square "
                "image of that size, change it if the image is not square"]
        return ["--image-shape", "H,W,C"], [
            f"the output {out.describe()} is flat: replace H,W,C in --image-shape with the image's height, width and channels"]
    return f"its output {out.describe()} is no image (N, C, H, W), (N, H, W, C) or flat (N, H*W*C)"


def _upscaler_output(out: Port, image: Port) -> tuple[list[str], list[str]] | str:
    """(extra adopt options, notes) for an upscaler's output, or why it is no image like its input."""
    if out.type not in FLOATS:
        return f"its output {out.describe()} is not a float image"
    if out.shape is None:
        return [], [f"the output is {out.describe()}; adopt measures the scale by running the graph"]
    in_layout = _layout(image.shape)
    if len(out.shape) != 4 or _layout(out.shape) != in_layout:
        return f"its output {out.describe()} is not an image of the input's layout and channels ({image.describe()})"
    return [], [f"the output is {out.describe()}; adopt measures the scale and the receptive radius by running the graph"]
