"""Validation: every mistake in the data gets one clear line naming file, line and field."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cccn_feeds.cli import main
from cccn_feeds.errors import DataError
from cccn_feeds.load import parse_yaml
from cccn_feeds.validate import load_content, validate_documents

INVALID = Path(__file__).parent / "invalid"
ROOT = Path(__file__).resolve().parent.parent
LUX = ZoneInfo("Europe/Luxembourg")
CASES = sorted(p.name for p in INVALID.glob("*.yaml"))


def _run_validate(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    kind = case.split("-", 1)[0]
    other = "events" if kind == "news" else "news"
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(INVALID / case, data / f"{kind}.yaml")
    (data / f"{other}.yaml").write_text(f"{other}: []\n")
    monkeypatch.chdir(tmp_path)
    code = main(["validate"])
    return code, capsys.readouterr().err


class TestInvalidCorpus:
    """Each file under tests/invalid/ gives exactly the lines in its .expected file."""

    @pytest.mark.parametrize("case", CASES)
    def test_exact_messages(
        self,
        case: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        code, err = _run_validate(tmp_path, case, monkeypatch, capsys)
        expected_file = INVALID / case.replace(".yaml", ".expected")
        if os.environ.get("CCCN_UPDATE_GOLDEN") == "1":
            expected_file.write_text(err)
        assert code == 1
        assert "Traceback" not in err
        assert err == expected_file.read_text()

    def test_corpus_is_not_empty(self) -> None:
        assert len(CASES) >= 25


class TestValidData:
    """The real data and the examples are valid."""

    @pytest.mark.parametrize("folder", ["data", "examples"])
    def test_folder_validates(self, folder: str) -> None:
        content = load_content(ROOT / folder, LUX)
        assert content.news and content.events

    def test_real_content_matches_the_page(self) -> None:
        content = load_content(ROOT / "data", LUX)
        dates = {n.id: n.date.date() for n in content.news}
        assert sorted(dates.values()) == [date(2025, 3, 9), date(2025, 12, 8), date(2025, 12, 15)]
        sources = {n.source for n in content.news}
        assert sources == {"Institut National du Cancer", "Luxembourg Institute of Health"}
        assert [n.date.date() for n in content.news] == sorted(dates.values(), reverse=True)


def _doc(text: str) -> object:
    return parse_yaml(text, "data/events.yaml")


class TestForms:
    """Date forms YAML reads differently are treated alike; YAML 1.1 traps are closed."""

    def test_minutes_and_seconds_forms_are_both_timed(self) -> None:
        events = _doc(
            "events:\n"
            "  - {id: a, title: A, start: 2026-06-15T09:00}\n"
            "  - {id: b, title: B, start: '2025-04-01T10:15:00'}\n"
            "  - {id: c, title: C, start: 2025-04-01T10:15:00}\n"
        )
        content = validate_documents({"news": []}, events, LUX)
        starts = {e.id: e.start for e in content.events}
        assert starts["a"] == datetime(2026, 6, 15, 9, 0, tzinfo=LUX)
        assert starts["b"] == starts["c"] == datetime(2025, 4, 1, 10, 15, tzinfo=LUX)
        assert all(not e.all_day for e in content.events)

    def test_offsets_are_converted_to_the_event_zone(self) -> None:
        events = _doc(
            "events:\n"
            "  - {id: a, title: A, start: 2026-06-15T07:00Z}\n"
            "  - {id: b, title: B, start: '2026-06-15T09:00+02:00'}\n"
        )
        content = validate_documents({"news": []}, events, LUX)
        for event in content.events:
            assert isinstance(event.start, datetime)
            assert event.start.astimezone(UTC).hour == 7
            assert event.start.tzinfo == LUX

    def test_yes_no_words_stay_text(self) -> None:
        news = parse_yaml(
            "news:\n  - {id: a, title: No, date: 2025-03-09, source: On}\n", "data/news.yaml"
        )
        content = validate_documents(news, {"events": []}, LUX)
        assert content.news[0].title == "No"
        assert content.news[0].source == "On"

    def test_all_day_defaults_to_one_day_and_timed_to_one_hour(self) -> None:
        events = _doc(
            "events:\n"
            "  - {id: a, title: A, start: 2026-06-15}\n"
            "  - {id: b, title: B, start: 2026-06-15T09:00}\n"
        )
        by_id = {e.id: e for e in validate_documents({"news": []}, events, LUX).events}
        assert by_id["a"].end == date(2026, 6, 15)
        assert by_id["a"].dtend_exclusive == date(2026, 6, 16)
        assert by_id["b"].end == datetime(2026, 6, 15, 10, 0, tzinfo=LUX)

    def test_every_problem_is_reported_in_one_run(self) -> None:
        events = _doc(
            "events:\n"
            "  - {id: a, title: A, start: 2025-02-30}\n"
            "  - {id: B, title: B, start: 2026-01-01}\n"
            "  - {id: c, start: 2026-01-01, colour: red}\n"
        )
        news = parse_yaml("news:\n  - {id: n, title: N, date: nope}\n", "data/news.yaml")
        with pytest.raises(DataError) as caught:
            validate_documents(news, events, LUX)
        fields = [p.field for p in caught.value.problems]
        assert fields == [
            "events[0].start",
            "events[1].id",
            "events[2].colour",
            "events[2].title",
            "news[0].date",
        ]


class TestYamlValues:
    """What the YAML loader gives before validation looks at it."""

    def test_a_bad_explicit_tag_is_a_yaml_error_at_its_place(self) -> None:
        for text, tag in (("title: !!int x", "int"), ("title: !!bool maybe", "bool"),
                          ("title: !!timestamp nope", "timestamp")):  # fmt: skip
            with pytest.raises(DataError) as caught:
                parse_yaml(f"events:\n  - id: a\n    {text}\n", "data/events.yaml")
            (problem,) = caught.value.problems
            assert (problem.line, problem.column) == (3, 12)
            assert f"is not a valid !!{tag}" in problem.message

    def test_deep_nesting_still_loads(self) -> None:
        """Text taken straight from the nodes costs no call per level of nesting."""
        assert parse_yaml("[" * 200 + "x" + "]" * 200, "f") is not None
        assert parse_yaml("{a: " * 300 + "x" + "}" * 300, "f") is not None
        with pytest.raises(DataError, match="nests too deeply"):
            parse_yaml("[" * 900 + "]" * 900, "f")
