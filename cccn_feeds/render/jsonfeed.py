"""JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/) for news and events.

The same documents, items, dates and pages as RSS and Atom
(:mod:`cccn_feeds.render.feeditems`). JSON Feed has no RFC 5005 archives; older items are
reached through ``next_url`` (pagination), from the subscription document to the newest
archive page and on to older ones, so every item is reachable exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any

from cccn_feeds.context import BuildContext
from cccn_feeds.publish import Output
from cccn_feeds.render.feeditems import (
    FeedItem,
    FeedPage,
    Kind,
    all_pages,
    archive_path,
    page_parts,
)

VERSION = "https://jsonfeed.org/version/1.1"


def _rfc3339(ctx: BuildContext, value: datetime) -> str:
    """RFC 3339 in the site's zone, to the second."""
    return value.astimezone(ctx.site.tz).replace(microsecond=0).isoformat()


def item_json(ctx: BuildContext, item: FeedItem) -> dict[str, Any]:
    """One item as a JSON Feed item (keys in a fixed order)."""
    entry: dict[str, Any] = {"id": item.uri}
    if item.link:
        entry["url"] = item.link
    entry["title"] = item.title
    entry["content_html"] = item.content_html
    if item.summary:
        entry["summary"] = item.summary
    if item.image:
        entry["image"] = item.image
    entry["date_published"] = _rfc3339(ctx, item.published)
    entry["date_modified"] = _rfc3339(ctx, item.updated)
    if item.author:
        entry["authors"] = [{"name": item.author}]
    if item.tags:
        entry["tags"] = list(item.tags)
    if item.language:
        entry["language"] = item.language
    return entry


def page_json(ctx: BuildContext, page: FeedPage) -> bytes:
    """A whole JSON Feed document as UTF-8 bytes with stable key order."""
    doc = page.doc
    site = ctx.site
    title = doc.title if not page.is_archive else f"{doc.title} (archive {page.number})"
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": title,
        "home_page_url": site.link,
        "feed_url": ctx.url(page.path("json")),
        "description": doc.description,
    }
    # JSON Feed pagination runs from newer to older documents.
    older = page.prev_archive
    if older:
        feed["next_url"] = ctx.url(archive_path(doc.base, older, "json"))
    feed["language"] = site.language
    feed["authors"] = [{"name": site.publisher, "url": site.link}]
    if ctx.settings.feeds.hub and not page.is_archive:
        feed["hubs"] = [{"type": "WebSub", "url": ctx.settings.feeds.hub}]
    feed["items"] = []
    head = _dumps(feed)
    assert head.endswith(_NO_ITEMS), head[-50:]
    if not page.ids:
        return head + b"\n"
    source = page.doc.source
    write = partial(_item_piece, ctx)
    items = b",\n".join(source.written(key, "json", write) for key in page.ids)
    return b"".join((head[: -len(_NO_ITEMS)], b"[\n", items, b"\n  ]\n}\n"))


_NO_ITEMS = b"[]\n}"


def _dumps(value: dict[str, Any]) -> bytes:
    """JSON with two-space indents and UTF-8 text, as ``json.dumps(value, indent=2,
    ensure_ascii=False)`` writes it (orjson writes it about ten times as fast)."""
    import orjson

    data: bytes = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    return data


def _item_piece(ctx: BuildContext, item: FeedItem) -> bytes:
    """One item as it stands in a document's ``items`` list (indented twice): written
    once per build however many documents carry it. JSON strings hold no raw line break,
    so indenting every line is safe."""
    return b"    " + _dumps(item_json(ctx, item)).replace(b"\n", b"\n    ")


def stream(ctx: BuildContext, kind: Kind | None = None) -> Iterator[tuple[str, Output]]:
    """Every JSON Feed document: news, events, per tag, and their archive pages; with
    ``kind`` (``news`` or ``events``), those of one kind."""
    for page in all_pages(ctx, kind):
        path = page.path("json")
        yield path, ctx.keyed(path, page_parts(ctx, page), partial(page_json, ctx, page))


def render(ctx: BuildContext) -> dict[str, Output]:
    """All outputs of :func:`stream` at once."""
    return dict(stream(ctx))
