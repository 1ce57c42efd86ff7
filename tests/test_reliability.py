"""Reliability II (issue 15): one run per folder, replay as a verification, no path out of the folder the user
named, run files never followed through symbolic links; a chaos test of real runs killed at random."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ganrt
from ganrt.core.errors import OutputError
from ganrt.runs.lock import LOCK_FILE, FolderLock
from ganrt.runs.manifest import JOURNAL, MANIFEST, read_manifest

BIN = Path(sys.executable).parent
GANRT = str(BIN / "ganrt")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def wait_for_lines(path: Path, count: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") > count:
            return
        time.sleep(0.005)
    raise AssertionError(f"the run did not get {count} images in (exit code {proc.poll()})")


def gen_args(model: Path, out: Path, *more: str, n: int = 1000, seed: int = 1) -> list[str]:
    return [GANRT, "generate", "--model", str(model), "-n", str(n), "--seed", str(seed), "--batch-size", "2",
            "--out", str(out), "--no-progress", "--threads", "1", *more]


# --- one lock per output folder ---------------------------------------------------------------------------------

def test_a_second_real_run_into_a_busy_folder_is_refused_naming_the_first(cgan_path, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(gen_args(cgan_path, out, n=10**6, seed=1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_lines(out / JOURNAL, 5, first)
        for extra in ((), ("--overwrite",), ("--resume",)):
            second = subprocess.run(gen_args(cgan_path, out, *extra, seed=2), capture_output=True, text=True, timeout=120)
            err = second.stderr.strip()
            assert second.returncode == 1 and len(err.splitlines()) == 1, (extra, second.stderr)
            assert f"another ganrt run (pid {first.pid}, started " in err and str(out) in err, err
            assert first.poll() is None  # the first run was not disturbed
        assert read_manifest(out / JOURNAL, repair=True).header.seed == 1
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    # the kernel dropped the dead run's lock: nothing stale blocks the folder
    done = subprocess.run(gen_args(cgan_path, out, "--overwrite", n=20, seed=1), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (out / LOCK_FILE).read_bytes() == b""  # emptied at the end: the folder's bytes do not name a process
    assert {e["file"] for e in read_manifest(out / MANIFEST).entries} == {p.name for p in out.glob("*.png")}


def test_the_lock_is_per_folder_and_covers_overwrite_in_one_process(cgan, tmp_path):
    ganrt.generate_run(cgan, tmp_path / "a", n=3, seed=1)
    with FolderLock(tmp_path / "a"):
        with pytest.raises(OutputError, match=r"another ganrt run \(pid \d+, started .*\) is using"):
            ganrt.generate_run(cgan, tmp_path / "a", n=3, seed=2, overwrite=True)
        ganrt.generate_run(cgan, tmp_path / "b", n=3, seed=2)  # another folder is free
    assert read_manifest(tmp_path / "a" / MANIFEST).header.seed == 1 and len(list((tmp_path / "a").glob("*.png"))) == 3
    ganrt.generate_run(cgan, tmp_path / "a", n=3, seed=2, overwrite=True)  # free again once released
    assert read_manifest(tmp_path / "a" / MANIFEST).header.seed == 2


def test_a_symlinked_lock_file_is_refused(cgan, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_FILE).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="symbolic link"):
        ganrt.generate_run(cgan, tmp_path / "run", n=2)
    assert not (tmp_path / "elsewhere").exists()


# --- run files are never followed through symbolic links -----------------------------------------------------------

@pytest.mark.parametrize("name", [MANIFEST, JOURNAL])
def test_resume_refuses_a_symlinked_manifest_or_journal_and_leaves_its_target_alone(cgan, tmp_path, name):
    run = ganrt.generate_run(cgan, tmp_path / "run", n=6, seed=3).folder
    target = tmp_path / "outside.jsonl"
    (run / MANIFEST).rename(target)
    before = target.read_bytes()
    (run / name).symlink_to(target)
    (run / "000004.png").unlink()
    with pytest.raises(ganrt.ManifestError, match="symbolic link"):
        ganrt.generate_run(cgan, run, n=6, seed=3, resume=True)
    assert target.read_bytes() == before
    out = subprocess.run(gen_args(cgan.path, run, "--resume", n=6, seed=3), capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "symbolic link" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert target.read_bytes() == before


def test_a_symlinked_image_is_not_trusted_by_resume_but_made_again(cgan, tmp_path):
    ref = ganrt.generate_run(cgan, tmp_path / "ref", n=5, seed=3).folder
    run = ganrt.generate_run(cgan, tmp_path / "run", n=5, seed=3).folder
    outside = tmp_path / "outside.png"
    (run / "000002.png").rename(outside)  # the same bytes, but outside the folder
    (run / "000002.png").symlink_to(outside)
    res = ganrt.generate_run(cgan, run, n=5, seed=3, resume=True)
    assert res.reused == 2 and res.generated == 3  # the link is where the checked prefix ends
    assert not (run / "000002.png").is_symlink() and snapshot(run) == snapshot(ref)
    assert outside.read_bytes() == (ref / "000002.png").read_bytes()


# --- an error mid-run says how to go on --------------------------------------------------------------------------

def test_an_inference_error_mid_run_says_how_to_continue(tmp_path):
    pytest.importorskip("onnx")
    import numpy as np
    from onnx import numpy_helper
    from test_hostile import info, model_file

    model = model_file(tmp_path / "batch2.onnx", meta=info())
    import onnx

    m = onnx.load(model)  # a graph that only runs batches of exactly 2: -n 5 --batch-size 2 fails on its last batch
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.array([2, 1, 2, 2], np.int64), "shape"))
    onnx.save(m, model)
    args = [GANRT, "generate", "--model", str(model), "-n", "5", "--batch-size", "2", "--out", str(tmp_path / "o"),
            "--no-progress"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    err = out.stderr.strip().splitlines()[-1]  # onnxruntime logs its own line first
    assert out.returncode == 1 and err.startswith("error: ") and "onnxruntime failed" in err, out.stderr
    assert f"recorded in {tmp_path / 'o' / JOURNAL}" in err and "--resume continues the run" in err
    assert len(read_manifest(tmp_path / "o" / JOURNAL, repair=True).entries) <= 4  # lanes sample ahead of the writers
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1
    assert "holds an interrupted run" in again.stderr and "--resume continues it" in again.stderr
