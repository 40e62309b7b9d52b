"""Incremental loading: parse and validate only the items whose text changed.

PyYAML builds every object in Python, so parsing is the largest cost of a big build.
A data file in the usual layout (comments and a ``---`` line, the ``news:``/``events:``
key, then block list items at one indentation, perhaps a closing ``...``; or the key with
``[]``) is cut into one piece of text per item; each piece is parsed and validated on its
own and the resulting model is remembered under a hash of its text. The next build
parses only the pieces it has not seen. Text no piece holds must be what YAML accepts
too, and line breaks other than LF and CRLF (which YAML counts as lines) leave the file
whole.

The fast path is used only for a success: at the first sign of trouble (a layout it does
not recognise, anchors or aliases that may cross items, any problem in a piece, duplicate
ids, a broken cross-reference) it hands over to the canonical whole-file path, which
produces the exact error messages. Both paths give equal Content, lines and messages
(tested, also on generated files of usual and odd pieces).

The cache holds only our own model objects and lives in the state folder, which belongs
to the build; it is read with pickle, so the state folder must not be writable by others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from cccn_feeds.codekey import code_key
from cccn_feeds.errors import DataError
from cccn_feeds.load import parse_yaml, read_text
from cccn_feeds.model import Content, Event, NewsItem
from cccn_feeds.publish import dump_pickle_atomic, load_pickle
from cccn_feeds.validate import (
    _Checker,
    display_path,
    load_content,
    make_content,
    validate_event_item,
    validate_news_item,
)

CACHE_NAME = "parse-cache.pickle"
SPLITS_NAME = "split-cache.pickle"  # beside CACHE_NAME: how each data file was cut
_VERSION = 5


def _file_version() -> str:
    """What a cache file must have been written with to be read: this format and this
    code (the pieces of other code would all miss; their file is not even loaded)."""
    return f"{_VERSION}:{code_key()}"

_COMMENT_OR_BLANK = re.compile(r"^[ \t]*(?:#.*)?\r?\n?$")  # YAML's blanks: space and tab
_DOCUMENT_START = re.compile(r"^---(?:[ \t]+(?:#.*)?)?\r?\n?$")
_DOCUMENT_END = re.compile(r"^\.\.\.(?:[ \t]+(?:#.*)?)?\r?\n?$")
_LONE_CR = re.compile(r"\r(?!\n)")

Item = NewsItem | Event


def split_items(text: str, key: str) -> list[tuple[int, str]] | None:
    """The file's list items as (first line, text), or None when the layout is unusual.

    Anchors, aliases and tags need no check here: an alias to an anchor in another item
    fails to parse on its own, which sends the whole build down the canonical path.
    """
    if text.startswith("\t") or "\n\t" in text or "\r\t" in text:  # a tab indents a line
        return None
    # Line breaks YAML counts but the pieces' line numbers would not.
    if ("\r" in text and _LONE_CR.search(text)) or any(c in text for c in "\x85\u2028\u2029"):
        return None
    lines = text.splitlines(keepends=True)
    index = 0
    started = False  # the document start marker, "---", that some editors write first
    while index < len(lines):
        if not _COMMENT_OR_BLANK.match(lines[index]):
            if started or not _DOCUMENT_START.match(lines[index]):
                break
            started = True
        index += 1
    if index == len(lines):
        return None
    tail = len(lines)  # and the document end marker, "...", with nothing after it
    while tail > index + 1 and _COMMENT_OR_BLANK.match(lines[tail - 1]):
        tail -= 1
    unparsed = lines[: index + 1]  # text no piece holds: YAML must accept it as well
    if tail - 1 > index and _DOCUMENT_END.match(lines[tail - 1]):
        unparsed += lines[tail - 1 :]
        lines = lines[: tail - 1]
    rest = "".join(lines[index + 1 :])
    heading = lines[index].rstrip("\r\n")
    if re.match(rf"^{key}:[ \t]+\[[ \t]*\][ \t]*(?:#.*)?$", heading):  # "news: []": nothing
        if not all(_COMMENT_OR_BLANK.match(line) for line in rest.splitlines()):
            return None
        return None if _refused("".join(unparsed) + rest) else []
    if not re.match(rf"^{key}:(?:[ \t]+(?:#.*)?)?$", heading):
        return None
    first_item = re.search(r"^( *)- ", rest, re.MULTILINE)
    if first_item is None:
        return None
    indent = first_item.group(1)
    head = rest[: first_item.start()]
    if not all(_COMMENT_OR_BLANK.match(line) for line in head.splitlines()):
        return None
    if _refused("".join(unparsed) + head):
        return None
    # Every line after the key is an item start, more indented than the dash, blank or a
    # comment; anything else (another key, odd indentation) goes the canonical way.
    odd = re.search(
        rf"^(?!{indent}- |{indent} |[ \t]*(?:#|\r?$))", rest[first_item.start() :], re.MULTILINE
    )
    if odd is not None and odd.start() < len(rest) - first_item.start():
        return None
    offset = index + 2 + head.count("\n")
    starts = [m.start() for m in re.finditer(rf"^{indent}- ", rest, re.MULTILINE)]
    pieces: list[tuple[int, str]] = []
    line = offset
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(rest)
        piece = rest[start:end]
        pieces.append((line, piece))
        line += piece.count("\n")
    return pieces


def _refused(text: str) -> bool:
    """Whether ``text`` holds a character YAML refuses (a control character, say)."""
    return yaml.reader.Reader.NON_PRINTABLE.search(text) is not None


class _Fallback(Exception):
    """The fast path cannot decide; use the canonical one."""


def _piece_key(kind: str, tz: ZoneInfo, text: str) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{_VERSION}\0{code_key()}\0{kind}\0{tz.key}\0".encode())
    digest.update(text.encode())
    return digest.hexdigest()


def _validate_piece(kind: str, text: str, first: int, name: str, index: int, tz: ZoneInfo) -> Item:
    """Parse and validate one item's text with line numbers relative to its first line."""
    try:
        document = parse_yaml(text, name)
    except DataError:
        raise _Fallback from None
    if not isinstance(document, list) or len(document) != 1 or not isinstance(document[0], dict):
        raise _Fallback
    ck = _Checker(name)
    path = f"{kind}[{index}]"
    item: Item | None
    if kind == "news":
        item = validate_news_item(document[0], ck, path, {}, tz)
    else:
        item = validate_event_item(document[0], ck, path, {}, tz)
    if item is None or ck.problems:
        raise _Fallback
    return item


Job = tuple[str, str, int, str, int]  # kind, text, first line, file name, index


# A file as cut last time: the hash of its text, (piece key, first line) per item, and the
# text of the pieces the parse cache did not hold then (they are parsed from it again).
Split = tuple[str, list[tuple[str, int]], dict[str, str]]


def _pieces(
    kind: str,
    path: Path,
    name: str,
    tz: ZoneInfo,
    cache: dict[str, tuple[int, Item]],
    jobs: dict[str, Job],
    splits: dict[str, Split],
) -> list[tuple[str, int]]:
    """The file's items as (piece key, first line); pieces not in ``cache`` join ``jobs``.

    A file whose text is the one cut last time is not cut again: ``splits`` remembers
    each file's pieces under a hash of its text and the time zone.
    """
    text = read_text(path, name)
    digest = hashlib.blake2b(f"{tz.key}\0{text}".encode(), digest_size=16).hexdigest()
    known = splits.get(kind)
    if known is not None and known[0] == digest:
        found, texts = known[1], known[2]
        if all(key in cache or key in texts for key, _ in found):
            for index, (key, first) in enumerate(found):
                if key not in cache and key not in jobs:
                    jobs[key] = (kind, texts[key], first, name, index)
            return found
    pieces = split_items(text, kind)
    if pieces is None:
        raise _Fallback
    found = []
    texts = {}
    for index, (first, piece) in enumerate(pieces):
        key = _piece_key(kind, tz, piece)
        if key not in cache:
            texts[key] = piece
            jobs.setdefault(key, (kind, piece, first, name, index))
        found.append((key, first))
    splits[kind] = (digest, found, texts)
    return found


# Parsing is shared with a helper process from this many new pieces on (a fork and the
# way back of the results cost about as much as parsing a few hundred pieces).
_PARALLEL_FROM = 1000


def _parse(jobs: dict[str, Job], tz: ZoneInfo, parallel: bool) -> dict[str, tuple[int, Item]]:
    """Parse and validate the new pieces: every other one in a helper when there are many."""

    def parse(part: list[tuple[str, Job]]) -> list[tuple[str, tuple[int, Item]]]:
        done = []
        for key, (kind, text, first, name, index) in part:
            item = _validate_piece(kind, text, first, name, index, tz)
            done.append((key, (item.line, item)))
        return done

    todo = list(jobs.items())
    if not parallel or len(todo) < _PARALLEL_FROM:
        return dict(parse(todo))
    from cccn_feeds.parallel import run_beside

    # Every other piece: both halves get as many events (slower to check) as news.
    here, there = run_beside(lambda: parse(todo[0::2]), lambda: parse(todo[1::2]))
    mine = here.get()
    try:
        theirs = there.get()
    except _Fallback:
        raise
    except Exception:  # the helper died or failed: the canonical path parses everything
        raise _Fallback from None
    return dict(mine + theirs)


def _assemble(
    kind: str, found: list[tuple[str, int]], known: dict[str, tuple[int, Item]],
    used: dict[str, tuple[int, Item]], keys: dict[str, str],
) -> list[Item]:  # fmt: skip
    items: list[Item] = []
    for key, first in found:
        entry = used[key] = known[key]
        relative, item = entry
        keys[f"{kind}:{item.id}"] = key
        # Cached models are this build's own objects (fresh from the pickle): set the line
        # in place rather than copying 10,000 frozen objects.
        object.__setattr__(item, "line", relative + first - 1)
        items.append(item)
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise _Fallback
    return items


PENDING: dict[Path, dict[str, Any]] = {}


def save_pending(cache_path: Path) -> None:
    """Write what the last load of ``cache_path`` parsed anew (the caller holds the lock)."""
    take_pending(cache_path)()


def take_pending(cache_path: Path) -> Callable[[], None]:
    """What :func:`save_pending` does, to be done later (on two cores, by the process
    done with its side of the rendering first)."""
    writes = [
        (path, PENDING.pop(path))
        for path in (cache_path, cache_path.with_name(SPLITS_NAME))
        if path in PENDING
    ]

    def write() -> None:
        for path, payload in writes:
            dump_pickle_atomic(path, payload, _file_version())

    return write


def _read_cache(path: Path) -> dict[str, tuple[int, Item]]:
    return load_pickle(path, _file_version())


def load_content_cached(
    data_dir: Path, tz: ZoneInfo, cache_path: Path, *, parallel: bool = True, fresh: bool = False
) -> Content:
    """Like :func:`cccn_feeds.validate.load_content`, reusing items parsed by earlier builds
    (with ``fresh``, none: every item is parsed anew and the cache made again).

    With ``parallel``, many new items are parsed on two cores (see cccn_feeds.parallel).
    """
    names = {key: display_path(data_dir / f"{key}.yaml") for key in ("news", "events")}
    cache = {} if fresh else _read_cache(cache_path)
    split_path = cache_path.with_name(SPLITS_NAME)
    splits: dict[str, Split] = (
        {} if fresh else load_pickle(split_path, _file_version())
    )
    before = dict(splits)
    used: dict[str, tuple[int, Item]] = {}
    keys: dict[str, str] = {}
    jobs: dict[str, Job] = {}
    try:
        found = {
            kind: _pieces(kind, data_dir / f"{kind}.yaml", names[kind], tz, cache, jobs, splits)
            for kind in ("news", "events")
        }
        known = {**cache, **_parse(jobs, tz, parallel)}
        news = _assemble("news", found["news"], known, used, keys)
        events = _assemble("events", found["events"], known, used, keys)
        news_ids = {n.id for n in news}
        event_ids = {e.id for e in events}
        for item in news:
            assert isinstance(item, NewsItem)
            if item.event and item.event not in event_ids:
                raise _Fallback
        for event in events:
            assert isinstance(event, Event)
            if event.news and event.news not in news_ids:
                raise _Fallback
    except (_Fallback, DataError):
        return load_content(data_dir, tz)
    # Rewriting the cache costs more than parsing a few pieces again: a handful of new
    # pieces waits until enough have gathered (they are parsed anew meanwhile).
    misses = sum(1 for key in used if key not in cache)
    if misses > max(16, len(used) // 200) or (misses and not cache):
        PENDING[cache_path] = used
        # The parse cache will hold every piece: the cut needs no text of its own.
        splits = {kind: (digest, found, {}) for kind, (digest, found, _) in splits.items()}
    if splits != before:  # small: written whenever a file changed
        PENDING[split_path] = splits
    content = make_content(
        [n for n in news if isinstance(n, NewsItem)],
        [e for e in events if isinstance(e, Event)],
        names["news"],
        names["events"],
    )
    return dataclasses.replace(content, keys=keys)
