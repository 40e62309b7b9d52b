"""Renderers: one module per format, each ``render(ctx) -> {relative path: bytes}``.

They are imported lazily (heavy libraries stay out of ``--help``) and run in this order.
Every renderer must be deterministic: the same context gives the same bytes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from cccn_feeds.context import BuildContext
from cccn_feeds.publish import Output

Renderer = Callable[[BuildContext], Mapping[str, Output]]

RENDERERS: tuple[str, ...] = (
    "cccn_feeds.render.feeds",
    "cccn_feeds.render.jsonfeed",
    "cccn_feeds.render.ics",
    "cccn_feeds.render.html",
)


def render_all(ctx: BuildContext, names: tuple[str, ...] = RENDERERS) -> dict[str, Output]:
    """Run every renderer and merge their outputs; two claiming one path is a bug."""
    outputs: dict[str, Output] = {}
    for name in names:
        render: Renderer = importlib.import_module(name).render
        for path, data in render(ctx).items():
            if path in outputs:
                raise RuntimeError(f"{name} and another renderer both produce {path}")
            outputs[path] = data
    return outputs
