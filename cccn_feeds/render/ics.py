"""Placeholder while this renderer is being written; it produces no files yet."""

from __future__ import annotations

from cccn_feeds.context import BuildContext


def render(ctx: BuildContext) -> dict[str, bytes]:
    """No outputs yet."""
    return {}
