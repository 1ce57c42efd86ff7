"""A real ``ganrt serve`` app on uvicorn in a thread, on a free loopback port, for the serve tests."""

from __future__ import annotations

import http.client
import json
import threading
import time

import uvicorn

from ganrt.cli.serve import bind, uvicorn_config
from ganrt.serve.app import create_app
from ganrt.serve.config import ServeConfig


class Running:
    """``with Running(ServeConfig(...)) as s:`` s.port, s.get(path), s.post(path, body, type), s.app."""

    def __init__(self, config: ServeConfig) -> None:
        self.app = create_app(config)
        self._sock = bind("127.0.0.1", 0)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn_config(self.app))  # the settings `ganrt serve` runs with
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> Running:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(30)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 60) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            reply = conn.getresponse()
            return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
        finally:
            conn.close()

    def get(self, path: str, **kw) -> tuple[int, dict, bytes]:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: bytes, content_type: str, **kw) -> tuple[int, dict, bytes]:
        return self.request("POST", path, body, {"Content-Type": content_type, **kw.pop("headers", {})}, **kw)

    def post_json(self, path: str, obj) -> tuple[int, dict, bytes]:
        return self.post(path, json.dumps(obj).encode(), "application/json")

    def metric(self, name: str, **labels) -> float:
        """The sample of ``name`` in /metrics whose labels include ``labels`` (0 if there is none)."""
        for line in self.get("/metrics")[2].decode().splitlines():
            head, _, value = line.rpartition(" ")
            metric, _, rest = head.partition("{")
            if metric == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
                return float(value)
        return 0.0
