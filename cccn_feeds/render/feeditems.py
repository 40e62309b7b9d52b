"""What every feed format shares: items, their dates, documents and archive pages.

The RSS/Atom writer (:mod:`cccn_feeds.render.feeds`) and the JSON Feed writer
(:mod:`cccn_feeds.render.jsonfeed`) both start from the :class:`FeedDocument` values made
here, so the three formats carry the same items, dates, links and pages.

Distinct timestamps
    Readers mis-sort items that share a timestamp and the W3C validator warns about them.
    Each kind of item (all news, all events) is put in one chronological order, by date and
    then by id; walking that order, an item keeps its own date (to the second) unless that
    is not later than the previous item's, in which case it takes the previous item's plus
    one second. The rule looks only at the content, never at the clock, and it is computed
    over every item of a kind, so an item has the same dates in the main feed, in its tag
    feeds and in the archives.

Archive pages (RFC 5005)
    A feed's items, oldest first, are cut into pages of ``[feeds] max_items`` counted from
    the oldest item. The newest ``max_items`` items form the subscription document; the
    older ones are in archive pages 1, 2, … (page 1 holds the oldest). A page, once full,
    never changes because new items only ever join the newest end.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

from cccn_feeds.context import BuildContext
from cccn_feeds.model import Event, NewsItem
from cccn_feeds.text import first_sentence_summary, markdown_html, markdown_text

Kind = Literal["news", "events"]
D = TypeVar("D")
STYLESHEET = "feed.xsl"
ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entry as every format needs it; text fields are plain text unless named html."""

    key: str  # the item's id in the YAML
    uri: str  # permanent identifier (a tag: URI)
    title: str
    link: str  # absolute address, may be empty for news without one
    published: datetime  # distinct within its kind
    updated: datetime  # distinct within its kind; the feed date
    summary: str
    content_html: str
    tags: tuple[str, ...] = ()
    author: str = ""
    image: str = ""
    language: str = ""
    when: str = ""
    where: str = ""


# The memo in which the RSS/Atom writer keeps the shared parts of the last items it wrote.
WRITTEN_PARTS_MEMO = "feeds.common"


class ItemSource:
    """The FeedItems of one kind, each made the first time a page needs it.

    Dates and input keys are known at once (they are cheap); the items themselves (text,
    rendered Markdown) are made only for pages that are written, so a rebuild that reuses
    most pages does not make most items.
    """

    def __init__(
        self,
        make: Callable[[str], FeedItem],
        updated: Mapping[str, datetime],
        keys: Mapping[str, str],
    ) -> None:
        self._make, self._updated, self._keys = make, updated, keys
        self._items: dict[str, FeedItem] = {}
        self._written: dict[tuple[str, str], bytes] = {}
        self._documents: dict[str, int] = {}  # how many documents carry each item
        self._left: dict[tuple[str, str], int] = {}  # documents yet to take each piece

    def carried_by_one_more(self, keys: Iterable[str]) -> None:
        """Count a document that carries ``keys``: a written piece is kept until every
        document that carries it has taken it (memory stays near one feed's worth)."""
        for key in keys:
            self._documents[key] = self._documents.get(key, 0) + 1

    def __getitem__(self, key: str) -> FeedItem:
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = self._make(key)
        return item

    def written(self, key: str, fmt: str, write: Callable[[FeedItem], bytes]) -> bytes:
        """The item as one format writes it (an RSS ``<item>``, say), written once however
        many documents carry it: pages are assembled from these pieces."""
        piece = self._written.get((key, fmt))
        if piece is None:
            piece = self._written[key, fmt] = write(self[key])
            self._left[key, fmt] = self._documents.get(key, 1)
        self._left[key, fmt] -= 1
        if self._left[key, fmt] <= 0:
            del self._written[key, fmt], self._left[key, fmt]
        return piece

    def updated(self, key: str) -> datetime:
        """The item's feed date (distinct within its kind)."""
        return self._updated[key]

    def input_key(self, key: str) -> str:
        """Everything the item is made from besides settings and code."""
        return self._keys[key]


@dataclass(frozen=True, slots=True)
class FeedDocument:
    """One feed (all its items, display order) before it is cut into pages."""

    base: str  # output path without extension, e.g. "news" or "tags/jane-2/events"
    kind: Kind
    title: str
    description: str
    ids: tuple[str, ...]  # the items' ids, display order
    source: ItemSource
    empty_date: datetime  # the feed date when there is no item at all


@dataclass(frozen=True, slots=True)
class FeedPage:
    """One document to write: the subscription document or an archive page."""

    doc: FeedDocument
    number: int  # 0 for the subscription document, else the archive page number
    ids: tuple[str, ...]  # display order
    prev_archive: int  # number of the next older archive page, 0 if none
    next_archive: int  # number of the next newer archive page, 0 if none (or current)

    @property
    def items(self) -> tuple[FeedItem, ...]:
        """The page's items, made now if not yet."""
        return tuple(self.doc.source[key] for key in self.ids)

    @property
    def is_archive(self) -> bool:
        """Whether this is an RFC 5005 archive document."""
        return self.number > 0

    def path(self, ext: str) -> str:
        """The output path of this page in one format (``rss``, ``atom`` or ``json``)."""
        return archive_path(self.doc.base, self.number, ext)

    @property
    def updated(self) -> datetime:
        """The page's date: its newest item's feed date, never the clock."""
        if not self.ids:
            return self.doc.empty_date
        return max(self.doc.source.updated(key) for key in self.ids)


def archive_path(base: str, number: int, ext: str) -> str:
    """``news.rss`` for the subscription document, ``news-archive-3.rss`` for page 3."""
    return f"{base}.{ext}" if number == 0 else f"{base}-archive-{number}.{ext}"


def distinct_times(
    dates: Iterable[tuple[str, datetime]], first_seen: Mapping[str, datetime] | None = None
) -> dict[str, datetime]:
    """Id -> a timestamp unique among ``dates`` (see the module docstring for the rule).

    Items with the same time are ordered by when a build first saw them, then by id, so an
    item added later never moves the dates of items already published.
    """
    seen = first_seen or {}
    far = datetime.max.replace(tzinfo=UTC)
    ordered = sorted((d.replace(microsecond=0), seen.get(key, far), key) for key, d in dates)
    result: dict[str, datetime] = {}
    previous: datetime | None = None
    for when, _seen, key in ordered:
        if previous is not None and when <= previous:
            when = previous + ONE_SECOND
        result[key] = when
        previous = when
    return result


# --- news -------------------------------------------------------------------------------


def news_date(item: NewsItem) -> datetime:
    """A news item's publication time: a date alone means noon in the site's zone.

    Noon keeps the calendar day the same for readers from UTC-11 to UTC+12, where
    midnight would show the previous day west of Luxembourg.
    """
    return item.date + timedelta(hours=12) if item.date_only else item.date


def news_dates(ctx: BuildContext) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """Every news item's feed dates, published and updated (distinct within news)."""

    def make() -> tuple[dict[str, datetime], dict[str, datetime]]:
        news = ctx.content.news
        first_seen = ctx.news_first_seen
        published = distinct_times(((n.id, news_date(n)) for n in news), first_seen)
        updated = distinct_times(
            ((n.id, max(n.updated or published[n.id], published[n.id])) for n in news),
            first_seen,
        )
        return published, updated

    return ctx.memo("feeditems.news_dates", make)


def news_items(ctx: BuildContext) -> ItemSource:
    """Every news item as a FeedItem (made on demand), keyed by id."""
    news = ctx.content.news
    published, updated = news_dates(ctx)
    by_id = {n.id: n for n in news}
    keys = {
        n.id: f"{ctx.item_key('news', n)}|{published[n.id]}|{updated[n.id]}|{ctx.is_broken(n.url)}"
        for n in news
    }
    return ItemSource(
        lambda key: _news_item(ctx, by_id[key], published[key], updated[key]), updated, keys
    )


def _news_item(
    ctx: BuildContext, item: NewsItem, published: datetime, updated: datetime
) -> FeedItem:
    base = item.url or ctx.site.link
    body = markdown_html(item.body or item.summary, base=base)
    if not body:
        body = f"<p>{html.escape(item.title)}</p>"
    if item.summary:
        summary = markdown_text(item.summary)
    elif item.body:
        summary = first_sentence_summary(markdown_text(item.body))
    else:
        summary = ""
    if item.source:
        body += f"\n<p>Source: {html.escape(item.source)}</p>"
    if ctx.is_broken(item.url):
        body += "\n<p>The linked page could not be reached at the last check.</p>"
    return FeedItem(
        key=item.id,
        uri=ctx.tag_uri("news", item.id),
        title=item.title,
        link=item.url,
        published=published,
        updated=updated,
        summary=summary,
        content_html=body,
        tags=item.tags,
        author=item.source,
        image=item.image,
        language=item.lang,
    )


# --- events -----------------------------------------------------------------------------


def event_feed_date(ctx: BuildContext, event: Event) -> datetime:
    """When the event was published or last changed: its ``updated``, else when a build
    first saw it, moved on to when a build saw its content change (a new time, place or
    status, such as a cancellation), whichever is later."""
    revision = ctx.revisions.get(event.id)
    seen = revision.first_seen if revision is not None else ctx.now
    changed = revision.last_modified if revision is not None else seen
    base = event.updated if event.updated is not None else seen
    return max(base, changed) if revision is not None and revision.sequence > 0 else base


def event_link(ctx: BuildContext, event: Event) -> str:
    """The event's page, else its calendar file under the output address."""
    return event.url or ctx.url(f"events/{event.id}.ics")


def event_items(ctx: BuildContext) -> ItemSource:
    """Every forthcoming event as a FeedItem (made on demand), keyed by id (dates distinct
    over all events)."""
    seen = {key: rev.first_seen for key, rev in ctx.revisions.items()}
    stamps = distinct_times(((e.id, event_feed_date(ctx, e)) for e in ctx.content.events), seen)
    by_id = {e.id: e for e in ctx.forthcoming}
    keys = {
        # What is said of "when" follows the next occurrence, which the clock moves.
        e.id: f"{ctx.item_key('events', e)}|{stamps[e.id]}|{ctx.next_starts[e.id]}"
        for e in ctx.forthcoming
    }
    return ItemSource(lambda key: _event_item(ctx, by_id[key], stamps[key]), stamps, keys)


_STATUS_PREFIX = {"cancelled": "Cancelled: ", "tentative": "Tentative: ", "confirmed": ""}


def _event_item(ctx: BuildContext, event: Event, stamp: datetime) -> FeedItem:
    tz = ctx.site.tz
    when = describe_when(event, ctx.now, tz)
    where = describe_where(event)
    link = event_link(ctx, event)
    lines = [f"When: {when}"]
    if where:
        lines.append(f"Where: {where}")
    if event.status != "confirmed":
        lines.append(f"Status: {event.status}")
    if event.organizer is not None:
        lines.append(f"Organiser: {event.organizer.name}")
    description_text = markdown_text(event.description)
    summary = "\n".join(lines) + (f"\n\n{description_text}" if description_text else "")
    facts = "".join(
        f"<li>{html.escape(line.split(': ', 1)[0])}: {html.escape(line.split(': ', 1)[1])}</li>"
        for line in lines
    )
    body = f"<ul>{facts}</ul>"
    description_html = markdown_html(event.description, base=event.url or ctx.site.link)
    if description_html:
        body += "\n" + description_html
    if event.online:
        online = html.escape(event.online, quote=True)
        body += f'\n<p>Online: <a href="{online}">{online}</a></p>'
    calendar = html.escape(ctx.url(f"events/{event.id}.ics"), quote=True)
    body += f'\n<p><a href="{calendar}">Add to your calendar (iCalendar)</a></p>'
    return FeedItem(
        key=event.id,
        uri=ctx.tag_uri("event", event.id),
        title=_STATUS_PREFIX[event.status] + event.title,
        link=link,
        published=stamp,
        updated=stamp,
        summary=summary,
        content_html=body,
        tags=event.tags,
        author=event.organizer.name if event.organizer else "",
        when=when,
        where=where,
    )


def _day(value: date) -> str:
    return f"{value:%A} {value.day} {value:%B %Y}"


def _clock(value: datetime) -> str:
    return f"{value:%H:%M}"


def describe_when(event: Event, now: datetime, tz: ZoneInfo) -> str:
    """When the (next occurrence of the) event takes place, in ``tz``, written for people."""
    start = event.next_start(now) or event.starts_at
    repeat = describe_rrule(event.rrule, event.total_occurrences())
    if event.all_day:
        first = start.date()
        last = first + timedelta(days=max(event.duration.days - 1, 0))
        text = _day_range(first, last) + (" (all day)" if first == last else "")
    else:
        end = start + event.duration
        text = _time_range(start.astimezone(tz), end.astimezone(tz))
        text += _zone_note(start, end, event.timezone, tz)
    return f"{text}; {repeat}" if repeat else text


def _day_range(first: date, last: date) -> str:
    if first == last:
        return _day(first)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first:%A} {first.day} – {_day(last)}"
    if first.year == last.year:
        return f"{first:%A} {first.day} {first:%B} – {_day(last)}"
    return f"{_day(first)} – {_day(last)}"


def _time_range(start: datetime, end: datetime) -> str:
    if start.date() == end.date():
        return f"{_day(start.date())}, {_clock(start)}–{_clock(end)}"
    return f"{_day(start.date())}, {_clock(start)} – {_day(end.date())}, {_clock(end)}"


def _zone_note(start: datetime, end: datetime, event_tz: ZoneInfo, site_tz: ZoneInfo) -> str:
    """The site's zone name, plus the event's own local time when it is elsewhere."""
    local_start, local_end = start.astimezone(event_tz), end.astimezone(event_tz)
    site_start = start.astimezone(site_tz)
    if local_start.utcoffset() == site_start.utcoffset() and event_tz.key == site_tz.key:
        return f" ({_city(site_tz)} time)"
    if local_start.utcoffset() == site_start.utcoffset():
        return f" ({_city(site_tz)} time, also {_city(event_tz)} time)"
    return (
        f" ({_city(site_tz)} time; {_clock(local_start)}–{_clock(local_end)} in {_city(event_tz)})"
    )


def _city(tz: ZoneInfo) -> str:
    return tz.key.rsplit("/", 1)[-1].replace("_", " ")


_FREQ = {"DAILY": "day", "WEEKLY": "week", "MONTHLY": "month", "YEARLY": "year"}


def describe_rrule(rrule: str, total: int | None = None) -> str:
    """A short description of a series, e.g. ``repeats every week, 10 times in all``.

    ``total`` is the real number of occurrences (COUNT less the EXDATEs), when known.
    """
    if not rrule:
        return ""
    parts = dict(p.split("=", 1) for p in rrule.split(";") if "=" in p)
    unit = _FREQ.get(parts.get("FREQ", ""), "")
    if not unit:
        return "repeats"
    interval = int(parts.get("INTERVAL", "1") or 1)
    text = f"repeats every {unit}" if interval == 1 else f"repeats every {interval} {unit}s"
    if "COUNT" in parts:
        count = total if total is not None else int(parts["COUNT"])
        text += f", {count} time{'s' if count != 1 else ''} in all"
    elif "UNTIL" in parts:
        until = parts["UNTIL"][:8]
        if re.fullmatch(r"\d{8}", until):
            text += f", until {_day(date(int(until[:4]), int(until[4:6]), int(until[6:])))}"
    return text


def describe_where(event: Event) -> str:
    """Where the event takes place: the location, and the online address if any."""
    parts = []
    if event.location is not None and event.location.text():
        parts.append(event.location.text())
    if event.online:
        parts.append(f"online at {event.online}")
    return "; ".join(parts)


# --- documents and pages ----------------------------------------------------------------


def _newest(dates: Iterable[datetime], default: D) -> datetime | D:
    found = list(dates)
    return max(found) if found else default


def documents(ctx: BuildContext, kind: Kind | None = None) -> list[FeedDocument]:
    """Every feed document: main news and events, then one per news tag and event tag
    (with ``kind``, those of one kind: a build on two cores shares the feeds out so).

    Computed once per build and shared by the RSS/Atom and JSON Feed renderers.
    """
    if kind is None:
        news, events = documents(ctx, "news"), documents(ctx, "events")
        return [news[0], events[0], *news[1:], *events[1:]]
    return ctx.memo(f"feeditems.documents:{kind}", lambda: _documents(ctx, kind))


def release_items(ctx: BuildContext, kind: Kind) -> None:
    """Let go of the feed documents of ``kind`` and their items, once every renderer that
    needs them is done (the side of a build that renders them, see ``cccn_feeds.parallel``),
    and of what the feed writers keep of the last items they wrote."""
    ctx.forget(f"feeditems.documents:{kind}")
    ctx.forget(WRITTEN_PARTS_MEMO)


def _news_empty(ctx: BuildContext) -> datetime:
    """The feed date of a news feed with no item: the newest news date."""
    return _newest(news_dates(ctx)[1].values(), datetime(2025, 1, 1, tzinfo=ctx.site.tz))


def _event_empty(ctx: BuildContext) -> datetime:
    """The feed date of an events feed with no item: the newest event date, else the news
    feed's (worked out only then: it takes every news item's date)."""
    newest = _newest((event_feed_date(ctx, e) for e in ctx.content.events), None)
    return (newest or _news_empty(ctx)).replace(microsecond=0)


def _documents(ctx: BuildContext, kind: Kind) -> list[FeedDocument]:
    site = ctx.site
    # (base, title, description, ids): the feed of the kind, then one per tag.
    feeds: list[tuple[str, str, str, tuple[str, ...]]]
    if kind == "news":
        source, empty = news_items(ctx), _news_empty(ctx)
        feeds = [("news", f"{site.title}: news", site.description,
                  tuple(n.id for n in ctx.content.news))]  # fmt: skip
        feeds += [
            (f"tags/{slug}/news", f"{site.title}: news on {tag}",
             f"News tagged {tag}. {site.description}",
             tuple(n.id for n in ctx.news_with_tag(slug)))
            for slug, tag in ctx.news_tags.items()
        ]  # fmt: skip
    else:
        source, empty = event_items(ctx), _event_empty(ctx)
        feeds = [("events", f"{site.title}: events", f"Forthcoming events. {site.description}",
                  tuple(e.id for e in ctx.forthcoming))]  # fmt: skip
        feeds += [
            (f"tags/{slug}/events", f"{site.title}: events on {tag}",
             f"Forthcoming events tagged {tag}. {site.description}",
             tuple(e.id for e in ctx.events_with_tag(ctx.forthcoming, slug)))
            for slug, tag in ctx.event_tags.items()
        ]  # fmt: skip
    docs = [FeedDocument(base, kind, title, about, ids, source, empty)
            for base, title, about, ids in feeds]  # fmt: skip
    for doc in docs:
        doc.source.carried_by_one_more(doc.ids)
    return docs


def pages(doc: FeedDocument, max_items: int) -> list[FeedPage]:
    """The subscription document, then archive pages 1..n (1 = oldest items)."""
    if len(doc.ids) <= max_items:
        return [FeedPage(doc, 0, doc.ids, 0, 0)]
    current = doc.ids[:max_items]
    older = list(reversed(doc.ids[max_items:]))  # oldest first
    chunks = [older[i : i + max_items] for i in range(0, len(older), max_items)]
    count = len(chunks)
    result = [FeedPage(doc, 0, current, count, 0)]
    for number, chunk in enumerate(chunks, start=1):
        next_number = number + 1 if number < count else 0
        result.append(FeedPage(doc, number, tuple(reversed(chunk)), number - 1, next_number))
    return result


def all_pages(ctx: BuildContext, kind: Kind | None = None) -> list[FeedPage]:
    """The pages of every feed document (see :func:`documents`), newest first across the
    documents: ordered by the feed date of each page's newest item (pages without items
    first).

    An item's written pieces are made for the first page that carries it and kept until
    every other page that carries it has taken them (:meth:`ItemSource.written`). Page
    by page through one document after the other, the main feed's pieces waited for the
    feeds of every tag (at 10,000 news, about 15,000 pieces at once); in this order they
    wait about one page of each tag's feed. Only the order in which the documents are
    written changes, not their bytes.
    """
    found = [
        page for doc in documents(ctx, kind) for page in pages(doc, ctx.settings.feeds.max_items)
    ]
    return sorted(found, key=_page_newest, reverse=True)  # stable: ties keep their order


_NO_ITEM = datetime.max.replace(tzinfo=UTC)


def _page_newest(page: FeedPage) -> datetime:
    updated = page.doc.source.updated
    return max(updated(key) for key in page.ids) if page.ids else _NO_ITEM


def page_parts(ctx: BuildContext, page: FeedPage) -> list[str]:
    """Everything a page's documents depend on besides settings and code, as strings.

    The RSS, Atom and JSON writers key their output on these (see ``BuildContext.keyed``),
    so a rebuild rewrites only pages whose items or neighbours changed.
    """
    doc = page.doc
    return ctx.memo(
        f"feeditems.page_parts:{doc.base}:{page.number}",
        lambda: [
            doc.base, doc.kind, doc.title, doc.description, repr(doc.empty_date),
            str(page.number), str(page.prev_archive), str(page.next_archive),
            *(doc.source.input_key(key) for key in page.ids),
        ],
    )  # fmt: skip


def plain_title(text: str) -> str:
    """Plain text that no reader or validator mistakes for HTML, with the same visible text.

    Feed readers and the W3C validator guess that text holding an HTML end tag (``</b>``)
    or an entity reference (``&amp;``) is HTML. A WORD JOINER (U+2060, invisible) after the
    ``<`` or ``&`` of such a sequence defeats the guess while the text reads the same.
    """
    text = re.sub(r"<(?=/\w+>)", "<\u2060", text)
    return re.sub(r"&(?=#?\w)", "&\u2060", text)
