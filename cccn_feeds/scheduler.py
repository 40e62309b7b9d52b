"""APScheduler 3.11 jobs around the build and the link check.

The jobs are made from the ``[schedule]`` settings at every start and kept in memory:
nothing is pickled, so a changed configuration or code never meets stale stored jobs.
Every job runs at most once at a time (``max_instances=1``), runs that piled up while
the process was paused or busy are merged into one (``coalesce=True``), and a run late
by up to ``MISFIRE_GRACE`` still happens (APScheduler's default of one second would drop
the run after a suspend or a long build).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from cccn_feeds.settings import Settings

BUILD_JOB = "build"
CHANGE_JOB = "build-on-change"
LINKS_JOB = "check-links"
MISFIRE_GRACE = 6 * 3600
JOB_DEFAULTS: dict[str, Any] = {
    "coalesce": True,
    "max_instances": 1,
    "misfire_grace_time": MISFIRE_GRACE,
}
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_ITEM = re.compile(r"^(\*|\w+)(?:-(\w+))?(?:/(\d+))?$")


def crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday) in APScheduler 3's terms.

    APScheduler 3 reads 0 as Monday (a known mismatch fixed only in 4.x), so numbers,
    ranges and steps are expanded to day names here. ValueError when malformed.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        match = _DOW_ITEM.match(item.lower())
        if not match:
            raise ValueError(f"day of week {field!r} is not a crontab field")
        first, last, step = match.groups()
        if first == "*":
            low, high = 0, 6
        else:
            low = _day_number(first, field)
            high = _day_number(last, field) if last else (6 if step else low)
        if last and high == 0 and low > 0:  # "5-7" or "5-0": up to Sunday
            high = 7
        if high < low:
            raise ValueError(f"day of week {field!r}: range goes backwards")
        days.update(d % 7 for d in range(low, high + 1, int(step or 1)))
    return ",".join(_DAYS[d] for d in sorted(days))


def _day_number(text: str, field: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    if text[:3] in _DAYS and len(text) == 3:
        return _DAYS.index(text)
    raise ValueError(f"day of week {field!r}: {text!r} is not 0-7 or a day name")


def cron_trigger(expr: str, tz: tzinfo) -> CronTrigger:
    """A trigger for a five-field crontab expression in the given time zone."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"{expr!r} is not a five-field cron expression")
    fields[4] = crontab_weekdays(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=tz)


def make_scheduler(settings: Settings) -> BackgroundScheduler:
    """A background scheduler in the site's time zone with in-memory jobs and safe defaults."""
    return BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults=dict(JOB_DEFAULTS),
        timezone=settings.site.tz,
    )


def add_jobs(
    scheduler: BackgroundScheduler,
    settings: Settings,
    build: Callable[[str], object],
    check_links: Callable[[], object],
) -> None:
    """Add (or replace) the cron jobs from ``[schedule]``: the build and the link check."""
    tz = settings.site.tz
    scheduler.add_job(
        build,
        cron_trigger(settings.schedule.build, tz),
        args=["schedule"],
        id=BUILD_JOB,
        name="build on schedule",
        replace_existing=True,
    )
    scheduler.add_job(
        check_links,
        cron_trigger(settings.schedule.check_links, tz),
        id=LINKS_JOB,
        name="link check on schedule",
        replace_existing=True,
    )


def build_soon(scheduler: BackgroundScheduler, build: Callable[[str], object], reason: str) -> None:
    """Queue one build now (a data change, a start); a queued one not yet started is replaced.

    Two instances are allowed: one may be running while the next waits for the build lock,
    so a change saved during a build is always followed by a build that reads it.
    """
    scheduler.add_job(
        build,
        "date",
        args=[reason],
        id=CHANGE_JOB,
        name=f"build on {reason}",
        replace_existing=True,
        max_instances=2,
    )


def run_scheduled_now(scheduler: BackgroundScheduler, job_id: str) -> None:
    """Make a cron job's next run happen now (its schedule resumes afterwards)."""
    job = scheduler.get_job(job_id)
    if job is not None:
        job.modify(next_run_time=datetime.now(scheduler.timezone))


def next_runs(scheduler: BackgroundScheduler) -> dict[str, str | None]:
    """Job id -> next run time (ISO 8601, site time), for /healthz."""
    runs: dict[str, str | None] = {}
    for job in scheduler.get_jobs():
        when = getattr(job, "next_run_time", None)
        runs[job.id] = when.isoformat() if when else None
    return runs
