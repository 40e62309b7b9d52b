"""Builds of the long-running service, each in a fresh child process.

``cccn-feeds serve`` holds threads (the HTTP server, the scheduler, the file watcher), so
a build made in its own process would run on one core (see :func:`cccn_feeds.parallel.
may_fork`), and the memory it took would stay with the service until it stops: a build
of 10,000 news leaves about 90 MB behind. In a child process the build is the one-shot
``cccn-feeds build``: two cores, and everything it took is given back when it ends.

The child reads the settings and the moment to build for (pickled) on its standard input
and writes its outcome (pickled: the result, or the exception it raised) on a private
copy of its standard output; anything else it prints goes to the standard error, with its
log lines. It ignores SIGINT and SIGTERM: the service waits for a build in progress before
it stops (each file is replaced atomically either way), and a Ctrl-C in a terminal or a
service manager stopping the whole group must not cut a build short between two renames.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from cccn_feeds.parallel import Outcome, portable

if TYPE_CHECKING:
    from cccn_feeds.build import BuildResult
    from cccn_feeds.settings import Settings


def build_in_child(settings: Settings, now: datetime, lock_wait: float = 60.0) -> BuildResult:
    """Build as :func:`cccn_feeds.build.build` does, in a child process; its exception
    (a data error, a held lock, a failure) is raised here. When nothing changed, no child
    is started: the check costs a few reads here (a child would cost 0.2 s to start)."""
    from cccn_feeds.build import up_to_date

    done = up_to_date(settings, now)
    if done is not None:
        return done
    request = pickle.dumps((settings, now, lock_wait), protocol=pickle.HIGHEST_PROTOCOL)
    child = subprocess.run(
        [sys.executable, "-m", "cccn_feeds.isolated"],
        input=request,
        stdout=subprocess.PIPE,
        check=False,
        start_new_session=True,  # a Ctrl-C meant for the service does not reach it
    )
    try:
        outcome = pickle.loads(child.stdout)
    except Exception:  # nothing, or cut short: the child died
        outcome = None
    if not isinstance(outcome, Outcome):
        raise RuntimeError(
            f"the build process ended without an answer (exit status {child.returncode})"
        )
    result: BuildResult = outcome.get()
    return result


def main() -> None:
    """The child: read the request, build, write the outcome."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not mix with the answer
    from cccn_feeds.service import configure_logging

    configure_logging()
    outcome: Outcome[BuildResult]
    try:
        settings, now, lock_wait = pickle.load(sys.stdin.buffer)
        from cccn_feeds.build import build

        outcome = Outcome(value=build(settings, now=now, lock_wait=lock_wait))
    except Exception as exc:  # handed to the service, which logs it
        outcome = Outcome(error=portable(exc))
    with answer:
        pickle.dump(outcome, answer, protocol=pickle.HIGHEST_PROTOCOL)


if __name__ == "__main__":
    main()
