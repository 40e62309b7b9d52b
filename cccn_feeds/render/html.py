"""The page (``index.html``) and the feed list (``feeds.opml``), rendered with Jinja2.

This is the only module that renders templates. The environment escapes every value
(autoescape on) and refuses undefined names (StrictUndefined). The templates receive
plain view objects built here, so all date, time and link logic stays in typed Python.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from cccn_feeds.context import BuildContext, FeedLink
from cccn_feeds.model import Event, NewsItem, tag_slug
from cccn_feeds.publish import Output
from cccn_feeds.render.feeditems import describe_rrule
from cccn_feeds.text import first_sentence_summary, markdown_html, markdown_text

MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FORMAT_LABELS = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed", "ics": "Calendar"}
FEED_HELP = {
    "RSS": "paste the address into any feed reader (Feedly, Inoreader, NetNewsWire, Thunderbird)",
    "Atom": "the same items for readers that prefer Atom",
    "JSON Feed": "the same items as JSON Feed 1.1, for readers and scripts that read JSON",
}
STATUS_LABELS = {"confirmed": "", "tentative": "To be confirmed", "cancelled": "Cancelled"}
GOOGLE = "https://calendar.google.com/calendar/render"
OUTLOOK = "https://outlook.live.com/calendar/0/deeplink/compose"
MAX_DETAILS = 1500  # characters of description carried in an add-to-calendar link
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja2 environment: package templates, autoescaped, strict about undefined names
    (one per process: templates are compiled once)."""
    return Environment(
        loader=PackageLoader("cccn_feeds", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# --- dates and times, written for people -------------------------------------------------


def long_date(day: date) -> str:
    """``Friday 26 March 2027``."""
    return f"{WEEKDAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]} {day.year}"


def site_date(moment: datetime, tz: ZoneInfo) -> str:
    """The date as the site writes it: ``09/03/2025`` (day/month/year, in the site's zone)."""
    return moment.astimezone(tz).strftime("%d/%m/%Y")


def day_range(first: date, last: date) -> str:
    """Days from ``first`` to ``last`` inclusive, written without repeating month or year."""
    if first == last:
        return long_date(first)
    if (first.year, first.month) == (last.year, last.month):
        return f"{WEEKDAYS[first.weekday()]} {first.day} – {long_date(last)}"
    if first.year == last.year:
        return (
            f"{WEEKDAYS[first.weekday()]} {first.day} {MONTHS[first.month - 1]} – {long_date(last)}"
        )
    return f"{long_date(first)} – {long_date(last)}"


def clock(moment: datetime) -> str:
    """``10:00``."""
    return moment.strftime("%H:%M")


def time_range(start: datetime, end: datetime) -> str:
    """A timed span in the zone of its datetimes, each time with its zone abbreviation."""
    if start.date() == end.date():
        zone = start.tzname() or ""
        if start.tzname() != end.tzname():
            return f"{long_date(start.date())}, {clock(start)} {zone}–{clock(end)} {end.tzname()}"
        return f"{long_date(start.date())}, {clock(start)}–{clock(end)} {zone}".rstrip()
    return (
        f"{long_date(start.date())}, {clock(start)} {start.tzname()} – "
        f"{long_date(end.date())}, {clock(end)} {end.tzname()}"
    )


def zone_place(tz: ZoneInfo) -> str:
    """``America/New_York`` -> ``New York``."""
    return tz.key.rsplit("/", 1)[-1].replace("_", " ")


def recurrence_text(event: Event) -> str:
    """A short sentence for a series: ``Repeats every week, 10 times in all.``."""
    text = describe_rrule(event.rrule, event.total_occurrences())
    return text[:1].upper() + text[1:] + "."


# --- add-to-calendar links ------------------------------------------------------------------


def _query(params: Iterable[tuple[str, str]]) -> str:
    """A query string with every value percent-encoded (spaces as %20, not +)."""
    return "&".join(
        f"{key}={quote(value, safe='/' if key == 'path' else '')}" for key, value in params
    )


def utc_stamp(moment: datetime) -> str:
    """``20270327T090000Z``."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def google_link(
    title: str, start: date | datetime, end: date | datetime, details: str, location: str
) -> str:
    """Google Calendar's event template; ``end`` is exclusive (the day after for all-day)."""
    if isinstance(start, datetime) and isinstance(end, datetime):
        dates = f"{utc_stamp(start)}/{utc_stamp(end)}"
    else:
        dates = f"{start:%Y%m%d}/{end:%Y%m%d}"
    params = [("action", "TEMPLATE"), ("text", title), ("dates", dates)]
    if details:
        params.append(("details", details))
    if location:
        params.append(("location", location))
    return f"{GOOGLE}?{_query(params)}"


def outlook_link(
    title: str, start: date | datetime, end: date | datetime, details: str, location: str
) -> str:
    """Outlook.com's compose deep link; times in UTC, all-day as dates with exclusive end."""
    if isinstance(start, datetime) and isinstance(end, datetime):
        startdt = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        enddt = end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        allday = "false"
    else:
        startdt, enddt, allday = start.isoformat(), end.isoformat(), "true"
    params = [
        ("path", "/calendar/action/compose"),
        ("rru", "addevent"),
        ("subject", title),
        ("startdt", startdt),
        ("enddt", enddt),
        ("allday", allday),
    ]
    if details:
        params.append(("body", details))
    if location:
        params.append(("location", location))
    return f"{OUTLOOK}?{_query(params)}"


def webcal(url: str) -> str:
    """The ``webcal://`` form of an http(s) address (calendar apps subscribe on click)."""
    return "webcal://" + url.split("://", 1)[1]


# --- view objects ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link:
    """An address with its label, and whether the link checker declared it broken."""

    href: str
    label: str
    broken: bool = False


@dataclass(frozen=True, slots=True)
class NewsView:
    """One Related News item as the page shows it."""

    id: str
    title: str
    url: str
    broken: bool
    date_text: str
    date_iso: str
    source: str
    summary: Markup
    tags: tuple[Link, ...]
    lang: str
    event: Link | None


@dataclass(frozen=True, slots=True)
class EventView:
    """One event (its next occurrence for a series) as the page shows it."""

    id: str
    title: str
    status: str
    status_label: str
    when: str
    start_iso: str
    end_iso: str
    local_note: str
    recurrence: str
    location: str
    online: Link | None
    url: Link | None
    description: Markup
    tags: tuple[Link, ...]
    news: Link | None
    ics: str
    google: str
    outlook: str


@dataclass(frozen=True, slots=True)
class FeedGroup:
    """The feeds of one subject (everything, or one tag) and kind, for the subscribe panel.

    ``calendar`` holds the subscription links of the calendar: webcal first, then the
    address itself (https, or http when the site is served so).
    """

    kind: str
    tag: str
    feeds: tuple[Link, ...]
    calendar: tuple[Link, ...]


@dataclass(frozen=True, slots=True)
class TagRow:
    """The per-tag feeds of one tag: its news feeds and its event feeds."""

    slug: str
    tag: str
    news: FeedGroup | None
    events: FeedGroup | None


def _occurrence(event: Event, now: datetime) -> tuple[date | datetime, date | datetime]:
    """Start and exclusive end of the occurrence the page shows (the next one of a series)."""
    if not event.rrule:
        return event.start, event.dtend_exclusive
    start = event.next_start(now)
    if start is None:  # the series has ended: show its last occurrence
        last_end = event.last_end()
        start = last_end - event.duration if last_end is not None else event.starts_at
    if event.all_day:
        first = start.astimezone(event.timezone).date()
        return first, first + timedelta(days=(event.duration.days or 1))
    return start, start + event.duration


def _when(event: Event, start: date | datetime, end: date | datetime, tz: ZoneInfo) -> str:
    """The occurrence's date and time in the site's zone, written naturally."""
    if isinstance(start, datetime) and isinstance(end, datetime):
        return time_range(start.astimezone(tz), end.astimezone(tz))
    first, stop = _day(start), _day(end)
    days = (stop - first).days
    return day_range(first, stop - timedelta(days=1)) + (
        " (all day)" if days == 1 else f" ({days} days)"
    )


def _day(value: date | datetime) -> date:
    """The calendar date of a date or datetime."""
    return value.date() if isinstance(value, datetime) else value


def _local_note(event: Event, start: date | datetime, end: date | datetime, tz: ZoneInfo) -> str:
    """For an event set in another zone, its times there, when they differ from the site's."""
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return ""
    here, there = tz, event.timezone
    if all(
        t.astimezone(here).replace(tzinfo=None) == t.astimezone(there).replace(tzinfo=None)
        for t in (start, end)
    ):
        return ""
    local_start, local_end = start.astimezone(there), end.astimezone(there)
    same_days = (local_start.date(), local_end.date()) == (
        start.astimezone(here).date(),
        end.astimezone(here).date(),
    )
    if same_days and local_start.date() == local_end.date():
        span = f"{clock(local_start)}–{clock(local_end)} {local_end.tzname()}"
    else:
        span = time_range(local_start, local_end)
    return f"{span} in {zone_place(there)}"


def _iso(value: date | datetime, tz: ZoneInfo | None = None) -> str:
    """ISO 8601 for ``<time datetime>`` and JSON-LD (datetimes with their offset)."""
    if isinstance(value, datetime):
        return (value.astimezone(tz) if tz else value).isoformat()
    return value.isoformat()


def _details(event: Event) -> str:
    """The plain-text body carried into Google Calendar and Outlook."""
    parts = [markdown_text(event.description)]
    if event.url:
        parts.append(f"More: {event.url}")
    if event.online:
        parts.append(f"Online: {event.online}")
    text = "\n\n".join(p for p in parts if p)
    return text if len(text) <= MAX_DETAILS else text[: MAX_DETAILS - 1] + "…"


def _where(event: Event) -> str:
    """One line for the location field of a calendar: the place, else the online address."""
    if event.location is not None and event.location.text():
        return event.location.text()
    return event.online


def _tag_links(tags: tuple[str, ...]) -> tuple[Link, ...]:
    """Each tag linked to its row of feeds in the subscribe panel."""
    return tuple(Link(f"#tag-{tag_slug(tag)}", tag) for tag in tags)


def _link(ctx: BuildContext, url: str, label: str) -> Link | None:
    """A link to an external address, marked when declared broken; None without address."""
    return Link(url, label, ctx.is_broken(url)) if url else None


def event_view(ctx: BuildContext, event: Event, news_on_page: Mapping[str, NewsItem]) -> EventView:
    """The view of one event for the page (linked to its news item when that is shown)."""
    start, end = _occurrence(event, ctx.now)
    return _event_view(ctx, event, news_on_page.get(event.news), start, end)


def event_piece(
    ctx: BuildContext, event: Event, news_on_page: Mapping[str, NewsItem], upcoming: bool
) -> tuple[bytes, str]:
    """One event's ``<li>`` on the page (UTF-8) and its schema.org JSON (script-safe).

    Kept between builds under everything they are made from (a rebuild after one change
    would make those of every other event again for nothing otherwise). The ``<li>`` is
    kept encoded: a single character beyond Latin-1 (the dash of a time range) makes a
    Python string take two bytes a character, and these are the largest values kept.
    """
    start, end = _occurrence(event, ctx.now)
    news = news_on_page.get(event.news)
    key = "|".join(
        (
            "html.event",
            ctx.item_key("events", event),
            repr((start, end)),
            f"{news.id}\0{news.title}" if news else "",
            str(ctx.is_broken(event.online)),
            str(ctx.is_broken(event.url)),
            str(upcoming),
        )
    )

    def make() -> tuple[bytes, str]:
        view = _event_view(ctx, event, news, start, end)
        module: Any = environment().get_template("_event.html").module
        item = module.event_item(view, upcoming)
        return str(item).encode("utf-8"), json_for_script(event_schema(ctx, event))

    return ctx.stored(key, make)


def _event_view(
    ctx: BuildContext,
    event: Event,
    news: NewsItem | None,
    start: date | datetime,
    end: date | datetime,
) -> EventView:
    tz = ctx.site.tz
    details, where = _details(event), _where(event)
    return EventView(
        id=event.id,
        title=event.title,
        status=event.status,
        status_label=STATUS_LABELS[event.status],
        when=_when(event, start, end, tz),
        start_iso=_iso(start, None if not isinstance(start, datetime) else tz),
        end_iso=_iso(
            end - timedelta(days=1) if not isinstance(end, datetime) else end.astimezone(tz)
        ),
        local_note=_local_note(event, start, end, tz),
        recurrence=recurrence_text(event) if event.rrule else "",
        location=event.location.text() if event.location else "",
        online=_link(ctx, event.online, "Join online"),
        url=_link(ctx, event.url, "Event page"),
        description=Markup(markdown_html(event.description, ctx.url())),
        tags=_tag_links(event.tags),
        news=Link(f"#news-{news.id}", news.title) if news else None,
        ics=ctx.url(f"events/{event.id}.ics"),
        google=google_link(event.title, start, end, details, where),
        outlook=outlook_link(event.title, start, end, details, where),
    )


def news_view(ctx: BuildContext, item: NewsItem, events_on_page: Mapping[str, Event]) -> NewsView:
    """The view of one news item for the page (linked to its event when that is shown)."""
    tz = ctx.site.tz
    summary = markdown_html(item.summary, ctx.url())
    if not summary and item.body:
        summary = str(Markup("<p>%s</p>") % first_sentence_summary(markdown_text(item.body)))
    event = events_on_page.get(item.event)
    return NewsView(
        id=item.id,
        title=item.title,
        url=item.url,
        broken=ctx.is_broken(item.url),
        date_text=site_date(item.date, tz),
        date_iso=item.date.astimezone(tz).date().isoformat()
        if item.date_only
        else item.date.astimezone(tz).isoformat(),
        source=item.source,
        summary=Markup(summary),
        tags=_tag_links(item.tags),
        lang=item.lang if item.lang and item.lang != ctx.site.language else "",
        event=Link(f"#event-{event.id}", event.title) if event else None,
    )


def feed_groups(ctx: BuildContext) -> list[FeedGroup]:
    """The catalog grouped by subject (all, then each tag) and kind, in catalog order."""
    groups: dict[tuple[str, str], list[FeedLink]] = {}
    for feed in ctx.catalog:
        groups.setdefault((feed.tag, feed.kind), []).append(feed)
    out = []
    for (tag, kind), feeds in groups.items():
        calendar: tuple[Link, ...] = ()
        for feed in feeds:
            if feed.format == "ics":
                address = ctx.url(feed.path)
                scheme = address.split("://", 1)[0]
                calendar = (
                    Link(webcal(address), "Calendar (webcal)"),
                    Link(address, f"Calendar ({scheme})"),
                )
        links = tuple(
            Link(ctx.url(f.path), FORMAT_LABELS[f.format]) for f in feeds if f.format != "ics"
        )
        out.append(FeedGroup(kind=kind, tag=tag, feeds=links, calendar=calendar))
    return out


def tag_rows(groups: list[FeedGroup]) -> list[TagRow]:
    """One row per tag, sorted by slug, joining its news and event feeds."""
    rows: dict[str, dict[str, Any]] = {}
    for group in groups:
        if group.tag:
            row = rows.setdefault(tag_slug(group.tag), {"tag": group.tag})
            row[group.kind] = group
    return [
        TagRow(slug, row["tag"], row.get("news"), row.get("events"))
        for slug, row in sorted(rows.items())
    ]


# --- schema.org ---------------------------------------------------------------------------


def json_for_script(data: Any) -> str:
    """JSON safe inside ``<script>``: ``<``, ``>`` and ``&`` written as ``\\u003c`` etc."""
    return re.sub(r"[<>&]", lambda m: _JSON_ESCAPES[m[0]], orjson.dumps(data).decode())


def json_ld(pieces: Iterable[str]) -> Markup:
    """The page's schema.org graph from the JSON of its items (see :func:`json_for_script`)."""
    return Markup(f'{{"@context":"https://schema.org","@graph":[{",".join(pieces)}]}}')


def news_schema(ctx: BuildContext, item: NewsItem) -> dict[str, Any]:
    """schema.org NewsArticle for one item."""
    data: dict[str, Any] = {
        "@type": "NewsArticle",
        "@id": ctx.tag_uri("news", item.id),
        "headline": item.title,
        "datePublished": item.date.date().isoformat() if item.date_only else item.date.isoformat(),
        "url": item.url or ctx.url(f"#news-{item.id}"),
    }
    if item.updated:
        data["dateModified"] = item.updated.isoformat()
    if item.summary:
        data["description"] = markdown_text(item.summary)
    if item.source:
        data["publisher"] = {"@type": "Organization", "name": item.source}
    if item.image:
        data["image"] = item.image
    if item.lang:
        data["inLanguage"] = item.lang
    if item.tags:
        data["keywords"] = list(item.tags)
    return data


_STATUS_SCHEMA = {
    "confirmed": "https://schema.org/EventScheduled",
    "tentative": "https://schema.org/EventScheduled",
    "cancelled": "https://schema.org/EventCancelled",
}


def event_schema(ctx: BuildContext, event: Event) -> dict[str, Any]:
    """schema.org Event for one event (its next occurrence for a series)."""
    start, end = _occurrence(event, ctx.now)
    last = end - timedelta(days=1) if not isinstance(end, datetime) else end
    data: dict[str, Any] = {
        "@type": "Event",
        "@id": ctx.tag_uri("event", event.id),
        "name": event.title,
        "startDate": _iso(start, event.timezone if isinstance(start, datetime) else None),
        "endDate": _iso(last, event.timezone if isinstance(last, datetime) else None),
        "eventStatus": _STATUS_SCHEMA[event.status],
        "url": event.url or ctx.url(f"#event-{event.id}"),
    }
    places: list[dict[str, Any]] = []
    if event.location is not None:
        place: dict[str, Any] = {"@type": "Place", "name": event.location.name}
        if event.location.address:
            place["address"] = event.location.address
        if event.location.geo is not None:
            place["geo"] = {
                "@type": "GeoCoordinates",
                "latitude": event.location.geo.lat,
                "longitude": event.location.geo.lon,
            }
        places.append(place)
    if event.online:
        places.append({"@type": "VirtualLocation", "url": event.online})
    if places:
        data["location"] = places[0] if len(places) == 1 else places
        mode = "Mixed" if len(places) == 2 else ("Online" if event.online else "Offline")
        data["eventAttendanceMode"] = f"https://schema.org/{mode}EventAttendanceMode"
    if event.description:
        data["description"] = markdown_text(event.description)
    if event.organizer is not None:
        organizer: dict[str, Any] = {"@type": "Organization", "name": event.organizer.name}
        if event.organizer.email:
            organizer["email"] = event.organizer.email
        data["organizer"] = organizer
    return data


# --- the outputs ---------------------------------------------------------------------------


class _Decoded:
    """Encoded pieces of the page, given to the template as markup one at a time (all
    decoded at once, they would take twice the memory they take encoded, or more)."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    def __len__(self) -> int:
        return len(self._pieces)

    def __iter__(self) -> Iterator[Markup]:
        return (Markup(piece.decode("utf-8")) for piece in self._pieces)


def render_page(ctx: BuildContext) -> bytes:
    """``index.html`` as UTF-8, encoded piece by piece as the template produces it (the
    whole page as one string can take four bytes a character)."""
    limits = ctx.settings.page
    news = ctx.content.news[: limits.max_news]
    past = ctx.recent_past[: limits.max_past_events]
    news_on_page = {n.id: n for n in news}
    events_on_page = {e.id: e for e in (*ctx.forthcoming, *past)}
    upcoming = [event_piece(ctx, e, news_on_page, True) for e in ctx.forthcoming]
    before = [event_piece(ctx, e, news_on_page, False) for e in past]
    graph = [json_for_script(news_schema(ctx, n)) for n in news]
    graph += [schema for _, schema in (*upcoming, *before)]
    site = ctx.site
    groups = feed_groups(ctx)
    chunks = (
        environment()
        .get_template("index.html")
        .generate(
            site=site,
            page_url=ctx.url(),
            source_link=site.link,
            news=[news_view(ctx, n, events_on_page) for n in news],
            news_more=len(ctx.content.news) - len(news),
            news_feed=ctx.url("news.rss"),
            forthcoming=_Decoded([li for li, _ in upcoming]),
            recent_past=_Decoded([li for li, _ in before]),
            groups=[g for g in groups if not g.tag],
            tag_rows=tag_rows(groups),
            alternates=[
                Link(ctx.url(f.path), f"{f.title} ({FORMAT_LABELS[f.format]})", False)
                for f in ctx.catalog
            ],
            media_types={ctx.url(f.path): f.media_type for f in ctx.catalog},
            opml=ctx.url("feeds.opml"),
            timezone_place=zone_place(site.tz),
            feed_help=FEED_HELP,
            json_ld=json_ld(graph),
        )
    )
    page = io.BytesIO()  # joining a list of the encoded chunks would hold the page twice
    for chunk in chunks:
        page.write(chunk.encode("utf-8"))
    return page.getvalue()


def render_opml(ctx: BuildContext) -> str:
    """``feeds.opml``: OPML 2.0 listing every feed of the catalog."""
    outlines = [
        {
            "text": f"{f.title} ({FORMAT_LABELS[f.format]})",
            "type": "rss" if f.format != "ics" else "link",
            "url": ctx.url(f.path),
            "format": f.format,
        }
        for f in ctx.catalog
    ]
    return (
        environment()
        .get_template("feeds.opml")
        .render(site=ctx.site, page_url=ctx.url(), opml=ctx.url("feeds.opml"), outlines=outlines)
    )


def page_parts(ctx: BuildContext) -> list[str]:
    """Everything ``index.html`` depends on besides settings and code (see ``ctx.keyed``)."""
    limits = ctx.settings.page
    parts = [str(len(ctx.content.news)), repr(sorted(ctx.broken_links.items()))]
    parts += [ctx.item_key("news", n) for n in ctx.content.news[: limits.max_news]]
    for group in (ctx.forthcoming, ctx.recent_past[: limits.max_past_events]):
        parts.append("|")
        parts += [ctx.item_key("events", e) + repr(_occurrence(e, ctx.now)) for e in group]
    parts.append(repr(ctx.catalog))
    return parts


def render(ctx: BuildContext) -> dict[str, Output]:
    """``index.html`` and ``feeds.opml``, each reused when its inputs did not change."""
    return {
        "index.html": ctx.keyed(
            "index.html", page_parts(ctx), lambda: render_page(ctx)
        ),
        "feeds.opml": ctx.keyed(
            "feeds.opml", [repr(ctx.catalog)], lambda: render_opml(ctx).encode("utf-8")
        ),
    }
