"""Command line: parse options, call one library function, turn errors into exit codes.

Exit codes: 0 success; 1 a problem in the data or configuration (or, for
``check-links``, a link declared broken); 2 a usage error. Heavy libraries are imported
only inside the command that needs them, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from cccn_feeds.errors import CccnError, DataError

EXIT_OK, EXIT_DATA, EXIT_USAGE = 0, 1, 2


def _common(parser: argparse.ArgumentParser, *, out: bool = True, now: bool = False) -> None:
    parser.add_argument("--data", metavar="DIR", help="folder with news.yaml and events.yaml")
    if out:
        parser.add_argument("--out", metavar="DIR", help="output folder (default: feeds)")
        parser.add_argument(
            "--state", metavar="DIR", help="state folder (default: a hidden folder in the output)"
        )
    parser.add_argument(
        "--config", metavar="FILE", help="configuration file (default: ./cccn-feeds.toml if any)"
    )
    if now:
        parser.add_argument(
            "--now",
            metavar="DATETIME",
            help="fix the clock, e.g. 2026-06-01T12:00 (site time) or 2026-06-01T10:00Z",
        )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command and its help."""
    parser = argparse.ArgumentParser(
        prog="cccn-feeds",
        description="Publish the CCCN news and events as RSS, Atom, JSON Feed, iCalendar and HTML.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("build", help="validate the data and publish every output once")
    _common(p, now=True)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    p.add_argument(
        "--force", action="store_true", help="render everything even when nothing changed"
    )
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("validate", help="check the data files and report every problem")
    _common(p, out=False)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of news.yaml or events.yaml")
    p.add_argument("which", choices=("news", "events"), help="which file's schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("check-links", help="check that linked articles and pages still answer")
    _common(p, now=True)
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=cmd_check_links)

    p = sub.add_parser("serve", help="build, keep the output fresh on a schedule, and serve it")
    _common(p)
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8000)")
    p.set_defaults(func=cmd_serve)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cccn-feeds")
    except PackageNotFoundError:  # pragma: no cover
        return "0"


def settings_from(args: argparse.Namespace) -> Any:
    """Settings from the config file, environment and the command's flags."""
    from cccn_feeds.settings import load_settings

    paths = {
        "data": getattr(args, "data", None),
        "output": getattr(args, "out", None),
        "state": getattr(args, "state", None),
    }
    server = {"host": getattr(args, "host", None), "port": getattr(args, "port", None)}
    return load_settings(args.config, overrides={"paths": paths, "server": server})


def parse_now(text: str | None, tz: Any) -> datetime | None:
    """The --now value as an aware datetime (site time when it has no offset)."""
    if not text:
        return None
    from cccn_feeds.validate import _Checker, _Invalid, parse_when

    ck = _Checker("--now")
    try:
        when = parse_when(text, tz, ck, None, "", allow_date=False)
    except _Invalid:
        raise DataError(ck.problems) from None
    assert isinstance(when, datetime)
    return when


def cmd_build(args: argparse.Namespace) -> int:
    """cccn-feeds build."""
    from cccn_feeds.build import build

    settings = settings_from(args)
    result = build(settings, now=parse_now(args.now, settings.site.tz), force=args.force)
    if not args.quiet:
        for label, paths in (
            ("written", result.report.written),
            ("removed", result.report.removed),
        ):
            for path in paths:
                print(f"  {label:8} {settings.paths.output_dir / path}")
    print(f"built {result.summary()}")
    if not args.quiet:
        _warn_local_base_url(settings)
    return EXIT_OK


def _warn_local_base_url(settings: Any) -> None:
    """A one-shot build for publication should not carry the local default address."""
    from urllib.parse import urlsplit

    host = urlsplit(settings.site.base_url).hostname or ""
    if host in {"127.0.0.1", "localhost", "::1"}:
        print(
            f"note: the feeds give their address as {settings.site.base_url}; set [site] "
            "base_url (or CCCN_BASE_URL) to the public address before publishing them",
            file=sys.stderr,
        )


def cmd_validate(args: argparse.Namespace) -> int:
    """cccn-feeds validate."""
    from cccn_feeds.validate import load_content

    settings = settings_from(args)
    content = load_content(settings.paths.data_dir, settings.site.tz)
    print(
        f"ok: {len(content.news)} news items in {content.news_file}, "
        f"{len(content.events)} events in {content.events_file}"
    )
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    """cccn-feeds schema news|events."""
    from cccn_feeds.schema import schema_text

    sys.stdout.write(schema_text(args.which))
    return EXIT_OK


def cmd_check_links(args: argparse.Namespace) -> int:
    """cccn-feeds check-links."""
    from cccn_feeds.linkcheck import run_cli

    try:
        settings = settings_from(args)
        return int(
            run_cli(
                settings,
                json_path=args.json,
                now=parse_now(args.now, settings.site.tz),
                progress=not args.no_progress,
            )
        )
    except DataError as exc:
        # Exit 1 means "a link is declared broken"; a problem with the command's input is
        # a usage error here, so scripts can tell the two apart.
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print("nothing was checked", file=sys.stderr)
        return EXIT_USAGE
    except CccnError as exc:
        print(f"cccn-feeds: {exc}", file=sys.stderr)
        return EXIT_USAGE


def cmd_serve(args: argparse.Namespace) -> int:
    """cccn-feeds serve."""
    from cccn_feeds.service import run_service

    return int(run_service(settings_from(args)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cccn-feeds`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except DataError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(
            f"{count} problem{'s' if count != 1 else ''} found; nothing was published",
            file=sys.stderr,
        )
        return EXIT_DATA
    except CccnError as exc:
        print(f"cccn-feeds: {exc}", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """The console script: :func:`main`, then an exit that skips tearing down the
    interpreter. Everything is written and closed by then; freeing a large build's objects
    one by one only delayed the exit (by about a tenth of a one-item rebuild's time)."""
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (``| head``) has nothing more to take.
        with contextlib.suppress(BrokenPipeError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
