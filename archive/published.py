"""The bundle's published photos: metadata-free copies of the originals, zipped into shards.

Stripping (``image.strip_metadata``) is the slow part of a build, so each original's published
copy is kept in ``<workdir>/published/`` with the strip version that made it; a rebuild after
more photos strips only the new ones. The copies then go into the bundle's zip shards
(:mod:`archive.shards`: per estado, stored, deterministic).

A build is two passes over the photos' bytes, each spread over the cores: stripping (read,
strip, sha256, on every core) and zipping (write the shard, sha256 it for SHA256SUMS), which
runs on a thread of its own (:class:`ShardWriter`) while the build writes its database, since
hashing and file I/O run outside Python's GIL.
"""
from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from . import image as image_mod
from . import redact as redact_mod
from . import shards as shards_mod
from .errors import BundleError, TestigoError, WorkdirInconsistent
from .progress import progress
from .staging import exit_with_parent
from .workdir import Workdir, sha256_bytes

IMAGES_DIR = shards_mod.SHARDS_DIR
# Bump when image.strip_metadata changes what it keeps, so cached published copies are redone.
STRIP_CACHE_VERSION = f"1:{image_mod.STRIP_VERSION}"
CACHE_DIR = "published"  # inside the workdir
_RECORD_EVERY = 500      # cache rows written per transaction while stripping
_PER_WORKER = 200        # fewer photos than this per core: stripped in this process (no start-up)

_PUBLISHED_TYPES = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png")}
_EXTENSIONS = dict(_PUBLISHED_TYPES.values())


def _object(folder: Path, sha: str) -> Path:
    """Where a file named by its sha256 lies in an objects folder (the workdir's layout)."""
    return folder / sha[:2] / sha


class Copy(NamedTuple):
    """One original's published copy, as the cache records it."""

    original: str
    sha256: str
    size: int
    media_type: str
    orientation: int      # EXIF Orientation kept in the copy (1 = as stored)


def _media_type(data_head: bytes) -> tuple[str, str]:
    kind = _PUBLISHED_TYPES.get(image_mod.sniff(data_head))
    if kind is None:
        raise WorkdirInconsistent("a published image is neither JPEG nor PNG")
    return kind


class _ImageCache:
    """Published (stripped) copies by original sha256, kept in ``<workdir>/published/``."""

    def __init__(self, wd: Workdir, redact: bool = False):
        self.wd = wd
        self.redact = redact
        self.version = STRIP_CACHE_VERSION + (f":redact{redact_mod.VERSION}" if redact else "")
        self.root = wd.path / CACHE_DIR
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.root / "index.db", isolation_level=None)
        # WAL: a crash loses at most the rows of the last batch, whose photos are stripped
        # again (every lookup checks the file behind the row).
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS published (original_sha256 TEXT PRIMARY KEY, "
                        "sha256 TEXT NOT NULL, size INTEGER NOT NULL, version TEXT NOT NULL)")
        have = {r[1] for r in self.db.execute("PRAGMA table_info(published)")}
        for column, kind in (("media_type", "TEXT"), ("orientation", "INTEGER")):  # older caches lack
            if column not in have:                                                  # them: such rows
                self.db.execute(f"ALTER TABLE published ADD COLUMN {column} {kind}")  # are redone

    def path(self, sha: str) -> Path:
        return _object(self.root / "objects", sha)

    def copies(self) -> dict[str, Copy]:
        """Every usable row, by original (one query: a lookup per photo costs seconds nationally)."""
        rows = self.db.execute("SELECT original_sha256, sha256, size, media_type, orientation FROM published "
                               "WHERE version = ? AND media_type IS NOT NULL AND orientation IS NOT NULL",
                               (self.version,))
        return {r[0]: Copy(*r) for r in rows}

    def present(self, copy: Copy | None) -> bool:
        """Whether the file behind a row is there, whole (a crash or a cleaner may have taken it)."""
        if copy is None:
            return False
        try:
            return self.path(copy.sha256).stat().st_size == copy.size
        except OSError:
            return False

    def record(self, copies: list[Copy]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO published VALUES (?, ?, ?, ?, ?, ?)",
                                [(c.original, c.sha256, c.size, self.version, c.media_type,
                                  c.orientation) for c in copies])

    def close(self):
        self.db.close()


def _make_copy(job: tuple) -> Copy:
    """Strip the workdir's photo ``original`` and keep the copy in the cache folder (runs in
    worker processes: ``job`` is (the workdir's objects folder, the cache folder, original,
    redact: the members' part blurred too, archive/redact.py))."""
    objects, root, original, redact = job
    src = _object(objects, original)
    if not src.is_file():
        raise WorkdirInconsistent(f"the workdir has no object {original} although an acta "
                                  "was read from it; re-ingest the photo")
    data = src.read_bytes()
    if sha256_bytes(data) != original:     # hashed as read: a damaged original is never published
        raise WorkdirInconsistent(f"the workdir's object {original} is damaged (its bytes hash to "
                                  f"{sha256_bytes(data)}, not to its name); restore it from the photo it came "
                                  "from (ingest that photo again into a fresh workdir) or from a backup")
    try:
        out, turn = image_mod.strip_metadata_oriented(data)
        if redact:   # re-encoded upright: the orientation is applied
            out, turn = redact_mod.redact_members(data), 1
    except TestigoError as e:
        raise WorkdirInconsistent(f"cannot strip metadata from {original}: {e}") from None
    sha = sha256_bytes(out)
    p = _object(root / "objects", sha)
    if not (p.is_file() and p.stat().st_size == len(out)):
        p.parent.mkdir(exist_ok=True)
        tmp = p.with_name(f"{p.name}.tmp{os.getpid()}")
        tmp.unlink(missing_ok=True)
        try:
            # stripping changed nothing (most messenger-forwarded photos): share the workdir's
            # object (immutable like this cache) instead of a second copy
            if sha != original:
                raise OSError("not the same bytes")
            os.link(src, tmp)
        except OSError:                     # other bytes, or no hard links here: a copy
            tmp.write_bytes(out)
        os.replace(tmp, p)
    return Copy(original, sha, len(out), _media_type(out[:16])[0], turn)


@dataclass(frozen=True)
class Shard:
    """One written shard: bundle-relative path, its sha256 and size, its photos and estado."""

    path: str
    sha256: str
    bytes: int
    members: int
    cod_edo: int


@dataclass
class PublishedImages:
    """The photos a build publishes, stripped, with their shards planned but not yet written."""

    by_original: dict[str, dict] = field(default_factory=dict)  # original sha256 -> images row
    rows: dict[str, dict] = field(default_factory=dict)         # published sha256 -> images row
    stripped: int = 0                                            # newly stripped in this build
    plan: dict[str, list[str]] = field(default_factory=dict)    # shard path -> member names
    estado: dict[str, int] = field(default_factory=dict)        # shard path -> COD_EDO
    cache_root: Path | None = None
    hashed: frozenset[str] = frozenset()   # published copies hashed from their bytes in this build

    def source(self, member: str) -> Path:
        return _object(self.cache_root / "objects", member.split(".")[0])


def _places(state, election) -> dict[str, tuple]:
    """{original sha256: (cod_edo, centro, mesa)} of the first mesa whose acta used the photo.

    A centre outside the registry goes with the estado its code names (``Election.place``);
    one whose code maps to no estado, with group 0.
    """
    out: dict[str, tuple] = {}
    for a in state.actas:
        if a["image_sha256"]:
            place = (election.place(a["centro"]).cod_edo or 0, a["centro"], a["mesa"])
            out[a["image_sha256"]] = min(out.get(a["image_sha256"], place), place)
    return out


def _processes():
    """A multiprocessing context for the build's workers: fork where there is one (spawn would
    import the caller's __main__ again: a script without a main guard would run twice); the
    children never touch the parent's SQLite connections."""
    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _strip_all(cache: _ImageCache, originals: list[str], progress_factory) -> tuple[dict[str, Copy], set[str]]:
    """The published copy of every original: from the cache, or stripped now on every core
    (processes: the strip's scan holds the GIL). Returns ({original: copy}, those stripped now)."""
    copies = cache.copies()
    todo = [o for o in originals if not cache.present(copies.get(o))]
    with progress(progress_factory, len(originals), "photos: stripping metadata") as bar:
        bar.update(len(originals) - len(todo))
        if not todo:
            return copies, set()
        objects = cache.wd.path / "objects"
        jobs = [(objects, cache.root, o, cache.redact) for o in todo]
        workers = min(os.cpu_count() or 1, max(1, len(todo) // _PER_WORKER))
        pool = (ProcessPoolExecutor(workers, mp_context=_processes(), initializer=exit_with_parent,
                                    initargs=(os.getpid(),)) if workers > 1 else None)
        try:
            batch = []
            made = pool.map(_make_copy, jobs, chunksize=64) if pool else map(_make_copy, jobs)
            for copy in made:                      # in order; each a file of its own
                copies[copy.original] = copy
                batch.append(copy)
                if len(batch) >= _RECORD_EVERY:
                    cache.record(batch)
                    batch = []
                bar.update(1)
            cache.record(batch)
        finally:   # on an error, the photos not started yet are not stripped for nothing
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    return copies, set(todo)


def publish_images(wd: Workdir, state, election, progress_factory, warnings: list[str], *,
                   max_members: int = shards_mod.DEFAULT_MAX_MEMBERS,
                   max_bytes: int = shards_mod.DEFAULT_MAX_BYTES, unread: Iterable[str] = (),
                   redact: bool = False) -> PublishedImages:
    """Strip (or reuse the cached stripped copy of) every acta photo and plan their shards.

    Each images row names its shard already; :class:`ShardWriter` writes them. Photos that
    differ only in metadata share one published file, whose row is the first original's.
    ``unread``: photos that gave no acta (yet) to publish too, in the shards of no estado
    (group 0), so that whoever takes the bundle in can read or transcribe them.
    ``redact``: the mesa members' part of each photo blurred (archive/redact.py).
    """
    shards_mod.check_limits(max_members, max_bytes)
    places = _places(state, election)
    for original in unread:
        places.setdefault(original, (0, 0, 0))
    originals = sorted(places)
    out = PublishedImages()
    if not originals:
        return out
    used_originals: dict[str, str] = {}   # original sha256 -> the published sha256 that names it
    cache = _ImageCache(wd, redact)
    try:
        copies, now = _strip_all(cache, originals, progress_factory)
    finally:
        cache.close()
    out.cache_root, out.stripped = cache.root, len(now)
    out.hashed = frozenset(copies[o].sha256 for o in now)
    for original in originals:
        c = copies[original]
        rel = f"{IMAGES_DIR}/{c.sha256}{_EXTENSIONS[c.media_type]}"
        blob = state.blobs.get(original)
        size_wh = (blob["width"], blob["height"]) if blob else (None, None)
        if c.orientation >= 5:                     # 5-8 turn by 90°: displayed sides swap
            size_wh = size_wh[::-1]
        # a team's photo is stored as the team published it: name the original it came from
        first = state.provenance.original_of(original)
        if used_originals.get(first, c.sha256) != c.sha256:  # stripped differently elsewhere: keep ours
            first = original
        if first != original:  # the shards are planned by the place of each row's original
            places[first] = min(places.get(first, places[original]), places[original])
        out.by_original[original] = row = {
            "sha256": c.sha256, "original_sha256": first, "path": rel, "media_type": c.media_type,
            "size": c.size, "width": size_wh[0], "height": size_wh[1], "orientation": c.orientation,
            "redacted": int(redact)}
        if c.sha256 in out.rows and out.rows[c.sha256]["original_sha256"] == first:
            pass  # one photo that reached us twice (own and through a team): published once
        elif c.sha256 in out.rows:
            warnings.append(f"photos {out.rows[c.sha256]['original_sha256']} and {original} differ only "
                            f"in metadata; published once as {rel} (images.original_sha256 keeps the first)")
        else:
            out.rows[c.sha256] = row
            used_originals[first] = c.sha256
    place = {sha: places[row["original_sha256"]] for sha, row in out.rows.items()}
    photos = [shards_mod.ShardPhoto(row["path"].rsplit("/", 1)[1], row["size"], place[sha][0], place[sha][1:])
              for sha, row in out.rows.items()]
    out.plan = shards_mod.plan_shards(photos, max_members, max_bytes)
    for rel, names in out.plan.items():
        offsets = shards_mod.member_offsets((n, out.rows[n.split(".")[0]]["size"]) for n in names)
        for n in names:
            out.rows[n.split(".")[0]]["shard"] = rel
            out.rows[n.split(".")[0]]["offset"] = offsets[n]
        out.estado[rel] = place[names[0].split(".")[0]][0]
    return out


def write_shards(bundle_dir: Path, images: PublishedImages, advance: Callable[[int], None] = lambda k: None,
                 stop: threading.Event | None = None) -> list[Shard]:
    """Zip the published copies into their planned shards, hashing as they are written: each
    shard for SHA256SUMS, and the members taken from the cache checked against their names
    (those in ``images.hashed`` were hashed from their bytes in this build already: another
    hash would only cost time). Shards are written on every core (each is a file of its own).
    ``advance(k)`` after each shard of k photos; ``stop`` ends early."""
    if images.plan:
        (bundle_dir / IMAGES_DIR).mkdir(exist_ok=True)

    def one(rel: str) -> Shard | None:
        if stop is not None and stop.is_set():
            return None
        names = images.plan[rel]
        path = bundle_dir / rel
        digest, members = shards_mod.write_shard(path, [(n, images.source(n)) for n in names],
                                                 check=[n for n in names if n.split(".")[0] not in images.hashed])
        index = shards_mod.open_images(bundle_dir, [rel])        # its directory, not its bytes
        if index.problems or len(index) != len(names):
            raise BundleError(f"{rel} was written but cannot be read back: {'; '.join(index.problems[:3])}")
        moved = sorted(m.name for m in index if m.offset != images.rows[m.sha256]["offset"])
        if moved:
            raise BundleError(f"{rel}!{moved[0]} was written at another offset than the images table "
                              "records (the zip writer's layout changed): report this as a testigo bug")
        bad = sorted(n for n, d in members.items() if not n.startswith(d + "."))
        if bad:
            raise BundleError(f"{bad[0]} does not hash to its name: the published-image cache in "
                              f"{images.cache_root} is damaged; delete that folder and build again")
        advance(len(names))
        return Shard(rel, digest, path.stat().st_size, len(names), images.estado[rel])

    with ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="shard") as pool:
        try:
            written = list(pool.map(one, images.plan))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [w for w in written if w is not None]


# The shard process's progress counter and stop flag (set by its initializer).
_progress = None
_stop = None


def _shard_process_init(counter, stop, parent: int) -> None:
    global _progress, _stop
    _progress, _stop = counter, stop
    exit_with_parent(parent)


def _advance_shared(k: int) -> None:
    with _progress.get_lock():
        _progress.value += k


def _write_shards_in_process(bundle_dir: Path, images: PublishedImages) -> list[Shard]:
    return write_shards(bundle_dir, images, _advance_shared, _stop)


class ShardWriter:
    """:func:`write_shards` in a process of its own, so the build writes its database meanwhile
    on the other core. A process, not a thread: the database rows are Python work that holds
    the GIL, and the shard threads' many small I/O calls would wait on it (and slow it down).
    A context manager: on leaving, the process is told to stop and waited for, so nothing
    writes into a folder that a failed build is removing."""

    def __init__(self, bundle_dir: Path, images: PublishedImages):
        self.images = images
        ctx = _processes()
        self._done = ctx.Value("q", 0)
        self._stop = ctx.Event()
        self._pool = None
        if images.plan:
            self._pool = ProcessPoolExecutor(1, mp_context=ctx, initializer=_shard_process_init,
                                             initargs=(self._done, self._stop, os.getpid()))
            self._future = self._pool.submit(_write_shards_in_process, bundle_dir, images)

    def wait(self, progress_factory=None) -> list[Shard]:
        """The shards written (re-raises the process's error), with a bar while they are finished."""
        if self._pool is None:
            return []
        total = sum(len(names) for names in self.images.plan.values())
        with progress(progress_factory, total, "photos: zipping into shards") as bar:
            shown = 0
            while True:
                try:
                    written = self._future.result(timeout=0.25)
                    break
                except FutureTimeout:
                    done = self._done.value
                    bar.update(done - shown)
                    shown = done
            bar.update(total - shown)
        return written

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        return False
