"""Atomic, incremental writes into the output folder, under a cross-process lock.

Every file is written to a temporary file in its own folder, flushed, fsynced and moved
into place with ``os.replace``, so a reader or a crash sees either the old or the new
file, never a part. Files whose bytes did not change are not touched (their mtime stays,
so HTTP validators stay true). Outputs no longer produced are removed only after the new
ones are in place. Only files listed in the previous manifest are ever removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import itertools
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from cccn_feeds.errors import CccnError, LockedError

MANIFEST = "manifest.json"
LOCK = "lock"


class Reused:
    """Marks an output whose inputs did not change: the published file stays as it is."""

    _instance: Reused | None = None

    def __new__(cls) -> Reused:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REUSED"


REUSED = Reused()
Output = bytes | Reused


@dataclass(slots=True)
class PublishReport:
    """What a publish did, by relative path."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether any file was written or removed."""
        return bool(self.written or self.removed)

    def summary(self) -> str:
        """One line: counts of written, unchanged and removed files."""
        return (
            f"{len(self.written)} written, {len(self.unchanged)} unchanged, "
            f"{len(self.removed)} removed"
        )


def digest(data: bytes) -> str:
    """The content hash recorded in the manifest."""
    return hashlib.sha256(data).hexdigest()


# An output path of the usual form (what every renderer writes): relative, no empty, dot
# or hidden parts. Others go through check_relpath.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*")


def check_relpath(path: str) -> PurePosixPath:
    """An output path must be relative, inside the folder and not hidden."""
    rel = PurePosixPath(path)
    if rel.is_absolute() or not rel.parts or any(p in {"", ".", ".."} for p in rel.parts):
        raise ValueError(f"output path {path!r} must stay inside the output folder")
    if any(p.startswith(".") for p in rel.parts):
        raise ValueError(f"output path {path!r} must not be hidden")
    return rel


def load_pickle(path: Path, version: int | str) -> dict[str, Any]:
    """The payload that :func:`dump_pickle_atomic` stored with ``version``, else empty.

    These files are caches the build writes into its own state folder: a missing,
    damaged or older one only costs a missed shortcut. The version is read first, and
    the payload only when it matches (a cache made by other code is not loaded), and
    only when the file's checksum holds (a damaged cache would give wrong items).
    """
    import pickle

    try:
        with path.open("rb") as handle:
            header = pickle.load(handle)
            if not isinstance(header, dict) or header.get("version") != version:
                return {}
            end = os.fstat(handle.fileno()).st_size - DIGEST_SIZE
            start = handle.tell()
            handle.seek(end)
            if end < start or handle.read(DIGEST_SIZE) != checksum(handle, 0, end):
                return {}
            handle.seek(start)
            return load_parts(handle, end)
    except Exception:
        return {}


# Entries per pickle of a payload. One pickle of the whole payload remembers every
# object it wrote until the end (the parse cache at 10,000 news: 16 MB more, and twice
# the time); in parts of this size the file is as small.
_PART = 1000
DIGEST_SIZE = 32


class Hashing:
    """A file to write to that hashes what goes through it (see :func:`checksum`)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.hash = hashlib.blake2b(digest_size=DIGEST_SIZE)

    def write(self, data: bytes) -> int:
        """Hash ``data`` and write it."""
        self.hash.update(data)
        return self.handle.write(data)


def blocks(handle: IO[bytes], start: int, end: int) -> Iterator[bytes]:
    """The bytes of ``handle`` from ``start`` to ``end`` (or its end), a megabyte at most
    at a time."""
    handle.seek(start)
    left = end - start
    while left > 0:
        block = handle.read(min(left, 1 << 20))
        if not block:
            return
        yield block
        left -= len(block)


def checksum(handle: IO[bytes], start: int, end: int) -> bytes:
    """The hash :class:`Hashing` gives of the bytes of ``handle`` from ``start`` to ``end``."""
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE)
    for block in blocks(handle, start, end):
        digest.update(block)
    return digest.digest()


def dump_parts(handle: IO[bytes] | Hashing, value: Mapping[str, Any]) -> None:
    """Pickle ``value`` into ``handle`` as dicts of at most :data:`_PART` entries."""
    import pickle

    entries = iter(value.items())
    while part := dict(itertools.islice(entries, _PART)):
        pickle.dump(part, handle, protocol=pickle.HIGHEST_PROTOCOL)


def load_parts(handle: IO[bytes], end: int) -> dict[str, Any]:
    """What :func:`dump_parts` wrote, read up to offset ``end``; raises (ValueError,
    EOFError, an unpickling error) when that is not what is there."""
    import pickle

    value: dict[str, Any] = {}
    while handle.tell() < end:
        part = pickle.load(handle)
        if not isinstance(part, dict):
            raise ValueError("not a part of a pickled dict")
        value.update(part)
    if handle.tell() != end:
        raise ValueError("a part runs past its end")
    return value


def dump_pickle_atomic(target: Path, value: dict[str, Any], version: int | str) -> None:
    """Pickle ``version``, then ``value`` in parts of :data:`_PART` entries, straight into
    ``target``, then a checksum of all that, atomically (no copy of it in memory)."""
    import pickle

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            hashing = Hashing(handle)
            pickle.dump({"version": version}, hashing)
            dump_parts(hashing, value)
            handle.write(hashing.hash.digest())
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(target: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``target`` so that no reader ever sees a partial file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _stage(target: str, data: bytes) -> str:
    """Write ``data`` to a hidden temporary file beside ``target``; returns its path.

    The name is fixed per process: the caller holds the output lock, and temporaries of a
    killed build are swept before the next publish.
    """
    folder, name = os.path.split(target)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return tmp


def _make_durable(out_dir: Path, paths: list[str]) -> None:
    """Flush staged files to disk: one syncfs(2) for many files, else fsync each."""
    if not paths:
        return
    if len(paths) > 8 and _syncfs(out_dir):
        return
    for tmp in paths:
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _syncfs(folder: Path) -> bool:
    """syncfs(2) on the file system holding ``folder`` (Linux); False when unavailable."""
    syncfs = _libc_syncfs()
    if syncfs is None:
        return False
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return bool(syncfs(fd) == 0)
    finally:
        os.close(fd)


@functools.cache
def _libc_syncfs() -> Any:
    """The C library's syncfs, or None."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


def fsync_dir(path: Path | str) -> None:
    """Make renames in a folder durable."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_manifest(state_dir: Path, part: str = "files") -> dict[str, str]:
    """Relative path -> sha256 of every file the last build published.

    ``part="keys"`` gives instead the hash of the inputs each file was rendered from.
    """
    data = read_json(state_dir / MANIFEST)
    files = data.get(part, {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def _unchanged(target: str, data: bytes, known: str | None) -> bool:
    """Whether ``target`` already holds ``data`` (manifest hash plus size, else the bytes)."""
    try:
        size = os.stat(target).st_size
    except FileNotFoundError:
        return False
    if size != len(data):
        return False
    if known is not None:
        return known == digest(data)
    with open(target, "rb") as handle:
        return handle.read() == data


class Publisher:
    """Publishes one build's outputs: staged as they are rendered, replaced all at once.

    ``add`` writes each changed output to a hidden temporary file beside its target at
    once, so the build never holds every output in memory; ``commit`` makes them durable
    and renames them into place, then removes outputs no longer produced. Nothing
    published changes before ``commit``; leaving the ``with`` block on an error removes
    the temporaries and leaves the published folder as it was.
    """

    def __init__(self, out_dir: Path, state_dir: Path) -> None:
        self.out_dir, self.state_dir = out_dir, state_dir
        self.previous = read_manifest(state_dir)
        self.previous_keys = read_manifest(state_dir, "keys")
        self.report = PublishReport()
        self.manifest: dict[str, str] = {}
        self.staged: list[tuple[str, str]] = []  # temporary file, its target
        self._dirs: set[str] = set()
        self._out = str(out_dir)
        _sweep_temporaries(out_dir)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None:
            self.abort()

    def add(self, path: str, data: Output) -> None:
        """Take one output: unchanged, reused, or staged to replace the published file."""
        self.adopt(path, *self.stage(path, data))

    def stage(self, path: str, data: Output) -> tuple[str, str | None]:
        """Look at one output and stage it if it changed; returns its digest and the
        temporary file (None when the published file stays). Records nothing, so another
        process of the same build can stage and hand the result over (see :meth:`adopt`)."""
        target = self._target(path)
        if isinstance(data, Reused):
            if path not in self.previous:
                raise RuntimeError(f"{path}: reused but never published")
            return self.previous[path], None
        known = digest(data)
        if _unchanged(target, data, self.previous.get(path)):
            return known, None
        folder = os.path.dirname(target)
        if folder not in self._dirs:
            os.makedirs(folder, exist_ok=True)
            self._dirs.add(folder)
        return known, _stage(target, data)

    def _target(self, path: str) -> str:
        """Where an output goes (the path checked: see :func:`check_relpath`)."""
        if _PLAIN_PATH.fullmatch(path):
            return os.path.join(self._out, path)
        return os.path.join(self._out, *check_relpath(path).parts)

    def adopt(self, path: str, known: str, tmp: str | None) -> None:
        """Record one output staged by :meth:`stage` (here or in a helper process)."""
        if tmp is not None:
            self.staged.append((tmp, self._target(path)))
        if path in self.manifest:
            raise RuntimeError(f"{path} is produced twice")
        self.manifest[path] = known
        (self.report.written if tmp is not None else self.report.unchanged).append(path)

    def remove_temporaries(self, pid: int) -> None:
        """Remove the temporary files process ``pid`` staged (a helper that failed)."""
        _sweep_temporaries(self.out_dir, f".{pid}.tmp")

    def abort(self) -> None:
        """Remove what was staged; the published folder stays as it was."""
        for tmp, _ in self.staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.staged = []

    def commit(self, keys: Mapping[str, str] | None = None) -> PublishReport:
        """Replace the changed files, remove the stale ones, record the manifest.

        ``keys`` (path -> input hash) is stored for the next build.
        """
        report, out_dir = self.report, self.out_dir
        touched: set[str] = set()
        try:
            # Every new file is on disk before the first one replaces its old version.
            _make_durable(out_dir, [tmp for tmp, _ in self.staged])
            for tmp, target in self.staged:
                os.replace(tmp, target)
                touched.add(os.path.dirname(target))
        except BaseException:
            self.abort()
            raise
        self.staged = []
        for path in sorted(set(self.previous) - set(self.manifest)):
            try:
                rel = check_relpath(path)
            except ValueError:
                continue
            stale = out_dir.joinpath(*rel.parts)
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                report.removed.append(path)
            touched.add(str(stale.parent))
            _prune_empty(stale.parent, out_dir)
        for folder in touched:
            if os.path.exists(folder):
                fsync_dir(folder)
        manifest = dict(sorted(self.manifest.items()))
        new_keys = dict(sorted((keys or {}).items()))
        if manifest != self.previous or new_keys != self.previous_keys:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            write_json(
                self.state_dir / MANIFEST, {"files": manifest, "keys": new_keys}, compact=True
            )
        report.written.sort()
        report.unchanged.sort()
        return report


def publish(
    outputs: Mapping[str, Output],
    out_dir: Path,
    state_dir: Path,
    keys: Mapping[str, str] | None = None,
) -> PublishReport:
    """Write changed outputs atomically, then remove those no longer produced.

    An output given as ``REUSED`` keeps its published file (the renderer checked that its
    inputs did not change). ``keys`` (path -> input hash) is stored for the next build.
    """
    with Publisher(out_dir, state_dir) as publisher:
        for path in sorted(outputs):
            publisher.add(path, outputs[path])
        return publisher.commit(keys)


def _sweep_temporaries(out_dir: Path, suffix: str = ".tmp") -> None:
    """Remove temporary files a killed build left behind (the caller holds the lock);
    with ``suffix``, only those of one process (``.<pid>.tmp``)."""
    if not out_dir.is_dir():
        return
    for folder, dirs, files in os.walk(out_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith(".") and name.endswith(suffix):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))


def sweep_state_temporaries(state_dir: Path, names: Iterable[str]) -> None:
    """Remove the temporary files of the state files ``names`` that a killed build left
    behind (the caller holds the lock). Other writers of the state folder, such as the
    link checker, do not take the lock: their temporaries are left alone."""
    prefixes = tuple(f".{name}." for name in names)
    try:
        entries = list(os.scandir(state_dir))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(prefixes) and entry.name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def _prune_empty(folder: Path, root: Path) -> None:
    """Remove empty folders left by removed outputs, up to the output folder."""
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def write_json(path: Path, data: Any, *, compact: bool = False) -> None:
    """Write JSON atomically with sorted keys (stable bytes); ``compact`` for large state
    (written by orjson: the bytes of ``json.dumps(separators=(",", ":"))``, far faster)."""
    if compact:
        import orjson

        blob = orjson.dumps(data, option=orjson.OPT_SORT_KEYS) + b"\n"
    else:
        blob = (json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
    write_atomic(path, blob)


def read_json(path: Path) -> Any:
    """Read a JSON state file; a missing or damaged one reads as None."""
    import orjson

    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


@contextlib.contextmanager
def output_lock(state_dir: Path, wait: float = 60.0) -> Iterator[None]:
    """Hold the output folder's lock (shared by one-shot builds and the service)."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CccnError(f"{state_dir}: cannot create the state folder: {exc.strerror}") from None
    fd = os.open(state_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"{state_dir / LOCK}: another build holds the lock; try again later"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
