"""What a build remembers between runs: event revisions, first-seen times, tombstones.

The state is a pure function of (previous state, content, now), so a build that crashed
before saving it recomputes the same values next time.

Per event id the state keeps a hash of the event's content, its SEQUENCE, when a build
first saw it (CREATED), when its content last changed (LAST-MODIFIED) and a snapshot
from which a deleted event is re-announced as cancelled for ``[calendar] cancelled_days``.
A record is never forgotten, so a re-used id continues its SEQUENCE.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cccn_feeds.model import Event, Geo, Location, Organizer

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Revision:
    """Revision facts of one event as calendars and feeds need them."""

    sequence: int
    created: datetime
    last_modified: datetime
    first_seen: datetime
    deleted_at: datetime | None = None


@dataclass(slots=True)
class EventRecord:
    """The stored form of one event's history."""

    hash: str
    sequence: int
    created: str
    last_modified: str
    snapshot: dict[str, Any] | None
    deleted_at: str | None = None
    source: str = ""  # the loader's key of the text ``hash`` was computed from, if known

    def to_json(self) -> dict[str, Any]:
        """The record as JSON values (the snapshot is shared, not copied)."""
        return {
            "hash": self.hash,
            "sequence": self.sequence,
            "created": self.created,
            "last_modified": self.last_modified,
            "snapshot": self.snapshot,
            "deleted_at": self.deleted_at,
            "source": self.source,
        }

    def revision(self) -> Revision:
        """The record as a Revision."""
        created = _parse(self.created)
        return Revision(
            sequence=self.sequence,
            created=created,
            last_modified=_parse(self.last_modified),
            first_seen=created,
            deleted_at=_parse(self.deleted_at) if self.deleted_at else None,
        )


@dataclass(slots=True)
class History:
    """Everything remembered about events."""

    events: dict[str, EventRecord] = field(default_factory=dict)
    news: dict[str, str] = field(default_factory=dict)  # id -> when a build first saw it

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, keys sorted for stable bytes."""
        return {
            "version": STATE_VERSION,
            "events": {k: v.to_json() for k, v in sorted(self.events.items())},
            "news": dict(sorted(self.news.items())),
        }

    def same_records(self, other: History) -> bool:
        """Whether every record is the very record of ``other`` (nothing moved on)."""
        mine, theirs = self.events, other.events
        same = mine.keys() == theirs.keys() and all(mine[k] is theirs[k] for k in mine)
        return same and self.news == other.news

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> History:
        """Read a stored history; unknown versions start afresh."""
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return cls()
        known = {f.name for f in dataclasses.fields(EventRecord)}
        events = {
            str(k): EventRecord(**{name: v[name] for name in v if name in known})
            for k, v in data.get("events", {}).items()
        }
        news = {str(k): str(v) for k, v in data.get("news", {}).items()}
        return cls(events, news)


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _when(value: date | datetime) -> str:
    return value.isoformat()


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event's content as plain JSON values (no line numbers)."""
    data: dict[str, Any] = {
        "id": event.id,
        "title": event.title,
        "start": _when(event.start),
        "end": _when(event.end),
        "all_day": event.all_day,
        "timezone": event.timezone.key,
        "online": event.online,
        "url": event.url,
        "description": event.description,
        "status": event.status,
        "tags": list(event.tags),
        "rrule": event.rrule,
        "exdates": [_when(x) for x in event.exdates],
        "updated": _when(event.updated) if event.updated else None,
        "news": event.news,
        "location": dataclasses.asdict(event.location) if event.location else None,
        "organizer": dataclasses.asdict(event.organizer) if event.organizer else None,
    }
    return data


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an Event from :func:`event_to_dict` output."""
    tz = ZoneInfo(data["timezone"])

    def when(text: str) -> date | datetime:
        return date.fromisoformat(text) if data["all_day"] else datetime.fromisoformat(text)

    loc = data.get("location")
    org = data.get("organizer")
    return Event(
        id=data["id"],
        title=data["title"],
        start=when(data["start"]),
        end=when(data["end"]),
        all_day=data["all_day"],
        timezone=tz,
        online=data.get("online", ""),
        url=data.get("url", ""),
        description=data.get("description", ""),
        status=data.get("status", "confirmed"),
        tags=tuple(data.get("tags", ())),
        rrule=data.get("rrule", ""),
        exdates=tuple(when(x) for x in data.get("exdates", ())),
        updated=datetime.fromisoformat(data["updated"]) if data.get("updated") else None,
        news=data.get("news", ""),
        location=Location(
            name=loc["name"],
            address=loc.get("address", ""),
            geo=Geo(**loc["geo"]) if loc.get("geo") else None,
        )
        if loc
        else None,
        organizer=Organizer(**org) if org else None,
    )


def content_hash(event: Event) -> str:
    """A hash of everything a calendar shows of the event."""
    blob = json.dumps(event_to_dict(event), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Advanced:
    """The result of moving the history to a new build."""

    revisions: dict[str, Revision]
    tombstones: tuple[Event, ...]
    history: History
    news_first_seen: dict[str, datetime] = field(default_factory=dict)


def advance(
    previous: History,
    events: tuple[Event, ...],
    now: datetime,
    cancelled_days: int,
    news_ids: Iterable[str] = (),
    sources: Mapping[str, str] | None = None,
) -> Advanced:
    """Compare the events with the history at ``now``: bump what changed, tombstone what left.

    News items only get a first-seen time, which orders items of the same date in feeds.
    ``sources`` (event id -> the loader's key of its text) lets an event whose text did
    not change keep its recorded hash without computing it again.
    """
    sources = sources or {}
    stamp = _stamp(now)
    news_seen = {key: previous.news.get(key, stamp) for key in news_ids}
    records: dict[str, EventRecord] = {}
    revisions: dict[str, Revision] = {}
    present = set()
    for event in events:
        present.add(event.id)
        source = sources.get(event.id, "")
        old = previous.events.get(event.id)
        same_text = old is not None and source and old.source == source
        digest = old.hash if same_text and old is not None else content_hash(event)
        if old is None:
            record = EventRecord(digest, 0, stamp, stamp, event_to_dict(event), source=source)
        elif old.hash == digest and old.deleted_at is None:
            # The same event; a record made before its text's key was kept learns it once.
            record = old if old.source == source else dataclasses.replace(old, source=source)
        else:
            record = EventRecord(
                digest,
                old.sequence + 1,
                old.created,
                max(stamp, old.last_modified),
                event_to_dict(event),
                source=source,
            )
        records[event.id] = record
        revisions[event.id] = record.revision()
    tombstones: list[Event] = []
    keep_until = timedelta(days=cancelled_days)
    for event_id, old in sorted(previous.events.items()):
        if event_id in present:
            continue
        if old.snapshot is None:
            records[event_id] = old
            continue
        if old.deleted_at is None:
            # Only an event that still had something ahead is announced as cancelled; one
            # that already took place simply leaves (calling it cancelled would be false).
            ahead = event_from_dict(old.snapshot).is_forthcoming(now)
            old = EventRecord(
                old.hash, old.sequence + 1, old.created, max(stamp, old.last_modified),
                old.snapshot if ahead else None, deleted_at=stamp,
            )  # fmt: skip
            if not ahead:
                records[event_id] = old
                continue
        assert old.deleted_at is not None
        if now - _parse(old.deleted_at) >= keep_until:
            records[event_id] = dataclasses.replace(old, snapshot=None)
            continue
        records[event_id] = old
        snapshot = dict(old.snapshot or {})
        snapshot["status"] = "cancelled"
        tombstones.append(event_from_dict(snapshot))
        revisions[event_id] = old.revision()
    return Advanced(
        revisions,
        tuple(tombstones),
        History(records, news_seen if news_seen != previous.news else previous.news),
        {key: _parse(value) for key, value in news_seen.items()},
    )
