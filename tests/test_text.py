"""Markdown to sanitised HTML and to plain text (cccn_feeds.text), checked on what a staff
member may type: every CommonMark construct the feeds use, raw HTML, hostile links."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import html as lxml_html

from cccn_feeds.text import markdown_html, markdown_text

BASE = "https://example.org/news/"


def _html(text: str) -> str:
    return markdown_html(text, base=BASE)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("*a* **b** ~~c~~ `d<e>`",
         "<p><em>a</em> <strong>b</strong> <s>c</s> <code>d&lt;e&gt;</code></p>"),
        ("# Title\n\ntext", "<h1>Title</h1>\n<p>text</p>"),
        ("line  \nbreak", "<p>line<br>\nbreak</p>"),
        ("- a\n- b", "<ul>\n<li>a</li>\n<li>b</li>\n</ul>"),
        ("3. c\n4. d", '<ol start="3">\n<li>c</li>\n<li>d</li>\n</ol>'),
        ("> quoted", "<blockquote>\n<p>quoted</p>\n</blockquote>"),
        ("```py\nx < 1\n```", "<pre><code>x &lt; 1\n</code></pre>"),
        ("---", "<hr>"),
        ("[rel](../a b)", "<p>[rel](../a b)</p>"),
        ("[rel](../more)", '<p><a href="https://example.org/more">rel</a></p>'),
        ("<https://inc.lu/x>", '<p><a href="https://inc.lu/x">https://inc.lu/x</a></p>'),
        ("<me@example.org>", '<p><a href="mailto:me@example.org">me@example.org</a></p>'),
        ("[é](https://example.org/é)", '<p><a href="https://example.org/%C3%A9">é</a></p>'),
        ('![a *b* ![c](d)](pic.png "T")',
         '<p><img src="https://example.org/news/pic.png" alt="a b c" title="T"></p>'),
        ("[![logo](l.png)](https://lih.lu/)",
         '<p><a href="https://lih.lu/"><img src="https://example.org/news/l.png" alt="logo">'
         "</a></p>"),
    ],
)  # fmt: skip
def test_markdown_to_html(source: str, expected: str) -> None:
    got = _html(source)
    assert got.count("<a ") == got.count('rel="noopener noreferrer"')
    assert got.replace(' rel="noopener noreferrer"', "") == expected


def test_a_table_keeps_its_alignment() -> None:
    got = _html("| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |")
    cells = lxml_html.fromstring(got).xpath("//th | //td")
    assert [(c.tag, c.get("align"), c.text) for c in cells] == [
        ("th", "left", "a"), ("th", "center", "b"), ("th", "right", "c"),
        ("td", "left", "1"), ("td", "center", "2"), ("td", "right", "3"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "<div onclick='x()'>*text*</div>",
        "a <img src=x onerror=alert(1)> b",
        "<!-- hidden --> shown",
        "<b>bold?</b>",
    ],
)
def test_raw_html_is_shown_as_text_never_passed(source: str) -> None:
    got = _html(source)
    tree = lxml_html.fragment_fromstring(got, create_parent="div")
    assert {e.tag for e in tree.iter()} <= {"div", "p", "em"}, got  # text, maybe emphasis
    assert tree.text_content().replace("*", "") == source.replace("*", "")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # An unclosed comment or <pre> does not swallow the Markdown after it.
        ("Intro\n\n<!-- draft\n\n## Agenda\n\n**Bold**",
         "<p>Intro</p>\n<p>&lt;!-- draft</p>\n<h2>Agenda</h2>\n<p><strong>Bold</strong></p>"),
        ("<pre>\n*a*", "<p>&lt;pre&gt;\n<em>a</em></p>"),
        ("<div>\n*a*\n</div>", "<p>&lt;div&gt;\n<em>a</em>\n&lt;/div&gt;</p>"),
        ("- a\n  - b", "<ul>\n<li>a\n<ul>\n<li>b</li>\n</ul>\n</li>\n</ul>"),
        ("- a\n\n- b", "<ul>\n<li>\n<p>a</p>\n</li>\n<li>\n<p>b</p>\n</li>\n</ul>"),
        ("    code", "<pre><code>code\n</code></pre>"),
        ("- a\n  ```\n  ```", "<ul>\n<li>a\n<pre><code></code></pre>\n</li>\n</ul>"),
        ("~x~ ~~y~~", "<p>~x~ <s>y</s></p>"),
        ("|a|\n|-|\n", "<table>\n<thead>\n<tr>\n<th>a</th>\n</tr>\n</thead>\n</table>"),
        ("[x](http://bücher.example/)", '<p><a href="http://xn--bcher-kva.example/">x</a></p>'),
        ("[a](http://x.org/%zz%41)", '<p><a href="http://x.org/%25zz%41">a</a></p>'),
        ("[x](//[x)", '<p><a href="https://%5Bx">x</a></p>'),
        ("[x](https://Zürich.ch/)", '<p><a href="https://xn--Zrich-kva.ch/">x</a></p>'),
        ("[x](https://straße.de/ä)", '<p><a href="https://xn--strae-oqa.de/%C3%A4">x</a></p>'),
        ("[m](mailto:info@zürich.ch)", '<p><a href="mailto:info@xn--zrich-kva.ch">m</a></p>'),
        ("a &#8; b &#xFFFE; c", "<p>a \ufffd b \ufffd c</p>"),
        ("[Register](https://[TBD]/für)", "<p><a>Register</a></p>"),  # no address at all
    ],
)  # fmt: skip
def test_commonmark_as_before(source: str, expected: str) -> None:
    """What markdown-it (the previous renderer) wrote for the same text."""
    assert _html(source).replace(' rel="noopener noreferrer"', "") == expected


@pytest.mark.parametrize(
    "source",
    ["[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))", "[x](data:text/html,hi)",
     "[x](vbscript:msgbox)", "![x](javascript:alert(1))"],
)  # fmt: skip
def test_dangerous_addresses_are_dropped(source: str) -> None:
    """A link to a script or data address stays as typed (text), never an address."""
    tree = lxml_html.fragment_fromstring(_html(source), create_parent="div")
    for element in tree.iter():
        for name in ("href", "src"):
            value = (element.get(name) or "").lower()
            assert not value.startswith(("javascript:", "data:", "vbscript:")), value
    assert tree.text_content() == source


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("*a* **b** `c`", "a b c"),
        (
            "See [the INC](https://www.cancer.lu/x) now.",
            "See the INC (https://www.cancer.lu/x) now.",
        ),
        ("<https://inc.lu/x> and <me@example.org>", "https://inc.lu/x and me@example.org"),
        ("[rel](../more)", "rel"),
        ("one\ntwo\n\nthree", "one two\n\nthree"),
        ("- a\n- b\n\nafter", "- a\n\n- b\n\nafter"),
        ("# Head\n\n```\ncode <x>\n\n```\n\n---\n\nend", "Head\n\ncode <x>\n\nend"),
        ("<b>kept as typed</b>", "<b>kept as typed</b>"),
        ("![alt text](p.png)", "alt text"),
        ("| a | b |\n|---|---|\n| 1 | 2 |", "a | b\n1 | 2"),
        ("- a\n  - b", "- a\n\n- b"),
        ("[js](javascript:alert(1)) ~x~", "[js](javascript:alert(1)) ~x~"),
        ("[x](http://bücher.example/)", "x (http://xn--bcher-kva.example/)"),
        ("[x](//[x)", "x"),
        ("   ", ""),
    ],
)
def test_markdown_to_text(source: str, expected: str) -> None:
    assert markdown_text(source) == expected


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from(["https://", "http://", "mailto:", "HTTPS://", "ftp://", "https:", "https:/"]),
    st.lists(
        st.sampled_from([*"ab/.?#;:@%&=+ -9", "..", "/./", "/../", "é", "//", "?#", "x.org",
                         "/.", "/..", "#?", "?/.."]),
        max_size=12,
    ).map("".join),
    st.sampled_from([BASE, "http://x.org", "https://a.b/c/d?e#f", "mailto:x@y"]),
)  # fmt: skip
def test_addresses_left_alone_are_those_urljoin_gives_back(
    scheme: str, rest: str, base: str
) -> None:
    """Links that are already absolute skip urljoin only when it would not change them."""
    from urllib.parse import urljoin

    from cccn_feeds.text import _PLAIN_ABSOLUTE

    value = scheme + rest
    if _PLAIN_ABSOLUTE.match(value):
        assert urljoin(base, value) == value


@pytest.mark.parametrize(
    "value",
    ["https://x.org/a/../b", "https://x.org/./a", "https://x.org/a/..", "https://x.org/a/.",
     "https://x.org/a?", "https://x.org/a#", "https://x.org/a?#", "https://x.org", "https://",
     "mailto:", "http://x.org/a/b/../../c?q=1#f", "https://x.org/a/.hidden/b.html",
     "https://a/;", "https://a/b;c", "https://a/b;"],
)  # fmt: skip
def test_tricky_addresses_skip_urljoin_only_when_unchanged(value: str) -> None:
    from urllib.parse import urljoin

    from cccn_feeds.text import _PLAIN_ABSOLUTE

    for base in (BASE, "http://x.org/p/q"):
        assert not _PLAIN_ABSOLUTE.match(value) or urljoin(base, value) == value


def test_one_rendering_serves_every_base_unless_an_address_is_relative() -> None:
    from cccn_feeds.text import MEMO

    MEMO.begin({})
    absolute = "See [the programme](https://example.org/p) and ![x](https://example.org/i.png)."
    first = markdown_html(absolute, base="https://a.example/")
    assert markdown_html(absolute, base="https://b.example/") == first
    assert markdown_html(absolute) == first
    assert len(MEMO.used) == 1  # rendered once, kept for any base
    relative = "See [the programme](programme.html)."
    on_a = markdown_html(relative, base="https://a.example/x/")
    on_b = markdown_html(relative, base="https://b.example/")
    assert 'href="https://a.example/x/programme.html"' in on_a
    assert 'href="https://b.example/programme.html"' in on_b
    assert 'href="programme.html"' in markdown_html(relative)
    assert len(MEMO.used) == 4
    MEMO.begin({})
