"""The service: jobs from configuration, a real `serve` process, changes, failures, time, signals.

The process tests start `python -m cccn_feeds.cli serve` on a free loopback port with a
copy of the example corpus and move time with the test-only clock file
(``CCCN_TEST_CLOCK_FILE``).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.triggers.cron import CronTrigger

from cccn_feeds.build import build
from cccn_feeds.scheduler import (
    BUILD_JOB,
    LINKS_JOB,
    MISFIRE_GRACE,
    add_jobs,
    cron_trigger,
    crontab_weekdays,
    make_scheduler,
)
from cccn_feeds.service import CLOCK_ENV, Service, file_clock
from cccn_feeds.settings import Settings
from tests.conftest import EXAMPLE_NOW, EXAMPLES, LUX, ROOT, make_settings

# After the two-day conference (26-27 March 2027) and the seminar of the 27th.
AFTER_CONFERENCE = datetime(2027, 3, 28, 12, 0, tzinfo=LUX)
ENDED = ("example-conference-2027", "example-before-dst")


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(
    port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """One request sent verbatim (no client-side path clean-up): status, headers, raw body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class ServiceProcess:
    """A real `cccn-feeds serve` process on 127.0.0.1 with its output, logs and clock."""

    def __init__(self, root: Path, data: Path, clock: datetime | None = EXAMPLE_NOW) -> None:
        self.root = root
        self.data = data
        self.out = root / "out"
        self.clock_file = root / "clock"
        self.set_clock(clock)
        self.port = free_port()
        self.stdout = root / "stdout.txt"
        self.stderr = root / "stderr.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    def set_clock(self, when: datetime | None) -> None:
        """Move the service's clock (read by every build)."""
        self.clock_file.write_text(when.isoformat() if when else "", encoding="utf-8")

    def start(self, *extra: str) -> ServiceProcess:
        """Start the process and wait until its first build succeeded."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCCN_")}
        env.update({CLOCK_ENV: str(self.clock_file), "PYTHONUNBUFFERED": "1"})
        cmd = [sys.executable, "-m", "cccn_feeds.cli", "serve", "--port", str(self.port),
               "--data", str(self.data), "--out", str(self.out), *extra]  # fmt: skip
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=out, stderr=err)
        wait_until(self.healthy, 30, "the first build")
        return self

    def health(self) -> tuple[int, dict[str, Any]]:
        """Status and body of /healthz; (0, {}) while the port is not open yet."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"serve exited with {self.proc.returncode}:\n{self.log()}")
        try:
            status, _, body = http_get(self.port, "/healthz")
        except OSError:
            return 0, {}
        return status, json.loads(body)

    def healthy(self) -> dict[str, Any] | None:
        """The /healthz body when it answers 200."""
        status, body = self.health()
        return body if status == 200 else None

    def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> Any:
        """A request to the service."""
        return http_get(self.port, path, headers, method)

    def log(self) -> str:
        """Everything the process wrote to stderr so far."""
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def send(self, sig: int) -> None:
        """Send a signal to the process."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait for the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Make sure the process is gone (test clean-up)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start services in tmp_path; every one is stopped at the end."""
    started: list[ServiceProcess] = []

    def make(data: Path, clock: datetime | None = EXAMPLE_NOW) -> ServiceProcess:
        service = ServiceProcess(tmp_path, data, clock)
        started.append(service)
        return service

    yield make
    for service in started:
        service.kill()


def output_files(out: Path) -> dict[str, bytes]:
    """Every published file (hidden state and temporaries excluded) by relative path."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts)
    }


def build_lines(log: str) -> list[tuple[int, str]]:
    """(build number, "started"|"finished"|"failed") in log order."""
    return [
        (int(n), what) for n, what in re.findall(r"build #(\d+) (started|finished|failed)", log)
    ]


class TestJobs:
    """The scheduler's jobs come from [schedule], in the site's time zone, with safe defaults."""

    def test_jobs_from_configuration(self, settings: Settings) -> None:
        custom = settings.replace("schedule", build="*/5 * * * *", check_links="30 7 * * 1-5")
        scheduler = make_scheduler(custom)
        add_jobs(scheduler, custom, lambda reason: None, lambda: None)
        scheduler.start(paused=True)
        try:
            jobs = {job.id: job for job in scheduler.get_jobs()}
            assert set(jobs) == {BUILD_JOB, LINKS_JOB}
            for job in jobs.values():
                assert isinstance(job.trigger, CronTrigger)
                assert str(job.trigger.timezone) == "Europe/Luxembourg"
                assert job.max_instances == 1
                assert job.coalesce is True
                assert job.misfire_grace_time == MISFIRE_GRACE >= 3600
            assert isinstance(scheduler._lookup_jobstore("default"), MemoryJobStore)
            start = datetime(2027, 3, 26, 7, 31, tzinfo=LUX)  # a Friday
            fires = jobs[LINKS_JOB].trigger.get_next_fire_time(None, start)
            assert fires == datetime(2027, 3, 29, 7, 30, tzinfo=LUX)  # Monday, after DST
            fires = jobs[BUILD_JOB].trigger.get_next_fire_time(None, start)
            assert fires == datetime(2027, 3, 26, 7, 35, tzinfo=LUX)
        finally:
            scheduler.shutdown(wait=False)

    @pytest.mark.parametrize(
        ("field", "expected"),
        [
            ("*", "*"),
            ("0", "sun"),
            ("7", "sun"),
            ("1-5", "mon,tue,wed,thu,fri"),
            ("*/2", "sun,tue,thu,sat"),
            ("5-7", "sun,fri,sat"),
            ("sat,sun", "sun,sat"),
            ("mon-wed,5", "mon,tue,wed,fri"),
        ],
    )
    def test_crontab_weekdays(self, field: str, expected: str) -> None:
        assert crontab_weekdays(field) == expected

    def test_sunday_is_zero_like_cron(self) -> None:
        trigger = cron_trigger("0 6 * * 0", LUX)
        fires = trigger.get_next_fire_time(None, datetime(2027, 1, 13, 12, tzinfo=LUX))
        assert fires == datetime(2027, 1, 17, 6, 0, tzinfo=LUX)
        assert fires.strftime("%A") == "Sunday"

    @pytest.mark.parametrize("expr", ["0 6 * * 8", "0 6 * *", "0 6 * * 3-1", "61 * * * *"])
    def test_bad_expressions(self, expr: str) -> None:
        with pytest.raises(ValueError):
            cron_trigger(expr, LUX)


class TestServiceInProcess:
    """Build records, the controllable clock and the link-check guard, without a process."""

    def test_time_moves_the_output(self, settings: Settings) -> None:
        now = [EXAMPLE_NOW]
        service = Service(settings, clock=lambda: now[0])
        first = service.build_job("start")
        assert first.ok and first.forthcoming == 7
        page = (settings.paths.output_dir / "index.html").read_text(encoding="utf-8")
        now[0] = AFTER_CONFERENCE
        second = service.build_job("schedule")
        assert second.ok and second.forthcoming == 5
        assert second.now == AFTER_CONFERENCE
        assert second.written > 0
        assert (settings.paths.output_dir / "index.html").read_text(encoding="utf-8") != page
        status, body = service.health()
        assert status == 200 and body["forthcoming"] == 5
        assert body["last_build"]["clock"] == "2027-03-28T10:00:00Z"

    def test_failure_keeps_last_good(self, settings: Settings) -> None:
        service = Service(settings, clock=lambda: EXAMPLE_NOW)
        assert service.build_job("start").ok
        before = output_files(settings.paths.output_dir)
        news = settings.paths.data_dir / "news.yaml"
        news.write_text("news:\n  - id: a\n    title: [unclosed\n", encoding="utf-8")
        record = service.build_job("change")
        assert not record.ok
        assert any("news.yaml:" in e for e in record.errors), record.errors
        assert output_files(settings.paths.output_dir) == before
        status, body = service.health()
        assert status == 503 and body["status"] == "failing"
        assert body["last_good_build"]["result"] == "ok"
        assert body["builds"] == {"count": 2, "failed": 1, "running": 0, "max_concurrent": 1}

    def test_configuration_change_is_read_again(self, tmp_path: Path, data_dir: Path) -> None:
        from cccn_feeds.settings import load_settings

        config = tmp_path / "cccn-feeds.toml"
        config.write_text('[site]\ntitle = "First title"\n', encoding="utf-8")
        overrides = {"paths": {"data": str(data_dir), "output": str(tmp_path / "out")}}
        settings = load_settings(config, environ={}, overrides=overrides)
        service = Service(settings, clock=lambda: EXAMPLE_NOW)
        assert config in service.watched()
        service.plan()
        assert service.build_job("start").ok
        page = tmp_path / "out" / "index.html"
        assert "First title" in page.read_text(encoding="utf-8")

        config.write_text('[site]\ntitle = "Second title"\n[schedule]\nbuild = "*/5 * * * *"\n')
        service.changed({config})
        assert service.build_job("change").ok
        assert "Second title" in page.read_text(encoding="utf-8")
        assert service.settings.schedule.build == "*/5 * * * *"
        assert service.settings.paths.data == str(data_dir)  # flags still win

        config.write_text('[site]\ntitel = "typo"\n', encoding="utf-8")
        service.changed({config})
        failed = service.build_job("change")
        assert not failed.ok and "unknown key (did you mean 'title'?)" in failed.errors[0]
        assert "Second title" in page.read_text(encoding="utf-8")
        config.write_text('[site]\ntitle = "Third title"\n', encoding="utf-8")
        assert service.build_job("schedule").ok  # retried at the next tick
        assert "Third title" in page.read_text(encoding="utf-8")

    def test_link_check_failure_never_raises(self, tmp_path: Path, settings: Settings) -> None:
        broken = settings.replace("paths", data=str(tmp_path / "missing"))
        service = Service(broken, clock=lambda: EXAMPLE_NOW)
        service.link_job()  # no data folder: the checker fails, the job logs it
        assert service.link_run is not None and service.link_run["result"] == "failed"
        assert service.link_summary()["last_run"]["result"] == "failed"

    def test_file_clock(self, tmp_path: Path) -> None:
        path = tmp_path / "clock"
        clock = file_clock(path)
        assert abs(clock().timestamp() - time.time()) < 5  # missing file: wall clock
        path.write_text(AFTER_CONFERENCE.isoformat() + "\n", encoding="utf-8")
        assert clock() == AFTER_CONFERENCE
        path.write_text("2027-03-28T12:00:00\n", encoding="utf-8")
        with pytest.raises(ValueError, match="UTC offset"):
            clock()


def _edit_title(data: Path, old: str, new: str) -> None:
    news = data / "news.yaml"
    text = news.read_text(encoding="utf-8")
    assert old in text
    news.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """A writable copy of the example corpus."""
    target = tmp_path / "data"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("*.md"))
    return target


@pytest.mark.slow
class TestServeProcess:
    """A real `serve` process reacting to data changes, broken data, time and signals."""

    def test_change_broken_fixed_and_time(
        self, data_copy: Path, service_factory: Callable[..., ServiceProcess]
    ) -> None:
        svc = service_factory(data_copy).start()
        stdout = svc.stdout.read_text(encoding="utf-8")
        assert f"http://127.0.0.1:{svc.port}/" in stdout
        assert f"webcal://127.0.0.1:{svc.port}/events.ics" in stdout
        old = "Example: two items on one day (first)"

        # A change to the data is served within seconds.
        _edit_title(data_copy, old, "Freshly edited title")
        wait_until(lambda: b"Freshly edited title" in svc.get("/news.json")[2], 10, "the edit")
        good = svc.get("/news.json")[2]

        # A half-saved file: the build fails, the old output stays, /healthz says 503.
        news = data_copy / "news.yaml"
        text = news.read_text(encoding="utf-8")
        news.write_text(text[: len(text) // 2] + "\n  - id: [half\n", encoding="utf-8")
        _, body = wait_until(lambda: (h := svc.health())[0] == 503 and h, 10, "the failed build")
        assert body["status"] == "failing"
        assert body["last_build"]["errors"] and "news.yaml:" in body["last_build"]["errors"][0]
        assert svc.get("/news.json")[:1] == (200,)
        assert svc.get("/news.json")[2] == good
        assert re.search(r"ERROR cccn_feeds\.service: \S*news\.yaml:\d+", svc.log())

        # Fixed: built again, 200.
        news.write_text(text, encoding="utf-8")
        wait_until(svc.healthy, 10, "the repaired build")
        assert svc.get("/news.json")[2] == good

        # Time moves: at the next scheduled run (SIGHUP runs it now) the ended events go.
        assert svc.healthy()["forthcoming"] == 7  # type: ignore[index]
        page_before = svc.get("/")[2]
        svc.set_clock(AFTER_CONFERENCE)
        svc.send(signal.SIGHUP)
        body = wait_until(
            lambda: (h := svc.healthy()) and h["forthcoming"] == 5 and h, 10, "the tick"
        )
        assert body["last_build"]["reason"] == "schedule"
        assert body["last_build"]["clock"] == "2027-03-28T10:00:00Z"
        assert svc.get("/")[2] != page_before
        assert svc.stop(signal.SIGINT) == 0
        assert "stopped in" in svc.log()

    def test_no_overlapping_builds(
        self, data_copy: Path, service_factory: Callable[..., ServiceProcess]
    ) -> None:
        svc = service_factory(data_copy).start()
        news = data_copy / "news.yaml"
        text = news.read_text(encoding="utf-8")
        for n in range(12):  # changes and scheduled runs pile up faster than builds finish
            edited = text.replace("(first)", f"(first, edit {n})")
            news.write_text(edited + f"# edit {n}\n", encoding="utf-8")
            svc.send(signal.SIGHUP)
            time.sleep(0.15)

        def settled() -> dict[str, Any] | None:
            body = svc.healthy()
            if not body or body["builds"]["running"] or "build-on-change" in body["next_runs"]:
                return None
            ended = sum(1 for _, what in build_lines(svc.log()) if what != "started")
            return body if ended == body["builds"]["count"] else None

        time.sleep(1.5)  # let the watcher see the last change
        body = wait_until(settled, 20, "the builds to settle")
        lines = build_lines(svc.log())
        assert body["builds"]["count"] >= 3
        assert body["builds"]["max_concurrent"] == 1
        # Strictly one at a time: every start is followed by its own end.
        for (n1, what1), (n2, what2) in zip(lines[::2], lines[1::2], strict=True):
            assert (what1, n2) == ("started", n1) and what2 in {"finished", "failed"}
        assert [n for n, _ in lines[::2]] == list(range(1, len(lines) // 2 + 1))
        # No change is lost: the last edit, saved while builds ran, is what is published.
        assert "(first, edit 11)" in (svc.out / "news.rss").read_text(encoding="utf-8")
        assert svc.stop() == 0

    def test_sigterm_during_build(
        self, tmp_path: Path, service_factory: Callable[..., ServiceProcess]
    ) -> None:
        data = tmp_path / "data"
        shutil.copytree(EXAMPLES, data, ignore=shutil.ignore_patterns("*.md"))
        bulk = "".join(
            f'\n  - id: bulk-{i:04d}\n    title: "Bulk item {i}"\n'
            f"    date: 2026-{i % 12 + 1:02d}-{i % 27 + 1:02d}T10:{i % 60:02d}:00\n"
            f"    url: https://example.org/news/bulk-{i}\n"
            f"    summary: Item {i} with **Markdown**.\n    tags: [Tag{i % 60}]\n"
            for i in range(700)
        )
        news = data / "news.yaml"
        news.write_text(news.read_text(encoding="utf-8") + bulk, encoding="utf-8")
        svc = service_factory(data).start()
        old = output_files(svc.out)

        # What the next build will publish, built aside from the same state, data and clock.
        aside, edited = tmp_path / "aside", tmp_path / "edited"
        shutil.copytree(svc.out, aside)
        shutil.copytree(data, edited)
        _edit_title(edited, "Bulk item", "Bulk entry")
        expected = build(make_settings(edited, aside), now=EXAMPLE_NOW)
        new = output_files(aside)
        assert expected.report.written and new != old

        shutil.copy(edited / "news.yaml", data / "news.yaml")
        wait_until(lambda: "build #2 started" in svc.log(), 15, "the build after the change")
        svc.send(signal.SIGTERM)
        assert svc.proc is not None
        assert svc.proc.wait(60) == 0
        log = svc.log()
        assert "build #2 finished" in log
        assert log.index("stopping") < log.index("build #2 finished"), "SIGTERM came too late"
        served = output_files(svc.out)
        assert served == new  # the build in progress finished: every file is the new one
        assert not [p for p in svc.out.rglob(".*.tmp")]
        for path, data_ in served.items():
            if path.endswith(".json"):
                json.loads(data_)


def test_serve_reports_a_busy_port(tmp_path: Path, data_copy: Path) -> None:
    """A port in use is a clear message and exit status 1, no traceback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCCN_")}
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "cccn_feeds.cli",
                "serve",
                "--port",
                str(port),
                "--data",
                str(data_copy),
                "--out",
                str(tmp_path / "out"),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert run.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in run.stderr
    assert "Traceback" not in run.stderr


def test_test_clock_variable_is_not_a_setting() -> None:
    """CCCN_TEST_CLOCK_FILE is not mistaken for a CCCN_<TABLE>_<KEY> setting."""
    from cccn_feeds.settings import load_settings

    loaded = load_settings(None, environ={CLOCK_ENV: "/tmp/clock"})
    assert loaded == load_settings(None, environ={})
