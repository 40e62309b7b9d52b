"""Link-checker benchmark: 1,000 links over 50 loopback hosts, each answering after 200 ms.

    python bench/linkcheck_bench.py
    python bench/linkcheck_bench.py --links 1000 --hosts 50 --latency 0.2 --runs 3

The servers (127.0.0.2 to 127.0.0.51) run in a separate process, so they do not share the
checker's interpreter lock, and count how many requests each host had in flight at once.
The checker runs with the default [linkcheck] settings except ``allow_networks``. The
physical limit is links x latency / allowed concurrency, where the allowed concurrency is
min(concurrency, hosts x per_host): no polite checker can finish sooner. It prints
figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cccn_feeds.linkcheck import Use, check_links
from cccn_feeds.settings import load_settings

BODY = b"<!doctype html><title>An article</title><h1>An article</h1><p>Text.</p>"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # http.server writes the head and the body separately; with Nagle on, a reused
    # keep-alive connection waits for the client's delayed ACK (40 ms) between them.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:
            srv.active += 1
            srv.peak = max(srv.peak, srv.active)
            srv.requests += 1
        try:
            time.sleep(srv.latency)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        finally:
            with srv.lock:
                srv.active -= 1

    do_HEAD = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, host: str, latency: float) -> None:
        super().__init__((host, 0), _Handler)
        self.latency = latency
        self.lock = threading.Lock()
        self.active = self.peak = self.requests = 0


def _serve(hosts: int, latency: float, pipe: Connection) -> None:
    """Child process: start the servers, report their addresses, then their counts."""
    servers = [_Server(f"127.0.0.{n + 2}", latency) for n in range(hosts)]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    pipe.send([srv.server_address[:2] for srv in servers])
    while (msg := pipe.recv()) != "stop":
        if msg == "stats":
            pipe.send([(srv.peak, srv.requests) for srv in servers])
        elif msg == "reset":
            for srv in servers:
                with srv.lock:
                    srv.peak = srv.requests = 0
    for srv in servers:
        srv.shutdown()


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--links", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(
        target=_serve, args=(args.hosts, args.latency, child), daemon=True
    )
    proc.start()
    addresses = parent.recv()
    links = {
        f"http://{host}:{port}/article/{n}": [Use("news", f"item-{n}", "url")]
        for n in range(args.links)
        for host, port in [addresses[n % args.hosts]]
    }
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            None,
            environ={},
            overrides={
                "paths": {"data": tmp, "output": tmp},
                "linkcheck": {"allow_networks": ["127.0.0.0/8"]},
            },
        )
        lc = settings.linkcheck
        allowed = min(lc.concurrency, args.hosts * lc.per_host)
        limit = args.links * args.latency / allowed
        print(
            f"{args.links} links over {args.hosts} hosts, {args.latency * 1000:.0f} ms each; "
            f"concurrency {lc.concurrency}, per_host {lc.per_host}, "
            f"min_interval {lc.min_interval}s -> allowed concurrency {allowed}"
        )
        print(f"physical limit: {limit:.2f} s")
        for number in range(1, args.runs + 1):
            parent.send("reset")
            started = time.perf_counter()
            result = check_links(links, settings)
            wall = time.perf_counter() - started
            parent.send("stats")
            stats = parent.recv()
            verdicts = Counter(o.verdict for o in result.outcomes.values())
            server_peak = max(peak for peak, _ in stats)
            client_peak = max(result.peaks.values())
            print(
                f"run {number}: wall {wall:.2f} s, ratio {wall / limit:.3f}x the limit; "
                f"highest per-host concurrency {server_peak} seen by the servers "
                f"({client_peak} by the checker; limit {lc.per_host}); "
                f"requests {sum(n for _, n in stats)}; verdicts {dict(verdicts)}"
            )
    parent.send("stop")
    proc.join(5)


if __name__ == "__main__":
    main()
