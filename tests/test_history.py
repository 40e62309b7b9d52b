"""History: SEQUENCE, LAST-MODIFIED and tombstones move only when the content does."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cccn_feeds.history import History, advance, event_from_dict, event_to_dict
from cccn_feeds.model import Event, Geo, Location, Organizer

LUX = ZoneInfo("Europe/Luxembourg")
T0 = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)


def _event(**changes: object) -> Event:
    base = Event(
        id="e",
        title="Talk",
        start=datetime(2027, 3, 29, 10, 0, tzinfo=LUX),
        end=datetime(2027, 3, 29, 11, 0, tzinfo=LUX),
        all_day=False,
        timezone=LUX,
        location=Location("Room", "1 Street", Geo(49.6, 6.1)),
        organizer=Organizer("LIH", "x@example.org"),
        tags=("A",),
        rrule="FREQ=WEEKLY;COUNT=2",
        exdates=(datetime(2027, 4, 5, 10, 0, tzinfo=LUX),),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


class TestRevisions:
    """Unchanged events keep their revision; changed ones bump SEQUENCE."""

    def test_life_cycle(self) -> None:
        first = advance(History(), (_event(),), T0, 30)
        rev = first.revisions["e"]
        assert (rev.sequence, rev.created, rev.last_modified) == (0, T0, T0)
        later = T0 + timedelta(hours=1)
        same = advance(History.from_json(first.history.to_json()), (_event(),), later, 30)
        assert same.revisions["e"] == rev
        moved = advance(same.history, (_event(title="Talk (moved)"),), later, 30)
        assert moved.revisions["e"].sequence == 1
        assert moved.revisions["e"].last_modified == later
        assert moved.revisions["e"].created == T0

    def test_deleted_event_becomes_a_cancelled_tombstone_then_goes(self) -> None:
        first = advance(History(), (_event(),), T0, 30)
        gone = advance(first.history, (), T0 + timedelta(days=1), 30)
        assert [t.status for t in gone.tombstones] == ["cancelled"]
        assert gone.revisions["e"].sequence == 1
        still = advance(gone.history, (), T0 + timedelta(days=20), 30)
        assert still.revisions["e"] == gone.revisions["e"]
        expired = advance(still.history, (), T0 + timedelta(days=31, seconds=1), 30)
        assert expired.tombstones == ()
        assert "e" not in expired.revisions
        back = advance(expired.history, (_event(),), T0 + timedelta(days=40), 30)
        assert back.revisions["e"].sequence == 2


def test_snapshot_round_trip() -> None:
    for event in (
        _event(),
        _event(
            start=date(2027, 3, 26),
            end=date(2027, 3, 27),
            all_day=True,
            exdates=(),
            rrule="",
            location=None,
            organizer=None,
        ),
    ):
        again = event_from_dict(event_to_dict(event))
        assert again == dataclasses.replace(event, line=0)


def test_a_deleted_past_event_leaves_without_a_cancellation() -> None:
    """Deleting an event that already took place must not announce it as cancelled."""
    first = advance(History(), (_event(rrule="", exdates=()),), T0, 30)
    after = datetime(2027, 4, 1, tzinfo=UTC)
    gone = advance(first.history, (), after, 30)
    assert gone.tombstones == ()
    assert "e" not in gone.revisions
    back = advance(gone.history, (_event(),), after, 30)
    assert back.revisions["e"].sequence == 2


class TestKnownText:
    """An event whose text did not change keeps its recorded hash without computing it."""

    def test_unchanged_text_skips_the_hash(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from cccn_feeds import history

        first = advance(History(), (_event(),), T0, 30, (), {"e": "key-1"})
        stored = History.from_json(first.history.to_json())
        assert stored.events["e"].source == "key-1"
        calls: list[str] = []
        real = history.content_hash
        monkeypatch.setattr(history, "content_hash", lambda e: calls.append(e.id) or real(e))
        same = advance(stored, (_event(),), T0 + timedelta(hours=1), 30, (), {"e": "key-1"})
        assert calls == [] and same.history.same_records(stored)
        moved = advance(
            stored, (_event(title="Moved"),), T0 + timedelta(hours=2), 30, (), {"e": "key-2"}
        )
        assert calls == ["e"] and moved.revisions["e"].sequence == 1
        # Another text with the same content (a comment, say): same revision, new key.
        reworded = advance(stored, (_event(),), T0 + timedelta(hours=3), 30, (), {"e": "k3"})
        assert reworded.revisions["e"] == first.revisions["e"]
        assert reworded.history.events["e"].source == "k3"

    def test_histories_without_keys_or_with_unknown_fields_load(self) -> None:
        first = advance(History(), (_event(),), T0, 30)
        data = first.history.to_json()
        del data["events"]["e"]["source"]
        data["events"]["e"]["added_later"] = 1
        loaded = History.from_json(data)
        assert loaded.events["e"].hash == first.history.events["e"].hash
        again = advance(loaded, (_event(),), T0, 30, (), {"e": "key"})
        assert again.revisions["e"] == first.revisions["e"]
