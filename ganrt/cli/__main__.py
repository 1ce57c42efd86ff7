"""``python -m ganrt.cli``: the ``ganrt`` command."""

from ganrt.cli import main

main()
