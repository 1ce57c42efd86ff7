"""Child processes that a test's Ctrl-C reaches.

A shell starts a background job (``nohup .ci/run &``) with SIGINT ignored; its children inherit that, and Python
then installs no KeyboardInterrupt handler, so a SIGINT the test sends is dropped and the child runs on (this
made three Ctrl-C tests time out in a backgrounded ``.ci/run`` that pass in a terminal).
"""

import signal


def interruptible() -> None:
    """``preexec_fn`` of a child that the test sends SIGINT: SIGINT back to its default disposition, as in a
    terminal, whatever the test process inherited."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
