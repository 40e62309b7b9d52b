"""Builds of the long-running service, each in a fresh child process.

``cccn-feeds serve`` holds threads (the HTTP server, the scheduler, the file watcher), so
a build made in the service's process would run on one core (see :func:`cccn_feeds.
parallel.may_fork`), and the memory it took would stay with the service until it stops:
a build of 10,000 news leaves about 60 MB behind. In a child process the build is the
one-shot ``cccn-feeds build``: two cores, and everything it took is given back when it
ends.

The child:

- starts with SIGINT and SIGTERM blocked (from the service's thread that starts it) and
  ignores them before it does anything else: a stopping service waits for a build in
  progress, and a Ctrl-C in a terminal or a service manager signalling the whole group
  must not cut a build short between two renames;
- imports this package from where the service imported it (the service's ``sys.path``,
  in isolated mode: nothing from the working directory or the environment shadows it),
  and refuses to build when the package's files changed since the service started
  (settings are handed over pickled: the two sides must be the same code);
- reads the settings and the moment on its standard input and writes its outcome (the
  result, or the exception raised) on a pipe of its own, so nothing it prints can mix
  with the answer. Its log lines go to the standard error, as the service's do.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from cccn_feeds.errors import CccnError
from cccn_feeds.parallel import Outcome

if TYPE_CHECKING:
    from cccn_feeds.build import BuildResult
    from cccn_feeds.settings import Settings

log = logging.getLogger("cccn_feeds.isolated")

_SIGNALS = {signal.SIGINT, signal.SIGTERM}

# Run by ``python -I -c``; argv[1] is the answer's file descriptor.
_BOOT = """\
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
import sys
sys.path[:] = %r
from cccn_feeds.isolated import main
main(int(sys.argv[1]))
"""


def build_in_child(settings: Settings, now: datetime, lock_wait: float = 60.0) -> BuildResult:
    """Build as :func:`cccn_feeds.build.build` does, in a child process; its exception
    (a data error, a held lock, a failure) is raised here. When nothing changed, no child
    is started: the check costs a few reads here (a child takes about 0.15 s to start)."""
    from cccn_feeds.build import up_to_date
    from cccn_feeds.codekey import code_key

    done = up_to_date(settings, now)
    if done is not None:
        return done
    request = pickle.dumps((settings, now, lock_wait, code_key()), pickle.HIGHEST_PROTOCOL)
    read_end, write_end = os.pipe()
    try:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # inherited by the child
        try:
            child = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOT % (sys.path,), str(write_end)],
                stdin=subprocess.PIPE,
                pass_fds=(write_end,),
                start_new_session=True,  # a Ctrl-C meant for the service does not reach it
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        try:
            assert child.stdin is not None
            with child.stdin:
                child.stdin.write(request)
        except BrokenPipeError:  # it died before reading: its status says how
            pass
        answer = pipe.read()
    status = child.wait()
    try:
        outcome = pickle.loads(answer)
    except Exception:  # nothing, or cut short
        outcome = None
    if not isinstance(outcome, Outcome):
        raise RuntimeError(f"the build process ended without an answer ({_status(status)})")
    result: BuildResult = outcome.get()
    return result


def _status(code: int) -> str:
    """How a child ended, for people: ``exit status 1`` or ``killed by SIGKILL``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def main(answer_fd: int) -> None:
    """The child: read the request, build, write the outcome on ``answer_fd``."""
    from cccn_feeds.service import configure_logging

    configure_logging()
    outcome: Outcome[BuildResult]
    try:
        settings, now, lock_wait, key = pickle.load(sys.stdin.buffer)
        from cccn_feeds.codekey import code_key

        if key != code_key():
            raise CccnError(
                "the program's files changed since the service started; restart the "
                "service to build with them"
            )
        from cccn_feeds.build import build

        outcome = Outcome(value=build(settings, now=now, lock_wait=lock_wait))
    except Exception as exc:  # handed to the service, which logs it
        if not isinstance(exc, CccnError):  # a bug: its traceback is only known here
            log.exception("the build failed")
        outcome = Outcome(error=_sendable(exc))
    try:
        with os.fdopen(answer_fd, "wb") as pipe:
            pickle.dump(outcome, pipe, protocol=pickle.HIGHEST_PROTOCOL)
    except BrokenPipeError:  # the service is gone: nobody to tell
        pass


def _sendable(exc: Exception) -> Exception:
    """The exception itself when it can be pickled back, else one that says the same."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # any failure to pickle
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc
