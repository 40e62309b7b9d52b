"""iCalendar (RFC 5545, RFC 7986): the subscription, one file per event, one per tag.

The only module that imports icalendar (with its helper ``vtimezone``). Every value
comes from the context (no wall clock), so the same context gives the same bytes.

- ``events.ics``: events that ended within ``[calendar] past_days``, every future one,
  and the tombstones of deleted events (``STATUS:CANCELLED``, ``SEQUENCE`` raised).
- ``events/<id>.ics``: one event of the YAML, for "add to calendar".
- ``tags/<slug>/events.ics``: the subscription restricted to one tag.

``DTSTAMP`` is the event's ``LAST-MODIFIED`` (RFC 5545 with no ``METHOD``; with
``METHOD:PUBLISH`` it is the time this revision was made), so an unchanged event keeps
identical bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache, partial
from typing import Any

from icalendar import (
    Alarm,
    Calendar,
    Component,
    Event,
    vCalAddress,
    vDuration,
    vGeo,
    vRecur,
    vText,
    vUri,
)

from cccn_feeds.context import BuildContext
from cccn_feeds.history import Revision
from cccn_feeds.model import Event as Item
from cccn_feeds.model import tag_slug
from cccn_feeds.publish import Output
from cccn_feeds.render.vtimezone import vtimezone
from cccn_feeds.settings import parse_duration
from cccn_feeds.text import markdown_text

# Anything a parser might take for a line break, and the other C0/C1 controls.
_BREAKS = re.compile("\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x1f\x7f-\x9f]")
_SAFE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s\x00-\x1f\x7f-\x9f\"<>\\^`{|}]+$")
_STATUS = {"confirmed": "CONFIRMED", "tentative": "TENTATIVE", "cancelled": "CANCELLED"}
_QUIET_YEAR = 2025  # the years checked for a VTIMEZONE that no event uses


class Text(vText):
    """A TEXT value escaped strictly by RFC 5545.

    icalendar's own escaping first turns a literal ``\\N`` of the text into a line
    break (``C:\\New`` would come back as ``C:`` and ``ew``); this one escapes only
    backslash, semicolon, comma and line breaks, after folding every kind of line
    break into one LF and dropping other control characters.
    """

    def to_ical(self) -> bytes:
        """The escaped value."""
        text = clean(str(self))
        for raw, escaped in (("\\", "\\\\"), (";", "\\;"), (",", "\\,"), ("\n", "\\n")):
            text = text.replace(raw, escaped)
        return text.encode("utf-8")


def clean(text: str) -> str:
    """Text with every line break as LF and no control characters but tab."""
    return _CONTROLS.sub("", _BREAKS.sub("\n", text))


def one_line(text: str) -> str:
    """Text for a parameter or a one-line value: breaks become spaces, quotes apostrophes."""
    return " ".join(clean(text).replace('"', "'").split())


def safe_uri(url: str) -> str:
    """The address when it is an absolute URI without spaces or controls, else ''."""
    return url if _SAFE_URI.match(url) else ""


def stream(ctx: BuildContext) -> Iterator[tuple[str, Output]]:
    """Every calendar of the build.

    A one-event file whose event and revision are unchanged is reused; serialised events
    are kept between builds, so a changed subscription is reassembled, not re-serialised.
    """
    title = ctx.site.title
    subscribed = subscription(ctx)
    blocks: dict[str, bytes] = {}  # each VEVENT is serialised once, then reused
    yield (
        "events.ics",
        _calendar(ctx, "events.ics", subscribed, f"{title}: events", ctx.site.description, blocks),
    )
    for event in ctx.content.events:
        path = f"events/{event.id}.ics"
        yield path, ctx.keyed(path, [_event_key(ctx, event)], partial(_single, ctx, event, blocks))
    # A tag whose last event was deleted keeps its calendar while the cancellation is
    # announced, so its subscribers learn of it instead of meeting a missing file.
    tags = dict(ctx.event_tags)
    for tomb in ctx.tombstones:
        for tag in tomb.tags:
            tags.setdefault(tag_slug(tag), tag)
    for slug, tag in sorted(tags.items()):
        path = f"tags/{slug}/events.ics"
        yield (
            path,
            _calendar(
                ctx,
                path,
                ctx.events_with_tag(subscribed, slug),
                f"{title}: events on {tag}",
                f"Events on {tag}. {ctx.site.description}",
                blocks,
            ),
        )


def _calendar(
    ctx: BuildContext,
    path: str,
    events: tuple[Item, ...],
    name: str,
    description: str,
    blocks: dict[str, bytes],
) -> Output:
    """A subscription calendar, reused when none of its events or their revisions changed."""
    parts = [name, description, *(_event_key(ctx, e) for e in events)]
    make = partial(calendar_bytes, ctx, events, name, description, ctx.url(path), blocks)
    return ctx.keyed(path, parts, make)


def render(ctx: BuildContext) -> dict[str, Output]:
    """All outputs of :func:`stream` at once."""
    return dict(stream(ctx))


def subscription(ctx: BuildContext) -> tuple[Item, ...]:
    """Recent past, forthcoming and tombstoned events, in order of first start."""
    chosen = {e.id: e for e in (*ctx.recent_past, *ctx.forthcoming)}
    for tomb in ctx.tombstones:
        chosen.setdefault(tomb.id, tomb)
    return tuple(sorted(chosen.values(), key=lambda e: (e.starts_at.astimezone(UTC), e.id)))


_END = b"END:VCALENDAR\r\n"


def _event_key(ctx: BuildContext, event: Item) -> str:
    """Everything one VEVENT depends on besides settings and code."""
    return ctx.item_key("events", event) + ctx.fingerprint(revision(ctx, event))


def _single(ctx: BuildContext, event: Item, blocks: dict[str, bytes]) -> bytes:
    """The file of one event, for "add to calendar"."""
    summary = markdown_text(event.description).split("\n\n")[0] if event.description else ""
    return calendar_bytes(ctx, [event], event.title, summary or event.title, "", blocks)


def calendar_bytes(
    ctx: BuildContext,
    events: Iterable[Item],
    name: str,
    description: str,
    source: str,
    blocks: dict[str, bytes] | None = None,
) -> bytes:
    """One VCALENDAR object as bytes (CRLF lines folded at 75 octets).

    ``source`` is the address of a subscription; a file for one event has none, and
    no refresh hint either. Components are serialised on their own and joined: the
    bytes are the same as serialising the whole calendar, and ``blocks`` lets one build
    serialise each event once however many calendars carry it.
    """
    events = list(events)
    cal = Calendar()
    cal.add("version", "2.0")
    cal.add("prodid", f"-//{one_line(ctx.site.publisher)}//cccn-feeds//EN")
    cal.add("calscale", "GREGORIAN")
    organizers = [organizer(ctx, e) for e in events]
    if events and all(organizers):
        cal.add("method", "PUBLISH")
    for key in ("name", "x-wr-calname"):
        cal.add(key, Text(one_line(name)))
    for key in ("description", "x-wr-caldesc"):
        cal.add(key, Text(description))
    cal.add("x-wr-timezone", ctx.site.timezone)
    if source:  # a subscription: where to fetch it again, and how often
        cal.add("source", vUri(source), parameters={"VALUE": "URI"})
        refresh = timedelta(seconds=parse_duration(ctx.settings.calendar.refresh))
        cal.add("refresh-interval", refresh, parameters={"VALUE": "DURATION"})
        cal.add("x-published-ttl", vDuration(refresh))
    head = to_ical(cal)
    assert head.endswith(_END)
    parts = [head[: -len(_END)]]
    for tzid, (first, last) in sorted(zone_years(events).items()):
        parts.append(_vtimezone_bytes(tzid, first, last))
    if not events:
        # RFC 5545 wants at least one component: the site's zone, named by X-WR-TIMEZONE.
        parts.append(_vtimezone_bytes(ctx.site.timezone, _QUIET_YEAR, _QUIET_YEAR))
    cache = {} if blocks is None else blocks
    for event, org in zip(events, organizers, strict=True):
        key = f"{event.id}\0{event.status}"
        block = cache.get(key)
        if block is None:
            block = cache[key] = ctx.stored(
                f"ics.vevent:{_event_key(ctx, event)}",
                partial(_vevent_bytes, ctx, event, org),
            )
        parts.append(block)
    parts.append(_END)
    return b"".join(parts)


def _vevent_bytes(ctx: BuildContext, event: Item, org: vCalAddress | None) -> bytes:
    return to_ical(vevent(ctx, event, org))


@lru_cache(maxsize=256)
def _vtimezone_bytes(tzid: str, first: int, last: int) -> bytes:
    """A VTIMEZONE serialised once per zone and span of years."""
    return to_ical(vtimezone(tzid, first, last))


def to_ical(component: Component) -> bytes:
    """``component.to_ical()``, byte for byte, with a faster fold of long lines.

    icalendar folds every content line character by character, which was the largest
    cost of writing calendars; this folds the UTF-8 bytes by slicing.
    """
    return b"".join(fold(line.encode()) for line in component.content_lines() if line)


def fold(line: bytes, limit: int = 75) -> bytes:
    """One content line folded as icalendar folds it, with its CRLF: pieces of at most
    ``limit - 1`` octets, never splitting a UTF-8 character, and a backslash or caret
    never left at the end of a piece (it moves to the next one, keeping escapes whole)."""
    width = limit - 1
    if len(line) <= width:
        return line + b"\r\n"
    pieces = []
    start = 0
    while len(line) - start > width:
        cut = start + width
        while 0x80 <= line[cut] < 0xC0:  # inside a character: cut before it
            cut -= 1
        if line[cut - 1] in b"\\^":
            cut -= 1
        pieces.append(line[start:cut])
        start = cut
    pieces.append(line[start:])
    return b"\r\n ".join(pieces) + b"\r\n"


def zone_years(events: Iterable[Item]) -> dict[str, tuple[int, int]]:
    """For each zone of a timed event: the first and last year its times fall in."""
    years: dict[str, tuple[int, int]] = {}
    for event in events:
        if event.all_day:
            continue
        tzid = event.timezone.key
        start = event.starts_at.year
        end = event.last_end()
        last = end.astimezone(event.timezone).year if end else start + 1
        old = years.get(tzid, (start, last))
        years[tzid] = (min(old[0], start), max(old[1], last))
    return years


def organizer(ctx: BuildContext, event: Item) -> vCalAddress | None:
    """The event's organiser with an address, else the configured contact, else None."""
    if event.organizer and event.organizer.email:
        address = vCalAddress(f"mailto:{event.organizer.email}")
        address.params["CN"] = one_line(event.organizer.name)
        return address
    if ctx.site.contact_email:
        address = vCalAddress(f"mailto:{ctx.site.contact_email}")
        address.params["CN"] = one_line(ctx.site.publisher)
        return address
    return None


def revision(ctx: BuildContext, event: Item) -> Revision:
    """The event's revision; a context without history counts it as new at ``now``."""
    found = ctx.revisions.get(event.id)
    if found is not None:
        return found
    moment = (event.updated or ctx.now).astimezone(UTC)
    return Revision(sequence=0, created=moment, last_modified=moment, first_seen=moment)


def when(value: date | datetime, event: Item) -> date | datetime:
    """A DTSTART/DTEND/EXDATE value: a date, or a time in the event's own zone."""
    if isinstance(value, datetime):
        return (
            value.astimezone(event.timezone)
            if value.tzinfo
            else value.replace(tzinfo=event.timezone)
        )
    return value


def description(ctx: BuildContext, event: Item) -> str:
    """Plain text of the Markdown description, then the online and information links."""
    parts = [markdown_text(event.description)] if event.description.strip() else []
    links = []
    if safe_uri(event.online):
        links.append(f"Online: {event.online}")
    if safe_uri(event.url):
        links.append(f"More information: {event.url}")
    if event.organizer and not event.organizer.email:
        links.append(f"Organiser: {event.organizer.name}")
    if links:
        parts.append("\n".join(links))
    return "\n\n".join(parts)


def vevent(ctx: BuildContext, event: Item, org: vCalAddress | None) -> Event:
    """One VEVENT with every property calendars read."""
    rev = revision(ctx, event)
    cancelled = event.status == "cancelled"
    summary = event.title
    if cancelled and not summary.lower().startswith("cancelled"):
        summary = f"Cancelled: {summary}"
    item = Event()
    item.add("uid", ctx.uid(event.id))
    item.add("dtstamp", rev.last_modified.astimezone(UTC))
    item.add("created", rev.created.astimezone(UTC))
    item.add("last-modified", rev.last_modified.astimezone(UTC))
    item.add("sequence", rev.sequence)
    item.add("summary", Text(summary))
    item.add("dtstart", when(event.start, event))
    item.add("dtend", when(event.dtend_exclusive, event))
    if event.rrule:
        item.add("rrule", vRecur.from_ical(event.rrule))
        for excluded in event.exdates:
            item.add("exdate", when(excluded, event))
    text = description(ctx, event)
    if text:
        item.add("description", Text(text))
    place = event.location.text() if event.location else safe_uri(event.online)
    if place:
        item.add("location", Text(place))
    if event.location and event.location.geo:
        item.add("geo", vGeo((event.location.geo.lat, event.location.geo.lon)))
    link = safe_uri(event.url) or safe_uri(event.online)
    if link:
        item.add("url", vUri(link), parameters={"VALUE": "URI"})
    if org is not None:
        item.add("organizer", org)
    if event.organizer and not event.organizer.email:
        item.add("contact", Text(one_line(event.organizer.name)))
    if event.tags:
        item.add("categories", [Text(one_line(t)) for t in event.tags])
    item.add("status", _STATUS[event.status])
    item.add("transp", "TRANSPARENT" if event.all_day or cancelled else "OPAQUE")
    alarm = ctx.settings.calendar.alarm
    if alarm and not cancelled:
        item.add_component(reminder(summary, abs(parse_duration(alarm))))
    return item


def reminder(summary: str, seconds: int) -> Alarm:
    """A display alarm ``seconds`` before the start."""
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", Text(summary))
    trigger: Any = -timedelta(seconds=seconds)
    alarm.add("trigger", trigger)
    return alarm
