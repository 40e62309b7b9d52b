"""The pipeline: load -> validate -> model -> render -> publish, as one function."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

from cccn_feeds.context import BuildContext
from cccn_feeds.history import History, advance
from cccn_feeds.model import Content
from cccn_feeds.publish import PublishReport, output_lock, publish, read_json, write_json
from cccn_feeds.settings import Settings
from cccn_feeds.validate import load_content

HISTORY = "history.json"


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What one build did."""

    report: PublishReport
    now: datetime
    news: int
    events: int
    forthcoming: int
    output: str

    def summary(self) -> str:
        """One line for people and logs."""
        return (
            f"{self.news} news, {self.events} events ({self.forthcoming} forthcoming): "
            f"{self.report.summary()} in {self.output}"
        )


def utcnow() -> datetime:
    """The wall clock, aware; the only place a build reads it."""
    return datetime.now(UTC)


def apply_link_policy(content: Content, broken: dict[str, str], policy: str) -> Content:
    """With ``on_broken = "drop"``, leave declared-broken article links out; items stay."""
    if policy != "drop" or not broken:
        return content
    news = tuple(dataclasses.replace(n, url="") if n.url in broken else n for n in content.news)
    return dataclasses.replace(content, news=news)


def prepare(settings: Settings, now: datetime | None = None) -> Content:
    """Load and validate the data; raises DataError before anything is written."""
    return load_content(settings.paths.data_dir, settings.site.tz)


def build(
    settings: Settings,
    *,
    now: datetime | None = None,
    renderers: tuple[str, ...] | None = None,
    lock_wait: float = 60.0,
) -> BuildResult:
    """Build every output from the data and publish it; DataError leaves the output as it was."""
    from cccn_feeds.linkstate import declared_broken
    from cccn_feeds.render import RENDERERS, render_all

    content = prepare(settings)
    moment = (now or utcnow()).astimezone(UTC)
    state_dir = settings.paths.state_dir
    with output_lock(state_dir, wait=lock_wait):
        stored = read_json(state_dir / HISTORY) or {}
        previous = History.from_json(stored)
        advanced = advance(previous, content.events, moment, settings.calendar.cancelled_days)
        broken = declared_broken(settings)
        ctx = BuildContext(
            settings=settings,
            content=apply_link_policy(content, broken, settings.linkcheck.on_broken),
            now=moment,
            revisions=advanced.revisions,
            tombstones=advanced.tombstones,
            broken_links=broken if settings.linkcheck.on_broken == "mark" else {},
        )
        outputs = render_all(ctx, renderers or RENDERERS)
        report = publish(outputs, settings.paths.output_dir, state_dir)
        new_history = advanced.history.to_json()
        if new_history != stored:
            write_json(state_dir / HISTORY, new_history)
    if settings.feeds.hub and report.written:
        from cccn_feeds.websub import notify

        notify(settings, report.written)  # logs a failing hub; never fails the build
    return BuildResult(
        report=report,
        now=moment,
        news=len(content.news),
        events=len(content.events),
        forthcoming=len(ctx.forthcoming),
        output=str(settings.paths.output_dir),
    )
