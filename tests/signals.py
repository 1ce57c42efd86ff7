"""Child processes in tests: ones that a test's Ctrl-C reaches, and waiting for a run's journal to grow.

A shell starts a background job (``nohup .ci/run &``) with SIGINT ignored; its children inherit that, and Python
then installs no KeyboardInterrupt handler, so a SIGINT the test sends is dropped and the child runs on (this
made three Ctrl-C tests time out in a backgrounded ``.ci/run`` that pass in a terminal).
"""

import signal
import subprocess
import time
from pathlib import Path


def interruptible() -> None:
    """``preexec_fn`` of a child that the test sends SIGINT: SIGINT back to its default disposition, as in a
    terminal, whatever the test process inherited."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_lines(path: Path, count: int, proc: subprocess.Popen) -> None:
    """Wait (at most 120 s) until ``path`` (a run's journal) holds more than ``count`` lines while ``proc`` runs."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") > count:
            return
        time.sleep(0.005)
    raise AssertionError(f"the run did not get {count} images in (exit code {proc.poll()})")
