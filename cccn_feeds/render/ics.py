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
from zoneinfo import ZoneInfo

from icalendar import Component, vCalAddress, vDDDTypes, vDuration, vRecur, vText

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


def text_value(text: str) -> str:
    """A TEXT value escaped strictly by RFC 5545.

    icalendar's own escaping first turns a literal ``\\N`` of the text into a line
    break (``C:\\New`` would come back as ``C:`` and ``ew``); this one escapes only
    backslash, semicolon, comma and line breaks, after folding every kind of line
    break into one LF and dropping other control characters.
    """
    text = clean(text)
    for raw, escaped in (("\\", "\\\\"), (";", "\\;"), (",", "\\,"), ("\n", "\\n")):
        text = text.replace(raw, escaped)
    return text


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
    """Everything one VEVENT depends on besides settings and code (worked out once per
    event and build: every calendar that carries the event asks)."""
    known: dict[int, tuple[Item, str]] = ctx.memo("ics.event_keys", dict)
    found = known.get(id(event))
    if found is None or found[0] is not event:
        key = ctx.item_key("events", event) + ctx.fingerprint(revision(ctx, event))
        found = known[id(event)] = (event, key)
    return found[1]


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
    no refresh hint either. Each VEVENT is serialised on its own and joined, and
    ``blocks`` lets one build serialise each event once however many calendars carry it.
    """
    events = list(events)
    organizers = [organizer(ctx, e) for e in events]
    parts = [_head(ctx, name, description, source, bool(events) and all(organizers))]
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


# The calendar head and each VEVENT are written line by line here, in the order and form
# icalendar gives them (its canonical order first, then by name); icalendar's components
# cost more than everything else a calendar needs. tests/ics_reference.py builds the same
# with icalendar, and tests compare the bytes.


def _lines(lines: Iterable[str]) -> bytes:
    return b"".join(fold(line.encode()) for line in lines)


def _head(ctx: BuildContext, name: str, about: str, source: str, method: bool) -> bytes:
    """The VCALENDAR lines before the first component."""
    title = text_value(one_line(name))
    about = text_value(about)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", _prodid(ctx.site.publisher), "CALSCALE:GREGORIAN"]
    if method:
        lines.append("METHOD:PUBLISH")
    lines += [f"DESCRIPTION:{about}", f"X-WR-CALDESC:{about}"]
    lines += [f"NAME:{title}", f"X-WR-CALNAME:{title}"]
    if source:  # a subscription: where to fetch it again, and how often
        refresh = _duration(parse_duration(ctx.settings.calendar.refresh))
        lines.append(f"REFRESH-INTERVAL;VALUE=DURATION:{refresh}")
        lines.append(f"SOURCE;VALUE=URI:{source}")
        lines.append(f"X-PUBLISHED-TTL:{refresh}")
    lines.append(f"X-WR-TIMEZONE:{_icalendar_text(ctx.site.timezone)}")
    return _lines(lines)


def _vevent_bytes(ctx: BuildContext, event: Item, org: tuple[str, str] | None) -> bytes:
    """One VEVENT with every property calendars read."""
    rev = revision(ctx, event)
    cancelled = event.status == "cancelled"
    summary = event.title
    if cancelled and not summary.lower().startswith("cancelled"):
        summary = f"Cancelled: {summary}"
    created = _utc(rev.created)
    modified = _utc(rev.last_modified)
    lines = [
        "BEGIN:VEVENT",
        f"SUMMARY:{text_value(summary)}",
        _when("DTSTART", event.start, event),
        _when("DTEND", event.dtend_exclusive, event),
        f"DTSTAMP:{modified}",
        f"UID:{_icalendar_text(ctx.uid(event.id))}",
        f"SEQUENCE:{rev.sequence}",
    ]
    if event.rrule:
        lines.append(f"RRULE:{_rrule(event.rrule)}")
        lines += [_when("EXDATE", excluded, event) for excluded in event.exdates]
    if event.tags:  # escaped as every TEXT value (icalendar reads a literal \N as a break)
        lines.append("CATEGORIES:" + ",".join(text_value(one_line(t)) for t in event.tags))
    if event.organizer and not event.organizer.email:
        lines.append(f"CONTACT:{text_value(one_line(event.organizer.name))}")
    lines.append(f"CREATED:{created}")
    text = description(ctx, event)
    if text:
        lines.append(f"DESCRIPTION:{text_value(text)}")
    if event.location and event.location.geo:
        lines.append(f"GEO:{_geo(event.location.geo.lat, event.location.geo.lon)}")
    lines.append(f"LAST-MODIFIED:{modified}")
    place = event.location.text() if event.location else safe_uri(event.online)
    if place:
        lines.append(f"LOCATION:{text_value(place)}")
    if org is not None:
        lines.append(_organizer_line(*org))
    lines.append(f"STATUS:{_STATUS[event.status]}")
    lines.append("TRANSP:" + ("TRANSPARENT" if event.all_day or cancelled else "OPAQUE"))
    link = safe_uri(event.url) or safe_uri(event.online)
    if link:
        lines.append(f"URL;VALUE=URI:{link}")
    alarm = ctx.settings.calendar.alarm
    if alarm and not cancelled:  # a display alarm before the start
        trigger = _duration(-abs(parse_duration(alarm)))
        lines += ["BEGIN:VALARM", "ACTION:DISPLAY", f"DESCRIPTION:{text_value(summary)}"]
        lines += [f"TRIGGER:{trigger}", "END:VALARM"]
    lines.append("END:VEVENT")
    return _lines(lines)


def _utc(moment: datetime) -> str:
    """A UTC DATE-TIME value."""
    m = moment.astimezone(UTC)
    return f"{m.year:04}{m.month:02}{m.day:02}T{m.hour:02}{m.minute:02}{m.second:02}Z"


def _when(name: str, value: date | datetime, event: Item) -> str:
    """A DTSTART, DTEND or EXDATE line: a date, or a time in the event's own zone."""
    if not isinstance(value, datetime):
        return f"{name};VALUE=DATE:{value.year:04}{value.month:02}{value.day:02}"
    moment = when(value, event)
    assert isinstance(moment, datetime)
    params, suffix = _zone_form(event.timezone)
    return (
        f"{name}{params}:{moment.year:04}{moment.month:02}{moment.day:02}"
        f"T{moment.hour:02}{moment.minute:02}{moment.second:02}{suffix}"
    )


@lru_cache(maxsize=64)
def _zone_form(zone: ZoneInfo) -> tuple[str, str]:
    """How icalendar writes a time of this zone: its parameters and suffix (it writes
    UTC and the zones it knows to be UTC with ``Z`` and no TZID)."""
    value = vDDDTypes(datetime(2000, 1, 1, tzinfo=zone))
    params = value.params.to_ical().decode()
    return (f";{params}" if params else ""), ("Z" if value.to_ical().endswith(b"Z") else "")


@lru_cache(maxsize=256)
def _rrule(rule: str) -> str:
    """An RRULE value as icalendar writes it (it orders the parts)."""
    value: bytes = vRecur.from_ical(rule).to_ical()
    return value.decode()


@lru_cache(maxsize=64)
def _duration(seconds: int) -> str:
    value: bytes = vDuration(timedelta(seconds=seconds)).to_ical()  # type: ignore[no-untyped-call]
    return value.decode()


def _geo(lat: float, lon: float) -> str:
    """``lat;lon`` as icalendar writes it, but never with an exponent (RFC 5545 FLOAT)."""
    return f"{_float(lat)};{_float(lon)}"


def _float(value: float) -> str:
    text = repr(float(value))
    if "e" in text:  # 5e-05: written out, digit for digit
        from decimal import Decimal

        text = format(Decimal(text), "f")
    return text


@lru_cache(maxsize=64)
def _icalendar_text(text: str) -> str:
    """A TEXT value escaped as icalendar escapes it (zone names and UIDs, which hold no
    backslash)."""
    return vText(text).to_ical().decode()


def _prodid(publisher: str) -> str:
    return f"PRODID:{text_value(f'-//{one_line(publisher)}//cccn-feeds//EN')}"


@lru_cache(maxsize=1024)
def _organizer_line(address: str, name: str) -> str:
    """The ORGANIZER line, with its CN parameter quoted as icalendar quotes it."""
    value = vCalAddress(address)
    value.params["CN"] = name
    return f"ORGANIZER;{value.params.to_ical().decode()}:{value.to_ical().decode()}"


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


def organizer(ctx: BuildContext, event: Item) -> tuple[str, str] | None:
    """The event's organiser with an address, else the configured contact, else None:
    the ``mailto:`` address and the name."""
    if event.organizer and event.organizer.email:
        return f"mailto:{event.organizer.email}", one_line(event.organizer.name)
    if ctx.site.contact_email:
        return f"mailto:{ctx.site.contact_email}", one_line(ctx.site.publisher)
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
