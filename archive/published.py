"""The bundle's published photos: metadata-free copies of the originals, zipped into shards.

Stripping (``image.strip_metadata``) is the slow part of a build, so each original's published
copy is kept in ``<workdir>/published/`` with the strip version that made it; a rebuild after
more photos strips only the new ones. The copies then go into the bundle's zip shards
(:mod:`archive.shards`: per estado, stored, deterministic).
"""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from . import image as image_mod
from . import shards as shards_mod
from .errors import BundleError, TestigoError, WorkdirInconsistent
from .progress import progress
from .workdir import Workdir, sha256_bytes

IMAGES_DIR = shards_mod.SHARDS_DIR
# Bump when image.strip_metadata changes what it keeps, so cached published copies are redone.
STRIP_CACHE_VERSION = f"1:{image_mod.STRIP_VERSION}"
CACHE_DIR = "published"  # inside the workdir


class _ImageCache:
    """Published (stripped) copies by original sha256, kept in ``<workdir>/published/``."""

    def __init__(self, wd: Workdir):
        self.root = wd.path / CACHE_DIR
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.root / "index.db", isolation_level=None)
        # One row per photo, each its own commit: without WAL every row waits for two fsyncs
        # (~18 ms on a busy disk, minutes at national size). A row lost to a power cut only
        # means that photo is stripped again: get() checks the file behind every row.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS published (original_sha256 TEXT PRIMARY KEY, "
                        "sha256 TEXT NOT NULL, size INTEGER NOT NULL, version TEXT NOT NULL)")

    def path(self, sha: str) -> Path:
        return self.root / "objects" / sha[:2] / sha

    def get(self, original: str) -> tuple[str, int] | None:
        r = self.db.execute("SELECT sha256, size, version FROM published WHERE original_sha256 = ?",
                            (original,)).fetchone()
        if r is None or r[2] != STRIP_CACHE_VERSION:
            return None
        p = self.path(r[0])
        if not p.is_file() or p.stat().st_size != r[1]:
            return None
        return r[0], r[1]

    def put(self, original: str, data: bytes, source: Path | None = None) -> tuple[str, int]:
        """Keep ``data``, the published copy of ``original``. When stripping changed nothing (no
        metadata: most messenger-forwarded photos), ``source`` (the workdir's object, immutable
        like this cache) is hard-linked instead of written again: no second copy on disk."""
        sha = sha256_bytes(data)
        p = self.path(sha)
        if not (p.is_file() and p.stat().st_size == len(data)):
            p.parent.mkdir(exist_ok=True)
            tmp = p.with_name(p.name + f".tmp{os.getpid()}")
            tmp.unlink(missing_ok=True)
            try:
                if source is None or sha != original:
                    raise OSError("not the same bytes")
                os.link(source, tmp)
            except OSError:                     # other bytes, or no hard links here: a copy
                tmp.write_bytes(data)
            os.replace(tmp, p)
        self.db.execute("INSERT OR REPLACE INTO published VALUES (?, ?, ?, ?)",
                        (original, sha, len(data), STRIP_CACHE_VERSION))
        return sha, len(data)

    def close(self):
        self.db.close()


_PUBLISHED_TYPES = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png")}


def _media_type(data_head: bytes) -> tuple[str, str]:
    kind = _PUBLISHED_TYPES.get(image_mod.sniff(data_head))
    if kind is None:
        raise WorkdirInconsistent("a published image is neither JPEG nor PNG")
    return kind


@dataclass(frozen=True)
class Shard:
    """One written shard: bundle-relative path, its sha256 and size, its photos and estado."""

    path: str
    sha256: str
    bytes: int
    members: int
    cod_edo: int


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


def publish_images(wd: Workdir, state, bundle_dir: Path, election, progress_factory, warnings: list[str], *,
                   max_members: int = shards_mod.DEFAULT_MAX_MEMBERS,
                   max_bytes: int = shards_mod.DEFAULT_MAX_BYTES,
                   ) -> tuple[dict[str, dict], dict[str, dict], int, list[Shard]]:
    """Strip (or reuse the cached stripped copy of) every acta photo and zip them into shards.

    Returns ({original sha256: images row}, {published sha256: images row}, number newly
    stripped, the shards written under ``bundle_dir``). Photos that differ only in metadata
    share one published file, whose row is the first original's. Each shard is read back once
    (its hash for SHA256SUMS, each member's against its name: a damaged cache stops the build).
    """
    shards_mod.check_limits(max_members, max_bytes)
    originals = sorted({a["image_sha256"] for a in state.actas if a["image_sha256"]})
    out: dict[str, dict] = {}
    published: dict[str, dict] = {}
    stripped = 0
    used_originals: dict[str, str] = {}   # original sha256 -> the published sha256 that names it
    if not originals:
        return out, published, 0, []
    places = _places(state, election)
    hashed: set[str] = set()     # published copies hashed in this build (stripped just now)
    cache = _ImageCache(wd)
    try:
        with progress(progress_factory, 2 * len(originals)) as bar:
            for original in originals:
                hit = cache.get(original)
                if hit is None:
                    src = wd.object_path(original)
                    if not src.is_file():
                        raise WorkdirInconsistent(f"the workdir has no object {original} although an acta "
                                                  "was read from it; re-ingest the photo")
                    try:
                        data = image_mod.strip_metadata(src.read_bytes())
                    except TestigoError as e:
                        raise WorkdirInconsistent(f"cannot strip metadata from {original}: {e}") from None
                    hit = cache.put(original, data, src)
                    stripped += 1
                    hashed.add(hit[0])
                sha, size = hit
                with open(cache.path(sha), "rb") as f:
                    media_type, ext = _media_type(f.read(16))
                rel = f"{IMAGES_DIR}/{sha}{ext}"
                blob = state.blobs.get(original)
                turn = image_mod.orientation(cache.path(sha))   # header only; kept in the published copy
                size_wh = (blob["width"], blob["height"]) if blob else (None, None)
                if turn >= 5:                          # 5-8 turn by 90°: displayed sides swap
                    size_wh = size_wh[::-1]
                # a team's photo is stored as the team published it: name the original it came from
                first = state.provenance.original_of(original)
                if used_originals.get(first, sha) != sha:  # stripped differently elsewhere: keep ours
                    first = original
                if first != original:  # the shards are planned by the place of each row's original
                    places[first] = min(places.get(first, places[original]), places[original])
                out[original] = row = {"sha256": sha, "original_sha256": first, "path": rel,
                                       "media_type": media_type, "size": size,
                                       "width": size_wh[0], "height": size_wh[1], "orientation": turn}
                if sha in published and published[sha]["original_sha256"] == first:
                    pass  # one photo that reached us twice (own and through a team): published once
                elif sha in published:
                    warnings.append(f"photos {published[sha]['original_sha256']} and {original} differ only "
                                    f"in metadata; published once as {rel} (images.original_sha256 keeps "
                                    "the first)")
                else:
                    published[sha] = row
                    used_originals[first] = sha
                bar.update(1)
            written = _write_shards(bundle_dir, published, places, cache, bar, max_members, max_bytes, hashed)
            bar.update(len(originals) - len(published))   # one bar: originals stripped, then zipped
    finally:
        cache.close()
    return out, published, stripped, written


def _write_shards(bundle_dir: Path, published: dict[str, dict], places: dict[str, tuple], cache: _ImageCache,
                  bar, max_members: int, max_bytes: int, hashed: set[str] = frozenset()) -> list[Shard]:
    """Zip the published copies into shards, each read back once: its hash for SHA256SUMS, and
    the members taken from the cache checked against their names (those in ``hashed`` were
    hashed from their bytes in this build already: a third hash would only cost time)."""
    photos = [shards_mod.ShardPhoto(row["path"].rsplit("/", 1)[1], row["size"], places[row["original_sha256"]][0],
                                    places[row["original_sha256"]][1:]) for row in published.values()]
    plan = shards_mod.plan_shards(photos, max_members, max_bytes)
    (bundle_dir / IMAGES_DIR).mkdir()
    written = []
    for rel, names in plan.items():
        path = bundle_dir / rel
        shards_mod.write_shard(path, [(n, cache.path(n.split(".")[0])) for n in names])
        index = shards_mod.open_images(bundle_dir, [rel])
        if index.problems or len(index) != len(names):
            raise BundleError(f"{rel} was written but cannot be read back: {'; '.join(index.problems[:3])}")
        digest, members = shards_mod.digest_shard(path, [m for m in index if m.sha256 not in hashed])
        bad = sorted(n for n, d in members.items() if not n.startswith(d + "."))
        if bad:
            raise BundleError(f"{bad[0]} does not hash to its name: the published-image cache in "
                              f"{cache.root} is damaged; delete that folder and build again")
        for n in names:
            published[n.split(".")[0]]["shard"] = rel
        written.append(Shard(rel, digest, path.stat().st_size, len(names),
                             places[published[names[0].split(".")[0]]["original_sha256"]][0]))
        bar.update(len(names))
    return written
