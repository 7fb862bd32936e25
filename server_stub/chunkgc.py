"""The chunk store's garbage collector for one storage node's local directory (docs/chunking.md#garbage-collection).

A node's root holds ``.images/<name>@<stamp>/`` (each version: its ``dNpM.cidx`` indexes; a capture in flight: its
``dNpM.cidx.partial``) and the store ``.chunks/<2 hex>/<sha256>.zst`` they all share. One run:

 1. **mark**: every chunk any index or partial index under ``.images/`` names, read once at the start (a set of
    32-byte digests: 2 M chunks fit in well under 200 MB). An index that cannot be read stops the run before
    anything moves: a chunk it names could otherwise look unused;
 2. **the previous run's trash**: what ``.chunks/.trash/`` holds now was quarantined by an earlier run. A chunk
    still unmarked is deleted; one an index names again goes back into the store;
 3. **quarantine**: each unmarked chunk whose mtime is older than ``now - grace`` is renamed into the trash, then
    looked at again: a capture that reused it touched it (``os.utime``) before naming it, so a fresh mtime there
    means "in use" and the chunk goes back at once. A capture that touches it after the rename finds it gone and
    writes it again;
 4. stray temporary files (``.chunks/??/.<name>…``, a killed writer's) older than a day are removed.

So a chunk leaves the disk only if two runs found no index naming it and no capture touched it within the grace
before the first. Unknown files are left alone. One run at a time per node (a lock file): two at once would delete
each other's fresh quarantine.
"""
from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from contract.chunkindex import (CHUNKS_DIR, INDEX_SUFFIX, PARTIAL_SUFFIX, TRASH_DIR, IndexError_, chunk_relpath,
                                 is_chunk_name, names_in)
from contract.versions import VERSIONS_DIR

CHUNK_SUFFIX = ".zst"
LOCK_FILE = ".gc.lock"          # inside .chunks/: held for the whole run
GRACE = 3600.0                  # seconds: a chunk touched this recently is in use (a capture reuses it)
TEMP_AGE = 86400.0              # seconds: a writer's temporary file this old was left by a killed process
READ_ATTEMPTS = 5               # an index read while its capture writes it: read its folder again…
READ_RETRY_WAIT = 0.1           # …this much later (seconds)

# Called with the paths of one store directory's candidates, just before they are renamed (tests use it to
# touch a chunk in between; nothing else should).
CandidatesHook = Callable[[list[str]], None]


class GcError(RuntimeError):
    """The run stopped; its message names the file and what is wrong. Nothing was deleted after the error."""


class GcBusy(GcError):
    """Another run holds the node's lock."""


@dataclass
class GcReport:
    indexes: int = 0            # index and partial-index files read
    marked: int = 0             # distinct chunks they name
    quarantined: int = 0        # unmarked old chunks moved into the trash by this run
    restored: int = 0           # of those, touched meanwhile: put back at once
    recovered: int = 0          # trash of an earlier run that an index names again: put back
    deleted: int = 0            # trash of an earlier run, still unmarked: gone
    freed_bytes: int = 0
    temp_removed: int = 0       # stray temporary files older than a day
    trash_chunks: int = 0       # in the trash after this run: the next run deletes them if still unmarked
    trash_bytes: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def store_dir(root: str) -> str:
    return os.path.join(root, CHUNKS_DIR)


def trash_dir(root: str) -> str:
    return os.path.join(root, CHUNKS_DIR, TRASH_DIR)


def _is_store_subdir(name: str) -> bool:
    return len(name) == 2 and all(c in "0123456789abcdef" for c in name)


def _digest(file_name: str) -> bytes | None:
    """``<sha256>.zst`` → its 32 bytes; anything else None."""
    if not file_name.endswith(CHUNK_SUFFIX):
        return None
    stem = file_name[:-len(CHUNK_SUFFIX)]
    return bytes.fromhex(stem) if is_chunk_name(stem) else None


class _Unsettled(Exception):
    """An index read while its capture publishes it (the ``.cidx`` half written, the partial gone): read again."""

    def __init__(self, path: str, problem: IndexError_) -> None:
        super().__init__(path)
        self.path, self.problem = path, problem


def version_folders(root: str) -> Iterator[str]:
    """Every directory under ``.images/`` (any depth: safety over speed)."""
    def refuse(exc: OSError) -> None:
        raise GcError(f"cannot read {exc.filename}: {exc.strerror}; nothing was removed") from exc

    for folder, _dirs, _files in os.walk(os.path.join(root, VERSIONS_DIR), onerror=refuse):
        yield folder


def _index_names(base: str) -> list[str]:
    """The chunks partition ``base`` (``…/dNpM``) needs: its ``.cidx`` if whole, else its capture's partial index.

    A capture writes ``.cidx.partial`` record by record, then the whole ``.cidx``, then unlinks the partial; so a
    ``.cidx`` that does not read yet is covered by its partial, and a partial gone means the ``.cidx`` is whole.
    An empty partial names nothing yet (its capture has just opened it). Both gone: the version was removed."""
    problems: list[tuple[str, IndexError_]] = []
    for path in (base + INDEX_SUFFIX, base + PARTIAL_SUFFIX):
        try:
            if path.endswith(PARTIAL_SUFFIX) and os.path.getsize(path) == 0:
                return []
            return list(names_in(path))
        except FileNotFoundError:
            continue
        except IndexError_ as exc:
            problems.append((path, exc))
        except OSError as exc:
            raise GcError(f"cannot read {path}: {exc.strerror}; nothing was removed") from exc
    if problems:
        raise _Unsettled(*problems[0])
    return []


def _folder_names(folder: str) -> tuple[int, list[str]]:
    """(index files seen, the chunk names they need) of one directory, listed now."""
    try:
        files = os.listdir(folder)
    except FileNotFoundError:
        return 0, []  # the version was removed meanwhile
    except OSError as exc:
        raise GcError(f"cannot read {folder}: {exc.strerror}; nothing was removed") from exc
    bases = sorted({name[:-len(suffix)] for name in files for suffix in (INDEX_SUFFIX, PARTIAL_SUFFIX)
                    if name.endswith(suffix)})
    names: list[str] = []
    for base in bases:
        names += _index_names(os.path.join(folder, base))
    return len(bases), names


def mark(root: str, report: GcReport) -> set[bytes]:
    """The digests of every chunk an index or a capture's partial index names. A folder whose index does not read
    is read again a few times (a capture may be publishing it); if it still does not, the run stops."""
    if not os.path.isdir(os.path.join(root, VERSIONS_DIR)):
        raise GcError(f"{root} has {CHUNKS_DIR}/ but no {VERSIONS_DIR}/ directory: every chunk would look unused; "
                      "is this the node's directory? Nothing was removed")
    marked: set[bytes] = set()
    for folder in version_folders(root):
        for attempt in range(READ_ATTEMPTS):
            try:
                seen, names = _folder_names(folder)
                break
            except _Unsettled as unsettled:
                if attempt + 1 == READ_ATTEMPTS:
                    raise GcError(f"{unsettled.path} is not a readable chunk index ({unsettled.problem}); nothing "
                                  "was removed: a chunk it names could look unused. Remove or repair that version, "
                                  "then collect again") from unsettled.problem
                time.sleep(READ_RETRY_WAIT)
        report.indexes += seen
        marked.update(bytes.fromhex(name) for name in names)
    report.marked = len(marked)
    return marked


def _list_trash(root: str) -> set[bytes]:
    try:
        names = os.listdir(trash_dir(root))
    except FileNotFoundError:
        return set()
    return {d for d in map(_digest, names) if d is not None}


def _chunk_path(root: str, digest: bytes) -> str:
    return os.path.join(root, chunk_relpath(digest.hex()))


def _trash_path(root: str, digest: bytes) -> str:
    return os.path.join(trash_dir(root), digest.hex() + CHUNK_SUFFIX)


def _put_back(trashed: str, home: str) -> None:
    """A chunk from the trash back into the store. A copy already there (a capture wrote it again) has the same
    bytes, its name being their hash: keep that one."""
    if os.path.exists(home):
        os.unlink(trashed)
        return
    os.makedirs(os.path.dirname(home), exist_ok=True)
    os.rename(trashed, home)


def _empty_previous_trash(root: str, previous: set[bytes], marked: set[bytes], report: GcReport) -> None:
    for digest in previous:
        trashed = _trash_path(root, digest)
        try:
            if digest in marked:
                _put_back(trashed, _chunk_path(root, digest))
                report.recovered += 1
                continue
            size = os.lstat(trashed).st_size
            os.unlink(trashed)
        except FileNotFoundError:
            continue  # put back by a capture's publication check meanwhile
        report.deleted += 1
        report.freed_bytes += size


def _quarantine_folder(root: str, folder: str, marked: set[bytes], previous: set[bytes], now: float, grace: float,
                       temp_age: float, report: GcReport, on_candidates: CandidatesHook | None) -> None:
    candidates: list[tuple[bytes, str]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                if entry.name.startswith("."):
                    if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < now - temp_age:
                        os.unlink(entry.path)
                        report.temp_removed += 1
                    continue
                digest = _digest(entry.name)
                if digest is None or digest in marked or not entry.is_file(follow_symlinks=False):
                    continue
                if entry.stat(follow_symlinks=False).st_mtime < now - grace:
                    candidates.append((digest, entry.path))
            except FileNotFoundError:
                continue  # gone meanwhile (another writer's temporary name renamed)
    if not candidates:
        return
    if on_candidates is not None:
        on_candidates([path for _digest_, path in candidates])
    os.makedirs(trash_dir(root), exist_ok=True)
    for digest, path in candidates:
        trashed = _trash_path(root, digest)
        try:
            os.rename(path, trashed)
        except FileNotFoundError:
            continue
        previous.discard(digest)  # quarantined again by this run: the next run decides, not this one
        report.quarantined += 1
        # Touched between the listing and the rename: a capture reuses it. Back at once.
        if os.lstat(trashed).st_mtime >= now - grace:
            _put_back(trashed, path)
            report.restored += 1


def _count_trash(root: str, report: GcReport) -> None:
    try:
        with os.scandir(trash_dir(root)) as entries:
            for entry in entries:
                if _digest(entry.name) is not None:
                    report.trash_chunks += 1
                    report.trash_bytes += entry.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        pass


def collect(root: str, *, now: float, grace: float = GRACE, temp_age: float = TEMP_AGE,
            on_candidates: CandidatesHook | None = None) -> GcReport:
    """One run over ``root`` (a node's directory on this server); ``now``: the run's start, as ``time.time()``."""
    started = time.monotonic()
    report = GcReport()
    store = store_dir(root)
    if not os.path.isdir(store):
        return report  # no chunked image was ever captured here
    try:
        lock = os.open(os.path.join(store, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise GcError(f"cannot open {os.path.join(store, LOCK_FILE)}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GcBusy(f"another garbage collection is running on {root}") from None
        marked = mark(root, report)
        previous = _list_trash(root)
        for name in sorted(os.listdir(store)):
            folder = os.path.join(store, name)
            if _is_store_subdir(name) and os.path.isdir(folder):
                _quarantine_folder(root, folder, marked, previous, now, grace, temp_age, report, on_candidates)
        _empty_previous_trash(root, previous, marked, report)
        _count_trash(root, report)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise GcError(f"{exc.filename or root}: {exc.strerror} (the server needs write access to the node's "
                          f"{CHUNKS_DIR}/); the run stopped, nothing it quarantined is lost") from exc
        raise GcError(f"{exc.filename or root}: {exc.strerror}; the run stopped") from exc
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)  # a child forked meanwhile (partclone, rsync) shares the lock until its exec
        os.close(lock)
    report.seconds = round(time.monotonic() - started, 3)
    return report
