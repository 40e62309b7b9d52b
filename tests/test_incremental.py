"""Incremental builds publish exactly what a fresh build publishes, and rewrite only that."""

from __future__ import annotations

from pathlib import Path

from cccn_feeds.build import build
from cccn_feeds.settings import Settings
from tests.conftest import EXAMPLE_NOW, make_settings, output_folder


def _fresh(settings: Settings, tmp_path: Path, name: str) -> dict[str, bytes]:
    other = make_settings(settings.paths.data_dir, tmp_path / name)
    other = other.replace("site", title=settings.site.title)
    build(other, now=EXAMPLE_NOW)
    return output_folder(other.paths.output_dir)


class TestIncremental:
    """Each rebuild equals a fresh build of the same inputs."""

    def test_edits_and_settings_changes(self, settings: Settings, tmp_path: Path) -> None:
        build(settings, now=EXAMPLE_NOW)
        news = settings.paths.data_dir / "news.yaml"
        news.write_text(news.read_text().replace("(first)", "(first, edited)"))
        edited = build(settings, now=EXAMPLE_NOW)
        changed = set(edited.report.written)
        assert "news.rss" in changed and "tags/jane-2/news.atom" in changed
        assert "events.ics" not in changed and "tags/eu-cip/news.rss" not in changed
        assert output_folder(settings.paths.output_dir) == _fresh(settings, tmp_path, "a")

        events = settings.paths.data_dir / "events.yaml"
        events.write_text(events.read_text().replace("Example Room 1", "Example Room 9", 1))
        moved = build(settings, now=EXAMPLE_NOW)
        assert "events/example-before-dst.ics" in moved.report.written
        assert "events/example-after-dst.ics" not in moved.report.written
        # The fresh folder has no history: its event is at SEQUENCE 0 where ours is at 1.
        ours, fresh = output_folder(settings.paths.output_dir), _fresh(settings, tmp_path, "b")
        differing = {p for p in ours if ours[p] != fresh.get(p)}
        assert all(p.endswith(".ics") for p in differing)
        assert b"SEQUENCE:1" in ours["events/example-before-dst.ics"]

        retitled = settings.replace("site", title="Another title")
        rebuilt = build(retitled, now=EXAMPLE_NOW)
        assert "news.rss" in rebuilt.report.written and "index.html" in rebuilt.report.written
        assert b"Another title" in (settings.paths.output_dir / "news.rss").read_bytes()

    def test_a_deleted_output_is_made_again(self, settings: Settings) -> None:
        build(settings, now=EXAMPLE_NOW)
        target = settings.paths.output_dir / "events" / "example-new-york.ics"
        original = target.read_bytes()
        target.unlink()
        news = settings.paths.data_dir / "news.yaml"
        news.write_text(news.read_text().replace("(first)", "(first!)"))
        build(settings, now=EXAMPLE_NOW)
        assert target.read_bytes() == original
