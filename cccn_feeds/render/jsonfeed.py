"""JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/) for news."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cccn_feeds.context import BuildContext
from cccn_feeds.model import NewsItem
from cccn_feeds.text import markdown_html, markdown_text


def _rfc3339(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def news_item(ctx: BuildContext, item: NewsItem) -> dict[str, Any]:
    """One news item as a JSON Feed item."""
    entry: dict[str, Any] = {
        "id": ctx.tag_uri("news", item.id),
        "title": item.title,
        "date_published": _rfc3339(item.date),
    }
    if item.url:
        entry["url"] = item.url
    if item.updated:
        entry["date_modified"] = _rfc3339(item.updated)
    body = markdown_html(item.body or item.summary, base=item.url or ctx.site.link)
    entry["content_html"] = body or f"<p>{_escape(item.title)}</p>"
    if item.summary:
        entry["summary"] = markdown_text(item.summary)
    if item.source:
        entry["authors"] = [{"name": item.source}]
    if item.tags:
        entry["tags"] = list(item.tags)
    if item.lang:
        entry["language"] = item.lang
    if item.image:
        entry["image"] = item.image
    return entry


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def feed_document(ctx: BuildContext, path: str, title: str, items: list[dict[str, Any]]) -> bytes:
    """A whole JSON Feed document as UTF-8 bytes with stable key order."""
    doc: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": title,
        "home_page_url": ctx.site.link,
        "feed_url": ctx.url(path),
        "description": ctx.site.description,
        "language": ctx.site.language,
        "authors": [{"name": ctx.site.publisher, "url": ctx.site.link}],
        "items": items,
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def render(ctx: BuildContext) -> dict[str, bytes]:
    """news.json."""
    items = [news_item(ctx, n) for n in ctx.content.news]
    return {"news.json": feed_document(ctx, "news.json", f"{ctx.site.title}: news", items)}
