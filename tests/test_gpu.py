"""GPU paths: they run where onnxruntime-gpu finds a CUDA device and skip cleanly everywhere else."""

import numpy as np
import pytest

import ganrt
from ganrt.core.errors import DeviceError
from ganrt.core.session import available_providers

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


def _graph_generator(path, device: str) -> ganrt.Generator:
    """A generator whose calls all go through ``GraphRunner`` (on ``cuda``: captured CUDA graphs)."""
    if device == "cuda":
        return ganrt.load(path, device="cuda", cuda_graph=True)
    from ganrt.core.session import create_session, read_info

    session = create_session(path, device="cpu", source=str(path))
    return ganrt.Generator(session, read_info(session, source=str(path)), source=str(path), path=path, graphs="cpu")


@pytest.mark.parametrize("device", [pytest.param("cpu"), pytest.param("cuda", marks=cuda_only)])
def test_graph_runner_gives_the_plain_images_per_batch_size_and_thread(cgan_path, device):
    """Fixed buffers per batch size: replays with new latents give the images of a plain session, batch
    sizes get their own slots, threads calling at once do not see each other's buffers."""
    from concurrent.futures import ThreadPoolExecutor

    plain = ganrt.load(cgan_path, device=device)
    graphs = _graph_generator(cgan_path, device)
    tolerance = 0 if device == "cpu" else 1  # cuDNN may pick other algorithms for a captured graph
    for seed in (1, 2):  # the second seed replays the slots captured with the first
        for batch in (1, 7, 64):
            got = graphs.sample(64, seed=seed, batch_size=batch)
            assert np.abs(got.astype(int) - plain.sample(64, seed=seed, batch_size=batch)).max() <= tolerance
    expected = {s: plain.sample(32, seed=s, batch_size=8) for s in range(6)}
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda s: graphs.sample(32, seed=s, batch_size=8), range(6)))
    assert all(np.abs(r.astype(int) - expected[s]).max() <= tolerance for s, r in enumerate(results))
    # batch sizes beyond the slot limit run uncaptured, with the same images
    graphs._graphs.MAX_SLOTS = len(graphs._graphs._slots)
    assert np.abs(graphs.sample(10, seed=1, batch_size=5).astype(int) - plain.sample(10, seed=1)).max() <= tolerance
    assert len(graphs._graphs._slots) == graphs._graphs.MAX_SLOTS
    # optional inputs (class mixing) run outside the captured graphs
    from ganrt.evaluate.explore import class_interpolation

    assert np.abs(class_interpolation(graphs, 1, 3, 4).astype(int) - class_interpolation(plain, 1, 3, 4)).max() <= tolerance


def test_cuda_graphs_are_refused_off_cuda_and_for_other_kinds(cgan_path, sr2_path):
    from ganrt.core.errors import ParameterError

    with pytest.raises(ParameterError, match="CUDA graphs need device 'cuda', got 'cpu'"):
        ganrt.load(cgan_path, device="cpu", cuda_graph=True)
    if HAS_CUDA:
        with pytest.raises(ParameterError, match="CUDA graphs are for generators"):
            ganrt.load(sr2_path, device="cuda", cuda_graph=True)
