"""Build benchmark: one table of figures against the libraries' floor, measured in one run.

    python bench/run.py                 # N = 1,000 and 10,000 news (M = N / 5 events)
    python bench/run.py --sizes 1000 10000 50000

For each size: the floor (bench/floor.py), a cold full build into an empty folder, a no-op
rebuild, a rebuild after one news item changed, and after one event changed; wall time and
peak RSS of each (every scenario runs in a fresh process), and each as a ratio to the floor.
Then the start-up time of ``cccn-feeds --help``. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import write_corpus  # noqa: E402

BIN = Path(sys.executable).parent
NOW = "2026-11-01T12:00"


def build_cmd(data: Path, out: Path) -> list[str]:
    """The one-shot build as cron runs it."""
    return [str(BIN / "cccn-feeds"), "build", "-q", "--data", str(data), "--out", str(out),
            "--now", NOW]  # fmt: skip


def peak_of(cmd: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one command, measured by /usr/bin/time-like wrapping.

    Dirty pages of the step before (the corpus, the last build's files) are flushed first,
    so that no scenario pays for the previous one's disk writes.
    """
    os.sync()
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
        "dt = time.perf_counter() - t\n"
        "if r.returncode: sys.stderr.write(r.stderr.decode()[-2000:]); sys.exit(r.returncode)\n"
        "print(dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr}")
    seconds, peak = result.stdout.split()
    return float(seconds), float(peak)


def touch_one(data: Path, kind: str, item_id: str, round_: int) -> None:
    """Change the title of one item in the middle of its file."""
    path = data / f"{kind}.yaml"
    text = path.read_text(encoding="utf-8")
    marker = f'  - id: {item_id}\n    title: "'
    assert marker in text
    path.write_text(text.replace(marker, f"{marker}Edited {round_} ", 1), encoding="utf-8")


def measure(size: int, work: Path) -> list[tuple[str, float, float]]:
    """All scenarios at one size: (label, seconds, peak MB)."""
    data = work / f"data-{size}"
    out = work / f"out-{size}"
    write_corpus(data, size, size // 5)
    rows = []
    seconds, peak = peak_of([sys.executable, str(HERE / "floor.py"), str(data)])
    rows.append(("floor", seconds, peak))
    shutil.rmtree(out, ignore_errors=True)
    rows.append(("cold build", *peak_of(build_cmd(data, out))))
    rows.append(("no-op rebuild", *peak_of(build_cmd(data, out))))
    touch_one(data, "news", "news-000500", 1)
    rows.append(("one news item changed", *peak_of(build_cmd(data, out))))
    touch_one(data, "events", "event-000100", 1)
    rows.append(("one event changed", *peak_of(build_cmd(data, out))))
    files = sum(1 for p in out.rglob("*") if p.is_file() and ".state" not in p.parts)
    rows.append((f"({files} files published)", 0.0, 0.0))
    return rows


def help_time() -> float:
    """Median wall time of `cccn-feeds --help` over 7 runs."""
    runs = []
    for _ in range(7):
        start = time.perf_counter()
        subprocess.run([str(BIN / "cccn-feeds"), "--help"], capture_output=True, check=True)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temp dir)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="cccn-bench-"))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; work folder {work}")
    print(f"{'news':>7} {'events':>6}  {'scenario':<26} {'seconds':>8} {'x floor':>8} "
          f"{'peak MB':>8} {'x floor':>8}")  # fmt: skip
    for size in args.sizes:
        rows = measure(size, work)
        floor_s, floor_mb = rows[0][1], rows[0][2]
        for label, seconds, peak in rows:
            if seconds == 0.0:
                print(f"{size:>7} {size // 5:>6}  {label}")
                continue
            print(
                f"{size:>7} {size // 5:>6}  {label:<26} {seconds:>8.3f} {seconds / floor_s:>8.2f} "
                f"{peak:>8.1f} {peak / floor_mb:>8.2f}"
            )
    print(f"cccn-feeds --help: {help_time() * 1000:.0f} ms (median of 7)")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
