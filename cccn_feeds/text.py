"""Markdown to sanitised HTML and to plain text, shared by every renderer."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from html import escape
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "dl", "dt", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "strong", "sub",
    "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "td": {"align"},
    "th": {"align"},
}


@lru_cache(maxsize=1)
def _options() -> Any:
    import pyromark

    # CommonMark with tables and strikethrough, nothing else (no smart punctuation).
    return pyromark.Options.ENABLE_TABLES | pyromark.Options.ENABLE_STRIKETHROUGH


def _events(text: str) -> Iterator[Any]:
    """The Markdown of ``text`` as pulldown-cmark events: a name (``"SoftBreak"``) or a
    one-key mapping (``{"Text": "..."}``, ``{"Start": "Paragraph"}``), read as
    CommonMark without raw HTML (see :func:`_without_html_blocks` and :func:`_as_typed`)."""
    import pyromark

    text = _without_html_blocks(text)
    if not (_BAD_LINK.search(text) or "~" in text):
        return iter(pyromark.events(text, options=_options()))
    return _as_typed(pyromark.events_with_range(text, options=_options()), text.encode())


def _as_typed(events: Iterable[tuple[Any, Any]], source: bytes) -> Iterator[Any]:
    """Events with what markdown-it leaves as typed turned back into text: a link or
    image to a script or data address (its ``validateLink``), and text between single
    tildes (only ``~~`` strikes through). ``source`` is the text's UTF-8."""
    skipping = 0
    lone: list[bool] = []  # open strikethroughs: made with one tilde?
    for event, place in events:
        start = event.get("Start") if isinstance(event, dict) else None
        linked = isinstance(start, dict) and ("Link" in start or "Image" in start)
        if skipping:
            skipping += 1 if linked else -1 if event in _LINK_ENDS else 0
            continue
        if linked:
            assert isinstance(start, dict)
            info: dict[str, str] = start.get("Link") or start["Image"]
            if _bad_link(info["dest_url"]):
                yield {"Text": source[place["start"] : place["end"]].decode()}
                skipping = 1
                continue
        elif start == "Strikethrough":
            lone.append(not source.startswith(b"~~", place["start"]))
            if lone[-1]:
                yield {"Text": "~"}
                continue
        elif event == {"End": "Strikethrough"} and lone.pop():
            yield {"Text": "~"}
            continue
        yield event


_LINK_ENDS = ({"End": "Link"}, {"End": "Image"})


def _without_html_blocks(text: str) -> str:
    """The text with every raw HTML block turned into ordinary Markdown (its first ``<``
    escaped): raw HTML is shown as text, so a block such as an unclosed ``<!--`` or
    ``<pre`` must not swallow the Markdown after it (CommonMark without HTML)."""
    if "<" not in text:
        return text
    import pyromark

    for _ in range(8):  # an escaped block can uncover another one inside it
        events = pyromark.events_with_range(text, options=_options())
        starts = [place["start"] for event, place in events if event == _HTML_BLOCK]
        if not starts:
            break
        data = text.encode()
        for start in reversed(starts):
            at = data.index(b"<", start)
            data = data[:at] + b"\\" + data[at:]
        text = data.decode()
    return text


_HTML_BLOCK = {"Start": "HtmlBlock"}

# Addresses a link may not have (as markdown-it's validateLink): the text stays as typed.
_BAD_LINK = re.compile(r"(?:vbscript|javascript|file|data):", re.IGNORECASE)
_GOOD_DATA = re.compile(r"data:image/(?:gif|png|jpeg|webp);", re.IGNORECASE)


def _bad_link(url: str) -> bool:
    url = url.strip()
    return bool(_BAD_LINK.match(url)) and not _GOOD_DATA.match(url)


class _Memo:
    """Rendered Markdown remembered within a side of a build and, through that side's store,
    between builds: a rebuild renders only texts it has not seen. Keys are hashes of the
    inputs. The two sides (see ``cccn_feeds.renderstore``) remember apart: a news text on
    the page and in the feeds is rendered once on each side."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}
        self.used: dict[str, str] = {}

    def begin(self, known: dict[str, str]) -> None:
        """Start a build (or a part of one) that may reuse ``known`` renderings (read, not
        changed: the caller's mapping is kept as it is)."""
        self.known, self.used = known, {}

    def end(self) -> dict[str, str]:
        """The renderings used since :meth:`begin` (to keep); the memo lets go of them."""
        used = self.used
        self.known, self.used = {}, {}
        return used

    def get(self, kind: str, make: Callable[..., str], *args: str) -> str:
        key = self._key(kind, *args)
        found = self._find(key)
        if found is None:
            found = self.used[key] = make(*args)
        return found

    def html(self, text: str, base: str) -> str:
        """:func:`markdown_html`, remembered for any base when the base did not enter the
        result (every address in the text is absolute), else for this base: the page and
        the feeds of events render one text against different bases."""
        anywhere = self._key("html*", text)
        found = self._find(anywhere)
        if found is None:
            key = self._key("html", text, base)
            found = self._find(key)
            if found is None:
                found, based = _markdown_html(text, base)
                self.used[key if based else anywhere] = found
        return found

    @staticmethod
    def _key(kind: str, *args: str) -> str:
        digest = hashlib.blake2b(kind.encode(), digest_size=16)
        for arg in args:
            digest.update(b"\0" + arg.encode())
        return digest.hexdigest()

    def _find(self, key: str) -> str | None:
        found = self.used.get(key)
        if found is None:
            found = self.known.get(key)
            if found is not None:
                self.used[key] = found
        return found


MEMO = _Memo()


def markdown_html(text: str, base: str = "") -> str:
    """Markdown to sanitised HTML with absolute links; empty text gives an empty string."""
    if not text.strip():
        return ""
    return MEMO.html(text, base)


def markdown_text(text: str) -> str:
    """Markdown to readable plain text: paragraphs kept, links as "label (address)"."""
    if not text.strip():
        return ""
    return MEMO.get("text", _markdown_text, text)


# What XML 1.0 cannot carry. A numeric reference such as &#8; in Markdown can produce it:
# it is shown as U+FFFD, as markdown-it shows such references.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# An address urljoin gives back unchanged (it was the largest cost left in rendering
# Markdown): a host, then path segments that are not dot segments, then a non-empty query
# and fragment. Anything else goes through urljoin.
_PLAIN_ABSOLUTE = re.compile(
    r"(?:https?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?"
    r"(?:/(?!\.\.?(?:/|$|[?#]))[A-Za-z0-9_~%=&+,:@!$'()*.-]*)*"
    r"|mailto:[^\s?#]+)"
    r"(?:\?[^#\s]+)?(?:#\S+)?$"
)


def _markdown_html(text: str, base: str) -> tuple[str, bool]:
    """The HTML, and whether ``base`` entered it (an address of the text was relative)."""
    import nh3

    based = False

    def absolute(_tag: str, attribute: str, value: str) -> str:
        # Readers break on relative links: every href and src is made absolute.
        nonlocal based
        if attribute not in {"href", "src"} or _PLAIN_ABSOLUTE.fullmatch(value):
            return value
        based = True
        if not base:
            return value
        try:
            return urljoin(base, value)
        except ValueError:  # not an address at all (an unclosed "[" in the host, say)
            return ""

    clean = nh3.clean(
        _render_html(text),
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        attribute_filter=absolute,
    )
    return NOT_XML.sub("\ufffd", clean.strip()), based


def _link_target(info: dict[str, str]) -> str:
    url = info["dest_url"]
    return "mailto:" + url if info["link_type"] == "Email" else _quote_url(url)


def _quote_url(url: str) -> str:
    """The address as markdown-it writes it: a non-ASCII host in punycode, and what may
    not stand in an address percent-encoded, keeping what already is (a ``%`` not
    followed by two hex digits is encoded)."""
    if not url.isascii():
        url = _punycode_host(url)
    url = _LONE_PERCENT.sub("%25", url)
    return quote(url, safe="%/:=&?~#+!$,;'@()*-._")


def _punycode_host(url: str) -> str:
    """The host of an http(s) or mailto address with each non-ASCII label in punycode
    (``Zürich.ch`` -> ``xn--Zrich-kva.ch``, case kept, no other mapping, as markdown-it)."""
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() not in {"http", "https", "mailto"}:
        return url
    if scheme.lower() == "mailto":
        user, at, host_part = rest.rpartition("@")
        if not at:
            return url
        host, tail = re.match(r"([^?#]*)(.*)", host_part, re.DOTALL).groups()  # type: ignore[union-attr]
        return f"{scheme}:{user}@{_punycode(host)}{tail}"
    match = re.match(r"(//(?:[^/?#@]*@)?)([^/?#:\[\]]*)(.*)", rest, re.DOTALL)
    if match is None:
        return url
    head, host, tail = match.groups()
    return f"{scheme}:{head}{_punycode(host)}{tail}"


def _punycode(host: str) -> str:
    labels = []
    for label in host.split("."):
        if label.isascii():
            labels.append(label)
        else:
            try:
                labels.append("xn--" + label.encode("punycode").decode("ascii"))
            except UnicodeError:
                labels.append(label)
    return ".".join(labels)


_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _render_html(text: str) -> str:
    """Markdown to HTML as CommonMark (and markdown-it, which rendered it before) writes
    it, except that raw HTML typed in the text is shown as text, never passed on (the
    sanitiser would clean it anyway)."""
    return _HtmlWriter().write(_events(text))


class _HtmlWriter:
    """Writes the HTML of one text's events (see :func:`_render_html`)."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.images: list[tuple[dict[str, str], list[str]]] = []  # open images, alt text
        self.aligns: tuple[str, ...] = ()
        self.cell = 0
        self.in_head = self.in_body = False
        self.code_start = 0

    def write(self, events: Iterator[Any]) -> str:
        for event in events:
            if self.images:  # inside an image only text counts: it becomes the alt text
                _image_event(event, self.images, self.out)
            else:
                self._event(event)
        return "".join(self.out)

    def _block(self, html: str) -> None:
        """A block element starts on a line of its own."""
        if self.out and not self.out[-1].endswith("\n"):
            self.out.append("\n")
        self.out.append(html)

    def _event(self, event: Any) -> None:
        out = self.out
        if isinstance(event, str):
            if event == "Rule":
                self._block("<hr>\n")
            else:
                out.append(_SIMPLE.get(event, ""))
            return
        ((kind, value),) = event.items()
        if kind == "Code":
            out.append(f"<code>{escape(value)}</code>")
        elif kind in {"Text", "Html", "InlineHtml"}:
            out.append(escape(value))
        elif isinstance(value, str):  # Start or End of an element without details
            self._plain(kind, value)
        else:
            ((name, info),) = value.items()
            if kind == "Start" and name == "Image":
                self.images.append((info, []))
            elif kind == "Start" and name == "Table":
                self.aligns, self.cell, self.in_body = tuple(info), 0, False
                self._block("<table>\n")
            elif kind == "Start" and name in _BLOCKS:
                self._block(_tag(kind, name, info))
                self.code_start = len(out)  # where a code block's text begins
            else:
                out.append(_tag(kind, name, info))

    def _plain(self, kind: str, value: str) -> None:
        out = self.out
        if value == "TableCell":
            if kind == "Start":
                align = self.aligns[self.cell].lower() if self.cell < len(self.aligns) else "none"
                tag = "th" if self.in_head else "td"
                out.append(f'<{tag} align="{align}">' if align != "none" else f"<{tag}>")
                self.cell += 1
            else:
                out.append("</th>\n" if self.in_head else "</td>\n")
            return
        if value in {"TableHead", "TableRow"}:
            self.in_head, self.cell = value == "TableHead" and kind == "Start", 0
            if value == "TableRow" and kind == "Start" and not self.in_body:
                self.in_body = True
                out.append("<tbody>\n")
        if kind == "End" and value == "Table":
            out.append("</tbody>\n</table>\n" if self.in_body else "</table>\n")
            return
        if kind == "End" and value == "HtmlBlock" and out[-1].endswith("\n"):
            out[-1] = out[-1][:-1]
        if kind == "End" and value == "CodeBlock":
            code = "".join(out[self.code_start :])
            if code and not code.endswith("\n"):
                out.append("\n")
        if kind == "Start" and value in {"Paragraph", "HtmlBlock"}:
            self._block("<p>")
        else:
            out.append((_START if kind == "Start" else _END).get(value, ""))


_SIMPLE = {"SoftBreak": "\n", "HardBreak": "<br>\n"}
_BLOCKS = {"Heading", "List", "BlockQuote", "CodeBlock"}
_START = {"Item": "<li>", "Emphasis": "<em>", "Strong": "<strong>", "Strikethrough": "<s>",
          "TableHead": "<thead>\n<tr>\n", "TableRow": "<tr>\n"}  # fmt: skip
_END = {"Paragraph": "</p>\n", "Item": "</li>\n", "Emphasis": "</em>", "Strong": "</strong>",
        "Strikethrough": "</s>", "HtmlBlock": "</p>\n", "TableHead": "</tr>\n</thead>\n",
        "TableRow": "</tr>\n", "CodeBlock": "</code></pre>\n", "Link": "</a>"}  # fmt: skip


def _tag(kind: str, name: str, info: Any) -> str:
    """The HTML of the start or end of an element that carries details."""
    if name == "Heading":
        return f"<{info['level'].lower()}>" if kind == "Start" else f"</{info.lower()}>\n"
    if name == "List":
        if kind == "End":
            return "</ol>\n" if info else "</ul>\n"
        return "<ul>\n" if info is None else "<ol>\n" if info == 1 else f'<ol start="{info}">\n'
    if name == "BlockQuote":
        return "<blockquote>\n" if kind == "Start" else "</blockquote>\n"
    if name == "CodeBlock":  # Start only: the end carries no details
        words = info.get("Fenced", "").split() if isinstance(info, dict) else []
        return f'<pre><code class="language-{escape(words[0])}">' if words else "<pre><code>"
    if name == "Link":
        title = f' title="{escape(info["title"])}"' if info["title"] else ""
        return f'<a href="{escape(_link_target(info))}"{title}>'
    return ""


def _image_event(
    event: Any, images: list[tuple[dict[str, str], list[str]]], out: list[str]
) -> None:
    """One event inside an image: text joins the alt text; the image's end writes it."""
    if isinstance(event, str):
        images[-1][1].append(" " if event == "SoftBreak" else "")
        return
    ((kind, value),) = event.items()
    if kind in {"Text", "Code", "Html", "InlineHtml"}:
        images[-1][1].append(value)
    elif kind == "Start" and isinstance(value, dict) and "Image" in value:
        images.append((value["Image"], []))
    elif kind == "End" and value == "Image":
        info, parts = images.pop()
        if images:  # an image inside an image's text: only its text counts
            images[-1][1].extend(parts)
            return
        title = f' title="{escape(info["title"])}"' if info["title"] else ""
        src = escape(_quote_url(info["dest_url"]))
        out.append(f'<img src="{src}" alt="{escape("".join(parts))}"{title}>')


def _markdown_text(text: str) -> str:
    out: list[str] = []
    links: list[tuple[str, int]] = []  # open links: address, where the label starts
    code_start = -1
    for event in _events(text):
        if isinstance(event, str):
            out.append(_SIMPLE_TEXT.get(event, ""))
            continue
        ((kind, value),) = event.items()
        if kind in {"Text", "Code", "Html", "InlineHtml"}:
            out.append(value)
        elif kind == "Start":
            if isinstance(value, dict) and "Link" in value:
                info = value["Link"]
                links.append((_link_target(info), len(out)))
            elif isinstance(value, dict) and "CodeBlock" in value:
                code_start = len(out)
            elif value == "Item":
                if out and not out[-1].endswith("\n"):
                    out.append("\n\n")  # a nested item starts a new line
                out.append("- ")
        elif isinstance(value, dict):  # the end of a heading, list or quote
            out.append("\n\n" if "Heading" in value else "")
        elif value == "Link" and links:
            href, start = links.pop()
            label = "".join(out[start:])
            if href not in {"", label, "mailto:" + label} and _shows_address(href):
                out.append(f" ({href})")
        elif value == "CodeBlock":
            out[code_start:] = ["".join(out[code_start:]).rstrip("\n"), "\n\n"]
        elif value == "TableCell":
            out.append(" | ")
        elif value in {"TableRow", "TableHead"}:
            if out and out[-1] == " | ":
                out.pop()
            out.append("\n")
        elif value in _BREAKING_ENDS:
            out.append("\n\n")
    joined = "".join(out)
    joined = re.sub(r"- \n*", "- ", joined)
    return NOT_XML.sub("\ufffd", re.sub(r"\n{3,}", "\n\n", joined).strip())


def _shows_address(href: str) -> bool:
    try:
        return urlsplit(href).scheme in {"http", "https", "mailto"}
    except ValueError:  # not an address at all
        return False


_SIMPLE_TEXT = {"SoftBreak": " ", "HardBreak": "\n", "Rule": "\n"}
_BREAKING_ENDS = {"Paragraph", "Item", "HtmlBlock", "Table"}


def first_sentence_summary(text: str, limit: int = 280) -> str:
    """A short plain-text summary: the text up to ``limit`` characters, cut at a word."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"
