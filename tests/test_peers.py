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
    for hint, compiled in openvino_models(cgan_path, 1).items():
        theirs = compiled({"z": z, "label": labels})[compiled.outputs[0]]
        assert theirs.dtype == np.uint8 and theirs.shape == ours.shape, hint
        assert np.abs(theirs.astype(int) - ours.astype(int)).max() <= 1, hint  # another runtime's float rounding


def test_cpu_flags_name_vector_features_only():
    pytest.importorskip("torch", reason="benchmarks.compare runs torch beside the runtimes (the torch side's install)")
    from benchmarks.compare import cpu_flags

    flags = cpu_flags().split()
    assert all(f == "avx2" or f.startswith(("avx512", "avx_vnni", "amx")) for f in flags)
