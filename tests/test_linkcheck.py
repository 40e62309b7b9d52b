"""The link checker against real HTTP servers on loopback that misbehave on purpose.

One module-scoped run checks every fault kind at once (so the suite stays fast); the
servers record what they saw, so the tests assert on both sides of the wire.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import socket
import struct
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cccn_feeds.build import apply_link_policy
from cccn_feeds.cli import main
from cccn_feeds.linkcheck import CheckRun, Progress, Use, check_links, run, update_state
from cccn_feeds.linkcheck_fetch import (
    VERDICTS,
    Outcome,
    backoff_delay,
    parse_retry_after,
    soft_404_text,
)
from cccn_feeds.linkcheck_net import AddressPolicy
from cccn_feeds.linkstate import declared_broken
from cccn_feeds.settings import LinkcheckSettings, Settings
from cccn_feeds.validate import load_content
from tests.conftest import make_settings

PAGE = b"<!doctype html><html><head><title>%s</title></head><body><h1>%s</h1>"


class Recorder:
    """What a server saw: requests per path, methods, start times, concurrency, bytes sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: dict[str, int] = defaultdict(int)
        self.methods: dict[str, list[str]] = defaultdict(list)
        self.times: dict[str, list[float]] = defaultdict(list)
        self.sent: dict[str, int] = defaultdict(int)
        self.user_agents: list[str] = []
        self.active = 0
        self.peak = 0
        self.starts: list[float] = []

    def enter(self, path: str, method: str, agent: str) -> int:
        with self.lock:
            self.hits[path] += 1
            self.methods[path].append(method)
            self.times[path].append(time.monotonic())
            self.user_agents.append(agent)
            self.starts.append(time.monotonic())
            self.active += 1
            self.peak = max(self.peak, self.active)
            return self.hits[path]

    def leave(self) -> None:
        with self.lock:
            self.active -= 1


class FaultHandler(BaseHTTPRequestHandler):
    """Answers by path; see ``route``."""

    protocol_version = "HTTP/1.1"
    server: FaultServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self.route("HEAD")

    def do_GET(self) -> None:
        self.route("GET")

    def send(
        self, status: int, body: bytes = b"", ctype: str = "text/html", **headers: str
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def page(self, title: str, heading: str) -> None:
        self.send(200, PAGE % (title.encode(), heading.encode()))

    def stream(self, head: bytes, chunk: bytes, total: int, pause: float = 0.0) -> None:
        """200 with ``head`` then ``chunk`` repeated up to ``total`` bytes; count what got out."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(total))
        self.end_headers()
        sent = 0
        try:
            self.wfile.write(head)
            sent += len(head)
            while sent < total:
                self.wfile.write(chunk)
                sent += len(chunk)
                if pause:
                    time.sleep(pause)
        except OSError:
            pass
        finally:
            with self.server.rec.lock:
                self.server.rec.sent[self.path] += sent
        self.close_connection = True

    def route(self, method: str) -> None:
        path = self.path.split("?")[0]
        rec = self.server.rec
        count = rec.enter(self.path, method, self.headers.get("User-Agent", ""))
        try:
            self.answer(path, method, count)
        finally:
            rec.leave()

    def answer(self, path: str, method: str, count: int) -> None:
        if path == "/":
            self.page("Example home", "Welcome")
        elif path == "/ok":
            self.page("An article", "Designation announced")
        elif path == "/slow":
            time.sleep(self.server.slow)
            self.page("Slow", "Slow")
        elif path == "/reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif path == "/r301":
            self.send(301, Location="/r308")
        elif path == "/r308":
            self.send(308, Location=f"http://{self.headers['Host']}/ok")
        elif path == "/r302":
            self.send(302, Location="/ok")
        elif path == "/loop-a":
            self.send(301, Location="/loop-b")
        elif path == "/loop-b":
            self.send(301, Location="/loop-a")
        elif path == "/ra-then-ok":
            if count == 1:
                self.send(429, Retry_After="1")
            else:
                self.page("Finally", "Here")
        elif path == "/always-429":
            self.send(429, Retry_After="1")
        elif path == "/head405.png":
            if method == "HEAD":
                self.send(405, Allow="GET")
            else:
                self.send(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 100, ctype="image/png")
        elif path == "/photo.jpg":
            self.send(200, b"\xff\xd8\xff" + b"\0" * 100, ctype="image/jpeg")
        elif path == "/huge":
            head = PAGE % (b"A big page", b"Big") + b"<p>"
            self.stream(head, b"x" * 65536, 500 * 1024 * 1024)
        elif path == "/huge-untitled":
            self.stream(b"<html><body>", b"y" * 65536, 500 * 1024 * 1024)
        elif path == "/trickle":
            self.stream(b"<html>", b" ", 10_000, pause=0.05)
        elif path == "/soft404":
            self.page("Page not found | Example", "Sorry")
        elif path == "/soft404-fr":
            self.page("Institut", "Page introuvable")
        elif path == "/deep/article":
            self.send(302, Location="/")
        elif path == "/gone":
            self.send(410, b"gone")
        elif path == "/e500":
            self.send(500, b"oops")
        elif path == "/redirect-out":
            self.send(302, Location=self.server.outside)
        elif path.startswith("/pool/"):
            time.sleep(0.15)
            self.page("Pooled", "Pooled")
        elif path.startswith("/to-pool/"):
            self.send(301, Location=self.server.outside + path[len("/to-pool/") :])
        else:
            self.send(404, b"missing")


class FaultServer(ThreadingHTTPServer):
    """A threaded server with a recorder; runs in a background thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a burst of connections must not overflow the backlog

    def __init__(self, host: str = "127.0.0.1", slow: float = 1.0) -> None:
        super().__init__((host, 0), FaultHandler)
        self.rec = Recorder()
        self.slow = slow
        self.outside = ""
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # resets and closed pipes are on purpose

    def url(self, path: str) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{path}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class SilentServer:
    """Accepts connections (in the kernel backlog) and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)

    def url(self, path: str) -> str:
        host, port = self.sock.getsockname()
        return f"http://{host}:{port}{path}"

    def stop(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- fixtures

LINKS = (
    "/ok", "/slow", "/reset", "/r301", "/r302", "/loop-a", "/ra-then-ok", "/always-429",
    "/head405.png", "/photo.jpg", "/huge", "/huge-untitled", "/trickle", "/soft404",
    "/soft404-fr", "/deep/article", "/gone", "/e500", "/missing",
)  # fmt: skip
FAST = {
    "timeout": 1.0,
    "deadline": 3.0,
    "retries": 1,
    "backoff": 0.05,
    "retry_after_max": 1.2,
    "min_interval": 0.0,
    "per_host": 8,
    "allow_networks": ["127.0.0.0/8"],
}


def fast_settings(tmp: Path, **linkcheck: object) -> Settings:
    """Test settings: small timeouts, loopback allowed; ``linkcheck`` overrides."""
    return make_settings(tmp / "data", tmp / "out", linkcheck={**FAST, **linkcheck})


def uses(urls: list[str]) -> dict[str, list[Use]]:
    """Each URL used by one invented news item."""
    return {url: [Use("news", f"n{i}", "url")] for i, url in enumerate(urls)}


@dataclass
class FaultRun:
    server: FaultServer
    silent: SilentServer
    run: CheckRun

    def out(self, path: str) -> Outcome:
        return self.run.outcomes[self.server.url(path)]


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRun]:
    """One concurrent check of every fault kind against real loopback servers."""
    server, silent = FaultServer(slow=2.5), SilentServer()
    urls = [server.url(p) for p in LINKS] + [silent.url("/never"), "http://nosuchhost.invalid/x"]
    links = uses(urls)
    links[server.url("/photo.jpg")] = [Use("news", "pic", "image")]
    try:
        # Enough workers and slots that no link waits its turn: each has its full deadline.
        settings = fast_settings(tmp_path_factory.mktemp("faults"), concurrency=32, per_host=32)
        run = check_links(links, settings)
        yield FaultRun(server, silent, run)
    finally:
        server.stop()
        silent.stop()


# --------------------------------------------------------------------------- verdicts


class TestQueueing:
    """Waiting politely for a busy host's slot is not the link's slowness."""

    def test_redirects_into_a_busy_host_are_not_timeouts(self, tmp_path: Path) -> None:
        entry, target = FaultServer("127.0.0.21"), FaultServer("127.0.0.22")
        entry.outside = target.url("/pool/")
        try:
            links = uses([entry.url(f"/to-pool/{n}") for n in range(12)])
            # One slot on the target, 12 links at 0.15 s each: 1.8 s of queueing, a 0.8 s
            # deadline per link.
            settings = fast_settings(
                tmp_path, concurrency=12, per_host=1, deadline=0.8, timeout=0.8, retries=0
            )
            result = check_links(links, settings)
        finally:
            entry.stop()
            target.stop()
        assert {o.verdict for o in result.outcomes.values()} == {"moved"}
        assert target.rec.peak == 1


class TestVerdicts:
    """Every fault kind ends in the right verdict, against real servers."""

    def test_ok_page_reads_title(self, faults: FaultRun) -> None:
        out = faults.out("/ok")
        assert (out.verdict, out.status, out.title) == ("ok", 200, "An article")
        # Fetched directly and at the end of two redirect chains, always with one GET.
        assert faults.server.rec.methods["/ok"] == ["GET"] * 3

    def test_slow_answer_is_a_timeout_after_retries(self, faults: FaultRun) -> None:
        out = faults.out("/slow")
        assert out.verdict == "timeout" and out.status is None
        assert faults.server.rec.hits["/slow"] == 2  # one retry

    def test_no_answer_at_all_is_a_timeout(self, faults: FaultRun) -> None:
        out = faults.run.outcomes[faults.silent.url("/never")]
        assert out.verdict == "timeout"
        assert "read timeout" in out.detail

    def test_connection_reset_is_unreachable(self, faults: FaultRun) -> None:
        out = faults.out("/reset")
        assert out.verdict == "unreachable" and "reset" in out.detail
        assert faults.server.rec.hits["/reset"] == 2  # transient: retried once

    def test_permanent_chain_is_moved_with_new_address(self, faults: FaultRun) -> None:
        out = faults.out("/r301")
        assert out.verdict == "moved" and out.status == 200
        assert out.final_url == faults.server.url("/ok")
        assert [h["status"] for h in out.hops] == [301, 308, 200]

    def test_temporary_hop_is_redirected(self, faults: FaultRun) -> None:
        out = faults.out("/r302")
        assert (out.verdict, out.final_url) == ("redirected", faults.server.url("/ok"))

    def test_redirect_loop_is_broken(self, faults: FaultRun) -> None:
        out = faults.out("/loop-a")
        assert (out.verdict, out.detail) == ("broken", "redirect loop")
        assert faults.server.rec.hits["/loop-a"] == 1

    def test_retry_after_is_honoured_then_ok(self, faults: FaultRun) -> None:
        out = faults.out("/ra-then-ok")
        assert (out.verdict, out.status, out.attempts) == ("ok", 200, 2)
        first, second = faults.server.rec.times["/ra-then-ok"]
        assert second - first >= 0.95  # Retry-After: 1

    def test_still_429_is_rate_limited(self, faults: FaultRun) -> None:
        out = faults.out("/always-429")
        assert (out.verdict, out.status) == ("rate_limited", 429)
        assert faults.server.rec.hits["/always-429"] == 2

    def test_head_405_falls_back_to_get(self, faults: FaultRun) -> None:
        out = faults.out("/head405.png")
        assert (out.verdict, out.status) == ("ok", 200)
        assert faults.server.rec.methods["/head405.png"] == ["HEAD", "GET"]

    def test_image_field_is_checked_with_head_only(self, faults: FaultRun) -> None:
        assert faults.out("/photo.jpg").verdict == "ok"
        assert faults.server.rec.methods["/photo.jpg"] == ["HEAD"]

    def test_huge_body_is_not_read(self, faults: FaultRun) -> None:
        out = faults.out("/huge")
        assert (out.verdict, out.title) == ("ok", "A big page")
        # 500 MiB offered; what left the server is bounded by the socket buffers.
        assert faults.server.rec.sent["/huge"] < 16 * 1024 * 1024

    def test_huge_page_without_title_stops_at_the_read_limit(self, faults: FaultRun) -> None:
        assert faults.out("/huge-untitled").verdict == "ok"
        assert faults.server.rec.sent["/huge-untitled"] < 16 * 1024 * 1024

    def test_trickling_body_hits_the_deadline(self, faults: FaultRun) -> None:
        out = faults.out("/trickle")
        assert out.verdict == "timeout" and "deadline" in out.detail
        # The server drips one byte per 50 ms for 500 s; the deadline is 3 s.
        assert out.seconds < 3.0 + 1.0

    def test_soft_404_by_title(self, faults: FaultRun) -> None:
        out = faults.out("/soft404")
        assert (out.verdict, out.status) == ("soft_404", 200)
        assert "Page not found" in out.detail

    def test_soft_404_by_heading_in_french(self, faults: FaultRun) -> None:
        assert faults.out("/soft404-fr").verdict == "soft_404"

    def test_deep_link_redirected_home_is_soft_404(self, faults: FaultRun) -> None:
        out = faults.out("/deep/article")
        assert (out.verdict, out.final_url) == ("soft_404", faults.server.url("/"))

    def test_410_is_broken(self, faults: FaultRun) -> None:
        out = faults.out("/gone")
        assert (out.verdict, out.status) == ("broken", 410)
        assert faults.server.rec.hits["/gone"] == 1  # not transient: no retry

    def test_404_is_broken(self, faults: FaultRun) -> None:
        assert (faults.out("/missing").verdict, faults.out("/missing").status) == ("broken", 404)

    def test_500_is_server_error_after_retries(self, faults: FaultRun) -> None:
        out = faults.out("/e500")
        assert (out.verdict, out.status, out.attempts) == ("server_error", 500, 2)
        assert faults.server.rec.hits["/e500"] == 2

    def test_dns_failure_is_unreachable(self, faults: FaultRun) -> None:
        out = faults.run.outcomes["http://nosuchhost.invalid/x"]
        assert out.verdict == "unreachable" and "resolve" in out.detail

    def test_user_agent_names_project_and_contact(self, faults: FaultRun) -> None:
        agents = set(faults.server.rec.user_agents)
        assert len(agents) == 1
        (agent,) = agents
        assert agent.startswith("cccn-feeds/") and "https://www.lih.lu/?p=47659" in agent

    def test_every_verdict_is_a_contract_word(self, faults: FaultRun) -> None:
        assert {o.verdict for o in faults.run.outcomes.values()} <= set(VERDICTS)
        assert len(faults.run.outcomes) == len(LINKS) + 2


# --------------------------------------------------------------------------- safety


class TestAddressGuard:
    """Only public http(s) addresses are fetched, on every hop and as resolved."""

    @pytest.mark.parametrize(
        "address",
        ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
         "224.0.0.1", "240.0.0.1", "0.0.0.0", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
         "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::a00:1"],
    )  # fmt: skip
    def test_not_globally_routable_is_refused(self, address: str) -> None:
        assert not AddressPolicy().allows(address)

    @pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::6810:84e5", "8.8.8.8"])
    def test_public_is_allowed(self, address: str) -> None:
        assert AddressPolicy().allows(address)

    def test_allow_networks_exempts_a_range_in_every_form(self) -> None:
        policy = AddressPolicy.from_settings(["127.0.0.0/8"])
        assert policy.allows("127.0.0.5") and policy.allows("::ffff:127.0.0.5")
        assert not policy.allows("10.0.0.1")

    def test_loopback_without_allow_networks_is_blocked(self, tmp_path: Path) -> None:
        server = FaultServer()
        try:
            port = server.server_address[1]
            urls = [
                server.url("/ok"),
                f"http://localhost:{port}/ok",
                f"http://[::ffff:127.0.0.1]:{port}/ok",
            ]
            run = check_links(uses(urls), fast_settings(tmp_path, allow_networks=[]))
        finally:
            server.stop()
        for url in urls:
            assert run.outcomes[url].verdict == "blocked", url
        # "localhost" is a name: refused after resolving it, before any request.
        assert "resolves to" in run.outcomes[urls[1]].detail
        assert server.rec.hits == {}

    def test_redirect_to_a_disallowed_address_is_blocked(self, tmp_path: Path) -> None:
        inside, outside = FaultServer("127.0.0.1"), FaultServer("127.0.0.2")
        inside.outside = outside.url("/ok")
        try:
            settings = fast_settings(tmp_path, allow_networks=["127.0.0.1/32"])
            run = check_links(uses([inside.url("/redirect-out")]), settings)
        finally:
            inside.stop()
            outside.stop()
        out = run.outcomes[inside.url("/redirect-out")]
        assert out.verdict == "blocked" and out.final_url == outside.url("/ok")
        assert [h["status"] for h in out.hops] == [302]
        assert outside.rec.hits == {}

    def test_only_http_and_https(self, tmp_path: Path) -> None:
        urls = ["ftp://example.org/file", "file:///etc/passwd", "javascript:alert(1)"]
        run = check_links(uses(urls), fast_settings(tmp_path))
        assert {run.outcomes[u].verdict for u in urls} == {"blocked"}


# --------------------------------------------------------------------------- politeness


class TestPoliteness:
    """Per-host limits hold server-side while other hosts keep the workers busy."""

    def test_per_host_concurrency_and_interval(self, tmp_path: Path) -> None:
        busy, other = FaultServer(), FaultServer()
        try:
            urls = [busy.url(f"/pool/{n}") for n in range(8)]
            urls += [other.url(f"/pool/{n}") for n in range(4)]
            settings = fast_settings(tmp_path, per_host=2, concurrency=8, min_interval=0.05)
            run = check_links(uses(urls), settings)
        finally:
            busy.stop()
            other.stop()
        assert {o.verdict for o in run.outcomes.values()} == {"ok"}
        assert busy.rec.peak == 2 and other.rec.peak == 2  # limit reached, never passed
        assert max(run.peaks.values()) == 2
        starts = sorted(busy.rec.starts)
        # 50 ms apart when they leave the checker; allow for scheduling noise on arrival.
        assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.035


# --------------------------------------------------------------------------- retry helpers


class TestRetryAfter:
    """Retry-After in seconds or as an HTTP date, capped."""

    def test_seconds(self) -> None:
        assert parse_retry_after("3", cap=60) == 3.0

    def test_http_date(self) -> None:
        now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp()
        assert parse_retry_after("Mon, 01 Jun 2026 12:00:30 GMT", cap=60, now=now) == 30.0
        assert parse_retry_after("Mon, 01 Jun 2026 11:00:00 GMT", cap=60, now=now) == 0.0

    def test_capped_and_garbage(self) -> None:
        assert parse_retry_after("86400", cap=5) == 5.0
        assert parse_retry_after("soon", cap=5) is None
        assert parse_retry_after(None, cap=5) is None

    def test_backoff_grows_with_jitter(self) -> None:
        delays = [backoff_delay(0.1, n) for n in range(4)]
        for n, delay in enumerate(delays):
            assert 0.1 * 2**n <= delay <= 0.15 * 2**n

    @pytest.mark.parametrize(
        "text",
        ["Page not found", "404", "Erreur 404 - page introuvable", "Seite nicht gefunden",
         "Cette page n'existe pas", "Säit net fonnt", "Page not found – Example Institute",
         "Oops! That page can’t be found.", "HTTP Error 404 - Not Found"],
    )  # fmt: skip
    def test_soft_404_words(self, text: str) -> None:
        assert soft_404_text(text)

    @pytest.mark.parametrize(
        "text",
        ["Designation announced", "1404 patients", "Findings",
         "404 patients enrolled in the trial", "Cancer drug no longer available in Luxembourg",
         "Why a cure is not found yet", "Le médicament n'existe plus", "Found | Site"],
    )  # fmt: skip
    def test_ordinary_titles_are_not_soft_404(self, text: str) -> None:
        assert not soft_404_text(text)


# --------------------------------------------------------------------------- history


def outcome(url: str, verdict: str, status: int | None = None) -> Outcome:
    return Outcome(url, verdict, status, url)


class TestHistory:
    """A link is declared broken only after N failing runs or T hours; recovery clears."""

    URL = "https://example.org/a"
    T0 = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)

    def step(self, state: Any, verdict: str, when: datetime, **lc: Any) -> dict[str, Any]:
        settings = LinkcheckSettings(**{"broken_after_runs": 3, "broken_after_hours": 48.0, **lc})
        links = {self.URL: [Use("news", "a", "url")]}
        return update_state(state, {self.URL: outcome(self.URL, verdict)}, links, when, settings)

    def test_three_failing_runs_declare_broken(self) -> None:
        state: Any = None
        seen = []
        for n in range(3):
            state = self.step(state, "broken", self.T0 + timedelta(hours=n))
            entry = state["links"][self.URL]
            seen.append((entry["failures"], entry["declared_broken"]))
        assert seen == [(1, False), (2, False), (3, True)]
        assert entry["first_failed"] == "2026-06-01T06:00:00Z"
        assert entry["checked_at"] == "2026-06-01T08:00:00Z"

    def test_hours_since_first_failure_declare_broken(self) -> None:
        state = self.step(None, "timeout", self.T0, broken_after_runs=10)
        state = self.step(state, "timeout", self.T0 + timedelta(hours=47), broken_after_runs=10)
        assert not state["links"][self.URL]["declared_broken"]
        state = self.step(state, "timeout", self.T0 + timedelta(hours=48), broken_after_runs=10)
        assert state["links"][self.URL]["declared_broken"]

    def test_recovery_clears(self) -> None:
        state = self.step(None, "broken", self.T0, broken_after_runs=1)
        assert state["links"][self.URL]["declared_broken"]
        state = self.step(state, "moved", self.T0 + timedelta(hours=1))
        assert state["links"][self.URL] | {"detail": ""} == {
            "verdict": "moved", "status": None, "final_url": self.URL,
            "checked_at": "2026-06-01T07:00:00Z", "first_failed": None, "failures": 0,
            "declared_broken": False, "detail": "", "items": ["news:a.url"],
        }  # fmt: skip

    def test_a_passing_outage_raises_no_alarm(self) -> None:
        state = self.step(None, "server_error", self.T0)
        state = self.step(state, "server_error", self.T0 + timedelta(hours=6))
        state = self.step(state, "ok", self.T0 + timedelta(hours=12))
        state = self.step(state, "server_error", self.T0 + timedelta(hours=18))
        entry = state["links"][self.URL]
        assert (entry["failures"], entry["declared_broken"]) == (1, False)

    def test_rate_limited_neither_counts_nor_clears(self) -> None:
        state = self.step(None, "broken", self.T0)
        state = self.step(state, "rate_limited", self.T0 + timedelta(hours=1))
        assert state["links"][self.URL]["failures"] == 1
        assert state["links"][self.URL]["first_failed"] == "2026-06-01T06:00:00Z"

    def test_links_no_longer_used_are_forgotten(self) -> None:
        state = self.step(None, "broken", self.T0)
        state["links"]["https://old.example/"] = {"failures": 9, "declared_broken": True}
        state = self.step(state, "broken", self.T0 + timedelta(hours=1))
        assert list(state["links"]) == [self.URL]


# --------------------------------------------------------------------------- command


def write_corpus(data: Path, server: FaultServer) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "news.yaml").write_text(
        "news:\n"
        "  - id: good\n    title: Good\n    date: 2026-05-01\n"
        f"    url: {server.url('/ok')}\n    image: {server.url('/photo.jpg')}\n"
        "  - id: gone\n    title: Gone\n    date: 2026-05-02\n"
        f"    url: {server.url('/gone')}\n"
        "  - id: moved\n    title: Moved\n    date: 2026-05-03\n"
        f"    url: {server.url('/r301')}\n",
        encoding="utf-8",
    )
    (data / "events.yaml").write_text(
        "events:\n"
        "  - id: webinar\n    title: Webinar\n    start: 2026-06-10T10:00\n"
        f"    online: {server.url('/gone')}\n    url: {server.url('/ok')}\n",
        encoding="utf-8",
    )


class TestCommand:
    """check-links end to end: table, summaries, state, exit codes over several runs."""

    def test_three_runs_declare_the_gone_link(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server = FaultServer()
        write_corpus(tmp_path / "data", server)
        config = tmp_path / "cccn-feeds.toml"
        config.write_text(
            "[linkcheck]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in FAST.items()),
            encoding="utf-8",
        )
        args = [
            "check-links", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
            "--config", str(config), "--json", str(tmp_path / "report.json"), "--no-progress",
        ]  # fmt: skip
        codes = []
        try:
            for day in (1, 2, 3):
                codes.append(main([*args, "--now", f"2026-06-0{day}T08:00Z"]))
        finally:
            server.stop()
        assert codes == [0, 0, 1]
        printed = capsys.readouterr().out
        gone = server.url("/gone")
        row = rf"{re.escape(gone)} +broken \(declared broken\) +410 +"
        row += r"event:webinar\.online, news:gone\.url"
        assert re.search(row, printed)
        assert f"  -> {server.url('/ok')}" in printed  # the moved link's new address
        settings = make_settings(tmp_path / "data", tmp_path / "out")
        assert declared_broken(settings) == {gone: "broken"}

        report = json.loads((tmp_path / "report.json").read_text())
        entries = {e["url"]: e for e in report["links"]}
        assert set(entries) == {server.url(p) for p in ("/ok", "/photo.jpg", "/gone", "/r301")}
        assert entries[gone] | {"hops": None, "seconds": None} == {
            "url": gone, "verdict": "broken", "status": 410, "final_url": gone,
            "checked_at": "2026-06-03T08:00:00Z", "declared_broken": True, "failures": 3,
            "first_failed": "2026-06-01T08:00:00Z", "detail": "gone (410)", "attempts": 1,
            "items": [{"kind": "event", "id": "webinar", "field": "online"},
                      {"kind": "news", "id": "gone", "field": "url"}],
            "hops": None, "seconds": None,
        }  # fmt: skip
        assert entries[server.url("/r301")]["final_url"] == server.url("/ok")

        summary = (tmp_path / "out" / ".state" / "linkcheck.md").read_text()
        assert f"summary written to {tmp_path / 'out' / '.state' / 'linkcheck.md'}" in printed
        assert "## Declared broken" in summary and f"| <{gone}> | broken | 410 |" in summary
        assert "| Runs | Used by |\n|---|---|---|---|---|---|\n| <" in summary
        assert f"| <{server.url('/r301')}> | <{server.url('/ok')}> | news:moved.url |" in summary

    def test_the_build_policy_sees_the_declared_link(self, tmp_path: Path) -> None:
        server = FaultServer()
        write_corpus(tmp_path / "data", server)
        settings = fast_settings(tmp_path, broken_after_runs=1)
        try:
            report = run(settings, now=datetime(2026, 6, 1, tzinfo=UTC))
        finally:
            server.stop()
        assert report.declared == [server.url("/gone")]
        content = load_content(settings.paths.data_dir, settings.site.tz)
        dropped = apply_link_policy(content, declared_broken(settings), "drop")
        assert {n.id: n.url for n in dropped.news} == {
            "good": server.url("/ok"), "gone": "", "moved": server.url("/r301"),
        }  # fmt: skip

    def test_progress_bar_only_on_a_terminal(self, tmp_path: Path) -> None:
        stream = io.StringIO()
        bar = Progress(2, stream, width=10)
        bar.advance(outcome("u", "ok"))
        bar.advance(outcome("v", "ok"))
        assert "[##########] 2/2" in stream.getvalue()
        # pytest's stderr is not a terminal: run_cli draws nothing there.
        assert not sys.stderr.isatty()
