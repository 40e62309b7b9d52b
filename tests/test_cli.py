"""The command line: help for everything, exit codes, and no traceback for a user's mistake."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cccn_feeds.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


class TestHelp:
    """Every command and every option explains itself."""

    def test_contract_commands_exist(self) -> None:
        assert {"build", "validate", "schema", "check-links", "serve"} <= set(_subcommands())

    @pytest.mark.parametrize("name", sorted(_subcommands()))
    def test_every_option_has_help(self, name: str) -> None:
        parser = _subcommands()[name]
        assert parser.description or parser.format_usage()
        for action in parser._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"

    def test_commands_have_help_lines(self) -> None:
        text = build_parser().format_help()
        for name in _subcommands():
            assert name in text
        action = next(
            a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
        )
        assert all(choice.help for choice in action._choices_actions)

    def test_console_script_help(self) -> None:
        exe = Path(sys.executable).with_name("cccn-feeds")
        result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
        assert result.returncode == 0
        assert "check-links" in result.stdout


class TestExitCodes:
    """0 success, 1 data or configuration problem, 2 usage error."""

    def test_validate_ok(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["validate", "--data", str(ROOT / "data")]) == 0
        assert capsys.readouterr().out.startswith("ok: 3 news items")

    def test_usage_error_is_2(self) -> None:
        with pytest.raises(SystemExit) as caught:
            main(["build", "--no-such-flag"])
        assert caught.value.code == 2

    def test_missing_data_folder(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["validate", "--data", str(tmp_path / "nope")]) == 1
        err = capsys.readouterr().err
        assert "news.yaml: file not found" in err and "Traceback" not in err

    def test_bad_now(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        code = main(
            ["build", "--data", str(ROOT / "data"), "--out", str(tmp_path), "--now", "yesterday"]
        )
        assert code == 1
        assert "--now" in capsys.readouterr().err
        assert list(tmp_path.iterdir()) == []

    def test_bad_config(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        config = tmp_path / "c.toml"
        config.write_text("[site]\nbase_url = 5\n")
        assert main(["validate", "--config", str(config), "--data", str(ROOT / "data")]) == 1
        assert "[site] base_url: expected text, got 5" in capsys.readouterr().err

    def test_binary_file_is_a_clean_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "news.yaml").write_bytes(b"\xff\xfe\x00garbage")
        (tmp_path / "events.yaml").write_text("events: []\n")
        assert main(["validate", "--data", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert "not valid UTF-8" in err

    def test_schema_prints_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        import json

        assert main(["schema", "events"]) == 0
        schema = json.loads(capsys.readouterr().out)
        assert "start" in schema["properties"]["events"]["items"]["properties"]


def test_help_is_fast_to_import() -> None:
    """--help must not import the heavy libraries (they load lazily)."""
    code = (
        "import sys\nfrom cccn_feeds.cli import build_parser\nbuild_parser().format_help()\n"
        "heavy = [m for m in ('feedgen', 'icalendar', 'jinja2', 'requests', 'yaml', 'apscheduler',"
        " 'waitress', 'pyromark', 'nh3', 'lxml') if m in sys.modules]\nprint(heavy)"
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]"


def test_console_script_flushes_and_exits_with_the_command_status(tmp_path: Path) -> None:
    """The script ends without tearing down the interpreter: output still arrives whole,
    the status is the command's, and a reader that stops early gets no error message."""
    exe = Path(sys.executable).with_name("cccn-feeds")
    schema = subprocess.run([str(exe), "schema", "news"], capture_output=True, check=False)
    assert schema.returncode == 0 and schema.stdout.rstrip().endswith(b"}")
    bad = subprocess.run(
        [str(exe), "build", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "nothing was published" in bad.stderr
    head = subprocess.run(
        f"'{exe}' schema news | head -c 10", shell=True, capture_output=True, check=False
    )
    assert head.stdout and b"Exception" not in head.stderr and b"Error" not in head.stderr
