"""``ganrt``: the command line, a thin layer over the library API.

Every user error is a ``GanrtError`` raised by the library; ``main`` prints it as one line and
exits non-zero. Arguments are all checked before the first image is made or file written.
"""

from __future__ import annotations

import sys

import click

from ganrt import __version__
from ganrt.cli import evaluate, explore, generate, info, serve, translate, triton, upscale
from ganrt.core.errors import GanrtError
from ganrt.core.run import watch_interrupts
from ganrt.core.text import printable


@click.group()
@click.version_option(__version__, prog_name="ganrt")
def cli() -> None:
    """Sample GAN generators exported to ONNX: fast, reproducible, torch-free."""


# one module per command group, each a few lines over the library API
for _module in (generate, upscale, translate, info, explore, evaluate, triton, serve):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


_INTERRUPTED = "interrupted: every file written so far is complete; the same command with --resume continues"


def run(group: click.Group) -> None:
    """Run a click group as a console script: user errors become one line and a non-zero exit."""
    watch_interrupts()  # Ctrl-C stops an onnxruntime call under way (which Python's own handler cannot)
    try:
        group.main(standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C (SIGINT) into Abort
        click.echo(_INTERRUPTED, err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GanrtError as exc:
        click.echo(f"error: {printable(exc)}", err=True)  # a message may quote a file's strings: no escape codes
        sys.exit(1)
    except MemoryError:  # a last resort: requests that cannot fit are refused before they allocate
        click.echo("error: out of memory: ask for fewer or smaller images at once (-n, --batch-size, --tile)", err=True)
        sys.exit(1)


def main() -> None:
    run(cli)
