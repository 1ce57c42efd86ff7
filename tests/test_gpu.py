"""GPU paths: they run where onnxruntime-gpu finds a CUDA device and skip cleanly everywhere else."""

import numpy as np
import pytest

import ganrt
from ganrt.errors import DeviceError
from ganrt.session import available_providers

HAS_CUDA = "CUDAExecutionProvider" in available_providers()
cuda_only = pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA device")


@pytest.mark.skipif(HAS_CUDA, reason="checks the refusal on a CPU-only onnxruntime")
@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_asking_for_a_gpu_without_one_is_one_clear_error(cgan_path, device):
    with pytest.raises(DeviceError, match=f"device '{device}' needs onnxruntime's") as info:
        ganrt.load(cgan_path, device=device)
    assert "\n" not in str(info.value) and "--device cpu" in str(info.value)


def test_sessions_without_spinning_give_the_same_images(cgan_path):
    a = ganrt.load(cgan_path, threads=2).sample(20, seed=3)
    b = ganrt.load(cgan_path, threads=2, spin=False).sample(20, seed=3)
    assert np.array_equal(a, b)


@cuda_only
def test_cuda_samples_match_the_cpu_within_one_level(cgan_path):
    cpu = ganrt.load(cgan_path, device="cpu").sample(64, seed=1)
    gpu_model = ganrt.load(cgan_path, device="cuda")
    assert gpu_model.provider == "CUDAExecutionProvider"
    for batch in (1, 64):  # cuDNN's search runs once per shape; results must not depend on it
        gpu = gpu_model.sample(64, seed=1, batch_size=batch)
        assert np.abs(gpu.astype(int) - cpu).max() <= 1


@cuda_only
def test_cuda_upscaler_matches_the_cpu(sr2_path):
    image = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    cpu = ganrt.load(sr2_path, device="cpu").upscale(image)
    gpu = ganrt.load(sr2_path, device="cuda").upscale(image)
    assert np.abs(gpu.astype(int) - cpu).max() <= 1
