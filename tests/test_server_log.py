"""Access log lines cannot be forged or broken by what a client sends."""

from __future__ import annotations

import logging

import pytest

from cccn_feeds.server import AccessLog


def test_request_values_are_escaped(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, str], start_response: object) -> list[bytes]:
        start_response("404 Not Found", [("Content-Length", "0")])  # type: ignore[operator]
        return [b""]

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/x\n2026-01-01 INFO cccn_feeds.access: FORGED\x1b[31m",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_USER_AGENT": 'evil" 200 999 "ref',
    }
    with caplog.at_level(logging.INFO, logger="cccn_feeds.access"):
        AccessLog(app)(environ, lambda *a: None)  # type: ignore[arg-type]
    [line] = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and "\x1b" not in line
    assert "/x\\x0a2026-01-01 INFO cccn_feeds.access: FORGED\\x1b[31m" in line
    assert line.count('"') - line.count('\\"') == 6  # request, referer, agent: 3 quoted fields
