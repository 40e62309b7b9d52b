"""``cccn-feeds serve``: build at start, keep the output fresh, and serve it over HTTP.

One process holds three things:

- a waitress HTTP server (main thread) running :mod:`cccn_feeds.server`;
- an APScheduler background scheduler (:mod:`cccn_feeds.scheduler`) with the cron build,
  the cron link check, and one-off builds queued at start and on changes;
- a watcher thread polling the data files and the configuration file (every half
  second; a few stat calls, no extra library) that queues a build when one changes.

Each build runs in a child process (:mod:`cccn_feeds.isolated`): on two cores, as a
one-shot build does, and its memory is given back when it ends. Builds never overlap:
they run one at a time under a lock in this process and under the output folder's file
lock shared with one-shot ``cccn-feeds build``. A build that fails
(a half-saved YAML file, a broken configuration) logs every problem, leaves the output
as it was, makes ``/healthz`` answer 503, and is retried at the next change or tick.

SIGTERM and SIGINT stop the server, then wait for a build in progress to finish (each
file is replaced atomically either way) and exit with status 0. SIGHUP runs the
scheduled build now (``systemctl reload``).

Test-only: the environment variable ``CCCN_TEST_CLOCK_FILE`` names a file holding an
ISO 8601 date-time that every build reads as "now" (an empty or missing file means the
wall clock). It exists so that tests of a real process can move time; never set it in
production.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from cccn_feeds.errors import CccnError, ConfigError, DataError, LockedError, Problem
from cccn_feeds.settings import Settings

log = logging.getLogger("cccn_feeds.service")

CLOCK_ENV = "CCCN_TEST_CLOCK_FILE"
WATCH_INTERVAL = 0.5  # seconds between polls of the watched files
SETTLE = 0.3  # seconds a change must stay still before it is built (editors save in steps)

Clock = Callable[[], datetime]
_PASSING = frozenset({None, "ok", "redirected", "moved"})  # linkcheck's passing verdicts


def system_clock() -> datetime:
    """The wall clock, aware."""
    return datetime.now(UTC)


def file_clock(path: Path) -> Clock:
    """A clock reading "now" from a file at every call (test-only; see the module notes)."""

    def now() -> datetime:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            text = ""
        if not text:
            return system_clock()
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if when.tzinfo is None:
            raise ValueError(f"{path}: the test clock {text!r} needs a UTC offset")
        return when

    return now


def clock_from_env(environ: Mapping[str, str]) -> Clock:
    """The wall clock, or the test clock named by ``CCCN_TEST_CLOCK_FILE``."""
    name = environ.get(CLOCK_ENV, "")
    if name:
        log.warning("test clock: 'now' is read from %s (%s is for tests only)", name, CLOCK_ENV)
        return file_clock(Path(name))
    return system_clock


def _iso(moment: datetime | None) -> str | None:
    """An aware time as ISO 8601 UTC with a Z, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(slots=True)
class BuildRecord:
    """One build attempt, as /healthz reports it."""

    number: int
    reason: str
    started: datetime
    finished: datetime | None = None
    ok: bool = False
    now: datetime | None = None
    summary: str = ""
    errors: list[str] = field(default_factory=list)
    news: int | None = None
    events: int | None = None
    forthcoming: int | None = None
    written: int = 0
    removed: int = 0

    def as_json(self) -> dict[str, Any]:
        """The record as JSON-ready values."""
        return {
            "number": self.number,
            "reason": self.reason,
            "result": "ok" if self.ok else "failed",
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "clock": _iso(self.now),
            "summary": self.summary,
            "errors": list(self.errors),
            "written": self.written,
            "removed": self.removed,
        }


class Watcher(threading.Thread):
    """Polls files and folders for changes (mtime, size, inode) and reports them."""

    def __init__(
        self,
        targets: Callable[[], list[Path]],
        on_change: Callable[[set[Path]], None],
        interval: float = WATCH_INTERVAL,
    ) -> None:
        super().__init__(name="cccn-watch", daemon=True)
        self.targets = targets
        self.on_change = on_change
        self.interval = interval
        self.stopping = threading.Event()
        self.last = self.snapshot()

    def snapshot(self) -> dict[Path, tuple[int, int, int] | None]:
        """Stat of every watched file, and of every visible file in watched folders."""
        seen: dict[Path, tuple[int, int, int] | None] = {}
        for target in self.targets():
            if target.is_dir():
                with os.scandir(target) as entries:
                    paths = [Path(e.path) for e in entries if not e.name.startswith(".")]
            else:
                paths = [target]
            for path in paths:
                try:
                    st = path.stat()
                    seen[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
                except OSError:
                    seen[path] = None
        return seen

    def run(self) -> None:
        """Poll until stopped; a change is reported once it has stayed still briefly."""
        while not self.stopping.wait(self.interval):
            try:
                current = self.snapshot()
                if current == self.last:
                    continue
                while not self.stopping.wait(SETTLE):
                    settled = self.snapshot()
                    if settled == current:
                        break
                    current = settled
                changed = {p for p in set(current) | set(self.last)
                           if current.get(p) != self.last.get(p)}  # fmt: skip
                self.last = current
                self.on_change(changed)
            except Exception:  # the watcher must outlive any surprise
                log.exception("watching the data files failed; retrying")

    def stop(self) -> None:
        """Ask the thread to end at its next poll."""
        self.stopping.set()


class Service:
    """The scheduler, the builds and their records, shared by the jobs and /healthz."""

    def __init__(self, settings: Settings, clock: Clock = system_clock) -> None:
        from cccn_feeds.scheduler import make_scheduler

        self.settings = settings
        self.clock = clock
        self.scheduler = make_scheduler(settings)
        self._build_lock = threading.Lock()
        self._state = threading.Lock()
        self._reload = False
        self.last: BuildRecord | None = None
        self.last_good: BuildRecord | None = None
        self.builds = 0
        self.failures = 0
        self.active = 0
        self.max_active = 0
        self.link_run: dict[str, Any] | None = None
        self.on_settings: Callable[[Settings], None] | None = None

    # -- jobs -------------------------------------------------------------------------

    def plan(self) -> None:
        """Add the cron jobs from ``[schedule]``; a bad expression is a ConfigError."""
        from cccn_feeds.scheduler import add_jobs

        try:
            add_jobs(self.scheduler, self.settings, self.build_job, self.link_job)
        except ValueError as exc:
            raise ConfigError(
                [Problem(self.settings.config_file or "settings", None, "[schedule]", str(exc))]
            ) from None

    def request_build(self, reason: str) -> None:
        """Queue a build to run as soon as the builder is free."""
        from cccn_feeds.scheduler import build_soon

        build_soon(self.scheduler, self.build_job, reason)

    def watched(self) -> list[Path]:
        """The data folder and the configuration file."""
        targets = [self.settings.paths.data_dir]
        if self.settings.config_file:
            targets.append(Path(self.settings.config_file))
        return targets

    def changed(self, paths: set[Path]) -> None:
        """The watcher saw ``paths`` change: rebuild (re-reading the configuration if needed)."""
        config = Path(self.settings.config_file) if self.settings.config_file else None
        if config is not None and config in paths:
            self._reload = True
        names = ", ".join(sorted(str(p) for p in paths))
        log.info("changed: %s; a build is queued", names)
        self.request_build("change")

    def build_job(self, reason: str) -> BuildRecord:
        """Run one build now (waiting for one in progress); record and log the outcome."""
        from cccn_feeds.isolated import build_in_child

        with self._build_lock:
            with self._state:
                self.builds += 1
                self.active += 1
                self.max_active = max(self.max_active, self.active)
                record = BuildRecord(self.builds, reason, system_clock())
            log.info("build #%d started (%s)", record.number, reason)
            skipped = False
            try:
                settings = self._settings_for_build()
                record.now = self.clock()
                result = build_in_child(settings, record.now)
            except LockedError as exc:
                skipped = True
                record.errors = [str(exc)]
                log.warning("build #%d skipped, retried at the next tick: %s", record.number, exc)
            except DataError as exc:
                record.errors = [str(p) for p in exc.problems]
                for line in record.errors:
                    log.error("%s", line)
                log.error(
                    "build #%d failed: %d problem%s; the last good output is still served",
                    record.number, len(record.errors), "" if len(record.errors) == 1 else "s",
                )  # fmt: skip
            except Exception as exc:
                record.errors = [f"{type(exc).__name__}: {exc}"]
                log.exception("build #%d failed unexpectedly", record.number)
            else:
                record.ok = True
                record.summary = result.summary()
                record.news, record.events = result.news, result.events
                record.forthcoming = result.forthcoming
                record.written = len(result.report.written)
                record.removed = len(result.report.removed)
                log.info("build #%d finished: %s", record.number, record.summary)
            finally:
                record.finished = system_clock()
                with self._state:
                    self.active -= 1
                    if not skipped:  # another process building is not a failure
                        self.last = record
                        if record.ok:
                            self.last_good = record
                        else:
                            self.failures += 1
            return record

    def _settings_for_build(self) -> Settings:
        """The settings, re-read when the configuration file changed (paths and server kept)."""
        if not self._reload:
            return self.settings
        from cccn_feeds.settings import load_settings

        self._reload = False
        keep = {
            "paths": dataclasses.asdict(self.settings.paths),
            "server": dataclasses.asdict(self.settings.server),
        }
        try:
            fresh = load_settings(self.settings.config_file, overrides=keep)
        except ConfigError:
            self._reload = True  # retried with the next build
            raise
        if fresh.schedule != self.settings.schedule:
            old = self.settings
            self.settings = fresh
            try:
                self.plan()
            except ConfigError:
                self.settings = old
                self._reload = True
                raise
            log.info("schedule changed: %s", self.next_runs())
        self.settings = fresh
        if self.on_settings is not None:
            self.on_settings(fresh)
        log.info("configuration re-read from %s", fresh.config_file)
        return fresh

    def link_job(self) -> None:
        """Run the link checker; any failure is logged and never stops the service."""
        started = system_clock()
        record: dict[str, Any] = {"started": _iso(started)}
        log.info("link check started")
        try:
            from cccn_feeds.linkcheck import run, summary_line

            report = run(self.settings, now=self.clock())
            record.update(result="ok", declared_broken=len(report.declared))
            log.info("link check finished: %s", summary_line(report))
        except (Exception, SystemExit) as exc:
            record.update(result="failed", error=f"{type(exc).__name__}: {exc}")
            log.exception("link check failed; the service goes on")
        record["finished"] = _iso(system_clock())
        with self._state:
            self.link_run = record
        if record["result"] == "ok":
            self.request_build("link check")  # declared-broken links change the output

    # -- health -----------------------------------------------------------------------

    def next_runs(self) -> dict[str, str | None]:
        """Job id -> next run time."""
        from cccn_feeds.scheduler import next_runs

        return next_runs(self.scheduler)

    def link_summary(self) -> dict[str, Any]:
        """What the link checker's state file says, and how the last run here went."""
        from cccn_feeds.linkstate import state_path
        from cccn_feeds.publish import read_json

        path = state_path(self.settings)
        data = read_json(path)
        links = data.get("links") if isinstance(data, dict) else None
        summary: dict[str, Any] = {"state_file": str(path), "last_run": self.link_run}
        if isinstance(links, dict):
            entries = [e for e in links.values() if isinstance(e, dict)]
            checked = [str(e["checked_at"]) for e in entries if e.get("checked_at")]
            summary.update(
                links=len(entries),
                declared_broken=sum(1 for e in entries if e.get("declared_broken")),
                failing=sum(1 for e in entries if e.get("verdict") not in _PASSING),
                last_checked=max(checked) if checked else None,
            )
        else:
            summary.update(links=None, declared_broken=None, failing=None, last_checked=None)
        return summary

    def health(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of /healthz: 503 until a build succeeded and when the last failed."""
        with self._state:
            last, good = self.last, self.last_good
            builds = {
                "count": self.builds,
                "failed": self.failures,
                "running": self.active,
                "max_concurrent": self.max_active,
            }
        status = "starting" if last is None else "ok" if last.ok else "failing"
        body: dict[str, Any] = {
            "status": status,
            "last_build": last.as_json() if last else None,
            "last_good_build": good.as_json() if good else None,
            "news": good.news if good else None,
            "events": good.events if good else None,
            "forthcoming": good.forthcoming if good else None,
            "builds": builds,
            "link_check": self.link_summary(),
            "next_runs": self.next_runs(),
        }
        return (200 if status == "ok" else 503), body


# -- the process ----------------------------------------------------------------------


class _Stop(SystemExit):
    """Raised in the main thread by SIGTERM/SIGINT to leave the server loop."""


def configure_logging() -> None:
    """Log lines with their time, level and source on the standard error."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        # APScheduler reports every job run at INFO; our own lines say what matters. Its
        # warnings (a run skipped or missed) still show.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def addresses(host: str, port: int, settings: Settings) -> list[str]:
    """Lines telling where to open the page and what to subscribe to."""
    shown = "127.0.0.1" if host in {"0.0.0.0", ""} else ("::1" if host == "::" else host)
    if ":" in shown:
        shown = f"[{shown}]"
    base = f"http://{shown}:{port}/"
    lines = [
        f"Open          {base}",
        f"Calendar      webcal://{shown}:{port}/events.ics  (or {base}events.ics)",
        f"News feeds    {base}news.rss  {base}news.atom  {base}news.json",
        f"Event feeds   {base}events.rss  {base}events.atom  {base}events.json",
        f"Health        {base}healthz",
    ]
    if settings.site.base_url != base:
        lines.append(f"Public base   {settings.site.base_url} (the address written in the feeds)")
    return lines


def _listen(app: Any, settings: Settings) -> Any:
    """A waitress server bound to [server] host and port; CccnError when it cannot listen."""
    from waitress import create_server

    try:
        return create_server(
            app,
            host=settings.server.host,
            port=settings.server.port,
            threads=8,
            ident="cccn-feeds",
            channel_timeout=60,
            connection_limit=1000,
        )
    except OSError as exc:
        where = f"{settings.server.host}:{settings.server.port}"
        raise CccnError(
            f"cannot listen on {where}: {exc.strerror or exc}; choose another --port or --host"
        ) from None


def _bound(server: Any) -> list[tuple[str, int]]:
    listen = getattr(server, "effective_listen", None)
    if listen:
        return [(str(h), int(p)) for h, p in listen]
    return [(str(server.effective_host), int(server.effective_port))]


def run_service(settings: Settings, clock: Clock | None = None) -> int:
    """Build, keep the output fresh and serve it until SIGTERM or SIGINT; 0 on a clean stop."""
    from cccn_feeds.scheduler import BUILD_JOB, run_scheduled_now
    from cccn_feeds.server import AccessLog, OutputApp
    from cccn_feeds.settings import parse_duration

    configure_logging()
    service = Service(settings, clock or clock_from_env(os.environ))
    service.plan()
    try:
        settings.paths.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CccnError(
            f"{settings.paths.output_dir}: cannot create the output folder: {exc.strerror}"
        ) from None
    from cccn_feeds.linkstate import state_path

    files = OutputApp(
        settings.paths.output_dir,
        private=[settings.paths.state_dir, state_path(settings)],
        calendar_max_age=parse_duration(settings.calendar.refresh),
        health=service.health,
    )

    def settings_changed(fresh: Settings) -> None:
        files.calendar_max_age = parse_duration(fresh.calendar.refresh)
        files.clear()

    service.on_settings = settings_changed
    server = _listen(AccessLog(files), settings)
    watcher = Watcher(service.watched, service.changed) if settings.schedule.watch else None

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop(0)

    def hup(signum: int, frame: FrameType | None) -> None:
        log.info("SIGHUP: running the scheduled build now")
        run_scheduled_now(service.scheduler, BUILD_JOB)

    previous = {
        sig: signal.signal(sig, handler)
        for sig, handler in ((signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, hup))
    }
    try:
        service.scheduler.start()
        service.request_build("start")
        if watcher is not None:
            watcher.start()
        for host, port in _bound(server):
            for line in addresses(host, port, settings):
                print(line, flush=True)
        log.info("next runs: %s", service.next_runs())
        server.run()
    except _Stop:
        pass
    finally:
        for sig in previous:
            signal.signal(sig, lambda s, f: log.info("already stopping"))
        log.info("stopping: waiting for a build in progress, if any")
        started = time.monotonic()
        server.close()
        server.task_dispatcher.shutdown()
        if watcher is not None:
            watcher.stop()
        if service.scheduler.running:
            service.scheduler.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped in %.1fs", time.monotonic() - started)
    return 0
