"""Work on two cores: a forked helper does one part of a job while this process does the
other.

The helper is a fork, so it shares what this process has made (the content, the context,
the output lock) without copying it; its result comes back pickled through a pipe. A
build uses one for the two costly stages: parsing the data (each process parses every
other item not parsed before) and rendering. Rendering has two sides (:func:`sides`):
the helper renders the page, the calendars and the feeds of events and stages their
files, this process the feeds of news; the publisher then records the helper's files as
its own and commits everything at once. Each side reads and writes its own stored values
(``cccn_feeds.renderstore``), so only what the publisher records of the helper's files
(paths, digests, temporary files, input keys) comes back through the pipe.
On one core the two sides run one after the other. The bytes are those of a build on one
core.

Work stays on one core when the process has other threads (forking a threaded process
can copy a lock another thread holds; ``serve`` builds in a child process of its own for
that reason, see ``cccn_feeds.isolated``), when there is one core, or where ``fork`` does
not exist.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Generic, TypeVar

from cccn_feeds.context import BuildContext
from cccn_feeds.publish import Output, Publisher
from cccn_feeds.render import stream_all
from cccn_feeds.render.feeditems import release_items
from cccn_feeds.renderstore import RenderStore, Side, abandon

A = TypeVar("A")
B = TypeVar("B")

# Given to the helper, in this order: the page, the calendars and the feed documents of
# events (their items are made only for them); this process renders the news feeds. About
# as much work on each side at every size measured (bench/run.py). The page comes first:
# its bytes and the garbage of making its entries are the helper's largest passing
# allocation, and memory freed early is reused by what follows instead of adding to the
# end of the helper, when both processes hold the most.
HELPER_RENDERERS = ("cccn_feeds.render.html", "cccn_feeds.render.ics")
SHARED_RENDERERS = ("cccn_feeds.render.feeds", "cccn_feeds.render.jsonfeed")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[A]):
    """What one side of :func:`run_beside` gave: a value or the exception it raised."""

    value: A | None = None
    error: BaseException | None = None

    def get(self) -> A:
        """The value, or the exception raised."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def may_fork() -> bool:
    """Whether work may go to a forked helper here and now."""
    return hasattr(os, "fork") and (os.cpu_count() or 1) > 1 and threading.active_count() == 1


def run_beside(
    here: Callable[[], A],
    there: Callable[[], B],
    cleanup: Callable[[int], None] = lambda _pid: None,
) -> tuple[Outcome[A], Outcome[B]]:
    """Run ``here`` in this process and ``there`` in a forked helper at the same time.

    Both outcomes are returned, whichever failed; the helper has ended by then. When the
    helper did not finish its work (it raised, died or was stopped), ``cleanup`` gets its
    process id, to remove what it may have left. An interrupt here (Ctrl-C) stops the
    helper at once. Without a helper (see :func:`may_fork`) the two run one after the
    other, here first.
    """
    if not may_fork():
        return _outcome(here), _outcome(there)
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the helper: never returns
        os.close(read_end)
        _helper(there, write_end, parent)
    os.close(write_end)
    stopped = True
    try:
        mine = _outcome(here)
        stopped = False
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        with os.fdopen(read_end, "rb") as pipe:
            theirs = _answer(pipe)
            pipe.read()  # whatever follows an answer cut short
        os.waitpid(pid, 0)
        if stopped or theirs.error is not None:
            cleanup(pid)
    return mine, theirs


def _answer(pipe: BinaryIO) -> Outcome[Any]:
    """The helper's outcome, read as it arrives (nothing or a part: it died)."""
    try:
        outcome = pickle.load(pipe)
    except Exception:  # nothing, or cut short
        return Outcome(error=RuntimeError("the helper process ended without an answer"))
    return outcome if isinstance(outcome, Outcome) else Outcome(error=RuntimeError("?"))


def _outcome(work: Callable[[], A]) -> Outcome[A]:
    try:
        return Outcome(value=work())
    except Exception as exc:  # handed to the caller, which raises it
        return Outcome(error=exc)


def _helper(work: Callable[[], Any], fd: int, parent: int) -> None:
    """Do the work, send the outcome through ``fd`` and exit at once: nothing of the
    parent's (the lock, temporaries, state) is cleaned up or flushed from here."""
    code = 0
    try:
        _die_with_parent(parent)
        try:
            outcome: Outcome[Any] = Outcome(value=work())
        except BaseException as exc:  # handed to the parent, which raises it
            code = 1
            outcome = Outcome(error=_portable(exc))
        with os.fdopen(fd, "wb") as pipe:
            pickle.dump(outcome, pipe, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """Linux: end the helper if the build is killed, so it does not hold the output lock
    longer than the build (its temporaries are swept by the next build)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # killed before the request was made
        os._exit(1)


def give_back_memory() -> None:
    """Return the free pages of the C heap to the system (glibc's ``malloc_trim``).

    Freed memory otherwise stays with the process. On two cores, the build waits for its
    helper once its side is rendered: without this, what that side let go of would still
    count, at the moment both processes hold the most (at 10,000 news, about 20 MB).
    """
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, AttributeError):
        return
    trim(0)


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it can cross the pipe, else its traceback as text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # any failure to pickle
        text = "".join(traceback.format_exception(exc))
        return RuntimeError(f"the helper process failed:\n{text}")
    return exc


# --- rendering --------------------------------------------------------------------------

Staged = list[tuple[str, str, str | None]]  # path, digest, temporary file (None: unchanged)


def sides(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The renderers of ``names`` split into the two sides of a build: the feeds of news
    (and any renderer not named here), then the page, the calendars and the feeds of
    events, each in the order rendered."""
    news = tuple(f"{n}:news" if n in SHARED_RENDERERS else n
                 for n in names if n not in HELPER_RENDERERS)  # fmt: skip
    events = tuple(n for n in HELPER_RENDERERS if n in names)
    events += tuple(f"{n}:events" for n in names if n in SHARED_RENDERERS)
    return news, events


def render_into(
    ctx: BuildContext,
    names: tuple[str, ...],
    publisher: Publisher,
    store: RenderStore,
    chore: Callable[[], None] = lambda: None,
    parallel: bool = True,
) -> None:
    """Render the outputs of ``names`` into ``publisher``, side by side (see :func:`sides`),
    on two cores when ``parallel`` and possible (:func:`may_fork`): the helper renders the
    side of events. Each side reads and writes its own stored values (``store``).

    ``chore`` (writing the parse cache) is done, on two cores, by whichever process is
    done with its side first, while the other still renders: it costs no time then.
    Not before: it reads every item, and each page of them either process writes to
    while the two still share it is copied; once a side is done, most are copied
    already. On one core it is done first.
    """
    news, events = sides(names)
    if not news or not events or not parallel or not may_fork():
        chore()
        _render(ctx, "news", news, publisher, store)
        _render(ctx, "events", events, publisher, store)
        return
    ctx.compute_shared()
    # What both processes hold now (the content, the modules) is left out of the garbage
    # collector's rounds meanwhile: a round writes to every object it visits, and each
    # page it writes to is then copied into the process that wrote it (at 10,000 news,
    # 3 to 5 MB fewer for the two processes together).
    # (Not when the caller froze objects itself: unfreezing would undo that.)
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()

    def cleanup(pid: int) -> None:  # a helper that did not finish
        publisher.remove_temporaries(pid)
        store.remove_temporaries(pid)

    # One byte in a pipe whose writing end is closed: the first process to read it does
    # the chore (a read of a pipe is atomic); the other reads the end of the pipe.
    token, writing = os.pipe()
    os.write(writing, b"1")
    os.close(writing)

    def first_done() -> None:
        if os.read(token, 1):
            chore()

    try:
        here, there = run_beside(
            lambda: _render(ctx, "news", news, publisher, store, then=first_done),
            lambda: _stage(ctx, events, publisher, store, then=first_done),
            cleanup,
        )
    finally:
        os.close(token)
        if freeze:
            gc.unfreeze()
    staged, keys = there.get()
    for path, known, tmp in staged:  # adopted even after a failure here: abort removes them
        publisher.adopt(path, known, tmp)
    here.get()
    ctx.made_elsewhere(keys)


def _side(
    ctx: BuildContext, side: Side, names: tuple[str, ...], store: RenderStore
) -> Iterator[tuple[str, Output]]:
    """The outputs of one side, with its stored values; they are kept once it is done,
    and this process then lets go of them and of the side's feed items."""
    if not names:
        return
    session = store.begin(side)
    try:
        for name in names:
            store.start(ctx, session, name)
            yield from stream_all(ctx, (name,))
            store.flush(ctx, session, name)
    except BaseException:  # a renderer failed, or the consumer stopped (GeneratorExit)
        abandon(session)
        raise
    store.end(session)
    del session  # the values loaded for this side: freed before the pages are given back
    release_items(ctx, side)
    give_back_memory()


def _render(
    ctx: BuildContext,
    side: Side,
    names: tuple[str, ...],
    publisher: Publisher,
    store: RenderStore,
    then: Callable[[], None] = lambda: None,
) -> None:
    for path, data in _side(ctx, side, names, store):
        publisher.add(path, data)
    then()


def _stage(
    ctx: BuildContext,
    names: tuple[str, ...],
    publisher: Publisher,
    store: RenderStore,
    then: Callable[[], None] = lambda: None,
) -> tuple[Staged, dict[str, str]]:
    """In the helper: render the side of events and stage its files, then do ``then``;
    what the publisher needs back. On a failure the parent removes the files staged here
    (by this process's id)."""
    staged: Staged = [
        (path, *publisher.stage(path, data)) for path, data in _side(ctx, "events", names, store)
    ]
    then()
    paths = {path for path, _, _ in staged}
    return staged, {k: v for k, v in ctx.output_keys.items() if k in paths}
