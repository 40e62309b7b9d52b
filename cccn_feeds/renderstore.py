"""Values a build keeps for the next one: rendered Markdown, the calendar's serialised
events, the page's event entries. A rebuild makes only those whose inputs changed.

They are kept in one file per side of the rendering: the feeds of news on one side; the
page, the calendars and the feeds of events on the other (see ``cccn_feeds.parallel``).
Each side reads its own file when it starts and writes it when it is done, in whichever
process renders it, so that neither process holds the other side's values, and on two
cores the two files are written at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cccn_feeds.context import BuildContext
from cccn_feeds.publish import dump_pickle_atomic, load_pickle
from cccn_feeds.text import MEMO

Side = Literal["news", "events"]
VERSION = 2
GLOBAL = "global-key"  # the settings and code the stored values were made with
FILES: dict[Side, str] = {
    "news": "render-cache-news.pickle",
    "events": "render-cache-events.pickle",
}
LEGACY = "render-cache.pickle"  # both sides in one file, as earlier versions kept them


@dataclass(frozen=True, slots=True)
class RenderStore:
    """Where the stored values of a build's two sides are, and what they must match."""

    state_dir: Path
    global_key: str  # values made under other settings or code are not used
    fresh: bool = False  # start from nothing (``build --force``)

    def path(self, side: Side) -> Path:
        """The file of one side."""
        return self.state_dir / FILES[side]

    def begin(self, ctx: BuildContext, side: Side) -> dict[str, Any]:
        """Give ``ctx`` and the Markdown memo the values kept for ``side``; returns them."""
        known = {} if self.fresh else load_pickle(self.path(side), VERSION)
        if known.get(GLOBAL) != self.global_key:
            known = {}
        ctx.use_store(known)
        MEMO.begin(known.get("markdown", {}))
        return known

    def end(self, ctx: BuildContext, side: Side, known: dict[str, Any]) -> None:
        """Keep the values ``side`` used, once enough are new to be worth the rewrite, and
        let go of them.

        A value missing from the file is only made again by the next build that renders
        its output, so a handful of new ones (one edited item) wait until more gather; the
        count is per side. Keys are written sorted, so that the file does not depend on
        the order in which the values were made.
        """
        used, markdown = ctx.end_store(), MEMO.end()
        if _worth_writing(used, markdown, known):
            values = {key: used[key] for key in sorted(used)}
            values["markdown"] = {key: markdown[key] for key in sorted(markdown)}
            values[GLOBAL] = self.global_key
            dump_pickle_atomic(self.path(side), values, VERSION)


def _worth_writing(used: dict[str, Any], markdown: dict[str, Any], known: dict[str, Any]) -> bool:
    before = known.get("markdown", {})
    new = sum(1 for key in used if key not in known)
    new += sum(1 for key in markdown if key not in before)
    return new > max(16, (len(used) + len(markdown)) // 200) or bool(new and not known)
