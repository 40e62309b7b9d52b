"""The calendar writer against its reference: for any event the YAML can describe, the
calendar head and the VEVENT are the bytes icalendar writes (tests/ics_reference.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from ical.calendar_stream import IcsCalendarStream

from cccn_feeds.context import BuildContext
from cccn_feeds.history import Revision
from cccn_feeds.model import Content, Event, Geo, Location, Organizer
from cccn_feeds.render import ics
from tests import ics_reference
from tests.conftest import EXAMPLE_NOW, make_settings

# Text with everything TEXT escaping and folding must handle: separators, backslashes
# (with the \N and \n icalendar reads as breaks), line breaks of every kind, controls,
# multi-byte characters, quotes for parameters.
_TEXT = st.lists(
    st.sampled_from(
        [*"ab ,;:\\\"'\r\n\t\x0bé€😀\u2028\x85", "\\N", "\\n", "C:\\New", "x" * 70, "é" * 40]
    ),
    max_size=12,
).map("".join)
_ZONE_NAMES = ["Europe/Luxembourg", "America/New_York", "UTC", "Africa/Abidjan",
               "Asia/Kolkata", "Australia/Lord_Howe", "Etc/GMT+2"]  # fmt: skip
_ZONES = st.sampled_from(_ZONE_NAMES).map(ZoneInfo)
_URLS = st.sampled_from(
    ["", "https://example.org/a?b=1&c=2", "http://example.org/é", "not a url", "mailto:x@y.org"]
)
_MOMENTS = st.datetimes(datetime(1990, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC))


@st.composite
def events(draw: st.DrawFn) -> Event:
    zone = draw(_ZONES)
    all_day = draw(st.booleans())
    if all_day:
        first = draw(st.dates(date(1990, 1, 1), date(2090, 1, 1)))
        start: date | datetime = first
        end: date | datetime = first + timedelta(days=draw(st.integers(0, 5)))
        exdates: tuple[date | datetime, ...] = (first + timedelta(days=7),)
    else:
        naive = draw(st.datetimes(datetime(1990, 1, 1), datetime(2090, 1, 1)))
        start = naive.replace(tzinfo=zone)
        end = start + timedelta(minutes=draw(st.integers(0, 3000)))
        exdates = (start + timedelta(days=7), start + timedelta(days=14))
    rrule = draw(st.sampled_from(["", "FREQ=WEEKLY;COUNT=10", "COUNT=3;FREQ=DAILY",
                                  "FREQ=MONTHLY;BYDAY=1MO;UNTIL=20991231T000000Z"]))  # fmt: skip
    geo = draw(st.none() | st.builds(Geo, st.floats(-90, 90), st.floats(-180, 180)))
    location = draw(st.none() | st.builds(Location, _TEXT, _TEXT, st.just(geo)))
    organizer = draw(
        st.none() | st.builds(Organizer, _TEXT, st.sampled_from(["", "events@example.org"]))
    )
    return Event(
        id=draw(st.sampled_from(["e", "event-2027", "a.b_c"])),
        title=draw(_TEXT.filter(str.strip)),
        start=start,
        end=end,
        all_day=all_day,
        timezone=zone,
        location=location,
        online=draw(_URLS),
        url=draw(_URLS),
        description=draw(_TEXT),
        organizer=organizer,
        status=draw(st.sampled_from(["confirmed", "tentative", "cancelled"])),
        tags=tuple(draw(st.lists(_TEXT.filter(str.strip), max_size=3))),
        rrule=rrule,
        exdates=exdates if rrule and draw(st.booleans()) else (),
        updated=draw(st.none() | _MOMENTS),
    )


def _context(tmp: Path, alarm: str, contact: str, revised: Revision | None, *items: Event) -> Any:
    settings = make_settings(
        tmp / "data", tmp / "feeds", calendar={"alarm": alarm}, site={"contact_email": contact}
    )
    revisions = {e.id: revised for e in items} if revised else {}
    return BuildContext(
        settings=settings, content=Content((), items), now=EXAMPLE_NOW.astimezone(UTC),
        revisions=revisions,
    )  # fmt: skip


@hyp_settings(max_examples=400, deadline=None)
@given(
    event=events(),
    alarm=st.sampled_from(["", "PT15M", "-P1D", "PT1H30M"]),
    contact=st.sampled_from(["", "contact@example.org"]),
    revised=st.none() | st.builds(Revision, st.integers(0, 30), _MOMENTS, _MOMENTS, _MOMENTS),
)
def test_vevent_is_written_as_icalendar_writes_it(
    event: Event, alarm: str, contact: str, revised: Revision | None
) -> None:
    ctx = _context(Path("t"), alarm, contact, revised, event)
    written = ics._vevent_bytes(ctx, event, ics.organizer(ctx, event))
    assert written == ics_reference.vevent(ctx, event)


@hyp_settings(max_examples=200, deadline=None)
@given(
    name=_TEXT,
    about=_TEXT,
    publisher=_TEXT.filter(str.strip),
    source=st.sampled_from(["", "https://example.org/events.ics", "http://127.0.0.1:8000/é.ics"]),
    method=st.booleans(),
    refresh=st.sampled_from(["PT6H", "P1D", "PT90M"]),
    zone=st.sampled_from(["Europe/Luxembourg", "UTC", "America/Argentina/Buenos_Aires"]),
)
def test_calendar_head_is_written_as_icalendar_writes_it(
    name: str, about: str, publisher: str, source: str, method: bool, refresh: str, zone: str
) -> None:
    settings = make_settings(
        Path("data"), Path("feeds"), site={"publisher": publisher, "timezone": zone},
        calendar={"refresh": refresh},
    )  # fmt: skip
    ctx = BuildContext(settings=settings, content=Content((), ()), now=EXAMPLE_NOW)
    expected = ics_reference.calendar_head(ctx, name, about, source, method)
    assert ics._head(ctx, name, about, source, method) == expected


def test_a_backslash_in_a_tag_stays_a_backslash(tmp_path: Path) -> None:
    """icalendar escapes a category's literal \\N as a line break; the writer does not."""
    tags = ("C:\\New", "a\\nb", "x,y;z")
    event = Event(
        id="e", title="T", start=date(2027, 3, 1), end=date(2027, 3, 1), all_day=True,
        timezone=ZoneInfo("Europe/Luxembourg"), tags=tags,
    )  # fmt: skip
    ctx = _context(tmp_path, "", "", None, event)
    data = ics.calendar_bytes(ctx, [event], "T", "T", "")
    parsed = icalendar.Calendar.from_ical(data).walk("VEVENT")[0]
    assert [str(c) for c in parsed["CATEGORIES"].cats] == list(tags)
    # The strict parser splits categories at an escaped comma too; the backslashes it reads.
    strict = IcsCalendarStream.calendar_from_ics(data.decode()).events[0]
    assert strict.categories[:2] == list(tags[:2])


def test_a_tiny_coordinate_is_written_without_an_exponent(tmp_path: Path) -> None:
    event = Event(
        id="e", title="T", start=date(2027, 3, 1), end=date(2027, 3, 1), all_day=True,
        timezone=ZoneInfo("Europe/Luxembourg"),
        location=Location("Here", geo=Geo(49.6116, 0.00005)),
    )  # fmt: skip
    ctx = _context(tmp_path, "", "", None, event)
    data = ics.calendar_bytes(ctx, [event], "T", "T", "")
    assert b"GEO:49.6116;0.00005\r\n" in data
    parsed = icalendar.Calendar.from_ical(data).walk("VEVENT")[0]
    assert parsed.decoded("GEO") == (49.6116, 0.00005)


def test_a_backslash_in_the_publisher_stays_a_backslash(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, tmp_path / "f", site={"publisher": "Dept C:\\New"})
    ctx = BuildContext(settings=settings, content=Content((), ()), now=EXAMPLE_NOW)
    data = ics.calendar_bytes(ctx, [], "T", "T", "")
    assert str(icalendar.Calendar.from_ical(data)["PRODID"]) == "-//Dept C:\\New//cccn-feeds//EN"
