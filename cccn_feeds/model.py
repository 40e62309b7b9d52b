"""The content model every output shares: frozen, typed, timezone-aware."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from operator import attrgetter
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

Status = Literal["confirmed", "tentative", "cancelled"]


@functools.lru_cache(maxsize=4096)
def tag_slug(tag: str) -> str:
    """The slug of a tag for paths: ASCII letters and digits joined by hyphens.

    ``"EU-CIP"`` -> ``"eu-cip"``, ``"UNCAN.eu"`` -> ``"uncan-eu"``, ``"Santé"`` -> ``"sante"``.
    """
    ascii_text = unicodedata.normalize("NFKD", tag).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


T = TypeVar("T")


def _quick_pickle(cls: type[T]) -> type[T]:
    """Pickle a frozen dataclass as its constructor and field values.

    The default for frozen slotted dataclasses looks the fields up again for every object
    it restores, which was most of the time of reading the parse cache.
    """
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    values = attrgetter(*names) if len(names) > 1 else lambda item: (getattr(item, names[0]),)

    def __reduce__(self: Any) -> tuple[type[T], tuple[Any, ...]]:
        return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[method-assign]
    return cls


@_quick_pickle
@dataclass(frozen=True, slots=True)
class Geo:
    """A point on the map."""

    lat: float
    lon: float


@_quick_pickle
@dataclass(frozen=True, slots=True)
class Location:
    """Where an event takes place."""

    name: str
    address: str = ""
    geo: Geo | None = None

    def text(self) -> str:
        """One line for people: name, then address when it adds something."""
        if self.address and self.address != self.name:
            return f"{self.name}, {self.address}" if self.name else self.address
        return self.name


@_quick_pickle
@dataclass(frozen=True, slots=True)
class Organizer:
    """Who organises an event."""

    name: str
    email: str = ""


@_quick_pickle
@dataclass(frozen=True, slots=True)
class NewsItem:
    """One Related News item.

    ``date`` is aware; ``date_only`` records that the YAML gave a date without a time
    (then ``date`` is local midnight in the site's zone).
    """

    id: str
    title: str
    date: datetime
    date_only: bool = False
    url: str = ""
    source: str = ""
    summary: str = ""  # Markdown
    body: str = ""  # Markdown
    tags: tuple[str, ...] = ()
    lang: str = ""
    image: str = ""
    updated: datetime | None = None
    event: str = ""
    line: int = field(default=0, compare=False, repr=False)  # where it is in its YAML file


@_quick_pickle
@dataclass(frozen=True, slots=True)
class Event:
    """One event.

    All-day events (``all_day``) have ``date`` values in ``start`` and ``end``, ``end``
    being the last day *inclusive*, as people write it. Timed events have aware datetimes
    in the event's zone. ``end`` is always set (the defaults are applied by validation).
    """

    id: str
    title: str
    start: date | datetime
    end: date | datetime
    all_day: bool
    timezone: ZoneInfo
    location: Location | None = None
    online: str = ""
    url: str = ""
    description: str = ""  # Markdown
    organizer: Organizer | None = None
    status: Status = "confirmed"
    tags: tuple[str, ...] = ()
    rrule: str = ""  # an RFC 5545 RRULE value, without the "RRULE:" prefix
    exdates: tuple[date | datetime, ...] = ()
    updated: datetime | None = None
    news: str = ""
    line: int = field(default=0, compare=False, repr=False)  # where it is in its YAML file

    @property
    def dtend_exclusive(self) -> date | datetime:
        """The RFC 5545 DTEND: for all-day events the day after the last day."""
        if self.all_day:
            assert isinstance(self.end, date)
            return self.end + timedelta(days=1)
        return self.end

    @property
    def duration(self) -> timedelta:
        """Length of one occurrence."""
        return _instant(self.dtend_exclusive, self.timezone) - _instant(self.start, self.timezone)

    @property
    def starts_at(self) -> datetime:
        """Aware start of the first occurrence (local midnight for all-day events)."""
        return _instant(self.start, self.timezone)

    @property
    def ends_at(self) -> datetime:
        """Aware end of the first occurrence (exclusive)."""
        return _instant(self.dtend_exclusive, self.timezone)

    def occurrences(self, after: datetime, limit: int = 1) -> list[datetime]:
        """Up to ``limit`` occurrence starts whose occurrence has not ended at ``after``."""
        if not self.rrule:
            return [self.starts_at] if self.ends_at > after else []
        rule = self._rule()
        excluded = {_instant(x, self.timezone) for x in self.exdates}
        found: list[datetime] = []
        window_start = (after - self.duration).astimezone(self.timezone).replace(tzinfo=None)
        for naive in rule.xafter(window_start, inc=True):
            start = _localize(naive, self.timezone)
            if start in excluded or start + self.duration <= after:
                continue
            found.append(start)
            if len(found) >= limit:
                break
        return found

    def next_start(self, now: datetime) -> datetime | None:
        """Start of the first occurrence not yet ended at ``now``; None when all have ended."""
        found = self.occurrences(now, 1)
        return found[0] if found else None

    def is_forthcoming(self, now: datetime) -> bool:
        """Whether some occurrence has not yet ended at ``now``."""
        return self.next_start(now) is not None

    def last_end(self) -> datetime | None:
        """End of the last occurrence; None for a series without end."""
        if not self.rrule:
            return self.ends_at
        key = (self.rrule, self.start, self.end, self.timezone.key, self.exdates)
        if key not in _LAST_ENDS:
            if len(_LAST_ENDS) > 65536:
                _LAST_ENDS.clear()
            _LAST_ENDS[key] = self._series_end()
        return _LAST_ENDS[key]

    def _series_end(self) -> datetime | None:
        if "COUNT=" not in self.rrule and "UNTIL=" not in self.rrule:
            return None
        excluded = {_instant(x, self.timezone) for x in self.exdates}
        last = None
        for naive in self._rule():
            start = _localize(naive, self.timezone)
            if start not in excluded:
                last = start
        if last is None:
            return self.ends_at
        return last + self.duration

    def total_occurrences(self) -> int | None:
        """How many times the event takes place (EXDATEs left out); None for an open series."""
        if not self.rrule:
            return 1
        if "COUNT=" not in self.rrule and "UNTIL=" not in self.rrule:
            return None
        excluded = {_instant(x, self.timezone) for x in self.exdates}
        return sum(1 for naive in self._rule() if _localize(naive, self.timezone) not in excluded)

    def _rule(self) -> Any:
        """The RRULE over local wall-clock times (a UTC ``UNTIL`` turned into local time)."""
        from dateutil.rrule import rrulestr

        text = self.rrule
        until = re.search(r"UNTIL=(\d{8}T\d{6})Z", text)
        if until:
            utc = datetime.strptime(until[1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
            local = utc.astimezone(self.timezone).strftime("%Y%m%dT%H%M%S")
            text = text.replace(until[0], f"UNTIL={local}")
        return rrulestr(text, dtstart=self.starts_at.replace(tzinfo=None), ignoretz=True)


_LAST_ENDS: dict[tuple[object, ...], datetime | None] = {}  # a series' end, by its rule


def _localize(naive: datetime, tz: ZoneInfo) -> datetime:
    """Attach a zone to a wall-clock time (the earlier reading of an ambiguous time)."""
    return naive.replace(tzinfo=tz, fold=0)


def _instant(value: date | datetime, tz: ZoneInfo) -> datetime:
    """An aware datetime for a date (local midnight) or a datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else _localize(value, tz)
    return datetime.combine(value, time(0), tzinfo=tz)


@dataclass(frozen=True, slots=True)
class Content:
    """Everything loaded from ``data/``: news newest first, events soonest first."""

    news: tuple[NewsItem, ...]
    events: tuple[Event, ...]
    news_file: str = "data/news.yaml"
    events_file: str = "data/events.yaml"
    # "news:<id>" / "events:<id>" -> a hash of the item's source text, when the loader
    # knows it (incremental loading); renderers use it to tell what changed.
    keys: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
