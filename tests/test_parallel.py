"""Builds on two cores (cccn_feeds.parallel): the same files and state as on one core, and a
failure in the helper process leaves the published folder as it was."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cccn_feeds import parallel
from cccn_feeds.build import build
from tests.conftest import EXAMPLE_NOW, make_settings


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "lock"
    }


def _one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "may_fork", lambda: False)


def test_two_cores_give_the_files_and_state_of_one(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    settings = make_settings(data_dir, tmp_path / "out")
    with monkeypatch.context() as one_core:
        _one_core(one_core)
        build(settings, now=EXAMPLE_NOW)
    one = _files(tmp_path / "out")
    shutil.rmtree(tmp_path / "out")
    result = build(settings, now=EXAMPLE_NOW)
    assert forks, "the build did not use a helper process"
    assert result.report.written
    both = _files(tmp_path / "out")
    assert one.keys() == both.keys()
    for path in one:  # the state too: manifest with input keys, stored values, history
        assert one[path] == both[path], path
    # The next build finds everything the helper made reusable, as for one core.
    (data_dir / "news.yaml").write_text(
        (data_dir / "news.yaml").read_text(encoding="utf-8").replace("Example:", "Example -", 1),
        encoding="utf-8",
    )
    again = build(settings, now=EXAMPLE_NOW)
    assert again.report.written and again.report.unchanged
    assert not any(p.endswith(".ics") for p in again.report.written)


def test_a_failing_helper_leaves_the_output_as_it_was(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    settings = make_settings(data_dir, tmp_path / "out")
    build(settings, now=EXAMPLE_NOW)
    before = _files(tmp_path / "out")
    from cccn_feeds.render import html

    def broken(ctx: object) -> dict[str, bytes]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(html, "render", broken)
    with pytest.raises(Exception, match="No space left on device"):
        build(settings, now=EXAMPLE_NOW, force=True)
    assert forks
    assert _files(tmp_path / "out") == before
    leftovers = [p for p in (tmp_path / "out").rglob(".*.tmp")]
    assert not leftovers


def test_a_threaded_process_builds_on_one_core(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []
    monkeypatch.setattr(parallel.os, "fork", lambda: started.append(1) or 0)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        build(make_settings(data_dir, tmp_path / "out"), now=EXAMPLE_NOW)
    finally:
        stop.set()
        other.join()
    assert not started


def _corpus(folder: Path, news: int) -> Path:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from corpus import write_corpus

    write_corpus(folder, news, news // 5)
    return folder


def test_parsing_on_two_cores_gives_the_same_content(tmp_path: Path, forks: list[int]) -> None:
    from cccn_feeds.parsecache import _PARALLEL_FROM, load_content_cached
    from cccn_feeds.validate import load_content
    from tests.conftest import LUX

    data = _corpus(tmp_path / "data", _PARALLEL_FROM)
    both = load_content_cached(data, LUX, tmp_path / "cache.pickle")
    assert forks, "parsing did not use a helper process"
    one = load_content(data, LUX)
    assert both.news == one.news and both.events == one.events
    assert [n.line for n in both.news] == [n.line for n in one.news]


def test_a_mistake_in_the_helpers_half_gives_the_usual_message(
    tmp_path: Path, forks: list[int]
) -> None:
    from cccn_feeds.errors import DataError
    from cccn_feeds.parsecache import _PARALLEL_FROM, load_content_cached
    from cccn_feeds.validate import load_content
    from tests.conftest import LUX

    data = _corpus(tmp_path / "data", _PARALLEL_FROM)
    news = data / "news.yaml"
    text = news.read_text(encoding="utf-8")
    last = text.rindex("    date: ")
    news.write_text(text[:last] + "    date: 2025-02-30\n" + text[last:].split("\n", 1)[1])
    with pytest.raises(DataError) as canonical:
        load_content(data, LUX)
    with pytest.raises(DataError) as fast:
        load_content_cached(data, LUX, tmp_path / "cache.pickle")
    assert forks
    assert fast.value.problems == canonical.value.problems
    assert [p.field for p in canonical.value.problems] == [f"news[{_PARALLEL_FROM - 1}].date"]


def test_parallel_false_keeps_a_build_in_one_process(
    data_dir: Path, tmp_path: Path, forks: list[int]
) -> None:
    settings = make_settings(data_dir, tmp_path / "out", build={"parallel": False})
    assert build(settings, now=EXAMPLE_NOW).report.written
    assert not forks


def _published(folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in _files(folder).items() if not k.startswith(".state/")}


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp") if ".state" not in p.parts]


def _edit_everything(data_dir: Path) -> None:
    """Change every item, so that every output is staged again."""
    for name in ("news.yaml", "events.yaml"):
        path = data_dir / name
        path.write_text(path.read_text(encoding="utf-8").replace("Example", "Exemple"))


def _broken_midway(
    data_dir: Path,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: Any,
    at: int,
    fail: Callable[[], None],
) -> BaseException:
    """Publish, edit every item, then build again with ``fail`` called when ``module``'s
    ``stream`` reaches output number ``at``: what the build raised. The published folder
    must stay as it was, without a temporary file there or in the state folder."""
    settings = make_settings(data_dir, out)
    build(settings, now=EXAMPLE_NOW)
    before = _published(out)
    real = module.stream

    def breaking(ctx: object, *kind: str):  # type: ignore[no-untyped-def]
        for number, output in enumerate(real(ctx, *kind)):
            if number == at:
                fail()
            yield output

    monkeypatch.setattr(module, "stream", breaking)
    _edit_everything(data_dir)
    with pytest.raises(BaseException) as raised:
        build(settings, now=EXAMPLE_NOW)
    assert not _temporaries(out)
    assert not list(settings.paths.state_dir.glob(".*.tmp"))  # the render store's too
    assert _published(out) == before
    return raised.value


def test_an_interrupt_leaves_no_temporary_file(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    """Ctrl-C while the feeds render: the helper is stopped and its files removed."""
    from cccn_feeds.render import feeds

    def interrupt() -> None:
        time.sleep(0.3)  # the helper is staging its files meanwhile
        raise KeyboardInterrupt

    raised = _broken_midway(data_dir, tmp_path / "out", monkeypatch, feeds, 5, interrupt)
    assert isinstance(raised, KeyboardInterrupt)
    assert forks


def test_a_killed_helper_leaves_no_temporary_file(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    import signal

    from cccn_feeds.render import ics

    def die() -> None:
        assert _temporaries(tmp_path / "out"), "nothing staged yet"
        os.kill(os.getpid(), signal.SIGKILL)

    raised = _broken_midway(data_dir, tmp_path / "out", monkeypatch, ics, 3, die)
    assert isinstance(raised, RuntimeError) and "without an answer" in str(raised)
    assert forks


def test_the_parallel_setting_does_not_change_what_was_built(
    data_dir: Path, tmp_path: Path, forks: list[int]
) -> None:
    """[build] parallel says how to build, not what: switching it skips a current build."""
    build(make_settings(data_dir, tmp_path / "out"), now=EXAMPLE_NOW)
    again = build(
        make_settings(data_dir, tmp_path / "out", build={"parallel": False}), now=EXAMPLE_NOW
    )
    assert again.skipped


def test_a_rebuild_on_two_cores_keeps_the_state_of_one(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    """After an edit, each side stores what it used (the helper its own side's values);
    the state written is still that of a rebuild on one core."""
    from cccn_feeds import renderstore

    # Store every value the build used, however few are new, so that the state shows them.
    monkeypatch.setattr(renderstore, "_worth_writing", lambda *_: True)
    out = tmp_path / "out"
    settings = make_settings(data_dir, out)
    build(settings, now=EXAMPLE_NOW)
    shutil.copytree(out, tmp_path / "before", symlinks=True)
    events = data_dir / "events.yaml"
    events.write_text(events.read_text(encoding="utf-8").replace("Example", "Exemple"))
    with monkeypatch.context() as one_core:
        _one_core(one_core)
        build(settings, now=EXAMPLE_NOW)
    one = _files(out)
    shutil.rmtree(out)
    shutil.copytree(tmp_path / "before", out, symlinks=True)
    forks.clear()
    result = build(settings, now=EXAMPLE_NOW)
    assert forks and result.report.written and result.report.unchanged
    both = _files(out)
    assert one.keys() == both.keys()
    for path in one:
        assert one[path] == both[path], path


def test_a_parse_helper_that_dies_falls_back_to_the_whole_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    import signal

    from cccn_feeds import parsecache
    from cccn_feeds.parsecache import _PARALLEL_FROM, load_content_cached
    from cccn_feeds.validate import load_content
    from tests.conftest import LUX

    data = _corpus(tmp_path / "data", _PARALLEL_FROM)
    real = parsecache._validate_piece
    parent = os.getpid()

    def validate(*args: object) -> object:
        if os.getpid() != parent:  # in the helper
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(parsecache, "_validate_piece", validate)
    content = load_content_cached(data, LUX, tmp_path / "cache.pickle")
    assert forks
    assert content.news == load_content(data, LUX).news


def test_a_build_on_two_cores_keeps_what_its_caller_froze(
    data_dir: Path, tmp_path: Path, forks: list[int]
) -> None:
    """The build leaves shared objects out of the garbage collector while the helper runs
    (gc.freeze), and lets them back after: not those a caller had frozen itself."""
    import gc

    marker: list[object] = []  # tracked by the collector, unless frozen
    gc.freeze()
    try:
        assert not any(found is marker for found in gc.get_objects())
        build(make_settings(data_dir, tmp_path / "out"), now=EXAMPLE_NOW)
        assert forks
        assert not any(found is marker for found in gc.get_objects())  # still frozen
    finally:
        gc.unfreeze()
    assert any(found is marker for found in gc.get_objects())
    build(make_settings(data_dir, tmp_path / "out"), now=EXAMPLE_NOW, force=True)
    assert gc.get_freeze_count() == 0


def test_the_parse_cache_is_written_once_by_the_first_side_done(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    """On two cores, whichever process is done with its side first writes the parse
    cache, while the other still renders: once, and a rebuild then parses nothing."""
    from cccn_feeds import parsecache

    log = tmp_path / "writers.log"
    real = parsecache.take_pending

    def take_pending(path: Path) -> Callable[[], None]:
        write = real(path)

        def logged() -> None:
            with log.open("a", encoding="utf-8") as handle:
                handle.write(f"{os.getpid()}\n")
            write()

        return logged

    monkeypatch.setattr(parsecache, "take_pending", take_pending)
    settings = make_settings(data_dir, tmp_path / "out")
    build(settings, now=EXAMPLE_NOW)
    assert forks
    writers = log.read_text(encoding="utf-8").split()
    assert len(writers) == 1 and int(writers[0]) in (os.getpid(), *forks)
    parsed: list[str] = []
    real_validate = parsecache._validate_piece

    def counted(*args: Any) -> Any:
        parsed.append(args[1])
        return real_validate(*args)

    monkeypatch.setattr(parsecache, "_validate_piece", counted)
    assert build(settings, now=EXAMPLE_NOW, force=False).skipped
    news = data_dir / "news.yaml"  # changed, but no item's text is: a comment on top
    news.write_text("# Checked.\n" + news.read_text(encoding="utf-8"), encoding="utf-8")
    assert not build(settings, now=EXAMPLE_NOW).skipped
    assert parsed == []  # every item came from the cache
