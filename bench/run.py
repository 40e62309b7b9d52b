"""Build benchmark: one table of figures against the libraries' floor, measured in one run.

    python bench/run.py                 # N = 1,000 and 10,000 news (M = N / 5 events)
    python bench/run.py --sizes 1000 10000 50000

For each size: the floor (bench/floor.py), a cold full build into an empty folder, a no-op
rebuild, a rebuild after one news item changed, and after one event changed; wall time,
peak RSS of the largest process and peak memory of all the command's processes (a build
renders on two cores with a forked helper), each as a ratio to the floor. Every scenario
runs in a fresh process.
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


def peak_of(cmd: list[str]) -> tuple[float, float, float]:
    """Seconds, peak RSS of the largest process (MB) and peak memory of all its processes
    (MB, proportional set size summed over the process and its children: a build on two
    cores shares most pages with its helper, which RSS counts twice). The sum is sampled
    every 10 ms for the first half second, so that a short command is seen too, then every
    100 ms, which costs a long build little.

    Dirty pages of the step before (the corpus, the last build's files) are flushed first,
    so that no scenario pays for the previous one's disk writes.
    """
    os.sync()
    wrapper = (
        "import resource, subprocess, sys, time\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "from run import tree_pss\n"
        "t = time.perf_counter()\n"
        "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
        "top = 0.0\n"
        "while True:\n"
        "    top = max(top, tree_pss(p.pid))\n"
        "    try:\n"
        "        p.wait(timeout=0.01 if time.perf_counter() - t < 0.5 else 0.1)\n"
        "        break\n"
        "    except subprocess.TimeoutExpired:\n"
        "        pass\n"
        "dt = time.perf_counter() - t\n"
        "err = p.stderr.read()\n"
        "if p.returncode: sys.stderr.write(err.decode()[-2000:]); sys.exit(p.returncode)\n"
        "print(dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, top)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr}")
    seconds, peak, total = result.stdout.split()
    return float(seconds), float(peak), float(total)


def tree_pss(pid: int) -> float:
    """MB of proportional set size of ``pid`` and its descendants (0 if gone)."""
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) / 1024
                        break
            with open(f"/proc/{current}/task/{current}/children", encoding="ascii") as handle:
                todo.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return total


def touch_one(data: Path, kind: str, item_id: str, round_: int) -> None:
    """Change the title of one item in the middle of its file."""
    path = data / f"{kind}.yaml"
    text = path.read_text(encoding="utf-8")
    marker = f'  - id: {item_id}\n    title: "'
    assert marker in text
    path.write_text(text.replace(marker, f"{marker}Edited {round_} ", 1), encoding="utf-8")


def measure(size: int, work: Path) -> list[tuple[str, float, float, float]]:
    """All scenarios at one size: (label, seconds, peak RSS MB, peak PSS MB)."""
    data = work / f"data-{size}"
    out = work / f"out-{size}"
    write_corpus(data, size, size // 5)
    rows = []
    rows.append(("floor", *peak_of([sys.executable, str(HERE / "floor.py"), str(data)])))
    shutil.rmtree(out, ignore_errors=True)
    rows.append(("cold build", *peak_of(build_cmd(data, out))))
    rows.append(("no-op rebuild", *peak_of(build_cmd(data, out))))
    touch_one(data, "news", "news-000500", 1)
    rows.append(("one news item changed", *peak_of(build_cmd(data, out))))
    touch_one(data, "events", "event-000100", 1)
    rows.append(("one event changed", *peak_of(build_cmd(data, out))))
    files = sum(1 for p in out.rglob("*") if p.is_file() and ".state" not in p.parts)
    rows.append((f"({files} files published)", 0.0, 0.0, 0.0))
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
          f"{'RSS MB':>8} {'x floor':>8} {'all MB':>8} {'x floor':>8}")  # fmt: skip
    for size in args.sizes:
        rows = measure(size, work)
        floor_s, floor_mb, floor_all = rows[0][1:]
        for label, seconds, peak, total in rows:
            if seconds == 0.0:
                print(f"{size:>7} {size // 5:>6}  {label}")
                continue
            print(
                f"{size:>7} {size // 5:>6}  {label:<26} {seconds:>8.3f} {seconds / floor_s:>8.2f} "
                f"{peak:>8.1f} {peak / floor_mb:>8.2f} {total:>8.1f} {total / floor_all:>8.2f}"
            )
    print("RSS MB: peak resident memory of the largest process; all MB: peak proportional "
          "set size of all the command's processes (sampled every 10 ms, after 0.5 s every "
          "100 ms)")  # fmt: skip
    print(f"cccn-feeds --help: {help_time() * 1000:.0f} ms (median of 7)")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
