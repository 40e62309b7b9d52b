"""A deterministic synthetic corpus: N news and M events with realistic text.

    python bench/corpus.py OUT_DIR --news 10000 --events 2000

Same arguments, same bytes. Events mix all-day, timed, multi-day, recurring and cancelled
ones; descriptions are long Markdown. Every item is invented (example.org addresses).
"""

from __future__ import annotations

import argparse
import random
from datetime import date, datetime, timedelta
from pathlib import Path

TAGS = ["EUnetCCC", "CCI4EU", "UNCAN.eu", "CANDLE", "JANE-2", "ECHoS", "EU-CIP", "JAPCM",
        "Precision oncology", "Prevention", "Survivorship", "Data", "Clinical trials"]  # fmt: skip
WORDS = str.split(
    "cancer care research network centre patients data oncology national european "
    "precision prevention diagnosis treatment survivorship quality access standards "
    "translational clinical trial biopsy sequencing registry hub mission expertise "
    "partners consortium workshop meeting designation pilot luxembourg institute health"
)
SOURCES = ["Institut National du Cancer", "Luxembourg Institute of Health", "EUnetCCC", ""]
PLACES = ["Example Hall", "Example Auditorium", "Example Room 2", "Example Centre"]


def sentence(rng: random.Random, low: int = 6, high: int = 16) -> str:
    """A sentence of plausible words."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize() + "."


def markdown(rng: random.Random, paragraphs: int) -> str:
    """A few paragraphs with emphasis, a link and a list."""
    parts = []
    for i in range(paragraphs):
        text = " ".join(sentence(rng) for _ in range(rng.randint(2, 5)))
        if i == 0:
            text = text.replace(" ", " **", 1).replace(" ", "** ", 2)
        parts.append(text)
    parts.append(f"- {sentence(rng, 3, 6)}\n- {sentence(rng, 3, 6)}")
    parts.append(f"More on [the example site](https://example.org/more/{rng.randint(1, 999)}).")
    return "\n\n".join(parts)


def quote(text: str) -> str:
    """A YAML double-quoted scalar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def block(text: str, indent: int = 6) -> str:
    """A YAML literal block."""
    pad = " " * indent
    return "|\n" + "\n".join(pad + line if line else "" for line in text.splitlines())


def news_yaml(rng: random.Random, count: int) -> str:
    """The news file."""
    start = datetime(2020, 1, 1, 8, 0)
    lines = ["news:"]
    for i in range(count):
        when = start + timedelta(minutes=97 * i + rng.randint(0, 50))
        if when.hour < 6:  # office hours; also keeps clear of the daylight-saving gap
            when += timedelta(hours=6)
        tags = rng.sample(TAGS, rng.randint(0, 3))
        lines.append(f"  - id: news-{i:06d}")
        lines.append(f"    title: {quote(sentence(rng, 4, 10)[:-1])}")
        stamp = when.date().isoformat() if i % 5 == 0 else when.strftime("%Y-%m-%dT%H:%M")
        lines.append(f"    date: {stamp}")
        if i % 3:
            lines.append(f"    url: https://example.org/news/{i}")
        source = rng.choice(SOURCES)
        if source:
            lines.append(f"    source: {source}")
        lines.append(f"    summary: {quote(sentence(rng))}")
        if i % 4 == 0:
            lines.append(f"    body: {block(markdown(rng, rng.randint(1, 3)))}")
        if tags:
            lines.append(f"    tags: [{', '.join(quote(t) for t in tags)}]")
    return "\n".join(lines) + "\n"


def events_yaml(rng: random.Random, count: int, today: date) -> str:
    """The events file: a spread of past and future events of every kind."""
    lines = ["events:"]
    for i in range(count):
        day = today + timedelta(days=rng.randint(-400, 400))
        kind = i % 6
        lines.append(f"  - id: event-{i:06d}")
        lines.append(f"    title: {quote(sentence(rng, 3, 8)[:-1])}")
        if kind == 0:
            lines.append(f"    start: {day.isoformat()}")
        elif kind == 1:
            lines.append(f"    start: {day.isoformat()}")
            lines.append(f"    end: {(day + timedelta(days=rng.randint(1, 3))).isoformat()}")
        elif kind == 4:
            lines.append(f"    start: {day.isoformat()}T{rng.randint(8, 17):02d}:00")
            lines.append(f"    rrule: FREQ=WEEKLY;COUNT={rng.randint(2, 8)}")
        else:
            hour = rng.randint(8, 17)
            lines.append(f"    start: {day.isoformat()}T{hour:02d}:{rng.choice(['00', '30'])}")
            lines.append(f"    end: {day.isoformat()}T{hour + 1:02d}:45")
        if kind == 5:
            lines.append("    status: cancelled")
        lines.append(f"    location: {rng.choice(PLACES)}")
        if i % 2:
            lines.append(f"    url: https://example.org/events/{i}")
        lines.append(f"    description: {block(markdown(rng, rng.randint(2, 4)))}")
        tags = rng.sample(TAGS, rng.randint(0, 2))
        if tags:
            lines.append(f"    tags: [{', '.join(quote(t) for t in tags)}]")
    return "\n".join(lines) + "\n"


def write_corpus(out: Path, news: int, events: int, today: date = date(2026, 11, 1)) -> None:
    """Write news.yaml and events.yaml into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "news.yaml").write_text(news_yaml(random.Random(1), news), encoding="utf-8")
    (out / "events.yaml").write_text(events_yaml(random.Random(2), events, today), encoding="utf-8")


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--news", type=int, default=10000)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    write_corpus(args.out, args.news, args.events)


if __name__ == "__main__":
    main()
