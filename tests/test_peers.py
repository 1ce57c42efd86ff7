"""benchmarks.compare's peers: OpenVINO on the same file ganrt runs (skipped without the 'bench' extra)."""

import numpy as np
import pytest

import ganrt
from ganrt.core import latent


def test_openvino_runs_the_same_file_to_the_same_images(cgan_path):
    pytest.importorskip("openvino", reason="the 'bench' extra (pip install 'ganrt[bench]')")
    from benchmarks.compare import openvino_models

    gen = ganrt.load(cgan_path, threads=1)
    z = latent.sample_latents(0, range(5), gen.nz)
    labels = np.arange(5, dtype=np.int64) % gen.num_classes
    ours = gen.render(z, labels)
    compiled_models = openvino_models(cgan_path, 1)
    assert {"latency", "throughput"} <= set(compiled_models)
    for hint, compiled in compiled_models.items():
        theirs = compiled({"z": z, "label": labels})[compiled.outputs[0]]
        assert theirs.dtype == np.uint8 and theirs.shape == ours.shape, hint
        if hint in ("latency", "throughput"):  # float32 like ganrt's: only another runtime's float rounding
            assert np.abs(theirs.astype(int) - ours.astype(int)).max() <= 1, hint
        else:  # the CPU's own lower precision (bf16 on AMX): the images, roughly
            assert hint.startswith("latency-") and np.abs(theirs.astype(int) - ours.astype(int)).mean() < 8, hint


def test_cpu_flags_name_vector_features_only():
    pytest.importorskip("torch", reason="benchmarks.compare runs torch beside the runtimes (the torch side's install)")
    from benchmarks.compare import cpu_flags

    flags = cpu_flags().split()
    assert all(f == "avx2" or f.startswith(("avx512", "avx_vnni", "amx")) for f in flags)
