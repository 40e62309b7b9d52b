"""Availability of the linked articles, pages and images: a polite, concurrent checker.

``run_cli`` is what ``cccn-feeds check-links`` calls: it collects every ``url``,
``online`` and ``image`` address of the news and events, checks each once (remembering
which items use it), updates the history in the state file the build reads
(``cccn_feeds.linkstate``), prints a table, writes a Markdown summary next to the state
file and, when asked, a JSON report. A link is *declared broken* only after
``broken_after_runs`` failing runs in a row or ``broken_after_hours`` since its first
failure; one passing run clears it.

The network side lives in ``linkcheck_net`` (address guard, politeness) and
``linkcheck_fetch`` (one link's requests and verdict).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from cccn_feeds.errors import CccnError
from cccn_feeds.linkcheck_fetch import (
    INCONCLUSIVE,
    PASSING,
    VERDICTS,
    Checker,
    FetchConfig,
    Outcome,
    host_key,
    is_binary,
)
from cccn_feeds.linkcheck_net import AddressPolicy, HostGate, make_session
from cccn_feeds.linkstate import state_path
from cccn_feeds.model import Content
from cccn_feeds.publish import read_json, write_atomic, write_json
from cccn_feeds.settings import LinkcheckSettings, Settings

SUMMARY_NAME = "linkcheck.md"
STATE_VERSION = 1

__all__ = [
    "VERDICTS",
    "CheckRun",
    "Use",
    "check_links",
    "collect_links",
    "run",
    "run_cli",
    "update_state",
    "user_agent",
]


@dataclass(frozen=True, slots=True, order=True)
class Use:
    """One place a link appears: a news item or event, and the field."""

    kind: str  # "news" | "event"
    id: str
    field: str  # "url" | "online" | "image"

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}.{self.field}"

    def as_json(self) -> dict[str, str]:
        """The use as a JSON object."""
        return {"kind": self.kind, "id": self.id, "field": self.field}


def collect_links(content: Content) -> dict[str, list[Use]]:
    """Every distinct address in the content, with the items (and fields) that use it."""
    links: dict[str, list[Use]] = {}
    for item in content.news:
        for name in ("url", "image"):
            if value := getattr(item, name).strip():
                links.setdefault(value, []).append(Use("news", item.id, name))
    for event in content.events:
        for name in ("url", "online"):
            if value := getattr(event, name).strip():
                links.setdefault(value, []).append(Use("event", event.id, name))
    return {url: sorted(set(uses)) for url, uses in sorted(links.items())}


def user_agent(settings: Settings) -> str:
    """The User-Agent: the project, its version and how to reach the site's team."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("cccn-feeds")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        number = "0"
    site = settings.site
    contact = f"mailto:{site.contact_email}" if site.contact_email else site.link
    return f"cccn-feeds/{number} (link checker; +{contact})"


def fetch_config(lc: LinkcheckSettings) -> FetchConfig:
    """The per-link settings of a run."""
    return FetchConfig(
        timeout=lc.timeout,
        deadline=lc.deadline,
        retries=lc.retries,
        backoff=lc.backoff,
        retry_after_max=lc.retry_after_max,
        max_redirects=lc.max_redirects,
        accept=frozenset(lc.accept),
    )


@dataclass(slots=True)
class CheckRun:
    """The outcome of every link of one run, and how polite it was."""

    outcomes: dict[str, Outcome]
    peaks: dict[str, int] = field(default_factory=dict)  # host -> most requests in flight
    seconds: float = 0.0


def check_links(
    links: Mapping[str, Sequence[Use]],
    settings: Settings,
    *,
    on_done: Callable[[Outcome], None] | None = None,
) -> CheckRun:
    """Check every link once, concurrently and politely; the order of results is by URL."""
    lc = settings.linkcheck
    started = time.monotonic()
    gate: HostGate[str] = HostGate(lc.per_host, lc.min_interval)
    hosts = {host_key(url) for url in links}
    for url in links:
        gate.put(host_key(url), url)
    policy = AddressPolicy.from_settings(lc.allow_networks)
    cfg = fetch_config(lc)
    agent = user_agent(settings)
    binary = {url: any(is_binary(url, use.field) for use in uses) for url, uses in links.items()}
    outcomes: dict[str, Outcome] = {}
    lock = threading.Lock()

    def worker() -> None:
        session = make_session(policy, hosts=len(hosts), per_host=lc.per_host, user_agent=agent)
        checker = Checker(session, gate, policy, cfg)
        try:
            while (job := gate.take()) is not None:
                host, url = job
                outcome = checker.check(url, binary[url], held=host)
                with lock:
                    outcomes[url] = outcome
                if on_done is not None:
                    on_done(outcome)
        finally:
            session.close()

    threads = [
        threading.Thread(target=worker, name=f"linkcheck-{n}", daemon=True)
        for n in range(min(lc.concurrency, len(links)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = {url: outcomes[url] for url in sorted(outcomes)}
    return CheckRun(ordered, gate.peaks(), round(time.monotonic() - started, 3))


def stamp(when: datetime) -> str:
    """A UTC timestamp as the state file writes it."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_stamp(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def update_state(
    previous: Any,
    outcomes: Mapping[str, Outcome],
    links: Mapping[str, Sequence[Use]],
    now: datetime,
    lc: LinkcheckSettings,
) -> dict[str, Any]:
    """The new state: each link's verdict and failure history after this run.

    A failing run adds one to ``failures`` (and sets ``first_failed`` the first time);
    a passing run clears both; an inconclusive one (rate limited) changes neither.
    Links no longer used by any item are forgotten.
    """
    old_links = previous.get("links") if isinstance(previous, dict) else None
    old_links = old_links if isinstance(old_links, dict) else {}
    result: dict[str, Any] = {}
    for url, out in sorted(outcomes.items()):
        old = old_links.get(url)
        old = old if isinstance(old, dict) else {}
        count = old.get("failures")
        failures = count if isinstance(count, int) and count >= 0 else 0
        first_failed = _parse_stamp(old.get("first_failed"))
        if out.verdict in PASSING:
            failures, first_failed = 0, None
            declared = False
        elif out.verdict in INCONCLUSIVE:
            declared = bool(old.get("declared_broken"))
        else:
            failures += 1
            first_failed = first_failed or now
            declared = failures >= lc.broken_after_runs or (
                now - first_failed >= timedelta(hours=lc.broken_after_hours)
            )
        result[url] = {
            "verdict": out.verdict,
            "status": out.status,
            "final_url": out.final_url,
            "checked_at": stamp(now),
            "first_failed": stamp(first_failed) if first_failed else None,
            "failures": failures,
            "declared_broken": declared,
            "detail": out.detail,
            "items": [str(use) for use in links.get(url, ())],
        }
    return {"version": STATE_VERSION, "checked_at": stamp(now), "links": result}


@dataclass(slots=True)
class LinkReport:
    """One finished run: outcomes, the new state and where files went."""

    run: CheckRun
    state: dict[str, Any]
    links: dict[str, list[Use]]
    summary_path: Path
    json_path: Path | None = None

    @property
    def declared(self) -> list[str]:
        """Addresses declared broken after this run."""
        return [u for u, e in self.state["links"].items() if e["declared_broken"]]

    def counts(self) -> Counter[str]:
        """How many links got each verdict."""
        return Counter(e["verdict"] for e in self.state["links"].values())

    def entries(self) -> list[dict[str, Any]]:
        """The JSON report's ``links`` entries, by URL."""
        rows = []
        for url, entry in self.state["links"].items():
            out = self.run.outcomes[url]
            rows.append(
                {
                    "url": url,
                    "verdict": entry["verdict"],
                    "status": entry["status"],
                    "final_url": entry["final_url"],
                    "checked_at": entry["checked_at"],
                    "items": [use.as_json() for use in self.links[url]],
                    "declared_broken": entry["declared_broken"],
                    "failures": entry["failures"],
                    "first_failed": entry["first_failed"],
                    "detail": entry["detail"],
                    "hops": out.hops,
                    "attempts": out.attempts,
                    "seconds": out.seconds,
                }
            )
        return rows


def _order(entry: tuple[str, dict[str, Any]]) -> tuple[int, str]:
    """Declared broken first, then failing, moved, redirected, inconclusive, ok."""
    url, e = entry
    rank = {"moved": 2, "redirected": 3, "rate_limited": 4, "ok": 5}.get(e["verdict"], 1)
    return (0 if e["declared_broken"] else rank, url)


def render_table(report: LinkReport) -> str:
    """The plain-text table printed on stdout."""
    rows = [("URL", "VERDICT", "STATUS", "ITEMS")]
    notes: dict[int, str] = {}
    for url, e in sorted(report.state["links"].items(), key=_order):
        verdict = e["verdict"] + (" (declared broken)" if e["declared_broken"] else "")
        status = "-" if e["status"] is None else str(e["status"])
        rows.append((url, verdict, status, ", ".join(e["items"])))
        if e["verdict"] in {"moved", "redirected"}:
            notes[len(rows) - 1] = f"  -> {e['final_url']}"
        elif e["verdict"] not in PASSING and e["detail"]:
            notes[len(rows) - 1] = f"  ({e['detail']})"
    widths = [min(max(len(r[i]) for r in rows), 70) for i in range(3)]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) for i in range(3)]
        lines.append("  ".join([*cells, row[3]]).rstrip())
        if index in notes:
            lines.append(notes[index])
    return "\n".join(lines) + "\n"


def summary_line(report: LinkReport) -> str:
    """One line: how many links, by verdict, and how many declared broken."""
    counts = report.counts()
    parts = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v])
    total = len(report.state["links"])
    declared = len(report.declared)
    return (
        f"checked {total} link{'s' if total != 1 else ''} in {report.run.seconds:.1f} s: "
        f"{parts or 'nothing to check'}; {declared} declared broken"
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: LinkReport) -> str:
    """The Markdown summary written next to the state file."""
    links = report.state["links"]
    out = [
        "# Link check",
        "",
        f"Checked {len(links)} links at {report.state['checked_at']}. "
        + summary_line(report).split(": ", 1)[-1].capitalize()
        + ".",
        "",
    ]

    def section(title: str, intro: str, header: str, rows: list[str]) -> None:
        if rows:
            rule = "|" + "---|" * (header.count("|") - 1)
            out.extend([f"## {title}", "", intro, "", header, rule])
            out.extend([*rows, ""])

    def uses(e: dict[str, Any]) -> str:
        return _md_cell(", ".join(e["items"]))

    ordered = sorted(links.items(), key=_order)
    section(
        "Declared broken",
        "Failing for long enough to act on; the build applies `on_broken` to these.",
        "| Link | Verdict | Status | Failing since | Runs | Used by |",
        [
            f"| <{u}> | {e['verdict']} | {e['status'] or '-'} | {e['first_failed']} "
            f"| {e['failures']} | {uses(e)} |"
            for u, e in ordered
            if e["declared_broken"]
        ],
    )
    section(
        "Failing, not yet declared broken",
        "A passing outage clears itself; these are watched.",
        "| Link | Verdict | Status | Detail | Runs | Used by |",
        [
            f"| <{u}> | {e['verdict']} | {e['status'] or '-'} | {_md_cell(e['detail'])} "
            f"| {e['failures']} | {uses(e)} |"
            for u, e in ordered
            if not e["declared_broken"] and e["verdict"] not in PASSING
        ],
    )
    section(
        "Moved",
        "Every redirect is permanent: update the address in the YAML.",
        "| Link | New address | Used by |",
        [
            f"| <{u}> | <{e['final_url']}> | {uses(e)} |"
            for u, e in ordered
            if e["verdict"] == "moved"
        ],
    )
    section(
        "Redirected",
        "A temporary redirect; nothing to do unless it lasts.",
        "| Link | Goes to | Used by |",
        [
            f"| <{u}> | <{e['final_url']}> | {uses(e)} |"
            for u, e in ordered
            if e["verdict"] == "redirected"
        ],
    )
    return "\n".join(out).rstrip() + "\n"


class Progress:
    """A one-line progress bar on a terminal.

    Small enough to keep here rather than add a dependency: it only counts finished links.
    """

    def __init__(self, total: int, stream: TextIO, width: int = 30) -> None:
        self.total, self.stream, self.width = total, stream, width
        self.done = 0
        self._lock = threading.Lock()

    def advance(self, outcome: Outcome) -> None:
        """One more link finished."""
        with self._lock:
            self.done += 1
            filled = self.width * self.done // max(1, self.total)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\rchecking links [{bar}] {self.done}/{self.total} ")
            self.stream.flush()

    def close(self) -> None:
        """Clear the bar's line."""
        self.stream.write("\r" + " " * (self.width + 40) + "\r")
        self.stream.flush()


def _write(path: Path, action: Callable[[], None]) -> None:
    """Run a write; an OS error becomes a message that names the file."""
    try:
        action()
    except OSError as exc:
        raise CccnError(f"{path}: cannot write: {exc.strerror or exc}") from None


def run(
    settings: Settings,
    *,
    now: datetime | None = None,
    json_path: str | Path | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    content: Content | None = None,
) -> LinkReport:
    """Check every link of the content, update the history and write the summaries."""
    from cccn_feeds.validate import load_content

    if content is None:
        content = load_content(settings.paths.data_dir, settings.site.tz)
    when = now or datetime.now(UTC)
    links = collect_links(content)
    result = check_links(links, settings, on_done=on_done)
    path = state_path(settings)
    state = update_state(read_json(path), result.outcomes, links, when, settings.linkcheck)
    report = LinkReport(result, state, links, path.parent / SUMMARY_NAME)
    _write(path, lambda: write_json(path, state))
    summary = render_markdown(report).encode("utf-8")
    _write(report.summary_path, lambda: write_atomic(report.summary_path, summary))
    if json_path:
        target = report.json_path = Path(json_path)
        document = {
            "checked_at": state["checked_at"],
            "counts": dict(sorted(report.counts().items())),
            "declared_broken": len(report.declared),
            "links": report.entries(),
        }
        _write(target, lambda: write_json(target, document))
    return report


def run_cli(
    settings: Settings,
    json_path: str | None = None,
    now: datetime | None = None,
    progress: bool = True,
) -> int:
    """``cccn-feeds check-links``: 0 when no link is declared broken, 1 when one is."""
    bar: Progress | None = None
    if progress and sys.stderr.isatty():
        from cccn_feeds.validate import load_content

        content = load_content(settings.paths.data_dir, settings.site.tz)
        bar = Progress(len(collect_links(content)), sys.stderr)
        report = run(settings, now=now, json_path=json_path, on_done=bar.advance, content=content)
        bar.close()
    else:
        report = run(settings, now=now, json_path=json_path)
    sys.stdout.write(render_table(report))
    print(summary_line(report))
    print(f"summary written to {report.summary_path}")
    if report.json_path:
        print(f"report written to {report.json_path}")
    return 1 if report.declared else 0
