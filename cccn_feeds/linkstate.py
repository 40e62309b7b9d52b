"""The link checker's state file, as the build reads it (cheap: no HTTP imports).

Format (JSON, written by ``linkcheck``)::

    {"version": 1,
     "links": {"https://...": {"verdict": "broken", "status": 404, "final_url": "...",
                               "checked_at": "...Z", "first_failed": "...Z" | null,
                               "failures": 3, "declared_broken": true}}}
"""

from __future__ import annotations

from pathlib import Path

from cccn_feeds.publish import read_json
from cccn_feeds.settings import Settings

STATE_NAME = "linkcheck.json"


def state_path(settings: Settings) -> Path:
    """Where the link checker keeps its history for this output folder."""
    if settings.linkcheck.state_file:
        return Path(settings.linkcheck.state_file)
    return settings.paths.state_dir / STATE_NAME


def declared_broken(settings: Settings) -> dict[str, str]:
    """Address -> verdict of every link the checker has declared broken."""
    data = read_json(state_path(settings))
    if not isinstance(data, dict) or not isinstance(data.get("links"), dict):
        return {}
    return {
        url: str(entry.get("verdict", "broken"))
        for url, entry in sorted(data["links"].items())
        if isinstance(entry, dict) and entry.get("declared_broken")
    }
