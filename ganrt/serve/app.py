"""The FastAPI app of ``ganrt serve``: the endpoints, their errors, auth, metrics and the web page.

Every request names a model by the name it was served under; nothing a request sends reaches the file system
(bodies are read into memory with a limit, the page's files are read once at start). Work runs on threads:
single images on the batchers' lanes (``batching``), whole runs and upscales on one worker of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import inspect
import io
import json
import logging
import math
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ganrt import __version__
from ganrt.core.bundled import available_models
from ganrt.core.errors import GanrtError, ModelNotFoundError, ParameterError
from ganrt.io.images import grid_bytes, pil_bytes, read_image
from ganrt.io.npz import encode_npz
from ganrt.kinds.generator import Generator
from ganrt.kinds.registry import load
from ganrt.kinds.translator import Translator
from ganrt.kinds.upscaler import Upscaler
from ganrt.runs.png_files import run_pngs
from ganrt.runs.writer import DEFAULT_SHARD_SIZE, run_header
from ganrt.serve.batching import Batcher, Job, QueueFull, walk_latent
from ganrt.serve.config import RETRY_AFTER_S, ServeConfig
from ganrt.serve.metrics import Metrics

IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}  # what /upscale and /translate take
MAX_HEAVY_WAITING = 16  # whole runs and upscales queued behind the one running: more is 503
MAX_INDEX = 1 << 62  # image indices and seeds: far beyond any run, inside numpy's int64/uint64
IMMUTABLE = "public, max-age=31536000, immutable"
IMAGE_ROUTE = "/v1/models/{name}/images/{seed}/{index}.png"
CEILING_ROUTE = "/bench/fixed.png"
# The image route as the fast path reads it: a served name, a seed and an index of at most 19 digits (the range
# is checked after), and a query of at most one label and one truncation (a plain positive decimal).
_IMAGE_PATH = re.compile(r"/v1/models/([^/]+)/images/(-?[0-9]{1,19})/([0-9]{1,19})\.png")
_DECIMAL = re.compile(r"[0-9]{0,12}\.?[0-9]{1,12}")
PUBLIC_PATHS = ("/", "/static/app.js", "/static/style.css", "/healthz")  # the page's files and liveness: no key needed


Seed = Annotated[int, Path(ge=-MAX_INDEX, le=MAX_INDEX)]
Index = Annotated[int, Path(ge=0, le=MAX_INDEX)]
Label = Annotated[str | None, Query(description="Class index or name; default: class index % K, as a run")]
Truncation = Annotated[float | None, Query(gt=0, description="Truncation trick (as ganrt generate --truncation)")]


class ApiError(Exception):
    """An error reply: ``status``, one line of ``message``, extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class GenerateBody(BaseModel):
    """``POST /v1/models/{name}/generate``: images start .. start+n-1 of run ``seed``, as ``ganrt generate``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    n: int = Field(16, ge=1, description="Images (at most the server's limit, 1024 by default).")
    seed: int = Field(0, ge=-MAX_INDEX, le=MAX_INDEX)
    start: int = Field(0, ge=0, le=MAX_INDEX, description="First image index.")
    labels: int | str | list[int | str] | None = Field(
        None, description="One class (index or name) for all, one per image, or null: image i gets class i % K.")
    truncation: float | None = Field(None, gt=0, description="Truncation trick: resample latent components beyond +-T.")
    format: Literal["grid.png", "npz"] = Field("grid.png", description="A PNG grid, or an npz of images/indices/labels.")


class _Loaded:
    """The models a server was started with, by the name it serves each under."""

    def __init__(self, config: ServeConfig) -> None:
        self.models: dict[str, Any] = {}
        bundled = available_models()
        for spec in config.models:
            model = load(spec, device=config.device, threads=config.threads, spin=False)
            if not isinstance(model, (Generator, Upscaler, Translator)):
                model.close()
                raise ParameterError(f"'{spec}' is a {model.info.kind}; ganrt serve serves generators, upscalers and translators")
            name = spec if spec in bundled else model.name
            if name in self.models:
                raise ParameterError(f"two models would both be served as '{name}'; give each file once")
            self.models[name] = model

    def close(self) -> None:
        for model in self.models.values():
            model.close()


def _static(name: str) -> bytes:
    return resources.files("ganrt.serve").joinpath("static", name).read_bytes()


def create_app(config: ServeConfig) -> Any:
    """The ASGI app serving ``config.models`` (loaded now: a bad model fails here, before a port is bound):
    the FastAPI app (``.app``) inside the auth and metrics layer."""
    loaded = _Loaded(config)
    metrics = Metrics()
    generators = {n: m for n, m in loaded.models.items() if isinstance(m, Generator)}
    lanes = sum(config.lanes or g.lanes for g in generators.values()) or 1
    pool = ThreadPoolExecutor(lanes, thread_name_prefix="ganrt-serve-lane")
    heavy = ThreadPoolExecutor(1, thread_name_prefix="ganrt-serve-run")  # its calls use every core themselves
    heavy_waiting = [0]
    batchers = {n: Batcher(g, pool, max_batch=config.max_batch, max_wait_ms=config.max_wait_ms,
                           max_queue=config.max_queue, metrics=metrics, name=n, lanes=config.lanes)
                for n, g in generators.items()}
    metrics.gauges["ganrt_queue_length"] = ("Single images waiting in the dynamic batcher's queue.",
                                           lambda: {(n, ): b.waiting for n, b in batchers.items()})
    metrics.gauges["ganrt_heavy_waiting"] = ("Whole runs, upscales and translations running or waiting.",
                                            lambda: {("all",): heavy_waiting[0]})
    # a run's header per generator (seed and truncation set per image on the lane): the provenance of its PNGs
    headers = {n: run_header(g, n=1, seed=0, labels=None, truncation=None, start=0, fmt="png",
                             shard_size=DEFAULT_SHARD_SIZE)[0] for n, g in generators.items()}
    page = {"/": (_static("index.html"), "text/html; charset=utf-8"),
            "/static/app.js": (_static("app.js"), "text/javascript; charset=utf-8"),
            "/static/style.css": (_static("style.css"), "text/css; charset=utf-8")}
    fixed_png = None
    if config.ceiling_route and generators:
        first = next(iter(generators.values()))
        fixed_png = run_pngs(first.images_at([0]), [(next(iter(headers.values())), 0, 0 if first.info.conditional else None)])[0]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        for b in batchers.values():
            b.start()
        try:
            yield
        finally:  # uvicorn has drained the requests under way (SIGTERM) before it gets here
            for b in batchers.values():
                await b.stop()
            pool.shutdown(wait=True)
            heavy.shutdown(wait=True)
            loaded.close()

    app = FastAPI(title="ganrt serve", version=__version__, lifespan=lifespan,
                  description="GAN generators, upscalers and translators over HTTP, with dynamic batching (torch-free: "
                              "numpy + onnxruntime).", **_NO_TELEMETRY)
    app.state.loaded, app.state.metrics, app.state.config = loaded, metrics, config
    app.state.batchers, app.state.pool = batchers, pool

    # -- errors: JSON {"error": one line} ------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(GanrtError)
    async def _ganrt_error(request: Request, exc: GanrtError) -> JSONResponse:
        status = 404 if isinstance(exc, ModelNotFoundError) else 400
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_line(exc.errors())}, status_code=422)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:  # a bug: uvicorn also logs its traceback
        return _internal_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: f"no such endpoint: {request.url.path} (GET /docs lists them)"}.get(exc.status_code, str(exc.detail))
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    # -- lookups ---------------------------------------------------------------------------------
    def model_of(name: str, kind: type, what: str) -> Any:
        model = loaded.models.get(name)
        if model is None:
            raise ApiError(404, f"unknown model '{name}'; this server serves {', '.join(loaded.models)} (GET /v1/models)")
        if not isinstance(model, kind):
            able = [n for n, m in loaded.models.items() if isinstance(m, kind)]
            raise ApiError(400, f"'{name}' is a {model.info.kind}, it cannot {what}; "
                                f"{'use ' + ', '.join(able) if able else 'no model served here can'}")
        return model

    def single_label(gen: Generator, label: str | None, index: int) -> int | None:
        if label is None or label == "":
            return index % gen.num_classes if gen.info.conditional else None  # a run's default: class i % K
        return gen.label_index(label)

    async def wait_for(receive, future: asyncio.Future, on_leave=None) -> Any:
        """The result of ``future``, or None when the client disconnects first (``receive``: the request's ASGI
        receive; then ``future`` is cancelled: queued work is dropped; ``on_leave`` tells running work to stop)."""
        watcher = asyncio.ensure_future(_disconnected(receive))
        # the watcher cancels the future when the client leaves (callbacks, not asyncio.wait: its two waiter
        # futures per call were a tenth of the event loop's time per image)
        watcher.add_done_callback(lambda w: None if w.cancelled() else future.cancel())
        try:
            return await future
        except asyncio.CancelledError:
            if not watcher.done() or watcher.cancelled():
                raise  # this request's task was cancelled (the server stops), not the client gone
        finally:
            watcher.cancel()
        if on_leave is not None:
            on_leave()
        return None

    async def single(receive, if_none_match: str, name: str, job: Job, etag: str) -> tuple[int, bytes, dict[str, str]]:
        """(status, body, headers) of one image: 304 when the client has it, 499 when it left before it was made."""
        cache = {"ETag": etag, "Cache-Control": IMMUTABLE}
        if etag in {t.strip() for t in if_none_match.split(",") if t.strip()}:
            return 304, b"", cache
        try:
            future = batchers[name].submit(job)
        except QueueFull as exc:
            raise ApiError(503, str(exc), {"Retry-After": str(RETRY_AFTER_S)}) from None
        png = await wait_for(receive, future)
        if png is None:
            return 499, b"", {}  # nobody reads it: the client has gone
        return 200, png, {"Content-Type": "image/png", **cache}

    def image_job(name: str, seed: int, index: int, label: str | None, truncation: float | None) -> tuple[Job, str]:
        """What image ``index`` of run ``seed`` needs (its job and ETag); ``ApiError`` / ``GanrtError`` if it can't be."""
        gen = model_of(name, Generator, "generate images")
        y = single_label(gen, label, index)
        # what the PNG's bytes depend on (its text chunks name the served model)
        return Job(seed, index, y, truncation, header=headers[name]), _etag(gen, name, "image", seed, index, y, truncation)

    async def fast(scope: dict, receive, send) -> str | None:
        """The image route (and the benchmark's ceiling route) for a well-formed GET, answered here without FastAPI's
        routing, parameter validation and middleware (~60 % of the event loop's time per image, benchmarks/NOTES.md);
        the same replies, bytes and headers. Returns the route served, or None: anything unusual (a bad number, an
        unknown model or class, another query key) goes on to the declared route, which says what is wrong."""
        path = scope["path"]
        if path == CEILING_ROUTE and fixed_png is not None and not scope["query_string"]:
            await _send_raw(send, 200, fixed_png, {"Content-Type": "image/png"})
            return CEILING_ROUTE
        m = _IMAGE_PATH.fullmatch(path)
        query = _simple_query(scope["query_string"]) if m is not None else None
        if query is None:
            return None
        seed, index = int(m[2]), int(m[3])
        if not (-MAX_INDEX <= seed <= MAX_INDEX and index <= MAX_INDEX):
            return None
        try:
            job, etag = image_job(m[1], seed, index, query.get("label"), query.get("truncation"))
        except (ApiError, GanrtError):
            return None
        if_none_match = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"if-none-match"), "")
        try:
            status, body, head = await single(receive, if_none_match, m[1], job, etag)
        except ApiError as exc:  # a full queue
            await JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)(scope, receive, send)
            return IMAGE_ROUTE
        except Exception as exc:  # a bug, answered as the app's own handler answers it (and logged, as uvicorn would)
            logging.getLogger("uvicorn.error").exception("error in %s", path)
            await _internal_error(exc)(scope, receive, send)
            return IMAGE_ROUTE
        await _send_raw(send, status, body, head)
        return IMAGE_ROUTE

    async def run_heavy(request: Request, fn, *args) -> Any:
        """``fn(*args, stop)`` on the worker of whole runs and upscales; ``stop`` is set if the client leaves."""
        if heavy_waiting[0] >= MAX_HEAVY_WAITING:
            raise ApiError(503, f"{MAX_HEAVY_WAITING} runs and upscales are waiting; retry shortly",
                           {"Retry-After": str(RETRY_AFTER_S)})
        stop = threading.Event()
        heavy_waiting[0] += 1
        try:
            future = asyncio.get_running_loop().run_in_executor(heavy, _unless_stopped, fn, args, stop)
            return await wait_for(request.receive, future, on_leave=stop.set)
        finally:
            heavy_waiting[0] -= 1

    # -- endpoints ---------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    @app.get("/static/{file}", include_in_schema=False)
    async def page_file(request: Request) -> Response:
        body, media = page.get(request.url.path, (None, None))
        if body is None:
            raise ApiError(404, f"no such file: {request.url.path}")
        return Response(body, media_type=media)

    @app.get("/healthz", summary="Liveness: ok and the served models")
    async def healthz() -> dict:
        return {"status": "ok", "models": list(loaded.models)}

    @app.get("/metrics", summary="Prometheus text format: requests, errors, latency, batch sizes, queue lengths")
    async def metrics_text() -> Response:
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models", summary="Each served model and its settings, as `ganrt info --json` gives them")
    async def list_models() -> dict:
        return {"models": [{**m.settings(), "served_as": n, "kind": m.info.kind} for n, m in loaded.models.items()]}

    @app.get(IMAGE_ROUTE, response_class=Response,
             summary="Image `index` of `ganrt generate --seed SEED`: the same PNG, byte for byte; immutable")
    async def image(request: Request, name: str, seed: Seed, index: Index, label: Label = None,
                    truncation: Truncation = None) -> Response:
        job, etag = image_job(name, seed, index, label, truncation)
        status, body, head = await single(request.receive, request.headers.get("if-none-match", ""), name, job, etag)
        return Response(body, status_code=status, headers=head)

    @app.get("/v1/models/{name}/walk/{seed_a}/{seed_b}/{index}.png", response_class=Response,
             summary="A fraction t of the way (slerp) from image `index` of run `seed_a` to image `index` of run `seed_b`")
    async def walk(request: Request, name: str, seed_a: Seed, seed_b: Seed, index: Index,
                   t: Annotated[float, Query(ge=0, le=1)] = 0.5, label: Label = None,
                   truncation: Truncation = None) -> Response:
        gen = model_of(name, Generator, "generate images")
        y = single_label(gen, label, index)
        z = walk_latent(gen, seed_a, seed_b, index, t, truncation)
        etag = _etag(gen, "walk", seed_a, seed_b, index, t, y, truncation)
        status, body, head = await single(request.receive, request.headers.get("if-none-match", ""), name,
                                          Job(seed_a, index, y, truncation, z=z), etag)
        return Response(body, status_code=status, headers=head)

    @app.post("/v1/models/{name}/generate", response_class=Response,
              summary="Images start .. start+n-1 of run `seed` as a PNG grid or an npz",
              openapi_extra={"requestBody": {"required": True,
                                             "content": {"application/json": {"schema": GenerateBody.model_json_schema()}}}})
    async def generate(request: Request, name: str) -> Response:
        gen = model_of(name, Generator, "generate images")
        _content_type(request, ("application/json",))
        raw = await _body(request, config.max_body)
        try:
            body = GenerateBody.model_validate(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise ApiError(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except UnicodeDecodeError:
            raise ApiError(400, "malformed JSON: the body is not UTF-8") from None
        except ValidationError as exc:
            raise ApiError(422, _validation_line(exc.errors(), body=True)) from None
        if body.n > config.max_n:
            raise ApiError(400, f"n = {body.n} is over this server's limit of {config.max_n} images per request; "
                                "ask for fewer, or page through with start")
        labels = body.labels
        run_header(gen, n=body.n, seed=body.seed, labels=labels, truncation=body.truncation, start=body.start,
                   fmt="png", shard_size=DEFAULT_SHARD_SIZE)  # every argument checked before any work
        data = await run_heavy(request, _generate, gen, body)
        if data is None:
            return Response(status_code=499)
        if body.format == "npz":
            return Response(data, media_type="application/octet-stream",
                            headers={"Content-Disposition": f'attachment; filename="{name}-{body.seed}-{body.start}.npz"'})
        return Response(data, media_type="image/png")

    async def image_to_image(request: Request, model: Any, resample: str | None) -> Response:
        fmt = IMAGE_TYPES[_content_type(request, tuple(IMAGE_TYPES))]
        raw = await _body(request, config.max_body)
        probe = read_image(io.BytesIO(raw), max_pixels=1 << 62, load=False, name="the request body")
        w, h = probe.size
        if w * h > config.max_pixels:
            raise ApiError(413, f"the image has {w}x{h} = {w * h:,} pixels, over this server's limit of "
                                f"{config.max_pixels:,} (--max-pixels)")
        if probe.format != fmt:
            raise ApiError(415, f"the body is {probe.format or 'an unknown format'}, not the {fmt} its Content-Type says")
        im = read_image(io.BytesIO(raw), max_pixels=config.max_pixels, name="the request body")
        data = await run_heavy(request, _image_to_image, model, im, resample)
        if data is None:
            return Response(status_code=499)
        return Response(data, media_type="image/png")

    @app.post("/v1/models/{name}/upscale", response_class=Response,
              summary="The body is a PNG, JPEG or WebP image; the reply is it upscaled (tiled, as `ganrt upscale`), as PNG",
              openapi_extra={"requestBody": {"required": True, "content": {t: {} for t in IMAGE_TYPES}}})
    async def upscale(request: Request, name: str,
                      resample: Annotated[Literal["model", "bicubic"], Query(
                          description="bicubic: Pillow's bicubic resize by the same factor, to compare")] = "model") -> Response:
        return await image_to_image(request, model_of(name, Upscaler, "upscale"), resample)

    @app.post("/v1/models/{name}/translate", response_class=Response,
              summary="The body is a PNG, JPEG or WebP image; the reply is it translated (as `ganrt translate`), as PNG",
              openapi_extra={"requestBody": {"required": True, "content": {t: {} for t in IMAGE_TYPES}}})
    async def translate(request: Request, name: str) -> Response:
        return await image_to_image(request, model_of(name, Translator, "translate"), None)

    if fixed_png is not None:
        @app.get(CEILING_ROUTE, include_in_schema=False)
        async def fixed() -> Response:  # benchmarks/serve_load.py's ceiling: the same app, no model work
            return Response(fixed_png, media_type="image/png")

    return _Middleware(app, metrics, config.api_key, fast)


# -- work on threads ---------------------------------------------------------------------------------------
def _unless_stopped(fn, args: tuple, stop: threading.Event) -> Any:
    return None if stop.is_set() else fn(*args, stop)


def _generate(gen: Generator, body: GenerateBody, stop: threading.Event) -> bytes | None:
    images = np.empty((body.n, *gen.image_shape), dtype=np.uint8)  # (n, H, W, C)
    labels = np.empty(body.n, dtype=np.int64) if gen.info.conditional else None
    for batch in gen.iter_batches(body.n, seed=body.seed, labels=body.labels, truncation=body.truncation, start=body.start):
        if stop.is_set():  # the client left: the rest of the run is not made
            return None
        k = batch.start - body.start
        images[k : k + len(batch.images)] = batch.images
        if labels is not None:
            labels[k : k + len(batch.images)] = batch.labels
    if body.format == "npz":
        arrays = {"images": images, "indices": np.arange(body.start, body.start + body.n, dtype=np.int64)}
        return encode_npz(**arrays, **({"labels": labels} if labels is not None else {}))
    return grid_bytes(images)


def _image_to_image(model: Any, im: Any, resample: str | None, stop: threading.Event) -> bytes:
    if isinstance(model, Translator):
        return pil_bytes(model.translate(im))
    if resample == "bicubic":
        from PIL import Image

        im = im if im.mode in ("L", "RGB", "RGBA") else im.convert("RGBA" if "A" in im.getbands() else "RGB")
        return pil_bytes(im.resize((im.width * model.scale, im.height * model.scale), Image.BICUBIC))
    return pil_bytes(model.upscale(im))


# FastAPI >= 0.16x traces and meters every request through OpenTelemetry when that is installed (Ray brings it): a
# provider lookup and spans per request, ~5 % of the event loop's time per single image here. /metrics is ganrt's own.
_NO_TELEMETRY = ({"telemetry": {"tracing": False, "metrics": False, "logs": False}}
                 if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


# -- request helpers -----------------------------------------------------------------------------------------
def _etag(gen: Generator, *parts: Any) -> str:
    """The ETag of a reply fully determined by ``parts`` and ``gen``'s file, provider and this ganrt's version."""
    key = "|".join([gen.sha256, *map(repr, parts), __version__, gen.provider])
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:40] + '"'


def _internal_error(exc: Exception) -> JSONResponse:
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    return JSONResponse({"error": f"internal error ({type(exc).__name__}): {first}"}, status_code=500)


async def _disconnected(receive) -> None:
    """Returns when the client disconnects (uvicorn says so once the request body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _simple_query(raw: bytes) -> dict[str, Any] | None:
    """An image request's query as the fast path takes it: {} or label (any text with no %-escape but a space, as
    ``+`` or ``%20``; the model checks the class) and truncation (a plain positive decimal), each at most once; None
    for anything else (the declared route parses and answers it)."""
    if not raw:
        return {}
    out: dict[str, Any] = {}
    for part in raw.split(b"&"):
        key, eq, value = part.partition(b"=")
        key_text = key.decode("latin-1")
        if not eq or key_text in out or key_text not in ("label", "truncation"):
            return None
        text = value.replace(b"+", b" ").replace(b"%20", b" ").decode("latin-1")
        if "%" in text:
            return None
        if key_text == "truncation":
            if not _DECIMAL.fullmatch(text) or not (float(text) > 0 and math.isfinite(float(text))):
                return None
            out["truncation"] = float(text)
        else:
            out["label"] = text if text else None
    return out


async def _send_raw(send, status: int, body: bytes, headers: dict[str, str]) -> None:
    """One whole reply as two ASGI messages (what a Starlette ``Response`` sends, without building one)."""
    head = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if status not in (304, 204) and status >= 200:
        head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def _content_type(request: Request, allowed: tuple[str, ...]) -> str:
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given not in allowed:
        raise ApiError(415, f"Content-Type {given or '(none)'} is not accepted here; send {' or '.join(allowed)}")
    return given


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed ``limit`` bytes: by Content-Length
    before anything is read, else by counting while it streams in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ApiError(400, f"Content-Length {declared!r} is not a number of bytes")
        if int(declared) > limit:
            raise ApiError(413, f"the body declares {int(declared):,} bytes, over this server's limit of {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is over this server's limit of {limit:,} bytes")
        chunks.append(chunk)
    if size == 0:
        raise ApiError(400, "the request body is empty")
    return b"".join(chunks)


def _validation_line(errors: list[dict], *, body: bool = False) -> str:
    """pydantic's errors as one line: 'where: what' for each."""
    parts = []
    for e in errors[:5]:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body",)]
        where = ".".join(loc[1:] if not body and loc and loc[0] in ("path", "query", "header") else loc) or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


class _Middleware:
    """Outermost ASGI layer: Bearer auth (``--api-key``) and the request metrics of every reply."""

    def __init__(self, app: FastAPI, metrics: Metrics, api_key: str | None, fast=None) -> None:
        self.app, self.metrics, self._fast = app, metrics, fast
        self._key = None if api_key is None else f"Bearer {api_key}".encode()
        self.state = app.state

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status, served = time.perf_counter(), [500], None

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if self._key is not None and scope["path"] not in PUBLIC_PATHS and not self._authorized(scope):
                await JSONResponse({"error": "this server needs an API key: send the header Authorization: Bearer KEY"},
                                   status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send_status)
                return
            if self._fast is not None and scope["method"] == "GET":
                served = await self._fast(scope, receive, send_status)
                if served is not None:
                    return
            await self.app(scope, receive, send_status)
        finally:
            route = served or getattr(scope.get("route"), "path", None) or ("auth" if status[0] == 401 else "unmatched")
            self.metrics.request(route, scope["method"], status[0], time.perf_counter() - started)

    def _authorized(self, scope: dict) -> bool:
        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        return hmac.compare_digest(given, self._key)

