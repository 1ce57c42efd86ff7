"""Integer limits in every integer CLI option (issue 15): any value either works or gives exit 2 (a usage error) or
exit 1 with one line (a ganrt error), never a traceback. Each command runs in-process through ``ganrt.cli.run``, the
console script's own error handling, on small outputs so that each example is quick.

Left out: values that are valid and merely long to honour (``generate -n`` with ``--out``, ``eval -n``) and
``ganrt serve`` (a server that runs until stopped).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ganrt.cli import cli, run

MODEL = "fashion-cgan"
SETTINGS = settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
EDGES = [0, 1, -1, 2, 3, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 2, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 3,
         -(2**63), -(2**63) - 1, 10**18, 10**30, 2**70]
integers = st.one_of(st.sampled_from(EDGES), st.integers(-(2**80), 2**80), st.integers(-3, 300))


def ganrt_in_process(args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """(exit code, stderr) of ``ganrt ARGS`` as the console script runs it."""
    monkeypatch.setattr(sys, "argv", ["ganrt", *args])
    code = 0
    try:
        run(cli)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def works_or_one_line(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    if code == 0:
        return
    assert code in (1, 2), (code, err)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    else:  # click's usage error: its usage line, a hint and one "Error: ..." line
        assert lines and lines[-1].startswith("Error: "), err


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    from PIL import Image

    folder = tmp_path_factory.mktemp("cli-ints")
    Image.fromarray(np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)).save(folder / "in.png")
    return folder


GENERATE = ["-n", "--seed", "--start", "--batch-size", "--threads"]


@pytest.mark.parametrize("option", GENERATE)
@SETTINGS
@given(value=integers)
def test_generate(work, capsys, monkeypatch, option, value):
    monkeypatch.chdir(work)
    fixed = {"-n": "4", "--batch-size": "4"}
    args = [a for k, v in fixed.items() if k != option for a in (k, v)]
    works_or_one_line(*ganrt_in_process(["generate", "-m", MODEL, *args, option, str(value), "--grid", "g.png", "--overwrite"],
                                        capsys, monkeypatch))


EXPLORE = [("interpolate", "--seed"), ("interpolate", "--rows"), ("interpolate", "--steps"), ("walk", "--seed"),
           ("walk", "--index"), ("walk", "--steps"), ("walk", "--keyframes"), ("arithmetic", "--seed"),
           ("arithmetic", "--variations"), ("arithmetic", "--a")]


COUNTS = ("--rows", "--steps", "--variations")  # options that set how many images are made


@pytest.mark.parametrize("command, option", EXPLORE)
@SETTINGS
@given(value=integers)
def test_explore(work, capsys, monkeypatch, command, option, value):
    # counts of images that fit in memory are valid and merely long to make (an interpolation of 10^5-10^6 images
    # took 80-356 s here); below 10^4 they run, above 10^12 they are refused
    assume(not (option in COUNTS and 10**4 <= value <= 10**12))
    monkeypatch.chdir(work)
    out = {"interpolate": "i.png", "walk": "w.png", "arithmetic": "a.png"}[command]
    args = ["--out", out, "--overwrite"]
    if command == "interpolate":
        args += ["--rows", "1"] if option != "--rows" else ["--steps", "2"]
    if command == "walk":
        args += ["--steps", "2"] if option != "--steps" else []
        args += ["--classes", "0,1"] if option == "--index" else []
        args += ["--keyframes", "0,1"] if option != "--keyframes" else []
    if command == "arithmetic":
        args += ["--b", "1", "--c", "2"] + (["--a", "0"] if option != "--a" else [])
        args += ["--variations", "1"] if option != "--variations" else []
    text = f"{value},1" if option == "--keyframes" else str(value)
    works_or_one_line(*ganrt_in_process([command, "-m", MODEL, *args, option, text], capsys, monkeypatch))


@pytest.mark.parametrize("option", ["--tile", "--overlap", "--max-pixels", "--threads", "--memory-budget"])
@SETTINGS
@given(value=integers)
def test_upscale(work, capsys, monkeypatch, option, value):
    monkeypatch.chdir(work)
    works_or_one_line(*ganrt_in_process(["upscale", "in.png", "-m", "sr-x2", "--out", "up", "--overwrite", option, str(value)],
                                        capsys, monkeypatch))


@pytest.mark.parametrize("option", ["--max-batch-size", "--instances", "--max-queue-delay-us"])
@SETTINGS
@given(value=integers)
def test_export_triton(work, capsys, monkeypatch, option, value):
    monkeypatch.chdir(work)
    works_or_one_line(*ganrt_in_process(["export-triton", MODEL, "repo", "--overwrite", option, str(value)], capsys, monkeypatch))


@pytest.mark.parametrize("option", ["--rounds", "--batch-sizes"])
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(value=st.one_of(st.sampled_from(EDGES), st.integers(-(2**80), 2**80)))
def test_bench(work, capsys, monkeypatch, option, value):
    monkeypatch.chdir(work)
    args = {"--rounds": ["--batch-sizes", "1"], "--batch-sizes": ["--rounds", "1"]}[option]
    works_or_one_line(*ganrt_in_process(["bench", MODEL, "--seconds", "0.01", *args, option, str(value)], capsys, monkeypatch))


@SETTINGS
@given(value=integers)
def test_replay_index(work, capsys, monkeypatch, value):
    monkeypatch.chdir(work)
    if not (work / "run" / "manifest.jsonl").exists():
        assert ganrt_in_process(["generate", "-m", MODEL, "-n", "3", "--out", "run"], capsys, monkeypatch)[0] == 0
    works_or_one_line(*ganrt_in_process(["replay", "run", "--index", str(value)], capsys, monkeypatch))


def test_a_thread_count_onnxruntime_cannot_start_is_refused():
    """--threads 2147483647 was accepted and onnxruntime aborted the process trying to start them (found by the tests above)."""
    import ganrt

    with pytest.raises(ganrt.ParameterError, match=r"threads must be an integer in 1\.\.1024"):
        ganrt.load(MODEL, threads=2**31 - 1)
