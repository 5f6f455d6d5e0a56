"""Build and verify the public bundle: SQLite + metadata-free images + SHA256SUMS + signature.

The bundle is what outlives the project: anyone must be able to check it with stock tools
(``sha256sum -c``, ``minisign -V``) and to rebuild it from the same workdir and get the same
bytes. So everything here is deterministic: rows sorted, ids assigned from content, a fixed
SQLite page size, no timestamps anywhere, and Ed25519 signatures (deterministic) with a
trusted comment that carries no time. The layout is the shared bundle contract
(/tmp/bundle_contract.md); the Datasette site is built against it.

Building never decodes an image: readings are cached in the workdir. Published copies of the
photos (EXIF/GPS stripped losslessly by ``image.strip_metadata``) are cached in the workdir
too (``published/``), so a rebuild after more photos strips only the new ones.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import tomllib
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import sqlite_utils

from . import acta as acta_mod
from . import election as election_mod
from . import image as image_mod
from . import manifest, signing
from .errors import TestigoError
from .workdir import Workdir, sha256_bytes

PAGE_SIZE = 4096
DATAPACKAGE = "datapackage.json"
README = "README.md"
LICENSE = "LICENSE"
PUBLIC_KEY = "minisign.pub"
IMAGES_DIR = "images"
# Bump when image.strip_metadata changes what it keeps, so cached published copies are redone.
STRIP_CACHE_VERSION = f"1:{image_mod.STRIP_VERSION}"
CACHE_DIR = "published"  # inside the workdir
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class BundleError(TestigoError):
    """A bundle cannot be built (bad workdir state, unusable output folder, cache damage)."""


class OutputNotEmpty(BundleError):
    """The output folder holds files that are not a previous bundle; we never delete those."""


class WorkdirInconsistent(BundleError):
    """The workdir's state breaks an invariant the bundle relies on (missing object, two counted actas)."""


# --- schema --------------------------------------------------------------------------------------

COUNTING_RULE = {
    "en": ("Per mesa, the counted acta is the transcribed sheet row (source 'csv', status 'ok') when "
           "there is one, otherwise the QR reading with status 'ok'. Duplicates (same numbers read "
           "again) are never counted twice. A mesa whose QR readings conflict (different numbers) is "
           "not counted unless a sheet row exists; all conflicting readings are kept and flagged. "
           "Totals (the totals_* views) add up the counted actas only."),
    "es": ("Por mesa, el acta contada es la fila transcrita de la hoja (origen 'csv', estado 'ok') si "
           "existe; si no, la lectura del QR con estado 'ok'. Los duplicados (los mismos números leídos "
           "otra vez) nunca se cuentan dos veces. Una mesa cuyas lecturas del QR están en conflicto "
           "(números distintos) no se cuenta salvo que exista una fila de la hoja; todas las lecturas "
           "en conflicto se conservan y se marcan. Los totales (vistas totals_*) suman solo las actas "
           "contadas."),
}

TABLE_DESCRIPTIONS = {
    "estados": "States (estados) of the registry.",
    "municipios": "Municipalities; id is 'EDO.MUN' from the registry's integer codes.",
    "parroquias": "Parishes; id is 'EDO.MUN.PAR' from the registry's integer codes.",
    "centros": "Voting centres (the data has codes only, no centre names); searchable by code and place.",
    "mesas": "Every mesa (voting table) of the registry, counted or not.",
    "candidates": "Presidential candidates, in ballot order of the election definition.",
    "cards": "The 38 ballot cards in the QR payload's order and the candidate each one belongs to.",
    "images": "Published acta photos: metadata (EXIF/GPS) stripped losslessly, named by their own sha256.",
    "actas": "Every accepted reading of a mesa: QR readings of photos and transcribed sheet rows.",
    "votes": "Votes per ballot card, for QR readings (the payload's 38 counts).",
    "acta_votes": "Votes per candidate, for every acta.",
    "issues": "Every input that did not become a counted-or-countable reading, with the reason.",
    "totals_nacional": "National totals per candidate over counted actas.",
    "totals_estado": "Totals per state and candidate over counted actas.",
    "totals_municipio": "Totals per municipality and candidate over counted actas.",
    "totals_parroquia": "Totals per parish and candidate over counted actas.",
    "totals_centro": "Totals per centre and candidate over counted actas.",
}

_GEO = {"cod_edo": "State code (COD_EDO).", "estado": "State name.", "municipio": "Municipality name.",
        "parroquia": "Parish name.", "municipio_id": "Municipality id 'EDO.MUN'.",
        "parroquia_id": "Parish id 'EDO.MUN.PAR'.", "centro": "Centre code (integer, as in the QR header).",
        "codigo": "Centre code as text, for search."}
_TOT = {"candidate": "Candidate code.", "name": "Candidate name.",
        "votes": "Sum of the candidate's votes over counted actas."}

COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "estados": {"cod_edo": _GEO["cod_edo"], "nombre": "State name as in the registry."},
    "municipios": {"id": _GEO["municipio_id"], "cod_edo": _GEO["cod_edo"],
                   "cod_mun": "Municipality code within the state (COD_MUN).",
                   "nombre": "Municipality name as in the registry."},
    "parroquias": {"id": _GEO["parroquia_id"], "municipio_id": _GEO["municipio_id"],
                   "cod_edo": _GEO["cod_edo"], "cod_par": "Parish code (COD_PAR).",
                   "nombre": "Parish name as in the registry."},
    "centros": {"centro": _GEO["centro"], "codigo": _GEO["codigo"], "parroquia_id": _GEO["parroquia_id"],
                "municipio_id": _GEO["municipio_id"], "cod_edo": _GEO["cod_edo"], "estado": _GEO["estado"],
                "municipio": _GEO["municipio"], "parroquia": _GEO["parroquia"],
                "mesas": "Number of mesas of the centre in the registry.",
                "electores": "Registered electors of the centre (sum of its mesas)."},
    "mesas": {"id": "Mesa id 'CENTRO.MM' (mesa number with two digits).", "centro": _GEO["centro"],
              "mesa": "Mesa number within the centre.", "electores": "Registered electors (RE)."},
    "candidates": {"code": "Candidate code (column name in the published CSV).", "name": "Full name.",
                   "cards": "How many ballot cards the candidate has.",
                   "sort_order": "Order in the election definition (1 = first)."},
    "cards": {"position": "1-based position of the card's count in the QR payload.",
              "candidate": "Candidate the card's votes go to.",
              "party": "Party of the card; NULL where it is not established by any source.",
              "owner_status": "'established' (matched to CSV rows) or 'community' (as assigned by a "
                              "community decoder, not confirmed)."},
    "images": {"sha256": "sha256 of the published (metadata-stripped) file; also its file name.",
               "original_sha256": "sha256 of the file as received, before stripping.",
               "path": "Path of the file inside the bundle.", "media_type": "image/jpeg or image/png.",
               "size": "Size of the published file in bytes.", "width": "Width in pixels.",
               "height": "Height in pixels."},
    "actas": {"id": "Acta id, assigned in the order (centro, mesa, source, image sha256, payload); "
                    "stable for the same inputs.",
              "mesa_id": "The mesa this acta is about.",
              "source": "'qr' (read from the QR of a photo) or 'csv' (a transcribed sheet row).",
              "image_sha256": "The published photo the QR was read from (NULL for csv).",
              "payload": "The QR text, verbatim (NULL for csv).",
              "validos": "Valid votes (sum of all candidates).",
              "nulos": "Null votes; NULL for QR readings (not established in the payload).",
              "status": "'ok', 'duplicate' (same numbers as an earlier reading of the same source) or "
                        "'conflict' (readings of the same source disagree).",
              "duplicate_of": "For duplicates: the acta first read with these numbers.",
              "counted": "1 when this acta is the one counted for its mesa (see the counting rule).",
              "crosscheck": "QR vs sheet row of the same mesa: 'agree', 'disagree', or NULL when there "
                            "is nothing to compare with.",
              "crosscheck_diff": "JSON {field: {\"qr\": n, \"csv\": m}} of the differences, against the "
                                 "lowest-id counterpart that differs (NULL when they agree)."},
    "votes": {"acta_id": "The QR acta.", "position": "Ballot card (position in the payload).",
              "votes": "Votes of that card."},
    "acta_votes": {"acta_id": "The acta.", "candidate": "Candidate code.", "votes": "Votes of the candidate."},
    "issues": {"id": "Issue id (sorted by file, then content hash).",
               "outcome": "unreadable, invalid, duplicate, conflict or rejected-file.",
               "code": "Short stable code of the reason (e.g. unknown_mesa, same_file).",
               "reason": "What was wrong, in words (local folder names removed).",
               "file": "File name, 'archive.zip!member' or 'sheet.csv#row=N'; never a volunteer's local path.",
               "original_sha256": "sha256 of the input file (for sheet rows: of the sheet).",
               "acta_id": "The acta this input duplicates or conflicts with, when there is one."},
    "totals_nacional": dict(_TOT),
    "totals_estado": {"cod_edo": _GEO["cod_edo"], "estado": _GEO["estado"], **_TOT},
    "totals_municipio": {"municipio_id": _GEO["municipio_id"], "cod_edo": _GEO["cod_edo"],
                         "estado": _GEO["estado"], "municipio": _GEO["municipio"], **_TOT},
    "totals_parroquia": {"parroquia_id": _GEO["parroquia_id"], "municipio_id": _GEO["municipio_id"],
                         "cod_edo": _GEO["cod_edo"], "estado": _GEO["estado"],
                         "municipio": _GEO["municipio"], "parroquia": _GEO["parroquia"], **_TOT},
    "totals_centro": {"centro": _GEO["centro"], "codigo": _GEO["codigo"], "parroquia_id": _GEO["parroquia_id"],
                      "estado": _GEO["estado"], "municipio": _GEO["municipio"],
                      "parroquia": _GEO["parroquia"], **_TOT},
}


@dataclass(frozen=True)
class TableSpec:
    columns: dict[str, type]
    pk: str | tuple[str, ...]
    foreign_keys: tuple[tuple[str, str, str], ...] = ()
    not_null: tuple[str, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()


# Creation order = dependency order. Indexes: every FK column that Datasette or the views join on.
TABLES: dict[str, TableSpec] = {
    "estados": TableSpec({"cod_edo": int, "nombre": str}, "cod_edo", not_null=("nombre",)),
    "municipios": TableSpec({"id": str, "cod_edo": int, "cod_mun": int, "nombre": str}, "id",
                            (("cod_edo", "estados", "cod_edo"),), ("cod_edo", "cod_mun", "nombre"),
                            (("cod_edo",),)),
    "parroquias": TableSpec({"id": str, "municipio_id": str, "cod_edo": int, "cod_par": int, "nombre": str},
                            "id", (("municipio_id", "municipios", "id"), ("cod_edo", "estados", "cod_edo")),
                            ("municipio_id", "cod_edo", "cod_par", "nombre"),
                            (("municipio_id",), ("cod_edo",))),
    "centros": TableSpec({"centro": int, "codigo": str, "parroquia_id": str, "municipio_id": str,
                          "cod_edo": int, "estado": str, "municipio": str, "parroquia": str,
                          "mesas": int, "electores": int}, "centro",
                         (("parroquia_id", "parroquias", "id"), ("municipio_id", "municipios", "id"),
                          ("cod_edo", "estados", "cod_edo")),
                         ("codigo", "parroquia_id", "municipio_id", "cod_edo", "mesas", "electores"),
                         (("parroquia_id",), ("municipio_id",), ("cod_edo",))),
    "mesas": TableSpec({"id": str, "centro": int, "mesa": int, "electores": int}, "id",
                       (("centro", "centros", "centro"),), ("centro", "mesa", "electores"),
                       (("centro", "mesa"),)),
    "candidates": TableSpec({"code": str, "name": str, "cards": int, "sort_order": int}, "code",
                            not_null=("name", "cards", "sort_order")),
    "cards": TableSpec({"position": int, "candidate": str, "party": str, "owner_status": str}, "position",
                       (("candidate", "candidates", "code"),), ("candidate", "owner_status"),
                       (("candidate",),)),
    "images": TableSpec({"sha256": str, "original_sha256": str, "path": str, "media_type": str,
                         "size": int, "width": int, "height": int}, "sha256",
                        not_null=("original_sha256", "path", "media_type", "size"),
                        unique=(("original_sha256",),)),
    "actas": TableSpec({"id": int, "mesa_id": str, "source": str, "image_sha256": str, "payload": str,
                        "validos": int, "nulos": int, "status": str, "duplicate_of": int,
                        "counted": int, "crosscheck": str, "crosscheck_diff": str}, "id",
                       (("mesa_id", "mesas", "id"), ("image_sha256", "images", "sha256"),
                        ("duplicate_of", "actas", "id")),
                       ("mesa_id", "source", "validos", "status", "counted"),
                       (("mesa_id",), ("image_sha256",), ("duplicate_of",), ("counted",), ("status",),
                        ("crosscheck",))),
    "votes": TableSpec({"acta_id": int, "position": int, "votes": int}, ("acta_id", "position"),
                       (("acta_id", "actas", "id"), ("position", "cards", "position")),
                       ("votes",), (("position",),)),
    "acta_votes": TableSpec({"acta_id": int, "candidate": str, "votes": int}, ("acta_id", "candidate"),
                            (("acta_id", "actas", "id"), ("candidate", "candidates", "code")),
                            ("votes",), (("candidate",),)),
    "issues": TableSpec({"id": int, "outcome": str, "code": str, "reason": str, "file": str,
                         "original_sha256": str, "acta_id": int}, "id",
                        (("acta_id", "actas", "id"),), ("outcome", "file", "original_sha256"),
                        (("outcome",), ("code",), ("original_sha256",), ("acta_id",))),
}

_COUNTED = ("FROM actas a JOIN acta_votes v ON v.acta_id = a.id JOIN candidates c ON c.code = v.candidate "
            "JOIN mesas m ON m.id = a.mesa_id JOIN centros ce ON ce.centro = m.centro WHERE a.counted = 1")
VIEWS: dict[str, tuple[dict[str, type], str]] = {
    "totals_nacional": ({"candidate": str, "name": str, "votes": int},
                        "SELECT c.code AS candidate, c.name AS name, SUM(v.votes) AS votes "
                        "FROM actas a JOIN acta_votes v ON v.acta_id = a.id "
                        "JOIN candidates c ON c.code = v.candidate WHERE a.counted = 1 "
                        "GROUP BY c.code ORDER BY c.sort_order"),
    "totals_estado": ({"cod_edo": int, "estado": str, "candidate": str, "name": str, "votes": int},
                      "SELECT ce.cod_edo AS cod_edo, ce.estado AS estado, c.code AS candidate, c.name AS name, "
                      f"SUM(v.votes) AS votes {_COUNTED} GROUP BY ce.cod_edo, ce.estado, c.code "
                      "ORDER BY ce.cod_edo, c.sort_order"),
    "totals_municipio": ({"municipio_id": str, "cod_edo": int, "estado": str, "municipio": str,
                          "candidate": str, "name": str, "votes": int},
                         "SELECT ce.municipio_id AS municipio_id, ce.cod_edo AS cod_edo, ce.estado AS estado, "
                         "ce.municipio AS municipio, c.code AS candidate, c.name AS name, SUM(v.votes) AS votes "
                         f"{_COUNTED} GROUP BY ce.municipio_id, ce.cod_edo, ce.estado, ce.municipio, c.code "
                         "ORDER BY ce.municipio_id, c.sort_order"),
    "totals_parroquia": ({"parroquia_id": str, "municipio_id": str, "cod_edo": int, "estado": str,
                          "municipio": str, "parroquia": str, "candidate": str, "name": str, "votes": int},
                         "SELECT ce.parroquia_id AS parroquia_id, ce.municipio_id AS municipio_id, "
                         "ce.cod_edo AS cod_edo, ce.estado AS estado, ce.municipio AS municipio, "
                         "ce.parroquia AS parroquia, c.code AS candidate, c.name AS name, SUM(v.votes) AS votes "
                         f"{_COUNTED} GROUP BY ce.parroquia_id, ce.municipio_id, ce.cod_edo, ce.estado, "
                         "ce.municipio, ce.parroquia, c.code ORDER BY ce.parroquia_id, c.sort_order"),
    "totals_centro": ({"centro": int, "codigo": str, "parroquia_id": str, "estado": str, "municipio": str,
                       "parroquia": str, "candidate": str, "name": str, "votes": int},
                      "SELECT ce.centro AS centro, ce.codigo AS codigo, ce.parroquia_id AS parroquia_id, "
                      "ce.estado AS estado, ce.municipio AS municipio, ce.parroquia AS parroquia, "
                      "c.code AS candidate, c.name AS name, SUM(v.votes) AS votes "
                      f"{_COUNTED} GROUP BY ce.centro, ce.codigo, ce.parroquia_id, ce.estado, ce.municipio, "
                      "ce.parroquia, c.code ORDER BY ce.centro, c.sort_order"),
}
FTS_COLUMNS = {"centros": ("codigo", "estado", "municipio", "parroquia")}


# --- reports ---------------------------------------------------------------------------------------

@dataclass
class BuildReport:
    """What a build wrote; ``totals`` are the national totals per candidate code."""

    path: Path
    name: str
    database: Path
    files: int
    bytes: int
    actas: int
    mesas_counted: int
    images: int
    images_stripped: int
    issues: int
    totals: dict[str, int]
    key_id: str | None
    signed: bool
    manifest_sha256: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    """Everything found wrong (``problems``) and worth saying (``warnings``); ``ok`` = no problems."""

    path: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    key_id: str | None = None
    trusted_comment: str | None = None
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


# --- helpers ---------------------------------------------------------------------------------------

def mesa_id(centro: int, mesa: int) -> str:
    return f"{centro}.{mesa:02d}"


def municipio_id(edo: int, mun: int) -> str:
    return f"{edo}.{mun}"


def parroquia_id(edo: int, mun: int, par: int) -> str:
    return f"{edo}.{mun}.{par}"


_ZIP_LOCATOR = re.compile(r"^(.*?\.zip)!(.*)$", re.IGNORECASE | re.DOTALL)
_ROW_LOCATOR = re.compile(r"^(.*)#row=(\d+)$", re.DOTALL)


def _basename(path: str) -> str:
    return re.split(r"[\\/]", path)[-1]


def _split_locator(locator: str) -> tuple[str, str]:
    """(local folders, public name): ('/home/ana/', 'fotos.zip!a/b.jpg'); folders may be ''."""
    m = _ZIP_LOCATOR.match(locator) or _ROW_LOCATOR.match(locator)
    path, end = (m.group(1), m.end()) if m else (locator, len(locator))
    cut = len(path) - len(_basename(path))
    return locator[:cut], locator[cut:end]


def public_file_name(locator: str) -> str:
    """A locator without the volunteer's folders: 'x.jpg', 'fotos.zip!a/b.jpg', 'hoja.csv#row=7'."""
    return _split_locator(locator)[1]


def _local_prefixes(locators: list[str]) -> list[str]:
    """Folder prefixes ('/home/ana/fotos/') of every locator, longest first, to scrub from texts."""
    prefixes = {_split_locator(loc)[0] for loc in locators} - {""}
    return sorted(prefixes, key=lambda p: (-len(p), p))


def _scrub(text: str | None, prefixes: list[str]) -> str | None:
    """Remove local folder names from a reason text (ingest quotes earlier inputs' locators)."""
    if not text or not ("/" in text or "\\" in text):
        return text
    for p in prefixes:
        if p in text:
            text = text.replace(p, "")
    return text


def _natural(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def _software_versions() -> dict[str, str]:
    version = _dist("testigo")
    if version == "unknown":  # running from a source checkout
        try:
            root = Path(__file__).resolve().parent.parent
            version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
        except Exception:
            pass
    return {"testigo": version, "sqlite": sqlite3.sqlite_version,
            "sqlite_utils": getattr(sqlite_utils, "__version__", None) or _dist("sqlite-utils")}


def _dist(name: str) -> str:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return "unknown"


PROGRESS_MIN = 50  # below this many items a progress bar is noise


def _progress(factory, n: int):
    """A progress context (ingest's convention: factory(n) -> ctx with .update(k)) or a no-op."""
    if factory is not None and n >= PROGRESS_MIN:
        return factory(n)

    class _Null:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, k):
            pass
    return _Null()


# --- reading the workdir ---------------------------------------------------------------------------

@dataclass
class _State:
    actas: list[dict]
    issues: list[dict]
    blobs: dict[str, sqlite3.Row]


def _read_workdir(wd: Workdir) -> _State:
    """One consistent snapshot of the workdir state (a read transaction)."""
    db = wd.db
    db.execute("BEGIN")
    try:
        actas = [dict(r) for r in db.execute("SELECT * FROM actas")]
        inputs = [dict(r) for r in db.execute(
            "SELECT id, locator, sha256, outcome, code, reason, acta_id FROM inputs "
            "WHERE outcome NOT IN ('decoded', 'transcribed')")]
        locators = [r[0] for r in db.execute("SELECT DISTINCT locator FROM inputs")]
        shas = {a["image_sha256"] for a in actas if a["image_sha256"]}
        blobs = {}
        for r in db.execute("SELECT * FROM blobs WHERE media_type LIKE 'image/%'"):
            if r["sha256"] in shas:
                blobs[r["sha256"]] = r
    finally:
        db.execute("COMMIT")
    prefixes = _local_prefixes(locators)
    for i in inputs:
        i["file"] = public_file_name(i["locator"])
        i["reason"] = _scrub(i["reason"], prefixes)
    return _State(actas, inputs, blobs)


# --- images ----------------------------------------------------------------------------------------

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


def _publish_images(wd: Workdir, state: _State, images_dir: Path, progress_factory,
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
        with _progress(progress_factory, len(originals)) as bar:
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


# --- rows ------------------------------------------------------------------------------------------

def _geography(election) -> dict[str, list[dict]]:
    centros: dict[int, dict] = {}
    mesas = []
    for (centro, mesa), m in sorted(election.mesas.items()):
        mesas.append({"id": mesa_id(centro, mesa), "centro": centro, "mesa": mesa, "electores": m.electores})
        c = centros.get(centro)
        if c is None:
            mun = municipio_id(m.cod_edo, m.cod_mun)
            par = parroquia_id(m.cod_edo, m.cod_mun, m.cod_par)
            c = centros[centro] = {
                "centro": centro, "codigo": str(centro), "parroquia_id": par, "municipio_id": mun,
                "cod_edo": m.cod_edo, "estado": election.estados[m.cod_edo],
                "municipio": election.municipios[(m.cod_edo, m.cod_mun)],
                "parroquia": election.parroquias[(m.cod_edo, m.cod_mun, m.cod_par)],
                "mesas": 0, "electores": 0}
        c["mesas"] += 1
        c["electores"] += m.electores
    return {
        "estados": [{"cod_edo": k, "nombre": v} for k, v in sorted(election.estados.items())],
        "municipios": [{"id": municipio_id(e, m), "cod_edo": e, "cod_mun": m, "nombre": v}
                       for (e, m), v in sorted(election.municipios.items())],
        "parroquias": [{"id": parroquia_id(e, m, p), "municipio_id": municipio_id(e, m), "cod_edo": e,
                        "cod_par": p, "nombre": v} for (e, m, p), v in sorted(election.parroquias.items())],
        "centros": [centros[k] for k in sorted(centros)],
        "mesas": mesas,
    }


def _crosscheck(a: dict, others: list[dict]) -> tuple[str | None, str | None]:
    """Compare an acta with the other source's non-duplicate actas of its mesa."""
    if not others:
        return None, None
    for o in others:
        qr, csv = (a, o) if a["source"] == "qr" else (o, a)
        diff = acta_mod.differences(qr["votes"], qr["validos"], csv["votes"], csv["validos"])
        if diff:
            return "disagree", json.dumps(diff, sort_keys=True)
    return "agree", None


def _acta_rows(state: _State, images: dict[str, dict], election) -> tuple[list[dict], dict[int, int]]:
    """Actas with bundle ids, counted flags and cross-checks. Returns (rows, workdir id -> bundle id)."""
    def key(a):  # the published image's sha256, so readers of the bundle can check the order
        published = images[a["image_sha256"]]["sha256"] if a["image_sha256"] else ""
        return (a["centro"], a["mesa"], a["source_kind"], published, a["payload"] or "", a["numbers"],
                a["image_sha256"] or "", a["id"])
    ordered = sorted(state.actas, key=key)
    new_id = {a["id"]: i for i, a in enumerate(ordered, 1)}
    rows = []
    for a in ordered:
        if (a["centro"], a["mesa"]) not in election.mesas:
            raise WorkdirInconsistent(f"acta of mesa {mesa_id(a['centro'], a['mesa'])} is not in the "
                                      f"{election.id} registry; was the workdir made with another definition?")
        rows.append({
            "id": new_id[a["id"]], "mesa_id": mesa_id(a["centro"], a["mesa"]), "source": a["source_kind"],
            "image_sha256": images[a["image_sha256"]]["sha256"] if a["image_sha256"] else None,
            "payload": a["payload"], "validos": a["validos"], "nulos": a["nulos"], "status": a["status"],
            "duplicate_of": new_id.get(a["duplicate_of"]),
            "counted": 0, "crosscheck": None, "crosscheck_diff": None,
            "votes": json.loads(a["votes"]), "counts": json.loads(a["counts"]) if a["counts"] else None,
        })
    by_mesa: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_mesa[r["mesa_id"]].append(r)
    for mid, group in by_mesa.items():
        ok = {source: [r for r in group if r["source"] == source and r["status"] == "ok"]
              for source in ("csv", "qr")}
        for source, readings in ok.items():
            if len(readings) > 1:
                raise WorkdirInconsistent(f"mesa {mid} has {len(readings)} {source} readings with status ok; "
                                          "the workdir is inconsistent")
        chosen = ok["csv"] or ok["qr"]
        if chosen:
            chosen[0]["counted"] = 1
        for r in group:
            others = [o for o in group if o["source"] != r["source"] and o["status"] != "duplicate"]
            r["crosscheck"], r["crosscheck_diff"] = _crosscheck(r, others)
    return rows, new_id


def _issue_rows(state: _State, new_id: dict[int, int]) -> list[dict]:
    ordered = sorted(state.issues, key=lambda i: (_natural(i["file"]), i["sha256"], i["outcome"],
                                                  i["code"] or "", i["reason"] or "", i["id"]))
    return [{"id": n, "outcome": i["outcome"], "code": i["code"], "reason": i["reason"], "file": i["file"],
             "original_sha256": i["sha256"],
             "acta_id": new_id.get(i["acta_id"])}
            for n, i in enumerate(ordered, 1)]


# --- database --------------------------------------------------------------------------------------

def _write_database(path: Path, tables: dict[str, list[dict]]) -> None:
    """Write the SQLite file at ``path`` (temp file + VACUUM INTO + rename: never half-written)."""
    building = path.with_name(path.name + ".building")
    final_tmp = path.with_name(path.name + ".tmp")
    for p in (building, final_tmp):
        p.unlink(missing_ok=True)
    conn = sqlite3.connect(building)
    try:
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode = OFF")  # a scratch file: thrown away on failure
        conn.execute("PRAGMA synchronous = OFF")
        db = sqlite_utils.Database(conn, execute_plugins=False)
        for name, spec in TABLES.items():
            db[name].create(spec.columns, pk=spec.pk, foreign_keys=list(spec.foreign_keys),
                            not_null=set(spec.not_null))
            cols = list(spec.columns)
            db[name].insert_all(({c: r.get(c) for c in cols} for r in tables[name]), batch_size=1000)
            for idx in spec.indexes:
                db[name].create_index(list(idx), index_name=f"idx_{name}_{'_'.join(idx)}")
            for idx in spec.unique:
                db[name].create_index(list(idx), index_name=f"uq_{name}_{'_'.join(idx)}", unique=True)
        for name, (_, sql) in VIEWS.items():
            db.create_view(name, sql)
        for name, cols in FTS_COLUMNS.items():
            db[name].enable_fts(list(cols), fts_version="FTS5")
        conn.commit()
        bad = conn.execute("PRAGMA foreign_key_check").fetchall()
        if bad:
            raise WorkdirInconsistent(f"the bundle database would break {len(bad)} foreign keys, e.g. {bad[:3]}")
        conn.execute("ANALYZE")
        conn.commit()
        conn.execute("VACUUM INTO ?", (str(final_tmp),))
    finally:
        conn.close()
        building.unlink(missing_ok=True)
    os.replace(final_tmp, path)


def _national_totals(db_path: Path) -> dict[str, int]:
    conn = _open_readonly(db_path)
    try:
        return {r[0]: r[1] for r in conn.execute("SELECT candidate, votes FROM totals_nacional")}
    finally:
        conn.close()


def _open_readonly(path: Path) -> sqlite3.Connection:
    """Open without ever writing next to the file (no -journal/-wal appears in a bundle)."""
    uri = "file:" + urllib.request.pathname2url(str(Path(path).resolve())) + "?mode=ro&immutable=1"
    return sqlite3.connect(uri, uri=True)


# --- metadata files --------------------------------------------------------------------------------

def _field_type(t: type) -> str:
    return "integer" if t is int else "string"


def _schema(name: str, columns: dict[str, type], spec: TableSpec | None) -> dict:
    desc = COLUMN_DESCRIPTIONS.get(name, {})
    schema: dict = {"fields": [{"name": c, "type": _field_type(t), **({"description": desc[c]} if c in desc else {})}
                               for c, t in columns.items()]}
    if spec is not None:
        schema["primaryKey"] = [spec.pk] if isinstance(spec.pk, str) else list(spec.pk)
        if spec.foreign_keys:
            schema["foreignKeys"] = [{"fields": [col], "reference": {"resource": other, "fields": [other_col]}}
                                     for col, other, other_col in spec.foreign_keys]
    return schema


def _datapackage(name: str, election, db_file: str, db_size: int, db_sha: str, info: dict) -> dict:
    base = {"path": db_file, "format": "sqlite", "mediatype": "application/vnd.sqlite3",
            "bytes": db_size, "hash": f"sha256:{db_sha}"}
    resources = [{"name": "database", "title": "SQLite database (all tables and views)", **base}]
    for t, spec in TABLES.items():
        resources.append({"name": t, "type": "table", "description": TABLE_DESCRIPTIONS[t], **base,
                          "dialect": {"table": t}, "schema": _schema(t, spec.columns, spec)})
    for v, (cols, _) in VIEWS.items():
        resources.append({"name": v, "type": "table", "description": TABLE_DESCRIPTIONS[v], **base,
                          "dialect": {"table": v}, "schema": _schema(v, cols, None)})
    meta = election.meta
    return {
        "$schema": "https://datapackage.org/profiles/2.0/datapackage.json",
        "name": name,
        "title": meta.get("title"),
        "description": (f"{meta.get('title_en')}: per-mesa results from citizen photos of the tally "
                        "sheets (actas) and transcribed sheets, verified and signed by testigo."),
        "licenses": [{"name": "CC0-1.0", "title": "Creative Commons Zero v1.0 Universal",
                      "path": "https://creativecommons.org/publicdomain/zero/1.0/"}],
        "resources": resources,
        "testigo": {
            "election": election.id,
            "title": meta.get("title"),
            "title_en": meta.get("title_en"),
            "date": meta.get("date"),
            "public_key_fingerprint": info["key_id"],
            "public_key": info["public_key"],
            "counting_rule": COUNTING_RULE,
            "counts": info["counts"],
            "totals": info["totals"],
            "images": f"{IMAGES_DIR}/<sha256>.jpg|.png (EXIF/GPS stripped losslessly; images.original_sha256 "
                      "is the hash of the file as received)",
            "registry": meta.get("registry", {}).get("note"),
            "payload": meta.get("payload", {}).get("description"),
            "cards_note": meta.get("party_note"),
            "owner_status": meta.get("owner_status"),
            "software": info["software"],
            "reproducible": "Same workdir, same key and the same software versions give byte-identical files.",
        },
    }


LICENSE_TEXT = """\
This dataset (the SQLite database, datapackage.json, README.md and the published photos of
public tally sheets in images/) is dedicated to the public domain under the Creative Commons
CC0 1.0 Universal dedication. To the extent possible under law, the contributors have waived
all copyright and related or neighboring rights to it. You can copy, modify, distribute and
use it, even for commercial purposes, all without asking permission.

Este conjunto de datos (la base SQLite, datapackage.json, README.md y las fotos publicadas de
actas públicas en images/) se dedica al dominio público con CC0 1.0 Universal. En la medida
en que la ley lo permita, quienes contribuyeron renuncian a todos los derechos de autor y
derechos conexos sobre él.

SPDX-License-Identifier: CC0-1.0
Full legal code / texto legal completo: https://creativecommons.org/publicdomain/zero/1.0/legalcode
"""


def _readme(name: str, election, db_file: str, info: dict) -> str:
    meta = election.meta
    c = info["counts"]
    totals = "\n".join(f"| {cand.code} | {cand.name} | {info['totals'].get(cand.code, 0):,} |"
                       for cand in election.candidates)
    tables = "\n".join(f"| `{t}` | {TABLE_DESCRIPTIONS[t]} |" for t in list(TABLES) + list(VIEWS))
    if info["key_id"]:
        key = (f"Key id / Id de la clave: `{info['key_id']}`\n\n```\n{info['public_key_file'].rstrip()}\n```\n")
        sig_es = "La firma `SHA256SUMS.minisig` (Ed25519, formato minisign) cubre `SHA256SUMS`."
        sig_en = "The signature `SHA256SUMS.minisig` (Ed25519, minisign format) covers `SHA256SUMS`."
    else:
        key = "**This bundle is NOT signed. / Este paquete NO está firmado.**\n"
        sig_es = sig_en = "(unsigned / sin firma)"
    return f"""# {meta.get('title')} — testigo `{name}`

*{meta.get('title_en')}*

Datos verificados por mesa a partir de fotos de las actas de escrutinio tomadas por ciudadanos,
y de hojas transcritas. / Per-mesa results verified from citizens' photos of the tally sheets
(actas) and from transcribed sheets.

| | |
|---|---|
| Actas (lecturas aceptadas / accepted readings) | {c['actas']:,} |
| Mesas contadas / counted mesas (registro / registry) | {c['mesas_counted']:,} / {c['mesas_registry']:,} |
| Fotos publicadas / published photos | {c['images']:,} |
| Incidencias / issues | {c['issues']:,} |

## Totales nacionales / National totals (counted actas)

| | Candidato / Candidate | Votos / Votes |
|---|---|---:|
{totals}

## Español

**Qué es.** Una base de datos SQLite (`{db_file}`), las fotos de las actas (`images/`, sin
metadatos), `datapackage.json` (descripción Frictionless de las tablas), `SHA256SUMS` (la suma
sha256 de cada archivo) y su firma `SHA256SUMS.minisig`.

**Cómo se reunió.** Voluntarios enviaron fotos de las actas; testigo leyó el código QR de cada
una y solo aceptó textos que siguen la gramática del acta de esta elección (una lectura errónea
es peor que ninguna), comprobando la mesa en el registro, que los votos por candidato sumen los
válidos y que no se superen los electores. Las hojas transcritas (por ejemplo el CSV publicado
por resultadosconvzla.com) se leen fila por fila con las mismas reglas. Cada entrada tiene un
único resultado; las que no se aceptaron están en la tabla `issues` con el motivo. Las fotos
publicadas no llevan EXIF/GPS (se quitaron sin recomprimir: los píxeles son los mismos);
`images.original_sha256` es la suma del archivo tal como se recibió.

**Regla de conteo.** {COUNTING_RULE['es']}

**Verificar.** En esta carpeta:

```
sha256sum -c SHA256SUMS
minisign -Vm SHA256SUMS -p minisign.pub
testigo verify . --pubkey CLAVE_PUBLICA_OBTENIDA_POR_OTRO_CANAL.pub
```

{sig_es} Verificar con el `minisign.pub` incluido solo prueba que el paquete está íntegro; para
saber quién lo publicó, compare el id de la clave con el publicado por otro canal.

**Reconstruir y comparar.** Con el mismo directorio de trabajo (workdir), la misma versión de
testigo y de SQLite, `testigo build` produce archivos idénticos byte a byte. Sin la clave
secreta, construya con la clave pública y compare el manifiesto:

```
testigo build --workdir W --out B2 --pubkey minisign.pub
cmp B2/SHA256SUMS SHA256SUMS && echo idéntico
```

## English

**What it is.** A SQLite database (`{db_file}`), the acta photos (`images/`, metadata removed),
`datapackage.json` (a Frictionless description of every table), `SHA256SUMS` (the sha256 of
every file) and its signature `SHA256SUMS.minisig`.

**How it was collected.** Volunteers sent photos of the actas; testigo read each QR code and
accepted only texts that follow this election's acta grammar (a wrong reading is worse than
none), checking the mesa against the registry, that candidates' votes add up to the valid
votes, and that no mesa has more votes than electors. Transcribed sheets (such as the CSV
published by resultadosconvzla.com) are read row by row under the same rules. Every input has
exactly one outcome; those not accepted are in the `issues` table with the reason. Published
photos carry no EXIF/GPS (removed without re-encoding: the pixels are unchanged);
`images.original_sha256` is the hash of the file as received.

**Counting rule.** {COUNTING_RULE['en']}

**How to verify.** In this folder:

```
sha256sum -c SHA256SUMS
minisign -Vm SHA256SUMS -p minisign.pub
testigo verify . --pubkey PUBLIC_KEY_OBTAINED_ELSEWHERE.pub
```

{sig_en} Verifying against the `minisign.pub` shipped inside the bundle only proves the bundle
is intact; to know who published it, compare the key id with one published through another
channel.

**Rebuild and compare.** From the same workdir, with the same testigo and SQLite versions,
`testigo build` writes byte-identical files. Without the secret key, build with the public key
and compare the manifests:

```
testigo build --workdir W --out B2 --pubkey minisign.pub
cmp B2/SHA256SUMS SHA256SUMS && echo identical
```

## Public key / Clave pública

{key}
## Schema / Esquema

| Table / view | |
|---|---|
{tables}

Ids: `municipios.id` = `EDO.MUN`, `parroquias.id` = `EDO.MUN.PAR`, `mesas.id` = `CENTRO.MM`.
Column descriptions: `datapackage.json`. Software: {', '.join(f'{k} {v}' for k, v in info['software'].items())}.

License / Licencia: CC0-1.0 (see `LICENSE`).
"""


# --- output folder ---------------------------------------------------------------------------------

_BUNDLE_NAMES = {README, LICENSE, PUBLIC_KEY, DATAPACKAGE, manifest.MANIFEST, manifest.SIGNATURE,
                 IMAGES_DIR, *manifest.IGNORED_TOP_DIRS}


def _is_previous_bundle(out: Path) -> bool:
    try:
        return "testigo" in json.loads((out / DATAPACKAGE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def _check_output(out: Path) -> None:
    """Allow a missing or empty folder, or a previous bundle with nothing foreign in it."""
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputNotEmpty(f"{out} exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if not _is_previous_bundle(out):
        raise OutputNotEmpty(f"{out} is not empty and is not a testigo bundle ({', '.join(entries[:5])}"
                             f"{', ...' if len(entries) > 5 else ''}); choose an empty or new folder")
    foreign = [n for n in entries if n not in _BUNDLE_NAMES and not n.endswith(".db")]
    if foreign:
        raise OutputNotEmpty(f"{out} is a previous bundle but also holds {', '.join(foreign)}, which a "
                             "rebuild would delete; move those files away first")


def _swap_into_place(staging: Path, out: Path) -> None:
    """Replace ``out`` by the finished ``staging`` folder; a stale file can never survive."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
        os.rename(staging, out)
        shutil.rmtree(old)
    else:
        os.rename(staging, out)


# --- build -----------------------------------------------------------------------------------------

def build_bundle(workdir, out, key=None, name: str | None = None, password: str | None = None, *,
                 public_key=None, progress_factory: Callable | None = None) -> BuildReport:
    """Build the bundle for ``workdir`` into the folder ``out`` (see the module docstring).

    ``key``: secret key (base path, K.key) to sign with; ``password`` for it (else the
    TESTIGO_KEY_PASSWORD env var). ``public_key`` (without ``key``): embed that public key but
    do not sign, so anyone can rebuild and compare SHA256SUMS with a published bundle.
    ``progress_factory(n)`` -> context with ``.update(k)``, as for ingest (used for the images).
    """
    out = Path(out)
    if key is not None and public_key is not None:
        raise BundleError("give either a secret key to sign with or a public key to embed, not both")
    sk = signing.load_secret_key(key, password) if key is not None else None
    pk = sk.get_public_key() if sk is not None else (
        signing.load_public_key(public_key) if public_key is not None else None)
    own = isinstance(workdir, Workdir)
    wd = workdir if own else Workdir(workdir, create=False)
    warnings: list[str] = []
    try:
        election = election_mod.load(wd.election_id or election_mod.DEFAULT_ELECTION)
        name = name or election.id
        if not _NAME.match(name) or name.endswith(".db"):
            raise BundleError(f"bundle name {name!r}: use letters, digits, '.', '_' and '-' only")
        _check_output(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.with_name(f".{out.name}.building-{os.getpid()}")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        try:
            state = _read_workdir(wd)
            images, image_rows, stripped = _publish_images(wd, state, staging / IMAGES_DIR,
                                                           progress_factory, warnings)
            actas, new_id = _acta_rows(state, images, election)
            tables = _geography(election)
            tables["candidates"] = [{"code": c.code, "name": c.name, "cards": c.cards, "sort_order": i}
                                    for i, c in enumerate(election.candidates, 1)]
            tables["cards"] = [{"position": k.position, "candidate": k.candidate, "party": k.party,
                                "owner_status": k.owner_status} for k in election.cards]
            tables["images"] = [image_rows[s] for s in sorted(image_rows)]
            tables["actas"] = actas
            tables["votes"] = [{"acta_id": a["id"], "position": i, "votes": n}
                               for a in actas if a["counts"] for i, n in enumerate(a["counts"], 1)]
            tables["acta_votes"] = [{"acta_id": a["id"], "candidate": c.code, "votes": a["votes"].get(c.code, 0)}
                                    for a in actas for c in election.candidates]
            tables["issues"] = _issue_rows(state, new_id)
            db_file = f"{name}.db"
            db_path = staging / db_file
            _write_database(db_path, tables)
            totals = _national_totals(db_path)
            info = {
                "key_id": signing.key_id(pk) if pk else None,
                "public_key": signing.public_key_base64(pk) if pk else None,
                "public_key_file": signing.public_key_bytes(pk).decode() if pk else None,
                "counts": {"mesas_registry": len(tables["mesas"]), "actas": len(actas),
                           "mesas_counted": sum(a["counted"] for a in actas),
                           "actas_by_status": {s: sum(a["status"] == s for a in actas)
                                               for s in ("ok", "duplicate", "conflict")},
                           "images": len(image_rows), "issues": len(tables["issues"])},
                "totals": {c.code: totals.get(c.code, 0) for c in election.candidates},
                "software": _software_versions(),
            }
            if pk:
                (staging / PUBLIC_KEY).write_bytes(signing.public_key_bytes(pk))
            (staging / LICENSE).write_text(LICENSE_TEXT, encoding="utf-8")
            (staging / README).write_text(_readme(name, election, db_file, info), encoding="utf-8")
            dp = _datapackage(name, election, db_file, db_path.stat().st_size,
                              manifest.sha256_file(db_path), info)
            (staging / DATAPACKAGE).write_text(json.dumps(dp, ensure_ascii=False, indent=1) + "\n",
                                               encoding="utf-8")
            hashes = manifest.write_manifest(staging)
            for rel, digest in hashes.items():
                if rel.startswith(IMAGES_DIR + "/") and not rel.split("/")[-1].startswith(digest + "."):
                    raise BundleError(f"{rel} does not hash to its name: the published-image cache in "
                                      f"{wd.path / CACHE_DIR} is damaged; delete that folder and build again")
            if sk is not None:
                signing.sign_file(sk, staging / manifest.MANIFEST, signing.trusted_comment(name, election.id))
            files = [p for p in staging.rglob("*") if p.is_file()]
            report = BuildReport(
                path=out, name=name, database=out / db_file, files=len(files),
                bytes=sum(p.stat().st_size for p in files), actas=len(actas),
                mesas_counted=info["counts"]["mesas_counted"], images=len(image_rows),
                images_stripped=stripped, issues=len(tables["issues"]), totals=info["totals"],
                key_id=info["key_id"], signed=sk is not None,
                manifest_sha256=manifest.sha256_file(staging / manifest.MANIFEST), warnings=warnings)
            _swap_into_place(staging, out)
            return report
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    finally:
        if sk is not None:
            sk.wipe()
        if not own:
            wd.close()


# --- verify ----------------------------------------------------------------------------------------

def verify_bundle(path, pubkey=None, *, workers: int | None = None,
                  progress_factory: Callable | None = None) -> VerifyReport:
    """Check a bundle: signature, every checksum, no missing/extra file, SQLite integrity, FKs.

    ``pubkey``: the publisher's public key obtained independently (file, K base path or base64).
    Without it only the key shipped inside the bundle is used, which proves integrity but not
    authorship: anyone who alters a bundle can re-sign it with their own key. That is warned.
    """
    root = Path(path)
    rep = VerifyReport(root)
    if not root.is_dir():
        rep.problems.append(f"{root} is not a folder")
        return rep
    # 1. checksums: every file, each problem reported
    listing = manifest.list_files(root)
    with _progress(progress_factory, len(listing.files)) as bar:
        check = manifest.check_manifest(root, workers, bar.update, listing=listing)
    rep.problems += check.problems()
    rep.files_checked = len(check.entries)
    if check.ignored:
        rep.warnings.append(f"ignored {len(check.ignored)} file(s) under "
                            f"{', '.join(d + '/' for d in manifest.IGNORED_TOP_DIRS)} (BitTorrent padding)")
    # 2. which key
    bundled_pk = None
    if (root / PUBLIC_KEY).is_file():
        try:
            bundled_pk = signing.load_public_key(root / PUBLIC_KEY)
        except signing.SigningError as e:
            rep.problems.append(f"{PUBLIC_KEY}: {e}")
    pk = None
    if pubkey is not None:
        try:
            pk = signing.load_public_key(pubkey)
        except signing.SigningError as e:
            rep.problems.append(f"the public key you gave cannot be read: {e}")
        if pk is not None and bundled_pk is not None and bundled_pk._keynum_pk != pk._keynum_pk:
            rep.problems.append(f"the bundle's {PUBLIC_KEY} is key {signing.key_id(bundled_pk)}, not the key "
                                f"you gave ({signing.key_id(pk)})")
    else:
        pk = bundled_pk
        if pk is None:
            rep.problems.append(f"no {PUBLIC_KEY} in the bundle and no --pubkey given: the signature "
                                "cannot be checked")
        else:
            rep.warnings.append(
                f"WARNING: checked only against the key shipped INSIDE the bundle ({signing.key_id(pk)}). "
                "This proves the files are intact and consistent, NOT who published them: anyone can "
                "alter a bundle and re-sign it with their own key. Get the publisher's public key through "
                "another channel and pass it with --pubkey.")
    # 3. signature of SHA256SUMS
    if pk is not None:
        rep.key_id = signing.key_id(pk)
        if (root / manifest.MANIFEST).is_file():
            try:
                rep.trusted_comment = signing.verify_file(pk, root / manifest.MANIFEST)
            except signing.SignatureInvalid as e:
                rep.problems.append(f"signature: {e}")
    # 4. datapackage.json consistent with the files and the key
    dbs = sorted(p.name for p in root.glob("*.db") if p.is_file())
    dp = None
    if not (root / DATAPACKAGE).is_file():
        rep.problems.append(f"{DATAPACKAGE} is missing")
    else:
        try:
            dp = json.loads((root / DATAPACKAGE).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            rep.problems.append(f"{DATAPACKAGE} is not valid JSON ({e})")
    if isinstance(dp, dict):
        meta = dp.get("testigo") or {}
        if pk is not None and meta.get("public_key_fingerprint") != signing.key_id(pk):
            rep.problems.append(f"{DATAPACKAGE} names key {meta.get('public_key_fingerprint')}, but the "
                                f"signature was checked with key {signing.key_id(pk)}")
        for res in dp.get("resources", []):
            rel, want = res.get("path"), str(res.get("hash", "")).removeprefix("sha256:")
            if not isinstance(rel, str):
                continue
            if rel not in check.entries:
                rep.problems.append(f"{DATAPACKAGE} resource {res.get('name')} points to {rel}, not in "
                                    f"{manifest.MANIFEST}")
            elif want and want != check.entries[rel]:
                rep.problems.append(f"{DATAPACKAGE} resource {res.get('name')}: hash differs from "
                                    f"{manifest.MANIFEST} for {rel}")
                break
    if not dbs:
        rep.problems.append("no SQLite database (*.db) in the bundle")
    # 5. each database: integrity, foreign keys, images table vs files
    for db_name in dbs:
        rep.problems += _check_database(root, db_name, check, dp if isinstance(dp, dict) else None)
    # dedupe while keeping order (a damaged file can be reported by two checks the same way)
    rep.problems = list(dict.fromkeys(rep.problems))
    return rep


def _check_database(root: Path, db_name: str, check: manifest.ManifestCheck, dp: dict | None) -> list[str]:
    problems = []
    try:
        conn = _open_readonly(root / db_name)
    except sqlite3.Error as e:
        return [f"{db_name}: cannot be opened as SQLite ({e})"]
    try:
        res = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if res != ["ok"]:
            problems.append(f"{db_name}: PRAGMA integrity_check failed: {'; '.join(map(str, res[:5]))}")
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            problems.append(f"{db_name}: {len(fk)} foreign key violation(s), e.g. {fk[:3]}")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        if "images" in tables:
            rows = conn.execute("SELECT sha256, path FROM images").fetchall()
            listed = {p for p in check.entries if p.startswith(IMAGES_DIR + "/")}
            for sha, rel in rows:
                if not (isinstance(rel, str) and rel.startswith(f"{IMAGES_DIR}/{sha}.")):
                    problems.append(f"{db_name}: image {sha} has path {rel!r}, not named by its sha256")
                elif rel not in check.entries:
                    problems.append(f"{db_name}: image {rel} is in the images table but not in the bundle")
                elif check.entries[rel] != sha:
                    problems.append(f"{db_name}: image {rel} has sha256 {check.entries[rel]} in "
                                    f"{manifest.MANIFEST}, but {sha} in the images table")
            extra = listed - {r[1] for r in rows}
            for rel in sorted(extra):
                problems.append(f"{rel} is in the bundle but not in the images table of {db_name}")
        meta = (dp or {}).get("testigo") or {}
        if "totals_nacional" in tables and isinstance(meta.get("totals"), dict):
            got = {r[0]: r[1] for r in conn.execute("SELECT candidate, votes FROM totals_nacional")}
            want = {k: v for k, v in meta["totals"].items() if v}
            if {k: v for k, v in got.items() if v} != want:
                problems.append(f"{db_name}: national totals differ from those in {DATAPACKAGE}")
    except sqlite3.DatabaseError as e:
        problems.append(f"{db_name}: not a valid SQLite database ({e})")
    finally:
        conn.close()
    return problems
