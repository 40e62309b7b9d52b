"""VTIMEZONE components: read back without the IANA database, they give zoneinfo's offsets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cccn_feeds.render import ics
from cccn_feeds.render.vtimezone import transitions, vtimezone
from tests.ics_reference import Text

ZONES = [
    ("Europe/Luxembourg", 2027, 2027),
    ("Europe/Brussels", 2025, 2028),
    ("America/New_York", 2005, 2009),  # the US rules changed in 2007
    ("Australia/Sydney", 2027, 2028),  # southern hemisphere
    ("America/Sao_Paulo", 2017, 2021),  # daylight saving abolished in 2019
    ("Europe/Dublin", 2027, 2027),  # tzdata's negative "daylight" time in winter
    ("Asia/Tokyo", 2027, 2027),  # no daylight saving at all
]


def parsed(tzid: str, first: int, last: int) -> icalendar.Timezone:
    """Our VTIMEZONE, serialised and read back by icalendar."""
    text = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        + vtimezone(tzid, first, last).to_ical()
        + b"END:VCALENDAR\r\n"
    )
    zones = icalendar.Calendar.from_ical(text).walk("VTIMEZONE")
    assert len(zones) == 1
    return zones[0]


def mismatches(tzinfo: object, tzid: str, start: datetime, end: datetime) -> list[datetime]:
    """Instants (every 11 hours and around each transition) where the offsets differ."""
    zone = ZoneInfo(tzid)
    probes = []
    moment = start
    while moment < end:
        probes.append(moment)
        moment += timedelta(hours=11)
    for change in transitions(zone, start, end):
        probes += [change.at - timedelta(minutes=1), change.at, change.at + timedelta(minutes=1)]
    return [
        p
        for p in probes
        if p.astimezone(tzinfo).utcoffset() != p.astimezone(zone).utcoffset()  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize(("tzid", "first", "last"), ZONES)
def test_offsets_match_zoneinfo_for_years_beyond_the_events(
    tzid: str, first: int, last: int
) -> None:
    component = parsed(tzid, first, last)
    assert "COMMENT" not in component.to_ical().decode()
    for part in component.subcomponents:
        assert part.name in {"STANDARD", "DAYLIGHT"}
        assert "COMMENT" not in part
    # the rule in force at the end stays open: ten years later it still holds
    tzinfo = component.to_tz(lookup_tzid=False)
    start = datetime(first, 1, 1, tzinfo=UTC)
    assert mismatches(tzinfo, tzid, start, datetime(last + 10, 1, 1, tzinfo=UTC)) == []


def test_daylight_and_standard_parts() -> None:
    lux = parsed("Europe/Luxembourg", 2027, 2027)
    parts = {p.name: p for p in lux.subcomponents}
    assert sorted(parts) == ["DAYLIGHT", "STANDARD"]
    assert parts["DAYLIGHT"]["RRULE"].to_ical() == b"FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3"
    # the onset is given in the offset in force before it: 02:00 CET, 03:00 CEST
    assert parts["DAYLIGHT"].decoded("DTSTART") == datetime(2026, 3, 29, 2, 0)
    assert parts["STANDARD"].decoded("DTSTART") == datetime(2026, 10, 25, 3, 0)
    dublin = {p.name: p for p in parsed("Europe/Dublin", 2027, 2027).subcomponents}
    assert dublin["DAYLIGHT"].decoded("TZOFFSETTO") == timedelta(hours=1)
    tokyo = parsed("Asia/Tokyo", 2027, 2027)
    assert [p.name for p in tokyo.subcomponents] == ["STANDARD"]


def test_icalendars_own_vtimezone_would_drift() -> None:
    """Why we build our own: from_tzid stops at its last year (and adds a COMMENT)."""
    theirs = icalendar.Timezone.from_tzid(
        "Europe/Luxembourg",
        first_date=datetime(2027, 1, 1).date(),
        last_date=datetime(2028, 1, 1).date(),
    )
    assert "COMMENT" in theirs
    tzinfo = theirs.to_tz(lookup_tzid=False)
    later = (datetime(2030, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC))
    assert mismatches(tzinfo, "Europe/Luxembourg", *later) != []
    ours = parsed("Europe/Luxembourg", 2027, 2027).to_tz(lookup_tzid=False)
    assert mismatches(ours, "Europe/Luxembourg", *later) == []


def test_built_once_per_zone() -> None:
    assert vtimezone("Europe/Luxembourg", 2027, 2028) is vtimezone("Europe/Luxembourg", 2027, 2028)


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=200))
def test_any_text_round_trips_on_one_property(text: str) -> None:
    """Whatever the text, it stays inside its property and reads back cleaned, not altered."""
    event = icalendar.Event()
    event.add("summary", Text(text))
    data = event.to_ical()
    lines = data[:-2].split(b"\r\n")
    assert lines[0] == b"BEGIN:VEVENT" and lines[-1] == b"END:VEVENT"
    assert all(line.startswith(b" ") for line in lines[2:-1])  # continuation lines only
    assert all(len(line) <= 75 for line in lines)
    for line in lines:
        line.decode("utf-8")
    back = icalendar.Event.from_ical(data)
    assert str(back["SUMMARY"]) == ics.clean(text)


# Our fold must give icalendar's bytes exactly: the golden files and every client's view
# of a calendar depend on it. Texts mix ASCII with two-, three- and four-byte characters
# and the escape characters a fold must not leave at the end of a piece.
_FOLD_ALPHABET = st.sampled_from([*"ab \\^;,:é€😀\u0301", "x" * 70, "é" * 40])


@settings(max_examples=400, deadline=None)
@given(st.lists(_FOLD_ALPHABET, max_size=60).map("".join))
def test_fold_matches_icalendar(text: str) -> None:
    from icalendar.parser.content_line import Contentline

    line = "DESCRIPTION:" + text
    assert ics.fold(line.encode()) == Contentline(line).to_ical() + b"\r\n"


@pytest.mark.parametrize("special", ["\\", "^", "\\\\", "é", "€", "😀", "é\\"])
def test_fold_matches_icalendar_at_every_cut(special: str) -> None:
    from icalendar.parser.content_line import Contentline

    for before in range(160):
        line = "X:" + "a" * before + special + "b" * 100
        assert ics.fold(line.encode()) == Contentline(line).to_ical() + b"\r\n", before


def test_to_ical_matches_icalendar_on_a_whole_calendar() -> None:
    from icalendar import Calendar, Event

    cal = Calendar()
    cal.add("prodid", "-//t//EN")
    event = Event()
    event.add("summary", "Réunion " * 30 + "\\" * 3 + "^" * 80)
    event.add("description", ("x" * 73 + "\\n") * 5 + "😀" * 50)
    cal.add_component(event)
    assert ics.to_ical(cal) == cal.to_ical()
