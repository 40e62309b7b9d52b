"""Values a build keeps for the next one: rendered Markdown, the calendar's serialised
events, the page's event entries. A rebuild makes only those whose inputs changed.

They are kept in one file per side of the rendering: the feeds of news on one side; the
page, the calendars and the feeds of events on the other (see ``cccn_feeds.parallel``).
Each side reads its own file when it starts and writes it as it goes, in whichever
process renders it, so that neither process holds the other side's values, and on two
cores the two files are written at the same time.

A file is a header (the format version, and the settings and code the values were made
with), then one record per renderer of the side and one for the Markdown memo: each
record is its name, the length and checksum of its values, then its values, pickled in
parts (a damaged record is not used: it would publish wrong output). A renderer's
values are read when it starts and written when it is done, then let go of, rather
than held for the whole side (at 10,000 news, the page's event entries are 7 MB); the
memo is read at the start of the side (every renderer uses it) and written at its end.
A renderer that used no value (all its outputs were reused) keeps its record as it was.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from cccn_feeds.context import BuildContext
from cccn_feeds.publish import (
    DIGEST_SIZE,
    Hashing,
    blocks,
    checksum,
    dump_parts,
    load_parts,
)
from cccn_feeds.text import MEMO

Side = Literal["news", "events"]
VERSION = 5
GLOBAL = "global-key"  # the settings and code the stored values were made with
FILES: dict[Side, str] = {
    "news": "render-cache-news.pickle",
    "events": "render-cache-events.pickle",
}
LEGACY = "render-cache.pickle"  # both sides in one file, as earlier versions kept them


MARKDOWN = "markdown"  # the record of the Markdown memo

# Record name -> where its values start in the file, their length and their checksum.
Index = dict[str, tuple[int, int, bytes]]


def _index(path: Path, global_key: str | None) -> Index:
    """Where each record's values are in the file at ``path``; empty when the file is
    missing, cut short, of another version or made under another global key (None: any).
    A record whose bytes do not match its checksum is left out when it is read
    (:func:`_load`). A store only saves work: losing it costs a slower build."""
    found: Index = {}
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            header = pickle.load(handle)
            if not isinstance(header, dict) or header.get("version") != VERSION:
                return {}
            if global_key is not None and header.get(GLOBAL) != global_key:
                return {}
            while handle.tell() < size:
                (count,) = _LENGTH.unpack(handle.read(_LENGTH.size))
                name = handle.read(count).decode()
                (length,) = _LENGTH.unpack(handle.read(_LENGTH.size))
                digest = handle.read(DIGEST_SIZE)
                offset = handle.tell()
                if offset + length > size or len(digest) != DIGEST_SIZE:
                    return {}
                found[name] = (offset, length, digest)
                handle.seek(length, os.SEEK_CUR)
    except Exception:  # missing, cut short, or not ours
        return {}
    return found


def _load(path: Path, index: Index, name: str) -> dict[str, Any]:
    """The values of one record (empty: none, or damaged)."""
    if name not in index:
        return {}
    offset, length, digest = index[name]
    try:
        with path.open("rb") as handle:
            if checksum(handle, offset, offset + length) != digest:
                return {}
            handle.seek(offset)
            return load_parts(handle, offset + length)
    except Exception:  # changed or damaged since it was indexed
        return {}


def _copy(session: Session, name: str) -> None:
    """Write the record ``name`` of the file read into the new file as it is, unless its
    bytes do not match its checksum (then it is taken back out)."""
    offset, length, digest = session.index[name]
    handle = session.handle
    assert handle is not None
    start = handle.tell()
    handle.write(_title(name) + _LENGTH.pack(length) + digest)
    copying = Hashing(handle)
    with session.path.open("rb") as source:
        for block in blocks(source, offset, offset + length):
            copying.write(block)
    if copying.hash.digest() != digest:
        handle.seek(start)
        handle.truncate()


def read_store(path: Path) -> dict[str, Any]:
    """Every value of a store file in one dict, the Markdown memo under ``"markdown"`` and
    the global key under :data:`GLOBAL` (for tests and people; a build reads a record at
    a time)."""
    index = _index(path, None)
    if not index:
        return {}
    with path.open("rb") as handle:
        values: dict[str, Any] = {GLOBAL: pickle.load(handle).get(GLOBAL)}
    for name in index:
        record = _load(path, index, name)
        values.update({MARKDOWN: record} if name == MARKDOWN else record)
    return values


@dataclass(slots=True)
class Session:
    """One side's use of its store: the file read, and the new file being written."""

    path: Path
    index: Index  # the records of the file read
    tmp: str  # the new file, beside ``path``
    handle: IO[bytes] | None = None
    known: dict[str, Any] = field(default_factory=dict)  # the current record's values read
    markdown: dict[str, Any] = field(default_factory=dict)  # the memo read
    new: int = 0  # values written that the file read did not hold
    total: int = 0  # values written


@dataclass(frozen=True, slots=True)
class RenderStore:
    """Where the stored values of a build's two sides are, and what they must match."""

    state_dir: Path
    global_key: str  # values made under other settings or code are not used
    fresh: bool = False  # start from nothing (``build --force``)

    def path(self, side: Side) -> Path:
        """The file of one side."""
        return self.state_dir / FILES[side]

    def begin(self, side: Side) -> Session:
        """Give the Markdown memo the values kept for ``side``, and start the side's new
        file (a temporary file until :meth:`end`)."""
        path = self.path(side)
        index = {} if self.fresh else _index(path, self.global_key)
        session = Session(path, index, _temporary(path, os.getpid()))
        session.markdown = _load(path, index, MARKDOWN)
        MEMO.begin(session.markdown)
        session.handle = open(session.tmp, "wb")  # noqa: SIM115 (closed by end or abandon)
        pickle.dump({"version": VERSION, GLOBAL: self.global_key}, session.handle)
        return session

    def start(self, ctx: BuildContext, session: Session, name: str) -> None:
        """Give ``ctx`` the values renderer ``name`` kept last time."""
        session.known = _load(session.path, session.index, name)
        ctx.use_store(session.known)

    def flush(self, ctx: BuildContext, session: Session, name: str) -> None:
        """Write out the values renderer ``name`` made or reused, and let go of them and
        of those it was given. A renderer that used none (every output it makes was
        reused) keeps the record it had: the next build that renders may need it."""
        values = ctx.take_stored()
        ctx.end_store()
        if values:
            _write(session, name, {key: values[key] for key in sorted(values)})
            session.new += sum(1 for key in values if key not in session.known)
            session.total += len(values)
        elif name in session.index:
            _copy(session, name)
        session.known = {}

    def end(self, session: Session) -> None:
        """Keep the values the side used, once enough are new to be worth the rewrite;
        the session is over (see :func:`abandon` for a side that fails).

        A value missing from the file is only made again by the next build that renders
        its output, so a handful of new ones (one edited item) wait until more gather; the
        count is per side. Keys are written sorted, so that the file does not depend on
        the order in which the values were made.
        """
        try:
            markdown = MEMO.end()
            _write(session, MARKDOWN, {key: markdown[key] for key in sorted(markdown)})
            session.new += sum(1 for key in markdown if key not in session.markdown)
            session.total += len(markdown)
            if _worth_writing(session.new, session.total, bool(session.index)):
                assert session.handle is not None
                session.handle.flush()
                os.fsync(session.handle.fileno())
                session.handle.close()
                os.chmod(session.tmp, 0o644)
                os.replace(session.tmp, session.path)
        finally:
            abandon(session)

    def remove_temporaries(self, pid: int) -> None:
        """Remove the temporary files of process ``pid`` (a helper that failed: it held
        its side's file open while it rendered)."""
        for side in FILES:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_temporary(self.path(side), pid))


def _temporary(path: Path, pid: int) -> str:
    """The temporary file of ``path`` while process ``pid`` writes it. The name is fixed
    per process: the build holds the output lock, and what a killed build left is swept
    by the next one (``sweep_state_temporaries``)."""
    return str(path.with_name(f".{path.name}.{pid}.tmp"))


def _worth_writing(new: int, total: int, had_values: bool) -> bool:
    return new > max(16, total // 200) or bool(new and not had_values)


_LENGTH = struct.Struct("<Q")


def _title(name: str) -> bytes:
    title = name.encode()
    return _LENGTH.pack(len(title)) + title


def _write(session: Session, name: str, values: dict[str, Any]) -> None:
    """One record: its name, the length and checksum of its values, then the values,
    pickled straight into the file (length and checksum are filled in after them: no
    copy of the values in memory)."""
    handle = session.handle
    assert handle is not None
    handle.write(_title(name))
    slot = handle.tell()
    handle.write(bytes(_LENGTH.size + DIGEST_SIZE))
    hashing = Hashing(handle)
    dump_parts(hashing, values)
    end = handle.tell()
    handle.seek(slot)
    handle.write(_LENGTH.pack(end - slot - _LENGTH.size - DIGEST_SIZE) + hashing.hash.digest())
    handle.seek(end)


def abandon(session: Session) -> None:
    """Close and remove the side's temporary file if it is still there (a failed side)."""
    if session.handle is not None:
        session.handle.close()
        session.handle = None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(session.tmp)
