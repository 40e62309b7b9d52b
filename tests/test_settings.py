"""Settings: declared defaults, TOML, environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cccn_feeds.errors import ConfigError
from cccn_feeds.settings import load_settings, parse_duration


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cccn-feeds.toml"
    path.write_text(text)
    return path


class TestDefaults:
    """Without a file the embedded defaults apply."""

    def test_defaults(self) -> None:
        s = load_settings(None, environ={})
        assert s.site.base_url == "http://127.0.0.1:8000/"
        assert s.site.link == "https://www.lih.lu/?p=47659"
        assert s.site.id_domain == "www.lih.lu"
        assert s.site.timezone == "Europe/Luxembourg"
        assert s.paths.state_dir == Path("feeds/.state")
        assert s.calendar.refresh == "PT6H"
        assert s.linkcheck.min_interval == 0.05
        assert s.feeds.max_items == 50


class TestFileAndEnvironment:
    """The file overrides defaults, the environment overrides the file, flags override all."""

    def test_file_then_env_then_overrides(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path,
            '[site]\nbase_url = "https://feeds.example.org/cccn"\ndomain = "example.org"\n'
            '[linkcheck]\nconcurrency = 4\nallow_networks = ["10.0.0.0/8"]\n',
        )
        s = load_settings(path, environ={"CCCN_LINKCHECK_CONCURRENCY": "8"})
        assert s.site.base_url == "https://feeds.example.org/cccn/"
        assert s.site.id_domain == "example.org"
        assert s.linkcheck.concurrency == 8
        assert s.linkcheck.allow_networks == ("10.0.0.0/8",)
        s = load_settings(path, environ={}, overrides={"paths": {"output": "out"}})
        assert s.paths.output_dir == Path("out")
        assert s.paths.state_dir == Path("out/.state")

    def test_short_base_url_form(self) -> None:
        s = load_settings(None, environ={"CCCN_BASE_URL": "https://x.example/"})
        assert s.site.base_url == "https://x.example/"

    def test_env_lists_and_booleans(self) -> None:
        s = load_settings(
            None,
            environ={"CCCN_LINKCHECK_ACCEPT": "200, 204", "CCCN_SCHEDULE_WATCH": "false"},
        )
        assert s.linkcheck.accept == (200, 204)
        assert s.schedule.watch is False


class TestErrors:
    """Unknown names and bad values are errors that say where and what to do."""

    def test_unknown_table_and_key(self, tmp_path: Path) -> None:
        path = _write(tmp_path, '[site]\ntitel = "x"\n\n[calender]\nrefresh = "PT1H"\n')
        with pytest.raises(ConfigError) as caught:
            load_settings(path, environ={})
        lines = [str(p) for p in caught.value.problems]
        assert lines == [
            f"{path}:2: [site] titel: unknown key (did you mean 'title'?)",
            f"{path}:4: [calender]: unknown table (did you mean 'calendar'?)",
        ]

    def test_unknown_env_key(self) -> None:
        with pytest.raises(ConfigError, match=r"\[site\] base_ur: unknown key"):
            load_settings(None, environ={"CCCN_SITE_BASE_UR": "x"})

    def test_bad_values(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path,
            '[site]\ntimezone = "Mars/Base"\nbase_url = "ftp://x"\n'
            '[calendar]\nrefresh = "6 hours"\n[schedule]\nbuild = "every minute"\n'
            '[linkcheck]\non_broken = "hide"\nconcurrency = "many"\n',
        )
        with pytest.raises(ConfigError) as caught:
            load_settings(path, environ={})
        text = str(caught.value)
        assert "[linkcheck] concurrency: expected a whole number, got 'many'" in text
        path.write_text(path.read_text().replace('concurrency = "many"\n', ""))
        with pytest.raises(ConfigError) as caught:
            load_settings(path, environ={})
        fields = {p.field for p in caught.value.problems}
        assert fields == {
            "[site] timezone",
            "[site] base_url",
            "[calendar] refresh",
            "[schedule] build",
            "[linkcheck] on_broken",
        }

    def test_an_empty_description_is_refused(self, tmp_path: Path) -> None:
        """RSS requires a feed description: said where, instead of failing in the feeds."""
        path = _write(tmp_path, '[site]\ndescription = "  "\n')
        with pytest.raises(ConfigError, match=r"\[site\] description: must not be empty"):
            load_settings(path, environ={})

    def test_addresses_with_spaces_are_refused(self) -> None:
        with pytest.raises(ConfigError, match=r"\[site\] base_url: .* contains a space"):
            load_settings(None, environ={"CCCN_BASE_URL": "https://example.org/a b\r\nX:1/"})

    def test_syntax_error_has_line(self, tmp_path: Path) -> None:
        path = _write(tmp_path, "[site]\ntitle = \n")
        with pytest.raises(ConfigError) as caught:
            load_settings(path, environ={})
        assert caught.value.problems[0].line == 2

    def test_unreadable_file(self, tmp_path: Path) -> None:
        path = _write(tmp_path, "")
        path.write_bytes(b"[site]\ntitle = '\xff'\n")
        with pytest.raises(ConfigError, match="not valid UTF-8"):
            load_settings(path, environ={})

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="configuration file not found"):
            load_settings(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT6H", 21600), ("P1D", 86400), ("PT30M", 1800), ("P1W", 604800), ("-PT15M", -900)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "6H", "PT6", "P1DT"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
