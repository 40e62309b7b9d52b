"""A name for the code a build runs with: caches made by other code are not trusted."""

from __future__ import annotations

import functools
import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# Libraries whose output ends up in published files or cached values.
_LIBRARIES = ("feedgen", "icalendar", "jinja2", "pyromark", "nh3", "orjson", "pyyaml", "tzdata",
              "python-dateutil", "lxml")  # fmt: skip


@functools.cache
def code_key() -> str:
    """A hash of this package's files (by size and mtime) and the libraries' versions."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*")):
        if path.suffix in {".py", ".j2", ".html", ".xsl", ".css", ".json", ".opml"}:
            info = path.stat()
            digest.update(f"{path.relative_to(package)}:{info.st_size}:{info.st_mtime_ns}".encode())
    for name in _LIBRARIES:
        try:
            digest.update(f"{name}={version(name)}".encode())
        except PackageNotFoundError:
            digest.update(f"{name}=-".encode())
    return digest.hexdigest()
