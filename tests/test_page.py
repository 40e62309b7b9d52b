"""The page (index.html) and the feed list (feeds.opml), read back as HTML, JSON and XML."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jinja2
import lxml.etree
import lxml.html
import pytest

from cccn_feeds.build import build
from cccn_feeds.context import BuildContext
from cccn_feeds.errors import DataError
from cccn_feeds.linkstate import state_path
from cccn_feeds.model import Content, Event
from cccn_feeds.render import html as page
from cccn_feeds.settings import Settings
from cccn_feeds.validate import load_content
from tests.conftest import EXAMPLE_NOW, LUX, make_settings

PAGE_ONLY = ("cccn_feeds.render.html",)

# Titles and texts that try to run code: they must show as typed and never execute.
HOSTILE_NEWS = """\
news:
  - id: hostile-script
    title: "</script><script>document.title='pwned';window.__pwned=1</script>"
    date: 2027-01-10
    source: "<img src=x onerror=\\"window.__pwned=2\\">Evil source"
    url: https://example.org/news/hostile?a=1&b=2
    summary: |
      Summary <script>window.__pwned=3</script> with [a bad link](javascript:window.__pwned=4)
      and <img src=x onerror="window.__pwned=5"> inline.
    tags: ["<b>tag</b>"]
"""
HOSTILE_EVENTS = """\
events:
  - id: hostile-event
    title: "<img src=x onerror=\\"document.title='pwned'\\"> & </script> event"
    start: 2027-02-01T10:00
    end: 2027-02-01T11:00
    location: "<svg onload=\\"window.__pwned=6\\">Room"
    description: |
      Description <script>window.__pwned=7</script>
      [click me](javascript:document.title='pwned') <a href="javascript:alert(1)">raw</a>
"""


def write_hostile_corpus(folder: Path) -> Path:
    """A data folder whose titles and texts carry script, onerror= and javascript: payloads."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "news.yaml").write_text(HOSTILE_NEWS, encoding="utf-8")
    (folder / "events.yaml").write_text(HOSTILE_EVENTS, encoding="utf-8")
    return folder


def built_page(settings: Settings, now: datetime = EXAMPLE_NOW) -> tuple[str, str]:
    """Build only the page and return (index.html, feeds.opml) as text."""
    build(settings, now=now, renderers=PAGE_ONLY)
    out = settings.paths.output_dir
    return (out / "index.html").read_text("utf-8"), (out / "feeds.opml").read_text("utf-8")


def example_ctx(settings: Settings, now: datetime = EXAMPLE_NOW) -> BuildContext:
    """A context over the example corpus, without history."""
    content = load_content(settings.paths.data_dir, settings.site.tz)
    return BuildContext(settings=settings, content=content, now=now)


def json_ld(html_text: str) -> dict[str, object]:
    """The page's JSON-LD, cut out the way an HTML parser does (up to the first </script>)."""
    match = re.search(r'<script type="application/ld\+json">(.*?)</script>', html_text, re.S)
    assert match, "no JSON-LD block"
    data: dict[str, object] = json.loads(match[1])
    return data


def query(href: str) -> dict[str, str]:
    """The query of a link as a flat dict (each parameter once)."""
    parsed = parse_qs(urlsplit(href).query, keep_blank_values=True, strict_parsing=True)
    assert all(len(v) == 1 for v in parsed.values()), parsed
    return {k: v[0] for k, v in parsed.items()}


class TestGolden:
    """index.html and feeds.opml of the example corpus are byte-stable."""

    def test_golden_index_and_opml(
        self, settings: Settings, golden: Callable[[str, bytes], None]
    ) -> None:
        index, opml = built_page(settings)
        golden("page/index.html", index.encode("utf-8"))
        golden("page/feeds.opml", opml.encode("utf-8"))

    def test_same_context_same_bytes(self, settings: Settings) -> None:
        ctx = example_ctx(settings)
        assert page.render(ctx) == page.render(example_ctx(settings))


class TestEnvironment:
    """Jinja2 escapes everything and refuses undefined names."""

    def test_undefined_name_is_an_error(self) -> None:
        with pytest.raises(jinja2.UndefinedError):
            page.environment().from_string("{{ missing }}").render()

    def test_autoescape(self) -> None:
        rendered = page.environment().from_string("{{ v }}").render(v="<b>&")
        assert rendered == "&lt;b&gt;&amp;"


class TestNaturalDates:
    """Dates and times written the way people write them."""

    def test_site_date(self) -> None:
        assert page.site_date(datetime(2025, 3, 9, tzinfo=LUX), LUX) == "09/03/2025"

    @pytest.mark.parametrize(
        ("first", "last", "text"),
        [
            (date(2027, 3, 26), date(2027, 3, 26), "Friday 26 March 2027"),
            (date(2027, 3, 26), date(2027, 3, 27), "Friday 26 – Saturday 27 March 2027"),
            (date(2027, 10, 30), date(2027, 11, 1), "Saturday 30 October – Monday 1 November 2027"),
            (
                date(2027, 12, 31),
                date(2028, 1, 2),
                "Friday 31 December 2027 – Sunday 2 January 2028",
            ),
        ],
    )
    def test_day_range(self, first: date, last: date, text: str) -> None:
        assert page.day_range(first, last) == text

    def test_time_range_across_dst_end(self) -> None:
        start = datetime(2027, 10, 30, 9, 0, tzinfo=LUX)
        end = datetime(2027, 11, 1, 17, 0, tzinfo=LUX)
        assert page.time_range(start, end) == (
            "Saturday 30 October 2027, 09:00 CEST – Monday 1 November 2027, 17:00 CET"
        )

    def test_recurrence(self) -> None:
        def series(rrule: str, exdates: tuple[datetime, ...] = ()) -> Event:
            start = datetime(2027, 2, 3, 16, 0, tzinfo=LUX)
            return Event(
                id="s", title="S", start=start, end=start + timedelta(hours=1), all_day=False,
                timezone=LUX, rrule=rrule, exdates=exdates,
            )  # fmt: skip

        assert page.recurrence_text(series("FREQ=WEEKLY;COUNT=10")) == (
            "Repeats every week, 10 times in all."
        )
        skipped = (datetime(2027, 2, 17, 16, 0, tzinfo=LUX),)
        assert page.recurrence_text(series("FREQ=WEEKLY;COUNT=10", skipped)) == (
            "Repeats every week, 9 times in all."
        )
        assert page.recurrence_text(series("FREQ=MONTHLY;INTERVAL=2;UNTIL=20271231T000000Z")) == (
            "Repeats every 2 months, until Friday 31 December 2027."
        )

    def test_webcal_replaces_the_scheme(self) -> None:
        assert page.webcal("http://h:8000/events.ics") == "webcal://h:8000/events.ics"
        assert page.webcal("https://h/a/events.ics") == "webcal://h/a/events.ics"


class TestSeries:
    """A series shows its next date; its Google and Outlook links carry that date."""

    def test_all_day_weekly_series_after_its_first_dates(self, settings: Settings) -> None:
        event = Event(
            id="weekly-all-day",
            title="Weekly open day",
            start=date(2027, 1, 4),
            end=date(2027, 1, 4),
            all_day=True,
            timezone=LUX,
            rrule="FREQ=WEEKLY;COUNT=4",
        )
        now = datetime(2027, 1, 12, 9, 0, tzinfo=LUX)  # second date (11 Jan) is over
        ctx = BuildContext(settings=settings, content=Content(news=(), events=(event,)), now=now)
        view = page.event_view(ctx, event, {})
        assert view.when == "Monday 18 January 2027 (all day)"
        assert view.recurrence == "Repeats every week, 4 times in all."
        assert query(view.google)["dates"] == "20270118/20270119"
        assert (query(view.outlook)["startdt"], query(view.outlook)["enddt"]) == (
            "2027-01-18",
            "2027-01-19",
        )

    def test_timed_series_next_date_after_dst(self, settings: Settings) -> None:
        event = Event(
            id="weekly-timed",
            title="Weekly call",
            start=datetime(2027, 3, 22, 16, 0, tzinfo=LUX),
            end=datetime(2027, 3, 22, 17, 0, tzinfo=LUX),
            all_day=False,
            timezone=LUX,
            rrule="FREQ=WEEKLY",
        )
        now = datetime(2027, 3, 23, 9, 0, tzinfo=LUX)
        ctx = BuildContext(settings=settings, content=Content(news=(), events=(event,)), now=now)
        view = page.event_view(ctx, event, {})
        assert view.when == "Monday 29 March 2027, 16:00–17:00 CEST"
        assert query(view.google)["dates"] == "20270329T140000Z/20270329T150000Z"


class TestPageContent:
    """What the example page says, read back with an HTML parser."""

    @pytest.fixture
    def doc(self, settings: Settings) -> lxml.html.HtmlElement:
        index, _ = built_page(settings)
        return lxml.html.fromstring(index)

    def test_landmarks_language_and_headings(self, doc: lxml.html.HtmlElement) -> None:
        assert doc.get("lang") == "en"
        for landmark in ("header", "nav", "main", "footer"):
            assert len(doc.findall(f".//{landmark}")) == 1, landmark
        assert [h.text_content() for h in doc.findall(".//h1")] == [
            "Luxembourg Pilot Comprehensive Cancer Center"
        ]
        h2 = [h.text_content() for h in doc.findall(".//h2")]
        assert h2[:2] == ["Related News", "Forthcoming events"] and "Subscribe" in h2
        assert doc.find(".//meta[@name='viewport']") is not None

    def test_standalone_without_javascript(self, doc: lxml.html.HtmlElement) -> None:
        scripts = doc.findall(".//script")
        assert [s.get("type") for s in scripts] == ["application/ld+json"]
        assert not [s for s in scripts if s.get("src")]
        rels = {link.get("rel") for link in doc.findall(".//link")}
        assert rels == {"canonical", "alternate", "outline"}  # no stylesheet, no font
        for element in doc.iter():
            if not isinstance(element.tag, str):
                continue
            assert not [a for a in element.attrib if a.lower().startswith("on")], element.tag
        style = doc.find(".//style")
        assert style is not None and "@import" not in style.text_content()
        assert "url(" not in style.text_content() and "@font-face" not in style.text_content()

    def test_news_newest_first_with_site_dates(self, doc: lxml.html.HtmlElement) -> None:
        items = doc.xpath("//section[@aria-labelledby='news']//ol/li")
        assert [li.get("id") for li in items] == [
            "news-example-designation",
            "news-example-same-day-b",
            "news-example-same-day-a",
            "news-example-markup-title",
            "news-example-french",
        ]
        first = items[0]
        time = first.find(".//time")
        assert (time.text, time.get("datetime")) == ("10/02/2027", "2027-02-10T09:30:00+01:00")
        assert items[1].find(".//time").get("datetime") == "2027-01-20"
        link = first.find(".//h3/a")
        assert link.get("href") == "https://example.org/news/designation"
        assert first.find(".//*[@class='source']").text == "Example Institute"
        assert first.find(".//div[@class='summary']/p/strong").text == "Markdown"
        assert [t.text_content() for t in first.findall(".//ul[@class='tags']/li")] == [
            "EUnetCCC",
            "CCI4EU",
        ]
        markup = items[3].find(".//h3")
        assert markup.text_content() == "Example: <b>bold</b> & “quotes” in a title — 5 < 6"
        assert markup.find(".//b") is None and markup.find(".//a") is None  # no url: no link
        assert items[4].get("lang") == "fr"

    def test_events_soonest_first_in_luxembourg_time(self, doc: lxml.html.HtmlElement) -> None:
        items = doc.xpath("//section[@aria-labelledby='events']//ol/li")
        when = {li.get("id"): li.find(".//dd/time").text_content() for li in items}
        assert list(when) == [
            "event-example-webinar-weekly",
            "event-example-conference-2027",
            "event-example-before-dst",
            "event-example-after-dst",
            "event-example-cancelled",
            "event-example-tentative-brussels",
            "event-example-new-york",
        ]
        assert when["event-example-conference-2027"] == (
            "Friday 26 – Saturday 27 March 2027 (2 days)"
        )
        assert when["event-example-before-dst"] == "Saturday 27 March 2027, 10:00–11:30 CET"
        assert when["event-example-after-dst"] == "Monday 29 March 2027, 10:00–11:30 CEST"
        assert when["event-example-new-york"] == "Tuesday 2 November 2027, 17:00–18:00 CET"
        new_york = doc.get_element_by_id("event-example-new-york")
        assert "12:00–13:00 EDT in New York" in new_york.text_content()
        weekly = doc.get_element_by_id("event-example-webinar-weekly")
        assert "Repeats every week, 9 times in all." in weekly.text_content()
        assert weekly.find(".//a[@href='https://example.org/webinar']") is not None

    def test_cancelled_event_is_marked_and_not_offered(self, doc: lxml.html.HtmlElement) -> None:
        cancelled = doc.get_element_by_id("event-example-cancelled")
        assert cancelled.find(".//h3/span[@class='badge cancelled']").text == "Cancelled"
        assert "This event is cancelled." in cancelled.text_content()
        hrefs = [a.get("href") for a in cancelled.findall(".//ul[@class='add']//a")]
        assert hrefs == ["http://127.0.0.1:8000/events/example-cancelled.ics"]
        tentative = doc.get_element_by_id("event-example-tentative-brussels")
        assert "To be confirmed" in tentative.find(".//h3").text_content()

    def test_add_to_calendar_links(self, doc: lxml.html.HtmlElement) -> None:
        def links(event_id: str) -> tuple[dict[str, str], dict[str, str], str]:
            item = doc.get_element_by_id(f"event-{event_id}")
            ics, google, outlook = (a.get("href") for a in item.findall(".//ul[@class='add']//a"))
            assert google.startswith("https://calendar.google.com/calendar/render?")
            assert outlook.startswith("https://outlook.live.com/calendar/0/deeplink/compose?")
            return query(google), query(outlook), ics

        google, outlook, ics = links("example-before-dst")  # CET, UTC+1
        assert ics == "http://127.0.0.1:8000/events/example-before-dst.ics"
        assert google["action"] == "TEMPLATE"
        assert google["dates"] == "20270327T090000Z/20270327T103000Z"
        assert google["text"] == "Example: seminar the day before clocks go forward"
        assert google["location"] == "Example Room 1"
        assert (outlook["startdt"], outlook["enddt"], outlook["allday"]) == (
            "2027-03-27T09:00:00Z",
            "2027-03-27T10:30:00Z",
            "false",
        )
        assert outlook["path"] == "/calendar/action/compose" and outlook["rru"] == "addevent"
        google, outlook, _ = links("example-after-dst")  # CEST, UTC+2
        assert google["dates"] == "20270329T080000Z/20270329T093000Z"
        assert outlook["startdt"] == "2027-03-29T08:00:00Z"
        google, outlook, _ = links("example-conference-2027")  # all-day, end exclusive
        assert google["dates"] == "20270326/20270328"
        assert (outlook["startdt"], outlook["enddt"], outlook["allday"]) == (
            "2027-03-26",
            "2027-03-28",
            "true",
        )
        assert "Registration is free." in google["details"]
        assert "More: https://example.org/events/conference-2027" in outlook["body"]
        google, _, _ = links("example-new-york")
        assert google["dates"] == "20271102T160000Z/20271102T170000Z"
        assert google["location"] == "https://example.org/live"

    def test_subscribe_panel_and_autodiscovery(
        self, doc: lxml.html.HtmlElement, settings: Settings
    ) -> None:
        catalog = example_ctx(settings).catalog
        alternates = doc.xpath("//head/link[@rel='alternate']")
        assert [(a.get("href"), a.get("type")) for a in alternates] == [
            (f"http://127.0.0.1:8000/{f.path}", f.media_type) for f in catalog
        ]
        assert all(a.get("title") for a in alternates)
        panel = doc.xpath("//section[@class='subscribe']")[0]
        hrefs = {a.get("href") for a in panel.iter("a")}
        for feed in catalog:
            assert f"http://127.0.0.1:8000/{feed.path}" in hrefs, feed.path
            if feed.format == "ics":
                assert f"webcal://127.0.0.1:8000/{feed.path}" in hrefs, feed.path
        assert "http://127.0.0.1:8000/feeds.opml" in hrefs
        text = panel.text_content()
        assert "feed reader" in text and "calendar app" in text and "From URL" in text
        row = doc.get_element_by_id("tag-eunetccc")
        assert row.find("th").text == "EUnetCCC" and len(row.findall(".//a")) == 3 + 5

    def test_no_forthcoming_events_and_recent_past(self, settings: Settings) -> None:
        index, _ = built_page(settings, now=datetime(2028, 1, 15, 12, 0, tzinfo=LUX))
        doc = lxml.html.fromstring(index)
        events = doc.xpath("//section[@aria-labelledby='events']")[0]
        assert "No forthcoming events at the moment." in events.text_content()
        assert not events.findall(".//li")
        past = doc.xpath("//section[@aria-labelledby='past-events']//ol/li")
        assert [li.get("id") for li in past][:2] == [
            "event-example-new-york",
            "event-example-tentative-brussels",
        ]
        assert not doc.xpath("//section[@aria-labelledby='past-events']//ul[@class='add']")

    def test_broken_link_is_marked(self, settings: Settings) -> None:
        path = state_path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        url = "https://example.org/news/designation"
        entry = {"verdict": "broken", "status": 404, "declared_broken": True}
        path.write_text(json.dumps({"version": 1, "links": {url: entry}}), encoding="utf-8")
        doc = lxml.html.fromstring(built_page(settings)[0])
        marked = doc.get_element_by_id("news-example-designation")
        assert "link is reported broken" in marked.text_content()
        others = doc.xpath("//*[@class='broken']")
        assert len(others) == 1


class TestStructuredData:
    """schema.org JSON-LD for news and events, safe inside <script>."""

    def test_event_and_news_article(self, settings: Settings) -> None:
        data = json_ld(built_page(settings)[0])
        assert data["@context"] == "https://schema.org"
        graph = data["@graph"]
        assert isinstance(graph, list)
        types = [g["@type"] for g in graph]
        assert types.count("NewsArticle") == 5 and types.count("Event") == 7
        by_name = {g.get("name"): g for g in graph if g["@type"] == "Event"}
        conference = by_name["Example: CCCN annual conference"]
        assert (conference["startDate"], conference["endDate"]) == ("2027-03-26", "2027-03-27")
        assert conference["location"]["geo"]["latitude"] == 49.6116
        assert conference["organizer"]["name"] == "Example Institute"
        cancelled = by_name["Example: workshop (cancelled)"]
        assert cancelled["eventStatus"] == "https://schema.org/EventCancelled"
        ny = by_name["Example: talk given from New York"]
        assert ny["startDate"] == "2027-11-02T12:00:00-04:00"
        assert ny["eventAttendanceMode"] == "https://schema.org/OnlineEventAttendanceMode"

    def test_script_end_tag_in_a_title_stays_inside_json(
        self, tmp_path: Path, data_dir: Path
    ) -> None:
        hostile = make_settings(write_hostile_corpus(tmp_path / "hostile"), tmp_path / "out")
        index, _ = built_page(hostile)
        block = index.split('<script type="application/ld+json">', 1)[1].split("</script>", 1)[0]
        assert "<" not in block and ">" not in block and "&" not in block
        data = json_ld(index)
        names = {g.get("headline") or g.get("name") for g in data["@graph"]}  # type: ignore[union-attr]
        assert "</script><script>document.title='pwned';window.__pwned=1</script>" in names
        assert index.count("<script") == 1

    def test_hostile_texts_are_text(self, tmp_path: Path) -> None:
        hostile = make_settings(write_hostile_corpus(tmp_path / "hostile"), tmp_path / "out")
        doc = lxml.html.fromstring(built_page(hostile)[0])
        assert not doc.xpath("//body//script | //body//img | //body//svg")
        assert not [a for a in doc.iter("a") if a.get("href", "").lower().startswith("javascript")]
        news = doc.get_element_by_id("news-hostile-script")
        assert news.find(".//h3").text_content().startswith("</script><script>")
        assert "<script>window.__pwned=3</script>" in news.text_content()
        link = news.find(".//h3/a").get("href")
        assert link == "https://example.org/news/hostile?a=1&b=2"

    def test_javascript_urls_are_refused_before_the_page(self, tmp_path: Path) -> None:
        data = write_hostile_corpus(tmp_path / "data")
        news = data / "news.yaml"
        news.write_text(
            news.read_text().replace("https://example.org/news/hostile?a=1&b=2", "javascript:x()")
        )
        with pytest.raises(DataError, match="url"):
            build(make_settings(data, tmp_path / "out"), now=EXAMPLE_NOW, renderers=PAGE_ONLY)
        assert not (tmp_path / "out" / "index.html").exists()


class TestOpml:
    """feeds.opml: OPML 2.0 with every feed of the catalog."""

    def test_lists_every_feed(self, settings: Settings) -> None:
        _, opml = built_page(settings)
        root = lxml.etree.fromstring(opml.encode("utf-8"))
        assert root.tag == "opml" and root.get("version") == "2.0"
        assert root.findtext("head/title") == (
            "Luxembourg Pilot Comprehensive Cancer Center: all feeds"
        )
        outlines = root.findall("body/outline")
        catalog = example_ctx(settings).catalog
        assert len(outlines) == len(catalog)
        for outline, feed in zip(outlines, catalog, strict=True):
            address = f"http://127.0.0.1:8000/{feed.path}"
            assert outline.get("text") == outline.get("title") and feed.title in outline.get("text")
            if feed.format == "ics":  # a calendar, not a reader feed: a link readers skip
                assert (outline.get("type"), outline.get("url")) == ("link", address)
                assert outline.get("xmlUrl") is None
            else:
                assert outline.get("type") == "rss"
                assert outline.get("xmlUrl") == address
                assert outline.get("htmlUrl") == "http://127.0.0.1:8000/"

    def test_markup_in_titles_is_escaped(self, tmp_path: Path, data_dir: Path) -> None:
        odd = make_settings(data_dir, tmp_path / "odd", site={"title": 'A <b>"&" CCC\''})
        _, opml = built_page(odd)
        root = lxml.etree.fromstring(opml.encode("utf-8"))
        assert root.findtext("head/title") == 'A <b>"&" CCC\': all feeds'
        assert root.find("body/outline").get("text").startswith('A <b>"&" CCC\': news')
