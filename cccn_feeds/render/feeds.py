"""RSS 2.0 and Atom 1.0 feeds: the only module that imports feedgen.

feedgen writes each document's channel; lxml then adds what feedgen cannot: the
xml-stylesheet processing instruction, WebSub ``hub`` and RFC 5005 archive links in RSS,
``fh:archive`` and explicit Atom text types. The items (RSS ``<item>``, Atom ``<entry>``)
are written here once per build, with the bytes feedgen and lxml would write (a property
test compares them), and joined into every document that carries them. Every date comes
from the items (see :mod:`cccn_feeds.render.feeditems`), so unchanged input gives
identical bytes.
"""

from __future__ import annotations

import functools
import html
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from lxml import etree

from cccn_feeds.context import BuildContext
from cccn_feeds.publish import Output
from cccn_feeds.render.feeditems import (
    STYLESHEET,
    WRITTEN_PARTS_MEMO,
    FeedItem,
    FeedPage,
    Kind,
    all_pages,
    archive_path,
    page_parts,
    plain_title,
)
from cccn_feeds.text import NOT_XML

ATOM = "http://www.w3.org/2005/Atom"
MEDIA = "http://search.yahoo.com/mrss/"
FH = "http://purl.org/syndication/history/1.0"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
GENERATOR = "cccn-feeds"

_PARSER = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cccn-feeds")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def _local(ctx: BuildContext, value: datetime) -> datetime:
    """A date in the site's zone (RFC 822 offsets such as +0100/+0200 follow from it)."""
    return value.astimezone(ctx.site.tz).replace(microsecond=0)


def _feed_id(ctx: BuildContext, page: FeedPage) -> str:
    """The permanent Atom id of a feed (all its pages share it): a tag: URI on the domain."""
    return f"tag:{ctx.site.id_domain},2025:cccn/feeds/{page.doc.base}"


def _summary_html(text: str) -> str:
    """Plain text as HTML for RSS ``description`` (which readers treat as HTML)."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )


def _generator(ctx: BuildContext, page: FeedPage, fmt: str) -> Any:
    """A feedgen FeedGenerator filled with the page's channel data, without entries."""
    from feedgen.ext.dc import DcEntryExtension, DcExtension
    from feedgen.ext.media import MediaEntryExtension, MediaExtension
    from feedgen.feed import FeedGenerator

    site = ctx.site
    doc = page.doc
    fg = FeedGenerator()
    # load_extension("dc") would look for the extension's modules on every call.
    fg.register_extension("dc", DcExtension, DcEntryExtension, atom=False, rss=True)
    fg.register_extension("media", MediaExtension, MediaEntryExtension, atom=True, rss=True)
    fg.id(_feed_id(ctx, page))
    title = doc.title if not page.is_archive else f"{doc.title} (archive {page.number})"
    fg.title(plain_title(title))
    fg.description(doc.description)
    fg.language(site.language)
    fg.generator(GENERATOR, version=_version())
    media_type = "application/rss+xml" if fmt == "rss" else "application/atom+xml"
    # The self link first and the page last: RSS <link> is the href of the last call.
    fg.link(href=ctx.url(page.path(fmt)), rel="self", type=media_type)
    if fmt == "atom":
        for rel, href in _extra_links(ctx, page, fmt):
            fg.link(href=href, rel=rel, type=media_type if rel != "hub" else None)
    fg.link(href=site.link, rel="alternate", type="text/html")
    author: dict[str, str] = {"name": site.publisher, "uri": site.link}
    if site.contact_email:
        author["email"] = site.contact_email
    fg.author(author)
    fg.dc.dc_publisher(site.publisher)
    fg.updated(_local(ctx, page.updated))
    return fg


def _extra_links(ctx: BuildContext, page: FeedPage, fmt: str) -> list[tuple[str, str]]:
    """WebSub hub and RFC 5005 links of a page, as (rel, href)."""
    links: list[tuple[str, str]] = []
    if ctx.settings.feeds.hub and not page.is_archive:
        links.append(("hub", ctx.settings.feeds.hub))
    base = page.doc.base
    if page.is_archive:
        links.append(("current", ctx.url(archive_path(base, 0, fmt))))
    if page.prev_archive:
        links.append(("prev-archive", ctx.url(archive_path(base, page.prev_archive, fmt))))
    if page.next_archive:
        links.append(("next-archive", ctx.url(archive_path(base, page.next_archive, fmt))))
    return links


def _entry(ctx: BuildContext, fe: Any, item: FeedItem) -> None:
    """Fill one feedgen entry."""
    fe.id(item.uri)
    fe.guid(item.uri, permalink=False)
    fe.title(plain_title(item.title))
    if item.link:
        fe.link(href=item.link, rel="alternate")
    # RSS description: the summary as HTML; Atom: summary as text, content as HTML.
    fe.description(_summary_html(item.summary) or item.content_html)
    fe.content(item.content_html, type="html")
    if item.summary:
        fe.summary(plain_title(item.summary), type="text")
    for tag in item.tags:
        fe.category(term=tag, label=tag)
    if item.author:
        fe.author({"name": item.author})
        fe.dc.dc_creator(item.author)
    fe.published(_local(ctx, item.published))
    fe.updated(_local(ctx, item.updated))
    if item.image:
        fe.media.content(url=item.image, medium="image", group=None)


def _stylesheet_href(page_path: str) -> str:
    """The stylesheet's address relative to a page (works under any base_url)."""
    return posixpath.relpath(STYLESHEET, posixpath.dirname(page_path) or ".")


def _finish(root: etree._Element, page_path: str) -> bytes:
    """Add the stylesheet instruction and serialise as pretty UTF-8 XML."""
    href = _stylesheet_href(page_path)
    root.addprevious(
        etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{href}"')
    )
    data: bytes = etree.tostring(
        root.getroottree(), xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    return data


def _mark_archive(
    root: etree._Element, parent: etree._Element, before: str, page: FeedPage
) -> etree._Element:
    """Add ``<fh:archive/>`` (RFC 5005) ahead of the items; returns the new root, which
    declares the ``fh`` namespace beside those the page's items use."""
    unused = set() if any(item.image for item in page.items) else {"media"}
    if not page.ids:
        unused.add("content")
    nsmap = {prefix: uri for prefix, uri in root.nsmap.items() if prefix not in unused}
    nsmap["fh"] = FH
    marked = etree.Element(root.tag, attrib=dict(root.attrib), nsmap=nsmap)
    marked.extend(list(root))
    parent = marked if parent is root else marked.find(parent.tag)
    assert parent is not None
    marker = etree.SubElement(parent, f"{{{FH}}}archive")
    first = parent.find(before)
    if first is not None:
        first.addprevious(marker)
    return marked


def _rss_root(ctx: BuildContext, page: FeedPage) -> etree._Element:
    """The RSS document of a page without its items."""
    fg = _generator(ctx, page, "rss")
    root = etree.fromstring(fg.rss_str(pretty=False), _PARSER)
    channel = root.find("channel")
    assert channel is not None
    self_link = channel.find(f"{{{ATOM}}}link")
    anchor = self_link if self_link is not None else channel.find("description")
    assert anchor is not None
    for rel, href in reversed(_extra_links(ctx, page, "rss")):
        link = etree.Element(f"{{{ATOM}}}link", href=href, rel=rel)
        if rel != "hub":
            link.set("type", "application/rss+xml")
        anchor.addnext(link)
    return _mark_archive(root, channel, "item", page) if page.is_archive else root


def _atom_root(ctx: BuildContext, page: FeedPage) -> etree._Element:
    """The Atom document of a page without its entries."""
    fg = _generator(ctx, page, "atom")
    root = etree.fromstring(fg.atom_str(pretty=False), _PARSER)
    for name in ("title", "subtitle"):
        element = root.find(f"{{{ATOM}}}{name}")
        if element is not None:
            element.set("type", "text")
    return _mark_archive(root, root, f"{{{ATOM}}}entry", page) if page.is_archive else root


# Where the items go: last in the channel (RSS), last in the feed (Atom).
_CLOSE = {"rss": b"  </channel>\n</rss>\n", "atom": b"</feed>\n"}


def _document(ctx: BuildContext, page: FeedPage, fmt: str) -> bytes:
    """One RSS or Atom document: the page's channel data, then its items.

    Each item is written once per build (see :func:`_piece`) and the pieces are joined
    into every document that carries it: the bytes are those of writing the whole
    document at once, as the golden files check.
    """
    close = _CLOSE[fmt]
    namespaces = _namespaces(page, fmt)
    head = _head(ctx, page, fmt, namespaces)
    source = page.doc.source
    write = partial(_piece, ctx, fmt, dict(namespaces))
    items = [source.written(key, fmt, write) for key in page.ids]
    if fmt == "rss":
        head = _hex_references(head)  # the items had theirs when they were written
    return b"".join([head[: -len(close)], *items, close])


def _head(
    ctx: BuildContext, page: FeedPage, fmt: str, namespaces: list[tuple[str | None, str]]
) -> bytes:
    """The document without items (its closing tags included)."""
    if NOT_XML.search(_channel_text(ctx, page)) or not ctx.site.publisher.strip():
        # feedgen refuses the first, and writes an empty publisher its own way.
        return _feedgen_head(ctx, page, fmt)
    return (_rss_head if fmt == "rss" else _atom_head)(ctx, page, namespaces) + _CLOSE[fmt]


def _feedgen_head(ctx: BuildContext, page: FeedPage, fmt: str) -> bytes:
    """The document without items, written by feedgen and lxml (the reference the
    channel writer is tested against; text XML cannot carry goes this way, and is refused)."""
    root = _rss_root(ctx, page) if fmt == "rss" else _atom_root(ctx, page)
    head = _finish(root, page.path(fmt))
    assert head.endswith(_CLOSE[fmt]), head[-100:]
    return head


# The channel data of each page (about a thousand pages at 10,000 news) is written here
# as feedgen and lxml write it: feedgen's tree, serialised and parsed again, cost a fifth
# of a feed page. tests/test_feeds.py compares the two on generated settings and pages.
_NAMESPACES: dict[str, list[tuple[str | None, str]]] = {
    "rss": [("dc", "http://purl.org/dc/elements/1.1/"), ("media", MEDIA), ("atom", ATOM),
            ("content", "http://purl.org/rss/1.0/modules/content/")],
    "atom": [("media", MEDIA), (None, ATOM)],
}  # fmt: skip


def _namespaces(page: FeedPage, fmt: str) -> list[tuple[str | None, str]]:
    """The namespaces a document declares: feedgen's, and on an archive page (see
    :func:`_mark_archive`) only those its items use, and RFC 5005's."""
    declared = _NAMESPACES[fmt]
    if not page.is_archive:
        return declared
    unused = set() if any(item.image for item in page.items) else {"media"}
    if not page.ids:
        unused.add("content")
    return [(prefix, uri) for prefix, uri in declared if prefix not in unused] + [("fh", FH)]


def _xmlns(namespaces: list[tuple[str | None, str]]) -> str:
    return "".join(
        f' xmlns="{uri}"' if prefix is None else f' xmlns:{prefix}="{uri}"'
        for prefix, uri in namespaces
    )


def _channel_text(ctx: BuildContext, page: FeedPage) -> str:
    site = ctx.site
    texts = (page.doc.title, page.doc.description, site.link, site.publisher, site.language)
    return "".join((*texts, site.contact_email, ctx.url(), ctx.settings.feeds.hub))


def _prologue(page: FeedPage, fmt: str) -> str:
    href = _attr(_stylesheet_href(page.path(fmt)))
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        f'<?xml-stylesheet type="text/xsl" href="{href}"?>\n'
    )


def _page_title(page: FeedPage) -> str:
    doc = page.doc
    return plain_title(doc.title if not page.is_archive else f"{doc.title} (archive {page.number})")


def _rss_head(ctx: BuildContext, page: FeedPage, namespaces: list[tuple[str | None, str]]) -> bytes:
    """The RSS document of a page up to its items."""
    site = ctx.site
    lines = [
        f'{_prologue(page, "rss")}<rss{_xmlns(namespaces)} version="2.0">',
        "  <channel>",
        f"    <title>{_text(_page_title(page))}</title>",
        f"    <link>{_text(site.link)}</link>",
        f"    <description>{_text(page.doc.description)}</description>",
        f'    <atom:link href="{_attr(ctx.url(page.path("rss")))}" rel="self" '
        'type="application/rss+xml"/>',
    ]
    for rel, href in _extra_links(ctx, page, "rss"):
        kind = ' type="application/rss+xml"' if rel != "hub" else ""
        lines.append(f'    <atom:link href="{_attr(href)}" rel="{rel}"{kind}/>')
    lines += ["    <docs>http://www.rssboard.org/rss-specification</docs>",
              f"    <generator>{GENERATOR}</generator>"]  # fmt: skip
    if site.language:
        lines.append(f"    <language>{_text(site.language)}</language>")
    updated = _local(ctx, page.updated).strftime("%a, %d %b %Y %H:%M:%S %z")
    lines.append(f"    <lastBuildDate>{updated}</lastBuildDate>")
    lines.append(f"    <dc:publisher>{_text(site.publisher)}</dc:publisher>")
    if page.is_archive:
        lines.append("    <fh:archive/>")
    return ("\n".join(lines) + "\n").encode()


def _atom_head(
    ctx: BuildContext, page: FeedPage, namespaces: list[tuple[str | None, str]]
) -> bytes:
    """The Atom document of a page up to its entries."""
    site = ctx.site
    lang = f' xml:lang="{_attr(site.language)}"' if site.language else ""
    media_type = ' type="application/atom+xml"'
    lines = [
        f"{_prologue(page, 'atom')}<feed{_xmlns(namespaces)}{lang}>",
        f"  <id>{_text(_feed_id(ctx, page))}</id>",
        f'  <title type="text">{_text(_page_title(page))}</title>',
        f"  <updated>{_local(ctx, page.updated).isoformat()}</updated>",
        "  <author>",
        f"    <name>{_text(site.publisher)}</name>",
    ]
    if site.contact_email:
        lines.append(f"    <email>{_text(site.contact_email)}</email>")
    self_link = _attr(ctx.url(page.path("atom")))
    lines += [f"    <uri>{_text(site.link)}</uri>", "  </author>",
              f'  <link href="{self_link}" rel="self"{media_type}/>']  # fmt: skip
    for rel, href in _extra_links(ctx, page, "atom"):
        kind = media_type if rel != "hub" else ""
        lines.append(f'  <link href="{_attr(href)}" rel="{rel}"{kind}/>')
    lines.append(f'  <link href="{_attr(site.link)}" rel="alternate" type="text/html"/>')
    lines.append(f'  <generator version="{_attr(_version())}">{GENERATOR}</generator>')
    lines.append(f'  <subtitle type="text">{_text(page.doc.description)}</subtitle>')
    if page.is_archive:
        lines.append("  <fh:archive/>")
    return ("\n".join(lines) + "\n").encode()


def _piece(ctx: BuildContext, fmt: str, nsmap: Any, item: FeedItem) -> bytes:
    """One item as RSS ``<item>`` or Atom ``<entry>``, indented as in the whole document.

    Written directly: feedgen builds an lxml tree of each entry and was the largest cost of
    a build. The bytes are those feedgen and lxml write (a property test compares the two
    on generated items); text that XML cannot carry goes through feedgen, which refuses it.
    """
    common = _common(ctx, item)
    if common is None:
        piece = _feedgen_piece(ctx, "rss" if fmt == "rss" else "feed", nsmap, item)
    else:
        piece = _rss_item(ctx, item, common) if fmt == "rss" else _atom_entry(ctx, item, common)
    return _hex_references(piece) if fmt == "rss" else piece


@dataclass(frozen=True, slots=True)
class _Common:
    """What the RSS item and the Atom entry of an item both write, worked out once."""

    title: str  # escaped
    content: str  # escaped
    published: datetime  # in the site's zone
    updated: datetime


def _common(ctx: BuildContext, item: FeedItem) -> _Common | None:
    """The item's :class:`_Common` (None: XML cannot carry its text). Kept for the items of
    the last few pages (a page's Atom document follows its RSS document), at most 512."""
    known: dict[int, tuple[FeedItem, _Common | None]] = ctx.memo(WRITTEN_PARTS_MEMO, dict)
    found = known.get(id(item))
    if found is not None and found[0] is item:
        return found[1]
    if len(known) > 512:
        known.clear()
    common = None
    if not NOT_XML.search(_all_text(item)):
        common = _Common(
            title=_text(plain_title(item.title)),
            content=_text(item.content_html),
            published=_local(ctx, item.published),
            updated=_local(ctx, item.updated),
        )
    known[id(item)] = (item, common)
    return common


def _all_text(item: FeedItem) -> str:
    return "".join((item.uri, item.title, item.link, item.summary, item.content_html,
                    item.author, item.image, item.language, *item.tags))  # fmt: skip


def _text(value: str) -> str:
    """Escaped as lxml escapes element text."""
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value.replace("\r", "&#13;") if "\r" in value else value


def _attr(value: str) -> str:
    """Escaped as lxml escapes attribute values."""
    value = _text(value).replace('"', "&quot;")
    if "\n" in value or "\t" in value:
        value = value.replace("\n", "&#10;").replace("\t", "&#9;")
    return value


def _rss_item(ctx: BuildContext, item: FeedItem, common: _Common) -> bytes:
    lines = ["    <item>", f"      <title>{common.title}</title>"]
    if item.link:
        lines.append(f"      <link>{_text(item.link)}</link>")
    summary = _summary_html(item.summary)
    description = _text(summary) if summary else common.content
    lines.append(f"      <description>{description}</description>")
    lines.append(f"      <content:encoded>{common.content}</content:encoded>")
    lines.append(f'      <guid isPermaLink="false">{_text(item.uri)}</guid>')
    lines.extend(f"      <category>{_text(tag)}</category>" for tag in item.tags)
    published = common.published.strftime("%a, %d %b %Y %H:%M:%S %z")
    lines.append(f"      <pubDate>{published}</pubDate>")
    if item.author:
        lines.append(f"      <dc:creator>{_text(item.author)}</dc:creator>")
    if item.image:
        lines.append(f'      <media:content url="{_attr(item.image)}" medium="image"/>')
    lines.append("    </item>\n")
    return "\n".join(lines).encode()


def _atom_entry(ctx: BuildContext, item: FeedItem, common: _Common) -> bytes:
    lang = item.language if item.language and item.language != ctx.site.language else ""
    lines = [f'  <entry xml:lang="{_attr(lang)}">' if lang else "  <entry>",
             f"    <id>{_text(item.uri)}</id>",
             f'    <title type="text">{common.title}</title>',
             f"    <updated>{common.updated.isoformat()}</updated>"]  # fmt: skip
    if item.author:
        lines += ["    <author>", f"      <name>{_text(item.author)}</name>", "    </author>"]
    if item.content_html:
        lines.append(f'    <content type="html">{common.content}</content>')
    else:
        lines.append('    <content type="html"/>')
    if item.link:
        lines.append(f'    <link href="{_attr(item.link)}"/>')
    summary = plain_title(item.summary) if item.summary else ""
    if summary:
        lines.append(f'    <summary type="text">{_text(summary)}</summary>')
    elif item.summary:
        lines.append('    <summary type="text"/>')
    lines.extend(f'    <category term="{_attr(tag)}" label="{_attr(tag)}"/>' for tag in item.tags)
    lines.append(f"    <published>{common.published.isoformat()}</published>")
    if item.image:
        lines.append(f'    <media:content url="{_attr(item.image)}" medium="image"/>')
    lines.append("  </entry>\n")
    return "\n".join(lines).encode()


def _feedgen_piece(ctx: BuildContext, tag: str, nsmap: Any, item: FeedItem) -> bytes:
    """One item as RSS ``<item>`` or Atom ``<entry>`` (by the root ``tag``), written by
    feedgen and lxml."""
    from feedgen.entry import FeedEntry
    from feedgen.ext.dc import DcEntryExtension
    from feedgen.ext.media import MediaEntryExtension

    fe = FeedEntry()  # with the extensions of _generator
    fe.register_extension("dc", DcEntryExtension, atom=False, rss=True)
    fe.register_extension("media", MediaEntryExtension, atom=True, rss=True)
    _entry(ctx, fe, item)
    wrapper = etree.Element(tag, nsmap=nsmap)
    if tag == "rss":
        parent = etree.SubElement(wrapper, "channel")
        parent.append(fe.rss_entry())
        opening = b"<channel>\n"
    else:
        parent = wrapper
        entry = fe.atom_entry()  # feedgen's Atom elements carry no namespace of their own
        title = entry.find("title")
        if title is not None:
            title.set("type", "text")
        if item.language and item.language != ctx.site.language:
            entry.set(XML_LANG, item.language)
        parent.append(entry)
        opening = b">\n"
    data: bytes = etree.tostring(wrapper, encoding="UTF-8", pretty_print=True)
    start = data.index(opening) + len(opening)
    end = len(data) - len(_CLOSE["rss" if tag == "rss" else "atom"])
    return data[start:end]


def rss(ctx: BuildContext, page: FeedPage) -> bytes:
    """One RSS 2.0 document."""
    return _document(ctx, page, "rss")


def atom(ctx: BuildContext, page: FeedPage) -> bytes:
    """One Atom 1.0 document."""
    return _document(ctx, page, "atom")


_PLAIN_TEXT = re.compile(rb"<(title|category|dc:creator|dc:publisher)>(.*?)</\1>", re.DOTALL)


def _hex_references(data: bytes) -> bytes:
    """RSS Best Practices Profile: "&", "<", ">" in plain-text elements as hex references."""

    def fix(match: re.Match[bytes]) -> bytes:
        text = match[2].replace(b"&amp;", b"&#x26;").replace(b"&lt;", b"&#x3C;")
        text = text.replace(b"&gt;", b"&#x3E;")
        return b"<%s>%s</%s>" % (match[1], text, match[1])

    return _PLAIN_TEXT.sub(fix, data)


def stylesheet() -> bytes:
    """The XSL stylesheet that turns a feed into a readable page in a browser."""
    return (Path(__file__).resolve().parent.parent / "static" / STYLESHEET).read_bytes()


def stream(ctx: BuildContext, kind: Kind | None = None) -> Iterator[tuple[str, Output]]:
    """Every RSS and Atom document (subscription documents and archives) and feed.xsl;
    with ``kind`` (``news`` or ``events``), those of one kind (feed.xsl goes with news).

    A page whose items and neighbours are unchanged since the last build is reused.
    """
    if kind in (None, "news"):
        yield STYLESHEET, stylesheet()
    for page in all_pages(ctx, kind):
        parts = page_parts(ctx, page)
        for ext, write in (("rss", rss), ("atom", atom)):
            yield page.path(ext), ctx.keyed(page.path(ext), parts, partial(write, ctx, page))


def render(ctx: BuildContext) -> dict[str, Output]:
    """All outputs of :func:`stream` at once."""
    return dict(stream(ctx))
