"""Property tests: any document ends in a model or a clean DataError, never another exception."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cccn_feeds.errors import DataError
from cccn_feeds.load import parse_yaml
from cccn_feeds.model import Content
from cccn_feeds.validate import EVENT_FIELDS, NEWS_FIELDS, validate_documents

LUX = ZoneInfo("Europe/Luxembourg")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "2025-12-08", "2026-06-15T09:00", "2025-04-01T10:15:00", "2025-02-30",
            "2027-03-28T02:30", "2026-06-15T09:00Z", "2026-06-15T09:00+02:00", "24:00",
            "FREQ=WEEKLY;COUNT=3", "FREQ=DAILY;UNTIL=20270101T000000Z", "Europe/Paris",
            "https://example.org/a", "javascript:alert(1)", "a-b", "confirmed", "cancelled",
            "\x00", "]]>", "<b>x</b>", "x\ny",
        ]
    ),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def item(fields: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Mappings using mostly known field names with arbitrary values."""
    return st.dictionaries(st.sampled_from([*fields, "extra", "x-note"]), values, max_size=8)


def check(news: Any, events: Any) -> None:
    try:
        content = validate_documents(news, events, LUX)
    except DataError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file.endswith((".yaml",))
            assert problem.message
    else:
        assert isinstance(content, Content)


class TestValidatorFuzz:
    """Arbitrary structures reach a model or a DataError."""

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.one_of(values, st.fixed_dictionaries({"news": st.lists(item(NEWS_FIELDS), max_size=3)})),
        st.one_of(
            values, st.fixed_dictionaries({"events": st.lists(item(EVENT_FIELDS), max_size=3)})
        ),
    )
    def test_structures(self, news: Any, events: Any) -> None:
        check(news, events)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(item(EVENT_FIELDS), max_size=3))
    def test_round_trip_through_yaml_text(self, events: list[dict[str, Any]]) -> None:
        text = yaml.safe_dump({"events": events}, allow_unicode=True)
        try:
            doc = parse_yaml(text, "data/events.yaml")
        except DataError:
            return
        check({"news": []}, doc)


class TestLoaderFuzz:
    """Arbitrary text is parsed or refused with a located DataError."""

    @settings(max_examples=400, deadline=None)
    @given(st.text(alphabet=st.sampled_from([*"ab:- \n\"'[]{}#&*!|>%@`\t,?2025-T", "é"])))
    def test_text(self, text: str) -> None:
        try:
            doc = parse_yaml(text, "data/news.yaml")
        except DataError as exc:
            assert all(p.file == "data/news.yaml" for p in exc.problems)
            return
        check(doc, {"events": []})
