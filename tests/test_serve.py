"""``ganrt serve`` over real HTTP: uvicorn on a free loopback port, the bundled fashion-cgan and sr-x2, urllib-level
clients. Served images against a real ``ganrt generate`` run's files, batched against unbatched replies, the
errors, the bounded queue, disconnects, auth, metrics and SIGTERM's drain."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ganrt.cli import cli

pytest.importorskip("fastapi", reason="ganrt serve needs the 'serve' extra")
pytest.importorskip("uvicorn", reason="ganrt serve needs the 'serve' extra")

from PIL import Image

from ganrt.serve.config import ServeConfig
from tests.serve_server import Running

MODEL = "fashion-cgan"
IMG = f"/v1/models/{MODEL}/images"


@pytest.fixture(scope="module")
def server():
    with Running(ServeConfig(models=(MODEL, "sr-x2"), max_batch=64, max_wait_ms=5)) as s:
        yield s


@pytest.fixture(scope="module")
def unbatched():
    with Running(ServeConfig(models=(MODEL,), max_batch=1)) as s:
        yield s


def _generate(tmp: Path, *args: str) -> Path:
    out = tmp / "run"
    result = CliRunner().invoke(cli, ["generate", "-m", MODEL, "--out", str(out), "--no-progress", *args])
    assert result.exit_code == 0, result.output
    return out


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def _fetch_all(s: Running, paths: list[str], workers: int) -> list[tuple[int, dict, bytes]]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(s.get, paths))


@pytest.mark.parametrize("args, query", [
    (["-n", "24", "--seed", "5"], ""),  # default labels: image i gets class i % 10
    (["-n", "10", "--seed", "3", "--start", "7", "--label", "Sneaker", "--truncation", "0.7"], "?label=Sneaker&truncation=0.7"),
])
def test_served_images_are_the_generate_runs_files(server, unbatched, tmp_path, args, query):
    run = _generate(tmp_path, *args)
    seed = int(args[args.index("--seed") + 1])
    files = sorted(run.glob("*.png"))
    indices = [int(f.stem) for f in files]
    paths = [f"{IMG}/{seed}/{i}.png{query}" for i in indices]
    batched = _fetch_all(server, paths, workers=len(paths))  # concurrent: merged into batches
    single = [unbatched.get(p) for p in paths]  # one after another, --max-batch 1
    for f, (status, headers, body), (status1, _, body1) in zip(files, batched, single):
        assert status == status1 == 200 and headers["content-type"] == "image/png"
        assert body == f.read_bytes(), f"{f.name}: the served PNG differs from ganrt generate's file"
        assert body1 == body
        assert "immutable" in headers["cache-control"] and headers["etag"]


def test_concurrent_requests_are_batched_and_equal_unbatched(server, unbatched):
    before_images = server.metric("ganrt_images_total", model=MODEL)
    before_batches = server.metric("ganrt_batch_size_count", model=MODEL)
    paths = [f"{IMG}/{11 + i % 3}/{100 + i}.png?label={i % 10}" for i in range(96)]
    batched = _fetch_all(server, paths, workers=48)
    images = server.metric("ganrt_images_total", model=MODEL) - before_images
    batches = server.metric("ganrt_batch_size_count", model=MODEL) - before_batches
    assert images == 96 and batches < 96, f"{images} images in {batches} onnxruntime calls: nothing was merged"
    single = _fetch_all(unbatched, paths, workers=8)
    assert unbatched.metric("ganrt_batch_size_bucket", model=MODEL, le="1") == unbatched.metric(
        "ganrt_batch_size_count", model=MODEL)  # every call of the --max-batch 1 server made one image
    for (s1, _, b1), (s2, _, b2) in zip(batched, single):
        assert s1 == s2 == 200 and b1 == b2
    assert len({b for _, _, b in batched}) == 96  # distinct images


def test_etag_answers_304_and_differs_per_image(server):
    status, headers, _ = server.get(f"{IMG}/0/1.png")
    again = server.get(f"{IMG}/0/1.png", headers={"If-None-Match": headers["etag"]})
    assert status == 200 and again[0] == 304 and again[2] == b""
    other = server.get(f"{IMG}/0/1.png?label=3")[1]["etag"]
    assert other != headers["etag"]


@pytest.mark.parametrize("query", ["", "?label=Sneaker&truncation=0.7", "?label=3"])
def test_the_fast_image_path_answers_as_the_declared_route(server, query):
    """A well-formed image GET is answered in the ASGI layer, without FastAPI's routing; a query key FastAPI ignores
    (``x``) sends the same request through the declared route. Same status, bytes, ETag and cache headers; both
    counted under the route's name; 304 either way."""
    path = f"{IMG}/4/{len(query)}.png{query}"
    before = server.metric("ganrt_requests_total", route="/v1/models/{name}/images/{seed}/{index}.png", method="GET",
                           status="200")
    fast = server.get(path)
    routed = server.get(path + ("&" if query else "?") + "x=1")
    assert fast[0] == routed[0] == 200 and fast[2] == routed[2]
    for key in ("content-type", "content-length", "etag", "cache-control"):
        assert fast[1][key] == routed[1][key], key
    assert server.metric("ganrt_requests_total", route="/v1/models/{name}/images/{seed}/{index}.png", method="GET",
                         status="200") == before + 2
    for p in (path, path + ("&" if query else "?") + "x=1"):
        assert server.get(p, headers={"If-None-Match": fast[1]["etag"]})[0] == 304


def test_generate_grid_is_generate_grid_file_and_npz_is_sample(server, tmp_path):
    grid = tmp_path / "grid.png"
    result = CliRunner().invoke(cli, ["generate", "-m", MODEL, "-n", "12", "--seed", "9", "--label", "Bag", "--grid", str(grid)])
    assert result.exit_code == 0, result.output
    status, headers, body = server.post_json(f"/v1/models/{MODEL}/generate", {"n": 12, "seed": 9, "labels": "Bag"})
    assert status == 200 and headers["content-type"] == "image/png" and body == grid.read_bytes()

    import ganrt

    status, _, body = server.post_json(f"/v1/models/{MODEL}/generate",
                                       {"n": 70, "seed": 2, "start": 5, "labels": [i % 3 for i in range(70)], "format": "npz"})
    assert status == 200
    data = np.load(io.BytesIO(body))
    gen = ganrt.load(MODEL)
    expected = gen.sample(70, seed=2, start=5, labels=[i % 3 for i in range(70)])
    assert np.array_equal(data["images"], expected)
    assert data["indices"].tolist() == list(range(5, 75)) and data["labels"].tolist() == [i % 3 for i in range(70)]


def test_walk_ends_are_the_two_seeds_images(server):
    a = _pixels(server.get(f"{IMG}/4/2.png?label=7")[2])
    b = _pixels(server.get(f"{IMG}/8/2.png?label=7")[2])
    start = _pixels(server.get(f"/v1/models/{MODEL}/walk/4/8/2.png?t=0&label=7")[2])
    end = _pixels(server.get(f"/v1/models/{MODEL}/walk/4/8/2.png?t=1&label=7")[2])
    middle = _pixels(server.get(f"/v1/models/{MODEL}/walk/4/8/2.png?t=0.5&label=7")[2])
    assert np.array_equal(start, a) and np.array_equal(end, b)
    assert not np.array_equal(middle, a) and not np.array_equal(middle, b)


def _png(shape, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_upscale_is_ganrt_upscales_file(server, tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(_png((20, 28, 3)))
    result = CliRunner().invoke(cli, ["upscale", str(src), "-m", "sr-x2", "--out", str(tmp_path / "up"), "--no-progress"])
    assert result.exit_code == 0, result.output
    status, headers, body = server.post("/v1/models/sr-x2/upscale", src.read_bytes(), "image/png")
    assert status == 200 and headers["content-type"] == "image/png"
    assert body == (tmp_path / "up" / "in.png").read_bytes()
    jpeg = io.BytesIO()
    Image.open(src).save(jpeg, format="JPEG")
    status, _, body = server.post("/v1/models/sr-x2/upscale?resample=bicubic", jpeg.getvalue(), "image/jpeg")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (56, 40)


def _error(reply, status: int, *words: str) -> None:
    got, headers, body = reply
    assert got == status, (got, body)
    assert headers["content-type"].startswith("application/json")
    message = json.loads(body)["error"]
    assert "\n" not in message and "Traceback" not in message
    for w in words:
        assert w in message, message


def test_bad_requests_are_one_line_json_4xx(server):
    gen = f"/v1/models/{MODEL}/generate"
    _error(server.post(gen, b'{"n": 3', "application/json"), 400, "malformed JSON")
    _error(server.post(gen, b"\xff\xfe", "application/json"), 400, "malformed JSON")
    _error(server.post_json(gen, {"n": 1025}), 400, "1024")
    _error(server.post_json(gen, {"n": 2, "colour": 1}), 422, "colour")
    _error(server.post_json(gen, {"n": 2, "labels": "Dragon"}), 400, "unknown class 'Dragon'", "Sneaker")
    _error(server.post_json(gen, {"n": 2, "labels": [1, 2, 3]}), 400, "3 labels for 2 images")
    _error(server.post_json(gen, {"n": 2, "truncation": -1}), 422, "truncation")
    _error(server.post(gen, b"n=3", "application/x-www-form-urlencoded"), 415, "application/json")
    _error(server.post_json("/v1/models/nope/generate", {"n": 1}), 404, "unknown model 'nope'", MODEL)
    _error(server.get("/v1/models/nope/images/0/0.png"), 404, "unknown model")
    _error(server.get(f"{IMG}/0/0.png?label=11"), 400, "out of range")
    _error(server.get(f"{IMG}/0/-1.png"), 422, "index")
    _error(server.get(f"{IMG}/zero/1.png"), 422, "seed")
    _error(server.get(f"{IMG}/0/1.png?truncation=0"), 422, "truncation")
    _error(server.get(f"{IMG}/0/1.png?truncation=inf"), 400, "truncation")
    _error(server.get(f"{IMG}/0/{1 << 63}.png"), 422, "index")
    _error(server.get(f"{IMG}/0/1.png?label=Dragon"), 400, "unknown class 'Dragon'")
    _error(server.get("/v1/models/sr-x2/images/0/1.png"), 400, "upscaler", MODEL)
    _error(server.post(f"/v1/models/{MODEL}/upscale", _png((8, 8, 3)), "image/png"), 400, "generator", "sr-x2")
    _error(server.post("/v1/models/sr-x2/upscale", _png((8, 8, 3)), "text/plain"), 415, "image/png")
    _error(server.post("/v1/models/sr-x2/upscale", b"not an image at all", "image/png"), 400, "not an image")
    _error(server.post("/v1/models/sr-x2/upscale", _png((8, 8, 3)), "image/jpeg"), 415, "PNG", "JPEG")
    _error(server.post("/v1/models/sr-x2/upscale", b"", "image/png"), 400, "empty")
    _error(server.get("/v2/anything"), 404, "no such endpoint")


def _reply(conn: socket.socket, start: bytes = b"") -> str:
    """One HTTP reply read from a raw socket: its head and its Content-Length of body."""
    data = start
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            re.search(rb"content-length: (\d+)", data, re.I)[1]):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode()


def test_limits_body_by_content_length_before_reading_and_while_streaming_and_pixels():
    with Running(ServeConfig(models=("sr-x2",), max_body=100_000, max_pixels=64 * 64)) as s:
        # a declared 60 MB body: refused from the headers, with no byte of the body sent
        conn = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        conn.sendall(b"POST /v1/models/sr-x2/upscale HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                     b"Content-Length: 60000000\r\n\r\n")
        reply = _reply(conn)
        conn.close()
        assert reply.startswith("HTTP/1.1 413") and "60,000,000 bytes" in reply
        # chunked, no Content-Length: refused once more than the limit has come in
        conn = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        conn.sendall(b"POST /v1/models/sr-x2/upscale HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        sent, reply = 0, b""
        try:
            while sent < 10_000_000 and not reply:
                conn.sendall(b"%x\r\n" % 50_000 + b"\0" * 50_000 + b"\r\n")
                sent += 50_000
                conn.settimeout(0.05)
                try:
                    reply = conn.recv(65536)
                except TimeoutError:
                    pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        conn.settimeout(10)
        reply = _reply(conn, reply or b"")
        conn.close()
        assert reply.startswith("HTTP/1.1 413") and "100,000 bytes" in reply, reply[:200]
        assert sent < 1_000_000  # it stopped reading soon after the limit
        _error(s.post("/v1/models/sr-x2/upscale", _png((65, 64, 3)), "image/png"), 413, "64x65", "--max-pixels")
        assert s.post("/v1/models/sr-x2/upscale", _png((64, 64, 3)), "image/png")[0] == 200


def _until(check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.01)


def test_full_queue_is_503_with_retry_after_and_a_client_that_leaves_is_dropped():
    with Running(ServeConfig(models=(MODEL,), max_batch=1, max_queue=2)) as s:
        release = threading.Event()
        pool = s.app.state.pool
        lanes = pool._max_workers
        blockers = [pool.submit(release.wait) for _ in range(lanes)]  # every lane thread busy until released
        clients = ThreadPoolExecutor(8)
        try:
            held = []
            for i in range(lanes):  # one batch per lane: taken by the batcher, waiting for a lane thread
                held.append(clients.submit(s.get, f"{IMG}/0/{i}.png"))
                _until(lambda i=i: s.metric("ganrt_batch_size_count", model=MODEL) == i + 1)
            for i in range(2):  # then the queue fills
                held.append(clients.submit(s.get, f"{IMG}/0/{lanes + i}.png"))
                _until(lambda i=i: s.metric("ganrt_queue_length", model=MODEL) == i + 1)
            _error(s.get(f"{IMG}/0/99.png", timeout=10), 503, "retry")
            assert s.get(f"{IMG}/0/99.png", timeout=10)[1]["retry-after"] == "1"
            # a client that disconnects while its image waits in the queue: the image is never made
            conn = socket.create_connection(("127.0.0.1", s.port))
            conn.sendall(f"GET {IMG}/2/0.png HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            time.sleep(0.2)  # the queue is full: this one is answered 503 at once, or ...
            conn.close()
            release.set()
            for f in held:
                assert f.result(30)[0] == 200
            assert s.metric("ganrt_dropped_images_total", model=MODEL) == 0
            # ... now with room in the queue and the lanes blocked again
            release.clear()
            blockers += [pool.submit(release.wait) for _ in range(lanes)]
            made = s.metric("ganrt_images_total", model=MODEL)
            for i in range(lanes):
                held.append(clients.submit(s.get, f"{IMG}/1/{i}.png"))
                _until(lambda i=i: s.metric("ganrt_images_total", model=MODEL) == made + i + 1)
            conn = socket.create_connection(("127.0.0.1", s.port))
            conn.sendall(f"GET {IMG}/2/0.png HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            _until(lambda: s.metric("ganrt_queue_length", model=MODEL) == 1)
            conn.close()  # the client leaves while its image waits
            time.sleep(0.2)
            release.set()
            for f in held:
                assert f.result(30)[0] == 200
            _until(lambda: s.metric("ganrt_dropped_images_total", model=MODEL) == 1)
            assert s.metric("ganrt_images_total", model=MODEL) == made + lanes  # the image of the client that left: never made
        finally:
            release.set()
            for b in blockers:
                b.result(10)
            clients.shutdown()


def test_api_key(tmp_path):
    with Running(ServeConfig(models=(MODEL,), api_key="s3cret")) as s:
        _error(s.get("/v1/models"), 401, "Authorization: Bearer")
        _error(s.get(f"{IMG}/0/0.png", headers={"Authorization": "Bearer wrong"}), 401)
        assert s.get("/metrics")[0] == 401
        assert s.get("/v1/models", headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert s.get(f"{IMG}/0/0.png", headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert s.get("/")[0] == 200  # the page's static files; everything it fetches needs the key


def test_models_health_metrics_and_schema(server):
    listed = json.loads(server.get("/v1/models")[2])["models"]
    assert [m["served_as"] for m in listed] == [MODEL, "sr-x2"]
    for m in listed:
        info = CliRunner().invoke(cli, ["info", m["served_as"], "--json"])
        assert {k: v for k, v in m.items() if k != "served_as"} == json.loads(info.output)
    assert json.loads(server.get("/healthz")[2]) == {"status": "ok", "models": [MODEL, "sr-x2"]}
    server.get(f"{IMG}/0/0.png")
    text = server.get("/metrics")[2].decode()
    for name in ("ganrt_requests_total", "ganrt_errors_total", "ganrt_request_duration_seconds_bucket",
                 "ganrt_batch_size_bucket", "ganrt_queue_length"):
        assert re.search(rf"^{name}\{{", text, re.M), name
    assert re.search(r'^ganrt_request_duration_seconds_count\{route="/v1/models/\{name\}/images/\{seed\}/\{index\}\.png"\} \d+',
                     text, re.M)
    schema = json.loads(server.get("/openapi.json")[2])
    paths = {"/v1/models", "/v1/models/{name}/generate", "/v1/models/{name}/upscale", "/healthz", "/metrics"}
    assert paths <= set(schema["paths"])
    assert server.get("/docs")[0] == 200
    page = server.get("/")
    assert page[0] == 200 and b"/static/app.js" in page[2] and server.get("/static/app.js")[0] == 200


def _serve_process(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "ganrt.cli", "serve", "--port", "0", *args], stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert found, line
    return proc, int(found[1])


def test_sigterm_drains_the_requests_under_way_then_exits():
    proc, port = _serve_process("-m", "sr-x2", "-m", MODEL)
    try:
        probe = Running.__new__(Running)
        probe.port = port
        body = _png((320, 320, 3))
        result = {}
        t = threading.Thread(target=lambda: result.update(r=probe.post("/v1/models/sr-x2/upscale", body, "image/png")))
        t.start()
        deadline = time.monotonic() + 30
        while probe.metric("ganrt_heavy_waiting", model="all") < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        t.join(60)
        status, _, png = result["r"]
        assert status == 200 and Image.open(io.BytesIO(png)).size == (640, 640)
        assert proc.wait(30) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


def test_serve_rejects_bad_startup_in_one_line():
    proc = subprocess.run([sys.executable, "-m", "ganrt.cli", "serve", "-m", "fashion-classifier", "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "classifier" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ganrt.cli", "serve", "-m", "no-such-model", "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "unknown model 'no-such-model'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(os.name != "posix", reason="a port in use: POSIX sockets")
def test_port_in_use_is_one_line():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        proc = subprocess.run([sys.executable, "-m", "ganrt.cli", "serve", "--port", str(holder.getsockname()[1])],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "cannot listen on 127.0.0.1" in proc.stderr and "Traceback" not in proc.stderr
    finally:
        holder.close()


def test_accepted_connections_have_tcp_nodelay():
    """asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP; the listening socket ganrt serve
    binds must be one, or every response waits ~40 ms for the client's delayed ACK (Nagle)."""
    import asyncio

    from ganrt.cli.serve import bind

    sock = bind("127.0.0.1", 0)
    seen: list[int] = []

    async def main() -> None:
        async def handle(reader, writer) -> None:
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    assert seen and seen[0] != 0


def test_a_lone_request_does_not_wait_for_a_batch():
    """With every lane idle the batcher sends what is waiting at once: --max-wait-ms (here 10 s) only applies while
    another batch runs, so one client is not slowed by it; under load batches still merge (the test above)."""
    with Running(ServeConfig(models=(MODEL,), max_batch=64, max_wait_ms=10_000)) as s:
        started = time.monotonic()
        for i in range(3):
            status, _, _ = s.get(f"{IMG}/0/{i}.png", timeout=60)
            assert status == 200
        assert time.monotonic() - started < 8, "a request waited out --max-wait-ms with no other batch running"
