"""RSS, Atom and JSON Feed: golden files, readers, validator rules, dates, archives, WebSub."""

from __future__ import annotations

import email.utils
import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import feedparser
import pytest
import yaml
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from lxml import etree

from cccn_feeds.build import build
from cccn_feeds.settings import Settings
from cccn_feeds.text import markdown_text
from tests.conftest import EXAMPLE_NOW, LUX, make_settings

ATOM_NS = "http://www.w3.org/2005/Atom"

RENDERERS = ("cccn_feeds.render.feeds", "cccn_feeds.render.jsonfeed")
ATOM = "{http://www.w3.org/2005/Atom}"
FH = "{http://purl.org/syndication/history/1.0}"
RFC822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$"
)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
TAG_URI = re.compile(r"^tag:[a-z0-9.-]+,\d{4}(-\d{2}(-\d{2})?)?:[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,]*$")


def run(settings: Settings, now: datetime = EXAMPLE_NOW) -> dict[str, bytes]:
    """Build the feeds and return every output file by relative path."""
    build(settings, now=now, renderers=RENDERERS)
    out = settings.paths.output_dir
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".state" not in p.parts
    }


def visible(text: str) -> str:
    """Text as a person sees it: the invisible WORD JOINERs the feeds may add removed."""
    return text.replace("\u2060", "")


def write_news(data_dir: Path, items: list[dict[str, Any]]) -> None:
    """Replace the news with ``items`` and drop the events (they refer to example news)."""
    (data_dir / "events.yaml").write_text("events: []\n", encoding="utf-8")
    (data_dir / "news.yaml").write_text(
        yaml.safe_dump({"news": items}, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )


@pytest.fixture
def outputs(settings: Settings) -> dict[str, bytes]:
    return run(settings)


FEEDS = [
    "news.rss", "news.atom", "news.json", "events.rss", "events.atom", "events.json",
]  # fmt: skip


class TestGolden:
    """Every format from the example corpus matches its reviewed golden file."""

    @pytest.mark.parametrize(
        "name", [*FEEDS, "tags/jane-2/news.rss", "tags/jane-2/events.atom", "feed.xsl"]
    )
    def test_golden(
        self, outputs: dict[str, bytes], name: str, golden: Callable[[str, bytes], None]
    ) -> None:
        golden(f"feeds/{name}", outputs[name])

    @pytest.mark.parametrize(
        "name", ["news-archive-1.rss", "news-archive-1.atom", "news-archive-1.json",
                 "events-archive-1.rss", "events-archive-2.atom"],
    )  # fmt: skip
    def test_golden_archive_pages(
        self, data_dir: Path, tmp_path: Path, name: str, golden: Callable[[str, bytes], None]
    ) -> None:
        """Archive pages: their items are joined to a document that declares RFC 5005's
        namespace beside those the items use."""
        outputs = run(make_settings(data_dir, tmp_path / "out", feeds={"max_items": 3}))
        golden(f"feeds/archives/{name}", outputs[name])

    def test_outputs_cover_the_catalog(self, settings: Settings, outputs: dict[str, bytes]) -> None:
        """Every feed the page and OPML list (except calendars) exists, and no other feed."""
        from cccn_feeds.context import BuildContext
        from cccn_feeds.validate import load_content

        ctx = BuildContext(settings, load_content(settings.paths.data_dir, settings.site.tz),
                           EXAMPLE_NOW)  # fmt: skip
        listed = {f.path for f in ctx.catalog if f.format != "ics"}
        produced = {p for p in outputs if re.search(r"(news|events)\.(rss|atom|json)$", p)}
        assert listed == produced
        assert "tags/sante-publique/news.atom" in produced


class TestReaders:
    """feedparser reads every feed cleanly with the expected items in order."""

    @pytest.mark.parametrize("name", FEEDS)
    def test_feedparser(self, outputs: dict[str, bytes], name: str) -> None:
        if name.endswith(".json"):  # feedparser 6 reads no JSON Feed; read it as JSON
            doc = json.loads(outputs[name])
            ids, title = [i["id"] for i in doc["items"]], doc["title"]
        else:
            parsed = feedparser.parse(outputs[name])
            assert parsed.bozo == 0, parsed.get("bozo_exception")
            ids, title = [e.id for e in parsed.entries], parsed.feed.title
        if name.startswith("news"):
            assert ids == [
                f"tag:www.lih.lu,2025:cccn/news/{i}"
                for i in ("example-designation", "example-same-day-b", "example-same-day-a",
                          "example-markup-title", "example-french")
            ]  # fmt: skip
        else:
            assert ids[:4] == [
                f"tag:www.lih.lu,2025:cccn/event/{i}"
                for i in ("example-webinar-weekly", "example-conference-2027",
                          "example-before-dst", "example-after-dst")
            ]  # fmt: skip
            assert len(ids) == 7
        assert title.startswith("Luxembourg Pilot Comprehensive Cancer Center")

    def test_markup_title_reads_as_typed(self, outputs: dict[str, bytes]) -> None:
        typed = "Example: <b>bold</b> & “quotes” in a title — 5 < 6"
        for name in ("news.rss", "news.atom"):
            entry = feedparser.parse(outputs[name]).entries[3]
            assert visible(entry.title) == typed, name
        item = json.loads(outputs["news.json"])["items"][3]
        assert item["title"] == typed

    def test_event_item_says_when_and_where(self, outputs: dict[str, bytes]) -> None:
        items = {i["id"].rsplit("/", 1)[1]: i for i in json.loads(outputs["events.json"])["items"]}
        conf = items["example-conference-2027"]
        assert conf["url"] == "https://example.org/events/conference-2027"
        assert "When: Friday 26 – Saturday 27 March 2027" in conf["summary"]
        assert "Where: Example Conference Centre, 1 Example Street" in conf["summary"]
        seminar = items["example-before-dst"]
        assert seminar["url"] == "http://127.0.0.1:8000/events/example-before-dst.ics"
        assert "Saturday 27 March 2027, 10:00–11:30 (Luxembourg time)" in seminar["summary"]
        ny = items["example-new-york"]
        # 12:00 in New York on 2 November 2027 (EDT) is 17:00 in Luxembourg (CET).
        assert "Tuesday 2 November 2027, 17:00–18:00" in ny["summary"]
        assert "12:00–13:00 in New York" in ny["summary"]
        # The feed date is when the event was published or changed, not when it happens.
        assert ny["date_modified"] == "2026-11-15T11:00:00+01:00"
        assert items["example-cancelled"]["title"].startswith("Cancelled: ")
        webinar = items["example-webinar-weekly"]
        assert "repeats every week, 9 times in all" in webinar["summary"]  # one date excluded


def _rss_items(data: bytes) -> list[etree._Element]:
    return etree.fromstring(data).findall("channel/item")


class TestValidatorRules:
    """The W3C Feed Validation Service's rules, as far as they can be checked locally."""

    @pytest.mark.parametrize("name", ["news.rss", "events.rss", "tags/eunetccc/events.rss"])
    def test_rss(self, outputs: dict[str, bytes], name: str) -> None:
        data = outputs[name]
        assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<?xml-stylesheet")
        root = etree.fromstring(data)
        channel = root.find("channel")
        assert root.get("version") == "2.0" and channel is not None
        for required in ("title", "link", "description", "language", "lastBuildDate"):
            assert (channel.findtext(required) or "").strip(), required
        assert channel.findtext("link") == "https://www.lih.lu/?p=47659"
        selfs = [ln for ln in channel.findall(f"{ATOM}link") if ln.get("rel") == "self"]
        assert [ln.get("href") for ln in selfs] == [f"http://127.0.0.1:8000/{name}"]
        assert RFC822.match(channel.findtext("lastBuildDate") or "")
        items = channel.findall("item")
        dates = []
        for item in items:
            guid = item.find("guid")
            assert guid is not None and guid.get("isPermaLink") == "false"
            assert TAG_URI.match(guid.text or "")
            assert item.findtext("title")
            pub = item.findtext("pubDate") or ""
            assert RFC822.match(pub), pub
            dates.append(email.utils.parsedate_to_datetime(pub))
            if item.find("{http://purl.org/rss/1.0/modules/content/}encoded") is not None:
                assert item.find("description") is not None
            for enclosure in item.findall("enclosure"):
                assert enclosure.get("length") and enclosure.get("type")
            assert item.find("author") is None  # RSS author must be an email address
        assert len(set(dates)) == len(dates), "two items share a timestamp"
        guids = [i.findtext("guid") for i in items]
        assert len(set(guids)) == len(guids)
        # The channel date is the newest item's (publication or change) date, never the clock.
        last = email.utils.parsedate_to_datetime(channel.findtext("lastBuildDate") or "")
        assert last >= max(dates)

    def test_rss_plain_text_uses_hex_references(self, outputs: dict[str, bytes]) -> None:
        """RSS Best Practices Profile: & and < in titles as &#x26; and &#x3C;."""
        line = next(
            x for x in outputs["news.rss"].decode().splitlines() if "bold" in x and "<title>" in x
        )
        assert "&#x3C;b&#x3E;" in line and "&#x26;" in line and "&amp;" not in line
        # No HTML end tag or entity the validator would call HTML in the parsed title.
        for title in etree.fromstring(outputs["news.rss"]).iterfind("channel/item/title"):
            assert not re.search(r"</\w+>|&#?\w+;", title.text or "")

    @pytest.mark.parametrize("name", ["news.atom", "events.atom", "tags/jane-2/news.atom"])
    def test_atom(self, outputs: dict[str, bytes], name: str) -> None:
        root = etree.fromstring(outputs[name])
        assert root.tag == f"{ATOM}feed"
        assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
        for required in ("id", "title", "updated", "author/" + ATOM + "name", "generator"):
            assert root.find(ATOM + required) is not None, required
        assert TAG_URI.match(root.findtext(f"{ATOM}id") or "")
        links = {ln.get("rel"): ln.get("href") for ln in root.findall(f"{ATOM}link")}
        assert links["self"] == f"http://127.0.0.1:8000/{name}"
        assert links["alternate"] == "https://www.lih.lu/?p=47659"
        updated = []
        for entry in root.findall(f"{ATOM}entry"):
            assert TAG_URI.match(entry.findtext(f"{ATOM}id") or "")
            title = entry.find(f"{ATOM}title")
            assert title is not None and title.get("type") == "text"
            assert not re.search(r"</\w+>|&#?\w+;", title.text or "")
            stamp = entry.findtext(f"{ATOM}updated") or ""
            assert RFC3339.match(stamp)
            updated.append(datetime.fromisoformat(stamp))
            published = entry.findtext(f"{ATOM}published")
            assert published is None or RFC3339.match(published)
            content = entry.find(f"{ATOM}content")
            assert content is not None and content.get("type") == "html"
            assert 'href="/' not in (content.text or "")  # links are absolute
        assert len(set(updated)) == len(updated), "two entries share atom:updated"
        assert datetime.fromisoformat(root.findtext(f"{ATOM}updated") or "") == max(updated)

    def test_json_feed(self, outputs: dict[str, bytes]) -> None:
        for name in ("news.json", "events.json", "tags/echos/events.json"):
            doc = json.loads(outputs[name])
            assert doc["version"] == "https://jsonfeed.org/version/1.1"
            assert doc["feed_url"] == f"http://127.0.0.1:8000/{name}"
            assert doc["home_page_url"] == "https://www.lih.lu/?p=47659"
            assert doc["language"] == "en"
            ids = [i["id"] for i in doc["items"]]
            assert len(set(ids)) == len(ids)
            for item in doc["items"]:
                assert RFC3339.match(item["date_published"])
                assert RFC3339.match(item["date_modified"])
                assert item["content_html"]
        news = json.loads(outputs["news.json"])["items"]
        assert news[0]["image"] == "https://example.org/img/designation.jpg"
        assert news[0]["authors"] == [{"name": "Example Institute"}]
        assert 'href="https://example.org/about"' in news[0]["content_html"]

    def test_every_xml_output_is_well_formed(self, outputs: dict[str, bytes]) -> None:
        for name, data in outputs.items():
            if name.endswith((".rss", ".atom", ".xsl")):
                etree.fromstring(data)  # raises on a broken document

    def test_stylesheet_renders_a_subscribe_page(self, outputs: dict[str, bytes]) -> None:
        transform = etree.XSLT(etree.fromstring(outputs["feed.xsl"]))
        for name in ("news.rss", "tags/jane-2/news.atom"):
            page = str(transform(etree.fromstring(outputs[name])))
            assert "How to subscribe" in page
            assert f"http://127.0.0.1:8000/{name}" in page
            assert "two items on one day" in page
        assert b'href="../../feed.xsl"' in outputs["tags/jane-2/news.atom"]


class TestDeterminism:
    """Same input, same bytes; identifiers follow the id only."""

    def test_two_builds_same_bytes(self, settings: Settings, tmp_path: Path) -> None:
        first = run(settings)
        other = settings.replace("paths", output=str(tmp_path / "again"))
        second = run(other, now=EXAMPLE_NOW)
        assert first == second
        # A later rebuild of unchanged data writes nothing.
        report = build(settings, now=EXAMPLE_NOW + timedelta(hours=1), renderers=RENDERERS).report
        assert [p for p in report.written if "news." in p] == []

    def test_ids_survive_title_and_url_changes(self, settings: Settings, data_dir: Path) -> None:
        before = feedparser.parse(run(settings)["news.rss"]).entries
        text = (data_dir / "news.yaml").read_text(encoding="utf-8")
        text = text.replace("joins the EUnetCCC network", "is designated").replace(
            "https://example.org/news/designation", "https://example.org/news/renamed"
        )
        (data_dir / "news.yaml").write_text(text, encoding="utf-8")
        after = feedparser.parse(run(settings)["news.rss"]).entries
        assert after[0].title != before[0].title and after[0].link != before[0].link
        assert [e.id for e in after] == [e.id for e in before]


class TestDates:
    """RFC 822 with the right Luxembourg offset on both sides of a DST change."""

    def test_dst(self, settings: Settings, data_dir: Path) -> None:
        write_news(data_dir, [
            {"id": "before", "title": "Before", "date": "2027-03-27T10:00"},
            {"id": "after", "title": "After", "date": "2027-03-29T10:00"},
        ])  # fmt: skip
        out = run(settings)
        pubs = {i.findtext("guid"): i.findtext("pubDate") for i in _rss_items(out["news.rss"])}
        assert pubs["tag:www.lih.lu,2025:cccn/news/before"] == "Sat, 27 Mar 2027 10:00:00 +0100"
        assert pubs["tag:www.lih.lu,2025:cccn/news/after"] == "Mon, 29 Mar 2027 10:00:00 +0200"
        atom = etree.fromstring(out["news.atom"])
        stamps = [e.findtext(f"{ATOM}published") for e in atom.iter(f"{ATOM}entry")]
        assert stamps == ["2027-03-29T10:00:00+02:00", "2027-03-27T10:00:00+01:00"]
        # With no event at all the event feeds are still valid, dated without the clock.
        for name in ("events.rss", "events.atom"):
            parsed = feedparser.parse(out[name])
            assert parsed.bozo == 0 and parsed.entries == []
            assert etree.fromstring(out[name]).find(f".//{ATOM}link[@rel='self']") is not None

    def test_same_time_items_get_distinct_stamps(self, settings: Settings, data_dir: Path) -> None:
        write_news(data_dir, [
            {"id": f"n{i}", "title": f"Item {i}", "date": "2027-01-10"} for i in range(4)
        ] + [{"id": "z", "title": "Next second", "date": "2027-01-10T12:00:01"}])  # fmt: skip
        out = run(settings)
        pubs = [i.findtext("pubDate") for i in _rss_items(out["news.rss"])]
        # A date alone means noon. Chronological order by (date, first seen, id): n0..n3,
        # then z; each one second after the last.
        assert pubs == [f"Sun, 10 Jan 2027 12:00:0{s} +0100" for s in (4, 3, 2, 1, 0)]
        assert [i.findtext("title") for i in _rss_items(out["news.rss"])] == [
            "Next second", "Item 3", "Item 2", "Item 1", "Item 0",
        ]  # fmt: skip

    def test_a_newcomer_never_moves_published_dates(
        self, settings: Settings, data_dir: Path
    ) -> None:
        items = [{"id": f"n{i}", "title": f"Item {i}", "date": "2027-01-10"} for i in (1, 3)]
        write_news(data_dir, items)
        before = {
            i.findtext("guid"): i.findtext("pubDate") for i in _rss_items(run(settings)["news.rss"])
        }
        write_news(data_dir, [*items, {"id": "n0", "title": "Item 0", "date": "2027-01-10"}])
        later = EXAMPLE_NOW + timedelta(hours=1)
        after = {
            i.findtext("guid"): i.findtext("pubDate")
            for i in _rss_items(run(settings, later)["news.rss"])
        }
        assert all(after[key] == value for key, value in before.items())
        newcomer = next(v for k, v in after.items() if k.endswith("/n0"))
        assert newcomer == "Sun, 10 Jan 2027 12:00:02 +0100"

    def test_updated_stays_distinct(self, settings: Settings, data_dir: Path) -> None:
        write_news(data_dir, [
            {"id": "a", "title": "A", "date": "2027-01-10T12:00", "updated": "2027-01-10T12:00:01"},
            {"id": "b", "title": "B", "date": "2027-01-10T12:00"},
            {"id": "c", "title": "C", "date": "2027-01-10T12:00"},
        ])  # fmt: skip
        atom = etree.fromstring(run(settings)["news.atom"])
        stamps = [e.findtext(f"{{{ATOM_NS}}}updated") for e in atom.iter(f"{{{ATOM_NS}}}entry")]
        assert len(stamps) == len(set(stamps)) == 3

    def test_a_cancellation_moves_the_event_feed_date(
        self, settings: Settings, data_dir: Path
    ) -> None:
        first = etree.fromstring(run(settings)["events.atom"])
        events = data_dir / "events.yaml"
        text = events.read_text(encoding="utf-8")
        events.write_text(
            text.replace(
                "    end: 2027-03-27T11:30\n",
                "    end: 2027-03-27T11:30\n    status: cancelled\n",
                1,
            ),
            encoding="utf-8",
        )
        later = datetime(2027, 2, 1, 9, 0, tzinfo=LUX)
        second = etree.fromstring(run(settings, later)["events.atom"])

        def updated(root: etree._Element) -> str:
            for entry in root.iter(f"{{{ATOM_NS}}}entry"):
                if entry.findtext(f"{{{ATOM_NS}}}id", "").endswith("/example-before-dst"):
                    return str(entry.findtext(f"{{{ATOM_NS}}}updated"))
            raise AssertionError("entry missing")

        assert updated(first).startswith("2027-01-15T12:00")
        assert updated(second) == "2027-02-01T09:00:00+01:00"


HOSTILE = [
    "<script>alert(1)</script> & <b>x</b>",
    "CDATA end ]]> inside",
    "Emoji 🎗️👩🏽‍⚕️ and mixed scripts: Ελληνικά, русский, العربية, 日本語, עברית",
    "&amp; already escaped &lt;tag&gt; &#38; &#x3C;",
    ("Long " + "very long title " * 30).strip(),
]


class TestHostileText:
    """Text that could break XML renders correctly and reads back as typed."""

    def test_round_trip(self, settings: Settings, data_dir: Path) -> None:
        write_news(data_dir, [
            {"id": f"h{i}", "title": t, "date": f"2027-01-{10 + i:02d}T12:00",
             "summary": t, "body": f"Body: {t}", "tags": [t[:20].strip() or "x"]}
            for i, t in enumerate(HOSTILE)
        ])  # fmt: skip
        out = run(settings)
        expected = list(reversed(HOSTILE))
        for name in ("news.rss", "news.atom"):
            etree.fromstring(out[name])
            parsed = feedparser.parse(out[name])
            assert parsed.bozo == 0, (name, parsed.get("bozo_exception"))
            assert [visible(e.title) for e in parsed.entries] == expected, name
        # Summaries are Markdown: what people read is its plain-text rendering.
        summaries = [visible(e.summary) for e in feedparser.parse(out["news.atom"]).entries]
        assert summaries == [markdown_text(t) for t in expected]
        assert "]]>" in summaries[3] and "<script>" in summaries[4]
        assert [i["title"] for i in json.loads(out["news.json"])["items"]] == expected
        # Markup typed into Markdown is text in the HTML content, never an element.
        for item in json.loads(out["news.json"])["items"]:
            assert "<script" not in item["content_html"] and "<b>" not in item["content_html"]
        assert "&lt;script&gt;" in json.loads(out["news.json"])["items"][4]["content_html"]

    def test_control_characters_are_refused(self, settings: Settings, data_dir: Path) -> None:
        from cccn_feeds.errors import DataError

        write_news(data_dir, [{"id": "c", "title": "bell \x07 here", "date": "2027-01-10"}])
        with pytest.raises(DataError, match="control character"):
            run(settings)


class TestArchives:
    """RFC 5005: every item reachable exactly once; full archive pages never change."""

    def _items(self, n: int) -> list[dict[str, Any]]:
        return [
            {
                "id": f"item-{i:03d}",
                "title": f"Item {i}",
                "date": f"2027-01-01T{i // 60:02d}:{i % 60:02d}",
            }
            for i in range(n)
        ]

    def _walk(self, out: dict[str, bytes], base: str, ext: str) -> list[str]:
        """Follow prev-archive links from the subscription document; collect item ids."""
        seen: list[str] = []
        path: str | None = f"{base}.{ext}"
        while path:
            data = out[path]
            if ext == "json":
                doc = json.loads(data)
                seen += [i["id"] for i in doc["items"]]
                nxt = doc.get("next_url")
            else:
                root = etree.fromstring(data)
                is_archive = root.find(f".//{FH}archive") is not None
                assert is_archive == (path != f"{base}.{ext}")
                seen += [e.findtext("guid") or e.findtext(f"{ATOM}id") or ""
                         for e in root.iter("item", f"{ATOM}entry")]  # fmt: skip
                links = {ln.get("rel"): ln.get("href") for ln in root.iter(f"{ATOM}link")}
                nxt = links.get("prev-archive")
                if is_archive:
                    assert links["current"] == f"http://127.0.0.1:8000/{base}.{ext}"
            path = nxt.removeprefix("http://127.0.0.1:8000/") if nxt else None
        return seen

    def test_pages(self, data_dir: Path, tmp_path: Path) -> None:
        write_news(data_dir, self._items(7))
        settings = make_settings(data_dir, tmp_path / "out", feeds={"max_items": 3})
        out = run(settings)
        assert {"news-archive-1.rss", "news-archive-2.atom", "news-archive-2.json"} <= set(out)
        assert "news-archive-3.rss" not in out
        for ext in ("rss", "atom", "json"):
            ids = self._walk(out, "news", ext)
            assert len(ids) == 7 and len(set(ids)) == 7, ext
            assert ids[0].endswith("item-006") and ids[-1].endswith("item-000")
        assert len(_rss_items(out["news.rss"])) == 3
        # Page 1 holds the three oldest items and links to the next newer page only.
        page1 = etree.fromstring(out["news-archive-1.atom"])
        rels = {ln.get("rel") for ln in page1.iter(f"{ATOM}link")}
        assert "next-archive" in rels and "prev-archive" not in rels

        full_before = {k: v for k, v in out.items() if "archive-1." in k}
        write_news(data_dir, self._items(8))
        later = run(settings)
        assert {k: later[k] for k in full_before} == full_before
        assert later["news-archive-2.rss"] != out["news-archive-2.rss"]  # was not yet full


class _Hub(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, list[str]]]] = []
    status: ClassVar[int] = 204

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).received.append(parse_qs(self.rfile.read(length).decode()))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def hub() -> Iterator[tuple[str, type[_Hub]]]:
    handler = type("Hub", (_Hub,), {"received": [], "status": 204})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hub", handler
    finally:
        server.shutdown()
        server.server_close()


class TestWebSub:
    """Hub links in RSS and Atom, and a publish ping after a build that changed a feed."""

    def test_links_and_ping(
        self, data_dir: Path, tmp_path: Path, hub: tuple[str, type[_Hub]]
    ) -> None:
        url, handler = hub
        settings = make_settings(data_dir, tmp_path / "out", feeds={"hub": url, "hub_timeout": 2})
        out = run(settings)
        for name in ("news.rss", "news.atom", "tags/jane-2/events.rss"):
            links = {
                ln.get("rel"): ln.get("href")
                for ln in etree.fromstring(out[name]).iter(f"{ATOM}link")
            }
            assert links["hub"] == url, name
        assert json.loads(out["news.json"])["hubs"] == [{"type": "WebSub", "url": url}]
        pinged = sorted(r["hub.url"][0] for r in handler.received)
        assert all(r["hub.mode"] == ["publish"] for r in handler.received)
        assert "http://127.0.0.1:8000/news.rss" in pinged
        assert "http://127.0.0.1:8000/tags/jane-2/events.json" in pinged
        assert not any("archive" in p or p.endswith(".xsl") for p in pinged)
        # An unchanged rebuild pings nothing.
        handler.received.clear()
        build(settings, now=EXAMPLE_NOW, renderers=RENDERERS)
        assert handler.received == []

    def test_failing_hub_does_not_fail_the_build(
        self, data_dir: Path, tmp_path: Path, hub: tuple[str, type[_Hub]], caplog: Any
    ) -> None:
        url, handler = hub
        handler.status = 500
        settings = make_settings(data_dir, tmp_path / "out", feeds={"hub": url})
        result = build(settings, now=EXAMPLE_NOW, renderers=RENDERERS)
        assert result.report.written
        assert "HTTP 500" in caplog.text
        # A hub nobody listens on: logged, build still succeeds.
        dead = make_settings(data_dir, tmp_path / "out2",
                             feeds={"hub": "http://127.0.0.1:9/hub", "hub_timeout": 1})  # fmt: skip
        assert build(dead, now=EXAMPLE_NOW, renderers=RENDERERS).report.written
        assert "ConnectionError" in caplog.text


def test_now_is_not_read(settings: Settings, tmp_path: Path) -> None:
    """Feed dates come from the data: a fresh build later gives the same news feed."""
    first = run(settings)["news.atom"]
    later = make_settings(settings.paths.data_dir, tmp_path / "later")
    assert run(later, now=datetime(2027, 2, 20, tzinfo=UTC))["news.atom"] == first


# JSON Feed documents are written with orjson and joined from per-item pieces; both must
# give exactly what json.dumps(indent=2, ensure_ascii=False) gives for the whole document.
_JSON_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
) | st.sampled_from(["\x00\x1f\x7f", '"\\/', "\u2028\u2029", "é😀\ufeff", "\t\n\r\b\f"])


@hyp_settings(max_examples=300, deadline=None)
@given(st.dictionaries(_JSON_TEXT, _JSON_TEXT | st.lists(_JSON_TEXT, max_size=3), max_size=5))
def test_json_writer_matches_json_dumps(value: dict[str, Any]) -> None:
    from cccn_feeds.render.jsonfeed import _dumps

    assert _dumps(value) == json.dumps(value, indent=2, ensure_ascii=False).encode()


def test_json_pages_are_whole_documents(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(make_settings(data_dir, out, feeds={"max_items": 2}), now=EXAMPLE_NOW)
    paths = sorted(p for p in out.rglob("*.json") if ".state" not in p.parts)
    assert any("-archive-" in p.name for p in paths)
    for path in paths:
        data = path.read_bytes()
        value = json.loads(data)
        assert data == (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode(), path


# Items are written by cccn_feeds itself; feedgen and lxml are the reference: the bytes
# must be theirs for any text a YAML file can carry.
_XML_TEXT = st.lists(
    st.sampled_from([*"ab &<>\"'\r\n\t;#é€😀\u2028\ufeff", "]]>", "&amp;", "<p>", "&#x26;"]),
    max_size=20,
).map("".join)
_OPTIONAL = st.one_of(st.just(""), _XML_TEXT)


@hyp_settings(max_examples=300, deadline=None)
@given(
    title=_XML_TEXT.filter(str.strip),
    link=_OPTIONAL,
    summary=_OPTIONAL,
    content=_XML_TEXT.filter(bool),
    tags=st.lists(_XML_TEXT.filter(str.strip), max_size=3, unique=True),
    author=_OPTIONAL,
    image=_OPTIONAL,
    language=st.sampled_from(["", "en", "fr", "de-LU"]),
    published=st.datetimes(datetime(1950, 1, 1), datetime(2150, 1, 1), timezones=st.just(UTC)),
)
def test_items_are_written_as_feedgen_writes_them(
    tmp_path_factory: pytest.TempPathFactory, published: datetime, **fields: Any
) -> None:
    from cccn_feeds.context import BuildContext
    from cccn_feeds.model import Content
    from cccn_feeds.render import feeds
    from cccn_feeds.render.feeditems import FeedItem

    ctx = BuildContext(
        settings=make_settings(Path("data"), Path("feeds")), content=Content((), ()),
        now=EXAMPLE_NOW.astimezone(UTC),
    )  # fmt: skip
    item = FeedItem(
        key="x", uri="tag:example.org,2025:x", published=published,
        updated=published + timedelta(hours=1), content_html=fields.pop("content"),
        tags=tuple(fields.pop("tags")), **fields,
    )  # fmt: skip
    media = "http://search.yahoo.com/mrss/"
    rss_ns = {"dc": "http://purl.org/dc/elements/1.1/", "media": media, "atom": feeds.ATOM,
              "content": "http://purl.org/rss/1.0/modules/content/"}  # fmt: skip
    atom_ns = {"media": media, None: feeds.ATOM}
    common = feeds._common(ctx, item)
    assert common is not None
    assert feeds._rss_item(ctx, item, common) == feeds._feedgen_piece(ctx, "rss", rss_ns, item)
    assert feeds._atom_entry(ctx, item, common) == feeds._feedgen_piece(ctx, "feed", atom_ns, item)


# The channel data of each document is written by cccn_feeds too; feedgen and lxml are
# the reference here as well: any settings, any page of a document, with or without
# items that need the media and content namespaces.
@hyp_settings(max_examples=150, deadline=None)
@given(
    title=_XML_TEXT.filter(str.strip),
    description=_XML_TEXT.filter(str.strip),
    publisher=st.just("") | _XML_TEXT.filter(str.strip),
    link=st.sampled_from(["https://www.lih.lu/?p=47659&x=1", "https://example.org/é"]),
    base_url=st.sampled_from(["http://127.0.0.1:8000/", "https://example.org/a&b/"]),
    language=st.sampled_from(["en", "fr", "de-LU"]),
    email=st.sampled_from(["", "contact@example.org"]),
    hub=st.sampled_from(["", "https://hub.example.org/?a=1&b=2"]),
    images=st.lists(st.booleans(), max_size=9),
    max_items=st.integers(1, 4),
    base=st.sampled_from(["news", "tags/a-b/events"]),
)
def test_channels_are_written_as_feedgen_writes_them(
    title: str, description: str, publisher: str, link: str, base_url: str, language: str,
    email: str, hub: str, images: list[bool], max_items: int, base: str,
) -> None:  # fmt: skip
    from cccn_feeds.context import BuildContext
    from cccn_feeds.model import Content
    from cccn_feeds.render import feeds
    from cccn_feeds.render.feeditems import FeedDocument, FeedItem, ItemSource, pages

    settings = make_settings(
        Path("data"), Path("feeds"), feeds={"hub": hub},
        site={"publisher": publisher, "link": link, "base_url": base_url,
              "language": language, "contact_email": email},
    )  # fmt: skip
    ctx = BuildContext(settings=settings, content=Content((), ()), now=EXAMPLE_NOW.astimezone(UTC))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    dates = {f"i{n}": start + timedelta(days=n) for n in range(len(images))}

    def make(key: str) -> FeedItem:
        day = dates[key]
        image = "https://example.org/i.png" if images[int(key[1:])] else ""
        return FeedItem(key=key, uri=f"tag:x,2025:{key}", title=key, link="", published=day,
                        updated=day, summary="", content_html="<p>x</p>", image=image)  # fmt: skip

    source = ItemSource(make, dates, {key: key for key in dates})
    doc = FeedDocument(base, "news", title, description, tuple(reversed(dates)), source, start)
    for page in pages(doc, max_items):
        for fmt in ("rss", "atom"):
            expected = feeds._feedgen_head(ctx, page, fmt)
            assert feeds._head(ctx, page, fmt, feeds._namespaces(page, fmt)) == expected
