"""Checking one link: requests, redirects, retries, timeouts and the verdict.

Pages get one streamed GET that reads only until the ``<title>`` and the first heading
have been seen (for soft-404 detection), then closes. Images and other binary files get
a HEAD, and a streamed GET whose body is never read where HEAD is refused or answers an
error. Redirects are followed by hand so that every hop passes the address guard and its
status is recorded. Every read has a socket timeout and the whole check a deadline.
"""

from __future__ import annotations

import codecs
import contextlib
import html
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import requests
from urllib3.exceptions import NameResolutionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from cccn_feeds.linkcheck_net import AddressPolicy, BlockedAddress, HostGate

VERDICTS = (
    "ok", "redirected", "moved", "broken", "server_error", "timeout", "unreachable",
    "blocked", "rate_limited", "soft_404",
)  # fmt: skip
PASSING = frozenset({"ok", "redirected", "moved"})
# Says nothing about the link itself: the history neither grows nor clears.
INCONCLUSIVE = frozenset({"rate_limited"})

REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERMANENT = frozenset({301, 308})
# HEAD answers that do not prove anything: confirm with GET (410 and 429 are meant).
HEAD_DOUBT = frozenset(range(400, 600)) - {410, 429}
READ_LIMIT = 256 * 1024  # bytes of a page read at most, looking for title and heading
BINARY_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".svg", ".bmp", ".ico", ".tif", ".tiff",
    ".pdf", ".zip", ".gz", ".tgz", ".7z", ".mp3", ".mp4", ".m4a", ".webm", ".ogg", ".mov",
    ".avi", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".odp", ".epub",
    ".ics", ".csv",
})  # fmt: skip
_TITLE_RE = re.compile(rb"<title\b[^>]*>(.*?)</title\s*>", re.I | re.S)
_HEADING_RE = re.compile(rb"<h[1-6]\b[^>]*>(.*?)</h[1-6]\s*>", re.I | re.S)
_TAG_RE = re.compile(r"<[^>]*>")
# A title or heading says "not found" when one of its parts (split at the separators
# sites put between page name and site name) is nothing but such a phrase; an article
# whose title merely contains the words ("404 patients enrolled", "no longer available
# in Luxembourg") is not taken for one.
_SEGMENT_SPLIT = re.compile(r"\s+[|–—:·•»-]\s+|\s*[|–—·•»]\s*")
_SOFT_404_SEGMENT = re.compile(
    r"(?:oops[!.,]?\s*)?(?:sorry[!.,]?\s*)?(?:(?:http\s+)?error\s*)?(?:404\s*)?(?:error\s*)?"
    r"(?:[-:]\s*)?(?:"
    r"(?:(?:the|this|that)\s+)?(?:(?:page|file|document|content|article|resource)\s+)?"
    r"(?:you\s+(?:requested|are\s+looking\s+for)\s+)?"
    r"(?:(?:was\s+|is\s+)?not\s+found|(?:could\s+not|can['’]?t|cannot)\s+be\s+found"
    r"|(?:does\s+not|doesn['’]t)\s+exist(?:\s+any\s*more)?|no\s+longer\s+(?:exists|available))"
    r"|(?:(?:cette\s+)?page\s+)?(?:est\s+)?introuvable|page\s+non\s+trouv[ée]e"
    r"|(?:cette\s+)?page\s+n['’]existe\s+(?:pas|plus)"
    r"|(?:(?:die\s+)?seite\s+)?(?:wurde\s+)?nicht\s+gefunden|(?:die\s+)?seite\s+existiert\s+nicht"
    r"|(?:s[äa]it\s+)?net\s+fonnt|p[aá]gina\s+no\s+encontrada|pagina\s+non\s+trovata"
    r"|pagina\s+niet\s+gevonden|p[aá]gina\s+n[aã]o\s+encontrada"
    r")",
    re.I,
)
_BARE_404 = re.compile(r"(?:(?:http\s+)?error\s*)?404(?:\s*error)?", re.I)


_NOT_FOUND_PATH_RE = re.compile(r"/(?:404|not[-_]?found|page[-_]?not[-_]?found)(?:\.\w+)?/?$", re.I)
_HOME_PATH_RE = re.compile(r"^/?(?:[a-z]{2}(?:[-_][a-z]{2})?/)?(?:index\.\w+)?$", re.I)


class DeadlineExceeded(Exception):
    """The link's total time ran out."""


@dataclass(frozen=True, slots=True)
class FetchConfig:
    """How one link is checked; made from the [linkcheck] settings, which hold the defaults."""

    timeout: float
    deadline: float
    retries: int
    backoff: float
    retry_after_max: float
    max_redirects: int
    accept: frozenset[int]
    read_limit: int = READ_LIMIT


@dataclass(slots=True)
class Outcome:
    """What checking one link found."""

    url: str
    verdict: str
    status: int | None
    final_url: str
    detail: str = ""
    hops: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 1
    seconds: float = 0.0
    title: str = ""


@dataclass(slots=True)
class _Answer:
    """The parts of one HTTP answer the verdict needs."""

    status: int
    location: str | None
    retry_after: str | None
    content_type: str
    title: str = ""
    heading: str = ""


@dataclass(slots=True)
class _Try:
    """One attempt's outcome, and whether (and after how long) to try again."""

    outcome: Outcome
    transient: bool = False
    wait: float | None = None  # Retry-After, when the server said


def host_key(url: str) -> str:
    """The politeness key of an address: host name and port."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default = 443 if parts.scheme == "https" else 80
    return f"{(parts.hostname or '').lower()}:{port or default}"


def is_binary(url: str, field_name: str) -> bool:
    """Whether a link is checked with HEAD: images, and files by their extension."""
    if field_name == "image":
        return True
    path = urlsplit(url).path.lower()
    dot = path.rfind(".")
    return dot > path.rfind("/") and path[dot:] in BINARY_EXTENSIONS


def parse_retry_after(value: str | None, cap: float, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (seconds or an HTTP date), capped."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), cap)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, seconds), cap)


def backoff_delay(base: float, attempt: int) -> float:
    """Exponential backoff with jitter: base x 2^attempt, plus up to half of that again."""
    delay = base * float(2**attempt)
    return delay + random.uniform(0, delay / 2)  # jitter, not security


def soft_404_text(*texts: str) -> bool:
    """Whether a page's title or first heading says it is a "not found" page."""
    for text in texts:
        for segment in _SEGMENT_SPLIT.split(" ".join(text.split())):
            segment = segment.strip(" .!")
            if not segment or not re.search(
                r"404|found|exist|introuvable|trouv|gefunden|fonnt"
                r"|encontrad|trovat|gevonden|available",
                segment,
                re.I,
            ):
                continue
            if _BARE_404.fullmatch(segment) or _SOFT_404_SEGMENT.fullmatch(segment):
                return True
    return False


def _clean(raw: bytes, charset: str) -> str:
    """Markup bytes to one line of plain text."""
    text = raw.decode(charset or "utf-8", errors="replace")
    return " ".join(html.unescape(_TAG_RE.sub(" ", text)).split())


def _set_read_timeout(resp: requests.Response, seconds: float) -> None:
    """Tighten the socket timeout so one read cannot outlast the deadline."""
    conn = getattr(resp.raw, "connection", None)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.settimeout(max(0.01, seconds))


def read_title(
    resp: requests.Response, deadline: float, timeout: float, limit: int
) -> tuple[str, str]:
    """Read a page only until its title and first heading are seen (or ``limit`` bytes)."""
    ctype = resp.headers.get("Content-Type", "").lower()
    if ctype and "html" not in ctype and "xml" not in ctype:
        return "", ""
    charset = resp.encoding if resp.encoding and "charset" in ctype else "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:  # a label no codec knows: the page is still there
        charset = "utf-8"
    buf = bytearray()
    title = heading = None
    while len(buf) < limit and (title is None or heading is None):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("the page kept sending past the deadline")
        _set_read_timeout(resp, min(timeout, remaining))
        try:
            chunk = resp.raw.read1(16384, decode_content=True)
        except (Urllib3Timeout, TimeoutError):
            if time.monotonic() >= deadline - 0.05:
                raise DeadlineExceeded("the page kept sending past the deadline") from None
            raise
        if not chunk:
            break
        buf += chunk
        title = title or _TITLE_RE.search(buf)
        heading = heading or _HEADING_RE.search(buf)
    return (
        _clean(title.group(1), charset) if title else "",
        _clean(heading.group(1), charset) if heading else "",
    )


@dataclass
class Slots:
    """The host slots one link's requests hold; the first may come pre-started by the queue."""

    gate: HostGate[Any]
    held: str | None = None
    queue_limit: float = 90.0  # the longest a request may wait for a slot on a busy host
    waited: float = 0.0  # time spent waiting for slots, not charged to the link's deadline

    @contextlib.contextmanager
    def request(self, host: str, deadline: float) -> Iterator[None]:
        """Hold a slot on ``host`` for one request.

        Waiting for a slot (a redirect to a host that other links keep busy) is politeness,
        not slowness of the link: it moves the link's deadline instead of using it up.
        """
        if self.held == host:
            self.held = None
        else:
            self.close()
            began = time.monotonic()
            if not self.gate.acquire(host, began + self.queue_limit):
                raise DeadlineExceeded(f"no free slot for {host} in {self.queue_limit:g} s")
            self.waited += time.monotonic() - began
        try:
            yield
        finally:
            self.gate.release(host)

    def close(self) -> None:
        """Give back a slot that was not used."""
        if self.held is not None:
            self.gate.release(self.held)
            self.held = None


def _is_home(path: str) -> bool:
    return bool(_HOME_PATH_RE.match(path or "/"))


def _status_try(
    url: str,
    status: int,
    hops: list[dict[str, Any]],
    cfg: FetchConfig,
    retry_after: str | None,
    title: str,
    heading: str,
) -> _Try:
    """The verdict for the final answer of a chain."""
    final = hops[-1]["url"] if hops else url
    out = Outcome(url, "ok", status, final, hops=hops, title=title)
    if status in cfg.accept:
        redirects = [h["status"] for h in hops[:-1]]
        start, end = urlsplit(url), urlsplit(final)
        if soft_404_text(title, heading):
            out.verdict, out.detail = "soft_404", f"the page says: {title or heading}"
        elif redirects and not _is_home(start.path) and _is_home(end.path):
            out.verdict, out.detail = "soft_404", "a deep link redirects to the home page"
        elif redirects and _NOT_FOUND_PATH_RE.search(end.path):
            out.verdict, out.detail = "soft_404", "redirects to a not-found page"
        elif redirects and all(s in PERMANENT for s in redirects):
            out.verdict, out.detail = "moved", f"moved permanently to {final}"
        elif redirects:
            out.verdict, out.detail = "redirected", f"redirects to {final}"
        return _Try(out)
    if status == 429:
        out.verdict, out.detail = "rate_limited", "too many requests (429)"
        return _Try(out, True, parse_retry_after(retry_after, cfg.retry_after_max))
    if status >= 500:
        out.verdict, out.detail = "server_error", f"server error {status}"
        wait = parse_retry_after(retry_after, cfg.retry_after_max) if status == 503 else None
        return _Try(out, True, wait)
    out.verdict = "broken"
    out.detail = "gone (410)" if status == 410 else f"status {status} is not accepted"
    return _Try(out, status == 408)


def _exception_try(url: str, exc: BaseException, hops: list[dict[str, Any]]) -> _Try:
    """The verdict for a request that failed without an answer."""
    out = Outcome(url, "unreachable", None, url, hops=hops)
    if isinstance(exc, BlockedAddress):
        out.verdict, out.detail = "blocked", str(exc)
        return _Try(out)
    if isinstance(exc, DeadlineExceeded | requests.Timeout | Urllib3Timeout | TimeoutError):
        out.verdict, out.detail = (
            "timeout",
            str(exc)
            if isinstance(exc, DeadlineExceeded)
            else (
                "no answer before the connect timeout"
                if isinstance(exc, requests.ConnectTimeout)
                else "no answer before the read timeout"
            ),
        )
        return _Try(out, not isinstance(exc, DeadlineExceeded))
    if isinstance(exc, requests.exceptions.SSLError):
        out.detail = "TLS error"
        return _Try(out)
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 10:
        chain.append(cur)
        cur = (
            cur.__cause__
            or cur.__context__
            or (cur.args[0] if cur.args and isinstance(cur.args[0], BaseException) else None)
        )
    if any(isinstance(e, NameResolutionError) for e in chain) or "NameResolution" in repr(exc):
        out.detail = "the host name does not resolve"
        return _Try(out)
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema):
        out.verdict, out.detail = "broken", f"invalid address: {exc}"
        return _Try(out)
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in repr(exc):
        out.detail = "connection refused"
    elif any(isinstance(e, ConnectionResetError) for e in chain) or "reset" in repr(exc):
        out.detail = "connection reset"
    else:
        out.detail = f"connection failed: {type(exc).__name__}"
    return _Try(out, True)


@dataclass
class Checker:
    """Checks links with one worker's session, sharing the host gate and address policy."""

    session: requests.Session
    gate: HostGate[Any]
    policy: AddressPolicy
    cfg: FetchConfig

    def check(self, url: str, binary: bool, held: str | None = None) -> Outcome:
        """Check one link with retries; ``held`` is a slot already started for its host."""
        started = time.monotonic()
        deadline = started + self.cfg.deadline
        slots = Slots(self.gate, held, queue_limit=max(30.0, 3 * self.cfg.deadline))
        attempt = 0
        try:
            while True:
                result = self._attempt(url, binary, slots, deadline)
                if not result.transient or attempt >= self.cfg.retries:
                    break
                wait = result.wait
                if wait is None:
                    wait = backoff_delay(self.cfg.backoff, attempt)
                elif result.outcome.hops:
                    self.gate.defer(host_key(result.outcome.final_url), wait)
                if time.monotonic() + wait >= deadline + slots.waited:
                    result.outcome.detail += " (no time left to retry)"
                    break
                slots.close()
                time.sleep(wait)
                attempt += 1
        finally:
            slots.close()
        result.outcome.attempts = attempt + 1
        result.outcome.seconds = round(time.monotonic() - started, 3)
        return result.outcome

    def _attempt(self, url: str, binary: bool, slots: Slots, deadline: float) -> _Try:
        """Follow one chain of redirects from ``url`` to a final answer."""
        hops: list[dict[str, Any]] = []
        current = url
        seen = {urldefrag(url)[0]}
        use_head = binary
        while True:
            parts = urlsplit(current)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                out = Outcome(url, "blocked", None, current, hops=hops)
                out.detail = f"only http and https addresses are checked: {current}"
                if parts.scheme in {"http", "https"}:
                    out.verdict, out.detail = "broken", f"no host in {current}"
                return _Try(out)
            try:
                self.policy.check_host(parts.hostname)
                ans = self._request(current, "HEAD" if use_head else "GET", slots, deadline)
            except Exception as exc:  # every failure becomes a verdict
                result = _exception_try(url, exc, hops)
                result.outcome.final_url = current
                return result
            if use_head and (
                ans.status in HEAD_DOUBT
                or (ans.status in self.cfg.accept and "html" in ans.content_type)
            ):
                # HEAD refused or unreliable, or a web page where a file was expected
                # (perhaps a "not found" page): ask again with GET, which reads the title.
                use_head = False
                continue
            method = "HEAD" if use_head else "GET"
            hops.append({"url": current, "status": ans.status, "method": method})
            if ans.status in REDIRECTS and ans.location:
                target = urldefrag(urljoin(current, ans.location.strip()))[0]
                if target in seen:
                    out = Outcome(url, "broken", ans.status, target, "redirect loop", hops)
                    return _Try(out)
                if len(hops) > self.cfg.max_redirects:
                    detail = f"more than {self.cfg.max_redirects} redirects"
                    return _Try(Outcome(url, "broken", ans.status, target, detail, hops))
                seen.add(target)
                current = target
                continue
            return _status_try(
                url, ans.status, hops, self.cfg, ans.retry_after, ans.title, ans.heading
            )

    def _request(self, url: str, method: str, slots: Slots, deadline: float) -> _Answer:
        """One request: status, headers that matter, and a page's title and heading."""
        target = urldefrag(url)[0]
        with slots.request(host_key(url), deadline):
            deadline += slots.waited
            remaining = deadline - time.monotonic()
            if remaining < min(1.0, self.cfg.timeout / 4):
                # Too little left for an answer: do not load the server for nothing.
                raise DeadlineExceeded("the deadline passed before the request")
            wait = min(self.cfg.timeout, remaining)
            resp = self.session.request(
                method,
                target,
                stream=True,
                allow_redirects=False,
                timeout=(wait, wait),
                headers={"Accept-Encoding": "identity"},
            )
            try:
                ans = _Answer(
                    resp.status_code,
                    resp.headers.get("Location"),
                    resp.headers.get("Retry-After"),
                    resp.headers.get("Content-Type", "").lower(),
                )
                if method == "GET" and ans.status in self.cfg.accept:
                    ans.title, ans.heading = read_title(
                        resp, deadline, self.cfg.timeout, self.cfg.read_limit
                    )
                return ans
            finally:
                resp.close()
