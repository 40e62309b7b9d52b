"""The service's builds run in a child process: same outputs, same errors, none of the
build left in the service."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import cccn_feeds.build
from cccn_feeds.build import build
from cccn_feeds.errors import DataError, LockedError
from cccn_feeds.isolated import build_in_child
from cccn_feeds.publish import output_lock
from cccn_feeds.service import Service
from cccn_feeds.settings import Settings
from tests.conftest import EXAMPLE_NOW, make_settings


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".state" not in p.parts
    }


def test_the_service_builds_in_a_child(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = make_settings(settings.paths.data_dir, tmp_path / "reference")
    expected = build(reference, now=EXAMPLE_NOW)

    def not_here(*_: object, **__: object) -> None:
        raise AssertionError("built in the service's own process")

    monkeypatch.setattr(cccn_feeds.build, "build", not_here)
    record = Service(settings, clock=lambda: EXAMPLE_NOW).build_job("start")
    assert record.ok, record.errors
    assert (record.news, record.events, record.forthcoming) == (
        expected.news, expected.events, expected.forthcoming,
    )  # fmt: skip
    assert record.written == len(expected.report.written)
    assert _files(settings.paths.output_dir) == _files(reference.paths.output_dir)


def test_data_errors_keep_their_problems(settings: Settings) -> None:
    news = settings.paths.data_dir / "news.yaml"
    news.write_text(
        news.read_text(encoding="utf-8").replace("date: 2027-", "date: 2027-13-", 1),
        encoding="utf-8",
    )
    with pytest.raises(DataError) as here:
        build(settings, now=EXAMPLE_NOW)
    with pytest.raises(DataError) as there:
        build_in_child(settings, EXAMPLE_NOW)
    assert there.value.problems == here.value.problems
    assert str(there.value) == str(here.value)
    assert "news.yaml:" in str(there.value)
    assert not settings.paths.output_dir.exists()


def test_a_held_lock_is_reported(settings: Settings) -> None:
    with output_lock(settings.paths.state_dir), pytest.raises(LockedError):
        build_in_child(settings, EXAMPLE_NOW, lock_wait=0.2)


def test_a_child_without_an_answer_is_a_failure(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(RuntimeError, match=r"without an answer \(exit status 1\)"):
        build_in_child(settings, EXAMPLE_NOW)


def test_nothing_changed_starts_no_child(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Service(settings, clock=lambda: EXAMPLE_NOW)
    assert service.build_job("start").ok
    monkeypatch.setattr(sys, "executable", "/bin/false")  # a child would fail
    again = service.build_job("schedule")
    assert again.ok and "nothing changed" in again.summary
    news = settings.paths.data_dir / "news.yaml"
    news.write_text(news.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    changed = service.build_job("change")
    assert not changed.ok and "without an answer" in changed.errors[0]
