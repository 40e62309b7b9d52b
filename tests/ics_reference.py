"""The reference the calendar writer is tested against: the same calendar head and VEVENT
built with icalendar's components and serialised by icalendar.

cccn_feeds.render.ics writes these lines itself (icalendar's component machinery was the
largest cost of a calendar); a property test checks that the bytes are these, for any
event the YAML can describe (tests/test_ics_writer.py). Deliberate differences: a tag and
the product name are escaped strictly, as every other TEXT value (icalendar reads a literal
``\\N`` in them as a line break), and GEO is never written with an exponent, which RFC 5545
does not allow.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

from icalendar import Alarm, Calendar, Event, vCalAddress, vDuration, vGeo, vRecur, vText, vUri
from icalendar.parser import Parameters

from cccn_feeds.context import BuildContext
from cccn_feeds.model import Event as Item
from cccn_feeds.render.ics import (
    _STATUS,
    description,
    one_line,
    organizer,
    revision,
    safe_uri,
    text_value,
    to_ical,
    when,
)
from cccn_feeds.settings import parse_duration


class Text(vText):
    """A TEXT value as cccn_feeds writes it (:func:`cccn_feeds.render.ics.text_value`)."""

    def to_ical(self) -> bytes:
        return text_value(str(self)).encode("utf-8")


class _Written:
    """A value icalendar writes as given (the strictly escaped categories)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.params = Parameters()

    def to_ical(self) -> bytes:
        return self.text.encode("utf-8")


def calendar_head(ctx: BuildContext, name: str, about: str, source: str, method: bool) -> bytes:
    """The VCALENDAR lines before the first component, as icalendar writes them."""
    cal = Calendar()
    cal.add("version", "2.0")
    cal["PRODID"] = _Written(text_value(f"-//{one_line(ctx.site.publisher)}//cccn-feeds//EN"))
    cal.add("calscale", "GREGORIAN")
    if method:
        cal.add("method", "PUBLISH")
    for key in ("name", "x-wr-calname"):
        cal.add(key, Text(one_line(name)))
    for key in ("description", "x-wr-caldesc"):
        cal.add(key, Text(about))
    cal.add("x-wr-timezone", ctx.site.timezone)
    if source:
        cal.add("source", vUri(source), parameters={"VALUE": "URI"})
        refresh = timedelta(seconds=parse_duration(ctx.settings.calendar.refresh))
        cal.add("refresh-interval", refresh, parameters={"VALUE": "DURATION"})
        cal.add("x-published-ttl", vDuration(refresh))
    head = to_ical(cal)
    return head[: -len(b"END:VCALENDAR\r\n")]


def vevent(ctx: BuildContext, event: Item) -> bytes:
    """One VEVENT with every property calendars read, as icalendar writes it."""
    org: vCalAddress | None = None
    found = organizer(ctx, event)
    if found is not None:
        org = vCalAddress(found[0])
        org.params["CN"] = found[1]
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
        geo = vGeo((event.location.geo.lat, event.location.geo.lon)).to_ical()
        if "e" in geo.lower():  # written out: RFC 5545 FLOAT has no exponent
            geo = ";".join(format(Decimal(x), "f") for x in geo.split(";"))
        item["GEO"] = _Written(geo)
    link = safe_uri(event.url) or safe_uri(event.online)
    if link:
        item.add("url", vUri(link), parameters={"VALUE": "URI"})
    if org is not None:
        item.add("organizer", org)
    if event.organizer and not event.organizer.email:
        item.add("contact", Text(one_line(event.organizer.name)))
    if event.tags:
        item["CATEGORIES"] = _Written(",".join(text_value(one_line(t)) for t in event.tags))
    item.add("status", _STATUS[event.status])
    item.add("transp", "TRANSPARENT" if event.all_day or cancelled else "OPAQUE")
    alarm = ctx.settings.calendar.alarm
    if alarm and not cancelled:
        reminder = Alarm()
        reminder.add("action", "DISPLAY")
        reminder.add("description", Text(summary))
        trigger: Any = -timedelta(seconds=abs(parse_duration(alarm)))
        reminder.add("trigger", trigger)
        item.add_component(reminder)
    return to_ical(item)
