"""Benchmark: many concurrent readers polling `cccn-feeds serve` with conditional GETs.

Starts a real service on a free loopback port over a copy of the example corpus (or uses
``--url`` of a running one), then runs reader threads for a bounded time. Each reader
keeps one HTTP/1.1 connection, walks the feed addresses and sends ``If-None-Match`` with
the ETag it was last given, as feed readers and calendar apps do. A second phase asks for
full gzip bodies. Prints requests per second and latency percentiles; asserts nothing.

    .venv/bin/python bench/serve_bench.py [--threads 32] [--seconds 5] [--url URL]

The readers run in the same machine (and, being Python threads, share one interpreter
lock), so the figures are a lower bound of what the server alone can do.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PATHS = ("/news.rss", "/news.atom", "/news.json", "/events.ics", "/events.rss", "/", "/feeds.opml")


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A `serve` process over a copy of the examples; returns it and its base address."""
    data = tmp / "data"
    shutil.copytree(ROOT / "examples", data, ignore=shutil.ignore_patterns("*.md"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCCN_")}
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cccn_feeds.cli", "serve", "--port", str(port),
         "--data", str(data), "--out", str(tmp / "out")],
        cwd=tmp, env=env, stdout=log, stderr=log,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the service did not become healthy; see {tmp / 'serve.log'}")


def reader(
    host: str,
    port: int,
    stop_at: float,
    conditional: bool,
    latencies: list[float],
    statuses: Counter[int],
    lock: threading.Lock,
) -> None:
    """Poll the feed addresses on one keep-alive connection until ``stop_at``."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    etags: dict[str, str] = {}
    mine: list[float] = []
    seen: Counter[int] = Counter()
    n = 0
    while time.perf_counter() < stop_at:
        path = PATHS[n % len(PATHS)]
        n += 1
        headers = {"Accept-Encoding": "gzip", "User-Agent": "serve-bench"}
        if conditional and path in etags:
            headers["If-None-Match"] = etags[path]
        started = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
            seen[0] += 1
            continue
        mine.append(time.perf_counter() - started)
        seen[resp.status] += 1
        tag = resp.getheader("ETag")
        if tag:
            etags[path] = tag
    conn.close()
    with lock:
        latencies.extend(mine)
        statuses.update(seen)


def phase(base: str, threads: int, seconds: float, conditional: bool) -> None:
    """Run the readers for one phase and print its figures."""
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    started = time.perf_counter()
    workers = [
        threading.Thread(
            target=reader, args=(host, port, stop_at, conditional, latencies, statuses, lock)
        )
        for _ in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    label = "conditional GETs (If-None-Match)" if conditional else "full GETs (gzip)"
    if not latencies:
        print(f"{label}: no request completed")
        return
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    print(
        f"{label}: {threads} readers, {elapsed:.1f} s, {len(latencies)} requests, "
        f"{len(latencies) / elapsed:.0f} req/s; latency p50 {cuts[49] * 1000:.2f} ms, "
        f"p90 {cuts[89] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms, "
        f"max {max(latencies) * 1000:.2f} ms; statuses {dict(sorted(statuses.items()))}"
    )


def main() -> None:
    """Parse options, start the service unless given one, and run both phases."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=32, help="concurrent readers")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    parser.add_argument("--url", help="base address of a running service (default: start one)")
    args = parser.parse_args()
    proc = None
    with tempfile.TemporaryDirectory(prefix="cccn-bench-") as tmp:
        if args.url:
            base = args.url.rstrip("/")
        else:
            proc, base = start_service(Path(tmp))
        try:
            print(f"service at {base}; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
            phase(base, args.threads, args.seconds, conditional=True)
            phase(base, args.threads, args.seconds, conditional=False)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)


if __name__ == "__main__":
    main()
