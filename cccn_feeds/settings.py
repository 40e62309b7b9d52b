"""Typed, frozen settings with declared defaults, read once from TOML and the environment.

Precedence, lowest first: the defaults declared here, the TOML file
(``cccn-feeds.toml`` in the working directory, or ``--config FILE``), environment
variables ``CCCN_<TABLE>_<KEY>`` (``CCCN_BASE_URL`` is a short form of
``CCCN_SITE_BASE_URL``), then command-line flags (passed in as ``overrides``).
An unknown table or key is an error that names it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cccn_feeds.errors import ConfigError, Problem

DEFAULT_CONFIG_NAME = "cccn-feeds.toml"

_ISO_DURATION = re.compile(
    r"^-?P(?!$)(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)
_CRON_FIELD = re.compile(r"^[\w*/,\-]+$")


@dataclass(frozen=True, slots=True)
class SiteSettings:
    """The site the feeds belong to."""

    title: str = "Luxembourg Pilot Comprehensive Cancer Center"
    description: str = (
        "Related news and forthcoming events of the Luxembourg pilot Comprehensive "
        "Cancer Center (CCCN), part of the European network of Comprehensive Cancer "
        "Centres (EUnetCCC)."
    )
    base_url: str = "http://127.0.0.1:8000/"
    link: str = "https://www.lih.lu/?p=47659"
    language: str = "en"
    timezone: str = "Europe/Luxembourg"
    publisher: str = "Luxembourg Institute of Health"
    domain: str = ""
    contact_email: str = ""

    @property
    def tz(self) -> ZoneInfo:
        """The site's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def id_domain(self) -> str:
        """Domain for identifiers (tag: URIs, UIDs): configured, else the host of ``link``."""
        return (self.domain or urlsplit(self.link).hostname or "localhost").lower()


@dataclass(frozen=True, slots=True)
class PathsSettings:
    """Where data is read, output written and build state kept."""

    data: str = "data"
    output: str = "feeds"
    state: str = ""  # empty: a hidden folder inside the output folder

    @property
    def data_dir(self) -> Path:
        """The data folder."""
        return Path(self.data)

    @property
    def output_dir(self) -> Path:
        """The output folder."""
        return Path(self.output)

    @property
    def state_dir(self) -> Path:
        """The state folder that belongs to the output folder."""
        return Path(self.state) if self.state else Path(self.output) / ".state"


@dataclass(frozen=True, slots=True)
class FeedsSettings:
    """RSS, Atom and JSON Feed output."""

    max_items: int = 50
    hub: str = ""  # WebSub hub; empty: none
    hub_timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class PageSettings:
    """The HTML page (the feeds and calendars carry everything)."""

    max_news: int = 50  # newest news items on the page; older ones are in the feed archives
    max_past_events: int = 20  # most recent past events shown below the forthcoming ones


@dataclass(frozen=True, slots=True)
class CalendarSettings:
    """iCalendar output."""

    refresh: str = "PT6H"
    past_days: int = 365
    cancelled_days: int = 30
    alarm: str = ""  # ISO 8601 duration before the start, e.g. "PT30M"; empty: no alarm


@dataclass(frozen=True, slots=True)
class LinkcheckSettings:
    """The link checker."""

    concurrency: int = 16
    per_host: int = 2
    min_interval: float = 0.05
    timeout: float = 10.0
    deadline: float = 30.0
    retries: int = 2
    accept: tuple[int, ...] = (200, 203, 204, 206)
    allow_networks: tuple[str, ...] = ()
    broken_after_runs: int = 3
    broken_after_hours: float = 48.0
    state_file: str = ""  # empty: linkcheck.json in the state folder
    on_broken: str = "mark"  # keep | mark | drop
    backoff: float = 0.5  # first retry delay in seconds; doubles per retry, plus jitter
    retry_after_max: float = 60.0  # cap on a server's Retry-After, in seconds
    max_redirects: int = 10


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    """The service's jobs."""

    build: str = "*/15 * * * *"
    check_links: str = "0 6 * * *"
    watch: bool = True


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The HTTP server of ``serve``."""

    host: str = "127.0.0.1"
    port: int = 8000


@dataclass(frozen=True, slots=True)
class BuildSettings:
    """How a build uses the machine."""

    parallel: bool = True  # parse and render on two cores (a forked helper process)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, by table."""

    site: SiteSettings = field(default_factory=SiteSettings)
    paths: PathsSettings = field(default_factory=PathsSettings)
    feeds: FeedsSettings = field(default_factory=FeedsSettings)
    page: PageSettings = field(default_factory=PageSettings)
    calendar: CalendarSettings = field(default_factory=CalendarSettings)
    linkcheck: LinkcheckSettings = field(default_factory=LinkcheckSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    build: BuildSettings = field(default_factory=BuildSettings)
    config_file: str = ""  # the file read, if any

    def replace(self, table: str, **values: Any) -> Settings:
        """A copy with some keys of one table changed."""
        current = getattr(self, table)
        return dataclasses.replace(self, **{table: dataclasses.replace(current, **values)})


TABLES: dict[str, type[Any]] = {
    f.name: f.type if isinstance(f.type, type) else get_type_hints(Settings)[f.name]
    for f in dataclasses.fields(Settings)
    if f.name != "config_file"
}


def parse_duration(text: str) -> int:
    """Seconds in an ISO 8601 duration such as ``PT6H`` or ``P1D``; ValueError if malformed."""
    match = _ISO_DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as PT6H or P1D")
    parts = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    seconds = (
        parts["w"] * 604800 + parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    )
    return -seconds if text.startswith("-") else seconds


def _did_you_mean(name: str, options: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """Convert a TOML or environment value to the declared type, or raise ValueError."""
    origin = get_origin(kind)
    if origin is tuple:
        (item_kind, _ellipsis) = get_args(kind)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = json.loads(text)
            else:
                value = [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list, got {value!r}")
        return tuple(_coerce(v, item_kind, where) for v in value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise ValueError(f"expected a whole number, got {value!r}")
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"expected a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"expected text, got {value!r}")
    raise TypeError(f"unsupported setting type {kind!r} at {where}")  # pragma: no cover


def _line_of(text: str, table: str, key: str | None) -> int | None:
    """Best-effort line of a table header or of a key inside it in TOML text."""
    in_table = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("["):
            in_table = line.strip("[] ") == table
            if in_table and key is None:
                return number
            continue
        if in_table and key is not None and re.match(rf"^{re.escape(key)}\s*=", line):
            return number
    return None


def _check(settings: Settings, source: str) -> list[Problem]:
    """Semantic checks that types alone cannot express."""
    problems: list[Problem] = []

    def bad(table: str, key: str, message: str) -> None:
        problems.append(Problem(source, None, f"[{table}] {key}", message))

    site = settings.site
    if not site.description.strip():
        bad("site", "description", "must not be empty: RSS requires a feed description")
    for key in ("base_url", "link"):
        url = urlsplit(getattr(site, key))
        if url.scheme not in {"http", "https"} or not url.netloc:
            bad("site", key, f"{getattr(site, key)!r} is not an absolute http(s) address")
        elif re.search(r"[\s\x00-\x1f\x7f\"<>\\^`{|}]", getattr(site, key)):
            bad(
                "site",
                key,
                f"{getattr(site, key)!r} contains a space or a character URLs cannot carry",
            )
    try:
        ZoneInfo(site.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        bad("site", "timezone", f"unknown time zone {site.timezone!r}; use an IANA name")
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", site.language):
        bad("site", "language", f"{site.language!r} is not a language tag such as en or fr-LU")
    if site.domain and not re.fullmatch(r"[A-Za-z0-9.-]+", site.domain):
        bad("site", "domain", f"{site.domain!r} is not a domain name")
    if site.contact_email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", site.contact_email):
        bad("site", "contact_email", f"{site.contact_email!r} is not an email address")
    if settings.feeds.max_items < 1:
        bad("feeds", "max_items", "must be at least 1")
    for key in ("max_news", "max_past_events"):
        if getattr(settings.page, key) < 0:
            bad("page", key, "must not be negative")
    if settings.feeds.hub:
        hub = urlsplit(settings.feeds.hub)
        if hub.scheme not in {"http", "https"} or not hub.netloc:
            bad("feeds", "hub", f"{settings.feeds.hub!r} is not an absolute http(s) address")
    cal = settings.calendar
    for key in ("refresh", "alarm"):
        value = getattr(cal, key)
        if key == "alarm" and not value:
            continue
        try:
            if parse_duration(value) <= 0 and key == "refresh":
                bad("calendar", key, "must be a positive duration")
        except ValueError as exc:
            bad("calendar", key, str(exc))
    for key in ("past_days", "cancelled_days"):
        if getattr(cal, key) < 0:
            bad("calendar", key, "must not be negative")
    lc = settings.linkcheck
    for key in ("concurrency", "per_host", "broken_after_runs"):
        if getattr(lc, key) < 1:
            bad("linkcheck", key, "must be at least 1")
    for key in ("min_interval", "timeout", "deadline", "broken_after_hours"):
        if getattr(lc, key) < 0:
            bad("linkcheck", key, "must not be negative")
    if lc.retries < 0:
        bad("linkcheck", "retries", "must not be negative")
    for key in ("backoff", "retry_after_max", "max_redirects"):
        if getattr(lc, key) < 0:
            bad("linkcheck", key, "must not be negative")
    if lc.on_broken not in {"keep", "mark", "drop"}:
        bad("linkcheck", "on_broken", f"{lc.on_broken!r}: use keep, mark or drop")
    for code in lc.accept:
        if not 100 <= code <= 599:
            bad("linkcheck", "accept", f"{code} is not an HTTP status code")
    for net in lc.allow_networks:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            bad("linkcheck", "allow_networks", f"{net!r} is not a CIDR range such as 10.0.0.0/8")
    for key in ("build", "check_links"):
        expr = getattr(settings.schedule, key)
        fields_ = expr.split()
        if len(fields_) != 5 or not all(_CRON_FIELD.match(f) for f in fields_):
            bad("schedule", key, f"{expr!r} is not a five-field cron expression")
    if not 0 <= settings.server.port <= 65535:
        bad("server", "port", f"{settings.server.port} is not a port number")
    return problems


def _apply(
    tables: dict[str, dict[str, Any]],
    raw: dict[str, Any],
    source: str,
    text: str,
    problems: list[Problem],
) -> None:
    """Merge one source's values into ``tables``, recording unknown names and bad types."""
    for table, values in raw.items():
        if table not in TABLES:
            problems.append(
                Problem(
                    source,
                    _line_of(text, table, None),
                    f"[{table}]",
                    "unknown table" + _did_you_mean(table, list(TABLES)),
                )
            )
            continue
        if not isinstance(values, dict):
            problems.append(Problem(source, None, f"[{table}]", "must be a table"))
            continue
        hints = get_type_hints(TABLES[table])
        for key, value in values.items():
            if key not in hints:
                problems.append(
                    Problem(
                        source,
                        _line_of(text, table, key),
                        f"[{table}] {key}",
                        "unknown key" + _did_you_mean(key, list(hints)),
                    )
                )
                continue
            try:
                tables.setdefault(table, {})[key] = _coerce(value, hints[key], f"{table}.{key}")
            except (ValueError, json.JSONDecodeError) as exc:
                problems.append(
                    Problem(source, _line_of(text, table, key), f"[{table}] {key}", str(exc))
                )


def _from_environ(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    """Settings given as CCCN_<TABLE>_<KEY> variables (and the CCCN_BASE_URL short form)."""
    raw: dict[str, dict[str, str]] = {}
    if "CCCN_BASE_URL" in environ:
        raw.setdefault("site", {})["base_url"] = environ["CCCN_BASE_URL"]
    for name, value in environ.items():
        if not name.startswith("CCCN_"):
            continue
        rest = name[5:].lower()
        for table in TABLES:
            if rest.startswith(table + "_"):
                raw.setdefault(table, {})[rest[len(table) + 1 :]] = value
                break
    return raw


def load_settings(
    config: str | Path | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Settings:
    """Read the settings once: defaults, then TOML file, environment and overrides.

    ``config`` None means ``cccn-feeds.toml`` in the working directory when it exists.
    Raises ConfigError naming every problem.
    """
    env = dict(os.environ if environ is None else environ)
    problems: list[Problem] = []
    tables: dict[str, dict[str, Any]] = {}
    path: Path | None
    if config is None:
        path = Path(DEFAULT_CONFIG_NAME) if Path(DEFAULT_CONFIG_NAME).is_file() else None
    else:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(
                [Problem(str(path), None, "", "configuration file not found; check --config")]
            )
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(
                [Problem(str(path), None, "", "not valid UTF-8; save the file as UTF-8")]
            ) from None
        except OSError as exc:
            raise ConfigError(
                [Problem(str(path), None, "", f"cannot read: {exc.strerror or exc}")]
            ) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"line (\d+), column (\d+)", str(exc))
            line, col = (int(match[1]), int(match[2])) if match else (None, None)
            raise ConfigError(
                [Problem(str(path), line, "", f"TOML syntax error: {exc}", col)]
            ) from None
        _apply(tables, data, str(path), text, problems)
    _apply(tables, _from_environ(env), "environment", "", problems)
    for table, values in (overrides or {}).items():
        for key, value in values.items():
            if value is not None:
                tables.setdefault(table, {})[key] = value
    if problems:
        raise ConfigError(problems)
    built = {name: TABLES[name](**tables.get(name, {})) for name in TABLES}
    settings = Settings(**built, config_file=str(path) if path else "")
    if settings.site.domain != settings.site.domain.lower():  # tag: URIs want lower case
        settings = settings.replace("site", domain=settings.site.domain.lower())
    if not settings.site.base_url.endswith("/"):
        settings = settings.replace("site", base_url=settings.site.base_url + "/")
    problems = _check(settings, str(path) if path else "settings")
    if problems:
        raise ConfigError(problems)
    return settings
