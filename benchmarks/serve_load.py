"""Load on ``ganrt serve`` over loopback: dynamic batching against ``--max-batch 1`` and against the app's ceiling.

One run starts ``ganrt serve`` twice as a separate process on 127.0.0.1 (a free port): with dynamic batching
(``--max-batch 64 --max-wait-ms 2``, the defaults) and with ``--max-batch 1``. Against each, 1, 8, 32 and 128
concurrent clients (threads of this process, one keep-alive connection each) fetch distinct single images of
fashion-cgan (``/v1/models/fashion-cgan/images/0/{i}.png``, i from one shared counter) for ``--seconds``
each. Reported per point: images/s, p50 / p99 latency, errors (any status but 200, or a failed connection), the
server's RSS at the start and the end, and the mean batch (from its /metrics). The ceiling: the batching server's
``GET /bench/fixed.png``, one constant in-memory PNG of the same model (the same app, no model work), at the same
concurrencies. Upscale: requests/s of 512x512 RGB PNGs through ``--upscaler`` (sr-x2) at 4 clients.

Bounded: every point stops at ``--seconds`` or ``--max-requests``, whichever comes first; loopback only.

    python benchmarks/serve_load.py --seconds 60 --json benchmarks/results/serve-cpu.json
"""

from __future__ import annotations

import argparse
import http.client
import io
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as a script (python benchmarks/serve_load.py): the repository root on the path too
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.end_to_end import cpu_flags  # noqa: E402  (one reading of /proc/cpuinfo for every benchmark)

MODEL = "fashion-cgan"
CLIENTS = (1, 8, 32, 128)
_BASE = itertools.count(0, 10**7)  # each point's images start at a fresh index: every image of a run is distinct


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


class Server:
    """``ganrt serve`` in a subprocess on a free loopback port."""

    def __init__(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "ganrt.cli", "serve", "--host", "127.0.0.1", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not found:
            self.proc.kill()
            raise SystemExit(f"ganrt serve did not start: {line.strip()}")
        self.port = int(found[1])
        self.args = args

    def get(self, path: str) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("GET", path)
        body = conn.getresponse().read()
        conn.close()
        return body

    def metric(self, name: str, **labels: str) -> float:
        for line in self.get("/metrics").decode().splitlines():
            head, _, value = line.rpartition(" ")
            metric, _, rest = head.partition("{")
            if metric == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
                return float(value)
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.proc.stderr.close()


def load(server: Server, clients: int, seconds: float, max_requests: int, request) -> dict:
    """``clients`` threads calling ``request(conn, i)`` -> status until the deadline or max_requests in all."""
    counter, base = itertools.count(), next(_BASE)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start_gate = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        start_gate.wait()
        while True:
            i = next(counter)
            if i >= max_requests or time.perf_counter() >= deadline[0]:
                break
            t0 = time.perf_counter()
            try:
                ok = request(conn, base + i)
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            latencies[k].append(time.perf_counter() - t0)
            errors[k] += not ok
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    rss_start = rss_mb(server.proc.pid)
    images0, batches0 = server.metric("ganrt_images_total", model=MODEL), server.metric("ganrt_batch_size_count", model=MODEL)
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    rss_end = rss_mb(server.proc.pid)
    images, batches = (server.metric("ganrt_images_total", model=MODEL) - images0,
                       server.metric("ganrt_batch_size_count", model=MODEL) - batches0)
    lat = np.array([x for per in latencies for x in per])
    done = int(lat.size)
    return {"clients": clients, "seconds": round(elapsed, 2), "requests": done, "per_s": round(done / elapsed, 1),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 2) if done else None,
            "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 2) if done else None,
            "errors": sum(errors), "rss_start_mb": round(rss_start, 1), "rss_end_mb": round(rss_end, 1),
            "mean_batch": round(images / batches, 2) if batches else None}


def get(path_of):
    def request(conn: http.client.HTTPConnection, i: int) -> bool:
        conn.request("GET", path_of(i))
        reply = conn.getresponse()
        reply.read()
        return reply.status == 200
    return request


def post_png(path: str, body: bytes):
    def request(conn: http.client.HTTPConnection, i: int) -> bool:
        conn.request("POST", path, body=body, headers={"Content-Type": "image/png"})
        reply = conn.getresponse()
        reply.read()
        return reply.status == 200
    return request


def warm(server: Server, request, n: int = 50) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    for i in range(n):
        request(conn, 10**9 + i)
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="Per point (the issue's full run: 60).")
    ap.add_argument("--max-requests", type=int, default=1_000_000, help="Per point, at most.")
    ap.add_argument("--clients", default=",".join(map(str, CLIENTS)))
    ap.add_argument("--upscaler", default="sr-x2")
    ap.add_argument("--upscale-side", type=int, default=512)
    ap.add_argument("--upscale-clients", type=int, default=4)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--table", type=Path, default=None, metavar="RESULTS_JSON",
                    help="Only print the markdown tables of an earlier run's results (README, docs/serve.md).")
    args = ap.parse_args()
    if args.table is not None:
        print(table(json.loads(args.table.read_text())))
        return
    clients = [int(c) for c in args.clients.split(",")]
    threading.stack_size(512 * 1024)  # 128 client threads: small stacks (a shared VM may be near its thread limit)
    from ganrt.tools.bench import machine

    report = {"machine": {**machine(), "cpu_flags": cpu_flags(), "load_avg_start": os.getloadavg()},
              "seconds_per_point": args.seconds, "max_requests_per_point": args.max_requests,
              "client": "threads of one Python process, one keep-alive http.client connection each, on the same machine",
              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "points": []}
    image = get(lambda i: f"/v1/models/{MODEL}/images/0/{i}.png")
    rng = np.random.default_rng(0)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (args.upscale_side, args.upscale_side, 3), dtype=np.uint8)).save(buf, format="PNG")
    photo = buf.getvalue()

    def record(mode: str, r: dict) -> None:
        r = {"mode": mode, **r}
        report["points"].append(r)
        print(json.dumps(r), flush=True)
        if args.json is not None:  # after every point: a run cut short keeps what it measured
            args.json.write_text(json.dumps({**report, "complete": False}, indent=1) + "\n")

    batching = Server("-m", MODEL, "-m", args.upscaler, "--ceiling-route")
    try:
        warm(batching, image)
        for c in clients:
            record("batching (--max-batch 64)", load(batching, c, args.seconds, args.max_requests, image))
        fixed = get(lambda i: "/bench/fixed.png")
        warm(batching, fixed)
        for c in clients:
            record("ceiling (fixed in-memory PNG)", load(batching, c, args.seconds, args.max_requests, fixed))
        up = post_png(f"/v1/models/{args.upscaler}/upscale", photo)
        warm(batching, up, 2)
        record(f"upscale {args.upscale_side}x{args.upscale_side} ({args.upscaler})",
               load(batching, args.upscale_clients, args.seconds, args.max_requests, up))
    finally:
        batching.stop()
    single = Server("-m", MODEL, "--max-batch", "1")
    try:
        warm(single, image)
        for c in clients:
            record("--max-batch 1", load(single, c, args.seconds, args.max_requests, image))
    finally:
        single.stop()
    report["load_avg_end"] = os.getloadavg()
    report["complete"] = True
    by = {(p["mode"], p["clients"]): p for p in report["points"]}
    summary = {}
    for c in clients:
        b, s, ceil = by[("batching (--max-batch 64)", c)], by[("--max-batch 1", c)], by[("ceiling (fixed in-memory PNG)", c)]
        summary[str(c)] = {"batching_vs_max_batch_1": round(b["per_s"] / s["per_s"], 2) if s["per_s"] else None,
                           "batching_vs_ceiling": round(b["per_s"] / ceil["per_s"], 3) if ceil["per_s"] else None}
    report["ratios"] = summary
    print(table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


def table(report: dict) -> str:
    """The points as a markdown table, then the ratios at each client count."""
    rows = ["| mode | clients | images (requests)/s | p50 ms | p99 ms | errors | RSS start → end MB | mean batch |",
            "|---|---:|---:|---:|---:|---:|---|---:|"]
    for p in report["points"]:
        rate = f"{p['requests'] / p['seconds']:.3f}" if p["per_s"] < 1 else f"{p['per_s']:,.1f}"
        rows.append(f"| {p['mode']} | {p['clients']} | {rate} | {p['p50_ms']} | {p['p99_ms']} | {p['errors']} | "
                    f"{p['rss_start_mb']:.0f} → {p['rss_end_mb']:.0f} | {p['mean_batch'] or '-'} |")
    rows += ["", "| clients | batching / --max-batch 1 | batching / ceiling |", "|---:|---:|---:|"]
    for c, r in report.get("ratios", {}).items():
        rows.append(f"| {c} | {r['batching_vs_max_batch_1']}× | {r['batching_vs_ceiling']:.0%} |")
    m = report["machine"]
    rows += ["", f"{m['cpu']}, {m['cores']} cores ({', '.join(m['cpu_flags'])}), onnxruntime {m['onnxruntime']}; "
                 f"{report['seconds_per_point']:g} s a point, started {report['started']}; load average "
                 f"{m['load_avg_start'][0]:.1f} at the start, {report['load_avg_end'][0]:.1f} at the end"]
    return "\n".join(rows)


if __name__ == "__main__":
    main()
