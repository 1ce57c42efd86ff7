"""The measurement machinery (ganrt.tools.bench, ganrt bench, benchmarks.compare) and the fast PNG encoder.

These check that the benchmarks measure what they say; they time nothing themselves.
"""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from PIL import Image

import ganrt
from ganrt.core.errors import ParameterError
from ganrt.core.session import create_session
from ganrt.io.png import encode_png, encode_pngs
from ganrt.tools.bench import GEMM_MODEL, RssSampler, bench_model, markdown_table, measure, record


def test_gemm_model_is_the_matmul_onnx_helper_builds():
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["m", "k"]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["k", "n"])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["m", "n"])])
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    assert built.SerializeToString() == GEMM_MODEL
    onnx.checker.check_model(onnx.load_from_string(GEMM_MODEL))
    a, b = np.random.default_rng(0).standard_normal((2, 7, 7), dtype=np.float32)
    (c,) = create_session(GEMM_MODEL, device="cpu", threads=1).run(None, {"a": a, "b": b})
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


def test_measure_interleaves_rounds_and_counts_every_call():
    order = []
    timings = measure({"a": lambda b: order.append("a"), "b": lambda b: order.append("b")}, 4, rounds=3, min_seconds=0.001)
    assert order[:2] == ["a", "b"]  # one untimed warm-up call each, then rounds
    assert len(timings["a"].rates) == len(timings["b"].rates) == 3
    assert order.count("a") == len(timings["a"].calls) + 1
    first_round_end = order.index("b", 2)
    assert set(order[2:first_round_end]) == {"a"}  # a's calls of round 1 all come before b's
    with pytest.raises(ParameterError):
        measure({"a": lambda b: None}, 1, rounds=0)


def test_rss_sampler_sees_a_transient_allocation():
    sampler = RssSampler()
    try:
        sampler.start()
        before = sampler.rss()
        block = np.ones(200 * 2**20, dtype=np.uint8)  # 200 MiB, touched
        import time

        time.sleep(0.05)
        del block
        peak = sampler.stop()
    finally:
        sampler.close()
    assert peak - before > 150 * 2**20


def test_records_and_table_report_ratios_and_gemm_share():
    timing = measure({"x": lambda b: None}, 8, rounds=1, min_seconds=0.001)["x"]
    base = record("m", "torch", 8, timing, flops_per_image=1e6, gemm=100.0, threads=2, device="cpu")
    fast = record("m", "ganrt", 8, timing, flops_per_image=1e6, gemm=100.0, threads=2, device="cpu")
    fast = type(fast)(**{**fast.__dict__, "images_per_s": base.images_per_s * 3, "gflops": base.gflops * 3})
    table = markdown_table([base, fast], baseline="torch")
    assert "| m | ganrt | 8 |" in table and "| 3.00 |" in table and "% of fp32 GEMM" in table


def test_bench_model_on_tiny_models(cgan, sr2, classifier_path):
    clf = ganrt.load(classifier_path)
    for model, flops in ((cgan, cgan.info.flops), (clf, clf.info.flops)):
        assert flops > 0  # stated in the file at export
        (rec,) = bench_model(model, batch_sizes=[3], rounds=1, min_seconds=0.01, threads=1)
        assert rec.images_per_s > 0 and rec.batch_size == 3 and rec.gemm_gflops > 0
        assert rec.gflops == pytest.approx(rec.images_per_s * flops / 1e9, rel=0.01, abs=0.006)  # rounded to 0.01
    (rec,) = bench_model(sr2, batch_sizes=[1], rounds=1, min_seconds=0.01, threads=1)
    assert rec.flops_per_image == pytest.approx(sr2.info.flops * 256 * 256)
    with pytest.raises(ParameterError):
        bench_model(cgan, batch_sizes=[0])


def test_flops_in_metadata_match_a_hand_count(dcgan):
    """fashion-dcgan-like tiny model: 2 x multiply-adds of its transposed convolutions."""
    cfg = dcgan.info.training["model_config"]
    nz, ngf, c = cfg["nz"], cfg["ngf"], cfg["channels"]
    chans = [nz, ngf * 4, ngf * 2, ngf, c]  # 32x32: 1 -> 4 -> 8 -> 16 -> 32
    sides = [1, 4, 8, 16, 32]
    macs = sum(chans[i] * chans[i + 1] * 16 * sides[i] ** 2 for i in range(4))
    assert dcgan.info.flops == 2 * macs


def test_bench_cli_writes_json_and_rejects_bad_sizes(cgan_path, tmp_path):
    out = tmp_path / "b.json"
    run = subprocess.run([sys.executable, "-m", "ganrt.cli", "bench", str(cgan_path), "--batch-sizes", "1,4", "--rounds", "1",
                          "--seconds", "0.01", "--threads", "1", "--json", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    assert [r["batch_size"] for r in data["records"]] == [1, 4]
    assert {"model", "backend", "batch_size", "images_per_s", "gflops", "gemm_gflops"} <= set(data["records"][0])
    assert "images/s" in run.stdout and data["machine"]["cores"] >= 1
    for bad in ("0", "x,1"):
        run = subprocess.run([sys.executable, "-m", "ganrt.cli", "bench", str(cgan_path), "--batch-sizes", bad],
                             capture_output=True, text=True)
        assert run.returncode != 0 and "Traceback" not in run.stderr and "batch" in run.stderr


def test_torch_twin_computes_what_the_file_computes(dcgan_path, sr2_path):
    from ganrt.io.images import float_to_uint8
    from ganrt_export.twin import torch_twin

    model, info = torch_twin(dcgan_path)
    z = np.random.default_rng(1).standard_normal((5, info.nz)).astype(np.float32)
    import torch

    with torch.inference_mode():
        expected = float_to_uint8(model(torch.from_numpy(z)).numpy())
    got = create_session(dcgan_path).run(None, {"z": z})[0]  # uint8 NHWC
    assert np.abs(got.astype(int) - expected).max() <= 1 and np.mean(got != expected) < 1e-3
    model, _ = torch_twin(sr2_path)
    x = np.random.default_rng(2).random((1, 3, 9, 11), dtype=np.float32)
    with torch.inference_mode():
        np.testing.assert_allclose(model(torch.from_numpy(x)).numpy(), create_session(sr2_path).run(None, {"image": x})[0],
                                   atol=1e-5)


def test_compare_runner_end_to_end(dcgan_path):
    from benchmarks.compare import run

    records, gemm = run(models=[str(dcgan_path)], batch_sizes=[2], threads=1, device="cpu", rounds=1, min_seconds=0.01,
                        compile_=False, log=lambda m: None)
    assert {r.backend for r in records} == {"torch", "ort-naive", "ganrt", "ganrt-stream"} and gemm > 0
    assert all(r.images_per_s > 0 and r.gflops > 0 and r.batch_size == 2 for r in records)


def test_end_to_end_runner_keeps_files_until_it_ends(cgan_path, tmp_path):
    """generate vs sampling: the ratio fields, the file-creation probe, and nothing left behind."""
    import json
    from pathlib import Path

    from benchmarks.end_to_end import main

    assert main(["--model", str(cgan_path), "-n", "40", "--rounds", "2", "--import-runs", "0", "--batch-size", "8",
                 "--out", str(tmp_path), "--json", str(tmp_path / "e2e.json")]) == 0
    result = json.loads((tmp_path / "e2e.json").read_text())
    t = result["throughput"]
    assert t["png_images_per_s"] > 0 and abs(t["png_vs_sample"] - t["png_images_per_s"] / t["sample_images_per_s"]) < 2e-3
    assert t["create_us_before"] > 0 and t["create_us_after"] > 0
    assert Path(result["out"]).parent == tmp_path and sorted(p.name for p in tmp_path.iterdir()) == ["e2e.json"]


# -- the PNG encoder ------------------------------------------------------------------------------
def _decode(data: bytes) -> tuple[np.ndarray, dict]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im), dict(im.text)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), c=st.sampled_from([1, 3]), seed=st.integers(0, 2**32 - 1),
       smooth=st.booleans())
def test_png_round_trips_through_pillow(h, w, c, seed, smooth):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    if smooth:  # gradients exercise every row filter
        image = np.cumsum(image // 32, axis=0).astype(np.uint8)
    text = {"model": "x", "note": "café ☃ — not Latin-1"}
    pixels, got_text = _decode(encode_png(image, text=text))
    assert np.array_equal(pixels.reshape(h, w, c), image) and got_text == text


def _filter_rows_reference(image: np.ndarray) -> np.ndarray:
    """The PNG spec's filters and its adaptive heuristic, one byte at a time (slow; for the test only)."""
    h, w, c = image.shape
    x = image.reshape(h, w * c).astype(int)
    out = np.zeros((h, 1 + w * c), np.uint8)
    for r in range(h):
        candidates = []
        for kind in range(5):
            res = []
            for i in range(w * c):
                a = x[r, i - c] if i >= c else 0
                b = x[r - 1, i] if r else 0
                d = x[r - 1, i - c] if r and i >= c else 0
                p = a + b - d
                pa, pb, pd = abs(p - a), abs(p - b), abs(p - d)
                paeth = a if pa <= pb and pa <= pd else b if pb <= pd else d
                res.append((x[r, i] - (0, a, b, (a + b) // 2, paeth)[kind]) % 256)
            candidates.append((sum(min(v, 256 - v) for v in res), kind, res))
        cost, kind, res = min(candidates, key=lambda t: (t[0], t[1]))
        out[r] = [kind, *res]
    return out


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), c=st.sampled_from([1, 3]), seed=st.integers(0, 2**32 - 1),
       levels=st.sampled_from([2, 3, 256]))
def test_png_row_filters_follow_the_spec(h, w, c, seed, levels):
    """Each row gets the filter with the least sum of |residual as int8|, first on ties, byte for byte."""
    from ganrt.io.png import filter_rows

    images = (np.random.default_rng(seed).integers(0, levels, (3, h, w, c)) * (255 // (levels - 1))).astype(np.uint8)
    assert np.array_equal(filter_rows(images), np.stack([_filter_rows_reference(im) for im in images]))


def test_png_batch_equals_one_by_one_and_is_deterministic():
    for shape in ((5, 6, 7, 3), (12, 64, 64, 3)):  # the second is filtered in passes of 5 images
        images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        texts = [{"index": str(i)} for i in range(len(images))]
        batch = encode_pngs(images, texts=texts)
        assert batch == [encode_png(im, text=t) for im, t in zip(images, texts)] == encode_pngs(images, texts=texts)
    for bad in (np.zeros((2, 3, 3, 2), np.uint8), np.zeros((2, 3, 3, 1), np.float32), np.zeros((0, 3, 3, 1), np.uint8)):
        with pytest.raises(ValueError):
            encode_pngs(bad)


def test_batch_size_is_measured_for_long_runs_and_changes_no_image(cgan_path, monkeypatch):
    from ganrt.kinds import generator

    gen = ganrt.load(cgan_path, threads=1)
    assert gen.tuned_batch_size in generator.TUNE_CANDIDATES
    monkeypatch.setattr(generator, "TUNE_MIN_N", 300)
    gen.__dict__["tuned_batch_size"] = 48  # as if measured so: the stream must use it
    sizes = [len(b.images) for b in gen.iter_batches(300, seed=4)]
    assert sizes == [48] * 6 + [12]
    assert [len(b.images) for b in gen.iter_batches(299, seed=4)] == [64] * 4 + [43]  # short runs: the default
    gen.__dict__["tuned_batch_size"] = 512  # but at least TUNE_MIN_BATCHES batches a run
    assert [len(b.images) for b in gen.iter_batches(6400, seed=4)] == [
        6400 // generator.TUNE_MIN_BATCHES] * generator.TUNE_MIN_BATCHES
    gen.__dict__["tuned_batch_size"] = 48
    assert np.array_equal(gen.sample(300, seed=4), gen.sample(300, seed=4, batch_size=7))


def test_serve_load_runs_as_the_script_the_readme_names():
    """README and docs/serve.md run ``python benchmarks/serve_load.py``: as a script it must still import the
    benchmarks' shared helpers (a run once failed there, after its flags came from benchmarks.end_to_end)."""
    root = Path(__file__).resolve().parent.parent
    run = subprocess.run([sys.executable, "benchmarks/serve_load.py", "--help"], cwd=root, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert "--seconds" in run.stdout
