"""The pipeline end to end: deterministic, incremental, and untouched by bad data."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cccn_feeds.build import build
from cccn_feeds.cli import main
from cccn_feeds.errors import CccnError, DataError
from cccn_feeds.settings import Settings
from tests.conftest import EXAMPLE_NOW, make_settings

LUX = ZoneInfo("Europe/Luxembourg")


def _snapshot(folder: Path) -> dict[str, tuple[bytes, float]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".state" not in p.parts
    }


class TestBuild:
    """Same input, same bytes; nothing rewritten that did not change."""

    def test_build_twice(self, settings: Settings) -> None:
        first = build(settings, now=EXAMPLE_NOW)
        assert "news.json" in first.report.written
        before = _snapshot(settings.paths.output_dir)
        second = build(settings, now=EXAMPLE_NOW, force=True)
        assert not second.skipped
        assert second.report.written == [] and second.report.removed == []
        assert len(second.report.unchanged) == len(first.report.written)
        assert _snapshot(settings.paths.output_dir) == before

    def test_same_input_same_bytes_in_two_folders(self, settings: Settings, tmp_path: Path) -> None:
        other = make_settings(settings.paths.data_dir, tmp_path / "other")
        build(settings, now=EXAMPLE_NOW)
        build(other, now=EXAMPLE_NOW)
        a = {k: v[0] for k, v in _snapshot(settings.paths.output_dir).items()}
        b = {k: v[0] for k, v in _snapshot(other.paths.output_dir).items()}
        assert a == b and a
        assert (tmp_path / "other" / ".state" / "history.json").exists()

    def test_bad_data_leaves_output_untouched(self, settings: Settings) -> None:
        build(settings, now=EXAMPLE_NOW)
        before = _snapshot(settings.paths.output_dir)
        state_before = sorted((settings.paths.state_dir).iterdir())
        news = settings.paths.data_dir / "news.yaml"
        news.write_text(news.read_text().replace("date: 2027-01-20", "date: 2027-01-32", 1))
        with pytest.raises(DataError, match=r"news\[1\]\.date"):
            build(settings, now=EXAMPLE_NOW)
        assert _snapshot(settings.paths.output_dir) == before
        assert sorted(settings.paths.state_dir.iterdir()) == state_before

    def test_cli_build_prints_what_it_did(
        self, settings: Settings, capsys: pytest.CaptureFixture[str]
    ) -> None:
        args = ["build", "--data", str(settings.paths.data_dir), "--out",
                str(settings.paths.output_dir), "--now", "2027-01-15T12:00"]  # fmt: skip
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "written" in out and "news.json" in out
        assert main(args) == 0
        assert "nothing changed" in capsys.readouterr().out
        assert main([*args, "--force"]) == 0
        assert "0 written" in capsys.readouterr().out

    def test_state_folder_can_live_elsewhere(self, settings: Settings, tmp_path: Path) -> None:
        moved = settings.replace("paths", state=str(tmp_path / "elsewhere"))
        build(moved, now=EXAMPLE_NOW)
        assert (tmp_path / "elsewhere" / "history.json").exists()
        assert not (settings.paths.output_dir / ".state").exists()

    def test_two_output_folders_never_share_state(self, settings: Settings, tmp_path: Path) -> None:
        shared = str(tmp_path / "shared-state")
        build(settings.replace("paths", state=shared), now=EXAMPLE_NOW)
        other = settings.replace("paths", state=shared, output=str(tmp_path / "other"))
        with pytest.raises(CccnError, match="belongs to the output folder"):
            build(other, now=EXAMPLE_NOW)
        assert not (tmp_path / "other").exists()


class TestNoOp:
    """A rebuild with nothing changed does no work, until something does."""

    def test_skips_until_data_time_or_output_changes(self, settings: Settings) -> None:
        first = build(settings, now=EXAMPLE_NOW)
        assert not first.skipped
        again = build(settings, now=EXAMPLE_NOW + timedelta(minutes=15))
        assert again.skipped and again.news == first.news and again.forthcoming == 7
        (settings.paths.output_dir / "news.json").unlink()
        repaired = build(settings, now=EXAMPLE_NOW + timedelta(minutes=30))
        assert repaired.report.written == ["news.json"]
        news = settings.paths.data_dir / "news.yaml"
        news.write_text(news.read_text().replace("(first)", "(first, edited)"))
        edited = build(settings, now=EXAMPLE_NOW + timedelta(minutes=45))
        assert not edited.skipped and "news.json" in edited.report.written

    def test_time_alone_moves_the_output(self, settings: Settings) -> None:
        build(settings, now=EXAMPLE_NOW)
        # The weekly webinar's first occurrence ends on 2027-02-03 at 17:00 local time.
        before_end = datetime(2027, 2, 3, 16, 59, tzinfo=LUX)
        assert build(settings, now=before_end).skipped
        after_end = build(settings, now=datetime(2027, 2, 3, 17, 0, tzinfo=LUX))
        assert not after_end.skipped
        assert after_end.forthcoming == 7  # the series continues: its next occurrence shows

    def test_earlier_clock_rebuilds(self, settings: Settings) -> None:
        build(settings, now=EXAMPLE_NOW)
        assert not build(settings, now=EXAMPLE_NOW - timedelta(days=1)).skipped


def _parse_all(folder: Path) -> int:
    """Parse every published file by its kind; return how many were checked."""
    from icalendar import Calendar
    from lxml import etree

    checked = 0
    for path in folder.rglob("*"):
        if not path.is_file() or ".state" in path.parts:
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            json.loads(data)
        elif path.suffix in {".rss", ".atom", ".xml", ".opml", ".xsl"}:
            etree.fromstring(data)
        elif path.suffix == ".ics":
            Calendar.from_ical(data)
        elif path.suffix == ".html":
            assert data.rstrip().endswith(b"</html>")
        checked += 1
    return checked


def test_killed_builds_leave_whole_files(settings: Settings, tmp_path: Path) -> None:
    """SIGKILL real `cccn-feeds build` runs at many points; every file stays whole."""
    alt = tmp_path / "alt"
    shutil.copytree(settings.paths.data_dir, alt)
    news = alt / "news.yaml"
    news.write_text(news.read_text().replace("Example:", "Changed example:"))
    exe = Path(sys.executable).with_name("cccn-feeds")
    out = settings.paths.output_dir
    for attempt in range(12):
        data = alt if attempt % 2 else settings.paths.data_dir
        with subprocess.Popen(
            [
                str(exe),
                "build",
                "-q",
                "--data",
                str(data),
                "--out",
                str(out),
                "--now",
                "2027-01-15T12:00",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as child:
            time.sleep(0.15 + 0.05 * (attempt % 5))
            child.send_signal(signal.SIGKILL)
        if out.exists():
            _parse_all(out)
    build(settings, now=EXAMPLE_NOW)
    assert _parse_all(out) >= 1


class TestDamagedState:
    """Mistakes in paths and damaged state files end in a clear message, never a traceback."""

    def test_output_is_a_file(
        self, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        afile = tmp_path / "afile"
        afile.write_text("x")
        code = main(["build", "--data", str(settings.paths.data_dir), "--out", str(afile)])
        err = capsys.readouterr().err
        assert code == 1 and "Traceback" not in err
        assert str(afile) in err

    @pytest.mark.parametrize("force", [False, True])
    def test_damaged_caches_are_ignored(self, settings: Settings, force: bool) -> None:
        build(settings, now=EXAMPLE_NOW)
        for name in (
            "parse-cache.pickle",
            "split-cache.pickle",
            "render-cache-news.pickle",
            "render-cache-events.pickle",
        ):
            (settings.paths.state_dir / name).write_bytes(b"\x80\x09garbage")
        (settings.paths.state_dir / "build.json").unlink()  # not skipped as unchanged
        result = build(settings, now=EXAMPLE_NOW, force=force)
        assert not result.skipped and result.report.written == []

    @pytest.mark.parametrize("damage", ["not json", '{"version": 1, "events": {"x": [1]}}'])
    def test_damaged_history_stops_the_build(self, settings: Settings, damage: str) -> None:
        build(settings, now=EXAMPLE_NOW)
        (settings.paths.state_dir / "history.json").write_text(damage)
        with pytest.raises(CccnError, match="history is damaged"):
            build(settings, now=EXAMPLE_NOW, force=True)


class TestBrokenLinkPolicy:
    """``on_broken = "drop"`` leaves every declared-broken address out; items stay."""

    def test_drop_removes_every_broken_address(self, settings: Settings) -> None:
        from cccn_feeds.publish import write_json

        broken = [
            "https://example.org/news/designation",
            "https://example.org/img/designation.jpg",
            "https://example.org/webinar",
            "https://example.org/events/conference-2027",
        ]
        dropping = settings.replace("linkcheck", on_broken="drop")
        build(dropping, now=EXAMPLE_NOW)  # first without broken links, then with them
        write_json(
            dropping.paths.state_dir / "linkcheck.json",
            {
                "version": 1,
                "links": {u: {"verdict": "broken", "declared_broken": True} for u in broken},
            },
        )
        build(dropping, now=EXAMPLE_NOW)
        out = dropping.paths.output_dir
        for path in out.rglob("*"):
            if path.is_file() and ".state" not in path.parts:
                text = path.read_text(encoding="utf-8")
                for url in broken:  # the address itself, not a longer one that starts alike
                    found = re.search(re.escape(url) + r"(?![\w/.-])", text)
                    assert found is None, f"{url} in {path.relative_to(out)}"
        assert "Example: the Luxembourg CCC joins" in (out / "news.rss").read_text()
        assert "weekly tumour board webinar" in (out / "events.ics").read_text()
        # A recovered link comes back.
        write_json(dropping.paths.state_dir / "linkcheck.json", {"version": 1, "links": {}})
        build(dropping, now=EXAMPLE_NOW)
        assert "https://example.org/webinar" in (out / "events.ics").read_text()
        assert "https://example.org/news/designation" in (out / "news.rss").read_text()
