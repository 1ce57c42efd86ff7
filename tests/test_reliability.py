"""Reliability II (issue 15): one run per folder, replay as a verification, no path out of the folder the user
named, run files never followed through symbolic links; a chaos test of real runs killed at random."""

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ganrt
from ganrt.core.errors import OutputError
from ganrt.runs.lock import LOCK_FILE, FolderLock
from ganrt.runs.manifest import JOURNAL, MANIFEST, read_manifest
from ganrt.runs.replay import replay, run_file_problem

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


# --- replay is a verification ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sound_run(cgan, tmp_path_factory) -> Path:
    return ganrt.generate_run(cgan, tmp_path_factory.mktemp("sound") / "run", n=6, seed=3).folder


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def replay_cli(target: Path, *more: str) -> subprocess.CompletedProcess:
    return subprocess.run([GANRT, "replay", str(target), *more], capture_output=True, text=True, timeout=120)


def test_replay_of_a_sound_run_passes(sound_run):
    out = replay_cli(sound_run)
    assert out.returncode == 0 and "6 images: 6 reproduced bit-exactly, 6 files on disk match" in out.stdout
    assert "problem" not in out.stdout


def lines_of(run: Path) -> list[bytes]:
    return (run / MANIFEST).read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize("damage, reason", [
    (lambda run: (run / MANIFEST).write_bytes(b"".join(lines_of(run)[:3]) + b"junk\n" + b"".join(lines_of(run)[3:])),
     "line 4 "),  # a junk line: today "0 images: 0 reproduced", exit 0
    (lambda run: (run / MANIFEST).write_bytes(b"".join(lines_of(run)[:4])), "3 images listed, its header says 6"),
    (lambda run: (run / MANIFEST).write_bytes(lines_of(run)[0] + lines_of(run)[1].replace(b"000000.png", b"../../etc/passwd")
                                              + b"".join(lines_of(run)[2:])), "is not a name ganrt writes"),
    (lambda run: (run / MANIFEST).write_bytes(b"".join(lines_of(run)[:2] + lines_of(run)[3:] + lines_of(run)[2:3])),
     "line 3: image 2 in '000002.png', expected image 1 in '000001.png'"),  # out of order
    (lambda run: shutil.copy(run / "000001.png", run / "000009.png"),
     "1 image file(s) the manifest does not list (e.g. 000009.png)"),
    (lambda run: (run / MANIFEST).rename(run / JOURNAL), "an interrupted run (6 of 6 images recorded)"),
])
def test_replay_fails_with_a_reason_on_a_damaged_run(sound_run, tmp_path, damage, reason):
    run = copy_run(sound_run, tmp_path / "run")
    damage(run)
    out = replay_cli(run)
    problems = [line for line in out.stdout.splitlines() if line.startswith("problem: ")]
    assert out.returncode == 1 and problems and any(reason in p for p in problems), out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_replay_never_opens_a_symlinked_image_or_manifest(sound_run, tmp_path):
    run = copy_run(sound_run, tmp_path / "run")
    outside = tmp_path / "outside.png"
    (run / "000002.png").rename(outside)
    (run / "000002.png").symlink_to(outside)  # the right bytes, but not a file of the folder
    report = replay(run)
    assert not report.ok and report.images[2].on_disk.startswith("unreadable: ") and "symbolic link" in report.images[2].on_disk
    assert any("line 4: " in p and "symbolic link" in p for p in report.problems)
    (run / "000002.png").unlink()
    shutil.copy(outside, run / "000002.png")
    (run / MANIFEST).rename(tmp_path / "m.jsonl")
    (run / MANIFEST).symlink_to(tmp_path / "m.jsonl")
    out = replay_cli(run)
    assert out.returncode == 1 and "symbolic link" in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["../000001.png", "/etc/passwd", "a/../000001.png", "./000001.png", "a\\b.png", ""])
def test_a_manifest_file_name_outside_the_folder_is_never_a_path(tmp_path, name):
    assert "not a path inside the run folder" in run_file_problem(tmp_path, name)


# --- hypothesis: the manifest reader on damaged lines, replay on damaged runs --------------------------------------

DAMAGE = st.sampled_from(["drop", "duplicate", "swap", "junk", "flip", "cut", "rename_file", "blank"])


def damaged(lines: list[bytes], ops: list[tuple[str, int, int]]) -> list[bytes]:
    """``lines`` of a manifest (header first) after ``ops``: (what, which entry line, a byte position)."""
    lines = list(lines)
    for what, k, b in ops:
        i = 1 + k % max(1, len(lines) - 1)
        if i >= len(lines) or not lines[i]:  # no such line, or one an earlier cut left empty: nothing to damage
            continue
        line = lines[i]
        if what == "drop":
            del lines[i]
        elif what == "duplicate":
            lines.insert(i, line)
        elif what == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], line
        elif what == "junk":
            lines.insert(i, b"{not json\n")
        elif what == "flip":
            pos = b % len(line)
            lines[i] = line[:pos] + bytes([line[pos] ^ 0x20]) + line[pos + 1 :]
        elif what == "cut":
            lines[i] = line[: b % len(line)]
            del lines[i + 1 :]
        elif what == "rename_file":
            lines[i] = line.replace(b'"file": "', b'"file": "../', 1)
        elif what == "blank":
            lines.insert(i, b"\n")
    return lines


OPS = st.lists(st.tuples(DAMAGE, st.integers(0, 50), st.integers(0, 10_000)), min_size=1, max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_the_manifest_reader_on_damaged_lines(sound_run, tmp_path, ops):
    original = lines_of(sound_run)
    data = b"".join(damaged(original, ops))
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / MANIFEST
    path.write_bytes(data)
    m = read_manifest(path, repair=True)  # the header is intact: repair never raises
    # what it keeps is a prefix of the file that reads back strictly, entry for entry
    end = m.ends[-1] if m.entries else m.header_bytes
    prefix = path.with_name("prefix.jsonl")
    prefix.write_bytes(data[:end])
    assert read_manifest(prefix).entries == m.entries
    assert [json.loads(line) for line in data[m.header_bytes:end].splitlines()] == list(m.entries)
    if m.problem:
        with pytest.raises(ganrt.ManifestError, match=m.problem[:20].replace("(", r"\(").replace("[", r"\[")):
            read_manifest(path)
    else:
        assert end == len(data) and len(m.entries) == data.count(b"\n") - 1
        assert read_manifest(path).entries == m.entries


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, extra=st.sampled_from(["none", "unlisted", "symlink", "delete"]))
def test_replay_passes_only_an_undamaged_run(cgan_path, sound_run, tmp_path, ops, extra):
    run = copy_run(sound_run, Path(tempfile.mkdtemp(dir=tmp_path)) / "run")
    lines = damaged(lines_of(sound_run), ops)
    (run / MANIFEST).write_bytes(b"".join(lines))
    if extra == "unlisted":
        shutil.copy(run / "000000.png", run / "000123.png")
    elif extra == "symlink":
        (run / "000003.png").rename(run.parent / "x.png")
        (run / "000003.png").symlink_to(run.parent / "x.png")
    elif extra == "delete":
        (run / "000005.png").unlink()
    try:
        report = replay(run, model=cgan_path)
    except ganrt.ManifestError:
        return  # refused with a reason (a header line cut, a label mix)
    intact = lines == lines_of(sound_run) and extra == "none"
    assert report.ok == intact, (report.problems, [im for im in report.images if not im.ok])
    if not report.ok:
        assert report.problems or any(not im.ok for im in report.images)


# --- no string from a model file or a PNG becomes a path --------------------------------------------------------

def renamed_model(src: Path, dst: Path, **meta_over) -> Path:
    """A copy of model file ``src`` whose ganrt metadata has ``meta_over`` (e.g. a hostile name or description)."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(src)
    for prop in model.metadata_props:
        if prop.key == "ganrt":
            prop.value = json.dumps(json.loads(prop.value) | meta_over)
    onnx.save(model, dst)
    return dst


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/ganrt-escaped-abs", "..", "a\\b", "bad\nname"])
def test_export_triton_keeps_a_model_file_s_name_inside_outdir(cgan_path, tmp_path, name):
    model = renamed_model(cgan_path, tmp_path / "m.onnx", name=name)
    outdir = tmp_path / "deep" / "er" / "repo"
    out = subprocess.run([GANRT, "export-triton", str(model), str(outdir)], capture_output=True, text=True, timeout=120)
    err = out.stderr.strip()
    assert out.returncode == 1 and len(err.splitlines()) == 1 and "is not a folder name Triton can serve" in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["m.onnx"] and not Path("/tmp/ganrt-escaped-abs").exists()
    out = subprocess.run([GANRT, "export-triton", str(model), str(outdir), "--name", "ok"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and (outdir / "ok" / "1" / "model.onnx").read_bytes() == model.read_bytes()


def test_export_triton_writes_the_repository_whole_or_not_at_all(cgan, tmp_path, monkeypatch):
    from ganrt.io import files
    from ganrt.tools.triton import TritonConfig, export_triton

    real = files.atomic_write
    calls = []

    def failing(path, data, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise OutputError(f"cannot write {path}: No space left on device")
        real(path, data, **kw)

    monkeypatch.setattr("ganrt.tools.triton.atomic_write", failing)
    with pytest.raises(OutputError, match="No space left"):
        export_triton(cgan, tmp_path)
    assert list(tmp_path.iterdir()) == []  # no half-written repository, no temporary folder
    first = export_triton(cgan, tmp_path, config=TritonConfig())
    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    calls.clear()
    with pytest.raises(OutputError):
        export_triton(cgan, tmp_path, overwrite=True)
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == before  # the earlier export is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]


def test_a_lone_png_names_a_bundled_model_or_none(cgan, cgan_path, tmp_path):
    from PIL import Image, PngImagePlugin

    ganrt.generate_run(cgan, tmp_path / "run", n=2, seed=4)
    im = Image.open(tmp_path / "run" / "000001.png")
    info = PngImagePlugin.PngInfo()
    for key, value in im.text.items():
        info.add_text(key, str(cgan_path) if key == "model" else value)  # a path to a model, sha256 matching
    im.save(tmp_path / "crafted.png", pnginfo=info)
    out = replay_cli(tmp_path / "crafted.png")
    err = out.stderr.strip()
    assert out.returncode == 1 and len(err.splitlines()) == 1 and "not a bundled model" in err and "--model" in err, err
    assert replay(tmp_path / "crafted.png", model=cgan_path).ok  # the user names the file: fine


def test_a_grid_inside_the_run_folder_is_refused(cgan, cgan_path, tmp_path):
    ganrt.generate_run(cgan, tmp_path / "gr", n=4, seed=1)
    before = snapshot(tmp_path / "gr")
    for grid in (tmp_path / "gr" / "000000.png", tmp_path / "gr" / "sub" / "g.png"):
        out = subprocess.run(gen_args(cgan_path, tmp_path / "gr", "--grid", str(grid), "--overwrite", n=4, seed=1),
                             capture_output=True, text=True, timeout=120)
        err = out.stderr.strip()
        assert out.returncode == 1 and len(err.splitlines()) == 1 and "lies inside --out" in err, err
        assert snapshot(tmp_path / "gr") == before  # image 0 was overwritten by the grid before


# --- chaos: real runs killed at random, raced, resumed until done, then diff -r against an uninterrupted run --------

CHAOS_N = 40


def chaos_args(model: Path, out: Path, fmt: str, upscaler: Path | None, *more: str) -> list[str]:
    args = gen_args(model, out, "--format", fmt, "--shard-size", "8", *more, n=CHAOS_N, seed=7)
    return args + (["--upscale", str(upscaler)] if upscaler is not None else [])


def reference_run(cgan, folder: Path, fmt: str, upscaler_path: Path | None, seed: int = 7) -> Path:
    up = ganrt.load(upscaler_path, kind="upscaler") if upscaler_path is not None else None
    return ganrt.generate_run(cgan, folder, n=CHAOS_N, seed=seed, fmt=fmt, shard_size=8, batch_size=2, upscaler=up).folder


@pytest.mark.parametrize("fmt, upscale", [("png", False), ("npz", False), ("png", True), ("npz", True)])
def test_chaos_kill_at_random_then_resume_until_done(cgan, cgan_path, sr2_path, tmp_path, fmt, upscale):
    import random

    rng = random.Random(f"issue-15-{fmt}-{upscale}")  # the kills are random, and the same on every run of the suite
    upscaler = sr2_path if upscale else None
    run = tmp_path / "run"
    kills = 0
    for attempt in range(4):  # a killed run, then --resume (itself killed at random) until one completes
        last = attempt == 3
        args = chaos_args(cgan_path, run, fmt, upscaler, *(["--resume"] if attempt else []))
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if not last and rng.random() < 0.8:
            try:
                wait_for_lines(run / JOURNAL, rng.randrange(0, CHAOS_N // 2), proc, timeout=60)
                time.sleep(rng.random() * 0.05)
                proc.send_signal(rng.choice([signal.SIGKILL, signal.SIGTERM]))
                kills += 1
            except AssertionError:
                pass  # it ended before the moment drawn: as good a state as any
        _, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, -signal.SIGKILL, -signal.SIGTERM), err
        assert "Traceback" not in err
        if proc.returncode == 0:
            break
    assert proc.returncode == 0 and kills >= 1
    ref = reference_run(cgan, tmp_path / "ref", fmt, upscaler)
    diff = subprocess.run(["diff", "-r", str(ref), str(run)], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout[:2000]
    assert replay(run, upscaler=upscaler).ok


def test_chaos_two_runs_race_for_one_folder(cgan, cgan_path, tmp_path):
    run = tmp_path / "run"
    procs = {seed: subprocess.Popen(gen_args(cgan_path, run, n=CHAOS_N, seed=seed), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for seed in (1, 2)}
    results = {seed: (p.wait(timeout=120), p.stderr.read()) for seed, p in procs.items()}
    winners = [seed for seed, (code, _) in results.items() if code == 0]
    assert len(winners) == 1, results  # before the folder lock, both ran and mixed their images
    (loser, (code, err)), = [(s, r) for s, r in results.items() if s not in winners]
    assert code == 1 and len(err.strip().splitlines()) == 1 and ("another ganrt run" in err or "already holds" in err), err
    ref = ganrt.generate_run(cgan, tmp_path / "ref", n=CHAOS_N, seed=winners[0], batch_size=2).folder
    assert subprocess.run(["diff", "-r", str(ref), str(run)], capture_output=True).returncode == 0


# --- terminal escape codes from a model file are shown escaped ------------------------------------------------------

HOSTILE_TEXT = "\x1b[2J\x1b]0;pwned\x07evil\u202eenil\x9b31m"


def test_info_shows_a_model_s_control_characters_escaped(cgan_path, tmp_path):
    model = renamed_model(cgan_path, tmp_path / "m.onnx", description=HOSTILE_TEXT, name="x\x1b[31my")
    out = subprocess.run([GANRT, "info", str(model)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert not any(c in out.stdout for c in "\x1b\x07\u202e\x9b"), repr(out.stdout)
    assert "\\x1b[2J\\x1b]0;pwned\\x07evil\\u202eenil\\x9b31m" in out.stdout and "x\\x1b[31my" in out.stdout
    js = subprocess.run([GANRT, "info", str(model), "--json"], capture_output=True, text=True, timeout=120)
    assert js.returncode == 0 and "\x1b" not in js.stdout and json.loads(js.stdout)["description"] == HOSTILE_TEXT


def test_printable_escapes_only_what_a_terminal_would_act_on():
    from ganrt.core.text import printable

    assert printable("plain é 漢字 ok") == "plain é 漢字 ok"
    assert printable("a\nb\tc\x00\u200b\U000e0001") == "a\\x0ab\\x09c\\x00\\u200b\\U000e0001"


# --- a symlinked model file: external data is checked where onnxruntime reads it --------------------------------

def test_a_symlinked_model_s_external_data_is_checked_beside_the_link(tmp_path):
    pytest.importorskip("onnx")
    import numpy as np
    from test_hostile import external_model

    from ganrt.core.errors import ModelFormatError

    real = external_model(tmp_path / "real", "w.bin")  # real/m.onnx + real/w.bin: sound
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "m.onnx").symlink_to(real)
    (tmp_path / "secret.bin").write_bytes(np.full(4, 0.5, np.float32).tobytes())
    (tmp_path / "link" / "w.bin").symlink_to(tmp_path / "secret.bin")  # what onnxruntime would read through the link
    with pytest.raises(ModelFormatError, match="points outside the model's folder"):  # ganrt checked real/w.bin before
        ganrt.load(tmp_path / "link" / "m.onnx")
    (tmp_path / "link" / "w.bin").unlink()
    with pytest.raises(ModelFormatError, match="external data file 'w.bin' is missing"):  # as onnxruntime would find it
        ganrt.load(tmp_path / "link" / "m.onnx")
    assert ganrt.load(real).sample(1).shape == (1, 2, 2, 1)


def test_every_call_names_the_default_graph_id(cgan):
    """onnxruntime's run_with_iobinding reads gpu_graph_id on each call; unset, the lookup raises and catches a
    C++ exception (~0.1 ms, a quarter of a batch-1 call). ganrt's RunOptions set it to its default, 0."""
    from ganrt.core.run import GRAPH_ID_KEY, _call

    with _call(cgan._session, "test") as options:
        assert options.get_run_config_entry(GRAPH_ID_KEY) == "0"
    assert cgan.sample(2, seed=3).shape[0] == 2
