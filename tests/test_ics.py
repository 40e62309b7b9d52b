"""iCalendar output: parsed by icalendar and the strict `ical` package, RFC 5545 rules,
recurrences, daylight-saving changes, the revision life cycle and injection attempts."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import icalendar
import recurring_ical_events
from ical.calendar_stream import IcsCalendarStream

from cccn_feeds.build import build
from cccn_feeds.context import BuildContext
from cccn_feeds.model import Content, Event, Location, Organizer
from cccn_feeds.render import ics
from cccn_feeds.settings import Settings
from tests.conftest import EXAMPLE_NOW, LUX, ROOT, make_settings
from tests.ics_reference import Text

ICS = ("cccn_feeds.render.ics",)

# RFC 5545 section 3.6 (and RFC 7986 section 4 for the calendar): per component,
# the properties required exactly once and those allowed at most once.
REQUIRED: dict[str, set[str]] = {
    "VCALENDAR": {"PRODID", "VERSION"},
    "VEVENT": {"UID", "DTSTAMP", "DTSTART"},  # DTSTART is required when there is no METHOD
    "VTIMEZONE": {"TZID"},
    "STANDARD": {"DTSTART", "TZOFFSETTO", "TZOFFSETFROM"},
    "DAYLIGHT": {"DTSTART", "TZOFFSETTO", "TZOFFSETFROM"},
    "VALARM": {"ACTION", "TRIGGER", "DESCRIPTION"},  # DESCRIPTION: for ACTION:DISPLAY
}
AT_MOST_ONCE: dict[str, set[str]] = {
    "VCALENDAR": {
        "CALSCALE", "METHOD", "UID", "LAST-MODIFIED", "URL", "REFRESH-INTERVAL", "SOURCE",
        "COLOR", "X-WR-CALNAME", "X-WR-CALDESC", "X-WR-TIMEZONE", "X-PUBLISHED-TTL",
    },
    "VEVENT": {
        "CLASS", "CREATED", "DESCRIPTION", "DTSTART", "GEO", "LAST-MODIFIED", "LOCATION",
        "ORGANIZER", "PRIORITY", "SEQUENCE", "STATUS", "SUMMARY", "TRANSP", "URL",
        "RECURRENCE-ID", "RRULE", "DTEND", "DURATION", "COLOR",
    },
    "VTIMEZONE": {"LAST-MODIFIED", "TZURL"},
    "STANDARD": {"RRULE"},
    "DAYLIGHT": {"RRULE"},
    "VALARM": {"DURATION", "REPEAT"},
}  # fmt: skip


def content_lines(data: bytes) -> list[str]:
    """Unfolded content lines, after checking the physical line form."""
    assert data.endswith(b"\r\n")
    physical = data[:-2].split(b"\r\n")
    for number, line in enumerate(physical, 1):
        assert b"\n" not in line and b"\r" not in line, f"bare line break in line {number}"
        assert len(line) <= 75, f"line {number} is {len(line)} octets: {line!r}"
        line.decode("utf-8")  # a fold never splits a UTF-8 character
    return data.decode("utf-8").replace("\r\n ", "").split("\r\n")[:-1]


def check_calendar(data: bytes) -> icalendar.Calendar:
    """Parse with icalendar and ical, check structure and cardinality; return the parse."""
    lines = content_lines(data)
    assert lines[0] == "BEGIN:VCALENDAR" and data.endswith(b"END:VCALENDAR\r\n")
    assert "COMMENT" not in {line.split(":")[0].split(";")[0] for line in lines}
    cal = icalendar.Calendar.from_ical(data)
    cal.validate()
    for component in cal.walk():
        name = component.name
        counts = Counter(key.upper() for key, _value in component.property_items(recursive=False))
        counts.pop("BEGIN", None)
        counts.pop("END", None)
        for prop in REQUIRED.get(name, set()):
            assert counts[prop] == 1, f"{name} needs exactly one {prop}: {counts}"
        for prop in AT_MOST_ONCE.get(name, set()):
            assert counts[prop] <= 1, f"{name} has {prop} {counts[prop]} times"
        if name == "VEVENT":
            assert not ("DTEND" in counts and "DURATION" in counts)
        if name == "VTIMEZONE":
            assert component.subcomponents, "VTIMEZONE without STANDARD or DAYLIGHT"
    tzids = {str(c["TZID"]) for c in cal.walk("VTIMEZONE")}
    for event in cal.walk("VEVENT"):
        for key in ("DTSTART", "DTEND", "EXDATE"):
            values = event.get(key)
            for value in values if isinstance(values, list) else [values]:
                if value is not None and "TZID" in value.params:
                    assert value.params["TZID"] in tzids, f"no VTIMEZONE for {value.params}"
    strict = IcsCalendarStream.calendar_from_ics(data.decode("utf-8"))
    assert len(strict.events) == len(cal.walk("VEVENT"))
    assert [e.uid for e in strict.events] == [str(e["UID"]) for e in cal.walk("VEVENT")]
    return cal


def read_outputs(folder: Path) -> dict[str, bytes]:
    """Every .ics file under an output folder, by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.ics")}


def run(settings: Settings, now: datetime) -> dict[str, bytes]:
    """Build the calendars at ``now`` and return every .ics file of the output."""
    build(settings, now=now, renderers=ICS)
    return read_outputs(settings.paths.output_dir)


def vevents(data: bytes) -> dict[str, icalendar.Event]:
    """The VEVENTs of a calendar by UID."""
    return {str(e["UID"]): e for e in icalendar.Calendar.from_ical(data).walk("VEVENT")}


def vevent_text(data: bytes, uid: str) -> str:
    """The unfolded text of one VEVENT."""
    text = data.decode().replace("\r\n ", "")
    blocks = re.findall(r"BEGIN:VEVENT\r\n.*?END:VEVENT\r\n", text, re.S)
    found = [b for b in blocks if f"\r\nUID:{uid}\r\n" in b]
    assert len(found) == 1, f"{uid}: {len(found)} VEVENTs"
    return found[0]


def utc(value: date | datetime) -> datetime:
    """A parsed DTSTART as a UTC datetime."""
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def context(settings: Settings, *events: Event, now: datetime = EXAMPLE_NOW) -> BuildContext:
    """A context without history, for rendering hand-made events."""
    return BuildContext(settings=settings, content=Content((), events), now=now.astimezone(UTC))


def timed(event_id: str = "x", **fields: object) -> Event:
    """A timed event in Luxembourg on 2027-05-05 (fields override)."""
    values: dict[str, object] = {
        "id": event_id,
        "title": "Seminar",
        "start": datetime(2027, 5, 5, 10, 0, tzinfo=LUX),
        "end": datetime(2027, 5, 5, 11, 0, tzinfo=LUX),
        "all_day": False,
        "timezone": LUX,
    }
    values.update(fields)
    return Event(**values)  # type: ignore[arg-type]


UID = "{}@www.lih.lu"


class TestExampleCorpus:
    """Every file built from the example corpus parses and carries the contract."""

    def test_outputs_and_every_file_is_valid(self, settings: Settings) -> None:
        files = run(settings, EXAMPLE_NOW)
        ids = [
            "example-after-dst", "example-before-dst", "example-cancelled",
            "example-conference-2027", "example-new-york", "example-tentative-brussels",
            "example-webinar-weekly",
        ]  # fmt: skip
        tags = ["echos", "eunetccc", "jane-2", "precision-oncology"]
        assert sorted(files) == sorted(
            ["events.ics"]
            + [f"events/{i}.ics" for i in ids]
            + [f"tags/{t}/events.ics" for t in tags]
        )
        for path, data in files.items():
            cal = check_calendar(data)
            assert str(cal["VERSION"]) == "2.0" and str(cal["CALSCALE"]) == "GREGORIAN"
            assert "cccn-feeds" in str(cal["PRODID"])
            assert str(cal["X-WR-TIMEZONE"]) == "Europe/Luxembourg"
            # icalendar leaves X- properties escaped as they were read
            for key in ("NAME", "DESCRIPTION"):
                x_wr = str(cal[f"X-WR-CAL{key[:4]}"])
                assert Text(str(cal[key])).to_ical().decode() == x_wr != ""
            subscription = not path.startswith("events/")
            assert (b"\r\nREFRESH-INTERVAL;VALUE=DURATION:PT6H\r\n" in data) == subscription
            assert (b"\r\nX-PUBLISHED-TTL:PT6H\r\n" in data) == subscription
            assert (f"\r\nSOURCE;VALUE=URI:http://127.0.0.1:8000/{path}\r\n".encode() in data) == (
                subscription
            )
            # no contact configured: METHOD only where every event has its own ORGANIZER
            has_organizers = all("ORGANIZER" in e for e in cal.walk("VEVENT"))
            assert ("METHOD" in cal) == has_organizers, path
        assert "METHOD" not in icalendar.Calendar.from_ical(files["events.ics"])
        assert b"\r\nMETHOD:PUBLISH\r\n" in files["events/example-conference-2027.ics"]
        assert len(vevents(files["events.ics"])) == 7
        assert list(vevents(files["tags/jane-2/events.ics"])) == [
            UID.format("example-before-dst"),
            UID.format("example-after-dst"),
        ]
        single = vevents(files["events/example-new-york.ics"])
        assert list(single) == [UID.format("example-new-york")]

    def test_every_zone_used_has_a_full_vtimezone(self, settings: Settings) -> None:
        cal = check_calendar(run(settings, EXAMPLE_NOW)["events.ics"])
        zones = {str(z["TZID"]): z for z in cal.walk("VTIMEZONE")}
        assert sorted(zones) == ["America/New_York", "Europe/Brussels", "Europe/Luxembourg"]
        for zone in zones.values():
            assert sorted(c.name for c in zone.subcomponents) == ["DAYLIGHT", "STANDARD"]

    def test_properties_of_a_full_event(self, settings: Settings) -> None:
        data = run(settings, EXAMPLE_NOW)["events.ics"]
        event = vevents(data)[UID.format("example-conference-2027")]
        assert event.decoded("DTSTART") == date(2027, 3, 26)
        assert event.decoded("DTEND") == date(2027, 3, 28)  # last day 27th, inclusive
        assert event["DTSTART"].params["VALUE"] == "DATE"
        assert str(event["SUMMARY"]) == "Example: CCCN annual conference"
        text = str(event["DESCRIPTION"])
        assert text.startswith("Two days of talks. Registration is free.")
        assert "**" not in text
        assert "programme (https://example.org/events/conference-2027/programme)" in text
        assert "More information: https://example.org/events/conference-2027" in text
        assert str(event["LOCATION"]) == (
            "Example Conference Centre, 1 Example Street, L-1234 Luxembourg"
        )
        assert (event["GEO"].latitude, event["GEO"].longitude) == (49.6116, 6.1319)
        assert str(event["URL"]) == "https://example.org/events/conference-2027"
        assert str(event["ORGANIZER"]) == "mailto:events@example.org"
        assert event["ORGANIZER"].params["CN"] == "Example Institute"
        assert event["CATEGORIES"].cats == ["EUnetCCC"]
        assert str(event["STATUS"]) == "CONFIRMED"
        assert str(event["TRANSP"]) == "TRANSPARENT"
        assert event.decoded("SEQUENCE") == 0
        stamp = EXAMPLE_NOW.astimezone(UTC)
        for key in ("DTSTAMP", "CREATED", "LAST-MODIFIED"):
            assert event.decoded(key) == stamp, key
        timed_event = vevents(data)[UID.format("example-before-dst")]
        assert str(timed_event["TRANSP"]) == "OPAQUE"
        online = vevents(data)[UID.format("example-webinar-weekly")]
        assert str(online["LOCATION"]) == str(online["URL"]) == "https://example.org/webinar"
        assert "Online: https://example.org/webinar" in str(online["DESCRIPTION"])

    def test_cancelled_in_the_yaml(self, settings: Settings) -> None:
        files = run(settings, EXAMPLE_NOW)
        for data in (files["events.ics"], files["events/example-cancelled.ics"]):
            event = vevents(data)[UID.format("example-cancelled")]
            assert str(event["STATUS"]) == "CANCELLED"
            assert str(event["SUMMARY"]) == "Cancelled: Example: workshop (cancelled)"
            assert str(event["TRANSP"]) == "TRANSPARENT"
        tentative = vevents(files["events.ics"])[UID.format("example-tentative-brussels")]
        assert str(tentative["STATUS"]) == "TENTATIVE"

    def test_golden(self, settings: Settings, golden: Callable[[str, bytes], None]) -> None:
        files = run(settings, EXAMPLE_NOW)
        golden("ics/events.ics", files["events.ics"])
        golden("ics/example-conference-2027.ics", files["events/example-conference-2027.ics"])

    def test_same_context_same_bytes(self, settings: Settings) -> None:
        from cccn_feeds.validate import load_content

        content = load_content(settings.paths.data_dir, settings.site.tz)
        ctx = BuildContext(settings=settings, content=content, now=EXAMPLE_NOW.astimezone(UTC))
        again = BuildContext(settings=settings, content=content, now=EXAMPLE_NOW.astimezone(UTC))
        assert ics.render(ctx) == ics.render(again)

    def test_real_content_is_valid(self, tmp_path: Path) -> None:
        settings = make_settings(ROOT / "data", tmp_path / "feeds")
        files = run(settings, datetime(2026, 6, 1, 12, tzinfo=UTC))
        assert files["events.ics"]
        for data in files.values():
            check_calendar(data)


class TestTimes:
    """Local times with TZID land at the right instant on both sides of DST changes."""

    def test_dst_spring_and_autumn(self, settings: Settings) -> None:
        data = run(settings, EXAMPLE_NOW)["events.ics"]
        events = vevents(data)
        before = events[UID.format("example-before-dst")]
        after = events[UID.format("example-after-dst")]
        assert before["DTSTART"].params["TZID"] == "Europe/Luxembourg"
        assert utc(before.decoded("DTSTART")) == datetime(2027, 3, 27, 9, 0, tzinfo=UTC)
        assert utc(after.decoded("DTSTART")) == datetime(2027, 3, 29, 8, 0, tzinfo=UTC)
        brussels = events[UID.format("example-tentative-brussels")]
        assert utc(brussels.decoded("DTSTART")) == datetime(2027, 10, 30, 7, 0, tzinfo=UTC)
        assert utc(brussels.decoded("DTEND")) == datetime(2027, 11, 1, 16, 0, tzinfo=UTC)
        new_york = events[UID.format("example-new-york")]
        assert utc(new_york.decoded("DTSTART")) == datetime(2027, 11, 2, 16, 0, tzinfo=UTC)

    def test_times_from_our_vtimezone_not_the_tzid_name(self, settings: Settings) -> None:
        """Clients that read the VTIMEZONE itself (libical, Thunderbird) get the same hours."""
        cal = check_calendar(run(settings, EXAMPLE_NOW)["events.ics"])
        zones = {str(z["TZID"]): z.to_tz(lookup_tzid=False) for z in cal.walk("VTIMEZONE")}
        expected = {
            "example-before-dst": datetime(2027, 3, 27, 9, 0, tzinfo=UTC),
            "example-after-dst": datetime(2027, 3, 29, 8, 0, tzinfo=UTC),
            "example-tentative-brussels": datetime(2027, 10, 30, 7, 0, tzinfo=UTC),
            "example-new-york": datetime(2027, 11, 2, 16, 0, tzinfo=UTC),
        }
        for event in cal.walk("VEVENT"):
            key = str(event["UID"]).split("@")[0]
            if key in expected:
                start = event["DTSTART"]
                naive = start.dt.replace(tzinfo=None)
                local = naive.replace(tzinfo=zones[start.params["TZID"]])
                assert local.astimezone(UTC) == expected[key], key

    def test_strict_parser_agrees(self, settings: Settings) -> None:
        data = run(settings, EXAMPLE_NOW)["events.ics"]
        strict = IcsCalendarStream.calendar_from_ics(data.decode())
        starts = {e.uid: e.dtstart for e in strict.events}
        before = starts[UID.format("example-before-dst")]
        after = starts[UID.format("example-after-dst")]
        assert isinstance(before, datetime) and isinstance(after, datetime)
        assert before.astimezone(UTC).hour == 9 and after.astimezone(UTC).hour == 8
        assert starts[UID.format("example-conference-2027")] == date(2027, 3, 26)

    def test_weekly_series_with_exdate(self, settings: Settings) -> None:
        data = run(settings, EXAMPLE_NOW)["events/example-webinar-weekly.ics"]
        event = vevents(data)[UID.format("example-webinar-weekly")]
        exdate = event["EXDATE"]
        assert exdate.params["TZID"] == event["DTSTART"].params["TZID"] == "Europe/Luxembourg"
        cal = icalendar.Calendar.from_ical(data)
        found = recurring_ical_events.of(cal).between(date(2027, 1, 1), date(2028, 1, 1))
        starts = [utc(o.decoded("DTSTART")) for o in found]
        first = datetime(2027, 2, 3, 15, 0, tzinfo=UTC)
        weeks = [first + timedelta(weeks=n) for n in range(10) if n != 2]
        # from 31 March on, 16:00 Luxembourg summer time is 14:00 UTC
        summer = datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
        expected = [w if w < summer else w - timedelta(hours=1) for w in weeks]
        assert starts == expected
        assert datetime(2027, 2, 17, 15, 0, tzinfo=UTC) not in starts
        assert all(o.decoded("DTEND") - o.decoded("DTSTART") == timedelta(hours=1) for o in found)

    def test_all_day_single_and_multi_day(self, settings: Settings) -> None:
        single = Event(
            id="one-day", title="One day", start=date(2027, 6, 1), end=date(2027, 6, 1),
            all_day=True, timezone=LUX,
        )  # fmt: skip
        three = Event(
            id="three-days", title="Three days", start=date(2027, 6, 30), end=date(2027, 7, 2),
            all_day=True, timezone=LUX,
        )  # fmt: skip
        data = ics.render(context(settings, single, three))["events.ics"]
        cal = check_calendar(data)
        events = vevents(data)
        assert events[UID.format("one-day")].decoded("DTEND") == date(2027, 6, 2)
        assert events[UID.format("three-days")].decoded("DTEND") == date(2027, 7, 3)
        assert "DTSTART;VALUE=DATE:20270630\r\n" in data.decode()
        assert not cal.walk("VTIMEZONE") or all(
            "TZID" not in e["DTSTART"].params for e in cal.walk("VEVENT")
        )
        days = recurring_ical_events.of(cal).at(date(2027, 7, 2))
        assert [str(e["UID"]) for e in days] == [UID.format("three-days")]
        assert recurring_ical_events.of(cal).at(date(2027, 7, 3)) == []

    def test_past_window(self, settings: Settings) -> None:
        files = run(settings, datetime(2028, 6, 1, tzinfo=UTC))
        uids = set(vevents(files["events.ics"]))
        # the weekly series ended on 2027-04-07, more than 365 days before
        assert UID.format("example-webinar-weekly") not in uids
        assert UID.format("example-tentative-brussels") in uids
        assert UID.format("example-new-york") in uids
        assert "events/example-webinar-weekly.ics" in files  # "add to calendar" still works
        check_calendar(files["tags/precision-oncology/events.ics"])
        assert vevents(files["tags/precision-oncology/events.ics"]) == {}


class TestCalendarProperties:
    """METHOD, ORGANIZER, alarms and an empty calendar."""

    def test_method_publish_with_a_contact_address(self, data_dir: Path, tmp_path: Path) -> None:
        settings = make_settings(
            data_dir, tmp_path / "feeds", site={"contact_email": "cccn@example.org"}
        )
        files = run(settings, EXAMPLE_NOW)
        for data in files.values():
            cal = check_calendar(data)
            assert str(cal["METHOD"]) == "PUBLISH"
            assert all("ORGANIZER" in e for e in cal.walk("VEVENT"))
        events = vevents(files["events.ics"])
        own = events[UID.format("example-conference-2027")]["ORGANIZER"]
        assert str(own) == "mailto:events@example.org"
        site = events[UID.format("example-new-york")]["ORGANIZER"]
        assert str(site) == "mailto:cccn@example.org"
        assert site.params["CN"] == "Luxembourg Institute of Health"

    def test_method_only_when_every_event_has_an_organizer(self, settings: Settings) -> None:
        with_mail = timed("a", organizer=Organizer("Team A", "a@example.org"))
        without = timed("b", organizer=Organizer("Team B"))
        both = ics.render(context(settings, with_mail, without))
        assert "METHOD" not in check_calendar(both["events.ics"])
        assert str(check_calendar(both["events/a.ics"])["METHOD"]) == "PUBLISH"
        no_mail = vevents(both["events/b.ics"])[UID.format("b")]
        assert "ORGANIZER" not in no_mail  # a cal-address needs an address; never invent one
        assert str(no_mail["CONTACT"]) == "Team B"
        assert "Organiser: Team B" in str(no_mail["DESCRIPTION"])

    def test_alarm(self, data_dir: Path, tmp_path: Path) -> None:
        settings = make_settings(data_dir, tmp_path / "feeds", calendar={"alarm": "PT30M"})
        data = run(settings, EXAMPLE_NOW)["events.ics"]
        check_calendar(data)
        events = vevents(data)
        alarm = events[UID.format("example-before-dst")].walk("VALARM")
        assert len(alarm) == 1
        assert str(alarm[0]["ACTION"]) == "DISPLAY"
        assert alarm[0].decoded("TRIGGER") == timedelta(minutes=-30)
        assert str(alarm[0]["DESCRIPTION"]) == "Example: seminar the day before clocks go forward"
        assert events[UID.format("example-cancelled")].walk("VALARM") == []
        default = run(make_settings(data_dir, tmp_path / "plain"), EXAMPLE_NOW)["events.ics"]
        assert b"VALARM" not in default

    def test_refresh_setting(self, data_dir: Path, tmp_path: Path) -> None:
        settings = make_settings(data_dir, tmp_path / "feeds", calendar={"refresh": "P1D"})
        data = run(settings, EXAMPLE_NOW)["events.ics"]
        assert b"\r\nREFRESH-INTERVAL;VALUE=DURATION:P1D\r\n" in data
        assert b"\r\nX-PUBLISHED-TTL:P1D\r\n" in data

    def test_empty_calendar_is_valid(self, settings: Settings) -> None:
        files = ics.render(context(settings))
        assert list(files) == ["events.ics"]
        cal = check_calendar(files["events.ics"])
        assert cal.walk("VEVENT") == []
        assert [str(z["TZID"]) for z in cal.walk("VTIMEZONE")] == ["Europe/Luxembourg"]
        assert "METHOD" not in cal


class TestInjection:
    """No field can start a property, a component or break the line form."""

    def test_hostile_yaml(self, data_dir: Path, tmp_path: Path) -> None:
        (data_dir / "news.yaml").write_text("news: []\n", encoding="utf-8")
        (data_dir / "events.yaml").write_text(
            "events:\n"
            "  - id: hostile\n"
            '    title: "END:VEVENT, BEGIN:VEVENT; UID:evil \\\\N C:\\\\New"\n'
            "    start: 2027-05-05T10:00\n"
            '    location: "Room 1; Building, \\\\ ATTENDEE:mailto:x@example.org"\n'
            '    description: "Line one\\r\\nATTENDEE:mailto:evil@example.org\\rEND:VEVENT\\n'
            "BEGIN:VEVENT\\u2028UID:evil2\\n\\nÉté à Luxembourg ça coûte 💶 – " + "ü" * 60 + '"\n'
            '    tags: ["a,b", "c;d"]\n',
            encoding="utf-8",
        )
        settings = make_settings(data_dir, tmp_path / "feeds")
        files = run(settings, EXAMPLE_NOW)
        for data in files.values():
            check_calendar(data)
            lines = content_lines(data)
            assert Counter(line.split(":")[0] for line in lines)["BEGIN"] == 1 + (
                len(icalendar.Calendar.from_ical(data).subcomponents)
                + len(icalendar.Calendar.from_ical(data).walk("STANDARD"))
                + len(icalendar.Calendar.from_ical(data).walk("DAYLIGHT"))
            )
            assert not any(line.startswith(("ATTENDEE", "UID:evil")) for line in lines)
        event = vevents(files["events/hostile.ics"])
        assert list(event) == [UID.format("hostile")]
        item = event[UID.format("hostile")]
        assert str(item["SUMMARY"]) == "END:VEVENT, BEGIN:VEVENT; UID:evil \\N C:\\New"
        assert str(item["LOCATION"]) == "Room 1; Building, \\ ATTENDEE:mailto:x@example.org"
        text = str(item["DESCRIPTION"])
        assert "ATTENDEE:mailto:evil@example.org" in text and "\r" not in text
        assert text.startswith("Line one\nATTENDEE:") or text.startswith("Line one ATTENDEE:")
        assert "ü" * 60 in text and "💶" in text
        assert item["CATEGORIES"].cats == ["a,b", "c;d"]
        strict = IcsCalendarStream.calendar_from_ics(files["events/hostile.ics"].decode())
        assert strict.events[0].summary == "END:VEVENT, BEGIN:VEVENT; UID:evil \\N C:\\New"

    def test_hostile_model_values(self, settings: Settings) -> None:
        """Values that validation would refuse still cannot break out of their property."""
        event = timed(
            "evil",
            title="Title\r\nATTENDEE:mailto:evil@example.org",
            location=Location("Room\nEND:VEVENT"),
            organizer=Organizer('A "quoted"\r\nX-INJ:1 name', "a@example.org"),
            url="https://example.org/\r\nX-INJ:2",
            online="javascript alert",
            tags=("t\nX-INJ:3",),
        )
        data = ics.render(context(settings, event))["events/evil.ics"]
        check_calendar(data)
        lines = content_lines(data)
        assert not any(line.startswith(("ATTENDEE", "X-INJ", "END:VEVENT\r")) for line in lines)
        assert [line for line in lines if line == "END:VEVENT"] == ["END:VEVENT"]
        item = vevents(data)[UID.format("evil")]
        assert "URL" not in item  # not a clean absolute URI: left out
        assert item["ORGANIZER"].params["CN"] == "A 'quoted' X-INJ:1 name"
        assert str(item["SUMMARY"]) == "Title\nATTENDEE:mailto:evil@example.org"


def edit(data_dir: Path, old: str, new: str) -> None:
    """Replace text in the example events.yaml (exactly once)."""
    path = data_dir / "events.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def delete_event(data_dir: Path, event_id: str) -> None:
    """Remove one event's block from the example events.yaml."""
    path = data_dir / "events.yaml"
    head, *blocks = path.read_text(encoding="utf-8").split("\n  - id: ")
    kept = [b for b in blocks if not b.startswith(event_id + "\n")]
    assert len(kept) == len(blocks) - 1
    path.write_text("\n  - id: ".join([head, *kept]), encoding="utf-8")


class TestLifeCycle:
    """SEQUENCE, LAST-MODIFIED and cancellation over several builds with a given clock."""

    def test_edit_keep_delete_expire(self, settings: Settings, data_dir: Path) -> None:
        t1 = EXAMPLE_NOW.astimezone(UTC)
        first = run(settings, t1)
        before_uid, after_uid = UID.format("example-before-dst"), UID.format("example-after-dst")
        assert vevents(first["events.ics"])[before_uid].decoded("SEQUENCE") == 0

        # unchanged input, later clock: identical bytes everywhere
        t2 = t1 + timedelta(hours=3)
        assert run(settings, t2) == first

        # a changed time: SEQUENCE + 1, LAST-MODIFIED and DTSTAMP move, CREATED stays
        edit(data_dir, "start: 2027-03-27T10:00", "start: 2027-03-27T10:30")
        t3 = t1 + timedelta(days=2)
        third = run(settings, t3)
        for path in ("events.ics", "events/example-before-dst.ics", "tags/jane-2/events.ics"):
            check_calendar(third[path])
            moved = vevents(third[path])[before_uid]
            assert moved.decoded("SEQUENCE") == 1
            assert moved.decoded("LAST-MODIFIED") == moved.decoded("DTSTAMP") == t3
            assert moved.decoded("CREATED") == t1
            assert utc(moved.decoded("DTSTART")) == datetime(2027, 3, 27, 9, 30, tzinfo=UTC)
        assert third["events/example-after-dst.ics"] == first["events/example-after-dst.ics"]
        assert vevent_text(third["events.ics"], after_uid) == vevent_text(
            first["events.ics"], after_uid
        )

        # deleted from the YAML: announced as cancelled, SEQUENCE raised, per-event file gone
        delete_event(data_dir, "example-after-dst")
        t4 = t3 + timedelta(days=1)
        fourth = run(settings, t4)
        assert "events/example-after-dst.ics" not in fourth
        for path in ("events.ics", "tags/jane-2/events.ics"):
            check_calendar(fourth[path])
            gone = vevents(fourth[path])[after_uid]
            assert str(gone["STATUS"]) == "CANCELLED"
            assert str(gone["SUMMARY"]).startswith("Cancelled: Example: seminar the day after")
            assert gone.decoded("SEQUENCE") == 1
            assert gone.decoded("LAST-MODIFIED") == gone.decoded("DTSTAMP") == t4
            assert gone.decoded("CREATED") == t1
            assert utc(gone.decoded("DTSTART")) == datetime(2027, 3, 29, 8, 0, tzinfo=UTC)

        # still announced, unchanged, until cancelled_days (30) have passed; then gone
        day_29 = run(settings, t4 + timedelta(days=29))
        assert vevent_text(day_29["events.ics"], after_uid) == vevent_text(
            fourth["events.ics"], after_uid
        )
        day_30 = run(settings, t4 + timedelta(days=30))
        assert after_uid not in vevents(day_30["events.ics"])
        assert after_uid not in vevents(day_30["tags/jane-2/events.ics"])

    def test_cancelling_in_the_yaml(self, settings: Settings, data_dir: Path) -> None:
        t1 = EXAMPLE_NOW.astimezone(UTC)
        run(settings, t1)
        edit(data_dir, "status: tentative", "status: cancelled")
        t2 = t1 + timedelta(hours=1)
        files = run(settings, t2)
        uid = UID.format("example-tentative-brussels")
        for path in ("events.ics", "events/example-tentative-brussels.ics"):
            event = vevents(files[path])[uid]
            assert str(event["STATUS"]) == "CANCELLED"
            assert str(event["SUMMARY"]) == "Cancelled: Example: network meeting in Brussels"
            assert event.decoded("SEQUENCE") == 1
            assert event.decoded("LAST-MODIFIED") == t2

    def test_a_reused_id_continues_its_sequence(self, settings: Settings, data_dir: Path) -> None:
        original = (data_dir / "events.yaml").read_text(encoding="utf-8")
        t1 = EXAMPLE_NOW.astimezone(UTC)
        run(settings, t1)
        delete_event(data_dir, "example-before-dst")
        run(settings, t1 + timedelta(days=1))
        (data_dir / "events.yaml").write_text(original, encoding="utf-8")
        back = run(settings, t1 + timedelta(days=2))
        event = vevents(back["events.ics"])[UID.format("example-before-dst")]
        assert str(event["STATUS"]) == "CONFIRMED"
        assert event.decoded("SEQUENCE") == 2  # above the cancellation, so clients take it


def test_vobject_reads_our_vtimezones(settings: Settings) -> None:
    """A third parser that takes the offsets from the VTIMEZONE, not from the TZID name."""
    import vobject

    files = run(settings, EXAMPLE_NOW)
    for data in files.values():
        vobject.readOne(data.decode(), validate=True)
    cal = vobject.readOne(files["events.ics"].decode(), validate=True)
    starts = {e.uid.value.split("@")[0]: e.dtstart.value for e in cal.vevent_list}
    assert "tzicalvtz" in type(starts["example-before-dst"].tzinfo).__name__
    assert utc(starts["example-before-dst"]) == datetime(2027, 3, 27, 9, 0, tzinfo=UTC)
    assert utc(starts["example-after-dst"]) == datetime(2027, 3, 29, 8, 0, tzinfo=UTC)
    assert utc(starts["example-tentative-brussels"]) == datetime(2027, 10, 30, 7, tzinfo=UTC)
    webinar = next(e for e in cal.vevent_list if e.uid.value.startswith("example-webinar"))
    occurrences = [utc(o) for o in webinar.getrruleset()]
    assert len(occurrences) == 9
    assert datetime(2027, 2, 17, 15, 0, tzinfo=UTC) not in occurrences
    assert occurrences[-1] == datetime(2027, 4, 7, 14, 0, tzinfo=UTC)


class TestTagCalendarAfterDeletion:
    """A tag's calendar outlives its last event while the cancellation is announced."""

    def test_tag_calendar_carries_the_cancellation(self, settings: Settings) -> None:
        build(settings, now=EXAMPLE_NOW)
        events = settings.paths.data_dir / "events.yaml"
        text = events.read_text()
        start = text.index("  - id: example-cancelled")
        end = text.index("  - id: example-tentative-brussels")
        events.write_text(text[:start] + text[end:])
        build(settings, now=EXAMPLE_NOW)
        tag_calendar = settings.paths.output_dir / "tags" / "echos" / "events.ics"
        body = tag_calendar.read_bytes()
        assert b"UID:example-cancelled@www.lih.lu" in body
        assert b"STATUS:CANCELLED" in body
