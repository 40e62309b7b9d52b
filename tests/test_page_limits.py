"""The page stays readable with a large archive: it shows the newest news and links on."""

from __future__ import annotations

from lxml import html

from cccn_feeds.build import build
from cccn_feeds.settings import Settings
from tests.conftest import EXAMPLE_NOW


def test_page_shows_the_newest_news_and_says_where_the_rest_is(settings: Settings) -> None:
    limited = settings.replace("page", max_news=2)
    build(limited, now=EXAMPLE_NOW)
    page = html.fromstring((limited.paths.output_dir / "index.html").read_bytes())
    items = page.xpath('//section[@aria-labelledby="news"]//li[starts-with(@id, "news-")]')
    assert [li.get("id") for li in items] == ["news-example-designation", "news-example-same-day-b"]
    more = page.xpath('//p[@class="more"]')[0]
    assert more.text_content().startswith("3 older items in the news feed")
    assert more.xpath(".//a/@href") == ["http://127.0.0.1:8000/news.rss"]


def test_an_ended_series_shows_its_last_date(settings: Settings) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    build(settings, now=datetime(2027, 4, 15, 12, 0, tzinfo=ZoneInfo("Europe/Luxembourg")))
    page = html.fromstring((settings.paths.output_dir / "index.html").read_bytes())
    [webinar] = page.xpath('//*[@id="event-example-webinar-weekly"]')
    assert "Wednesday 7 April 2027, 16:00–17:00" in webinar.text_content()
