"""Build the public bundle: SQLite + metadata-free photos in zip shards + SHA256SUMS + signature.

The bundle is what outlives the project: anyone must be able to check it with stock tools
(``sha256sum -c``, ``minisign -V``) and to rebuild it from the same workdir and get the same
bytes. So everything here is deterministic: rows sorted, ids assigned from content, a fixed
SQLite page size, no timestamps anywhere, and Ed25519 signatures (deterministic) with a
trusted comment that carries no time. The pieces live in their own modules: ``database``
(schema and writing), ``published`` (photos) and ``shards`` (their zip files), ``datapackage``,
``readme``; ``verify`` checks the result.

Building never decodes an image: readings are cached in the workdir. Published copies of the
photos (EXIF/GPS stripped losslessly by ``image.strip_metadata``) are cached in the workdir
too (``published/``), so a rebuild after more photos strips only the new ones.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import sqlite_utils

from . import acta as acta_mod
from . import election as election_mod
from . import manifest, provenance, shards, signing, transcription
from .database import mesa_id, municipio_id, national_totals, parroquia_id, write_database
from .datapackage import datapackage
from .errors import BundleError, OutputNotEmpty, WorkdirInconsistent
from .published import IMAGES_DIR, publish_images
from .readme import LICENSE_TEXT, readme_text
from .workdir import Workdir

DATAPACKAGE = "datapackage.json"
README = "README.md"
LICENSE = "LICENSE"
PUBLIC_KEY = "minisign.pub"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


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
    shards: int
    issues: int
    totals: dict[str, int]
    key_id: str | None
    signed: bool
    manifest_sha256: str
    warnings: list[str] = field(default_factory=list)
    # the separate line: actas of mesas outside the registry (counted apart) and their totals
    outside_registry: dict = field(default_factory=dict)
    totals_outside_registry: dict[str, int] = field(default_factory=dict)



# --- helpers ---------------------------------------------------------------------------------------

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



# --- reading the workdir ---------------------------------------------------------------------------

@dataclass
class _State:
    actas: list[dict]
    issues: list[dict]
    blobs: dict[str, sqlite3.Row]
    transcriptions: list[dict] = field(default_factory=list)   # transcription.published()
    awaiting_transcription: int = 0
    provenance: provenance.Provenance = field(default_factory=provenance.Provenance)


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
        transcribed, awaiting = transcription.published(db), transcription.awaiting(db)
        origins = provenance.read(db)
    finally:
        db.execute("COMMIT")
    prefixes = _local_prefixes(locators)
    for i in inputs:
        i["file"] = public_file_name(i["locator"])
        i["reason"] = _scrub(i["reason"], prefixes)
    return _State(actas, inputs, blobs, transcribed, awaiting, origins)


# --- rows ------------------------------------------------------------------------------------------

def _geography(election, actas: list[dict] = ()) -> dict[str, list[dict]]:
    """Registry rows, plus flagged rows for the mesas and centres outside it that ``actas`` name."""
    centros: dict[int, dict] = {}
    mesas = []
    for (centro, mesa), m in sorted(election.mesas.items()):
        mesas.append({"id": mesa_id(centro, mesa), "centro": centro, "mesa": mesa, "electores": m.electores,
                      "outside_registry": 0})
        c = centros.get(centro)
        if c is None:
            mun = municipio_id(m.cod_edo, m.cod_mun)
            par = parroquia_id(m.cod_edo, m.cod_mun, m.cod_par)
            c = centros[centro] = {
                "centro": centro, "codigo": str(centro), "parroquia_id": par, "municipio_id": mun,
                "cod_edo": m.cod_edo, "estado": election.estados[m.cod_edo],
                "municipio": election.municipios[(m.cod_edo, m.cod_mun)],
                "parroquia": election.parroquias[(m.cod_edo, m.cod_mun, m.cod_par)],
                "mesas": 0, "electores": 0, "outside_registry": 0}
        c["mesas"] += 1
        c["electores"] += m.electores
    outside = sorted({(a["centro"], a["mesa"]) for a in actas if a["outside_registry"]})
    for centro, mesa in outside:  # electores unknown; the place from the centre code, where it maps
        mesas.append({"id": mesa_id(centro, mesa), "centro": centro, "mesa": mesa, "electores": None,
                      "outside_registry": 1})
        if centro not in centros:
            p = election.place(centro)
            centros[centro] = {
                "centro": centro, "codigo": str(centro), "mesas": 0, "electores": None, "outside_registry": 1,
                "cod_edo": p.cod_edo, "estado": election.estados.get(p.cod_edo),
                "municipio_id": municipio_id(p.cod_edo, p.cod_mun) if p.cod_mun is not None else None,
                "municipio": election.municipios.get((p.cod_edo, p.cod_mun)),
                "parroquia_id": parroquia_id(p.cod_edo, p.cod_mun, p.cod_par) if p.cod_par is not None else None,
                "parroquia": election.parroquias.get((p.cod_edo, p.cod_mun, p.cod_par))}
    mesas.sort(key=lambda m: (m["centro"], m["mesa"]))
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
    """Compare an acta with the other sources' non-duplicate actas of its mesa."""
    if not others:
        return None, None
    for o in others:
        diff = acta_mod.differences(a["votes"], a["validos"], o["votes"], o["validos"], (a["source"], o["source"]))
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
        rows.append({
            "id": new_id[a["id"]], "mesa_id": mesa_id(a["centro"], a["mesa"]), "source": a["source_kind"],
            "image_sha256": images[a["image_sha256"]]["sha256"] if a["image_sha256"] else None,
            "payload": a["payload"], "validos": a["validos"], "nulos": a["nulos"], "status": a["status"],
            "duplicate_of": new_id.get(a["duplicate_of"]),
            "counted": 0, "crosscheck": None, "crosscheck_diff": None,
            "votes": json.loads(a["votes"]), "counts": json.loads(a["counts"]) if a["counts"] else None,
            "centro": a["centro"], "mesa": a["mesa"],
            "outside_registry": int((a["centro"], a["mesa"]) not in election.mesas), "counted_outside": 0,
        })
    by_mesa: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_mesa[r["mesa_id"]].append(r)
    for mid, group in by_mesa.items():
        ok = {source: [r for r in group if r["source"] == source and r["status"] == "ok"]
              for source in ("csv", "qr", transcription.SOURCE_KIND)}
        for source, readings in ok.items():
            if len(readings) > 1:
                raise WorkdirInconsistent(f"mesa {mid} has {len(readings)} {source} readings with status ok; "
                                          "the workdir is inconsistent")
        # the counting rule (database.COUNTING_RULE): a transcription counts only where nothing was read
        chosen = ok["csv"] or ok["qr"] or (
            [] if any(r["source"] != transcription.SOURCE_KIND for r in group) else ok[transcription.SOURCE_KIND])
        if chosen:  # outside the registry: counted in its own line, never in the registry totals
            chosen[0]["counted_outside" if chosen[0]["outside_registry"] else "counted"] = 1
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


@contextlib.contextmanager
def staged_folder(out: Path, purpose: str):
    """A fresh hidden folder beside ``out`` to write into (``.OUT.<purpose>-PID``): when the block
    ends normally it replaces ``out`` whole; on any failure it is deleted and ``out`` is untouched."""
    staging = out.with_name(f".{out.name}.{purpose}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_into_place(staging, out)


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
                 public_key=None, progress_factory: Callable | None = None,
                 shard_size: int = shards.DEFAULT_MAX_MEMBERS,
                 shard_bytes: int = shards.DEFAULT_MAX_BYTES) -> BuildReport:
    """Build the bundle for ``workdir`` into the folder ``out`` (see the module docstring).

    ``key``: secret key (base path, K.key) to sign with; ``password`` for it (else the
    TESTIGO_KEY_PASSWORD env var). ``public_key`` (without ``key``): embed that public key but
    do not sign, so anyone can rebuild and compare SHA256SUMS with a published bundle.
    ``progress_factory(n)`` -> context with ``.update(k)``, as for ingest (used for the images).
    ``shard_size`` / ``shard_bytes``: most photos / bytes per zip shard (``archive.shards``);
    they are recorded in datapackage.json, since a rebuild must use the same to compare.
    """
    out = Path(out)
    shards.check_limits(shard_size, shard_bytes)
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
        with staged_folder(out, "building") as staging:
            state = _read_workdir(wd)
            images, image_rows, stripped, written = publish_images(
                wd, state, staging, election, progress_factory, warnings,
                max_members=shard_size, max_bytes=shard_bytes)
            actas, new_id = _acta_rows(state, images, election)
            tables = _geography(election, actas)
            tables["candidates"] = [{"code": c.code, "name": c.name, "cards": c.cards, "sort_order": i}
                                    for i, c in enumerate(election.candidates, 1)]
            tables["cards"] = [{"position": k.position, "candidate": k.candidate, "party": k.party,
                                "owner_status": k.owner_status} for k in election.cards]
            tables["images"] = [image_rows[s] for s in sorted(image_rows)]
            tables["team_bundles"] = provenance.annotate(state.provenance, actas, new_id)
            tables["actas"] = actas
            tables["votes"] = [{"acta_id": a["id"], "position": i, "votes": n}
                               for a in actas if a["counts"] for i, n in enumerate(a["counts"], 1)]
            tables["acta_votes"] = [{"acta_id": a["id"], "candidate": c.code, "votes": a["votes"].get(c.code, 0)}
                                    for a in actas for c in election.candidates]
            tables["issues"] = _issue_rows(state, new_id)
            tables["transcriptions"] = sorted(({**t, "acta_id": new_id[t["acta_id"]]} for t in state.transcriptions),
                                              key=lambda t: t["acta_id"])
            db_file = f"{name}.db"
            db_path = staging / db_file
            write_database(db_path, tables)
            totals = national_totals(db_path)
            outside_totals = national_totals(db_path, "outside_registry_totals")
            info = {
                "key_id": signing.key_id(pk) if pk else None,
                "public_key": signing.public_key_base64(pk) if pk else None,
                "public_key_file": signing.public_key_bytes(pk).decode() if pk else None,
                "counts": {"mesas_registry": len(election.mesas), "actas": len(actas),
                           "mesas_counted": sum(a["counted"] for a in actas),
                           "actas_by_status": {s: sum(a["status"] == s for a in actas)
                                               for s in ("ok", "duplicate", "conflict")},
                           "images": len(image_rows), "issues": len(tables["issues"]),
                           "photos_awaiting_transcription": state.awaiting_transcription,
                           "outside_registry": {
                               "mesas": sum(m["outside_registry"] for m in tables["mesas"]),
                               "actas": sum(a["outside_registry"] for a in actas),
                               "counted": sum(a["counted_outside"] for a in actas),
                               "centros_unplaced": sum(c["outside_registry"] and c["cod_edo"] is None
                                                       for c in tables["centros"])}},
                "totals": {c.code: totals.get(c.code, 0) for c in election.candidates},
                "totals_outside_registry": {c.code: outside_totals.get(c.code, 0) for c in election.candidates},
                "software": _software_versions(),
                "shards": {"max_members": shard_size, "max_bytes": shard_bytes},
                "teams": provenance.summary(tables["team_bundles"], actas),
            }
            if pk:
                (staging / PUBLIC_KEY).write_bytes(signing.public_key_bytes(pk))
            (staging / LICENSE).write_text(LICENSE_TEXT, encoding="utf-8")
            (staging / README).write_text(readme_text(name, election, db_file, info), encoding="utf-8")
            dp = datapackage(name, election, db_file, db_path.stat().st_size,
                              manifest.sha256_file(db_path), info, written)
            (staging / DATAPACKAGE).write_text(json.dumps(dp, ensure_ascii=False, indent=1) + "\n",
                                               encoding="utf-8")
            # the shards were hashed as they were written (published.publish_images)
            manifest.write_manifest(staging, known={s.path: s.sha256 for s in written})
            if sk is not None:
                signing.sign_file(sk, staging / manifest.MANIFEST, signing.trusted_comment(name, election.id))
            files = [p for p in staging.rglob("*") if p.is_file()]
            report = BuildReport(
                path=out, name=name, database=out / db_file, files=len(files),
                bytes=sum(p.stat().st_size for p in files), actas=len(actas),
                mesas_counted=info["counts"]["mesas_counted"], images=len(image_rows),
                images_stripped=stripped, shards=len(written), issues=len(tables["issues"]), totals=info["totals"],
                key_id=info["key_id"], signed=sk is not None,
                manifest_sha256=manifest.sha256_file(staging / manifest.MANIFEST), warnings=warnings,
                outside_registry=info["counts"]["outside_registry"],
                totals_outside_registry=info["totals_outside_registry"])
            return report
    finally:
        if sk is not None:
            sk.wipe()
        if not own:
            wd.close()

