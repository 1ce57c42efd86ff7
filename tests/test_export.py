import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch side needs the 'export' extra")
import onnx
import torch

import ganrt
from ganrt.core.errors import ModelFormatError, OutputError
from ganrt.core.latent import sample_latents
from ganrt.core.schema import METADATA_KEY, ModelInfo
from ganrt.core.session import create_session
from ganrt.io.images import float_to_uint8
from ganrt_export.onnx import (
    ParityError,
    check_parity,
    check_postprocess,
    checkpoint_info,
    export_checkpoint,
    model_from_checkpoint,
    to_onnx_bytes,
)
from ganrt_export.train import CheckpointError, load_checkpoint


def test_export_stores_settings_and_dynamic_batch(cgan_path):
    proto = onnx.load(str(cgan_path))
    assert proto.opset_import[0].version >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    info = ModelInfo.from_json(meta[METADATA_KEY])
    assert info.kind == "generator" and info.nz == 100 and info.num_classes == 10
    assert info.prior == "normal" and info.image_shape == (32, 32, 1) and info.value_range == (-1.0, 1.0)
    assert info.ganrt_version == ganrt.__version__ and "digits" in info.training_data
    assert info.training["train_config"]["batch_size"] == 32
    z = proto.graph.input[0]
    assert z.name == "z" and z.type.tensor_type.shape.dim[0].dim_param == "N"
    # label_b / alpha: optional inputs (initializers with defaults) for class interpolation
    assert [i.name for i in proto.graph.input] == ["z", "label", "label_b", "alpha"]
    assert {"label_b", "alpha"} <= {t.name for t in proto.graph.initializer}
    assert proto.graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.INT64


def test_onnx_matches_torch_at_several_batch_sizes(models_dir, cgan_path):
    ck = load_checkpoint(models_dir / "tiny-cgan")
    model = model_from_checkpoint(ck)
    float_graph = to_onnx_bytes(model, ck, checkpoint_info(ck, "x", ""))  # before the uint8 post-processing
    worst = check_parity(model, ck, float_graph, batch_sizes=(1, 3, 8, 17))
    assert worst <= 1e-4


def test_uint8_graph_matches_torch_and_the_numpy_conversion(models_dir, cgan_path):
    """The shipped graph ends in uint8 NHWC; it equals the runtime's numpy conversion of the float graph
    exactly, and torch's output converted the same way up to a rounding flip (1 level) at ties."""
    ck = load_checkpoint(models_dir / "tiny-cgan")
    model = model_from_checkpoint(ck)
    proto = onnx.load(str(cgan_path))
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == ["N", 32, 32, 1]
    float_graph = to_onnx_bytes(model, ck, checkpoint_info(ck, "x", ""))
    check_postprocess(float_graph, cgan_path.read_bytes(), ck, (-1.0, 1.0))
    session = create_session(cgan_path, device="cpu")
    z = sample_latents(5, np.arange(40), 100)
    labels = np.arange(40) % 10
    got = session.run(None, {"z": z, "label": labels})[0]
    with torch.inference_mode():
        expected = float_to_uint8(model(torch.from_numpy(z), torch.from_numpy(labels)).numpy())
    assert got.dtype == np.uint8 and got.shape == expected.shape == (40, 32, 32, 1)
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert np.mean(got != expected) < 1e-3


def test_parity_failure_raises_and_writes_nothing(models_dir, tmp_path, monkeypatch, cgan_path):
    import ganrt_export.onnx as exp

    real = exp.to_onnx_bytes

    def broken(model, ck, info):  # an export whose graph drifts from torch: scale the output
        proto = onnx.load_from_string(real(model, ck, info))
        out = proto.graph.output[0].name
        for node in proto.graph.node:
            for i, name in enumerate(node.output):
                if name == out:
                    node.output[i] = "pre"
        proto.graph.node.append(onnx.helper.make_node("Mul", ["pre", "k"], [out]))
        proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array(1.001, np.float32), "k"))
        return proto.SerializeToString()

    monkeypatch.setattr(exp, "to_onnx_bytes", broken)
    target = tmp_path / "g.onnx"
    with pytest.raises(ParityError, match="differs from torch"):
        export_checkpoint(models_dir / "tiny-cgan", target, name="x")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_export_refuses_to_overwrite(models_dir, tmp_path):
    target = tmp_path / "g.onnx"
    target.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="--overwrite"):
        export_checkpoint(models_dir / "tiny-cgan", target, name="x")
    assert target.read_bytes() == b"keep me"


def test_truncated_and_corrupt_checkpoints_give_clear_errors(models_dir, tmp_path):
    good = (models_dir / "tiny-cgan" / "checkpoint.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 100)
    torch.save({"something": 1}, tmp_path / "other.pt")
    for name, match in [("trunc.pt", "truncated or corrupt"), ("junk.pt", "truncated or corrupt"),
                        ("other.pt", "not a ganrt checkpoint"), ("missing.pt", "not found")]:
        with pytest.raises(CheckpointError, match=match) as info:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(info.value)


def test_classifier_export_takes_uint8_nhwc(classifier_path):
    clf = ganrt.load(classifier_path)
    meta = clf.info
    assert meta.kind == "classifier" and meta.training["test_accuracy"] is not None
    rng = np.random.default_rng(0)
    labels, _ = clf.predict(rng.integers(0, 256, (7, 32, 32, 1), dtype=np.uint8))
    assert labels.shape == (7,)


def test_non_ganrt_onnx_and_non_onnx_files_are_refused(tmp_path):
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    plain = tmp_path / "plain.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(plain))
    with pytest.raises(ModelFormatError, match="not a ganrt model"):
        ganrt.load(plain)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf at all \x00\xff" * 10)
    with pytest.raises(ModelFormatError, match="not a valid ONNX model"):
        ganrt.load(junk)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFormatError, match="empty"):
        ganrt.load(empty)


def test_bad_metadata_is_refused():
    good = json.loads(ModelInfo(kind="generator", name="g", image_shape=(32, 32, 1), nz=8).to_json())
    assert ModelInfo.from_json(json.dumps(good)).nz == 8
    for change, match in [({"kind": "teapot"}, "kind"), ({"nz": 0}, "nz"), ({"prior": "cauchy"}, "prior"),
                          ({"schema_version": 99}, "schema_version"), ({"image_shape": [32, 32]}, "image_shape"),
                          ({"num_classes": 2, "class_names": ["a"]}, "class names")]:
        with pytest.raises(ModelFormatError, match=match):
            ModelInfo.from_json(json.dumps({**good, **change}))
    with pytest.raises(ModelFormatError, match="not JSON"):
        ModelInfo.from_json("{nope")
    with pytest.raises(ModelFormatError, match="bytes"):
        ModelInfo.from_json(json.dumps({**good, "description": "x" * (2 << 20)}))
