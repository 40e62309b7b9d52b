"""The service's builds run in a child process: same outputs, same errors, none of the
build left in the service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cccn_feeds.build
import cccn_feeds.codekey
from cccn_feeds.build import BuildResult, build
from cccn_feeds.errors import CccnError, DataError, LockedError
from cccn_feeds.isolated import _sendable, build_in_child
from cccn_feeds.publish import output_lock
from cccn_feeds.service import Service
from cccn_feeds.settings import Settings
from tests.conftest import EXAMPLE_NOW, make_settings, output_folder


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
    assert output_folder(settings.paths.output_dir) == output_folder(reference.paths.output_dir)


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


def _in_thread(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, to_child: Callable[[int], None]
) -> BuildResult | BaseException:
    """``build_in_child`` in a thread; ``to_child`` gets the child's pid as soon as it
    exists. The build's result, or what it raised."""
    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        child = real(*args, **kwargs)
        started.append(child)
        return child

    monkeypatch.setattr(subprocess, "Popen", popen)
    outcome: list[BuildResult | BaseException] = []

    def run() -> None:
        try:
            outcome.append(build_in_child(settings, EXAMPLE_NOW))
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while not started and time.monotonic() < deadline:
        time.sleep(0.001)
    assert started, "no child process was started"
    to_child(started[0].pid)
    thread.join(60)
    assert outcome
    return outcome[0]


def test_the_child_ignores_stop_signals_from_its_start(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def signal_at_once(pid: int) -> None:
        for _ in range(20):  # from the child's first milliseconds to well into the build
            for number in (signal.SIGTERM, signal.SIGINT):
                os.kill(pid, number)
            time.sleep(0.01)

    result = _in_thread(settings, monkeypatch, signal_at_once)
    assert isinstance(result, BuildResult) and not result.skipped, result
    assert (settings.paths.output_dir / "index.html").is_file()


def test_a_child_killed_at_its_start_is_reported_and_changes_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(settings, now=EXAMPLE_NOW)
    before = output_folder(settings.paths.output_dir)
    news = settings.paths.data_dir / "news.yaml"
    news.write_text(news.read_text(encoding="utf-8").replace("title: ", "title: New ", 1))
    result = _in_thread(settings, monkeypatch, lambda pid: os.kill(pid, signal.SIGKILL))
    assert isinstance(result, RuntimeError)
    assert "without an answer (killed by SIGKILL)" in str(result)
    assert output_folder(settings.paths.output_dir) == before


def test_a_stray_package_in_the_working_folder_is_not_imported(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stray = tmp_path / "elsewhere"
    stray.mkdir()
    for name in ("cccn_feeds.py", "signal.py"):  # signal: imported before the path is set
        (stray / name).write_text("raise SystemExit(3)\n", encoding="utf-8")
    monkeypatch.chdir(stray)
    assert not build_in_child(settings, EXAMPLE_NOW).skipped


def test_changed_program_files_are_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cccn_feeds.codekey, "code_key", lambda: "the files at start")
    with pytest.raises(CccnError, match="restart the service"):
        build_in_child(settings, EXAMPLE_NOW)
    assert not settings.paths.output_dir.exists()


class _TwoArguments(Exception):
    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first}/{second}")


def test_an_error_that_cannot_be_pickled_keeps_its_name_and_message() -> None:
    sent = _sendable(_TwoArguments("one", "two"))
    assert isinstance(sent, RuntimeError) and str(sent) == "_TwoArguments: one/two"
    error = DataError([])
    assert _sendable(error) is error
