import subprocess
import sys
import threading

import numpy as np
import pytest

import ganrt
from ganrt.core.errors import DeviceError, LabelError, ModelKindError, ParameterError


def test_sample_shape_dtype_and_settings_from_the_file(cgan):
    x = cgan.sample(5, seed=1)
    assert x.shape == (5, 32, 32, 1) and x.dtype == np.uint8
    assert cgan.num_classes == 10 and cgan.class_names == tuple(str(i) for i in range(10))
    assert cgan.image_shape == (32, 32, 1) and cgan.nz == 100
    assert cgan.metadata["training_data"].startswith("scikit-learn digits")
    assert x.std() > 0  # a trained generator, not a constant


@pytest.mark.parametrize("batch_size", [1, 3, 8, 64])
def test_images_do_not_depend_on_batch_size(cgan, batch_size):
    ref = cgan.sample(20, seed=5, truncation=1.5)
    np.testing.assert_array_equal(cgan.sample(20, seed=5, truncation=1.5, batch_size=batch_size), ref)


def test_images_do_not_depend_on_how_a_run_is_split(dcgan):
    whole = dcgan.sample(30, seed=9)
    parts = [dcgan.sample(7, seed=9, start=0), dcgan.sample(13, seed=9, start=7), dcgan.sample(10, seed=9, start=20)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_images_do_not_depend_on_threads(cgan_path):
    one = ganrt.load(cgan_path, threads=1).sample(16, seed=2)
    two = ganrt.load(cgan_path, threads=2).sample(16, seed=2)
    np.testing.assert_array_equal(one, two)


def test_labels_default_cycles_classes_and_accepts_names_and_lists(cgan):
    batches = list(cgan.iter_batches(12, batch_size=5))
    np.testing.assert_array_equal(np.concatenate([b.labels for b in batches]), np.arange(12) % 10)
    np.testing.assert_array_equal(cgan.sample(3, labels="7"), cgan.sample(3, labels=7))
    per_image = cgan.sample(3, labels=[7, 7, 7])
    np.testing.assert_array_equal(per_image, cgan.sample(3, labels=7))
    # an image with the same (seed, index, label) is the same image, whatever else is asked
    np.testing.assert_array_equal(cgan.sample(4, labels=[1, 2, 3, 4])[2], cgan.sample(3, labels=3)[2])


@pytest.mark.parametrize("labels, match", [(12, "out of range"), (-1, "out of range"), ("Shoe", "unknown class"),
                                            ([1, 2], "2 labels for 3 images"), ([0, 1, 10], "out of range")])
def test_bad_labels_are_refused(cgan, labels, match):
    with pytest.raises(LabelError, match=match):
        cgan.sample(3, labels=labels)


def test_unconditional_model_refuses_labels(dcgan):
    assert dcgan.num_classes == 0 and dcgan.prior == "sphere"
    with pytest.raises(LabelError, match="unconditional"):
        dcgan.sample(2, labels=1)


@pytest.mark.parametrize("kw", [dict(n=0), dict(n=-3), dict(n=2, batch_size=0), dict(n=2, batch_size=-1),
                                dict(n=2.5), dict(n=2, start=-1), dict(n=2, truncation=0)])
def test_bad_counts_are_refused_before_any_work(cgan, kw):
    n = kw.pop("n")
    with pytest.raises(ParameterError):
        cgan.iter_batches(n, **kw)


def test_streaming_yields_bounded_batches_in_order(cgan):
    starts, sizes = [], []
    for b in cgan.iter_batches(50, batch_size=16, start=100):
        starts.append(b.start)
        sizes.append(len(b.images))
        assert b.images.shape[1:] == (32, 32, 1)
    assert starts == [100, 116, 132, 148] and sizes == [16, 16, 16, 2]


def test_one_model_serves_many_threads(cgan):
    expected = {s: cgan.sample(12, seed=s, batch_size=5) for s in range(8)}
    results, errors = {}, []

    def work(s):
        try:
            results[s] = cgan.sample(12, seed=s, batch_size=5)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for s in range(8):
        np.testing.assert_array_equal(results[s], expected[s])


def test_interpolation_and_render(cgan):
    walk = cgan.interpolate(0, 1, 5, seed=3, label=2)
    assert walk.shape == (5, 32, 32, 1)
    np.testing.assert_array_equal(walk[0], cgan.sample(1, seed=3, labels=2)[0])
    np.testing.assert_array_equal(walk[-1], cgan.sample(2, seed=3, labels=2)[1])
    with pytest.raises(ParameterError, match="shape"):
        cgan.render(np.zeros((2, 5), np.float32))


def test_cuda_without_provider_raises_and_lists_providers(cgan_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceError, match="CPUExecutionProvider"):
        ganrt.load(cgan_path, device="cuda")
    assert ganrt.load(cgan_path, device="auto").providers == ["CPUExecutionProvider"]


def test_kind_is_checked(classifier_path):
    with pytest.raises(ModelKindError, match="classifier model, not a generator"):
        ganrt.load(classifier_path, kind="generator")


def test_classifier_runs_on_generated_images(cgan, classifier_path):
    clf = ganrt.load(classifier_path)
    labels, probs = clf.predict(cgan.sample(10))
    assert labels.shape == (10,) and probs.shape == (10, 10)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    _, feats = clf.run(cgan.sample(3))
    assert feats.shape == (3, 16)
    with pytest.raises(ParameterError, match=r"\(N, 32, 32, 1\)"):
        clf.predict(np.zeros((2, 28, 28, 1), np.uint8))


def test_runtime_never_imports_torch(cgan_path):
    code = (
        "import sys, ganrt; g = ganrt.load(sys.argv[1]); x = g.sample(4);"
        "assert x.shape == (4, 32, 32, 1);"
        "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code, str(cgan_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_vector_arithmetic_of_image_groups(dcgan):
    from ganrt.core import latent

    out = dcgan.arithmetic([0, 1, 2], [3, 4, 5], [6, 7, 8], seed=1)
    z = latent.sample_latents(1, np.arange(9), dcgan.nz, prior="sphere")
    expected = latent.project(z[0:3].mean(0) - z[3:6].mean(0) + z[6:9].mean(0), "sphere")
    np.testing.assert_array_equal(out, dcgan.render(expected[None])[0])
    with pytest.raises(ParameterError, match="group"):
        dcgan.arithmetic([], [1], [2])


def test_import_works_without_onnxruntime_and_says_which_extra(cgan_path):
    code = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "import ganrt\n"
        "try:\n    ganrt.load(sys.argv[1])\n"
        "except ganrt.MissingDependencyError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(cgan_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install 'ganrt[cpu]'" in out.stdout


def test_lanes_change_no_image(cgan_path, dcgan_path):
    """Lanes run a single batch of >= LANE_MIN images per lane as parts at once, and a stream as whole
    batches at once, yielded in order; images are byte-identical to one whole run, for batch sizes
    around the threshold, from many threads, and when the caller stops early."""
    from concurrent.futures import ThreadPoolExecutor

    from ganrt.kinds.generator import LANE_MIN

    for path in (cgan_path, dcgan_path):
        whole = ganrt.load(path, threads=2, lanes=1)
        lanes = ganrt.load(path, threads=2, lanes=3)
        assert whole.lanes == 1 and lanes.lanes == 3
        reference = whole.sample(100, seed=2, batch_size=100)
        for batch in (1, 3 * LANE_MIN - 1, 3 * LANE_MIN, 50):
            np.testing.assert_array_equal(lanes.sample(batch, seed=2, batch_size=batch), reference[:batch])  # one batch: split
            np.testing.assert_array_equal(lanes.sample(100, seed=2, batch_size=batch), reference)  # a stream: whole batches
        streamed = list(lanes.iter_batches(90, seed=2, batch_size=7, start=10, labels=None))
        assert [b.start for b in streamed] == list(range(10, 100, 7))
        np.testing.assert_array_equal(np.concatenate([b.images for b in streamed]), reference[10:])
        if whole.info.conditional:
            assert np.concatenate([b.labels for b in streamed]).tolist() == [i % whole.num_classes for i in range(10, 100)]
        for first in lanes.iter_batches(1000, seed=2, batch_size=10):
            break  # the batches made ahead are dropped; the generator stays usable
        np.testing.assert_array_equal(first.images, reference[:10])
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda s: lanes.sample(64, seed=s, batch_size=s + 8), range(8)))
        assert all(np.array_equal(g, whole.sample(64, seed=s)) for s, g in enumerate(got))


def test_lanes_default_to_one_per_thread_and_are_checked(cgan_path):
    from ganrt.core.errors import ParameterError

    assert ganrt.load(cgan_path, threads=2).lanes == 2
    assert ganrt.load(cgan_path, threads=1).lanes == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="lanes must be an integer >= 1"):
            ganrt.load(cgan_path, lanes=bad)


def test_close_releases_sessions_and_lane_threads_and_a_closed_model_refuses_to_run(cgan_path):
    import threading

    from ganrt.core.errors import InferenceError

    def lane_threads() -> int:
        return sum(t.name.startswith("ganrt-lane") for t in threading.enumerate())

    before = lane_threads()
    with ganrt.load(cgan_path, lanes=2) as gen:
        images = gen.sample(200, seed=1, batch_size=50)  # a stream, one batch per lane: starts both lane threads
        assert gen.lanes == 2 and lane_threads() == before + 2 and not gen.closed
    assert gen.closed and lane_threads() == before
    with pytest.raises(InferenceError, match="closed"):
        gen.sample(1)
    gen.close()  # idempotent
    with ganrt.load(cgan_path, lanes=1) as again:
        np.testing.assert_array_equal(again.sample(200, seed=1), images)
    up = ganrt.load("sr-x4")
    up.close()
    with pytest.raises(InferenceError, match="closed"):
        up.upscale(np.zeros((8, 8, 3), np.uint8))


def test_route_times_each_way_in_blocks_and_not_the_switch():
    """A way's first call after another way ran pays the switch (a sleeping pool wakes); timed interleaved, the
    threaded way looked slower than it is and lost. The route times rounds of short blocks, leaving out each
    block's first call."""
    from ganrt.kinds.lanes import Route

    steady = {"threads": 1.0, "lane": 2.0}
    route, last, ran = Route(lambda b: ("threads", "lane")), None, []
    trial_calls = 2 * Route.TRIALS * Route.BLOCK
    for _ in range(trial_calls + 5):
        way = route.pick(1)
        ran.append(way)
        route.record(1, way, steady[way] + (3.0 if way == "threads" and last == "lane" else 0.0))
        last = way
    assert route.chosen() == {1: "threads"}
    assert ran[:trial_calls] == (["threads"] * Route.BLOCK + ["lane"] * Route.BLOCK) * Route.TRIALS
    assert set(ran[trial_calls:]) == {"threads"}


@pytest.mark.parametrize(("lane_seconds", "chosen"), [(0.85, "threads"), (0.75, "lane")])
def test_route_leaves_the_first_way_only_for_a_clear_gain(lane_seconds, chosen):
    """Within ``MARGIN`` of the first way (threads) another way's lower median is noise of a few calls: the route
    keeps threads; a way faster by more than the margin is chosen."""
    from ganrt.kinds.lanes import Route

    assert Route.MARGIN == 0.2
    route = Route(lambda b: ("threads", "lane"))
    for _ in range(2 * Route.TRIALS * Route.BLOCK):
        way = route.pick(1)
        route.record(1, way, 1.0 if way == "threads" else lane_seconds)
    assert route.chosen() == {1: chosen}


def test_small_outputs_copied_from_a_plain_run_equal_bound_ones(monkeypatch):
    """Batches under ``BIND_MIN_BYTES`` run without IO binding (cheaper at batch 1): the same bytes either way."""
    from ganrt.core import run

    g = ganrt.load("fashion-cgan", lanes=1)
    small = g.sample(3, seed=4, batch_size=1)
    monkeypatch.setattr(run, "BIND_MIN_BYTES", 0)
    np.testing.assert_array_equal(small, g.sample(3, seed=4, batch_size=1))
