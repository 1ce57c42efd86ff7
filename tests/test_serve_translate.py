"""``POST /v1/models/{name}/translate`` on a tiny pix2pix U-Net (tests/third_party.py, exported with the torch side):
the reply has the pixels of ``ganrt translate``'s file; a generator or upscaler name is refused in one line."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("fastapi", reason="ganrt serve needs the 'serve' extra")
pytest.importorskip("torch", reason="the tiny translator is exported with the torch side ('export' extra)")
import third_party as tp
from PIL import Image

from ganrt.cli import cli
from ganrt.serve.config import ServeConfig
from ganrt_export.byom import export_translator
from tests.serve_server import Running


def test_translate_is_ganrt_translates_file(tmp_path):
    module, _ = tp.tiny_pix2pix()
    model = tmp_path / "unet.onnx"
    export_translator(module, model, name="tiny-unet")
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(src / "a.png")
    result = CliRunner().invoke(cli, ["translate", str(src), "--model", str(model), "--out", str(tmp_path / "out"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    with Running(ServeConfig(models=(str(model), "fashion-cgan"))) as s:
        listed = [m["served_as"] for m in json.loads(s.get("/v1/models")[2])["models"]]
        assert listed == ["tiny-unet", "fashion-cgan"]  # a file is served under its metadata name, never its path
        status, headers, body = s.post("/v1/models/tiny-unet/translate", (src / "a.png").read_bytes(), "image/png")
        assert status == 200 and headers["content-type"] == "image/png"
        # the pixels of ganrt translate's file (the CLI's file may carry provenance text chunks of its own)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(body))), np.asarray(Image.open(tmp_path / "out" / "a.png")))
        assert Image.open(io.BytesIO(body)).size == (56, 40)
        status, _, body = s.post("/v1/models/fashion-cgan/translate", (src / "a.png").read_bytes(), "image/png")
        assert status == 400 and "tiny-unet" in json.loads(body)["error"]
