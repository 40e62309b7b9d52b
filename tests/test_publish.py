"""Publishing: atomic, incremental, locked, and whole even when killed at any point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cccn_feeds.errors import LockedError
from cccn_feeds.publish import check_relpath, output_lock, publish


class TestPublish:
    """Files are written only when their bytes change; stale outputs go after new ones land."""

    def test_write_unchanged_removed(self, tmp_path: Path) -> None:
        out, state = tmp_path / "out", tmp_path / "out" / ".state"
        report = publish({"a.xml": b"A", "tags/x/b.xml": b"B"}, out, state)
        assert report.written == ["a.xml", "tags/x/b.xml"]
        os.utime(out / "a.xml", (1_000_000, 1_000_000))
        report = publish({"a.xml": b"A", "c.xml": b"C"}, out, state)
        assert report.written == ["c.xml"]
        assert report.unchanged == ["a.xml"]
        assert report.removed == ["tags/x/b.xml"]
        assert (out / "a.xml").stat().st_mtime == 1_000_000
        assert not (out / "tags").exists()

    def test_changed_bytes_same_size_are_written(self, tmp_path: Path) -> None:
        out, state = tmp_path / "out", tmp_path / "state"
        publish({"a": b"AAAA"}, out, state)
        report = publish({"a": b"BBBB"}, out, state)
        assert report.written == ["a"]
        assert (out / "a").read_bytes() == b"BBBB"

    def test_file_changed_by_hand_is_repaired(self, tmp_path: Path) -> None:
        out, state = tmp_path / "out", tmp_path / "state"
        publish({"a": b"AAAA"}, out, state)
        (out / "a").write_bytes(b"x")
        assert publish({"a": b"AAAA"}, out, state).written == ["a"]

    def test_foreign_files_are_never_removed(self, tmp_path: Path) -> None:
        out, state = tmp_path / "out", tmp_path / "state"
        out.mkdir()
        (out / "robots.txt").write_text("keep me")
        publish({"a": b"A"}, out, state)
        publish({}, out, state)
        assert (out / "robots.txt").read_text() == "keep me"
        assert not (out / "a").exists()

    @pytest.mark.parametrize("bad", ["../x", "/etc/x", ".state/x", "a/../../x", "", "a/.hidden"])
    def test_paths_stay_inside(self, bad: str) -> None:
        with pytest.raises(ValueError):
            check_relpath(bad)


class TestLock:
    """Two builds never interleave."""

    def test_second_holder_waits_then_fails(self, tmp_path: Path) -> None:
        with (
            output_lock(tmp_path),
            pytest.raises(LockedError, match="another build holds"),
            output_lock(tmp_path, wait=0.1),
        ):
            pass
        with output_lock(tmp_path, wait=0):
            pass

    def test_lock_is_shared_across_processes(self, tmp_path: Path) -> None:
        code = textwrap.dedent(
            f"""
            import time, pathlib
            from cccn_feeds.publish import output_lock
            with output_lock(pathlib.Path({str(tmp_path)!r})):
                print("held", flush=True)
                time.sleep(30)
            """
        )
        with subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
        ) as child:
            try:
                assert child.stdout is not None
                assert child.stdout.readline().strip() == "held"
                with pytest.raises(LockedError), output_lock(tmp_path, wait=0.2):
                    pass
            finally:
                child.kill()
        with output_lock(tmp_path, wait=2):
            pass


KILL_SCRIPT = """
import sys, pathlib
from cccn_feeds.publish import publish
out = pathlib.Path(sys.argv[1])
versions = [
    {f"f{i:02d}.xml": (f"<v{v}>" + "x" * (20000 + 997 * i * (v + 1)) + f"</v{v}>").encode()
     for i in range(40)}
    for v in range(2)
]
n = 0
print("ready", flush=True)
while True:
    publish(versions[n % 2], out, out / ".state")
    n += 1
"""


class TestKill:
    """SIGKILL at many points: every file is its complete old or complete new version."""

    def test_sigkill_never_leaves_a_partial_file(self, tmp_path: Path) -> None:
        versions = [
            {
                f"f{i:02d}.xml": (
                    f"<v{v}>" + "x" * (20000 + 997 * i * (v + 1)) + f"</v{v}>"
                ).encode()
                for i in range(40)
            }
            for v in range(2)
        ]
        script = tmp_path / "loop.py"
        script.write_text(KILL_SCRIPT)
        out = tmp_path / "out"
        kills = 0
        for attempt in range(25):
            with subprocess.Popen(
                [sys.executable, str(script), str(out)], stdout=subprocess.PIPE, text=True
            ) as child:
                assert child.stdout is not None
                assert child.stdout.readline().strip() == "ready"
                time.sleep(0.01 + (attempt % 7) * 0.013)
                child.send_signal(signal.SIGKILL)
            kills += 1
            for name in versions[0]:
                path = out / name
                if not path.exists():
                    continue
                data = path.read_bytes()
                assert data in (versions[0][name], versions[1][name]), f"{name} is partial"
            manifest = out / ".state" / "manifest.json"
            if manifest.exists():
                json.loads(manifest.read_text())
        assert kills == 25
        assert all((out / name).exists() for name in versions[0])
        publish(versions[0], out, out / ".state")
        leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
        assert leftovers == []


_STATE_TEXT = st.text(max_size=20) | st.sampled_from(["\x00\x1f\x7f", '"\\/', "é😀\u2028"])
_STATE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _STATE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_STATE_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_STATE)
def test_compact_state_is_written_as_json_dumps_writes_it(value: object) -> None:
    """Large state files go through orjson: the same bytes as the json module's."""
    import json
    import tempfile

    from cccn_feeds.publish import read_json, write_json

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.json"
        write_json(path, value, compact=True)
        expected = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        assert path.read_bytes() == (expected + "\n").encode()
        assert read_json(path) == value
