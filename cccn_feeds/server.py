"""Serving the output folder over HTTP: a small WSGI app run by waitress.

Only regular files inside the output folder are served: no path segment may be empty,
``.``, ``..`` or hidden (so the state folder ``.state`` and the temporary files of an
atomic publish stay private), the resolved path must stay inside the folder (no symlink
escapes), and a state folder configured elsewhere inside it is refused too. Everything
else is 404.

Files are kept in memory with their strong ``ETag`` (a hash of the bytes) and gzip
variant, keyed by the file's inode, size and mtime, so a conditional GET costs one
``stat`` and a dictionary lookup. ``publish`` never touches unchanged files, so the
validators stay true across builds.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol

ACCESS_LOG = logging.getLogger("cccn_feeds.access")

# Extension -> (media type, cache kind). The nginx snippet in deploy/ mirrors this table.
CONTENT_TYPES: dict[str, tuple[str, str]] = {
    ".rss": ("application/rss+xml; charset=utf-8", "feed"),
    ".atom": ("application/atom+xml; charset=utf-8", "feed"),
    ".json": ("application/json; charset=utf-8", "feed"),  # JSON Feeds: see _JSON_FEED
    ".ics": ("text/calendar; charset=utf-8", "calendar"),
    ".opml": ("text/x-opml; charset=utf-8", "feed"),
    ".html": ("text/html; charset=utf-8", "page"),
    ".xsl": ("text/xsl; charset=utf-8", "asset"),
    ".css": ("text/css; charset=utf-8", "asset"),
    ".js": ("text/javascript; charset=utf-8", "asset"),
    ".svg": ("image/svg+xml", "asset"),
    ".png": ("image/png", "asset"),
    ".ico": ("image/vnd.microsoft.icon", "asset"),
    ".webmanifest": ("application/manifest+json", "asset"),
    ".txt": ("text/plain; charset=utf-8", "page"),
    ".xml": ("application/xml; charset=utf-8", "feed"),
}
JSON_FEED_TYPE = "application/feed+json; charset=utf-8"
_JSON_FEED = b'"https://jsonfeed.org/version/'
DEFAULT_TYPE = ("application/octet-stream", "asset")
# Seconds a client may reuse each kind without asking; the calendar follows [calendar] refresh.
MAX_AGE = {"feed": 900, "page": 300, "asset": 86400}
_COMPRESSIBLE = ("text/", "application/rss+xml", "application/atom+xml", "application/json",
                 "application/feed+json", "application/xml", "image/svg+xml",
                 "application/manifest+json")  # fmt: skip
_MAX_CACHED = 16 * 1024 * 1024
_FOLDER_NAME = "index.html"

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


class WSGIApp(Protocol):
    """A WSGI application."""

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]: ...


Health = Callable[[], tuple[int, Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class _Entry:
    """One file as served: its bytes, validators and gzip variant."""

    key: tuple[int, int, int]
    body: bytes
    gz: bytes | None
    etag: str
    etag_gz: str
    last_modified: str
    mtime: int
    content_type: str
    cache_control: str


def media_type(path: str, head: bytes = b"") -> tuple[str, str]:
    """(Content-Type, cache kind) of an output file, from its name (and a JSON Feed's head)."""
    suffix = os.path.splitext(path)[1].lower()
    kind = CONTENT_TYPES.get(suffix, DEFAULT_TYPE)
    if suffix == ".json" and _JSON_FEED in head[:512]:
        return (JSON_FEED_TYPE, "feed")
    return kind


def cache_control(kind: str, calendar_max_age: int) -> str:
    """The Cache-Control value for one kind of file."""
    age = calendar_max_age if kind == "calendar" else MAX_AGE[kind]
    return f"public, max-age={age}"


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding value allows gzip (q-values honoured)."""
    explicit: float | None = None
    star: float | None = None
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        name = name.strip().lower()
        if name in {"gzip", "x-gzip"}:
            explicit = max(q, explicit or 0.0)
        elif name == "*":
            star = q
    if explicit is not None:
        return explicit > 0
    return star is not None and star > 0


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison of If-None-Match with our tag (RFC 9110 13.1.2)."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


def _not_modified_since(header: str, mtime: int) -> bool:
    """Whether If-Modified-Since is at or after the file's time (whole seconds)."""
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        return False
    return mtime <= int(since.timestamp())


class OutputApp:
    """WSGI app serving one output folder, plus ``/healthz`` when a health source is given."""

    def __init__(
        self,
        root: Path,
        *,
        private: Iterable[Path] = (),
        calendar_max_age: int = 21600,
        health: Health | None = None,
    ) -> None:
        self.root = Path(os.path.realpath(root))
        self.private = tuple(Path(os.path.realpath(p)) for p in private)
        self.calendar_max_age = calendar_max_age
        self.health = health
        self._cache: dict[str, _Entry] = {}

    def clear(self) -> None:
        """Forget the cached files (after a settings change)."""
        self._cache = {}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request."""
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in {"GET", "HEAD"}:
            return _plain(start_response, "405 Method Not Allowed", b"method not allowed\n",
                          method, [("Allow", "GET, HEAD")])  # fmt: skip
        path = _path_info(environ)
        if path == "/healthz":
            return self._healthz(method, start_response)
        entry = self._lookup(path) if path is not None else None
        if entry is None:
            return _plain(start_response, "404 Not Found", b"not found\n", method)
        return self._send(entry, environ, method, start_response)

    def _healthz(self, method: str, start_response: StartResponse) -> Iterable[bytes]:
        import json

        status, body = self.health() if self.health else (200, {"status": "ok"})
        data = (json.dumps(body, indent=1, sort_keys=True) + "\n").encode("utf-8")
        reason = "200 OK" if status == 200 else "503 Service Unavailable"
        headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
        ]
        start_response(reason, headers)
        return [b""] if method == "HEAD" else [data]

    def _resolve(self, path: str) -> Path | None:
        """The real file for a request path, or None when it must not be served."""
        rel = path[1:]
        if rel == "" or rel.endswith("/"):
            rel += _FOLDER_NAME
        parts = rel.split("/")
        if any(p in {"", ".", ".."} or p.startswith(".") or "\\" in p or "\0" in p for p in parts):
            return None
        real = Path(os.path.realpath(self.root.joinpath(*parts)))
        if real == self.root or self.root not in real.parents:
            return None
        if any(real == p or p in real.parents for p in self.private):
            return None
        return real

    def _lookup(self, path: str) -> _Entry | None:
        """The cached entry for a request path, refreshed when the file changed."""
        real = self._resolve(path)
        if real is None:
            return None
        try:
            st = os.stat(real)
        except OSError:
            self._cache.pop(path, None)
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        entry = self._cache.get(path)
        if entry is not None and entry.key == key:
            return entry
        try:
            body = real.read_bytes()
        except OSError:
            return None
        entry = self._entry(real.name, key, body, int(st.st_mtime))
        if len(body) <= _MAX_CACHED:
            self._cache[path] = entry
        return entry

    def _entry(self, name: str, key: tuple[int, int, int], body: bytes, mtime: int) -> _Entry:
        """Validators, type and gzip variant of a file's bytes."""
        ctype, kind = media_type(name, body)
        tag = hashlib.sha256(body).hexdigest()[:32]
        gz: bytes | None = None
        if ctype.startswith(_COMPRESSIBLE) and len(body) > 256:
            packed = gzip.compress(body, compresslevel=6, mtime=0)
            gz = packed if len(packed) < len(body) else None
        return _Entry(
            key=key,
            body=body,
            gz=gz,
            etag=f'"{tag}"',
            etag_gz=f'"{tag}-gz"',
            last_modified=formatdate(mtime, usegmt=True),
            mtime=mtime,
            content_type=ctype,
            cache_control=cache_control(kind, self.calendar_max_age),
        )

    def _send(
        self, entry: _Entry, environ: Environ, method: str, start_response: StartResponse
    ) -> Iterable[bytes]:
        """200 or 304 for one file, choosing the gzip variant when the client allows it."""
        use_gz = entry.gz is not None and accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", ""))
        etag = entry.etag_gz if use_gz else entry.etag
        headers = [
            ("ETag", etag),
            ("Last-Modified", entry.last_modified),
            ("Cache-Control", entry.cache_control),
            ("Access-Control-Allow-Origin", "*"),
        ]
        content_type = entry.content_type
        browser = content_type.startswith(_FEED_TYPES)
        if browser:
            headers.append(("Vary", "Accept, Accept-Encoding" if entry.gz else "Accept"))
            browser = opened_in_browser(environ.get("HTTP_ACCEPT", ""))
            if browser:  # let the browser apply feed.xsl instead of showing raw XML
                content_type = "application/xml; charset=utf-8"
        elif entry.gz is not None:
            headers.append(("Vary", "Accept-Encoding"))
        inm = environ.get("HTTP_IF_NONE_MATCH")
        ims = environ.get("HTTP_IF_MODIFIED_SINCE")
        fresh = (
            _etag_matches(inm, etag)
            if inm is not None
            else ims is not None and _not_modified_since(ims, entry.mtime)
        )
        if fresh:
            start_response("304 Not Modified", headers)
            return [b""]
        body = entry.gz if use_gz and entry.gz is not None else entry.body
        headers += [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if use_gz:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [b""] if method == "HEAD" else [body]


_FEED_TYPES = ("application/rss+xml", "application/atom+xml")


def opened_in_browser(accept: str) -> bool:
    """Whether a request for a feed comes from a browser window rather than a feed reader.

    Browsers navigating to an address ask for ``text/html`` first; feed readers ask for
    feed types or ``*/*``. A browser gets the feed as ``application/xml``, the type for
    which browsers apply the feed's XSL stylesheet (for the feed types they show raw XML
    or download the file); readers get the feed types.
    """
    types = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    return "text/html" in types and not any(t in _FEED_TYPES for t in types)


def _path_info(environ: Environ) -> str | None:
    """PATH_INFO as text (WSGI gives it decoded, as latin-1), or None when it is not UTF-8."""
    raw = environ.get("PATH_INFO", "") or "/"
    try:
        text: str = raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None
    return text if text.startswith("/") else None


def _plain(
    start_response: StartResponse,
    status: str,
    body: bytes,
    method: str,
    extra: list[tuple[str, str]] | None = None,
) -> Iterable[bytes]:
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        *(extra or []),
    ]
    start_response(status, headers)
    return [b""] if method == "HEAD" else [body]


class AccessLog:
    """WSGI middleware writing one line per request (waitress logs no access lines itself).

    The line is the Combined Log Format followed by the time taken in milliseconds.
    """

    def __init__(self, app: WSGIApp, logger: logging.Logger = ACCESS_LOG) -> None:
        self.app = app
        self.logger = logger

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Call the app, then log what it answered."""
        started = time.perf_counter()
        seen: dict[str, Any] = {}

        def recording(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            seen["status"] = status
            seen["headers"] = headers
            return start_response(status, headers, *exc)

        body = self.app(environ, recording)
        if self.logger.isEnabledFor(logging.INFO):
            self._log(environ, seen, (time.perf_counter() - started) * 1000)
        return body

    def _log(self, environ: Environ, seen: Mapping[str, Any], millis: float) -> None:
        status = str(seen.get("status", "500")).split(" ", 1)[0]
        length = "-"
        if environ.get("REQUEST_METHOD") != "HEAD" and not status.startswith("304"):
            for name, value in seen.get("headers", []):
                if name.lower() == "content-length":
                    length = value
        path = environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        when = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        self.logger.info(
            '%s - - [%s] "%s %s %s" %s %s "%s" "%s" %.1fms',
            environ.get("REMOTE_ADDR", "-"),
            when,
            _log_safe(environ.get("REQUEST_METHOD", "-")),
            _log_safe(path.encode("latin-1", "replace").decode("utf-8", "replace")),
            _log_safe(environ.get("SERVER_PROTOCOL", "-")),
            status,
            length,
            _log_safe(environ.get("HTTP_REFERER", "-")),
            _log_safe(environ.get("HTTP_USER_AGENT", "-")),
            millis,
        )


_UNSAFE_LOG = re.compile(r'[\x00-\x1f\x7f-\x9f"\\]')


def _log_safe(text: str) -> str:
    """A request value fit for one log line: controls as \\xHH, quotes and backslashes escaped
    (as nginx does), so a request can neither forge a line nor break the format."""
    return _UNSAFE_LOG.sub(
        lambda m: "\\" + m[0] if m[0] in '"\\' else f"\\x{ord(m[0]):02x}", text
    )
