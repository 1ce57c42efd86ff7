"""Provenance (PNG text, manifest, npz), crash safety, resume and replay, on a tiny real model."""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import ganrt
from ganrt.core.errors import ManifestError, OutputError
from ganrt.io.files import TMP_FILE
from ganrt.runs.manifest import JOURNAL, MANIFEST, read_manifest
from ganrt.runs.replay import replay
from tests.signals import interruptible, wait_for_lines

BIN = Path(sys.executable).parent


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_every_png_carries_its_provenance_and_the_manifest_lists_it(cgan, cgan_path, tmp_path):
    res = ganrt.generate_run(cgan, tmp_path, n=12, seed=-7, labels=3, truncation=0.8, batch_size=5, start=100)
    assert res.generated == 12 and res.manifest == tmp_path / MANIFEST and not (tmp_path / JOURNAL).exists()
    sha = hashlib.sha256(cgan_path.read_bytes()).hexdigest()
    m = read_manifest(res.manifest)
    h = m.header
    assert (h.model_sha256, h.seed, h.n, h.start, h.labels, h.truncation) == (sha, -7, 12, 100, 3, 0.8)
    assert (h.ganrt, h.provider, h.precision, h.model) == (ganrt.__version__, "CPUExecutionProvider", "float32", str(cgan_path))
    assert [e["index"] for e in m.entries] == list(range(100, 112))
    expected = cgan.sample(12, seed=-7, labels=3, truncation=0.8, start=100)
    for e, image in zip(m.entries, expected):
        im = Image.open(tmp_path / e["file"])
        assert im.text == {"model": "tiny-cgan", "model_sha256": sha, "seed": "-7", "index": str(e["index"]), "label": "3",
                           "truncation": "0.8", "ganrt": ganrt.__version__, "provider": "CPUExecutionProvider",
                           "precision": "float32"}
        np.testing.assert_array_equal(np.asarray(im)[..., None], image)
        assert e["image_sha256"] == hashlib.sha256(image.tobytes()).hexdigest()
        assert e["file_sha256"] == hashlib.sha256((tmp_path / e["file"]).read_bytes()).hexdigest()


def test_npz_shards_carry_provenance_and_their_bytes_do_not_depend_on_time_or_batches(cgan, tmp_path):
    a = ganrt.generate_run(cgan, tmp_path / "a", n=23, seed=2, fmt="npz", shard_size=10, batch_size=4)
    time.sleep(1.1)  # np.savez would stamp a new time into every member
    ganrt.generate_run(cgan, tmp_path / "b", n=23, seed=2, fmt="npz", shard_size=10, batch_size=9)
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    with np.load(tmp_path / "a" / "shard-000002.npz", allow_pickle=False) as d:
        assert json.loads(str(d["provenance"]))["run"] == json.loads(a.manifest.read_text().splitlines()[0])["run"]
        np.testing.assert_array_equal(d["indices"], np.arange(20, 23))
        np.testing.assert_array_equal(d["images"], cgan.sample(3, seed=2, start=20))
    assert replay(a.manifest).ok


def damaged_copy(src: Path, dst: Path, cut_after: int) -> Path:
    """An interrupted run: the manifest back to a journal whose line cut_after+2 is cut in half."""
    shutil.copytree(src, dst)
    lines = (dst / MANIFEST).read_bytes().splitlines(keepends=True)
    (dst / MANIFEST).unlink()
    (dst / JOURNAL).write_bytes(b"".join(lines[: cut_after + 1]) + lines[cut_after + 1][:37])
    (dst / ".000017.png.999.0123abcd.tmp").write_bytes(b"half a png")  # left by a SIGKILL
    return dst


def test_resume_keeps_checked_images_remakes_the_rest_and_ends_byte_identical(cgan, tmp_path):
    ref = ganrt.generate_run(cgan, tmp_path / "ref", n=20, seed=4, labels=[1, 2, 3, 4] * 5, batch_size=3).folder
    run = damaged_copy(ref, tmp_path / "run", cut_after=12)
    (run / "000015.png").unlink()  # a file renamed in, its line never written: made again
    res = ganrt.generate_run(cgan, run, n=20, seed=4, labels=[1, 2, 3, 4] * 5, batch_size=7, resume=True)
    assert (res.reused, res.generated) == (12, 8)
    assert snapshot(run) == snapshot(ref)

    # a file damaged after its line was written: the prefix stops before it
    (run / "000005.png").write_bytes(b"\x89PNG garbage")
    res = ganrt.generate_run(cgan, run, n=20, seed=4, labels=[1, 2, 3, 4] * 5, resume=True)
    assert (res.reused, res.generated) == (5, 15)
    assert snapshot(run) == snapshot(ref)

    res = ganrt.generate_run(cgan, run, n=20, seed=4, labels=[1, 2, 3, 4] * 5, resume=True)  # complete: nothing to do
    assert (res.reused, res.generated) == (20, 0) and snapshot(run) == snapshot(ref)


def test_resume_of_npz_restarts_at_a_shard_boundary(dcgan, tmp_path):
    ref = ganrt.generate_run(dcgan, tmp_path / "ref", n=25, seed=1, fmt="npz", shard_size=10, batch_size=4).folder
    run = damaged_copy(ref, tmp_path / "run", cut_after=14)  # journal cut inside shard 1's lines
    res = ganrt.generate_run(dcgan, run, n=25, seed=1, fmt="npz", shard_size=10, batch_size=6, resume=True)
    assert (res.reused, res.generated) == (10, 15)
    assert snapshot(run) == snapshot(ref)


def test_resume_in_an_empty_folder_starts_the_run(cgan, tmp_path):
    res = ganrt.generate_run(cgan, tmp_path / "new", n=4, resume=True)
    assert (res.reused, res.generated) == (0, 4) and replay(res.manifest).ok


@pytest.mark.parametrize("change, match", [(dict(seed=5), "seed 4 vs 5"), (dict(truncation=0.5), "truncation"),
                                            (dict(n=21), "n 20 vs 21"), (dict(fmt="npz"), "format")])
def test_resume_refuses_other_settings(cgan, tmp_path, change, match):
    ref = ganrt.generate_run(cgan, tmp_path / "ref", n=20, seed=4).folder
    run = damaged_copy(ref, tmp_path / "run", cut_after=5)
    before = snapshot(run)
    kw = dict(n=20, seed=4) | change
    with pytest.raises(ManifestError, match=match):
        ganrt.generate_run(cgan, run, resume=True, **kw)
    assert snapshot(run) == before


def test_resume_refuses_another_model_and_a_folder_without_manifest(cgan, dcgan, tmp_path):
    ganrt.generate_run(cgan, tmp_path / "a", n=3)
    with pytest.raises(ManifestError, match="model_sha256"):
        ganrt.generate_run(dcgan, tmp_path / "a", n=3, resume=True)
    (tmp_path / "a" / MANIFEST).unlink()
    with pytest.raises(ManifestError, match="no manifest.jsonl"):
        ganrt.generate_run(cgan, tmp_path / "a", n=3, resume=True)
    with pytest.raises(OutputError, match="--resume to continue it"):
        ganrt.generate_run(cgan, tmp_path / "a", n=3)


def test_replay_reports_files_that_changed(cgan, tmp_path):
    res = ganrt.generate_run(cgan, tmp_path, n=6, seed=3)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "000001.png")
    (tmp_path / "000002.png").unlink()
    (tmp_path / "000003.png").write_bytes(os.urandom(100))
    report = replay(tmp_path)
    assert [im.on_disk.split(":")[0] for im in report.images] == ["match", "differs", "missing", "unreadable", "match", "match"]
    assert all(im.reproduced for im in report.images) and not report.ok
    out = subprocess.run([str(BIN / "ganrt"), "replay", str(res.manifest)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "6 images: 6 reproduced bit-exactly, 3 files on disk match" in out.stdout
    out = subprocess.run([str(BIN / "ganrt"), "replay", str(res.manifest), "--index", "4"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "000004.png  reproduced  file: match" in out.stdout
    out = subprocess.run([str(BIN / "ganrt"), "replay", str(res.manifest), "--index", "9"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.strip() == f"error: image 9 is not in {res.manifest} (it records images 0..5)"


def test_a_lone_png_replays_from_its_text_chunks(cgan, cgan_path, tmp_path):
    ganrt.generate_run(cgan, tmp_path / "run", n=5, seed=9, labels=[4, 1, 0, 2, 8], truncation=1.5)
    lone = tmp_path / "lone.png"
    shutil.copy(tmp_path / "run" / "000003.png", lone)
    report = replay(lone, model=cgan_path)
    assert report.ok and report.images[0].index == 3
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(lone, pnginfo=None)
    with pytest.raises(ManifestError, match="do not record a ganrt image"):
        replay(lone, model=cgan_path)
    out = subprocess.run([str(BIN / "ganrt"), "replay", str(tmp_path / "run" / "000004.png"), "--model", str(cgan_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "1 images: 1 reproduced bit-exactly, 1 files on disk match" in out.stdout


def test_resume_goes_without_overwrite(cgan_path, tmp_path):
    out = subprocess.run([str(BIN / "ganrt"), "generate", "--model", str(cgan_path), "-n", "2", "--out", str(tmp_path / "o"),
                          "--resume", "--overwrite"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--resume" in out.stderr and not (tmp_path / "o").exists()


def test_replay_needs_the_recorded_model(cgan, dcgan_path, tmp_path):
    res = ganrt.generate_run(cgan, tmp_path, n=2)
    with pytest.raises(ManifestError, match="sha256"):
        replay(res.manifest, model=dcgan_path)
    (tmp_path / "bad.jsonl").write_bytes(os.urandom(200))
    with pytest.raises(ManifestError, match="line 1"):
        replay(tmp_path / "bad.jsonl")


@pytest.mark.parametrize("field, value", [("seed", "abc"), ("n", 0), ("model_sha256", "../x"), ("format", "tar"),
                                          ("truncation", -1), ("shard_size", None), ("labels", [1, 2])])
def test_replay_refuses_a_manifest_header_with_bad_fields(cgan, tmp_path, field, value):
    res = ganrt.generate_run(cgan, tmp_path, n=2, fmt="npz", shard_size=2)
    lines = res.manifest.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["run"][field] = value
    res.manifest.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    with pytest.raises(ManifestError, match=field if field != "shard_size" else "no shard_size"):
        replay(res.manifest)
    with pytest.raises(ManifestError):
        ganrt.generate_run(cgan, tmp_path, n=2, fmt="npz", shard_size=2, resume=True)


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "rename"])
def test_atomic_write_creates_replaces_and_leaves_nothing_else(tmp_path, monkeypatch, unnamed):
    """Both ways atomic_write works: an unnamed file linked in (Linux), and a temporary name + rename."""
    import stat

    from ganrt.io import files

    if not unnamed:
        monkeypatch.setattr(files, "_O_TMPFILE", 0)
    elif not files._O_TMPFILE:
        pytest.skip("no O_TMPFILE here")
    else:  # a new file is linked in, never renamed
        monkeypatch.setattr(files.os, "replace", lambda *a: pytest.fail("renamed"))
    umask = os.umask(0o027)
    try:
        files.atomic_write(tmp_path / "a.png", b"first")
        monkeypatch.undo()  # (O_TMPFILE: an existing name is replaced through a temporary name)
        if not unnamed:
            monkeypatch.setattr(files, "_O_TMPFILE", 0)
        files.atomic_write(str(tmp_path / "a.png"), b"second")
    finally:
        os.umask(umask)
    assert os.listdir(tmp_path) == ["a.png"] and (tmp_path / "a.png").read_bytes() == b"second"
    assert stat.S_IMODE((tmp_path / "a.png").stat().st_mode) == 0o640
    with pytest.raises(OutputError, match="cannot write .*missing.*No such file"):
        files.atomic_write(tmp_path / "missing" / "b.png", b"x")
    pid = os.fork()  # a forked child (multiprocessing, Ray) links through its own /proc/self
    if pid == 0:
        try:
            files.atomic_write(tmp_path / "child.png", b"child")
        finally:
            os._exit(0 if (tmp_path / "child.png").exists() else 1)
    assert os.waitpid(pid, 0)[1] == 0 and (tmp_path / "child.png").read_bytes() == b"child"
    assert sorted(os.listdir(tmp_path)) == ["a.png", "child.png"]


def test_a_run_shortens_the_gil_switch_interval_and_restores_it(cgan, tmp_path):
    """Only when asked (``ganrt generate`` asks: the CLI owns its process); the library alone leaves it."""
    import threading

    from ganrt.runs import writer
    from ganrt.runs.png_files import PngFiles

    seen, before = [], sys.getswitchinterval()
    real = PngFiles.write

    def write_png(self, *args):
        seen.append(sys.getswitchinterval())
        return real(self, *args)

    PngFiles.write = write_png
    try:
        ganrt.generate_run(cgan, tmp_path / "plain", n=8, batch_size=4)
        assert seen == [before, before]
        seen.clear()
        runs = [threading.Thread(target=ganrt.generate_run, args=(cgan, tmp_path / str(i)),
                                 kwargs={"n": 40, "batch_size": 4, "switch_interval": writer.SWITCH_INTERVAL_S})
                for i in range(3)]
        for t in runs:
            t.start()
        for t in runs:
            t.join()
    finally:
        PngFiles.write = real
    assert len(seen) == 30 and set(seen) == {min(before, writer.SWITCH_INTERVAL_S)}
    assert sys.getswitchinterval() == before and all(replay(tmp_path / str(i)).ok for i in range(3))


def test_full_disk_gives_one_error_and_leaves_no_partial_file(cgan, tmp_path, monkeypatch):
    from ganrt.io import files

    real_write, calls = os.write, {"n": 0}

    def write(fd, data):  # atomic_write's os.write; the 6th file: header journal, then images 0..3, then image 4
        calls["n"] += 1
        if calls["n"] == 6:
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(files.os, "write", write)
    with pytest.raises(OutputError, match="No space left on device"):
        ganrt.generate_run(cgan, tmp_path, n=10, batch_size=1)
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != ".ganrt.lock")  # the folder's lock (runs/lock.py)
    # the 5th image file to be opened failed and left nothing; images are written a few batches ahead
    # on threads, so which index that was varies, but the journal (the record a resume trusts) is a
    # prefix 0..k-1 that stops before the failed image, and every file present is complete
    recorded = [e["index"] for e in read_manifest(tmp_path / JOURNAL, repair=True).entries]
    k = len(recorded)
    assert recorded == list(range(k)) and k <= 5
    assert JOURNAL in names and all(n.endswith(".png") or n == JOURNAL for n in names) and len(names) - 1 < 10
    for name in names[:-1]:
        with Image.open(tmp_path / name) as im:
            im.load()
    monkeypatch.undo()
    res = ganrt.generate_run(cgan, tmp_path, n=10, batch_size=1, resume=True)
    assert (res.reused, res.generated) == (k, 10 - k) and replay(tmp_path).ok


def test_a_really_full_disk(cgan, tmp_path):
    """A 128 KiB tmpfs fills up mid-run (room for more than the batches written ahead); after it grows, --resume
    finishes the run byte-identical (needs root)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        with pytest.raises(OutputError, match="No space left on device"):
            ganrt.generate_run(cgan, mnt / "run", n=300, seed=1, batch_size=8)
        files = sorted((mnt / "run").iterdir())
        assert not [p for p in files if TMP_FILE.match(p.name)]
        for p in files:
            if p.suffix == ".png":
                Image.open(p).load()  # every image under its final name is complete
        subprocess.run(["mount", "-o", "remount,size=16m", str(mnt)], check=True)
        res = ganrt.generate_run(cgan, mnt / "run", n=300, seed=1, batch_size=8, resume=True)
        assert res.reused > 0 and res.generated > 0
        ref = ganrt.generate_run(cgan, tmp_path / "ref", n=300, seed=1).folder
        assert snapshot(mnt / "run") == snapshot(ref)
    finally:
        subprocess.run(["umount", str(mnt)])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_kill_a_real_run_then_resume_it(cgan_path, tmp_path, sig):
    args = [str(BIN / "ganrt"), "generate", "--model", str(cgan_path), "-n", "1000", "--seed", "11", "--batch-size", "2",
            "--out", str(tmp_path / "run"), "--no-progress"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    wait_for_lines(tmp_path / "run" / JOURNAL, 20, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (-9 if sig == signal.SIGKILL else 130)
    if sig == signal.SIGINT:
        assert err.strip().startswith("interrupted") and len(err.strip().splitlines()) == 1
    run = tmp_path / "run"
    assert not (run / MANIFEST).exists()  # the run was cut short
    for p in run.glob("*.png"):
        Image.open(p).load()  # only complete images under final names
    if sig == signal.SIGINT:
        assert not [p for p in run.iterdir() if TMP_FILE.match(p.name)]
    out = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "resumed" in out.stdout
    ref = ganrt.generate_run(ganrt.load(cgan_path), tmp_path / "ref", n=1000, seed=11, batch_size=64)
    assert snapshot(run) == snapshot(ref.folder)


@pytest.fixture(scope="module")
def reference_runs(cgan, tmp_path_factory):
    base = tmp_path_factory.mktemp("reference")
    return {fmt: ganrt.generate_run(cgan, base / fmt, n=7, seed=5, fmt=fmt, shard_size=3, batch_size=2).folder
            for fmt in ("png", "npz")}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(["png", "npz"]), cut=st.floats(0, 1), data=st.data())
def test_resume_after_any_crash_state_ends_byte_identical(cgan, reference_runs, tmp_path, fmt, cut, data):
    """Any state a kill (or a later accident) can leave: journal cut at any byte, files missing or damaged, temporaries."""
    ref = reference_runs[fmt]
    run = Path(tempfile.mkdtemp(dir=tmp_path)) / "run"
    shutil.copytree(ref, run)
    journal = (run / MANIFEST).read_bytes()
    (run / MANIFEST).unlink()
    (run / JOURNAL).write_bytes(journal[: int(cut * len(journal))])
    images = sorted(p.name for p in run.iterdir() if p.name != JOURNAL)
    for name in data.draw(st.lists(st.sampled_from(images), unique=True, max_size=3)):
        (run / name).unlink()
    for name in data.draw(st.lists(st.sampled_from(images), unique=True, max_size=2)):
        if (run / name).exists():
            (run / name).write_bytes((run / name).read_bytes()[:-5])
    (run / f".{images[0]}.12345.89abcdef.tmp").write_bytes(b"partial")
    ganrt.generate_run(cgan, run, n=7, seed=5, fmt=fmt, shard_size=3, batch_size=3, resume=True)
    assert snapshot(run) == snapshot(ref)


def test_a_manifest_line_holds_every_field_of_an_entry():
    """``entry_line`` lists the fields by hand (asdict was slow): a field added to Entry must reach the manifest."""
    from dataclasses import asdict, fields

    from ganrt.runs.format import Entry
    from ganrt.runs.manifest import entry_line

    entry = Entry(**{f.name: f"value {k}" for k, f in enumerate(fields(Entry))})
    assert json.loads(entry_line(entry)) == asdict(entry)
