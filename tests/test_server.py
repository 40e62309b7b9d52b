"""Serving the output folder: types, validators, 304s, gzip, HEAD, containment, /healthz, logs.

One real `serve` process (module scope) answers every test over loopback HTTP.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any

import feedparser
import icalendar
import pytest

from cccn_feeds.server import OutputApp, accepts_gzip
from tests.conftest import EXAMPLES
from tests.test_service import ServiceProcess, output_files

TYPES = {
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".ics": "text/calendar; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".xsl": "text/xsl; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
MAX_AGE = {".ics": 21600, ".html": 300, ".rss": 900, ".atom": 900, ".json": 900, ".opml": 900}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A running service over a copy of the example corpus, at the corpus's clock."""
    root = tmp_path_factory.mktemp("serve")
    data = root / "data"
    shutil.copytree(EXAMPLES, data, ignore=shutil.ignore_patterns("*.md"))
    service = ServiceProcess(root, data).start()
    yield service
    assert service.stop() == 0
    service.kill()


@pytest.fixture(scope="module")
def files(svc: ServiceProcess) -> dict[str, bytes]:
    """Every published file."""
    found = output_files(svc.out)
    assert {"index.html", "news.rss", "news.atom", "news.json", "events.ics"} <= set(found)
    return found


def expected_type(path: str, data: bytes) -> str:
    """The media type a published file must be served with."""
    suffix = os.path.splitext(path)[1]
    if suffix == ".json":
        doc = json.loads(data)
        assert doc["version"] == "https://jsonfeed.org/version/1.1"
        return "application/feed+json; charset=utf-8"
    return TYPES[suffix]


class TestFiles:
    """Every published file comes back byte for byte, with its type and caching."""

    def test_every_file_type_and_bytes(self, svc: ServiceProcess, files: dict[str, bytes]) -> None:
        for path, data in files.items():
            status, headers, body = svc.get("/" + path)
            assert status == 200, path
            assert body == data, path
            assert headers["content-type"] == expected_type(path, data), path
            assert headers["content-length"] == str(len(data))
            assert headers["x-content-type-options"] == "nosniff"
            age = MAX_AGE.get(os.path.splitext(path)[1], 86400)
            assert headers["cache-control"] == f"public, max-age={age}", path

    def test_served_feeds_parse(self, svc: ServiceProcess) -> None:
        for path in ("/news.rss", "/news.atom", "/events.rss"):
            parsed = feedparser.parse(svc.get(path)[2])
            assert not parsed.bozo, (path, parsed.get("bozo_exception"))
            assert parsed.entries
        calendar = icalendar.Calendar.from_ical(svc.get("/events.ics")[2])
        assert len(calendar.walk("VEVENT")) >= 7

    def test_root_is_the_page(self, svc: ServiceProcess, files: dict[str, bytes]) -> None:
        status, headers, body = svc.get("/")
        assert status == 200 and body == files["index.html"]
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["cache-control"] == "public, max-age=300"

    def test_validators(self, svc: ServiceProcess, files: dict[str, bytes]) -> None:
        _, headers, _ = svc.get("/news.rss")
        etag = headers["etag"]
        assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
        mtime = int((svc.out / "news.rss").stat().st_mtime)
        assert headers["last-modified"] == formatdate(mtime, usegmt=True)
        _, other, _ = svc.get("/news.atom")
        assert other["etag"] != etag


class TestConditional:
    """If-None-Match and If-Modified-Since answer 304 without a body."""

    def test_if_none_match(self, svc: ServiceProcess) -> None:
        _, headers, _ = svc.get("/events.ics")
        etag = headers["etag"]
        for value in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
            status, again, body = svc.get("/events.ics", {"If-None-Match": value})
            assert (status, body) == (304, b""), value
            assert again["etag"] == etag
            assert again["cache-control"] == "public, max-age=21600"
        status, _, body = svc.get("/events.ics", {"If-None-Match": '"something-else"'})
        assert status == 200 and body

    def test_if_modified_since(self, svc: ServiceProcess) -> None:
        _, headers, _ = svc.get("/news.json")
        modified = headers["last-modified"]
        assert svc.get("/news.json", {"If-Modified-Since": modified})[0] == 304
        earlier = formatdate(parsedate_to_datetime(modified).timestamp() - 60, usegmt=True)
        assert svc.get("/news.json", {"If-Modified-Since": earlier})[0] == 200
        assert svc.get("/news.json", {"If-Modified-Since": "not a date"})[0] == 200
        # If-None-Match wins over If-Modified-Since.
        both = {"If-Modified-Since": modified, "If-None-Match": '"other"'}
        assert svc.get("/news.json", both)[0] == 200


class TestGzip:
    """Text is compressed when the client allows it, as its own variant."""

    def test_browsers_get_feeds_as_xml_readers_as_feeds(self, svc: ServiceProcess) -> None:
        browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        _, headers, _ = svc.get("/news.rss", {"Accept": browser})
        assert headers["content-type"] == "application/xml; charset=utf-8"
        for reader in ("application/rss+xml, */*;q=0.1", "*/*", ""):
            _, headers, _ = svc.get("/news.rss", {"Accept": reader} if reader else {})
            assert headers["content-type"] == "application/rss+xml; charset=utf-8", reader
        _, headers, _ = svc.get("/news.atom", {"Accept": browser})
        assert headers["content-type"] == "application/xml; charset=utf-8"
        _, headers, _ = svc.get("/events.ics", {"Accept": browser})
        assert headers["content-type"] == "text/calendar; charset=utf-8"

    def test_gzip_variant(self, svc: ServiceProcess, files: dict[str, bytes]) -> None:
        _, plain, _ = svc.get("/news.rss")
        status, headers, body = svc.get("/news.rss", {"Accept-Encoding": "gzip, deflate"})
        assert status == 200
        assert headers["content-encoding"] == "gzip"
        assert headers["vary"] == "Accept, Accept-Encoding" == plain["vary"]
        assert headers["etag"] != plain["etag"]
        assert "content-encoding" not in plain
        assert gzip.decompress(body) == files["news.rss"]
        assert int(headers["content-length"]) == len(body) < len(files["news.rss"])
        gz_etag = {"Accept-Encoding": "gzip", "If-None-Match": headers["etag"]}
        assert svc.get("/news.rss", gz_etag)[0] == 304
        # The identity tag does not validate the gzip variant, and the other way round.
        assert (
            svc.get("/news.rss", {"Accept-Encoding": "gzip", "If-None-Match": plain["etag"]})[0]
            == 200
        )
        assert svc.get("/news.rss", {"If-None-Match": headers["etag"]})[0] == 200

    @pytest.mark.parametrize(
        ("header", "allowed"),
        [
            ("gzip", True),
            ("br, gzip;q=0.5", True),
            ("gzip;q=0", False),
            ("*", True),
            ("*;q=0", False),
            ("identity", False),
            ("", False),
            ("x-gzip", True),
            ("*, gzip;q=0", False),
        ],
    )
    def test_accept_encoding(self, header: str, allowed: bool) -> None:
        assert accepts_gzip(header) is allowed

    def test_refused_gzip(self, svc: ServiceProcess, files: dict[str, bytes]) -> None:
        status, headers, body = svc.get("/news.rss", {"Accept-Encoding": "gzip;q=0"})
        assert status == 200 and body == files["news.rss"]
        assert "content-encoding" not in headers


class TestHead:
    """HEAD gives the GET headers without a body."""

    def test_head(self, svc: ServiceProcess, files: dict[str, bytes]) -> None:
        _, get_headers, _ = svc.get("/events.ics")
        status, headers, body = svc.get("/events.ics", method="HEAD")
        assert status == 200 and body == b""
        assert headers["content-length"] == str(len(files["events.ics"]))
        for name in ("etag", "last-modified", "content-type", "cache-control"):
            assert headers[name] == get_headers[name]
        assert svc.get("/healthz", method="HEAD")[2] == b""

    def test_other_methods(self, svc: ServiceProcess) -> None:
        status, headers, _ = svc.get("/news.rss", method="POST")
        assert status == 405 and headers["allow"] == "GET, HEAD"


class TestContainment:
    """Nothing outside the published files can be read."""

    @pytest.mark.parametrize(
        "path",
        [
            "/../../../../etc/passwd",
            "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            "/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
            "/..%2f..%2f..%2fetc%2fpasswd",
            "//etc/passwd",
            "/tags/../../../etc/passwd",
            "/..\\..\\etc\\passwd",
            "/%5c..%5c..%5cetc%5cpasswd",
            "/.state/history.json",
            "/.state/manifest.json",
            "/.state/lock",
            "/%2estate/history.json",
            "/tags/../.state/history.json",
            "/./news.rss",
            "/news.rss/",
            "/news.rss%00.html",
            "/tags",
            "/tags/",
            "/events/",
            "/no-such-file.rss",
            "/%ff%fe",
        ],
    )
    def test_refused(self, svc: ServiceProcess, path: str) -> None:
        status, _, body = svc.get(path)
        assert status == 404, path
        assert b"root:" not in body and b"revisions" not in body

    def test_symlinks_leaving_the_folder(self, svc: ServiceProcess, tmp_path: Path) -> None:
        secret = tmp_path / "secret.txt"
        secret.write_text("top secret", encoding="utf-8")
        (svc.out / "leak.txt").symlink_to(secret)
        (svc.out / "leakdir").symlink_to(tmp_path, target_is_directory=True)
        (svc.out / "state").symlink_to(svc.out / ".state", target_is_directory=True)
        try:
            for path in ("/leak.txt", "/leakdir/secret.txt", "/state/history.json"):
                status, _, body = svc.get(path)
                assert status == 404 and b"secret" not in body, path
        finally:
            for name in ("leak.txt", "leakdir", "state"):
                (svc.out / name).unlink()

    def test_state_folder_elsewhere_inside_output(self, tmp_path: Path) -> None:
        """A state folder configured with a visible name inside the output stays private."""
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "history.json").write_text("{}", encoding="utf-8")
        (tmp_path / "news.rss").write_text("<rss/>", encoding="utf-8")
        app = OutputApp(tmp_path, private=[tmp_path / "state"])
        seen: list[str] = []

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            seen.append(status)

        app({"REQUEST_METHOD": "GET", "PATH_INFO": "/state/history.json"}, start_response)
        app({"REQUEST_METHOD": "GET", "PATH_INFO": "/news.rss"}, start_response)
        assert seen == ["404 Not Found", "200 OK"]


class TestHealth:
    """/healthz reports the last build, counts, the link check and the next runs."""

    def test_healthz(self, svc: ServiceProcess) -> None:
        status, headers, body = svc.get("/healthz")
        assert status == 200
        assert headers["content-type"] == "application/json; charset=utf-8"
        assert headers["cache-control"] == "no-store"
        doc: dict[str, Any] = json.loads(body)
        assert doc["status"] == "ok"
        assert (doc["news"], doc["events"], doc["forthcoming"]) == (5, 7, 7)
        assert doc["last_build"]["result"] == "ok" and doc["last_build"]["errors"] == []
        assert doc["last_build"]["clock"] == "2027-01-15T11:00:00Z"
        assert doc["last_build"]["finished"].endswith("Z")
        assert doc["builds"]["count"] >= 1 and doc["builds"]["max_concurrent"] == 1
        assert set(doc["next_runs"]) >= {"build", "check-links"}
        for when in doc["next_runs"].values():
            assert when[-6:] in {"+01:00", "+02:00"}  # site time
        link = doc["link_check"]
        assert {"links", "declared_broken", "last_checked", "last_run"} <= set(link)


class TestAccessLog:
    """One access line per request, naming the path, status and size."""

    def test_one_line_per_request(self, svc: ServiceProcess) -> None:
        marker = uuid.uuid4().hex
        assert svc.get(f"/{marker}.rss", {"User-Agent": "probe"})[0] == 404
        svc.get("/news.json", {"User-Agent": marker})
        time.sleep(0.2)  # the line is written once the response is on its way
        log = svc.log()
        lines = [line for line in log.splitlines() if marker in line]
        assert len(lines) == 2, lines
        assert f'"GET /{marker}.rss HTTP/1.1" 404 10 "-" "probe"' in lines[0]
        size = (svc.out / "news.json").stat().st_size
        assert f'"GET /news.json HTTP/1.1" 200 {size} "-" "{marker}"' in lines[1]
        assert "cccn_feeds.access" in lines[0]


def test_direct_request_without_service(tmp_path: Path) -> None:
    """The app alone answers without /healthz wiring (used behind other servers)."""
    (tmp_path / "index.html").write_text("<p>hi</p>", encoding="utf-8")
    app = OutputApp(tmp_path)
    seen: list[tuple[str, list[tuple[str, str]]]] = []
    body = app(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/"},
        lambda status, headers: seen.append((status, headers)),
    )
    assert b"".join(body) == b"<p>hi</p>"
    assert seen[0][0] == "200 OK"
