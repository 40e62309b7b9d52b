"""The pipeline: load -> validate -> model -> render -> publish, as one function."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cccn_feeds.codekey import code_key
from cccn_feeds.errors import CccnError
from cccn_feeds.publish import (
    MANIFEST,
    Publisher,
    PublishReport,
    output_lock,
    read_json,
    read_manifest,
    sweep_state_temporaries,
    write_json,
)
from cccn_feeds.settings import BuildSettings, Settings

if TYPE_CHECKING:  # imported where used: a build with nothing to do needs none of them
    from cccn_feeds.history import History
    from cccn_feeds.model import Content

HISTORY = "history.json"
LAST_BUILD = "build.json"
OWNER = "owner.json"


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What one build did."""

    report: PublishReport
    now: datetime
    news: int
    events: int
    forthcoming: int
    output: str
    skipped: bool = False  # nothing changed since the last build: no work was done

    def summary(self) -> str:
        """One line for people and logs."""
        what = "nothing changed" if self.skipped else self.report.summary()
        return (
            f"{self.news} news, {self.events} events ({self.forthcoming} forthcoming): "
            f"{what} in {self.output}"
        )


def utcnow() -> datetime:
    """The wall clock, aware; the only place a build reads it."""
    return datetime.now(UTC)


def apply_link_policy(content: Content, broken: dict[str, str], policy: str) -> Content:
    """With ``on_broken = "drop"``, leave every declared-broken address out of the outputs
    (a news item's ``url`` and ``image``, an event's ``url`` and ``online``); items stay."""
    if policy != "drop" or not broken:
        return content

    def keep(url: str) -> str:
        return "" if url in broken else url

    keys = dict(content.keys)  # a changed item is no longer what its source text says
    news = []
    for item in content.news:
        if item.url in broken or item.image in broken:
            item = dataclasses.replace(item, url=keep(item.url), image=keep(item.image))
            keys.pop(f"news:{item.id}", None)
        news.append(item)
    events = []
    for event in content.events:
        if event.url in broken or event.online in broken:
            event = dataclasses.replace(event, url=keep(event.url), online=keep(event.online))
            keys.pop(f"events:{event.id}", None)
        events.append(event)
    return dataclasses.replace(content, news=tuple(news), events=tuple(events), keys=keys)


def output_settings(settings: Settings) -> Settings:
    """The settings that shape the output: ``[build]`` only says how to build it."""
    return dataclasses.replace(settings, build=BuildSettings())


def fingerprint(settings: Settings, renderers: tuple[str, ...]) -> str:
    """A hash of everything a build reads except the clock: data, settings, link state, code.

    Two builds with the same fingerprint produce the same output as long as the clock has
    not crossed the previous build's ``next_change`` instant.
    """
    from cccn_feeds.linkstate import declared_broken

    digest = hashlib.sha256()
    digest.update(repr((output_settings(settings), renderers)).encode())
    for name in ("news.yaml", "events.yaml"):
        try:
            digest.update((settings.paths.data_dir / name).read_bytes())
        except OSError:
            digest.update(b"\0missing")
        digest.update(b"\0")
    digest.update(repr(sorted(declared_broken(settings).items())).encode())
    digest.update(code_key().encode())
    return digest.hexdigest()


def _stamp(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _still_current(settings: Settings, last: dict[str, Any], print_: str, moment: datetime) -> bool:
    """Whether the last build's output is still exactly what a build now would publish."""
    if last.get("fingerprint") != print_ or not last.get("now"):
        return False
    if moment < datetime.fromisoformat(last["now"]):
        return False
    until = last.get("valid_until")
    if until and moment >= datetime.fromisoformat(until):
        return False
    out = settings.paths.output_dir
    manifest = read_manifest(settings.paths.state_dir)
    return bool(manifest) and all((out / path).is_file() for path in manifest)


def up_to_date(settings: Settings, now: datetime) -> BuildResult | None:
    """What :func:`build` would return at ``now`` without doing any work (nothing it reads
    changed since the last build), else None: a few reads and no rendering."""
    from cccn_feeds.render import RENDERERS

    return _skipped(settings, now.astimezone(UTC), fingerprint(settings, RENDERERS))


def _skipped(settings: Settings, moment: datetime, print_: str) -> BuildResult | None:
    """The result of a skipped build when the last one is still current, else None."""
    last = read_json(settings.paths.state_dir / LAST_BUILD) or {}
    if not isinstance(last, dict) or not _still_current(settings, last, print_, moment):
        return None
    return BuildResult(
        report=PublishReport(),
        now=moment,
        news=int(last.get("news", 0)),
        events=int(last.get("events", 0)),
        forthcoming=int(last.get("forthcoming", 0)),
        output=str(settings.paths.output_dir),
        skipped=True,
    )


def _claim_state(state_dir: Path, out_dir: Path) -> None:
    """A state folder belongs to one output folder: refuse to mix two folders' history.

    The default state folder lives inside its output folder and moves with it; only a
    state folder kept elsewhere (``--state``) records which output folder it serves.
    """
    if out_dir.resolve() in state_dir.resolve().parents:
        return
    owner_file = state_dir / OWNER
    mine = str(out_dir.resolve())
    owner = read_json(owner_file)
    if isinstance(owner, dict) and owner.get("output") not in (None, mine):
        raise CccnError(
            f"{state_dir}: this state folder belongs to the output folder "
            f"{owner['output']}; give each output folder its own state folder (--state)"
        )
    if not isinstance(owner, dict) or owner.get("output") != mine:
        write_json(owner_file, {"output": mine})


def prepare(settings: Settings, *, fresh: bool = False) -> Content:
    """Load and validate the data; raises DataError before anything is written.

    Items whose text an earlier build already parsed are reused from the state folder (the
    output folder itself is not touched); with ``fresh`` (``build --force``), every item is
    parsed anew and the cache is made again from them. Either way the items carry the same
    input keys, so the build after a forced one still reuses its outputs.
    """
    from cccn_feeds.parsecache import CACHE_NAME, load_content_cached

    return load_content_cached(
        settings.paths.data_dir,
        settings.site.tz,
        settings.paths.state_dir / CACHE_NAME,
        parallel=settings.build.parallel,
        fresh=fresh,
    )


def build(
    settings: Settings,
    *,
    now: datetime | None = None,
    renderers: tuple[str, ...] | None = None,
    lock_wait: float = 60.0,
    force: bool = False,
) -> BuildResult:
    """Build every output from the data and publish it; DataError leaves the output as it was.

    When nothing the build reads has changed since the last build and the clock has not
    reached the next moment at which time alone changes the output, the build does nothing
    (``skipped``); ``force`` renders and compares everything anyway.
    """
    from cccn_feeds.render import RENDERERS

    moment = (now or utcnow()).astimezone(UTC)
    chosen = renderers or RENDERERS
    print_ = fingerprint(settings, chosen)
    if not force:
        done = _skipped(settings, moment, print_)
        if done is not None:
            return done
    content = prepare(settings, fresh=force)
    try:
        return _build_locked(settings, content, moment, chosen, print_, force, lock_wait)
    except OSError as exc:
        where = exc.filename or settings.paths.output_dir
        raise CccnError(
            f"{where}: {exc.strerror or exc}; check that --out and --state name folders "
            "this user can write"
        ) from None


def _read_history(path: Path) -> History:
    """The stored history; a damaged one stops the build rather than restart SEQUENCEs."""
    from cccn_feeds.history import History

    if not path.exists():
        return History()
    try:
        import orjson

        return History.from_json(orjson.loads(path.read_bytes()))
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise CccnError(
            f"{path}: the build history is damaged ({type(exc).__name__}); restore it from a "
            "backup, or delete it to start afresh (calendar SEQUENCE numbers and feed dates "
            "of events then restart)"
        ) from None


def _build_locked(
    settings: Settings,
    content: Content,
    moment: datetime,
    chosen: tuple[str, ...],
    print_: str,
    force: bool,
    lock_wait: float,
) -> BuildResult:
    """The part of a build that reads and writes the output and state folders."""
    from cccn_feeds.context import BuildContext
    from cccn_feeds.history import advance
    from cccn_feeds.linkstate import declared_broken
    from cccn_feeds.parallel import render_into
    from cccn_feeds.parsecache import CACHE_NAME, SPLITS_NAME, take_pending
    from cccn_feeds.renderstore import FILES as STORE_FILES
    from cccn_feeds.renderstore import LEGACY as LEGACY_STORE
    from cccn_feeds.renderstore import RenderStore

    state_dir = settings.paths.state_dir
    with output_lock(state_dir, wait=lock_wait):
        _claim_state(state_dir, settings.paths.output_dir)
        sweep_state_temporaries(
            state_dir,
            (HISTORY, LAST_BUILD, OWNER, MANIFEST, CACHE_NAME, SPLITS_NAME, LEGACY_STORE,
             *STORE_FILES.values()),
        )  # fmt: skip
        # On two cores, written by whichever process is done with its side of the
        # rendering first (about 60 ms at 10,000 news); else before rendering.
        save_cache = take_pending(state_dir / CACHE_NAME)
        previous = _read_history(state_dir / HISTORY)
        advanced = advance(
            previous,
            content.events,
            moment,
            settings.calendar.cancelled_days,
            (n.id for n in content.news),
            {e.id: content.keys.get(f"events:{e.id}", "") for e in content.events},
        )
        broken = declared_broken(settings)
        global_key = hashlib.sha256(
            repr((output_settings(settings), chosen, code_key())).encode()
        ).hexdigest()
        ctx = BuildContext(
            settings=settings,
            content=apply_link_policy(content, broken, settings.linkcheck.on_broken),
            now=moment,
            revisions=advanced.revisions,
            tombstones=advanced.tombstones,
            news_first_seen=advanced.news_first_seen,
            broken_links=broken if settings.linkcheck.on_broken == "mark" else {},
            output_dir=None if force else settings.paths.output_dir,
            previous_keys=read_manifest(state_dir, "keys"),
            global_key=global_key,
        )
        store = RenderStore(state_dir, global_key, fresh=force)
        with Publisher(settings.paths.output_dir, state_dir) as publisher:
            render_into(
                ctx, chosen, publisher, store, chore=save_cache, parallel=settings.build.parallel
            )
            report = publisher.commit(ctx.output_keys)
        with contextlib.suppress(FileNotFoundError):
            (state_dir / LEGACY_STORE).unlink()
        if not advanced.history.same_records(previous):
            write_json(state_dir / HISTORY, advanced.history.to_json(), compact=True)
        # A data file saved while this build ran: the output may not match what was
        # fingerprinted, so the next build must not be skipped.
        settled = fingerprint(settings, chosen) == print_
        write_json(
            state_dir / LAST_BUILD,
            {
                "fingerprint": print_ if settled else "",
                "now": _stamp(moment),
                "valid_until": _stamp(ctx.next_change()),
                "news": len(content.news),
                "events": len(content.events),
                "forthcoming": len(ctx.forthcoming),
            },
        )
    if settings.feeds.hub and report.written:
        from cccn_feeds.websub import notify

        notify(settings, report.written)  # logs a failing hub; never fails the build
    return BuildResult(
        report=report,
        now=moment,
        news=len(content.news),
        events=len(content.events),
        forthcoming=len(ctx.forthcoming),
        output=str(settings.paths.output_dir),
    )
