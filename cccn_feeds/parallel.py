"""Rendering on two cores: a forked process renders some outputs while this one renders
the rest.

The helper is a fork of the build taken after loading and validation, so it shares the
content, the context and the output lock without copying them. It stages its outputs
beside their targets (as :meth:`Publisher.stage` does) and sends back, through a pipe,
what the publisher records of them, the input keys of those outputs, the values they
stored for the next build and the Markdown they rendered. The publisher then commits
everything at once: the published folder changes as it does for a build on one core,
and the bytes are the same.

A build runs on one core when the process has other threads (``serve``: forking a
threaded process can copy a lock another thread holds), when there is one core, or where
``fork`` does not exist.
"""

from __future__ import annotations

import os
import pickle
import threading
import traceback
from collections.abc import Iterable
from typing import Any

from cccn_feeds.context import BuildContext
from cccn_feeds.publish import Publisher
from cccn_feeds.render import stream_all
from cccn_feeds.text import MEMO

# Renderers given to the helper: about as much work as the feeds (RSS, Atom, JSON) left
# to this process at every size measured (bench/run.py).
HELPER_RENDERERS = ("cccn_feeds.render.ics", "cccn_feeds.render.html")


def render_into(ctx: BuildContext, names: tuple[str, ...], publisher: Publisher) -> None:
    """Render the outputs of ``names`` into ``publisher``, on two cores when possible."""
    theirs = tuple(n for n in names if n in HELPER_RENDERERS)
    mine = tuple(n for n in names if n not in HELPER_RENDERERS)
    if not theirs or not mine or not _may_fork():
        _render(ctx, names, publisher)
        return
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the helper
        os.close(read_end)
        _helper(ctx, theirs, publisher, write_end, parent)  # never returns
    os.close(write_end)
    try:
        _render(ctx, mine, publisher)
    finally:  # the helper's files are adopted even when this side failed (abort removes them)
        with os.fdopen(read_end, "rb") as pipe:
            answer = pipe.read()
        os.waitpid(pid, 0)
        _adopt(ctx, publisher, answer)


def _may_fork() -> bool:
    return hasattr(os, "fork") and (os.cpu_count() or 1) > 1 and threading.active_count() == 1


def _render(ctx: BuildContext, names: tuple[str, ...], publisher: Publisher) -> None:
    for path, data in stream_all(ctx, names):
        publisher.add(path, data)


def _helper(
    ctx: BuildContext, names: tuple[str, ...], publisher: Publisher, fd: int, parent: int
) -> None:
    """Render, stage, report through ``fd`` and exit without running any cleanup of the
    parent's (the lock, the publisher's temporaries and the state stay the parent's)."""
    code = 0
    staged: list[tuple[str, str, str | None]] = []
    try:
        _die_with_parent(parent)
        try:
            for path, data in stream_all(ctx, names):
                staged.append((path, *publisher.stage(path, data)))
            paths = {path for path, _, _ in staged}
            keys = {k: v for k, v in ctx.output_keys.items() if k in paths}
            answer: Any = ("done", staged, keys, ctx.used_store, MEMO.used)
        except BaseException as exc:  # handed to the parent, which raises it
            code = 1
            answer = ("failed", staged, _portable(exc))
        with os.fdopen(fd, "wb") as pipe:
            pickle.dump(answer, pipe, protocol=pickle.HIGHEST_PROTOCOL)
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


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it can cross the pipe, else its traceback as text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # any failure to pickle
        text = "".join(traceback.format_exception(exc))
        return RuntimeError(f"rendering failed in the helper process:\n{text}")
    return exc


def _adopt(ctx: BuildContext, publisher: Publisher, answer: bytes) -> None:
    """Record the helper's outputs; raise its error, or one for a helper that died."""
    if not answer:
        raise RuntimeError("the rendering helper process died without an answer")
    result = pickle.loads(answer)
    _record(publisher, result[1])
    if result[0] == "failed":
        raise result[2]
    _, _, keys, stored, markdown = result
    ctx.made_elsewhere(keys, stored)
    MEMO.used.update(markdown)


def _record(publisher: Publisher, staged: Iterable[tuple[str, str, str | None]]) -> None:
    for path, known, tmp in staged:
        publisher.adopt(path, known, tmp)
