"""The floor: what the libraries alone cost for the same corpus, with nothing else.

    python bench/floor.py DATA_DIR

Reads both YAML files with PyYAML's C loader, writes raw feedgen RSS and Atom for all news
and for each tag, and one raw icalendar calendar of all events with its VTIMEZONE. No
validation, no per-event files, no page, no JSON Feed. Prints seconds and peak RSS (MB).
"""

from __future__ import annotations

import resource
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from feedgen.feed import FeedGenerator
from icalendar import Calendar, Event, Timezone

LUX = ZoneInfo("Europe/Luxembourg")


def _when(value: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=LUX)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=LUX)
    return datetime.fromisoformat(str(value)).replace(tzinfo=LUX)


def _feed(items: list[dict[str, object]], title: str) -> tuple[bytes, bytes]:
    fg = FeedGenerator()
    fg.id("tag:example.org,2025:floor")
    fg.title(title)
    fg.link(href="https://example.org/", rel="alternate")
    fg.description("floor")
    fg.language("en")
    for item in items:
        fe = fg.add_entry(order="append")
        fe.id(f"tag:example.org,2025:{item['id']}")
        fe.title(str(item["title"]))
        fe.link(href=str(item.get("url") or "https://example.org/"))
        fe.description(str(item.get("summary", "")))
        when = _when(item["date"])
        fe.published(when)
        fe.updated(when)
    return fg.rss_str(), fg.atom_str()


def floor(data: Path) -> int:
    """Run the floor work; returns the number of bytes produced."""
    with (data / "news.yaml").open("rb") as handle:
        news = yaml.load(handle, Loader=yaml.CSafeLoader)["news"]
    with (data / "events.yaml").open("rb") as handle:
        events = yaml.load(handle, Loader=yaml.CSafeLoader)["events"]
    produced = 0
    rss, atom = _feed(news, "all")
    produced += len(rss) + len(atom)
    by_tag: dict[str, list[dict[str, object]]] = {}
    for item in news:
        for tag in item.get("tags") or []:
            by_tag.setdefault(tag, []).append(item)
    for tag, items in sorted(by_tag.items()):
        rss, atom = _feed(items, tag)
        produced += len(rss) + len(atom)
    cal = Calendar()
    cal.add("prodid", "-//floor//EN")
    cal.add("version", "2.0")
    cal.add_component(Timezone.from_tzid("Europe/Luxembourg"))
    for item in events:
        ev = Event()
        ev.add("uid", f"{item['id']}@example.org")
        ev.add("summary", str(item["title"]))
        start = item["start"]
        if isinstance(start, datetime) or (isinstance(start, str) and "T" in start):
            begin = _when(start)
            ev.add("dtstart", begin)
            ev.add("dtend", begin + timedelta(hours=1))
        else:
            ev.add("dtstart", start if isinstance(start, date) else date.fromisoformat(str(start)))
        ev.add("description", str(item.get("description", "")))
        ev.add("dtstamp", datetime(2026, 1, 1, tzinfo=LUX))
        cal.add_component(ev)
    produced += len(cal.to_ical())
    return produced


def main() -> None:
    """Print: seconds, peak RSS in MB, bytes produced."""
    start = time.perf_counter()
    produced = floor(Path(sys.argv[1]))
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{seconds:.3f} {peak_mb:.1f} {produced}")


if __name__ == "__main__":
    main()
