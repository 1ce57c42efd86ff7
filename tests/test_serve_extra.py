"""``ganrt serve`` without the 'serve' extra: one line naming it, exit 1. Runs with or without FastAPI installed
(a subprocess in which FastAPI cannot be imported)."""

from __future__ import annotations

import subprocess
import sys

HIDE_FASTAPI = ("import sys; sys.modules['fastapi'] = None; sys.modules['uvicorn'] = None; "
                "sys.argv = ['ganrt', 'serve']; from ganrt.cli import main; main()")


def test_serve_without_the_extra_names_it_in_one_line():
    proc = subprocess.run([sys.executable, "-c", HIDE_FASTAPI], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: ganrt serve needs FastAPI and uvicorn: pip install 'ganrt[serve]'"


def test_ganrt_imports_no_web_framework():
    code = "import sys, ganrt, ganrt.cli; g = ganrt.load('fashion-cgan'); g.sample(2); print('fastapi' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr
