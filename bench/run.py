"""Build benchmark: one table of figures against the libraries' floor, measured in one run.

    python bench/run.py                 # N = 1,000 and 10,000 news (M = N / 5 events)
    python bench/run.py --sizes 1000 10000 50000
    python bench/run.py --one-core      # the builds with [build] parallel = false

For each size: the floor (bench/floor.py), a cold full build into an empty folder, a no-op
rebuild, a rebuild after one news item changed, and after one event changed; wall time,
peak RSS of the largest process and peak memory of all the command's processes (a build
renders on two cores with a forked helper), each as a ratio to the floor. Each time is
the median of ``--repeat`` runs (3; each cold build into an empty folder of its own, each
changed-item rebuild after an edit of its own); then every scenario runs once more with
its memory sampled. All in fresh processes.
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
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import write_corpus  # noqa: E402

BIN = Path(sys.executable).parent
NOW = "2026-11-01T12:00"


def build_cmd(data: Path, out: Path, config: Path | None = None) -> list[str]:
    """The one-shot build as cron runs it (with ``config``: that configuration file)."""
    extra = ["--config", str(config)] if config else []
    return [str(BIN / "cccn-feeds"), "build", "-q", "--data", str(data), "--out", str(out),
            "--now", NOW, *extra]  # fmt: skip


def _run(cmd: list[str], sample: bool) -> tuple[float, float, float]:
    """Run ``cmd`` once: seconds, peak RSS of its largest process (MB, from getrusage) and,
    when ``sample``, the peak proportional set size of all its processes (MB, else 0).

    Dirty pages of the step before (the corpus, the last build's files) are flushed first,
    so that no scenario pays for the previous one's disk writes.
    """
    os.sync()
    wrapper = (
        "import resource, subprocess, sys, time\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "from run import tree_pss\n"
        f"sample = {sample!r}\n"
        "t = time.perf_counter()\n"
        "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
        "top = 0.0\n"
        "while sample:\n"
        "    top = max(top, tree_pss(p.pid))\n"
        "    try:\n"
        "        p.wait(timeout=0.01)\n"
        "        break\n"
        "    except subprocess.TimeoutExpired:\n"
        "        pass\n"
        "err = p.communicate()[1]\n"
        "dt = time.perf_counter() - t\n"
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


def timed(cmd: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS of the largest process (MB), with nothing else running."""
    seconds, peak, _ = _run(cmd, sample=False)
    return seconds, peak


def all_memory(cmd: list[str]) -> float:
    """Peak memory of all the command's processes (MB): proportional set size summed over
    the process and its children, as a build on two cores shares most pages with its
    helper, which RSS would count twice. Sampled every 10 ms from start to end; a sample
    takes the kernel a few milliseconds at 100 MB, which would slow the command measured,
    so this is a second run of the same scenario, not the timed one.
    """
    return _run(cmd, sample=True)[2]


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


def median_run(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The run with the median time (seconds, peak RSS MB)."""
    return sorted(runs)[len(runs) // 2]


def measure(
    size: int, work: Path, config: Path | None = None, repeat: int = 3
) -> list[tuple[str, float, float, float]]:
    """All scenarios at one size: (label, seconds, peak RSS MB, peak PSS MB).

    Each scenario is timed ``repeat`` times (the median is kept), all in order; then each
    runs once with its memory sampled, into a second output folder that goes through the
    same steps (a cold build, no change, one news item changed again, one event changed
    again). The extra cold builds go into folders of their own, deleted at the end.
    """
    data = work / f"data-{size}"
    outs = [work / f"out-{size}", work / f"out-{size}-memory"]
    write_corpus(data, size, size // 5)
    for out in outs:  # left by an earlier run (--keep): deleted at the end of this one
        if out.exists():
            (work / "trash").mkdir(exist_ok=True)
            out.rename(work / "trash" / f"{out.name}-{time.time_ns()}")
    floor = [sys.executable, str(HERE / "floor.py"), str(data)]
    steps: list[tuple[str, Callable[[int], None]]] = [
        ("cold build", lambda _round: None),
        ("no-op rebuild", lambda _round: None),
        ("one news item changed", lambda round_: touch_one(data, "news", "news-000500", round_)),
        ("one event changed", lambda round_: touch_one(data, "events", "event-000100", round_)),
    ]
    trash = work / "trash"
    times = [median_run([timed(floor) for _ in range(repeat)])]
    spare = [trash / f"cold-{size}-{n}-{time.time_ns()}" for n in range(1, repeat)]
    for number, (_, change) in enumerate(steps):
        runs = []
        for round_ in range(repeat):
            if number == 0 and round_ < len(spare):  # the cold builds but the last
                runs.append(timed(build_cmd(data, spare[round_], config)))
                continue
            change(10 + round_)
            runs.append(timed(build_cmd(data, outs[0], config)))
        times.append(median_run(runs))
    memory = [all_memory(floor)]
    for _, change in steps:
        change(2)
        memory.append(all_memory(build_cmd(data, outs[1], config)))
    labels = ["floor"] + [label for label, _ in steps]
    rows = [(label, *t, m) for label, t, m in zip(labels, times, memory, strict=True)]
    files = sum(1 for p in outs[0].rglob("*") if p.is_file() and ".state" not in p.parts)
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
    parser.add_argument(
        "--one-core", action="store_true", help="build with [build] parallel = false"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per scenario (the median is kept)"
    )
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="cccn-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    mode = "builds on one core" if args.one_core else "builds on two cores where possible"
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores ({mode}); work folder {work}")
    print(f"{'news':>7} {'events':>6}  {'scenario':<26} {'seconds':>8} {'x floor':>8} "
          f"{'RSS MB':>8} {'x floor':>8} {'all MB':>8} {'x floor':>8}")  # fmt: skip
    config = None
    if args.one_core:
        config = work / "one-core.toml"
        config.write_text("[build]\nparallel = false\n", encoding="utf-8")
    for size in args.sizes:
        rows = measure(size, work, config, max(1, args.repeat))
        floor_s, floor_mb, floor_all = rows[0][1:]
        for label, seconds, peak, total in rows:
            if seconds == 0.0:
                print(f"{size:>7} {size // 5:>6}  {label}")
                continue
            print(
                f"{size:>7} {size // 5:>6}  {label:<26} {seconds:>8.3f} {seconds / floor_s:>8.2f} "
                f"{peak:>8.1f} {peak / floor_mb:>8.2f} {total:>8.1f} {total / floor_all:>8.2f}"
            )
    print(
        "RSS MB: peak resident memory of the largest process; all MB: peak proportional "
        "set size of all the command's processes (sampled every 10 ms, in a second run)"
    )
    print(f"cccn-feeds --help: {help_time() * 1000:.0f} ms (median of 7)")
    # Deleted last: for a while after thousands of files are deleted, creating files is
    # slower on some file systems (ext4 without a journal skips recently freed inodes),
    # which would slow the cold build of this run.
    shutil.rmtree(work if not args.keep else work / "trash", ignore_errors=True)


if __name__ == "__main__":
    main()
