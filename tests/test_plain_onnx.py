"""`ganrt info` on plain ONNX files (no ganrt metadata): inputs, outputs and the guessed `ganrt-export adopt` line.

The graphs are built with the ``onnx`` helper API, a node or three each: shapes like those of the models
users bring (pytorch/examples' DCGAN and ESPCN, a one-hot cGAN), not trained GANs.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the test graphs are built with onnx (the 'dev' extra)")
from onnx import TensorProto, helper, numpy_helper

from ganrt.core.errors import ModelFormatError
from ganrt.core.plain import Port, describe, suggest

BIN = Path(sys.executable).parent
FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64


def ganrt(*args):
    return subprocess.run([str(BIN / "ganrt"), *map(str, args)], capture_output=True, text=True, timeout=120)


def _save(path: Path, nodes, inputs, outputs, weights=(), producer="pytorch", metadata=None) -> Path:
    init = [numpy_helper.from_array(w, name) for name, w in weights]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs], initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name=producer)
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


@pytest.fixture
def dcgan(tmp_path):
    """z (N, 100, 1, 1) -> (N, 3, 64, 64), as pytorch/examples' dcgan exports."""
    return _save(tmp_path / "netG.onnx",
                 [helper.make_node("ConvTranspose", ["z", "w"], ["t"], kernel_shape=[4, 4]),  # (N, 3, 4, 4)
                  helper.make_node("Resize", ["t", "", "scales"], ["u"], mode="nearest"),   # (N, 3, 64, 64)
                  helper.make_node("Tanh", ["u"], ["image"])],
                 [("z", FLOAT, ["batch", 100, 1, 1])], [("image", FLOAT, ["batch", 3, 64, 64])],
                 [("w", np.zeros((100, 3, 4, 4), np.float32)), ("scales", np.array([1, 1, 16, 16], np.float32))])


@pytest.fixture
def onehot_cgan(tmp_path):
    """z (N, 100), y one-hot (N, 10) -> (N, 1, 28, 28)."""
    return _save(tmp_path / "cgan.onnx",
                 [helper.make_node("Concat", ["z", "y"], ["zy"], axis=1),        # (N, 110)
                  helper.make_node("MatMul", ["zy", "w"], ["flat"]),             # (N, 784)
                  helper.make_node("Reshape", ["flat", "shape"], ["r"]),         # (N, 1, 28, 28)
                  helper.make_node("Tanh", ["r"], ["out"])],
                 [("z", FLOAT, ["N", 100]), ("y", FLOAT, ["N", 10])], [("out", FLOAT, ["N", 1, 28, 28])],
                 [("w", np.zeros((110, 784), np.float32)), ("shape", np.array([-1, 1, 28, 28], np.int64))])


@pytest.fixture
def index_cgan_flat(tmp_path):
    """label int64 (N,) and z (N, 64) -> flat (N, 784): the label first, a flat output."""
    return _save(tmp_path / "flat.onnx",
                 [helper.make_node("Gather", ["emb", "label"], ["e"]),           # (N, 64)
                  helper.make_node("Add", ["noise", "e"], ["h"]),
                  helper.make_node("MatMul", ["h", "w"], ["m"]),                 # (N, 784)
                  helper.make_node("Tanh", ["m"], ["img"])],
                 [("label", INT64, ["N"]), ("noise", FLOAT, ["N", 64])], [("img", FLOAT, ["N", 784])],
                 [("emb", np.zeros((10, 64), np.float32)), ("w", np.zeros((64, 784), np.float32))])


@pytest.fixture
def espcn(tmp_path):
    """The Y channel (N, 1, H, W) -> (N, 1, 3H, 3W), as pytorch/examples' super_resolution exports."""
    return _save(tmp_path / "espcn.onnx",
                 [helper.make_node("Conv", ["input", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),  # (N, 9, H, W)
                  helper.make_node("DepthToSpace", ["c"], ["output"], blocksize=3)],                       # (N, 1, 3H, 3W)
                 [("input", FLOAT, ["batch", 1, "height", "width"])], [("output", FLOAT, ["batch", 1, "h3", "w3"])],
                 [("w", np.zeros((9, 1, 3, 3), np.float32))])


@pytest.fixture
def text_model(tmp_path):
    """int64 tokens (N, L) -> a float embedding (N, 8): nothing ganrt runs."""
    return _save(tmp_path / "text.onnx",
                 [helper.make_node("Gather", ["table", "tokens"], ["e"]),        # (N, L, 8)
                  helper.make_node("ReduceMean", ["e"], ["pooled"], axes=[1], keepdims=0)],
                 [("tokens", INT64, ["N", "L"])], [("pooled", FLOAT, ["N", 8])], [("table", np.zeros((50, 8), np.float32))],
                 producer="")


def _suggestion(out: subprocess.CompletedProcess) -> str:
    lines = [line for line in out.stdout.splitlines() if line.startswith("ganrt-export adopt ")]
    assert out.returncode == 0 and len(lines) == 1, out.stdout + out.stderr
    return lines[0]


def test_dcgan_latent_is_4d(dcgan):
    out = ganrt("info", dcgan)
    line = _suggestion(out)
    assert line.startswith(f"ganrt-export adopt {dcgan} {dcgan.parent / 'netG-ganrt.onnx'} --kind generator")
    assert "--nz 100 --latent-shape 100,1,1 --label none" in line and "--image-shape" not in line
    assert "input  z: float (batch, 100, 1, 1)" in out.stdout and "output  image: float (batch, 3, 64, 64)" in out.stdout
    assert "producer  pytorch" in out.stdout and "--value-range -1,1 is the default" in out.stdout
    assert "image 64x64x3" in out.stdout


def test_onehot_cgan(onehot_cgan):
    line = _suggestion(ganrt("info", onehot_cgan))
    assert "--kind generator --nz 100 --label onehot --classes 10" in line and "--latent-shape" not in line


def test_index_label_leaves_classes_to_fill_and_folds_a_flat_output(index_cgan_flat):
    out = ganrt("info", index_cgan_flat)
    line = _suggestion(out)
    assert "--kind generator --nz 64 --label index --classes K --image-shape 28,28,1" in line
    assert "replace K with the number of classes" in out.stdout and "flat" in out.stdout


def test_espcn_is_a_y_upscaler(espcn):
    out = ganrt("info", espcn)
    line = _suggestion(out)
    assert "--kind upscaler --color y" in line and "--nz" not in line
    assert "--value-range 0,1 is the default for upscalers" in out.stdout


def test_unrelated_graph_gets_no_guess(text_model):
    out = ganrt("info", text_model)
    assert out.returncode == 0 and "ganrt-export adopt" not in out.stdout, out.stderr
    assert "no guess fits" in out.stdout and "tokens: int64 (N, L)" in out.stdout
    assert "producer  not stated in the file" in out.stdout


def test_json(onehot_cgan):
    out = ganrt("info", onehot_cgan, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["ganrt"] is False and data["producer"] == "pytorch"
    assert data["inputs"] == [{"name": "z", "type": "float", "shape": ["N", 100]},
                              {"name": "y", "type": "float", "shape": ["N", 10]}]
    assert data["outputs"] == [{"name": "out", "type": "float", "shape": ["N", 1, 28, 28]}]
    assert "--label onehot --classes 10" in data["suggestion"] and isinstance(data["why"], list)


def test_garbage_is_still_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage" * 100)
    out = ganrt("info", bad)
    assert out.returncode == 1 and "not a valid ONNX model" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr
    with pytest.raises(ModelFormatError, match="not a valid ONNX model"):
        describe(bad)


def test_describe_api(dcgan, tmp_path):
    plain = describe(dcgan)
    assert plain.inputs == (Port("z", "float", ("batch", 100, 1, 1)),) and plain.producer == "pytorch"
    assert plain.ganrt is False and "--latent-shape 100,1,1" in plain.suggestion
    tagged = _save(tmp_path / "tagged.onnx", [helper.make_node("Identity", ["x"], ["y"])],
                   [("x", FLOAT, ["N", 4])], [("y", FLOAT, ["N", 4])], metadata={"ganrt": "{}"})
    plain = describe(tagged)
    assert plain.ganrt is True and plain.suggestion is None


@pytest.mark.parametrize(("inputs", "outputs", "expected"), [
    # a fixed batch: still a guess, with a note
    ((Port("z", "float", (1, 100, 1, 1)),), (Port("o", "float", (1, 3, 64, 64)),), "fixed at 1"),
    # two float vectors whose names say nothing: the first is the latent, said so
    ((Port("a", "float", ("N", 100)), Port("b", "float", ("N", 10))), (Port("o", "float", ("N", 1, 28, 28)),), "the first"),
    # a fixed-size image input is no upscaler, a classifier's (N, 1000) output no image
    ((Port("x", "float", ("N", 3, 224, 224)),), (Port("p", "float", ("N", 1000)),), "no guess fits"),
    ((Port("x", "float", ("N", 3, "H", "W")),), (Port("p", "float", ("N", 1000)),), "not an image of the input's layout"),
    # two outputs
    ((Port("z", "float", ("N", 8)),), (Port("a", "float", ("N", 1, 8, 8)), Port("b", "float", ("N", 1))), "one image output"),
])
def test_suggest_rules(inputs, outputs, expected):
    _, why = suggest(inputs, outputs)
    assert expected in why
