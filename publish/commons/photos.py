"""The bundle's published acta photos with what a file page says about each: the mesa, its
centre and place, the acta's numbers, the photo's and the original's SHA-256.

Read from the bundle's own database (``images``, ``actas``, ``acta_votes``, ``mesas``,
``centros``); a photo with no acta (an unread photo a team bundle carries) is not an acta
photo and is left out. The bytes come out of the zip shards (:func:`archive.shards.open_images`).
"""
from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from archive import shards

from .errors import CommonsError


@dataclass(frozen=True)
class Reading:
    acta_id: int
    source: str          # qr | sheet | transcribed-photo ...
    status: str          # ok | duplicate | conflict
    counted: bool
    validos: int | None
    nulos: int | None
    votes: tuple[tuple[str, str, int], ...]   # (code, name, votes) in the ballot's order
    provenance: str | None


@dataclass(frozen=True)
class ActaPhoto:
    sha256: str
    original_sha256: str
    path: str            # images/<sha256>.<ext>, as the images table names it
    shard: str
    media_type: str
    size: int
    mesa_id: str
    centro: int
    mesa: int
    centre_code: str | None
    estado: str | None
    municipio: str | None
    parroquia: str | None
    outside_registry: bool
    readings: tuple[Reading, ...]

    @property
    def ext(self) -> str:
        return Path(self.path).suffix.lstrip(".").lower() or "jpg"

    @property
    def member(self) -> str:
        return Path(self.path).name


def _database(bundle_dir: Path) -> Path:
    dbs = sorted(bundle_dir.glob("*.db"))
    if len(dbs) != 1:
        raise CommonsError(f"{bundle_dir} should hold exactly one .db file (the bundle's database); "
                           f"it holds {len(dbs)}. Give the path of a bundle built by testigo.")
    return dbs[0]


def acta_photos(bundle_dir: str | Path) -> list[ActaPhoto]:
    """Every published photo behind an acta, in a fixed order (mesa, then sha256)."""
    bundle_dir = Path(bundle_dir)
    conn = sqlite3.connect(f"file:{_database(bundle_dir)}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        names = {r["code"]: r["name"] for r in conn.execute("SELECT code, name FROM candidates")}
        order = [r["code"] for r in conn.execute("SELECT code FROM candidates ORDER BY sort_order")]
        votes: dict[int, dict[str, int]] = {}
        for r in conn.execute("SELECT acta_id, candidate, votes FROM acta_votes"):
            votes.setdefault(r["acta_id"], {})[r["candidate"]] = r["votes"]
        rows = conn.execute(
            "SELECT i.sha256, i.original_sha256, i.path, i.shard, i.media_type, i.size, a.id AS acta_id, "
            "a.mesa_id, a.source, a.status, a.counted, a.validos, a.nulos, a.provenance, m.centro, m.mesa, "
            "c.codigo, c.estado, c.municipio, c.parroquia, a.outside_registry "
            "FROM images i JOIN actas a ON a.image_sha256 = i.sha256 JOIN mesas m ON m.id = a.mesa_id "
            "LEFT JOIN centros c ON c.centro = m.centro ORDER BY a.mesa_id, i.sha256, a.id").fetchall()
    except sqlite3.DatabaseError as exc:
        raise CommonsError(f"Could not read the bundle's database ({exc}). Run `testigo verify` on it.") from exc
    finally:
        conn.close()
    photos: dict[str, dict] = {}
    for r in rows:
        p = photos.setdefault(r["sha256"], {"row": r, "readings": []})
        v = votes.get(r["acta_id"], {})
        p["readings"].append(Reading(r["acta_id"], r["source"], r["status"], bool(r["counted"]),
                                     r["validos"], r["nulos"],
                                     tuple((c, names.get(c, c), v[c]) for c in order if c in v),
                                     r["provenance"]))
    out = []
    for sha, p in photos.items():
        r = p["row"]
        out.append(ActaPhoto(sha, r["original_sha256"], r["path"], r["shard"], r["media_type"], r["size"],
                             r["mesa_id"], r["centro"], r["mesa"], r["codigo"], r["estado"], r["municipio"],
                             r["parroquia"], bool(r["outside_registry"]), tuple(p["readings"])))
    return out


class PhotoReader:
    """Reads photos out of the shards, checking each against its name (its SHA-256)."""

    def __init__(self, bundle_dir: str | Path):
        self.index = shards.open_images(bundle_dir)

    def read(self, photo: ActaPhoto) -> bytes:
        data = self.index.read(photo.member)
        if hashlib.sha256(data).hexdigest() != photo.sha256:
            raise CommonsError(f"The photo {photo.member} in {photo.shard} does not match its name: "
                               "the bundle is damaged. Run `testigo verify` on it.")
        return data
