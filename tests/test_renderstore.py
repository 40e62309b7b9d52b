"""What a build keeps for the next one (cccn_feeds.renderstore): one file per side of the
rendering, each with only that side's values; a rebuild makes only what changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cccn_feeds import parallel, text
from cccn_feeds.build import build
from cccn_feeds.publish import load_pickle
from cccn_feeds.renderstore import GLOBAL, LEGACY, VERSION
from tests.conftest import EXAMPLE_NOW, make_settings


def _kept(state: Path, side: str) -> dict[str, Any]:
    return load_pickle(state / f"render-cache-{side}.pickle", VERSION)


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
    news = data_dir / "news.yaml"
    source = news.read_text(encoding="utf-8")
    assert "An invented announcement used" in source
    news.write_text(source.replace("An invented announcement used",
                                   "An edited announcement used"), encoding="utf-8")  # fmt: skip
    renders.clear()
    result = build(settings, now=EXAMPLE_NOW)
    assert result.report.written
    assert renders and all(t.startswith("An edited announcement") for t in renders)


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
