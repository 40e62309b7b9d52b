"""YAML files to raw documents that remember the line of every value (safe loading only).

Dates and times are *not* resolved by YAML here: every scalar that YAML 1.1 would turn
into a date or a datetime stays a string, so ``2026-06-15T09:00`` and
``2025-04-01T10:15:00`` are treated alike and an impossible ``2025-02-30`` becomes a
clean validation error instead of a parser exception. Booleans are only
``true``/``false``, so a title such as ``No`` or ``On`` stays text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cccn_feeds.errors import DataError, Problem

try:  # the C parser when PyYAML was built with libyaml
    _Base: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Base = yaml.SafeLoader


class LineDict(dict[str, Any]):
    """A mapping that knows its own line and the line of each key."""

    line: int
    lines: dict[str, int]


class LineList(list[Any]):
    """A sequence that knows its own line and the line of each item."""

    line: int
    lines: list[int]


class _Loader(_Base):  # type: ignore[misc]
    """Safe loader with line tracking, duplicate-key detection and no timestamp magic."""

    duplicates: list[tuple[str, int]]
    offset: int

    def __init__(self, stream: str, offset: int = 0) -> None:
        super().__init__(stream)
        self.duplicates = []
        self.offset = offset


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in list(_Loader.yaml_implicit_resolvers):
    _Loader.yaml_implicit_resolvers[_first] = [
        (tag, regexp)
        for tag, regexp in _Loader.yaml_implicit_resolvers[_first]
        if tag != "tag:yaml.org,2002:bool"
    ]
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


# Text (most values) is taken from a string scalar as it is, without PyYAML's generic
# construct_object; written out where it is used, so that nesting costs no extra call.
_STR = "tag:yaml.org,2002:str"
_SCALAR = yaml.ScalarNode


def _expect(node: yaml.Node, kind: type[yaml.Node], what: str) -> None:
    """A ``!!map`` or ``!!seq`` tag on a node of another kind is a mistake in the file."""
    if not isinstance(node, kind):
        raise yaml.constructor.ConstructorError(
            None, None, f"the tag !!{node.tag.rsplit(':', 1)[-1]} needs {what}", node.start_mark
        )


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    _expect(node, yaml.MappingNode, "a mapping")
    result = LineDict()
    offset = loader.offset + 1
    result.line = node.start_mark.line + offset
    result.lines = {}
    construct = loader.construct_object
    for key_node, value_node in node.value:
        if key_node.tag == _STR and type(key_node) is _SCALAR:
            key = key_node.value
        else:
            key = construct(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
        if key in result:
            loader.duplicates.append((key, key_node.start_mark.line + offset))
        if value_node.tag == _STR and type(value_node) is _SCALAR:
            result[key] = value_node.value
        else:
            result[key] = construct(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + offset
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    _expect(node, yaml.SequenceNode, "a list")
    construct = loader.construct_object
    result = LineList(
        child.value if child.tag == _STR and type(child) is _SCALAR else construct(child, deep=True)
        for child in node.value
    )
    offset = loader.offset + 1
    result.line = node.start_mark.line + offset
    result.lines = [child.start_mark.line + offset for child in node.value]
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def _checked(tag: str) -> Any:
    """PyYAML's constructor for an explicit scalar tag, failing as a YAML error at the
    value (``!!int x`` raised a bare ValueError)."""
    construct = _Loader.yaml_constructors[f"tag:yaml.org,2002:{tag}"]

    def run(loader: _Loader, node: yaml.Node) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError):
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a valid !!{tag}", node.start_mark
            ) from None

    return run


for _tag in ("int", "float", "bool", "timestamp"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _checked(_tag))


def _syntax_problem(name: str, exc: yaml.YAMLError, offset: int = 0) -> Problem:
    """A YAML error as FILE:LINE:COL, naming where an unclosed value started."""
    mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    message = f"YAML syntax error: {problem}"
    context = getattr(exc, "context", None)
    if context_mark is not None and (mark is None or context_mark.line != mark.line):
        message += f" ({context} on line {context_mark.line + 1 + offset})"
    elif context:
        message += f" ({context})"
    if isinstance(exc, yaml.constructor.ConstructorError):  # a tag such as "!!int"
        message += "; remove the tag, or write a value of the kind it names"
    else:
        message += "; fix the YAML at this place (quote text that holds ': ' or '#')"
    if mark is None:
        return Problem(name, None, "", message)
    return Problem(name, mark.line + 1 + offset, "", message, mark.column + 1)


def parse_yaml(text: str, name: str, offset: int = 0) -> Any:
    """Parse YAML text into LineDict/LineList values, or raise DataError.

    ``offset`` is added to every line number (for a part of a larger file).
    """
    if "\t" in text and re.search(r"^\t", text, re.MULTILINE):
        line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("\t"))
        raise DataError(
            [
                Problem(
                    name,
                    line + offset,
                    "",
                    "YAML does not allow tabs for indentation; use spaces",
                    1,
                )
            ]
        )
    loader = _Loader(text, offset)
    try:
        document = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise DataError([_syntax_problem(name, exc, offset)]) from None
    except RecursionError:
        raise DataError([Problem(name, None, "", "the YAML nests too deeply")]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise DataError(
            [
                Problem(name, line, key, "appears twice in the same mapping; keep one")
                for key, line in loader.duplicates
            ]
        )
    return document


def read_text(path: Path, name: str) -> str:
    """Read a data file as UTF-8, or raise DataError saying what is wrong."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            [Problem(name, None, "", "file not found; create it or check --data")]
        ) from None
    except OSError as exc:
        raise DataError([Problem(name, None, "", f"cannot read: {exc.strerror}")]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            [Problem(name, line, "", "not valid UTF-8; save the file as UTF-8")]
        ) from None


def load_file(path: Path, name: str | None = None) -> Any:
    """Load one YAML data file; ``name`` is how errors refer to it."""
    shown = name or str(path)
    return parse_yaml(read_text(path, shown), shown)
