"""Hostile and broken inputs: each gets a typed error with one clear line, never a crash or a hang."""

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import ganrt  # noqa: E402
from ganrt.core.errors import GanrtError, ImageError, InferenceError, ModelFormatError  # noqa: E402
from ganrt.io.npz import read_npz
from ganrt.io.png import read_png  # noqa: E402

BIN = Path(sys.executable).parent


def info(**over) -> str:
    meta = {"kind": "generator", "name": "hostile", "image_shape": [2, 2, 1], "nz": 4, "schema_version": 1} | over
    return json.dumps(meta)


def model_file(path: Path, *, nodes=None, inputs=None, output_shape=("N", 1, 2, 2), meta: str | None = None,
               opsets=(("", 18),), initializers=()) -> Path:
    """A small generator graph: z (N, 4) -> Reshape -> (N, 1, 2, 2), with ganrt metadata ``meta``."""
    nodes = nodes if nodes is not None else [helper.make_node("Reshape", ["z", "shape"], ["image"])]
    inits = [numpy_helper.from_array(np.array([-1, 1, 2, 2], np.int64), "shape"), *initializers]
    inputs = inputs if inputs is not None else [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("image", TensorProto.FLOAT, list(output_shape))],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    if meta is not None:
        helper.set_model_props(model, {"ganrt": meta})
    path.write_bytes(model.SerializeToString())
    return path


def one_line_error(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text and "Traceback" not in text and len(text) < 400, text
    return text


def test_a_small_valid_graph_loads(tmp_path):
    g = ganrt.load(model_file(tmp_path / "ok.onnx", meta=info()))
    assert g.sample(3).shape == (3, 2, 2, 1)


@pytest.mark.parametrize("make, match", [
    (lambda p, good: p.write_bytes(os.urandom(5000)), "not a valid ONNX model"),
    (lambda p, good: p.write_bytes(b""), "is empty"),
    (lambda p, good: p.write_bytes(good[: len(good) // 2]), "not a valid ONNX model"),
    (lambda p, good: p.write_bytes(good[:-3]), "not a valid ONNX model"),
    (lambda p, good: p.write_bytes(b"\x0a\xff\xff\xff\xff\x0f"), "not a valid ONNX model"),  # a length past the end
])
def test_broken_files(tmp_path, cgan_path, make, match):
    path = tmp_path / "bad.onnx"
    make(path, cgan_path.read_bytes())
    with pytest.raises(ModelFormatError) as exc:
        ganrt.load(path)
    assert match in one_line_error(exc)


@pytest.mark.parametrize("meta, match", [
    (None, "not a ganrt model (no 'ganrt' metadata)"),
    ("{not json", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ("[" * 100_000 + "]" * 100_000, "invalid ganrt metadata"),
    (info(schema_version=99), "schema_version 99 is not supported"),
    (info(nz="many"), "nz must be an integer, got \"many\""),
    (info(nz=1e400), "invalid ganrt metadata"),
    (info(image_shape=[10**9, 10**9, 1]), "image_shape"),
    (info(image_shape="2x2"), "image_shape must be a list of 3 integers"),
    (info(kind="decoder"), "kind 'decoder' is not one of"),
    (info(value_range=[1, 1]), "value_range"),
    (info(class_names=["a"], num_classes=2), "1 class names for 2 classes"),
    (json.dumps({"schema_version": 1, "name": "x"}), "missing field 'kind'"),
    (info(description="x" * (2 << 20)), "over 1048576 bytes"),
])
def test_missing_malformed_or_oversized_metadata(tmp_path, meta, match):
    with pytest.raises(ModelFormatError) as exc:
        ganrt.load(model_file(tmp_path / "m.onnx", meta=meta))
    assert match in one_line_error(exc)


@pytest.mark.parametrize("kw, meta, match", [
    (dict(inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
          nodes=[helper.make_node("Reshape", ["x", "shape"], ["image"])]), info(), "inputs ['x'] do not match its metadata"),
    ({}, info(nz=8), "input z has shape ['N', 4], metadata says (N, 8)"),
    ({}, info(num_classes=3), "inputs ['z'] do not match its metadata (expected ['label', 'z'])"),
    (dict(inputs=[helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4]),
                  helper.make_tensor_value_info("label", TensorProto.FLOAT, ["N"])],
          nodes=[helper.make_node("Reshape", ["z", "shape"], ["image"]), helper.make_node("Identity", ["label"], ["unused"])]),
     info(num_classes=3), "input label is tensor(float)"),
    (dict(inputs=[helper.make_tensor_value_info("z", TensorProto.DOUBLE, ["N", 4])],
          nodes=[helper.make_node("Cast", ["z"], ["zf"], to=TensorProto.FLOAT),
                 helper.make_node("Reshape", ["zf", "shape"], ["image"])]),
     info(), "input z is tensor(double)"),
    ({}, info(image_shape=[3, 3, 1]), "has shape ['N', 1, 2, 2], metadata says (N, 1, 3, 3)"),
])
def test_model_inputs_and_outputs_that_do_not_match_the_metadata(tmp_path, kw, meta, match):
    with pytest.raises(ModelFormatError) as exc:
        ganrt.load(model_file(tmp_path / "m.onnx", meta=meta, **kw))
    assert match in one_line_error(exc)


def test_a_model_whose_output_is_not_what_it_declares_fails_at_run_time(tmp_path):
    # declared (N, 1, 3, 3) like the metadata; onnxruntime merges that leniently with the (N, 1, 2, 2) it infers
    g = ganrt.load(model_file(tmp_path / "m.onnx", meta=info(image_shape=[3, 3, 1]), output_shape=("N", 1, 3, 3)))
    with pytest.raises(InferenceError) as exc:
        g.sample(2)
    assert "the model returned shape (2, 1, 2, 2), metadata says (2, 1, 3, 3)" in one_line_error(exc)


def test_a_model_that_fails_inside_onnxruntime(tmp_path):
    bad_shape = numpy_helper.from_array(np.array([-1, 1, 3, 3], np.int64), "shape3")
    nodes = [helper.make_node("Reshape", ["z", "shape3"], ["image"])]
    g = ganrt.load(model_file(tmp_path / "m.onnx", meta=info(), nodes=nodes, initializers=[bad_shape]))
    with pytest.raises(InferenceError) as exc:
        g.sample(1)
    text = one_line_error(exc)
    assert "onnxruntime failed to run the model" in text and "[ONNXRuntimeError]" not in text


@pytest.mark.parametrize("op, domain, opsets, match", [
    ("FooBar", "", (("", 18),), "unknown operator 'FooBar'"),
    ("Reshape", "com.evil", (("", 18), ("com.evil", 1)), "unknown operator 'com.evil:Reshape'"),
    ("Reshape", "com.evil", (("", 18),), "operator domain 'com.evil' is not declared"),
])
def test_unknown_op_or_domain(tmp_path, op, domain, opsets, match):
    nodes = [helper.make_node(op, ["z", "shape"], ["image"], domain=domain)]
    with pytest.raises(ModelFormatError) as exc:
        ganrt.load(model_file(tmp_path / "m.onnx", meta=info(), nodes=nodes, opsets=opsets))
    assert match in one_line_error(exc)


def external_model(folder: Path, location: str, *, write: bool = True) -> Path:
    """The small graph scaling z by a weight (4,) stored as external data at ``location`` (written if ``write``)."""
    folder.mkdir(exist_ok=True)
    w = numpy_helper.from_array(np.full(4, 0.5, np.float32), "w")
    nodes = [helper.make_node("Mul", ["z", "w"], ["zw"]), helper.make_node("Reshape", ["zw", "shape"], ["image"])]
    model = onnx.load(str(model_file(folder / "m.onnx", meta=info(), nodes=nodes, initializers=[w])))
    path = folder / "m.onnx"
    t = next(t for t in model.graph.initializer if t.name == "w")
    raw = np.full(4, 0.5, np.float32).tobytes()
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(len(raw)))):
        e = t.external_data.add()
        e.key, e.value = k, v
    if write:
        (folder / location).write_bytes(raw)
    path.write_bytes(model.SerializeToString())
    return path


def test_external_data_beside_the_model_loads(tmp_path):
    g = ganrt.load(external_model(tmp_path / "m", "weights.bin"))
    z = np.arange(4, dtype=np.float32)[None] / 4
    np.testing.assert_array_equal(g.render(z), ganrt.io.images.float_to_uint8((z * 0.5).reshape(1, 1, 2, 2)))


@pytest.mark.parametrize("location, match", [
    ("../outside.bin", "points outside the model's folder"),
    ("/etc/hostname", "points outside the model's folder"),
    ("sub/../../outside.bin", "points outside the model's folder"),
    ("missing.bin", "external data file 'missing.bin' is missing"),
])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, location, match):
    (tmp_path / "m").mkdir()
    (tmp_path / "outside.bin").write_bytes(np.full(4, 0.5, np.float32).tobytes())
    path = external_model(tmp_path / "m", location, write=False)
    with pytest.raises(ModelFormatError) as exc:
        ganrt.load(path)
    assert match in one_line_error(exc)


def test_external_data_through_a_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(np.full(4, 0.5, np.float32).tobytes())
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "link.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(ModelFormatError, match="points outside"):
        ganrt.load(external_model(tmp_path / "m", "link.bin", write=False))


def test_cli_gives_one_line_for_a_hostile_model(tmp_path):
    path = external_model(tmp_path / "m", "../outside.bin", write=False)
    out = subprocess.run([str(BIN / "ganrt"), "generate", "--model", str(path), "--grid", str(tmp_path / "g.png")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1 and "points outside" in out.stderr


def png_bytes(width: int, height: int, *, idat: bytes = b"") -> bytes:
    """A PNG whose IHDR declares width x height (valid CRCs), with ``idat`` as its only data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data, match", [
    (png_bytes(100_000, 100_000), "not a readable PNG|expected a 32x32 PNG"),
    (png_bytes(2**31 - 1, 2**31 - 1), "not a readable PNG|expected a 32x32 PNG"),
    (png_bytes(32, 32, idat=zlib.compress(b"\x00" * 10)), "not a readable PNG"),  # too little pixel data
    (os.urandom(300), "not a readable PNG"),
    (b"\x89PNG\r\n\x1a\n" + os.urandom(40), "not a readable PNG"),
    (b"", "not a readable PNG"),
])
def test_images_with_bogus_headers_or_huge_dimensions(tmp_path, data, match):
    (tmp_path / "x.png").write_bytes(data)
    with pytest.raises(ImageError, match=match) as exc:
        read_png(tmp_path / "x.png", shape=(32, 32, 1))
    one_line_error(exc)


def test_npz_with_huge_declared_arrays_or_garbage(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (10**12, 32, 32, 1)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as zf:
        zf.writestr("images.npy", header.getvalue() + b"\x00" * 64)
    with pytest.raises(ImageError, match=r"declares shape \(1000000000000, 32, 32, 1\)"):
        read_npz(tmp_path / "huge.npz", max_bytes=1 << 20)
    np.savez(tmp_path / "big.npz", images=np.zeros((100, 32, 32, 1), np.uint8))
    with pytest.raises(ImageError, match="more than the 1000"):
        read_npz(tmp_path / "big.npz", max_bytes=1000)
    (tmp_path / "junk.npz").write_bytes(os.urandom(500))
    with pytest.raises(ImageError, match="not a readable npz shard"):
        read_npz(tmp_path / "junk.npz", max_bytes=1 << 20)


def test_every_error_is_a_ganrt_error():
    for cls in (ModelFormatError, InferenceError, ImageError):
        assert issubclass(cls, GanrtError)
