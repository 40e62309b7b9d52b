"""The event model: occurrences, series ends and DST, as calendar apps compute them."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from cccn_feeds.model import Event

LUX = ZoneInfo("Europe/Luxembourg")


def _series(rrule: str, exdates: tuple[datetime, ...] = ()) -> Event:
    return Event(
        id="s",
        title="S",
        start=datetime(2027, 3, 12, 18, 0, tzinfo=LUX),
        end=datetime(2027, 3, 12, 19, 0, tzinfo=LUX),
        all_day=False,
        timezone=LUX,
        rrule=rrule,
        exdates=exdates,
    )


class TestSeries:
    """UNTIL in UTC, EXDATE and the daylight-saving change inside a series."""

    def test_utc_until_includes_the_last_local_occurrence(self) -> None:
        series = _series(
            "FREQ=WEEKLY;UNTIL=20270409T160000Z", (datetime(2027, 4, 2, 18, 0, tzinfo=LUX),)
        )
        assert series.last_end() == datetime(2027, 4, 9, 19, 0, tzinfo=LUX)
        assert series.next_start(datetime(2027, 4, 5, tzinfo=LUX)) == datetime(
            2027, 4, 9, 18, 0, tzinfo=LUX
        )

    def test_wall_clock_time_is_kept_across_the_change(self) -> None:
        series = _series("FREQ=WEEKLY;COUNT=4")
        starts = series.occurrences(datetime(2027, 3, 1, tzinfo=LUX), 4)
        assert [s.hour for s in starts] == [18, 18, 18, 18]
        assert [s.utcoffset().total_seconds() / 3600 for s in starts] == [1, 1, 1, 2]  # type: ignore[union-attr]

    def test_excluded_last_occurrence_ends_the_series_earlier(self) -> None:
        series = _series("FREQ=WEEKLY;COUNT=2", (datetime(2027, 3, 19, 18, 0, tzinfo=LUX),))
        assert series.last_end() == datetime(2027, 3, 12, 19, 0, tzinfo=LUX)


def test_all_day_event_ends_at_the_next_midnight() -> None:
    event = Event(
        id="a", title="A", start=date(2027, 3, 27), end=date(2027, 3, 28), all_day=True,
        timezone=LUX,
    )  # fmt: skip
    assert event.ends_at == datetime(2027, 3, 29, 0, 0, tzinfo=LUX)
    assert event.is_forthcoming(datetime(2027, 3, 28, 23, 59, tzinfo=LUX))
    assert not event.is_forthcoming(datetime(2027, 3, 29, 0, 0, tzinfo=LUX))
