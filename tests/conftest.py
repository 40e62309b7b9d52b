"""Shared fixtures: settings for a temporary output folder, the example corpus, golden files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cccn_feeds import parallel
from cccn_feeds.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
LUX = ZoneInfo("Europe/Luxembourg")
# The clock of the example corpus: before every example event.
EXAMPLE_NOW = datetime(2027, 1, 15, 12, 0, tzinfo=LUX)


def output_folder(folder: Path) -> dict[str, bytes]:
    """Every file of an output folder but its state folder, by relative path."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".state" not in p.parts
    }


def make_settings(data: Path, out: Path, **tables: dict[str, object]) -> Settings:
    """Settings with no config file and no environment, for tests."""
    overrides: dict[str, dict[str, object]] = {"paths": {"data": str(data), "output": str(out)}}
    for table, values in tables.items():
        overrides.setdefault(table, {}).update(values)
    return load_settings(None, environ={}, overrides=overrides)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A writable copy of the example corpus."""
    target = tmp_path / "data"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("*.md"))
    return target


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """Settings reading the example copy and writing into tmp_path/feeds."""
    return make_settings(data_dir, tmp_path / "feeds")


@pytest.fixture
def golden() -> Callable[[str, bytes], None]:
    """Compare bytes with tests/golden/NAME; CCCN_UPDATE_GOLDEN=1 (make golden) rewrites them."""

    def check(name: str, data: bytes) -> None:
        path = GOLDEN / name
        if os.environ.get("CCCN_UPDATE_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        assert path.exists(), f"no golden file {path}; run `make golden` and review the diff"
        expected = path.read_bytes()
        if data != expected:
            import difflib

            diff = "".join(
                difflib.unified_diff(
                    expected.decode("utf-8", "replace").splitlines(keepends=True),
                    data.decode("utf-8", "replace").splitlines(keepends=True),
                    "golden/" + name,
                    "built",
                    n=2,
                )
            )
            pytest.fail(f"{name} differs from its golden file:\n{diff[:6000]}")

    return check


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Builds on two cores here, whatever the machine; counts the helper processes
    started (the real fork runs)."""
    started: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            started.append(pid)
        return pid

    monkeypatch.setattr(parallel.os, "fork", fork)
    monkeypatch.setattr(parallel.threading, "active_count", lambda: 1)
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 2)
    return started
