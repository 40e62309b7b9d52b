"""What every renderer receives: the content, the settings, the clock and the history."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urljoin

from cccn_feeds.history import Revision
from cccn_feeds.model import Content, Event, NewsItem, tag_slug
from cccn_feeds.publish import REUSED, Output
from cccn_feeds.settings import Settings, SiteSettings

FeedFormat = Literal["rss", "atom", "json", "ics"]
T = TypeVar("T")
MEDIA_TYPES: dict[str, str] = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
    "ics": "text/calendar",
}


@dataclass(frozen=True, slots=True)
class FeedLink:
    """One published feed: where it is and what it carries (for the page and OPML)."""

    path: str  # relative to the output folder, e.g. "tags/eunetccc/news.rss"
    format: FeedFormat
    kind: Literal["news", "events"]
    title: str
    tag: str = ""  # the tag as written, for per-tag feeds

    @property
    def media_type(self) -> str:
        """The feed's MIME type."""
        return MEDIA_TYPES[self.format]


@dataclass(frozen=True)
class BuildContext:
    """Inputs of one build, shared read-only by every renderer.

    ``now`` is aware. ``revisions`` has an entry for every event and tombstone.
    ``tombstones`` are events deleted from the YAML, re-announced as cancelled.
    ``broken_links`` maps a declared-broken address to its verdict.
    """

    settings: Settings
    content: Content
    now: datetime
    revisions: Mapping[str, Revision] = field(default_factory=dict)
    tombstones: tuple[Event, ...] = ()
    news_first_seen: Mapping[str, datetime] = field(default_factory=dict)
    broken_links: Mapping[str, str] = field(default_factory=dict)
    output_dir: Path | None = None  # where the previous build's files are, for reuse
    previous_keys: Mapping[str, str] = field(default_factory=dict)
    global_key: str = ""  # settings and code: part of every output's key
    _store: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _keys: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    _stored: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def keyed(self, path: str, parts: Iterable[str], make: Callable[[], bytes]) -> Output:
        """The output at ``path``: REUSED when its inputs equal the last build's, else made.

        ``parts`` must name everything the output depends on besides the settings and the
        code (which ``global_key`` covers).
        """
        digest = hashlib.blake2b(self.global_key.encode(), digest_size=16)
        digest.update(path.encode())
        digest.update("".join(f"\0{part}" for part in parts).encode())  # "\0" before each
        key = digest.hexdigest()
        self._keys[path] = key
        if (
            self.output_dir is not None
            and self.previous_keys.get(path) == key
            and (self.output_dir / path).is_file()
        ):
            return REUSED
        return make()

    @property
    def output_keys(self) -> dict[str, str]:
        """Path -> input key of every output made through :meth:`keyed`."""
        return dict(self._keys)

    def stored(self, key: str, make: Callable[[], T]) -> T:
        """A value kept between builds under ``key`` (which must name all its inputs)."""
        if key in self._stored:
            return cast(T, self._stored[key])
        value = self._store[key] if key in self._store else make()
        self._stored[key] = value
        return cast(T, value)

    def made_elsewhere(self, keys: Mapping[str, str]) -> None:
        """Take the output keys of outputs another process rendered."""
        self._keys.update(keys)

    def use_store(self, values: Mapping[str, Any]) -> None:
        """Start a part of the rendering that may reuse ``values`` (see :meth:`stored`)."""
        self._store.clear()
        self._store.update(values)
        self._stored.clear()

    def take_stored(self) -> dict[str, Any]:
        """The stored values used since :meth:`use_store` or the last call (to keep for the
        next build); this context lets go of them, not of the values it was given."""
        used = dict(self._stored)
        self._stored.clear()
        return used

    def end_store(self) -> None:
        """End the part of the rendering begun by :meth:`use_store`: this context lets go
        of the values it was given and of those used since (take them first, see
        :meth:`take_stored`)."""
        self._store.clear()
        self._stored.clear()

    def item_key(self, kind: Literal["news", "events"], item: NewsItem | Event) -> str:
        """A hash of a news item or event as read from the data (the loader's, when known)."""
        return self.content.keys.get(f"{kind}:{item.id}") or self.fingerprint(item)

    def fingerprint(self, value: object) -> str:
        """A stable hash of a value's repr, computed once per object per build."""
        memo = self._memo.setdefault("_fingerprints", {})
        found = memo.get(id(value))
        if found is None or found[0] is not value:
            text = repr(value).encode()
            found = (value, hashlib.blake2b(text, digest_size=16).hexdigest())
            memo[id(value)] = found
        return cast(str, found[1])

    def memo(self, key: str, make: Callable[[], T]) -> T:
        """A value computed once per build and shared by every renderer that asks for it."""
        if key not in self._memo:
            self._memo[key] = make()
        return cast(T, self._memo[key])

    def forget(self, key: str) -> None:
        """Let go of a :meth:`memo` value no renderer needs any more (made again if asked)."""
        self._memo.pop(key, None)

    @property
    def site(self) -> SiteSettings:
        """The [site] settings."""
        return self.settings.site

    def tag_uri(self, kind: Literal["news", "event"], item_id: str) -> str:
        """The permanent identifier of an item in feeds: a tag: URI on the configured domain.

        It derives from the item's id only, so a changed title, URL or feed address
        never changes it. (2025 is the year the naming authority was minted.)
        """
        return f"tag:{self.site.id_domain},2025:cccn/{kind}/{item_id}"

    def uid(self, event_id: str) -> str:
        """The iCalendar UID of an event: ``<id>@<domain>``."""
        return f"{event_id}@{self.site.id_domain}"

    def url(self, path: str = "") -> str:
        """The absolute address of an output path under ``base_url``."""
        return urljoin(self.site.base_url, path)

    @cached_property
    def next_starts(self) -> dict[str, datetime | None]:
        """Each event's next occurrence not ended at ``now`` (None: all have ended)."""
        return {e.id: e.next_start(self.now) for e in self.content.events}

    @cached_property
    def forthcoming(self) -> tuple[Event, ...]:
        """Events not yet ended at ``now``, soonest (next occurrence) first."""
        upcoming = [(self.next_starts[e.id], e) for e in self.content.events]
        return tuple(e for start, e in sorted(
            ((s, e) for s, e in upcoming if s is not None), key=lambda p: (p[0], p[1].id)
        ))  # fmt: skip

    @cached_property
    def recent_past(self) -> tuple[Event, ...]:
        """Events that ended within ``[calendar] past_days``, most recent first."""
        window = self.now - timedelta(days=self.settings.calendar.past_days)
        past = []
        for event in self.content.events:
            if self.next_starts[event.id] is not None:
                continue
            end = event.last_end()
            if end is not None and end >= window:
                past.append((end, event))
        return tuple(e for _, e in sorted(past, key=lambda p: (p[0], p[1].id), reverse=True))

    def compute_shared(self) -> None:
        """Compute now what every renderer reads (which events are forthcoming or recently
        past, the tags, the catalog): done before a build forks its helper, so that the
        two processes share it instead of each computing it."""
        for name in ("forthcoming", "recent_past", "news_tags", "event_tags", "catalog"):
            getattr(self, name)

    def next_change(self) -> datetime | None:
        """The first instant after ``now`` at which the passing of time alone changes output.

        That is when an occurrence ends (the next one is shown, or the event leaves the
        forthcoming lists), when an ended event leaves the ``past_days`` window, and when a
        deleted event's ``cancelled_days`` run out. None when no such instant is known.
        """
        past = timedelta(days=self.settings.calendar.past_days)
        gone = timedelta(days=self.settings.calendar.cancelled_days)
        moments: list[datetime] = []
        for event in self.content.events:
            for start in event.occurrences(self.now, 1):
                moments.append(start + event.duration)
            end = event.last_end()
            if end is not None:
                moments.append(end + past)
        for revision in self.revisions.values():
            if revision.deleted_at is not None:
                moments.append(revision.deleted_at + gone)
        later = [m for m in moments if m > self.now]
        return min(later) if later else None

    @cached_property
    def news_tags(self) -> dict[str, str]:
        """Slug -> tag as first written, for every tag used by news (sorted by slug)."""
        return _tags(self.content.news)

    @cached_property
    def event_tags(self) -> dict[str, str]:
        """Slug -> tag as first written, for every tag used by events (sorted by slug)."""
        return _tags(self.content.events)

    @cached_property
    def _news_by_tag(self) -> dict[str, tuple[NewsItem, ...]]:
        found: dict[str, list[NewsItem]] = {}
        for item in self.content.news:
            for slug in dict.fromkeys(tag_slug(t) for t in item.tags):
                found.setdefault(slug, []).append(item)
        return {slug: tuple(items) for slug, items in found.items()}

    @cached_property
    def _event_slugs(self) -> dict[str, frozenset[str]]:
        return {
            e.id: frozenset(tag_slug(t) for t in e.tags)
            for e in (*self.content.events, *self.tombstones)
        }

    def news_with_tag(self, slug: str) -> tuple[NewsItem, ...]:
        """News carrying a tag, in the main order."""
        return self._news_by_tag.get(slug, ())

    def events_with_tag(self, events: tuple[Event, ...], slug: str) -> tuple[Event, ...]:
        """Events carrying a tag, order kept."""
        slugs = self._event_slugs
        return tuple(
            e for e in events if slug in (slugs.get(e.id) or {tag_slug(t) for t in e.tags})
        )

    def is_broken(self, url: str) -> bool:
        """Whether the link checker declared this address broken."""
        return bool(url) and url in self.broken_links

    @cached_property
    def catalog(self) -> tuple[FeedLink, ...]:
        """Every feed the build publishes, main feeds first, then per tag."""
        title = self.site.title
        news_formats: tuple[FeedFormat, ...] = ("rss", "atom", "json")
        event_formats: tuple[FeedFormat, ...] = ("rss", "atom", "json", "ics")
        links = [FeedLink(f"news.{f}", f, "news", f"{title}: news") for f in news_formats]
        links += [FeedLink(f"events.{f}", f, "events", f"{title}: events") for f in event_formats]
        for slug, tag in self.news_tags.items():
            links += [
                FeedLink(f"tags/{slug}/news.{f}", f, "news", f"{title}: news on {tag}", tag)
                for f in news_formats
            ]
        for slug, tag in self.event_tags.items():
            links += [
                FeedLink(f"tags/{slug}/events.{f}", f, "events", f"{title}: events on {tag}", tag)
                for f in event_formats
            ]
        return tuple(links)


def _tags(items: tuple[NewsItem, ...] | tuple[Event, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        for tag in item.tags:
            found.setdefault(tag_slug(tag), tag)
    return dict(sorted(found.items()))
