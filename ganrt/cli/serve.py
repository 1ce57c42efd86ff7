"""``ganrt serve``: the models as an HTTP API with dynamic batching and a web page (extra ``serve``)."""

from __future__ import annotations

import importlib.util
import signal
import socket
from typing import Any

import click

from ganrt.cli.options import device_option, threads_option
from ganrt.core.bundled import DEFAULT_MODEL
from ganrt.core.errors import MissingDependencyError, ParameterError
from ganrt.io.images import DEFAULT_MAX_PIXELS
from ganrt.serve.config import MAX_BODY, MAX_N, MAX_QUEUE, ServeConfig

DRAIN_S = 30  # SIGTERM: requests under way get this long to finish


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback: only this machine).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free port.")
@click.option("--model", "-m", "models", multiple=True, metavar="NAME_OR_FILE",
              help=f"A bundled model or an .onnx file to serve (repeatable; default {DEFAULT_MODEL}).")
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Single images merged into one onnxruntime call at most.")
@click.option("--max-wait-ms", type=click.FloatRange(0, 10_000), default=2.0, show_default=True,
              help="How long a batch waits for more images after its first.")
@click.option("--max-queue", type=click.IntRange(min=1), default=MAX_QUEUE, show_default=True,
              help="Single images waiting per model; beyond it, 503 with Retry-After.")
@click.option("--max-n", type=click.IntRange(min=1), default=MAX_N, show_default=True, help="Images per /generate request.")
@click.option("--max-body", type=click.IntRange(min=1), default=MAX_BODY, show_default=True, help="Bytes of a request body.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Pixels of an image to upscale or translate.")
@click.option("--lanes", type=click.IntRange(min=1), default=None,
              help="Batches of one generator made at once (default: one per core, the generator's lanes).")
@click.option("--api-key", default=None, help="Every API request needs the header Authorization: Bearer KEY.")
@device_option
@threads_option
@click.option("--ceiling-route", is_flag=True, hidden=True, help="benchmarks/serve_load.py: GET /bench/fixed.png.")
def serve(host, port, models, max_batch, max_wait_ms, max_queue, max_n, max_body, max_pixels, lanes, api_key, device, threads,
          ceiling_route):
    """Serve models over HTTP: images, runs, upscales, a web page at /, the API's schema at /docs."""
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise MissingDependencyError("ganrt serve needs FastAPI and uvicorn: pip install 'ganrt[serve]'")

    from ganrt.serve.app import create_app

    _Server = _server_class()

    config = ServeConfig(models=tuple(models) or (DEFAULT_MODEL,), max_batch=max_batch, max_wait_ms=max_wait_ms,
                         max_queue=max_queue, max_n=max_n, max_body=max_body, max_pixels=max_pixels, lanes=lanes, api_key=api_key,
                         device=device, threads=threads, ceiling_route=ceiling_route)
    app = create_app(config)  # loads every model: a bad one fails before the port is bound
    sock = bind(host, port)
    bound = sock.getsockname()
    served = ", ".join(app.state.loaded.models)
    click.echo(f"serving {served} on http://{_url_host(bound[0])}:{bound[1]} (page at /, API at /docs; "
               f"max batch {max_batch}, wait {max_wait_ms:g} ms)", err=True)
    server = _Server(uvicorn_config(app, timeout_graceful_shutdown=DRAIN_S))
    server.run(sockets=[sock])  # SIGTERM / Ctrl-C: stop accepting, finish the requests under way, then exit
    click.echo("stopped: the requests under way were answered", err=True)


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a SIGTERM that has drained the requests ends the process with status 0 (uvicorn
        raises the signal again afterwards, so the process would die of it: status -15)."""

        def handle_exit(self, sig, frame) -> None:
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM and getattr(self, "_captured_signals", None):
                self._captured_signals.remove(sig)

    return Server


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); the port in use or the address not this machine's is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP. Without it a
    # response written as headers then body waits for the client's delayed ACK: >= 40 ms a request (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ParameterError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, **options: Any) -> Any:
    """uvicorn's settings for ``app`` (the CLI's and the tests' servers): warnings only, no access log, lifespan on."""
    import uvicorn

    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", **options)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


COMMANDS = (serve,)
