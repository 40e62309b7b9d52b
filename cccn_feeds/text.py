"""Markdown to sanitised HTML and to plain text, shared by every renderer."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin, urlsplit

_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "dl", "dt", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "strong", "sub",
    "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "td": {"align"},
    "th": {"align"},
}


@lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    # CommonMark with tables and strikethrough; raw HTML in the source is escaped, not passed.
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"]
    )


class _Memo:
    """Rendered Markdown remembered within a build and, through the build's store, between
    builds: a rebuild renders only texts it has not seen. Keys are hashes of the inputs."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}
        self.used: dict[str, str] = {}

    def begin(self, known: dict[str, str]) -> None:
        """Start a build that may reuse ``known`` renderings."""
        self.known, self.used = dict(known), {}

    def get(self, kind: str, make: Callable[..., str], *args: str) -> str:
        digest = hashlib.blake2b(kind.encode(), digest_size=16)
        for arg in args:
            digest.update(b"\0" + arg.encode())
        key = digest.hexdigest()
        found = self.used.get(key)
        if found is None:
            found = self.known.get(key)
            if found is None:
                found = make(*args)
            self.used[key] = found
        return found


MEMO = _Memo()


def markdown_html(text: str, base: str = "") -> str:
    """Markdown to sanitised HTML with absolute links; empty text gives an empty string."""
    if not text.strip():
        return ""
    return MEMO.get("html", _markdown_html, text, base)


def markdown_text(text: str) -> str:
    """Markdown to readable plain text: paragraphs kept, links as "label (address)"."""
    if not text.strip():
        return ""
    return MEMO.get("text", _markdown_text, text)


def _markdown_html(text: str, base: str) -> str:
    import nh3

    def absolute(_tag: str, attribute: str, value: str) -> str:
        # Readers break on relative links: every href and src is made absolute.
        return urljoin(base, value) if base and attribute in {"href", "src"} else value

    clean = nh3.clean(
        _markdown().render(text),
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        attribute_filter=absolute,
    )
    return clean.strip()


def _markdown_text(text: str) -> str:
    tokens = _markdown().parse(text)
    out: list[str] = []
    for token in tokens:
        if token.type == "inline":
            out.append(_inline_text(token.children or []))
        elif token.type in {"fence", "code_block"}:
            out.append(token.content.rstrip("\n") + "\n\n")
        elif token.type == "list_item_open":
            out.append("- ")
        elif token.type == "paragraph_close" or token.type.startswith("heading_close"):
            out.append("\n\n")
        elif token.type == "hr":
            out.append("\n")
    joined = "".join(out)
    joined = re.sub(r"- \n*", "- ", joined)
    return re.sub(r"\n{3,}", "\n\n", joined).strip()


def _inline_text(children: list[Any]) -> str:
    parts: list[str] = []
    href_stack: list[str] = []
    label_start: list[int] = []
    for child in children:
        if child.type in {"text", "code_inline"}:
            parts.append(child.content)
        elif child.type in {"softbreak", "hardbreak"}:
            parts.append("\n" if child.type == "hardbreak" else " ")
        elif child.type == "link_open":
            href_stack.append(str(child.attrs.get("href", "")))
            label_start.append(len(parts))
        elif child.type == "link_close" and href_stack:
            href = href_stack.pop()
            label = "".join(parts[label_start.pop() :])
            if href and href != label and urlsplit(href).scheme in {"http", "https", "mailto"}:
                parts.append(f" ({href})")
        elif child.type == "image":
            parts.append(child.content or "")
    return "".join(parts)


def first_sentence_summary(text: str, limit: int = 280) -> str:
    """A short plain-text summary: the text up to ``limit`` characters, cut at a word."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"
