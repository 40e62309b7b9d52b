"""WebSub (W3C Recommendation) publish pings: tell the hub which feeds changed.

After a build that wrote a feed, the hub configured in ``[feeds] hub`` receives one
``POST`` per changed subscription document with ``hub.mode=publish`` and
``hub.url=<feed address>``. A hub that is down, slow or answers with an error is logged;
it never fails the build. Archive pages are not pinged: nobody subscribes to them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cccn_feeds.settings import Settings

log = logging.getLogger(__name__)

# Subscription documents: news/events feeds, main or per tag; not archive pages.
_FEED_PATH = re.compile(r"^(?:tags/[^/]+/)?(?:news|events)\.(?:rss|atom|json)$")


@dataclass(slots=True)
class PingResult:
    """What the pings did: addresses the hub accepted and problems met."""

    accepted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def changed_feeds(written: Iterable[str]) -> list[str]:
    """The subscription documents among written output paths, sorted."""
    return sorted(p for p in written if _FEED_PATH.match(p))


def ping(hub: str, feed_urls: Iterable[str], timeout: float) -> PingResult:
    """POST ``hub.mode=publish`` for each address; never raises for network or HTTP trouble."""
    import requests

    result = PingResult()
    with requests.Session() as session:
        for url in feed_urls:
            try:
                response = session.post(
                    hub,
                    data={"hub.mode": "publish", "hub.url": url},
                    timeout=timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                result.problems.append(f"{hub}: {type(exc).__name__} for {url}")
                break  # the hub is unreachable: do not wait out a timeout per feed
            if 200 <= response.status_code < 300:
                result.accepted.append(url)
            else:
                result.problems.append(f"{hub}: HTTP {response.status_code} for {url}")
    return result


def notify(settings: Settings, written: Iterable[str]) -> PingResult:
    """Ping the configured hub about the changed feeds among ``written``; log problems."""
    hub = settings.feeds.hub
    paths = changed_feeds(written)
    if not hub or not paths:
        return PingResult()
    from urllib.parse import urljoin

    urls = [urljoin(settings.site.base_url, p) for p in paths]
    try:
        result = ping(hub, urls, settings.feeds.hub_timeout)
    except Exception as exc:  # a hub must never fail a build
        result = PingResult(problems=[f"{hub}: {type(exc).__name__}: {exc}"])
    for problem in result.problems:
        log.warning("WebSub ping failed: %s", problem)
    if result.accepted:
        log.info("WebSub hub %s told of %d changed feeds", hub, len(result.accepted))
    return result
