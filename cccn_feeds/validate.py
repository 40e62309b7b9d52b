"""Raw YAML documents to the content model, collecting every problem, not just the first."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cccn_feeds.errors import DataError, Problem
from cccn_feeds.load import LineDict, LineList, load_file
from cccn_feeds.model import Content, Event, Geo, Location, NewsItem, Organizer, Status, tag_slug

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_DATETIME_RE = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?$"
)
# Characters XML 1.0 cannot carry (and the C1 controls, which no reader shows sensibly).
_BAD_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_EMAIL_RE = re.compile(r"^[^@\s<>\"(),;:]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_RRULE_KEYS = {
    "FREQ", "UNTIL", "COUNT", "INTERVAL", "BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY",
    "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS", "WKST",
}  # fmt: skip
_FREQS = {"SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
MAX_TITLE = 500
MAX_COUNT = 5000  # occurrences of one series (a weekly meeting for 95 years)
YEARS = (1900, 2200)  # dates outside are typing mistakes (and break calendar programs)

NEWS_FIELDS = (
    "id", "title", "date", "url", "source", "summary", "body", "tags", "lang", "image",
    "updated", "event",
)  # fmt: skip
EVENT_FIELDS = (
    "id", "title", "start", "end", "timezone", "location", "online", "url", "description",
    "organizer", "status", "tags", "rrule", "exdates", "updated", "news",
)  # fmt: skip
STATUSES: tuple[Status, ...] = ("confirmed", "tentative", "cancelled")


UNREADABLE: Any = object()  # stands for a file that could not be read or parsed


class _Invalid(Exception):
    """A field value was rejected; the problem is already recorded."""


@dataclass
class _Checker:
    """Collects problems for one file while converting its values."""

    file: str
    problems: list[Problem] = field(default_factory=list)

    def add(self, line: int | None, path: str, message: str) -> None:
        """Record one problem."""
        self.problems.append(Problem(self.file, line, path, message))

    def fail(self, line: int | None, path: str, message: str) -> _Invalid:
        """Record one problem and return an exception to abandon the field."""
        self.add(line, path, message)
        return _Invalid()


def _own(container: Any) -> int | None:
    """The line a LineDict or LineList starts on (None for values built in Python)."""
    return getattr(container, "line", None)


def _line(container: Any, key: str | int, default: int | None) -> int | None:
    """Line of a key in a LineDict or of an index in a LineList."""
    if isinstance(container, LineDict):
        return container.lines.get(str(key), container.line)
    if isinstance(container, LineList) and isinstance(key, int) and key < len(container.lines):
        return container.lines[key]
    return default


def did_you_mean(name: str, options: tuple[str, ...] | list[str]) -> str:
    """A suggestion for a misspelt name, or an empty string."""
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_text(value: Any, ck: _Checker, line: int | None, path: str, *, one_line: bool) -> str:
    """A text value: numbers become text, XML-illegal characters are refused."""
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise ck.fail(line, path, f"expected text, got {_describe(value)}")
    text = str(value)
    bad = _BAD_XML_CHARS.search(text)
    if bad:
        raise ck.fail(
            line,
            path,
            f"contains the control character U+{ord(bad.group()):04X}, which feeds and "
            "calendars cannot carry; delete it",
        )
    if one_line and ("\n" in text.strip() or "\r" in text):
        raise ck.fail(line, path, "must be one line; remove the line break")
    return text.strip() if one_line else text


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a yes/no value)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def parse_when(
    value: Any,
    tz: ZoneInfo,
    ck: _Checker,
    line: int | None,
    path: str,
    *,
    allow_date: bool = True,
    allow_datetime: bool = True,
) -> date | datetime:
    """A YYYY-MM-DD date, or a date-time (local to ``tz`` unless it has Z or an offset)."""
    if isinstance(value, datetime | date):  # from a caller that built values in Python
        text = value.isoformat()
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ck.fail(line, path, f"expected a date such as 2025-12-08, got {_describe(value)}")
    match = _DATETIME_RE.match(text)
    written = re.fullmatch(r"(\d{1,2})[/.](\d{1,2})[/.](\d{4})", text)
    if not match and written:
        day_, month_, year_ = written.groups()
        raise ck.fail(
            line,
            path,
            f"{text!r} is written day/month/year; write it as "
            f"{year_}-{int(month_):02d}-{int(day_):02d} (YYYY-MM-DD)",
        )
    if not match:
        raise ck.fail(
            line,
            path,
            f"{text!r} is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM, "
            "optionally with :SS and Z or +HH:MM)",
        )
    g = match.groupdict()
    try:
        day = date(int(g["y"]), int(g["mo"]), int(g["d"]))
    except ValueError as exc:
        raise ck.fail(line, path, f"{text!r} is not a real date ({exc})") from None
    if not YEARS[0] <= day.year <= YEARS[1]:
        raise ck.fail(line, path, f"{text!r}: the year must be from {YEARS[0]} to {YEARS[1]}")
    if g["h"] is None:
        if not allow_date:
            raise ck.fail(line, path, f"{text!r} needs a time too, such as {text}T09:00")
        return day
    if not allow_datetime:
        raise ck.fail(line, path, f"{text!r} must be a date without a time, such as {day}")
    try:
        clock = time(int(g["h"]), int(g["mi"]), int(g["s"] or 0))
    except ValueError as exc:
        raise ck.fail(line, path, f"{text!r} is not a real time ({exc})") from None
    offset = g["tz"]
    if offset:
        if offset == "Z":
            zone = UTC
        else:
            sign = 1 if offset[0] == "+" else -1
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            if hours > 23 or minutes > 59:
                raise ck.fail(line, path, f"{text!r}: {offset} is not a valid UTC offset")
            zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
        return datetime.combine(day, clock, tzinfo=zone).astimezone(tz)
    local = datetime.combine(day, clock, tzinfo=tz)
    round_trip = local.astimezone(UTC).astimezone(tz)
    if round_trip.replace(tzinfo=None) != local.replace(tzinfo=None):
        raise ck.fail(
            line,
            path,
            f"{text} does not exist in {tz.key} (the clocks skip that hour); "
            "use a time outside the daylight-saving change",
        )
    first, second = local.replace(fold=0).utcoffset(), local.replace(fold=1).utcoffset()
    if first != second:
        raise ck.fail(
            line,
            path,
            f"{text} happens twice in {tz.key} (the clocks go back); add the offset to say "
            f"which: {text}{_offset(first)} (the first) or {text}{_offset(second)} (the second)",
        )
    return local


def _offset(value: timedelta | None) -> str:
    minutes = int((value or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def check_url(value: Any, ck: _Checker, line: int | None, path: str) -> str:
    """An absolute http or https address."""
    text = check_text(value, ck, line, path, one_line=True)
    parts = urlsplit(text)
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        raise ck.fail(
            line, path, f"{text!r} is not an absolute http(s) address such as https://example.org/"
        )
    if re.search(r"\s", text):
        raise ck.fail(line, path, f"{text!r} contains a space; write it as %20")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise ck.fail(line, path, f"{text!r} has an invalid port") from None
    return text


def check_tags(value: Any, ck: _Checker, line: int | None, path: str) -> tuple[str, ...]:
    """A list of tags, each non-empty text with a usable slug; duplicates collapse."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ck.fail(line, path, f"expected a list of tags, got {_describe(value)}")
    tags: list[str] = []
    for i, item in enumerate(value):
        item_line = _line(value, i, line)
        try:
            tag = check_text(item, ck, item_line, f"{path}[{i}]", one_line=True)
        except _Invalid:
            continue
        if not tag_slug(tag):
            ck.add(
                item_line,
                f"{path}[{i}]",
                f"tag {tag!r} needs at least one Latin letter or digit, since its feeds "
                "live at tags/<name>/; add a Latin spelling to the tag",
            )
            continue
        if tag not in tags:
            tags.append(tag)
    return tuple(tags)


def _check_id(raw: dict[str, Any], ck: _Checker, path: str, seen: dict[str, int]) -> str:
    line = _line(raw, "id", _own(raw))
    if "id" not in raw:
        raise ck.fail(_own(raw), f"{path}.id", "required; add a unique slug such as launch-2025")
    value = raw["id"]
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
    if text is None or not ID_RE.match(text):
        raise ck.fail(
            line,
            f"{path}.id",
            f"{value!r} is not a slug: use lower-case letters, digits and hyphens, "
            "starting with a letter or digit",
        )
    if text in seen:
        raise ck.fail(line, f"{path}.id", f"{text!r} is already used on line {seen[text]}")
    seen[text] = line or 0
    return text


def _unknown_fields(raw: dict[str, Any], allowed: tuple[str, ...], ck: _Checker, path: str) -> None:
    for key in raw:
        if key in allowed or key.startswith(("x-", "_")):
            continue
        ck.add(
            _line(raw, key, _own(raw)),
            f"{path}.{key}",
            "unknown field" + did_you_mean(key, allowed) + " (prefix private fields with x-)",
        )


def _top_list(document: Any, key: str, ck: _Checker) -> list[Any]:
    """The list under the document's one top-level key."""
    if document is UNREADABLE:  # its problems are already reported
        return LineList()
    if document is None:
        ck.add(
            1,
            "",
            f"the file is empty (perhaps saved half-way); write '{key}: []' when there is "
            f"nothing to list",
        )
        return LineList()
    if not isinstance(document, dict):
        ck.add(
            _own(document) or 1,
            "",
            f"expected a mapping with the '{key}:' list at the top, got {_describe(document)}; "
            f"start the file with '{key}:'",
        )
        return LineList()
    suggested = False
    for other in document:
        if other != key:
            hint = did_you_mean(other, [key])
            suggested = suggested or bool(hint)
            ck.add(
                _line(document, other, 1),
                other,
                f"unknown top-level key{hint or f'; the file holds only the {key!r} list'}",
            )
    items = document.get(key)
    if items is None:
        if key not in document and not suggested:
            ck.add(_own(document), key, f"missing; the file must hold the '{key}:' list")
        elif key in document:
            ck.add(
                _line(document, key, 1),
                key,
                f"has nothing under it; write '{key}: []' when there is nothing to list",
            )
        return LineList()
    if not isinstance(items, list):
        ck.add(_line(document, key, 1), key, f"expected a list, got {_describe(items)}")
        return LineList()
    return items


FieldFn = Callable[[Any, int | None, str], Any]


def _fields(
    raw: dict[str, Any], ck: _Checker, path: str, spec: dict[str, FieldFn]
) -> dict[str, Any]:
    """Convert the present fields in ``spec``; a rejected field is left out."""
    out: dict[str, Any] = {}
    for key, convert in spec.items():
        if key not in raw or (raw[key] is None and key not in {"title"}):
            continue
        try:
            out[key] = convert(raw[key], _line(raw, key, _own(raw)), f"{path}.{key}")
        except _Invalid:
            out.setdefault("_invalid", set()).add(key)
    return out


def validate_news(document: Any, ck: _Checker, site_tz: ZoneInfo) -> list[NewsItem]:
    """The news list of ``news.yaml``."""
    items = _top_list(document, "news", ck)
    seen: dict[str, int] = {}
    news: list[NewsItem] = []
    for index, raw in enumerate(items):
        path = f"news[{index}]"
        if not isinstance(raw, dict):
            ck.add(
                _line(items, index, _own(items)), path, f"expected a mapping, got {_describe(raw)}"
            )
            continue
        item = validate_news_item(raw, ck, path, seen, site_tz)
        if item is not None:
            news.append(item)
    return news


def validate_news_item(
    raw: dict[str, Any], ck: _Checker, path: str, seen: dict[str, int], site_tz: ZoneInfo
) -> NewsItem | None:
    """One news item, or None when it has problems (recorded in ``ck``)."""
    _unknown_fields(raw, NEWS_FIELDS, ck, path)
    try:
        item_id = _check_id(raw, ck, path, seen)
    except _Invalid:
        item_id = ""
    text1 = _text_fn(ck, one_line=True)
    values = _fields(
        raw,
        ck,
        path,
        {
            "title": _title_fn(ck),
            "date": lambda v, ln, p: parse_when(v, site_tz, ck, ln, p),
            "url": lambda v, ln, p: check_url(v, ck, ln, p),
            "source": text1,
            "summary": _text_fn(ck, one_line=False),
            "body": _text_fn(ck, one_line=False),
            "tags": lambda v, ln, p: check_tags(v, ck, ln, p),
            "lang": _lang_fn(ck),
            "image": lambda v, ln, p: check_url(v, ck, ln, p),
            "updated": lambda v, ln, p: _aware(parse_when(v, site_tz, ck, ln, p), site_tz),
            "event": _ref_fn(ck),
        },
    )
    for required in ("title", "date"):
        if required not in raw:
            ck.add(_own(raw), f"{path}.{required}", _REQUIRED[required])
    if not item_id or values.get("_invalid") or "title" not in values or "date" not in values:
        return None
    when = values.pop("date")
    return NewsItem(
        id=item_id,
        date=_aware(when, site_tz),
        date_only=not isinstance(when, datetime),
        line=_own(raw) or 0,
        **values,
    )


_REQUIRED = {
    "title": "required; add the title as people should read it",
    "date": "required; add the publication date as YYYY-MM-DD",
    "start": "required; add a date (all-day) or a date-time such as 2026-06-15T09:00",
}


def _aware(value: date | datetime, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(0), tzinfo=tz)


def _text_fn(ck: _Checker, *, one_line: bool) -> FieldFn:
    return lambda v, ln, p: check_text(v, ck, ln, p, one_line=one_line)


def _title_fn(ck: _Checker) -> FieldFn:
    def convert(value: Any, line: int | None, path: str) -> str:
        text = check_text(value, ck, line, path, one_line=True)
        if not text:
            raise ck.fail(line, path, "must not be empty")
        if len(text) > MAX_TITLE:
            raise ck.fail(
                line, path, f"is {len(text)} characters long; keep titles under {MAX_TITLE}"
            )
        return text

    return convert


def _lang_fn(ck: _Checker) -> FieldFn:
    def convert(value: Any, line: int | None, path: str) -> str:
        text = check_text(value, ck, line, path, one_line=True)
        if not _LANG_RE.match(text):
            raise ck.fail(line, path, f"{text!r} is not a language tag such as en, fr or de-LU")
        return text

    return convert


def _ref_fn(ck: _Checker) -> FieldFn:
    def convert(value: Any, line: int | None, path: str) -> str:
        text = check_text(value, ck, line, path, one_line=True)
        if not ID_RE.match(text):
            raise ck.fail(line, path, f"{text!r} is not an id (a slug)")
        return text

    return convert


def _check_location(value: Any, ck: _Checker, line: int | None, path: str) -> Location:
    if not isinstance(value, dict):
        return Location(name=check_text(value, ck, line, path, one_line=True))
    _unknown_fields(value, ("name", "address", "geo"), ck, path)
    name = address = ""
    geo = None
    if "name" in value:
        name = check_text(
            value["name"], ck, _line(value, "name", line), f"{path}.name", one_line=True
        )
    if "address" in value:
        address = check_text(
            value["address"], ck, _line(value, "address", line), f"{path}.address", one_line=False
        )
        address = ", ".join(part.strip() for part in address.splitlines() if part.strip())
    if not name and not address:
        raise ck.fail(line, path, "give at least a name or an address")
    if "geo" in value:
        geo = _check_geo(value["geo"], ck, _line(value, "geo", line), f"{path}.geo")
    return Location(name=name, address=address, geo=geo)


def _check_geo(value: Any, ck: _Checker, line: int | None, path: str) -> Geo:
    if not isinstance(value, dict) or set(value) != {"lat", "lon"}:
        raise ck.fail(line, path, "expected a mapping with lat and lon, e.g. {lat: 49.6, lon: 6.1}")
    numbers: dict[str, float] = {}
    for key, limit in (("lat", 90.0), ("lon", 180.0)):
        number = value[key]
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ck.fail(
                _line(value, key, line), f"{path}.{key}", f"expected a number, got {number!r}"
            )
        if not -limit <= float(number) <= limit:
            raise ck.fail(
                _line(value, key, line),
                f"{path}.{key}",
                f"{number} is outside -{limit:g}..{limit:g}",
            )
        numbers[key] = float(number)
    return Geo(lat=numbers["lat"], lon=numbers["lon"])


def _check_organizer(value: Any, ck: _Checker, line: int | None, path: str) -> Organizer:
    if not isinstance(value, dict):
        return Organizer(name=check_text(value, ck, line, path, one_line=True))
    _unknown_fields(value, ("name", "email"), ck, path)
    if "name" not in value:
        raise ck.fail(line, f"{path}.name", "required; add the organiser's name")
    name = check_text(value["name"], ck, _line(value, "name", line), f"{path}.name", one_line=True)
    email = ""
    if value.get("email") is not None:
        email = check_text(
            value["email"], ck, _line(value, "email", line), f"{path}.email", one_line=True
        )
        if not _EMAIL_RE.match(email):
            raise ck.fail(
                _line(value, "email", line), f"{path}.email", f"{email!r} is not an email address"
            )
    return Organizer(name=name, email=email)


def _check_status(value: Any, ck: _Checker, line: int | None, path: str) -> Status:
    text = check_text(value, ck, line, path, one_line=True).lower()
    for status in STATUSES:
        if text == status or (text == "canceled" and status == "cancelled"):
            return status
    raise ck.fail(line, path, f"{value!r}: use confirmed, tentative or cancelled")


def _check_timezone(value: Any, ck: _Checker, line: int | None, path: str) -> ZoneInfo:
    text = check_text(value, ck, line, path, one_line=True)
    try:
        if not re.fullmatch(r"[A-Za-z0-9_+\-/]+", text) or text.startswith("/"):
            raise ValueError(text)
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ck.fail(
            line, path, f"unknown time zone {text!r}; use an IANA name such as Europe/Luxembourg"
        ) from None


def check_rrule(
    value: Any, ck: _Checker, line: int | None, path: str, start: date | datetime
) -> str:
    """An RFC 5545 RRULE value (the ``RRULE:`` prefix is optional)."""
    from dateutil.rrule import rrulestr

    text = check_text(value, ck, line, path, one_line=True)
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    parts: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, val = part.partition("=")
        key = key.upper()
        if not sep or key not in _RRULE_KEYS or not val:
            raise ck.fail(line, path, f"{part!r} is not an RRULE part such as FREQ=WEEKLY")
        if key in parts:
            raise ck.fail(line, path, f"{key} appears twice")
        parts[key] = val.upper() if key != "UNTIL" else val
    if parts.get("FREQ") not in _FREQS:
        raise ck.fail(line, path, "needs FREQ=DAILY, WEEKLY, MONTHLY or YEARLY (for example)")
    if "UNTIL" in parts and "COUNT" in parts:
        raise ck.fail(line, path, "give UNTIL or COUNT, not both")
    if "UNTIL" in parts:
        until = parts["UNTIL"]
        if isinstance(start, datetime):
            if not re.fullmatch(r"\d{8}T\d{6}Z", until):
                raise ck.fail(
                    line, path, f"UNTIL={until} must be a UTC date-time such as 20261231T235959Z"
                )
        elif not re.fullmatch(r"\d{8}", until):
            raise ck.fail(line, path, f"UNTIL={until} must be a date such as 20261231")
    for key, low, high in (("COUNT", 1, MAX_COUNT), ("INTERVAL", 1, 1000)):
        if key in parts and not (parts[key].isdigit() and low <= int(parts[key]) <= high):
            raise ck.fail(line, path, f"{key}={parts[key]} must be a number from {low} to {high}")
    normal = ";".join(f"{k}={v}" for k, v in parts.items())
    try:
        naive = start if not isinstance(start, datetime) else start.replace(tzinfo=None)
        dtstart = naive if isinstance(naive, datetime) else datetime.combine(naive, time(0))
        rule: Any = rrulestr(
            normal.replace("Z", "") if "UNTIL" in parts else normal, dtstart=dtstart
        )
        if "UNTIL" in parts and next(iter(rule), None) is None:
            raise ck.fail(line, path, f"UNTIL={parts['UNTIL']} leaves no date after the start")
        # A rule that never matches (BYMONTH=2;BYMONTHDAY=30) would be searched for years on
        # every build: look for a first date within the next ten years only.
        window = rule.replace(count=None, until=dtstart + timedelta(days=3660))
        if next(iter(window), None) is None:
            raise ck.fail(line, path, "never happens in the next ten years; check the rule")
    except (ValueError, TypeError) as exc:
        raise ck.fail(line, path, f"not a valid RRULE: {exc}") from None
    return normal


def _check_exdates(
    value: Any, ck: _Checker, line: int | None, path: str, start: date | datetime, tz: ZoneInfo
) -> tuple[date | datetime, ...]:
    if not isinstance(value, list):
        value = [value]
    timed = isinstance(start, datetime)
    out: list[date | datetime] = []
    for i, item in enumerate(value):
        item_line = _line(value, i, line)
        try:
            when = parse_when(
                item, tz, ck, item_line, f"{path}[{i}]", allow_date=not timed, allow_datetime=timed
            )
        except _Invalid:
            continue
        out.append(when)
    return tuple(out)


def validate_events(document: Any, ck: _Checker, site_tz: ZoneInfo) -> list[Event]:
    """The events list of ``events.yaml``."""
    items = _top_list(document, "events", ck)
    seen: dict[str, int] = {}
    events: list[Event] = []
    for index, raw in enumerate(items):
        path = f"events[{index}]"
        if not isinstance(raw, dict):
            ck.add(
                _line(items, index, _own(items)), path, f"expected a mapping, got {_describe(raw)}"
            )
            continue
        event = validate_event_item(raw, ck, path, seen, site_tz)
        if event is not None:
            events.append(event)
    return events


def validate_event_item(
    raw: dict[str, Any], ck: _Checker, path: str, seen: dict[str, int], site_tz: ZoneInfo
) -> Event | None:
    _unknown_fields(raw, EVENT_FIELDS, ck, path)
    ok = True
    try:
        event_id = _check_id(raw, ck, path, seen)
    except _Invalid:
        event_id, ok = "", False
    tz = site_tz
    if raw.get("timezone") is not None:
        try:
            tz = _check_timezone(
                raw["timezone"], ck, _line(raw, "timezone", _own(raw)), f"{path}.timezone"
            )
        except _Invalid:
            ok = False
    values = _fields(
        raw,
        ck,
        path,
        {
            "title": _title_fn(ck),
            "location": lambda v, ln, p: _check_location(v, ck, ln, p),
            "online": lambda v, ln, p: check_url(v, ck, ln, p),
            "url": lambda v, ln, p: check_url(v, ck, ln, p),
            "description": _text_fn(ck, one_line=False),
            "organizer": lambda v, ln, p: _check_organizer(v, ck, ln, p),
            "status": lambda v, ln, p: _check_status(v, ck, ln, p),
            "tags": lambda v, ln, p: check_tags(v, ck, ln, p),
            "updated": lambda v, ln, p: _aware(parse_when(v, tz, ck, ln, p), tz),
            "news": _ref_fn(ck),
        },
    )
    for required in ("title", "start"):
        if required not in raw:
            ck.add(_own(raw), f"{path}.{required}", _REQUIRED[required])
            ok = False
    if values.pop("_invalid", None) or "title" not in values:
        ok = False
    start = end = None
    if raw.get("start") is not None:
        try:
            start = parse_when(
                raw["start"], tz, ck, _line(raw, "start", _own(raw)), f"{path}.start"
            )
        except _Invalid:
            ok = False
    elif "start" in raw:
        ck.add(_line(raw, "start", _own(raw)), f"{path}.start", "must not be empty")
    if start is None:
        return None
    all_day = not isinstance(start, datetime)
    end_line = _line(raw, "end", _own(raw))
    if raw.get("end") is not None:
        try:
            end = parse_when(
                raw["end"], tz, ck, end_line, f"{path}.end",
                allow_date=all_day, allow_datetime=not all_day,
            )  # fmt: skip
        except _Invalid:
            ok = False
    if end is None:
        end = start if all_day else start + timedelta(hours=1)
    elif all_day and end < start:
        ck.add(end_line, f"{path}.end", f"{end} is before start {start}")
        ok = False
    elif not all_day and end <= start:
        ck.add(
            end_line,
            f"{path}.end",
            f"{_show(end)} is not after start {_show(start)}",
        )
        ok = False
    extra: dict[str, Any] = {}
    if raw.get("rrule") is not None:
        try:
            extra["rrule"] = check_rrule(
                raw["rrule"], ck, _line(raw, "rrule", _own(raw)), f"{path}.rrule", start
            )
        except _Invalid:
            ok = False
    if raw.get("exdates") is not None:
        extra["exdates"] = _check_exdates(
            raw["exdates"], ck, _line(raw, "exdates", _own(raw)), f"{path}.exdates", start, tz
        )
        if "rrule" not in raw:
            ck.add(
                _line(raw, "exdates", _own(raw)), f"{path}.exdates", "needs an rrule to apply to"
            )
            ok = False
    if not ok or not event_id:
        return None
    return Event(
        id=event_id,
        start=start,
        end=end,
        all_day=all_day,
        timezone=tz,
        line=_own(raw) or 0,
        **values,
        **extra,
    )


def _show(value: date | datetime) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M") + (f" {value.tzname()}" if value.tzinfo else "")
    return value.isoformat()


def _cross_check(
    news: list[NewsItem],
    events: list[Event],
    news_ck: _Checker,
    events_ck: _Checker,
    news_raw: Any,
    events_raw: Any,
) -> None:
    """References between the two files point at ids that exist."""
    news_ids = {n.id for n in news} | _raw_ids(news_raw, "news")
    event_ids = {e.id for e in events} | _raw_ids(events_raw, "events")
    for i, item in enumerate(news):
        if item.event and item.event not in event_ids:
            news_ck.add(
                _ref_line(news_raw, "news", item, "event"),
                f"news[{_index(news_raw, 'news', item.id, i)}].event",
                f"no event has the id {item.event!r}" + did_you_mean(item.event, sorted(event_ids)),
            )
    for i, event in enumerate(events):
        if event.news and event.news not in news_ids:
            events_ck.add(
                _ref_line(events_raw, "events", event, "news"),
                f"events[{_index(events_raw, 'events', event.id, i)}].news",
                f"no news item has the id {event.news!r}"
                + did_you_mean(event.news, sorted(news_ids)),
            )


def _raw_items(document: Any, key: str) -> list[Any]:
    if isinstance(document, dict) and isinstance(document.get(key), list):
        return list(document[key])
    return []


def _raw_ids(document: Any, key: str) -> set[str]:
    return {str(r.get("id")) for r in _raw_items(document, key) if isinstance(r, LineDict)}


def _index(document: Any, key: str, item_id: str, fallback: int) -> int:
    for i, raw in enumerate(_raw_items(document, key)):
        if isinstance(raw, dict) and str(raw.get("id")) == item_id:
            return i
    return fallback


def _ref_line(document: Any, key: str, item: NewsItem | Event, field_name: str) -> int | None:
    for raw in _raw_items(document, key):
        if isinstance(raw, dict) and str(raw.get("id")) == item.id:
            return _line(raw, field_name, _own(raw))
    return item.line


def validate_documents(
    news_doc: Any,
    events_doc: Any,
    site_tz: ZoneInfo,
    news_file: str = "data/news.yaml",
    events_file: str = "data/events.yaml",
    *,
    check_refs: bool = True,
) -> Content:
    """Both documents to Content, or DataError naming every problem."""
    news_ck, events_ck = _Checker(news_file), _Checker(events_file)
    news = validate_news(news_doc, news_ck, site_tz)
    events = validate_events(events_doc, events_ck, site_tz)
    if check_refs:
        _cross_check(news, events, news_ck, events_ck, news_doc, events_doc)
    problems = news_ck.problems + events_ck.problems
    if problems:
        raise DataError(problems)
    return make_content(news, events, news_file, events_file)


def make_content(
    news: list[NewsItem], events: list[Event], news_file: str, events_file: str
) -> Content:
    """Content in its canonical order: news newest first, events soonest first."""
    news.sort(key=lambda n: (n.date, n.id), reverse=True)
    events.sort(key=lambda e: (e.starts_at, e.id))
    return Content(tuple(news), tuple(events), news_file, events_file)


def load_content(data_dir: Path, site_tz: ZoneInfo) -> Content:
    """Load and validate ``news.yaml`` and ``events.yaml`` from ``data_dir``.

    Both files are read and checked even when the first has problems, so one run
    reports everything.
    """
    names = {key: display_path(data_dir / f"{key}.yaml") for key in ("news", "events")}
    docs: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, name in names.items():
        try:
            docs[key] = load_file(data_dir / f"{key}.yaml", name)
        except DataError as exc:
            problems.extend(exc.problems)
            docs[key] = UNREADABLE
    try:
        content = validate_documents(
            docs["news"],
            docs["events"],
            site_tz,
            names["news"],
            names["events"],
            check_refs=not problems,
        )
    except DataError as exc:
        problems.extend(exc.problems)
    if problems:
        raise DataError(problems)
    return content


def display_path(path: Path) -> str:
    """A path as the user knows it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
