"""The bundle's published photos: metadata-free copies of the originals, cached in the workdir.

Stripping (``image.strip_metadata``) is the slow part of a build, so each original's published
copy is kept in ``<workdir>/published/`` with the strip version that made it; a rebuild after
more photos strips only the new ones.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from . import image as image_mod
from .errors import TestigoError, WorkdirInconsistent
from .progress import progress
from .workdir import Workdir, sha256_bytes

IMAGES_DIR = "images"
# Bump when image.strip_metadata changes what it keeps, so cached published copies are redone.
STRIP_CACHE_VERSION = f"1:{image_mod.STRIP_VERSION}"
CACHE_DIR = "published"  # inside the workdir


class _ImageCache:
    """Published (stripped) copies by original sha256, kept in ``<workdir>/published/``."""

    def __init__(self, wd: Workdir):
        self.root = wd.path / CACHE_DIR
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.root / "index.db", isolation_level=None)
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

    def put(self, original: str, data: bytes) -> tuple[str, int]:
        sha = sha256_bytes(data)
        p = self.path(sha)
        if not (p.is_file() and p.stat().st_size == len(data)):
            p.parent.mkdir(exist_ok=True)
            tmp = p.with_name(p.name + f".tmp{os.getpid()}")
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


def publish_images(wd: Workdir, state, images_dir: Path, progress_factory,
                    warnings: list[str]) -> tuple[dict[str, dict], dict[str, dict], int]:
    """Strip (or reuse the cached stripped copy of) every acta photo and copy it into the bundle.

    Returns ({original sha256: images row}, {published sha256: images row}, number newly
    stripped). Photos that differ only in metadata share one published file, whose row is
    the first original's.
    """
    originals = sorted({a["image_sha256"] for a in state.actas if a["image_sha256"]})
    out: dict[str, dict] = {}
    published: dict[str, dict] = {}
    stripped = 0
    if not originals:
        return out, published, 0
    images_dir.mkdir()
    cache = _ImageCache(wd)
    try:
        with progress(progress_factory, len(originals)) as bar:
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
                    hit = cache.put(original, data)
                    stripped += 1
                sha, size = hit
                cached = cache.path(sha)
                with open(cached, "rb") as f:
                    media_type, ext = _media_type(f.read(16))
                rel = f"{IMAGES_DIR}/{sha}{ext}"
                blob = state.blobs.get(original)
                out[original] = row = {"sha256": sha, "original_sha256": original, "path": rel,
                                       "media_type": media_type, "size": size,
                                       "width": blob["width"] if blob else None,
                                       "height": blob["height"] if blob else None}
                if sha in published:
                    warnings.append(f"photos {published[sha]['original_sha256']} and {original} differ only "
                                    f"in metadata; published once as {rel} (images.original_sha256 keeps "
                                    "the first)")
                else:
                    published[sha] = row
                    shutil.copyfile(cached, images_dir / f"{sha}{ext}")
                bar.update(1)
    finally:
        cache.close()
    return out, published, stripped

