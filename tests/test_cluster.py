"""Sharded generation on a real local Ray cluster: byte-identical to one process, through killed workers and failures."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ganrt
from ganrt.core.errors import ClusterError, MissingDependencyError, ParameterError
from ganrt.runs.cluster import ClusterConfig, generate_on_ray
from ganrt.runs.manifest import JOURNAL, MANIFEST, read_manifest
from ganrt.runs.writer import verified_prefix

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def ray_address():
    """A real local Ray instance: 2 CPUs, so a pool of 2 one-CPU workers; yields its address for subprocesses."""
    ray = pytest.importorskip("ray", reason="the cluster tests need the 'ray' extra")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 << 20, logging_level=logging.ERROR,
             log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def cgan():
    return ganrt.load("fashion-cgan", threads=1)


def same_folder(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


LABELS = np.resize(np.array([3, 1, 4, 1, 5, 9, 2, 6]), 300)


def test_a_png_run_on_ray_is_byte_identical_to_one_process(ray_address, cgan, tmp_path):
    args = dict(n=300, seed=11, labels=LABELS, truncation=0.7, start=5, batch_size=16)
    ganrt.generate_run(cgan, tmp_path / "one", **args)
    seen = []
    res = generate_on_ray(cgan, tmp_path / "ray", **args, cluster=ClusterConfig(task_images=40), on_progress=seen.append)
    assert (res.workers, res.failures, res.generated, res.reused) == (2, 0, 300, 0)
    done = [p.done for p in seen]
    assert done[0] == 0 and done[-1] == 300 and done == sorted(done) and len(set(done)) > 2  # counts up, cluster-wide
    assert {p.total for p in seen} == {300} and all(len(p.worker_pids) == 2 for p in seen)
    assert res.manifest == tmp_path / "ray" / MANIFEST
    same_folder(tmp_path / "one", tmp_path / "ray")


def test_an_npz_run_on_ray_is_byte_identical_to_one_process(ray_address, tmp_path):
    dcgan = ganrt.load("fashion-dcgan", threads=1)  # unconditional, sphere prior
    args = dict(n=250, seed=2, fmt="npz", shard_size=60)
    ganrt.generate_run(dcgan, tmp_path / "one", **args)
    generate_on_ray(dcgan, tmp_path / "ray", **args)  # 5 shard files: 5 tasks over the default pool
    same_folder(tmp_path / "one", tmp_path / "ray")


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(ray_address, cgan, tmp_path):
    ganrt.generate_run(cgan, tmp_path / "one", n=600, seed=4)
    killed = []

    def kill_one(p):
        if p.done >= 30 and not killed:  # the first shard is in: the others are running or queued
            killed.append(p.worker_pids[0])
            os.kill(p.worker_pids[0], signal.SIGKILL)

    res = generate_on_ray(cgan, tmp_path / "ray", n=600, seed=4, cluster=ClusterConfig(task_images=30), on_progress=kill_one)
    assert killed and res.failures >= 1  # the kill hit shards, which ran again on a new worker
    same_folder(tmp_path / "one", tmp_path / "ray")  # one file per image, no temporary left behind
    entries = read_manifest(res.manifest).entries
    assert [e["index"] for e in entries] == list(range(600))


def test_a_shard_that_keeps_failing_stops_the_job_and_resume_skips_the_finished_shards(ray_address, cgan, tmp_path):
    ganrt.generate_run(cgan, tmp_path / "one", n=400, seed=8)
    out = tmp_path / "ray"
    config = ClusterConfig(task_images=40, max_attempts=2)

    def block(p):  # a folder where image 130's file must go: shard 3 (images 120..159) cannot be written
        (out / "000130.png").mkdir(exist_ok=True)

    with pytest.raises(ClusterError, match=r"shard 3 \(images 120\.\.159\) failed 2 times, last: cannot write .*000130\.png"):
        generate_on_ray(cgan, out, n=400, seed=8, cluster=config, on_progress=block)
    assert not (out / MANIFEST).exists()
    journal = read_manifest(out / JOURNAL)
    kept, _ = verified_prefix(out, journal)
    assert kept == len(journal.entries) == 120  # shards 0..2 recorded, every file as its manifest line says
    mtimes = {f"{i:06d}.png": (out / f"{i:06d}.png").stat().st_mtime_ns for i in range(120)}

    (out / "000130.png").rmdir()
    res = generate_on_ray(cgan, out, n=400, seed=8, resume=True, cluster=config)
    assert (res.reused, res.generated) == (120, 280)
    assert all((out / name).stat().st_mtime_ns == t for name, t in mtimes.items())  # finished shards not rewritten
    same_folder(tmp_path / "one", out)


def test_the_cli_joins_a_running_cluster_and_writes_the_same_folder(ray_address, cgan, tmp_path):
    ganrt.generate_run(cgan, tmp_path / "one", n=200, seed=1, labels="Sneaker")
    cmd = [str(BIN / "ganrt"), "generate", "-n", "200", "--seed", "1", "--label", "Sneaker", "--out", str(tmp_path / "ray"),
           "--ray", ray_address, "--ray-workers", "2", "--progress"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("generating")  # the bar (click draws only its label when not on a terminal)
    same_folder(tmp_path / "one", tmp_path / "ray")


def test_an_unreachable_address_is_one_line_within_the_timeout(tmp_path):
    t0 = time.monotonic()
    out = subprocess.run([str(BIN / "ganrt"), "generate", "-n", "4", "--out", str(tmp_path / "o"), "--ray", "127.0.0.1:9"],
                         capture_output=True, text=True, timeout=60)
    if "needs Ray" in out.stderr:
        pytest.skip("the cluster tests need the 'ray' extra")
    assert out.returncode == 1 and time.monotonic() - t0 < 20
    assert out.stderr.strip().splitlines() == [
        "error: cannot reach a Ray cluster at 127.0.0.1:9 within 10 s (Connection refused); "
        "start one with `ray start --head`, or give --ray without an address for a local one"]
    assert not (tmp_path / "o").exists()  # nothing touched


def test_bad_settings_fail_before_ray_is_needed(cgan, tmp_path, monkeypatch):
    with pytest.raises(ParameterError, match="workers must be an integer >= 1"):
        generate_on_ray(cgan, tmp_path, n=4, cluster=ClusterConfig(workers=0))
    with pytest.raises(ParameterError, match="--resume .* or --overwrite"):
        generate_on_ray(cgan, tmp_path, n=4, resume=True, overwrite=True)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'ganrt\[ray\]'"):
        generate_on_ray(cgan, tmp_path, n=4)
    assert list(tmp_path.iterdir()) == []


def test_import_ganrt_does_not_import_ray():
    code = "import sys, ganrt, ganrt.runs.cluster, ganrt.cli; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_pool_the_cluster_cannot_hold_or_a_model_a_worker_cannot_load_fails_before_the_folder_is_touched(ray_address, tmp_path):
    gen = ganrt.load("fashion-cgan", threads=1)
    with pytest.raises(ClusterError, match="3 workers need 3 CPUs; the Ray cluster offers 2 CPUs and 0 GPUs: ask for at most 2"):
        generate_on_ray(gen, tmp_path / "a", n=400, cluster=ClusterConfig(workers=3))
    with pytest.raises(ClusterError, match="the Ray cluster offers no GPU"):
        generate_on_ray(gen, tmp_path / "a", n=400, cluster=ClusterConfig(device="cuda"))
    gen.__dict__["sha256"] = "0" * 64  # the driver's idea of the file differs from the bytes the workers get
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match="the copy of fashion-cgan on this worker does not hash as the driver's file"):
        generate_on_ray(gen, tmp_path / "a", n=400)
    assert time.monotonic() - t0 < 30 and not (tmp_path / "a").exists()


def test_upscaled_runs_ship_the_upscaler_to_the_workers(ray_address, cgan, tmp_path):
    up = ganrt.load("sr-x2", threads=1)
    ganrt.generate_run(cgan, tmp_path / "one", n=40, seed=6, upscaler=up)
    generate_on_ray(cgan, tmp_path / "ray", n=40, seed=6, upscaler=up, cluster=ClusterConfig(task_images=10))
    same_folder(tmp_path / "one", tmp_path / "ray")
    assert read_manifest(tmp_path / "ray" / MANIFEST).header.upscaler == "sr-x2"
