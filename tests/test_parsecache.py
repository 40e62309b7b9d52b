"""Incremental loading gives exactly what the canonical whole-file path gives."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cccn_feeds.errors import DataError
from cccn_feeds.model import Content
from cccn_feeds.parsecache import load_content_cached as _load
from cccn_feeds.parsecache import save_pending, split_items
from cccn_feeds.validate import load_content

ROOT = Path(__file__).resolve().parent.parent


def load_content_cached(data: Path, tz: ZoneInfo, cache: Path) -> Content:
    """Load as a build does: read through the cache, then save what was parsed anew."""
    content = _load(data, tz, cache)
    save_pending(cache)
    return content
LUX = ZoneInfo("Europe/Luxembourg")


class TestSplit:
    """Files in the usual layout are cut into one piece per item; others are left whole."""

    def test_pieces_start_where_items_start(self) -> None:
        text = "# c\nnews:\n  # first\n  - id: a\n    title: A\n\n  - id: b\n    body: |\n      x\n"
        assert split_items(text, "news") == [
            (4, "  - id: a\n    title: A\n\n"),
            (7, "  - id: b\n    body: |\n      x\n"),
        ]

    @pytest.mark.parametrize("text", ["news: []\n", "# none yet\nnews: [ ]  # c\n\n# c\n"])
    def test_an_empty_list_is_no_pieces(self, text: str) -> None:
        assert split_items(text, "news") == []

    @pytest.mark.parametrize("text", ["---\nnews:\n  - id: a\n", "news:\n  - id: a\n...\n"])
    def test_document_markers_are_not_pieces(self, text: str) -> None:
        assert split_items(text, "news") == [(2 + text.startswith("---"), "  - id: a\n")]

    @pytest.mark.parametrize(
        "text",
        [
            "news:\n  - id: a\nother: 1\n",
            "news: []\nother: 1\n",
            "news:\n\t- id: a\n",
            "---\n---\nnews:\n  - id: a\n",
            "news:\n  - id: a\n...\n  - id: b\n",
            "news:\n    - id: a\n  - id: b\n",
        ],
    )
    def test_unusual_layouts_are_left_whole(self, text: str) -> None:
        assert split_items(text, "news") is None


def _add_document_markers(data: Path) -> None:
    """Start both files with "---" (after a comment in one) and end one with "..."."""
    news, events = data / "news.yaml", data / "events.yaml"
    news.write_text("--- # written by an editor\n" + news.read_text(), encoding="utf-8")
    events.write_text("# events\n---\n" + events.read_text() + "...\n# end\n", encoding="utf-8")


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(ROOT / "examples", target, ignore=shutil.ignore_patterns("*.md"))
    return target


class TestEquivalence:
    """Cached, cold and canonical loads agree, before and after edits."""

    def test_same_content(self, copy: Path, tmp_path: Path) -> None:
        cache = tmp_path / "cache.pickle"
        cold = load_content_cached(copy, LUX, cache)
        assert cache.exists()
        warm = load_content_cached(copy, LUX, cache)
        assert cold == warm == load_content(copy, LUX)
        assert [n.line for n in warm.news] == [n.line for n in load_content(copy, LUX).news]
        news = copy / "news.yaml"
        news.write_text(
            news.read_text().replace(
                "  - id: example-same-day-b",
                "  - id: inserted\n"
                "    title: Inserted\n    date: 2027-01-01\n\n  - id: example-same-day-b",
            )
        )
        edited = load_content_cached(copy, LUX, cache)
        canonical = load_content(copy, LUX)
        assert edited == canonical
        assert [n.line for n in edited.news] == [n.line for n in canonical.news]

    def test_problems_have_the_canonical_messages(self, copy: Path, tmp_path: Path) -> None:
        cache = tmp_path / "cache.pickle"
        load_content_cached(copy, LUX, cache)
        events = copy / "events.yaml"
        events.write_text(
            events.read_text().replace("end: 2027-03-27T11:30", "end: 2027-03-27T09:30")
        )
        with pytest.raises(DataError) as fast:
            load_content_cached(copy, LUX, cache)
        with pytest.raises(DataError) as canonical:
            load_content(copy, LUX)
        assert str(fast.value) == str(canonical.value)
        assert "events[1].end" in str(fast.value)

    def test_duplicate_ids_across_cached_items(self, copy: Path, tmp_path: Path) -> None:
        cache = tmp_path / "cache.pickle"
        load_content_cached(copy, LUX, cache)
        news = copy / "news.yaml"
        news.write_text(
            news.read_text().replace("id: example-same-day-b", "id: example-same-day-a")
        )
        with pytest.raises(DataError, match="already used on line"):
            load_content_cached(copy, LUX, cache)

    def test_alias_across_items_uses_the_whole_file(self, copy: Path, tmp_path: Path) -> None:
        (copy / "news.yaml").write_text(
            "news:\n  - id: a\n    title: &t Shared\n    date: 2027-01-01\n"
            "  - id: b\n    title: *t\n    date: 2027-01-02\n"
        )
        (copy / "events.yaml").write_text("events: []\n")
        content = load_content_cached(copy, LUX, tmp_path / "cache.pickle")
        assert [n.title for n in content.news] == ["Shared", "Shared"]

    def test_damaged_cache_is_ignored(self, copy: Path, tmp_path: Path) -> None:
        cache = tmp_path / "cache.pickle"
        cache.write_bytes(b"not a pickle")
        assert load_content_cached(copy, LUX, cache) == load_content(copy, LUX)


    def test_an_empty_list_keeps_the_fast_path(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        data.mkdir()
        (data / "news.yaml").write_text(
            "news:\n  - id: a\n    title: A\n    date: 2027-01-01\n"
            "  - id: b\n    title: B\n    date: 2027-01-02\n"
        )
        (data / "events.yaml").write_text("events: []  # none planned\n")
        cache = tmp_path / "cache.pickle"
        loaded = load_content_cached(data, LUX, cache)
        assert cache.exists()  # the canonical path writes no cache
        assert loaded == load_content(data, LUX)
        assert [n.id for n in loaded.news] == ["b", "a"] and loaded.events == ()

    def test_document_markers_keep_the_fast_path(self, copy: Path, tmp_path: Path) -> None:
        _add_document_markers(copy)
        cache = tmp_path / "cache.pickle"
        loaded = load_content_cached(copy, LUX, cache)
        assert cache.exists()  # the canonical path writes no cache
        canonical = load_content(copy, LUX)
        assert loaded == canonical
        assert [n.line for n in loaded.news] == [n.line for n in canonical.news]
        assert [e.line for e in loaded.events] == [e.line for e in canonical.events]


class TestUnchangedFiles:
    """A file whose text did not change is not cut into pieces again."""

    def test_an_unchanged_file_is_not_cut_again(
        self, copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from cccn_feeds import parsecache

        cache = tmp_path / "cache.pickle"
        load_content_cached(copy, LUX, cache)
        cut: list[str] = []
        real = parsecache.split_items
        monkeypatch.setattr(
            parsecache, "split_items", lambda text, kind: cut.append(kind) or real(text, kind)
        )
        assert load_content_cached(copy, LUX, cache) == load_content(copy, LUX)
        assert cut == []
        events = copy / "events.yaml"
        events.write_text(events.read_text().replace("Example", "Exemple", 1))
        edited = load_content_cached(copy, LUX, cache)
        assert cut == ["events"]
        assert edited == load_content(copy, LUX)
        assert [e.line for e in edited.events] == [e.line for e in load_content(copy, LUX).events]
        # One edited item does not rewrite the parse cache; the cut still holds its text.
        again = load_content_cached(copy, LUX, cache)
        assert cut == ["events"]
        assert again == edited

    def test_another_time_zone_does_not_reuse_the_cut(self, copy: Path, tmp_path: Path) -> None:
        cache = tmp_path / "cache.pickle"
        load_content_cached(copy, LUX, cache)
        other = ZoneInfo("America/New_York")
        assert load_content_cached(copy, other, cache) == load_content(copy, other)
        assert load_content_cached(copy, LUX, cache) == load_content(copy, LUX)


# Pieces of files as people and tools write them, usual ones and odd ones: the fast path
# must give what the canonical path gives (content and lines, or the same message) for
# every file made of them.
_BEFORE = (
    ["# c\n", "\n", "---\n", "--- # c\n", "---\t\n", "  # c\n", "---\r\n"],
    ["---#c\n", "%YAML 1.1\n", "\u00a0\n", "# \x7f\n", "#\u2028\n"],
)
_HEADING = (
    ["news:\n", "news: []\n", "news: [ ]  # x\n", "news:  # c\n", "news:\r\n",
     "news: []\r\n", "news: [] #c\n"],
    ["news: [\t]\n", "news:[]\n", "news:#c\n", "news: !!seq\n", "news:\t\n",
     "news: [] # \x01\n"],
)  # fmt: skip
_ITEM = (
    ["  - id: a{n}\n    title: A\n    date: 2027-01-0{n}\n",
     "- id: a{n}\n  title: A\n  date: 2027-01-0{n}\n",
     "  - id: a{n}\n    title: A\n    date: 2027-01-0{n}\n    body: |+\n      x\n\n",
     "  # c\n", "\n"],
    ["  - {{id: a{n}, title: A, date: 2027-01-0{n}}}\n",
     "  - id: a{n}  # x\u2028    # y\n    title: A\n    date: 2027-01-0{n}\n",
     "  - id: a{n}\r    title: A\r    date: 2027-01-0{n}\r"],
)  # fmt: skip
_AFTER = (
    ["...\n", "... # e\n", "...\t\n", "# c\n", "\n", "...", "...\r\n"],
    ["...#x\n", "---\n", "...\n---\n", "  ...\n", "\u00a0\n", "foo\n", "...\n# \x1b\n"],
)


def _generated_files(count: int) -> list[str]:
    """``count`` files of those pieces, the same every run; nine pieces in ten usual."""
    rng = random.Random(2026)

    def pick(choices: tuple[list[str], list[str]]) -> str:
        return rng.choice(choices[0] if rng.random() < 0.9 else choices[1])

    files = []
    for _ in range(count):
        text = "".join(pick(_BEFORE) for _ in range(rng.randint(0, 2))) + pick(_HEADING)
        text += "".join(pick(_ITEM).format(n=n + 1) for n in range(rng.randint(0, 3)))
        files.append(text + "".join(pick(_AFTER) for _ in range(rng.randint(0, 2))))
    return files


def _outcome(load: Callable[[], Content]) -> tuple[object, ...]:
    try:
        content = load()
    except DataError as exc:
        return ("error", str(exc))
    return ("content", content, [n.line for n in content.news])


class TestGeneratedLayouts:
    """Files made of odd but plausible pieces load the same on both paths."""

    def test_same_outcome(self, tmp_path: Path) -> None:
        (tmp_path / "events.yaml").write_text("events: []\n", encoding="utf-8")
        differ, cut = [], 0
        for number, text in enumerate(_generated_files(600)):
            (tmp_path / "news.yaml").write_bytes(text.encode())
            cache = tmp_path / f"cache-{number}.pickle"
            canonical = _outcome(partial(load_content, tmp_path, LUX))
            for _ in range(2):  # cold, then from the cache
                if _outcome(partial(load_content_cached, tmp_path, LUX, cache)) != canonical:
                    differ.append(text)
            cut += split_items(text, "news") is not None
        assert not differ, differ[:5]
        assert cut > 100  # the fast path was taken often enough to be tested


LOADED: list[str] = []


def _loaded(name: str) -> str:
    LOADED.append(name)
    return name


class _Counted:
    """Records in LOADED when it is unpickled."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _loaded, ("payload",)


def test_a_cache_file_of_other_code_is_not_loaded(tmp_path: Path) -> None:
    """The version (format and code) is read first: a cache made by other code (an
    upgrade) is left unread instead of loaded for nothing (12,000 items at 10,000 news)."""
    from cccn_feeds.publish import dump_pickle_atomic, load_pickle

    path = tmp_path / "cache.pickle"
    dump_pickle_atomic(path, {"item": _Counted()}, "5:other code")
    LOADED.clear()
    assert load_pickle(path, "5:this code") == {}
    assert LOADED == []
    assert load_pickle(path, "5:other code") == {"item": "payload"}
    assert LOADED == ["payload"]


def test_a_cache_is_written_in_parts_and_read_whole(tmp_path: Path) -> None:
    """Payloads are pickled 1,000 entries at a time (one pickle would remember every
    object until its end), then a checksum; reading merges the parts, and a file cut
    short anywhere reads empty."""
    import pickle

    from cccn_feeds.publish import DIGEST_SIZE, dump_pickle_atomic, load_pickle

    path = tmp_path / "cache.pickle"
    payload = {f"key-{n}": (n, f"value {n}") for n in range(2500)}
    dump_pickle_atomic(path, payload, 1)
    whole = path.read_bytes()
    with path.open("rb") as handle:
        pickle.load(handle)  # the version
        sizes = []
        while handle.tell() < len(whole) - DIGEST_SIZE:  # then the checksum
            sizes.append(len(pickle.load(handle)))
    assert sizes == [1000, 1000, 500]
    assert load_pickle(path, 1) == payload
    for cut in (len(whole) - DIGEST_SIZE, len(whole) - 10, len(whole) // 2):
        path.write_bytes(whole[:cut])
        assert load_pickle(path, 1) == {}, cut


def test_a_damaged_cache_is_not_used(tmp_path: Path) -> None:
    """A changed byte anywhere (a disk error, say) and the cache is not read: a damaged
    item could otherwise be published as if it were in the data."""
    from cccn_feeds.publish import dump_pickle_atomic, load_pickle

    path = tmp_path / "cache.pickle"
    dump_pickle_atomic(path, {"news:1": (3, "A title"), "news:2": (9, "Another")}, 1)
    whole = path.read_bytes()
    at = whole.index(b"A title")
    path.write_bytes(whole[:at] + b"B" + whole[at + 1 :])
    assert load_pickle(path, 1) == {}
    path.write_bytes(whole)
    assert load_pickle(path, 1)["news:1"] == (3, "A title")
