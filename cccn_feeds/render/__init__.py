"""Renderers: one module per format, each ``render(ctx) -> {relative path: bytes}``.

A renderer may also offer ``stream(ctx)``, yielding (path, bytes) one output at a time,
so a large build is published without holding every output in memory.

They are imported lazily (heavy libraries stay out of ``--help``) and run in this order.
Every renderer must be deterministic: the same context gives the same bytes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping

from cccn_feeds.context import BuildContext
from cccn_feeds.publish import Output

Renderer = Callable[[BuildContext], Mapping[str, Output]]

RENDERERS: tuple[str, ...] = (
    "cccn_feeds.render.feeds",
    "cccn_feeds.render.jsonfeed",
    "cccn_feeds.render.ics",
    "cccn_feeds.render.html",
)


def stream_all(
    ctx: BuildContext, names: tuple[str, ...] = RENDERERS
) -> Iterator[tuple[str, Output]]:
    """Every output of every renderer, one at a time (renderers offer ``stream(ctx)``).

    A name ``module:kind`` asks a feed renderer for the documents of one kind only
    (``news`` or ``events``): a build on two cores shares the feeds out that way.
    """
    for name in names:
        module_name, _, kind = name.partition(":")
        module = importlib.import_module(module_name)
        stream = getattr(module, "stream", None)
        if kind:
            yield from module.stream(ctx, kind)
        elif stream is not None:
            yield from stream(ctx)
        else:
            render: Renderer = module.render
            yield from render(ctx).items()
