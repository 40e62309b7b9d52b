"""Benchmark: builds inside `cccn-feeds serve`, and what the service keeps of them.

Starts a real service on a free loopback port over a synthetic corpus (bench/corpus.py),
then changes the data twice (one event; the title of every news item) and lets the file
watcher start each build. For the first build and each change it prints: the build's
seconds (from the service's log), the service's memory once the build is over (resident
and proportional set size of the service and any child it still has), and the latency of
a small request (a conditional GET of news.rss) sent every 10 ms while the build runs.
It asserts nothing.

    .venv/bin/python bench/service_builds.py [--news 10000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import write_corpus  # noqa: E402
from run import tree_pss  # noqa: E402
from serve_bench import free_port  # noqa: E402

_LINE = re.compile(r"^(\S+ \S+) INFO cccn_feeds\.service: build #(\d+) (started|finished)")


def rss_mb(pid: int) -> float:
    """Resident set size of one process (MB)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def build_times(log: Path) -> dict[int, float]:
    """Seconds of each finished build, by number, from the service's log lines."""
    started: dict[int, datetime] = {}
    took: dict[int, float] = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        moment = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f")
        number = int(match[2])
        if match[3] == "started":
            started[number] = moment
        elif number in started:
            took[number] = (moment - started[number]).total_seconds()
    return took


class Prober(threading.Thread):
    """Sends a conditional GET every 10 ms on one connection; keeps each latency."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.latencies, self.stop = port, list[float](), threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        etag = ""
        while not self.stop.is_set():
            began = time.perf_counter()
            conn.request("GET", "/news.rss", headers={"If-None-Match": etag} if etag else {})
            response = conn.getresponse()
            response.read()
            etag = response.getheader("ETag") or etag
            self.latencies.append(time.perf_counter() - began)
            time.sleep(0.01)
        conn.close()


def wait_for_build(log: Path, number: int, timeout: float = 300) -> float:
    """Wait until build ``number`` finished; its seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        took = build_times(log)
        if number in took:
            return took[number]
        time.sleep(0.05)
    raise SystemExit(f"build #{number} did not finish; see {log}")


def main() -> None:
    """Start the service, change the data twice, print one line per build."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--news", type=int, default=10_000, help="news items (events: a fifth)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cccn-bench-") as tmp:
        work = Path(tmp)
        data = work / "data"
        write_corpus(data, args.news, args.news // 5)
        port = free_port()
        log = work / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCCN_")}
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cccn_feeds.cli", "serve", "--port", str(port),
                 "--data", str(data), "--out", str(work / "out")],
                cwd=work, env=env, stdout=sink, stderr=sink,
            )  # fmt: skip
        try:
            print(
                f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
                f"{args.news} news, {args.news // 5} events"
            )
            print(
                f"{'build':<28}{'seconds':>8}{'RSS MB':>9}{'all MB':>9}"
                f"{'median ms':>11}{'max ms':>9}"
            )
            steps = [
                ("first build (start)", None),
                ("one event changed", ("events.yaml", "title: ", "title: Changed ", 1)),
                ("every news title changed", ("news.yaml", "title: ", "title: New ", -1)),
            ]
            for number, (label, edit) in enumerate(steps, start=1):
                prober = Prober(port)
                if edit is not None:
                    prober.start()
                    name, old, new, count = edit
                    path = data / name
                    path.write_text(path.read_text("utf-8").replace(old, new, count), "utf-8")
                seconds = wait_for_build(log, number)
                if edit is not None:
                    prober.stop.set()
                    prober.join()
                else:
                    prober.start()  # a few requests, to measure the idle service below
                    time.sleep(0.5)
                    prober.stop.set()
                    prober.join()
                time.sleep(1.0)  # the build's child is gone; the service is idle
                lat = [x * 1000 for x in prober.latencies] or [0.0]
                print(
                    f"{label:<28}{seconds:>8.2f}{rss_mb(proc.pid):>9.1f}"
                    f"{tree_pss(proc.pid):>9.1f}{statistics.median(lat):>11.1f}{max(lat):>9.1f}"
                )
            print(
                "RSS MB / all MB: the service's resident memory / proportional set size of it "
                "and its children, 1 s after the build; ms: a conditional GET during the build "
                "(first line: while idle)"
            )
        finally:
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    main()
