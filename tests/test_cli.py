import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ganrt.cli import cli

BIN = Path(sys.executable).parent


def run(*args):
    """Invoke the CLI the way the console script does (errors -> one line, exit code)."""
    from ganrt import cli as cli_mod

    runner = CliRunner()
    return runner.invoke(cli, list(map(str, args)), standalone_mode=True, catch_exceptions=True), cli_mod


def ganrt(*args, check=False):
    out = subprocess.run([str(BIN / "ganrt"), *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_generate_png_files_and_grid(cgan_path, tmp_path):
    res, _ = run("generate", "--model", cgan_path, "-n", 12, "--seed", 4, "--out", tmp_path / "o", "--grid", tmp_path / "g.png",
                 "--no-progress")
    assert res.exit_code == 0, res.output
    files = sorted(os.listdir(tmp_path / "o"))
    assert files == [".ganrt.lock"] + [f"{i:06d}.png" for i in range(12)] + ["manifest.jsonl"]  # the lock: runs/lock.py
    import ganrt

    expected = ganrt.load(cgan_path).sample(12, seed=4)
    for i in (0, 11):
        im = Image.open(tmp_path / "o" / f"{i:06d}.png")
        np.testing.assert_array_equal(np.asarray(im)[..., None], expected[i])
        assert im.text["seed"] == "4" and im.text["index"] == str(i) and im.text["label"] == str(i % 10)
    assert Image.open(tmp_path / "g.png").size == (4 * 34 + 2, 3 * 34 + 2)


def test_generate_npz_shards(cgan_path, tmp_path):
    res, _ = run("generate", "--model", cgan_path, "-n", 25, "--label", 3, "--format", "npz", "--shard-size", 10,
                 "--batch-size", 4, "--out", tmp_path)
    assert res.exit_code == 0, res.output
    shards = sorted(tmp_path.glob("shard-*.npz"))
    assert [p.name for p in shards] == ["shard-000000.npz", "shard-000001.npz", "shard-000002.npz"]
    data = [np.load(p) for p in shards]
    assert [len(d["images"]) for d in data] == [10, 10, 5]
    np.testing.assert_array_equal(np.concatenate([d["indices"] for d in data]), np.arange(25))
    assert (np.concatenate([d["labels"] for d in data]) == 3).all()
    import ganrt

    np.testing.assert_array_equal(np.concatenate([d["images"] for d in data]), ganrt.load(cgan_path).sample(25, labels=3))


def test_output_folder_with_images_is_refused_unless_overwrite(cgan_path, tmp_path):
    assert run("generate", "--model", cgan_path, "-n", 5, "--out", tmp_path)[0].exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    out = ganrt("generate", "--model", cgan_path, "-n", 3, "--seed", 1, "--out", tmp_path)
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "--overwrite" in out.stderr and "Traceback" not in out.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    res, _ = run("generate", "--model", cgan_path, "-n", 3, "--seed", 1, "--out", tmp_path, "--overwrite")
    assert res.exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ganrt.lock", "000000.png", "000001.png", "000002.png",
                                                          "manifest.jsonl"]  # runs never mix


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--label", "12"], "label 12 is out of range"),
    (["--label", "Shoe"], "unknown class"),
    (["-n", "0"], "n must be an integer >= 1"),
    (["-n", "-5"], "n must be an integer >= 1"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--truncation", "-1"], "truncation must be a positive number"),
    (["--device", "cuda"], "CUDAExecutionProvider"),
])
def test_bad_input_gives_one_line_and_nonzero_exit_and_writes_nothing(cgan_path, tmp_path, args, message):
    if args == ["--device", "cuda"]:
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            pytest.skip("this machine has CUDA")
    model = [] if "--model" in args else ["--model", str(cgan_path)]
    out = ganrt("generate", *model, *args, "--out", tmp_path / "o", "--grid", tmp_path / "g.png")
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "g.png").exists()


def test_labels_given_to_unconditional_model(dcgan_path, tmp_path):
    out = ganrt("generate", "--model", dcgan_path, "--label", "1", "--grid", tmp_path / "g.png")
    assert out.returncode == 1 and "unconditional" in out.stderr and not (tmp_path / "g.png").exists()


def test_files_that_are_not_models(tmp_path):
    (tmp_path / "a.onnx").write_bytes(os.urandom(300))
    out = ganrt("generate", "--model", tmp_path / "a.onnx", "--grid", tmp_path / "g.png")
    assert out.returncode == 1 and "not a valid ONNX model" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_classifier_given_to_generate_is_refused(classifier_path, tmp_path):
    out = ganrt("generate", "--model", classifier_path, "--grid", tmp_path / "g.png")
    assert out.returncode == 1 and "not a generator" in out.stderr


def test_unwritable_output(cgan_path, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (blocker, blocker / "sub"):
        out = ganrt("generate", "--model", cgan_path, "-n", 2, "--out", target)
        assert out.returncode == 1 and "--out" in out.stderr and "Traceback" not in out.stderr
    assert blocker.read_text() == "x"


def test_nothing_to_write_is_a_usage_error(cgan_path):
    out = ganrt("generate", "--model", cgan_path)
    assert out.returncode == 2 and "--out" in out.stderr


def test_info_models_interpolate(cgan_path, tmp_path):
    res, _ = run("info", cgan_path)
    assert res.exit_code == 0 and "latent" in res.output and "100 (normal)" in res.output
    res, _ = run("info", cgan_path, "--json")
    assert '"nz": 100' in res.output
    res, _ = run("interpolate", "--model", cgan_path, "--rows", 2, "--steps", 5, "--out", tmp_path / "w.png")
    assert res.exit_code == 0 and Image.open(tmp_path / "w.png").size == (5 * 34 + 2, 2 * 34 + 2)
    res, _ = run("interpolate", "--model", cgan_path, "--rows", 2, "--steps", 5, "--out", tmp_path / "w.gif")
    gif = Image.open(tmp_path / "w.gif")
    assert res.exit_code == 0 and gif.n_frames == 8  # 5 there, 3 back
    out = ganrt("interpolate", "--model", cgan_path, "--out", tmp_path / "w.gif")
    assert out.returncode == 1 and "exists" in out.stderr


def test_eval_label_accuracy(cgan_path, classifier_path, classifier_stats):
    res, _ = run("eval", cgan_path, "-n", 50, "--classifier", classifier_path, "--json")
    assert res.exit_code == 0, res.output
    import json

    report = json.loads(res.output)
    g = report["generated"]
    assert 0.0 <= g["label_accuracy"] <= 1.0 and len(g["per_class"]) == 10 and report["n"] == 50
    assert g["frechet_distance"] > 0 and 1.0 <= g["inception_score"] <= 10.0 and 0 <= g["precision"] <= 1
    assert report["real"]["n"] == 50 and report["real"]["frechet_distance"] >= 0


def test_export_cli_reports_corrupt_checkpoint(tmp_path):
    pytest.importorskip("torch", reason="ganrt-export reads checkpoints with torch")
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    out = subprocess.run([str(BIN / "ganrt-export"), "export", bad, tmp_path / "x.onnx", "--name", "x"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "truncated or corrupt" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_labels_list_repeats_over_the_images(cgan_path, tmp_path):
    res, _ = run("generate", "--model", cgan_path, "-n", 5, "--labels", "1, 8", "--format", "npz", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "shard-000000.npz")["labels"].tolist() == [1, 8, 1, 8, 1]


def test_eval_class_coverage_of_unconditional_model(dcgan_path, classifier_path, classifier_stats):
    import json

    res, _ = run("eval", dcgan_path, "-n", 40, "--classifier", classifier_path, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert "label_accuracy" not in report["generated"]
    share = report["generated"]["class_share"]
    assert len(share) == 10 and abs(sum(share.values()) - 1.0) < 1e-9
