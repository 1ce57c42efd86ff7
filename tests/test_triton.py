"""export-triton: the model repository's structure, and its client against a stand-in server that obeys config.pbtxt.

Triton itself cannot run here (no server binary, no GPU): the stand-in runs the repository's
model.onnx with onnxruntime, checking every request against the config as Triton would.
"""

import importlib.util
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import ganrt
from ganrt.core.errors import OutputError, ParameterError
from ganrt.core.model import file_sha256
from ganrt.tools.triton import TritonConfig, export_triton

BIN = Path(sys.executable).parent
_TOKEN = re.compile(r'\s*(?:(\{)|(\})|(\[[^\]]*\])|("(?:[^"\\]|\\.)*")|([\w.+-]+)\s*:?)')


def parse_pbtxt(text: str) -> dict:
    """Protobuf text format -> dicts; every field a list of its values (repeated or not)."""
    tokens = [m for m in _TOKEN.finditer(text) if m.group(0).strip()]
    pos = 0

    def value(tok):
        if tok.group(3):
            return [value(_TOKEN.match(x.strip())) for x in tok.group(3)[1:-1].split(",") if x.strip()]
        if tok.group(4):
            return tok.group(4)[1:-1]
        word = tok.group(5)
        return int(word) if re.fullmatch(r"-?\d+", word) else word

    def message() -> dict:
        nonlocal pos
        out: dict = {}
        while pos < len(tokens) and not tokens[pos].group(2):
            key = tokens[pos].group(5)
            assert key, f"expected a field name at {tokens[pos].group(0)!r}"
            pos += 1
            if tokens[pos].group(1):
                pos += 1
                v = message()
                assert tokens[pos].group(2)
            else:
                v = value(tokens[pos])
            pos += 1
            out.setdefault(key, []).append(v)
        return out

    result = message()
    assert pos == len(tokens), "unbalanced braces"
    return result


@pytest.fixture(scope="module")
def cgan():
    return ganrt.load("fashion-cgan")


def read_config(folder: Path) -> dict:
    return parse_pbtxt((folder / "config.pbtxt").read_text())


def test_the_repository_holds_the_model_a_config_and_a_client(cgan, tmp_path):
    folder = export_triton(cgan, tmp_path, config=TritonConfig(instances=2))
    assert folder == tmp_path / "fashion-cgan"
    assert sorted(p.name for p in folder.iterdir()) == ["1", "client.json", "client.py", "config.pbtxt"]
    assert file_sha256(folder / "1" / "model.onnx") == cgan.sha256  # the same weights, not a re-export
    cfg = read_config(folder)
    assert cfg["name"] == ["fashion-cgan"] and cfg["backend"] == ["onnxruntime"] and cfg["max_batch_size"] == [256]
    z, label = cfg["input"]
    assert z == {"name": ["z"], "data_type": ["TYPE_FP32"], "dims": [[100]]}  # batch dimension left to Triton
    assert label == {"name": ["label"], "data_type": ["TYPE_INT64"], "dims": [[1]], "reshape": [{"shape": [[]]}]}
    assert cfg["output"] == [{"name": ["image"], "data_type": ["TYPE_UINT8"],
                              "dims": [[32, 32, 1]]}]  # post-processed in the graph
    assert cfg["instance_group"] == [{"count": [2], "kind": ["KIND_CPU"]}]
    assert cfg["dynamic_batching"] == [{"preferred_batch_size": [[64, 256]], "max_queue_delay_microseconds": [100]}]
    assert "optimization" not in cfg


@pytest.mark.parametrize("fp16", [False, True])
def test_tensorrt_is_an_accelerator_of_gpu_instances(cgan, tmp_path, fp16):
    config = TritonConfig(kind="gpu", tensorrt=not fp16, tensorrt_fp16=fp16, max_batch_size=64, preferred_batch_sizes=(16, 64))
    cfg = read_config(export_triton(cgan, tmp_path, config=config))
    assert cfg["instance_group"] == [{"count": [1], "kind": ["KIND_GPU"]}]
    assert cfg["dynamic_batching"][0]["preferred_batch_size"] == [[16, 64]]
    (acc,) = cfg["optimization"][0]["execution_accelerators"][0]["gpu_execution_accelerator"]
    assert acc["name"] == ["tensorrt"]
    params = {p["key"][0]: p["value"][0] for p in acc["parameters"]}
    assert params["precision_mode"] == ("FP16" if fp16 else "FP32")


def test_an_unconditional_model_takes_latents_only(tmp_path):
    cfg = read_config(export_triton(ganrt.load("fashion-dcgan"), tmp_path))
    assert [i["name"] for i in cfg["input"]] == [["z"]]


def test_bad_settings_fail_before_a_file_is_written(cgan, tmp_path):
    with pytest.raises(ParameterError, match="TensorRT runs on GPU instances only"):
        export_triton(cgan, tmp_path / "a", config=TritonConfig(tensorrt=True))
    with pytest.raises(ParameterError, match="preferred batch size 512 is outside 1..max_batch_size"):
        export_triton(cgan, tmp_path / "a", config=TritonConfig(preferred_batch_sizes=(512,)))
    assert not (tmp_path / "a").exists()
    export_triton(cgan, tmp_path / "b")
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        export_triton(cgan, tmp_path / "b")
    export_triton(cgan, tmp_path / "b", overwrite=True)


class StandInServer:
    """``tritonclient.http`` for the client: runs the repository's model as Triton would, per its config.pbtxt."""

    def __init__(self, repo: Path):
        self.repo, self.batches = repo, []

    def module(self) -> types.ModuleType:
        server = self

        class InferInput:
            def __init__(self, name, shape, datatype):
                self.name, self.shape, self.datatype = name, shape, datatype

            def set_data_from_numpy(self, array):
                assert list(array.shape) == self.shape
                self.array = array

        class Result:
            def __init__(self, outputs):
                self.outputs = outputs

            def as_numpy(self, name):
                return self.outputs[name]

        class Client:
            def __init__(self, url):
                self.url = url

            def infer(self, model, inputs, outputs):
                return Result(server.infer(model, inputs, [o.name for o in outputs]))

        mod = types.ModuleType("tritonclient.http")
        mod.InferenceServerClient, mod.InferInput, mod.Result = Client, InferInput, Result
        mod.InferRequestedOutput = lambda name: types.SimpleNamespace(name=name)
        return mod

    def infer(self, model, inputs, outputs):
        from ganrt.core.session import create_session

        cfg = read_config(self.repo / model)
        feeds = {}
        for tensor, spec in zip(inputs, cfg["input"], strict=True):  # every input the config declares, in order
            assert tensor.name == spec["name"][0] and "TYPE_" + tensor.datatype == spec["data_type"][0]
            batch, *dims = tensor.shape
            assert 1 <= batch <= cfg["max_batch_size"][0] and dims == spec["dims"][0]
            feeds[tensor.name] = tensor.array.reshape(
                [batch, *spec["reshape"][0]["shape"][0]]) if "reshape" in spec else tensor.array
        self.batches.append(batch)
        session = create_session(self.repo / model / "1" / "model.onnx")
        result = dict(zip(outputs, session.run(outputs, feeds)))
        for name, spec in zip(outputs, cfg["output"], strict=True):
            assert name == spec["name"][0] and list(result[name].shape[1:]) == spec["dims"][0]
        return result


def load_client(folder: Path, monkeypatch):
    spec = importlib.util.spec_from_file_location("exported_client", folder / "client.py")
    client = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "exported_client", client)  # dataclasses look their module up
    spec.loader.exec_module(client)
    return client


@pytest.mark.parametrize("label, truncation", [(None, None), (7, 0.6)])
def test_the_client_gets_the_images_of_a_local_run(cgan, tmp_path, monkeypatch, label, truncation):
    folder = export_triton(cgan, tmp_path, config=TritonConfig(max_batch_size=8))
    server = StandInServer(tmp_path)
    monkeypatch.setitem(sys.modules, "tritonclient", types.ModuleType("tritonclient"))
    monkeypatch.setitem(sys.modules, "tritonclient.http", server.module())
    client = load_client(folder, monkeypatch)  # the copy in the repository, run as a user would
    served = client.Served.read(folder)
    got = client.sample("localhost:8000", served, 21, seed=5, start=3, label=label, truncation=truncation)
    assert server.batches == [8, 8, 5]  # split at the config's max_batch_size
    want = cgan.sample(21, seed=5, start=3, labels=label, truncation=truncation)
    assert got.dtype == np.uint8 and np.array_equal(got, want)


def test_the_cli_exports_and_refuses_a_model_that_is_not_a_generator(tmp_path):
    out = subprocess.run([str(BIN / "ganrt"), "export-triton", "fashion-dcgan", str(tmp_path), "--kind", "gpu", "--tensorrt"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert read_config(tmp_path / "fashion-dcgan")["instance_group"][0]["kind"] == ["KIND_GPU"]
    out = subprocess.run([str(BIN / "ganrt"), "export-triton", "sr-x2", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.startswith("error: 'sr-x2' is an upscaler model, not a generator")
