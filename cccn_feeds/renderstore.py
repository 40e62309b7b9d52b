"""Values a build keeps for the next one: rendered Markdown, the calendar's serialised
events, the page's event entries. A rebuild makes only those whose inputs changed.

They are kept in one file per side of the rendering: the feeds of news on one side; the
page, the calendars and the feeds of events on the other (see ``cccn_feeds.parallel``).
Each side reads its own file when it starts and writes it as it goes, in whichever
process renders it, so that neither process holds the other side's values, and on two
cores the two files are written at the same time.

A file is a header (the format version and the settings and code the values were made
with), then one pickled dict of values per renderer of the side, then the Markdown memo:
the values a renderer made are written out, and let go of, once it is done, rather than
held until the whole side is (at 10,000 news, the page's entries are 7 MB).
"""

from __future__ import annotations

import contextlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from cccn_feeds.context import BuildContext
from cccn_feeds.text import MEMO

Side = Literal["news", "events"]
VERSION = 3
GLOBAL = "global-key"  # the settings and code the stored values were made with
FILES: dict[Side, str] = {
    "news": "render-cache-news.pickle",
    "events": "render-cache-events.pickle",
}
LEGACY = "render-cache.pickle"  # both sides in one file, as earlier versions kept them


def read_store(path: Path) -> dict[str, Any]:
    """Every value of a store file, the Markdown memo under ``"markdown"`` and the global
    key under :data:`GLOBAL`; empty when the file is missing, damaged or of another
    version (a store only saves work: losing it costs a slower build, nothing else)."""
    values: dict[str, Any] = {}
    try:
        with path.open("rb") as handle:
            header = pickle.load(handle)
            if not isinstance(header, dict) or header.get("version") != VERSION:
                return {}
            values[GLOBAL] = header.get(GLOBAL)
            while True:
                try:
                    chunk = pickle.load(handle)
                except EOFError:
                    break
                if not isinstance(chunk, dict):
                    return {}
                values.update(chunk)
    except Exception:  # missing, cut short, or not ours
        return {}
    return values


@dataclass(slots=True)
class Session:
    """One side's use of its store: the values read, and the new file being written."""

    path: Path
    known: dict[str, Any]
    handle: IO[bytes] | None = None  # the temporary file, beside ``path``
    tmp: str = ""
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

    def begin(self, ctx: BuildContext, side: Side) -> Session:
        """Give ``ctx`` and the Markdown memo the values kept for ``side``, and start the
        side's new file (a temporary file until :meth:`end`)."""
        path = self.path(side)
        known = {} if self.fresh else read_store(path)
        if known.get(GLOBAL) != self.global_key:
            known = {}
        ctx.use_store(known)
        MEMO.begin(known.get("markdown", {}))
        session = Session(path, known, tmp=_temporary(path, os.getpid()))
        session.handle = open(session.tmp, "wb")  # noqa: SIM115 (closed by end or abandon)
        pickle.dump({"version": VERSION, GLOBAL: self.global_key}, session.handle)
        return session

    def flush(self, ctx: BuildContext, session: Session) -> None:
        """Write out the values made or reused since the last flush, and let go of them
        (one renderer's: a later renderer of the side does not ask for them)."""
        values = ctx.take_stored()
        if values and session.handle is not None:
            _write(session, {key: values[key] for key in sorted(values)})
            session.new += sum(1 for key in values if key not in session.known)
            session.total += len(values)

    def end(self, ctx: BuildContext, session: Session) -> None:
        """Keep the values the side used, once enough are new to be worth the rewrite;
        the session is over (see :func:`abandon` for a side that fails).

        A value missing from the file is only made again by the next build that renders
        its output, so a handful of new ones (one edited item) wait until more gather; the
        count is per side. Keys are written sorted, so that the file does not depend on
        the order in which the values were made.
        """
        try:
            self.flush(ctx, session)
            ctx.end_store()
            markdown = MEMO.end()
            before = session.known.get("markdown", {})
            assert session.handle is not None
            _write(session, {"markdown": {key: markdown[key] for key in sorted(markdown)}})
            session.new += sum(1 for key in markdown if key not in before)
            session.total += len(markdown)
            if _worth_writing(session.new, session.total, bool(session.known)):
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


def _write(session: Session, chunk: dict[str, Any]) -> None:
    assert session.handle is not None
    pickle.dump(chunk, session.handle, protocol=pickle.HIGHEST_PROTOCOL)


def abandon(session: Session) -> None:
    """Close and remove the side's temporary file if it is still there (a failed side)."""
    if session.handle is not None:
        session.handle.close()
        session.handle = None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(session.tmp)
