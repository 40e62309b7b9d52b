"""VTIMEZONE components from the IANA database, with yearly rules, built once per zone.

icalendar's ``Timezone.from_tzid`` lists every transition of a fixed range as RDATEs,
adds a ``COMMENT`` that libical rejects, and stops at its last year: a client that
reads the VTIMEZONE (Thunderbird, libical) then places summer occurrences of a series
without end an hour off. Here the transitions of the years the events need are grouped
into the yearly rules they follow (``RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU``), as
Outlook and tzurl.org write them; the rule in force at the end stays open, so it covers
later years too. Transitions that follow no weekday rule are listed as RDATEs.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard, vRecur

_STEP = timedelta(hours=12)  # no zone changes its offset twice within 12 hours
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a zone's offset, name or daylight flag."""

    at: datetime  # the UTC instant
    offset_from: timedelta
    offset_to: timedelta
    name: str
    dst: bool

    @property
    def onset(self) -> datetime:
        """The local wall-clock time of the change, in the offset before it (RFC 5545)."""
        return (self.at + self.offset_from).replace(tzinfo=None)


@dataclass(slots=True)
class _Observance:
    """Transitions of one kind, in consecutive years when they follow a weekday rule."""

    key: tuple[object, ...]
    rules: set[int]  # candidate BYDAY ordinals: 1..5 or -1 (the last)
    changes: list[Transition] = field(default_factory=list)


def _state(tz: ZoneInfo, instant: datetime) -> tuple[timedelta, str, bool]:
    local = instant.astimezone(tz)
    return (local.utcoffset() or timedelta(0), local.tzname() or "", bool(local.dst()))


def transitions(tz: ZoneInfo, start: datetime, end: datetime) -> list[Transition]:
    """Every change of the zone between two UTC instants, to the second."""
    found: list[Transition] = []
    before = _state(tz, start)
    moment = start
    while moment < end:
        following = moment + _STEP
        after = _state(tz, following)
        if after != before:
            low, high = moment, following
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if _state(tz, middle) == before:
                    low = middle
                else:
                    high = middle
            # DAYLIGHT is the part that moves clocks forward, whatever tzdata's flag says
            # (Europe/Dublin flags its winter time as the negative "daylight" one).
            dst = after[0] > before[0] if after[0] != before[0] else after[2]
            found.append(Transition(high, before[0], after[0], after[1], dst))
            before = after
        moment = following
    return found


def _ordinals(onset: datetime) -> set[int]:
    """The BYDAY ordinals that name this day in its month: nth, and -1 when it is the last."""
    ordinals = {(onset.day - 1) // 7 + 1}
    if onset.day + 7 > calendar.monthrange(onset.year, onset.month)[1]:
        ordinals.add(-1)
    return ordinals


def _group(changes: list[Transition]) -> list[_Observance]:
    """Gather transitions that repeat yearly on the same weekday rule."""
    groups: list[_Observance] = []
    for change in changes:
        onset = change.onset
        key = (
            change.dst, change.name, change.offset_from, change.offset_to,
            onset.month, onset.weekday(), onset.time(),
        )  # fmt: skip
        ordinals = _ordinals(onset)
        for group in groups:
            last = group.changes[-1].onset
            if group.key == key and last.year == onset.year - 1 and group.rules & ordinals:
                group.rules &= ordinals
                group.changes.append(change)
                break
        else:
            groups.append(_Observance(key, ordinals, [change]))
    return groups


def _component(change: Transition) -> TimezoneStandard | TimezoneDaylight:
    part = TimezoneDaylight() if change.dst else TimezoneStandard()
    part.add("dtstart", change.onset)
    part.add("tzname", change.name)
    part.add("tzoffsetfrom", change.offset_from)
    part.add("tzoffsetto", change.offset_to)
    return part


@lru_cache(maxsize=256)
def vtimezone(tzid: str, first_year: int, last_year: int) -> Timezone:
    """A VTIMEZONE valid from 1 January of ``first_year`` on, checked through ``last_year``.

    Cached: the same component object is returned for the same arguments; callers
    must not modify it.
    """
    tz = ZoneInfo(tzid)
    last_year = max(last_year, first_year + 1)
    scan_start = datetime(first_year - 1, 1, 1, tzinfo=UTC)
    final_year = last_year + 1
    changes = transitions(tz, scan_start, datetime(final_year + 1, 1, 1, tzinfo=UTC))
    component = Timezone()
    component.add("tzid", tzid)
    needed_from = datetime(first_year, 1, 1, tzinfo=UTC)
    if not changes or changes[0].at > needed_from:
        offset, name, dst = _state(tz, scan_start)
        component.add_component(_component(Transition(scan_start, offset, offset, name, dst)))
    singles: dict[tuple[object, ...], list[Transition]] = {}
    for group in _group(changes):
        first = group.changes[0]
        if len(group.changes) == 1:
            singles.setdefault(group.key[:4], []).append(first)
            continue
        part = _component(first)
        rule: dict[str, object] = {
            "FREQ": "YEARLY",
            "BYMONTH": first.onset.month,
            "BYDAY": f"{-1 if -1 in group.rules else min(group.rules)}"
            f"{_WEEKDAYS[first.onset.weekday()]}",
        }
        if group.changes[-1].onset.year < final_year:
            rule["UNTIL"] = group.changes[-1].at
        part.add("rrule", vRecur(rule))
        component.add_component(part)
    for same in singles.values():
        part = _component(same[0])
        for change in same[1:]:
            part.add("rdate", change.onset)
        component.add_component(part)
    return component
