"""The built page in a real headless Chromium, served over HTTP on 127.0.0.1.

One browser session and one HTTP server for the module. The default build runs every
renderer, so the link test also proves the feeds and calendars the page points to exist.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from cccn_feeds.build import build
from cccn_feeds.context import BuildContext
from cccn_feeds.validate import load_content
from tests.conftest import EXAMPLE_NOW, EXAMPLES, ROOT, make_settings
from tests.test_page import write_hostile_corpus

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOSTILE_SITE_TITLE = "CCCN </title><script>window.__pwned=9</script> & co"


CONTRAST_SELECTORS = [
    "header.site h1",
    "header.site p",
    "nav a",
    "h2",
    "main p.meta",
    "main .note",
    "main h3 a",
    "main .summary p",
    ".tags li a",
    ".badge.cancelled",
    ".badge.tentative",
    ".add a",
    ".subscribe li",
    "table.tagfeeds a",
    "footer p",
]
# WCAG 2 contrast of each element's text colour against its first opaque background.
CONTRAST_JS = """
const rgb = s => s.match(/[\\d.]+/g).map(Number);
const lum = c => {
  const [r, g, b] = c.slice(0, 3).map(v => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const out = {};
for (const css of arguments[0]) {
  const el = document.querySelector(css);
  if (!el) continue;
  let bg = [255, 255, 255], node = el;
  while (node && node.nodeType === 1) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length < 4 || c[3] > 0) { bg = c; break; }
    node = node.parentElement;
  }
  const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg);
  out[css] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}
return out;
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """Static files without a log line per request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class Served:
    """The two built sites and where they are served."""

    root: str  # http://127.0.0.1:PORT/
    example: str  # the example corpus, full default build
    hostile: str  # titles and texts with script payloads
    example_ctx: BuildContext


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Build both sites with every renderer and serve them from one local HTTP server."""
    www = tmp_path_factory.mktemp("www")
    handler = functools.partial(_Quiet, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    root = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        data = tmp_path_factory.mktemp("data")
        shutil.copytree(EXAMPLES, data / "example", ignore=shutil.ignore_patterns("*.md"))
        example = make_settings(
            data / "example", www / "example", site={"base_url": root + "example/"}
        )
        build(example, now=EXAMPLE_NOW)
        hostile = make_settings(
            write_hostile_corpus(data / "hostile"),
            www / "hostile",
            site={"base_url": root + "hostile/", "title": HOSTILE_SITE_TITLE},
        )
        build(hostile, now=EXAMPLE_NOW)
        ctx = BuildContext(
            settings=example,
            content=load_content(example.paths.data_dir, example.site.tz),
            now=EXAMPLE_NOW,
        )
        yield Served(root, root + "example/", root + "hostile/", ctx)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the module; never downloads a driver."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        reason = f"{', '.join(missing)} not installed; run `make system-deps` as root"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(20)
    try:
        yield browser
    finally:
        browser.quit()


def visible_text(driver: Any, element_id: str) -> str:
    """The text a person sees in one element."""
    from selenium.webdriver.common.by import By

    text: str = driver.find_element(By.ID, element_id).text
    return text


def hrefs(driver: Any, css: str) -> list[str]:
    """The resolved href of every element matching ``css``."""
    found: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.href)", css
    )
    return found


def status_of(url: str) -> int:
    """The HTTP status of a GET on the local server (the body is read and dropped)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


class TestWhatAPersonSees:
    """The example page, opened in Chromium."""

    def test_news_and_events(self, driver: Any, served: Served) -> None:
        driver.get(served.example)
        assert driver.title == "Luxembourg Pilot Comprehensive Cancer Center"
        assert driver.execute_script("return document.documentElement.lang") == "en"
        news = visible_text(driver, "news-example-designation")
        assert "10/02/2027" in news and "Example Institute" in news
        assert "Example: the Luxembourg CCC joins the EUnetCCC network" in news
        assert "An invented announcement used to show a Markdown summary." in news
        markup = visible_text(driver, "news-example-markup-title")
        assert "Example: <b>bold</b> & “quotes” in a title — 5 < 6" in markup
        order: list[str] = driver.execute_script(
            "return Array.from(document.querySelectorAll('[id^=event-]')).map(e => e.id)"
        )
        assert order[:3] == [
            "event-example-webinar-weekly",
            "event-example-conference-2027",
            "event-example-before-dst",
        ]
        conference = visible_text(driver, "event-example-conference-2027")
        assert "Friday 26 – Saturday 27 March 2027 (2 days)" in conference
        assert "Example Conference Centre, 1 Example Street, L-1234 Luxembourg" in conference
        assert "Saturday 27 March 2027, 10:00–11:30 CET" in visible_text(
            driver, "event-example-before-dst"
        )
        cancelled = visible_text(driver, "event-example-cancelled")
        assert cancelled.startswith("Cancelled") and "This event is cancelled." in cancelled
        assert "Google Calendar" not in cancelled
        decoration = driver.execute_script(
            "return getComputedStyle(document.querySelector("
            "'#event-example-cancelled .title')).textDecorationLine"
        )
        assert decoration == "line-through"
        assert "12:00–13:00 EDT in New York" in visible_text(driver, "event-example-new-york")

    def test_every_feed_and_ics_link_answers(self, driver: Any, served: Served) -> None:
        driver.get(served.example)
        links = hrefs(driver, "a[href], link[rel=alternate], link[rel=outline]")
        local = sorted(
            {
                "http://" + h.split("://", 1)[1] if h.startswith("webcal://") else h
                for h in links
                if h.startswith(served.root) or h.startswith("webcal://127.0.0.1")
            }
        )
        local = [h.split("#", 1)[0] for h in local]
        expected = {served.example + f.path for f in served.example_ctx.catalog}
        expected |= {served.example + f"events/{e.id}.ics" for e in served.example_ctx.forthcoming}
        expected.add(served.example + "feeds.opml")
        assert expected <= set(local), sorted(expected - set(local))
        failing = {url: code for url in sorted(set(local)) if (code := status_of(url)) != 200}
        assert not failing, f"links on the page that do not answer 200: {failing}"

    def test_add_to_calendar_times_across_dst(self, driver: Any, served: Served) -> None:
        driver.get(served.example)

        def query(event_id: str, host: str) -> dict[str, str]:
            (href,) = hrefs(driver, f"#event-{event_id} .add a[href^='https://{host}']")
            return {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}

        assert query("example-before-dst", "calendar.google.com")["dates"] == (
            "20270327T090000Z/20270327T103000Z"
        )
        assert query("example-after-dst", "calendar.google.com")["dates"] == (
            "20270329T080000Z/20270329T093000Z"
        )
        outlook = query("example-after-dst", "outlook.live.com")
        assert (outlook["startdt"], outlook["enddt"]) == (
            "2027-03-29T08:00:00Z",
            "2027-03-29T09:30:00Z",
        )
        all_day = query("example-conference-2027", "outlook.live.com")
        assert (all_day["startdt"], all_day["enddt"], all_day["allday"]) == (
            "2027-03-26",
            "2027-03-28",
            "true",
        )
        assert query("example-conference-2027", "calendar.google.com")["dates"] == (
            "20270326/20270328"
        )
        tz_change = query("example-tentative-brussels", "calendar.google.com")
        assert tz_change["dates"] == "20271030T070000Z/20271101T160000Z"

    def test_text_contrast_meets_wcag_aa(self, driver: Any, served: Served) -> None:
        driver.get(served.example)
        ratios: dict[str, float] = driver.execute_script(CONTRAST_JS, CONTRAST_SELECTORS)
        assert set(ratios) == set(CONTRAST_SELECTORS), "a checked element is missing"
        low = {css: round(r, 2) for css, r in ratios.items() if r < 4.5}
        assert not low, f"text below the 4.5:1 contrast of WCAG AA: {low}"

    def test_screenshots_desktop_and_phone(self, driver: Any, served: Served) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        driver.get(served.example)
        try:
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1280, min(int(height) + 120, 8000))
            assert driver.save_screenshot(str(ARTIFACTS / "page.png"))
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
            )
            driver.get(served.example)
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {
                    "width": 390,
                    "height": min(int(height), 8000),
                    "deviceScaleFactor": 1,
                    "mobile": True,
                },
            )
            assert driver.save_screenshot(str(ARTIFACTS / "page-phone.png"))
        finally:
            driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
            driver.set_window_size(1280, 900)
        assert (ARTIFACTS / "page.png").stat().st_size > 10_000
        assert (ARTIFACTS / "page-phone.png").stat().st_size > 10_000


class TestHostileContent:
    """Payloads in titles and texts show as text and never run."""

    def test_payloads_are_text_and_never_run(self, driver: Any, served: Served) -> None:
        driver.get(served.hostile)
        assert driver.title == HOSTILE_SITE_TITLE
        assert driver.execute_script("return typeof window.__pwned") == "undefined"
        news = visible_text(driver, "news-hostile-script")
        assert "</script><script>document.title='pwned';window.__pwned=1</script>" in news
        assert '<img src=x onerror="window.__pwned=2">Evil source' in news
        assert "<script>window.__pwned=3</script>" in news
        event = visible_text(driver, "event-hostile-event")
        assert "<img src=x onerror=\"document.title='pwned'\"> & </script> event" in event
        assert '<svg onload="window.__pwned=6">Room' in event
        assert "<script>window.__pwned=7</script>" in event
        counts = driver.execute_script(
            "return [document.scripts.length, document.querySelectorAll("
            "'body img, body svg, [onerror], [onload], [onclick]').length,"
            " document.scripts[0].type]"
        )
        assert counts == [1, 0, "application/ld+json"]
        bad = [h for h in hrefs(driver, "[href]") if h.strip().lower().startswith("javascript:")]
        assert bad == []
        assert driver.execute_script("return typeof window.__pwned") == "undefined"
        assert driver.title == HOSTILE_SITE_TITLE
