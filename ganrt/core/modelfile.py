"""Checks on an ONNX file's bytes made before onnxruntime reads it, without the ``onnx`` package.

onnxruntime opens the files that a tensor's ``external_data`` ``location`` names, relative to the
model's folder. A hostile model could name ``../../home/you/.ssh/id_rsa`` or an absolute path; ganrt
refuses any location that is absolute or resolves (symlinks included) outside the model's folder.
That folder is where onnxruntime looks: beside the path it is given, which for a symbolic link to a
model is the link's folder, not the target's (onnxruntime 1.32, measured: with different ``w.bin``
files beside a link and beside its target, the session read the one beside the link).

The walk reads protobuf wire format directly and descends only where tensors can sit:
ModelProto.graph (7) and .functions (25) -> GraphProto.node (1), .initializer (5),
.sparse_initializer (15) -> NodeProto.attribute (5) -> AttributeProto.t (5), .g (6), .tensors (10),
.graphs (11), .sparse_tensor (22), .sparse_tensors (23) -> TensorProto.external_data (13).
Other fields, tensor payloads included, are skipped by length, so a large model costs little.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

from ganrt.core.errors import ModelFormatError

MAX_DEPTH = 64  # nested subgraphs (If/Loop bodies); a deeper file is refused, not recursed into

# message kind -> {field number: message kind of that (length-delimited) field}
_CHILDREN = {
    "model": {7: "graph", 25: "function"},
    "function": {7: "node"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {13: "entry"},
}


class _Malformed(Exception):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int):
    """(field number, wire type, value or (start, end) of a length-delimited payload) of one message."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _Malformed("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value
        elif wire == 1 or wire == 5:
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise _Malformed("truncated fixed-width field")
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Malformed("length-delimited field runs past the end")
            yield field, wire, (pos, pos + length)
            pos += length
        else:
            raise _Malformed(f"wire type {wire}")


def external_locations(buf: memoryview) -> list[str]:
    """Every external-data ``location`` named by a tensor anywhere in a serialized ModelProto."""
    found: list[str] = []
    stack = [("model", 0, len(buf), 0)]
    while stack:
        kind, start, end, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _Malformed(f"messages nested deeper than {MAX_DEPTH}")
        if kind == "entry":  # StringStringEntryProto: key (1), value (2)
            entry = {f: bytes(buf[v[0] : v[1]]) for f, w, v in _fields(buf, start, end) if w == 2}
            if entry.get(1) == b"location":
                found.append(entry.get(2, b"").decode("utf-8", "replace"))
            continue
        children = _CHILDREN[kind]
        for field, wire, value in _fields(buf, start, end):
            if wire == 2 and field in children:
                stack.append((children[field], value[0], value[1], depth + 1))
    return found


def check_model_file(path: Path, *, source: str) -> None:
    """Refuse an empty file, one that is not protobuf, and external data outside the model's folder."""
    if not path.is_file():
        raise ModelFormatError(f"{source}: {path} is not a file")
    if path.stat().st_size == 0:
        raise ModelFormatError(f"{source}: {path} is empty, not an ONNX model")
    try:
        f = open(path, "rb")
    except OSError as exc:  # EACCES, a file removed meanwhile, ...
        raise ModelFormatError(f"{source}: cannot read {path}: {exc.strerror or exc}") from None
    with f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buf = memoryview(mm)
        try:
            locations = external_locations(buf)
        except _Malformed as exc:
            raise ModelFormatError(f"{source} is not a valid ONNX model: malformed protobuf ({exc})") from None
        finally:
            buf.release()
    folder = path.absolute().parent.resolve()  # the folder of the path onnxruntime opens, not of a link's target
    for location in locations:
        if "\0" in location:  # no file name holds one (the OS refuses it); Path.resolve raised ValueError
            raise ModelFormatError(f"{source}: external data location {location!r} holds a NUL byte; it cannot name a file")
        target = (folder / location).resolve()
        if os.path.isabs(location) or not target.is_relative_to(folder):
            raise ModelFormatError(
                f"{source}: external data location {location!r} points outside the model's folder {folder}; "
                "external data files must sit beside the model"
            )
        if not target.is_file():
            raise ModelFormatError(f"{source}: external data file {location!r} is missing from {folder}")
