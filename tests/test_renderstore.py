"""What a build keeps for the next one (cccn_feeds.renderstore): one file per side of the
rendering, each with only that side's values; a rebuild makes only what changed."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from cccn_feeds import parallel, text
from cccn_feeds.build import build
from cccn_feeds.renderstore import GLOBAL, LEGACY, VERSION, read_store
from tests.conftest import EXAMPLE_NOW, make_settings


def _kept(state: Path, side: str) -> dict[str, Any]:
    return read_store(state / f"render-cache-{side}.pickle")


EDITED = "An edited announcement"  # how _edit_one_text starts the one text it changes


def _edit_one_text(data_dir: Path) -> tuple[str, str]:
    """Change the Markdown summary of one news item; the file's text before and after."""
    news = data_dir / "news.yaml"
    source = news.read_text(encoding="utf-8")
    edited = source.replace("An invented announcement used", f"{EDITED} used")
    assert edited != source
    news.write_text(edited, encoding="utf-8")
    return source, edited


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The Markdown texts rendered to HTML, on one core (so that every call is seen here)."""
    monkeypatch.setattr(parallel, "may_fork", lambda: False)
    seen: list[str] = []
    real = text._markdown_html

    def counted(source: str, base: str) -> tuple[str, bool]:
        seen.append(source)
        return real(source, base)

    monkeypatch.setattr(text, "_markdown_html", counted)
    return seen


def test_each_side_keeps_only_its_own_values(data_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(data_dir, tmp_path / "out")
    build(settings, now=EXAMPLE_NOW)
    news = _kept(settings.paths.state_dir, "news")
    events = _kept(settings.paths.state_dir, "events")
    assert news["markdown"] and events["markdown"]
    assert news[GLOBAL] == events[GLOBAL]
    assert not [key for key in news if key.startswith(("ics.", "html."))]
    assert [key for key in events if key.startswith("ics.vevent")]
    assert [key for key in events if key.startswith("html.event")]
    assert list(news["markdown"]) == sorted(news["markdown"])


def test_a_rebuild_renders_only_the_edited_text(
    data_dir: Path, tmp_path: Path, renders: list[str]
) -> None:
    settings = make_settings(data_dir, tmp_path / "out")
    build(settings, now=EXAMPLE_NOW)
    assert len(renders) > 5
    _edit_one_text(data_dir)
    renders.clear()
    result = build(settings, now=EXAMPLE_NOW)
    assert result.report.written
    assert renders and all(t.startswith(EDITED) for t in renders)


def test_the_build_after_a_forced_one_reuses_its_work(
    data_dir: Path, tmp_path: Path, renders: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``build --force`` parses every item anew, with the same input keys as any build: the
    next build makes only the outputs an edit changed, as after an ordinary build (it made
    every output again before)."""
    from cccn_feeds.context import BuildContext
    from cccn_feeds.publish import REUSED

    made: list[str] = []
    real = BuildContext.keyed

    def keyed(self: BuildContext, path: str, parts: Any, make: Any) -> Any:
        result = real(self, path, parts, make)
        if result is not REUSED:
            made.append(path)
        return result

    monkeypatch.setattr(BuildContext, "keyed", keyed)
    news = data_dir / "news.yaml"
    source, edited = _edit_one_text(data_dir)

    def after_edit(out: Path, force: bool) -> list[str]:
        news.write_text(source, encoding="utf-8")
        settings = make_settings(data_dir, out)
        build(settings, now=EXAMPLE_NOW)
        if force:
            build(settings, now=EXAMPLE_NOW, force=True)
        news.write_text(edited, encoding="utf-8")
        made.clear()
        build(settings, now=EXAMPLE_NOW)
        return sorted(made)

    ordinary = after_edit(tmp_path / "a", force=False)
    assert ordinary and "events.ics" not in ordinary
    assert after_edit(tmp_path / "b", force=True) == ordinary


def test_a_rebuild_on_two_cores_renders_only_the_edited_text(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]
) -> None:
    """Both processes reuse their side's values (renders are logged to a file, which the
    helper process writes to as well)."""
    import os

    log = tmp_path / "renders.log"
    real = text._markdown_html

    def logged(source: str, base: str) -> tuple[str, bool]:
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()} {source.splitlines()[0]}\n")
        return real(source, base)

    monkeypatch.setattr(text, "_markdown_html", logged)
    settings = make_settings(data_dir, tmp_path / "out")
    build(settings, now=EXAMPLE_NOW)
    first = log.read_text(encoding="utf-8").splitlines()
    assert forks and {line.split()[0] for line in first} >= {str(os.getpid()), str(forks[0])}
    _edit_one_text(data_dir)
    log.unlink()
    forks.clear()
    build(settings, now=EXAMPLE_NOW)
    again = log.read_text(encoding="utf-8").splitlines()
    assert forks and again
    assert all(line.split(" ", 1)[1].startswith(EDITED) for line in again)


def test_values_made_under_other_settings_are_not_used(
    data_dir: Path, tmp_path: Path, renders: list[str]
) -> None:
    build(make_settings(data_dir, tmp_path / "out"), now=EXAMPLE_NOW)
    first = sorted(renders)
    renders.clear()
    other = make_settings(data_dir, tmp_path / "out", site={"title": "Another title"})
    build(other, now=EXAMPLE_NOW)
    assert sorted(renders) == first


def test_the_single_file_of_earlier_versions_is_removed(data_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(data_dir, tmp_path / "out")
    settings.paths.state_dir.mkdir(parents=True)
    (settings.paths.state_dir / LEGACY).write_bytes(b"old")
    build(settings, now=EXAMPLE_NOW)
    assert not (settings.paths.state_dir / LEGACY).exists()


def test_temporaries_a_killed_build_left_in_the_state_folder_are_removed(
    data_dir: Path, tmp_path: Path
) -> None:
    """A helper killed while writing its side's file (Ctrl-C) leaves a temporary file; the
    next build removes it, but not those of writers that do not take the lock."""
    settings = make_settings(data_dir, tmp_path / "out")
    build(settings, now=EXAMPLE_NOW)
    state = settings.paths.state_dir
    left = [
        state / ".render-cache-events.pickle.k2j3h4.tmp",
        state / ".parse-cache.pickle.a8s7d6.tmp",
        state / ".history.json.q1w2e3.tmp",
    ]
    other = state / ".linkcheck.json.z9x8c7.tmp"
    for path in (*left, other):
        path.write_bytes(b"cut short")
    (state / "build.json").unlink()  # not skipped as unchanged
    build(settings, now=EXAMPLE_NOW)
    assert [path.name for path in left if path.exists()] == []
    assert other.exists()


def test_a_side_that_fails_leaves_its_file_as_it_was_and_no_temporary(
    data_dir: Path, tmp_path: Path, renders: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values are written renderer by renderer into a temporary file: a renderer that
    fails after others have written theirs leaves the kept file and no temporary."""
    from cccn_feeds.render import ics

    settings = make_settings(data_dir, tmp_path / "out")
    build(settings, now=EXAMPLE_NOW)
    state = settings.paths.state_dir
    kept = (state / "render-cache-events.pickle").read_bytes()
    _edit_one_text(data_dir)

    def broken(*_: object) -> None:
        raise RuntimeError("a renderer failed")

    monkeypatch.setattr(ics, "stream", broken)
    with pytest.raises(RuntimeError, match="a renderer failed"):
        build(settings, now=EXAMPLE_NOW, force=True)
    assert (state / "render-cache-events.pickle").read_bytes() == kept
    assert not [p.name for p in state.iterdir() if p.name.endswith(".tmp")]


def test_a_damaged_or_older_file_is_read_as_empty(data_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(data_dir, tmp_path / "out")
    build(settings, now=EXAMPLE_NOW)
    path = settings.paths.state_dir / "render-cache-events.pickle"
    whole = path.read_bytes()
    kept = read_store(path)
    assert kept[GLOBAL] and kept["markdown"] and any(k.startswith("ics.") for k in kept)
    older = pickle.dumps({"version": VERSION - 1, "payload": {"a": 1}})
    for damaged in (b"", b"not a pickle", older, whole[:-3], whole[: len(whole) // 2]):
        path.write_bytes(damaged)
        assert read_store(path) == {}, damaged[:20]
    assert read_store(tmp_path / "missing.pickle") == {}
    path.write_bytes(whole)
    assert read_store(path) == kept


def test_a_rebuild_reads_each_renderers_values_when_it_starts(
    data_dir: Path, tmp_path: Path, renders: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renderer's kept values are given to it alone, when it starts, and let go of after."""
    from cccn_feeds.context import BuildContext

    settings = make_settings(data_dir, tmp_path / "out")
    build(settings, now=EXAMPLE_NOW)
    given: list[list[str]] = []
    real = BuildContext.use_store

    def use_store(self: BuildContext, values: Any) -> None:
        given.append(sorted({key.split("|")[0].split(":")[0] for key in values}))
        real(self, values)

    monkeypatch.setattr(BuildContext, "use_store", use_store)
    _edit_one_text(data_dir)
    build(settings, now=EXAMPLE_NOW)
    assert ["html.event"] in given and ["ics.vevent"] in given
    assert all(len(kinds) <= 1 for kinds in given)


def test_a_damaged_record_is_not_used(data_dir: Path, tmp_path: Path) -> None:
    """A changed byte in one renderer's values (a disk error, say): that record is left
    out, so its values are made again rather than published damaged; the rest is kept."""
    settings = make_settings(data_dir, tmp_path / "out")
    build(settings, now=EXAMPLE_NOW)
    path = settings.paths.state_dir / "render-cache-events.pickle"
    kept = read_store(path)
    entry = next(v for k, v in kept.items() if k.startswith("html.event"))[0][:40]
    whole = path.read_bytes()
    at = whole.index(entry) + 20
    path.write_bytes(whole[:at] + bytes([whole[at] ^ 1]) + whole[at + 1 :])
    damaged = read_store(path)
    assert not [key for key in damaged if key.startswith("html.event")]
    assert [key for key in damaged if key.startswith("ics.vevent")] == [
        key for key in kept if key.startswith("ics.vevent")
    ]
    assert damaged["markdown"] == kept["markdown"]


def test_a_renderer_with_nothing_to_make_keeps_its_record(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a side's file is written again and one of its renderers made nothing (all its
    outputs reused), its values are kept for the next build that renders."""
    from cccn_feeds import renderstore

    monkeypatch.setattr(renderstore, "_worth_writing", lambda *_: True)
    settings = make_settings(data_dir, tmp_path / "out")
    build(settings, now=EXAMPLE_NOW)
    before = _kept(settings.paths.state_dir, "events")
    calendar = {k: v for k, v in before.items() if k.startswith("ics.vevent")}
    assert calendar
    _edit_one_text(data_dir)  # a news item: the page is made again, no calendar is
    result = build(settings, now=EXAMPLE_NOW)
    assert result.report.written
    assert not any(path.endswith(".ics") for path in result.report.written)
    after = _kept(settings.paths.state_dir, "events")
    assert {k: v for k, v in after.items() if k.startswith("ics.vevent")} == calendar


def test_a_damaged_record_is_not_copied_forward(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renderer with nothing to make keeps its record only when the record is sound."""
    from cccn_feeds import renderstore

    monkeypatch.setattr(renderstore, "_worth_writing", lambda *_: True)
    settings = make_settings(data_dir, tmp_path / "out")
    build(settings, now=EXAMPLE_NOW)
    path = settings.paths.state_dir / "render-cache-events.pickle"
    vevent = next(v for k, v in read_store(path).items() if k.startswith("ics.vevent"))
    whole = path.read_bytes()
    at = whole.index(vevent[:40]) + 20
    path.write_bytes(whole[:at] + bytes([whole[at] ^ 1]) + whole[at + 1 :])
    _edit_one_text(data_dir)  # a news item: the page is made again, no calendar is
    build(settings, now=EXAMPLE_NOW)
    after = read_store(path)
    assert after["markdown"] and [key for key in after if key.startswith("html.event")]
    assert not [key for key in after if key.startswith("ics.vevent")]
    assert "cccn_feeds.render.ics" not in renderstore._index(path, None)  # not carried
