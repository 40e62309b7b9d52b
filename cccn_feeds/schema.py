"""JSON Schemas of news.yaml and events.yaml, so editors validate while staff type.

Editors with the YAML language server pick them up from a first-line comment::

    # yaml-language-server: $schema=../schema/events.schema.json

The schemas describe the shape; ``cccn-feeds validate`` remains the authority (it also
checks real dates, time zones, cross-references and RRULE syntax).
"""

from __future__ import annotations

import json
from typing import Any

_SLUG = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"}
_DATE = "^\\d{4}-\\d{2}-\\d{2}$"
_DATETIME = "^\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}(:\\d{2})?(Z|[+-]\\d{2}:\\d{2})?$"
_WHEN = {
    "type": "string",
    "anyOf": [{"pattern": _DATE}, {"pattern": _DATETIME}],
    "description": "YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS] with an optional Z or +HH:MM",
}
_URL = {"type": "string", "format": "uri", "pattern": "^https?://"}
_TEXT = {"type": "string"}
_TAGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}


def news_schema() -> dict[str, Any]:
    """The schema of news.yaml."""
    item = {
        "type": "object",
        "required": ["id", "title", "date"],
        "additionalProperties": False,
        "patternProperties": {"^(x-|_)": {}},
        "properties": {
            "id": {**_SLUG, "description": "permanent identifier; never change or reuse"},
            "title": {**_TEXT, "minLength": 1, "description": "plain text"},
            "date": _WHEN,
            "url": {**_URL, "description": "the article"},
            "source": {**_TEXT, "description": "e.g. Institut National du Cancer"},
            "summary": {**_TEXT, "description": "Markdown"},
            "body": {**_TEXT, "description": "Markdown"},
            "tags": _TAGS,
            "lang": {"type": "string", "pattern": "^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"},
            "image": _URL,
            "updated": _WHEN,
            "event": {**_SLUG, "description": "id of the event this item is about"},
        },
    }
    return _document("news", item, "Related News of the CCCN page")


def events_schema() -> dict[str, Any]:
    """The schema of events.yaml."""
    location = {
        "oneOf": [
            _TEXT,
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "name": _TEXT,
                    "address": _TEXT,
                    "geo": {
                        "type": "object",
                        "required": ["lat", "lon"],
                        "additionalProperties": False,
                        "properties": {
                            "lat": {"type": "number", "minimum": -90, "maximum": 90},
                            "lon": {"type": "number", "minimum": -180, "maximum": 180},
                        },
                    },
                },
            },
        ]
    }
    organizer = {
        "oneOf": [
            _TEXT,
            {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {"name": _TEXT, "email": {"type": "string", "format": "email"}},
            },
        ]
    }
    item = {
        "type": "object",
        "required": ["id", "title", "start"],
        "additionalProperties": False,
        "patternProperties": {"^(x-|_)": {}},
        "properties": {
            "id": {**_SLUG, "description": "permanent identifier; never change or reuse"},
            "title": {**_TEXT, "minLength": 1},
            "start": {**_WHEN, "description": "a date (all-day) or a date-time (timed)"},
            "end": {**_WHEN, "description": "all-day: the last day, inclusive; timed: a date-time"},
            "timezone": {**_TEXT, "description": "IANA name, default the site's"},
            "location": location,
            "online": _URL,
            "url": _URL,
            "description": {**_TEXT, "description": "Markdown"},
            "organizer": organizer,
            "status": {"enum": ["confirmed", "tentative", "cancelled"]},
            "tags": _TAGS,
            "rrule": {**_TEXT, "description": "RFC 5545 RRULE, e.g. FREQ=WEEKLY;COUNT=10"},
            "exdates": {"oneOf": [_WHEN, {"type": "array", "items": _WHEN}]},
            "updated": _WHEN,
            "news": {**_SLUG, "description": "id of a related news item"},
        },
    }
    return _document("events", item, "Forthcoming events of the CCCN page")


def _document(key: str, item: dict[str, Any], title: str) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"cccn-feeds {key}.yaml: {title}",
        "type": "object",
        "required": [key],
        "additionalProperties": False,
        "properties": {key: {"type": ["array", "null"], "items": item}},
    }


def schema_text(which: str) -> str:
    """The schema of ``news`` or ``events`` as formatted JSON."""
    schema = news_schema() if which == "news" else events_schema()
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
