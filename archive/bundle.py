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

import itertools
import json
import re
import sqlite3
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import sqlite_utils

from . import acta as acta_mod
from . import election as election_mod
from . import audit_tables, manifest, printed_store, provenance, recheck, shards, signing, transcription, volunteers
from .database import mesa_id, municipio_id, open_readonly, parroquia_id, write_database
from .totals import national_totals
from .datapackage import datapackage
from .locators import local_prefixes, natural_key, public_file_name, scrub
from .errors import BundleError, OutputNotEmpty, WorkdirInconsistent
from .progress import counted
from .published import IMAGES_DIR, PublishedImages, ShardWriter, publish_images
from .readme import LICENSE_TEXT, readme_text
from .staging import staged_folder
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

class _Rows:
    """Rows of one query, read afresh on every iteration (a pass), never held all at once."""

    def __init__(self, db: sqlite3.Connection, sql: str, params=()):
        self.db, self.sql, self.params = db, sql, params

    def __iter__(self):
        return iter(self.db.execute(self.sql, self.params))


class _Blobs:
    """The workdir's blob rows by sha256, looked up one at a time."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def get(self, sha: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM blobs WHERE sha256 = ?", (sha,)).fetchone()


class _Snapshot:
    """The workdir as one read transaction, so that every pass of a build sees the same state
    (an ingest may write meanwhile). Rows are streamed in the order the bundle needs them, so
    a build's memory does not grow with the number of actas or inputs."""

    def __init__(self, wd: Workdir, election):
        self.db = wd.db
        self.db.execute("BEGIN")
        try:
            self.db.execute("SELECT count(*) FROM meta").fetchone()    # the read transaction starts here
            prefixes = local_prefixes(r[0] for r in self.db.execute("SELECT DISTINCT locator FROM inputs"))
            self.transcriptions = transcription.published(self.db)  # one row per agreed photo: few
            self.transcription_entries = transcription.published_entries(self.db)  # a few per agreed photo
            self.unread = transcription.unread(self.db)     # photos that gave no acta yet: few
            self.awaiting_transcription = len(self.unread)
            self.provenance = provenance.read(self.db)      # lookups by acta and photo (team ones only)
            self.team_ids = provenance.bundle_ids(self.provenance)
            self.sources = recheck.Sources(self.db, wd.path / "objects", election)
        except BaseException:
            self.db.execute("COMMIT")
            raise
        self.db.create_function("testigo_file_order", 1, lambda loc: natural_key(public_file_name(loc)),
                                deterministic=True)
        self.db.create_function("testigo_scrub", 1, lambda text: scrub(text, prefixes), deterministic=True)
        self.actas = _Rows(self.db, "SELECT * FROM actas")
        # by mesa (the index actas_mesa): the bundle's order within a mesa is settled per mesa
        self.actas_by_mesa = _Rows(self.db, "SELECT * FROM actas ORDER BY centro, mesa")
        self.mesas_read = _Rows(self.db, "SELECT DISTINCT centro, mesa FROM actas")
        self.blobs = _Blobs(self.db)
        self.issues = _Rows(self.db, """
            SELECT id, locator, sha256, outcome, code, testigo_scrub(reason) AS reason, acta_id FROM inputs
            WHERE outcome NOT IN ('decoded', 'transcribed')
            ORDER BY testigo_file_order(locator), sha256, outcome, coalesce(code, ''),
                     coalesce(testigo_scrub(reason), ''), id""")

    def close(self) -> None:
        self.db.execute("COMMIT")


# --- rows ------------------------------------------------------------------------------------------

def _geography(election, read: Iterable = (), printed_electors: dict = {}) -> dict[str, list[dict]]:  # noqa: B006
    """Registry rows, plus flagged rows for the mesas and centres outside it among ``read``, the
    (centro, mesa) of every mesa with an acta, with the electores their printed actas give."""
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
        # a centre's electors are known only when every one of its mesas' is
        c["electores"] = None if c["electores"] is None or m.electores is None else c["electores"] + m.electores
    outside = sorted({(c, m) for c, m in read if (c, m) not in election.mesas})
    for centro, mesa in outside:  # electores unknown; the place from the centre code, where it maps
        mesas.append({"id": mesa_id(centro, mesa), "centro": centro, "mesa": mesa, "electores": printed_electors.get((centro, mesa)), "outside_registry": 1})  # noqa: E501
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
        diff = acta_mod.differences(a["votes"], a["validos"], o["votes"], o["validos"], (a["source"], o["source"]),
                                    a["nulos"], o["nulos"])
        if diff:
            return "disagree", json.dumps(diff, sort_keys=True)
    return "agree", None


def _acta_order(a, images: dict[str, dict]) -> tuple:
    """An acta's place in the bundle (ids follow it): by mesa, source, the published image's
    sha256 (so readers of the bundle can check the order), payload, numbers."""
    published = images[a["image_sha256"]]["sha256"] if a["image_sha256"] else ""
    return (a["centro"], a["mesa"], a["source_kind"], published, a["payload"] or "", a["numbers"],
            a["image_sha256"] or "", a["id"])


def _acta_row(a, bundle_id: int, images: dict[str, dict], election, state: _Snapshot) -> dict:
    """One workdir acta as a bundle row, before its mesa's decisions (counted, cross-check).
    ``votes`` and ``counts`` (parsed) feed the votes tables; they and ``centro``/``mesa`` are not
    actas columns. ``duplicate_of`` is still the workdir id here (see ``_acta_rows``)."""
    team = state.provenance.of_acta.get(a["id"])
    return {
        "id": bundle_id, "mesa_id": mesa_id(a["centro"], a["mesa"]), "source": a["source_kind"],
        "image_sha256": images[a["image_sha256"]]["sha256"] if a["image_sha256"] else None,
        "payload": a["payload"], "validos": a["validos"], "nulos": a["nulos"], "status": a["status"],
        "duplicate_of": a["duplicate_of"],
        "counted": 0, "crosscheck": None, "crosscheck_diff": None,
        "votes": json.loads(a["votes"]), "counts": json.loads(a["counts"]) if a["counts"] else None,
        "centro": a["centro"], "mesa": a["mesa"],
        "outside_registry": int((a["centro"], a["mesa"]) not in election.mesas), "counted_outside": 0,
        "team_bundle_id": state.team_ids.get(team), "provenance": state.provenance.text(team),
    }


def _decide_mesa(mid: str, group: list[dict]) -> None:
    """The counting rule and the cross-checks, over the rows of one mesa (in bundle order)."""
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


def _acta_rows(state: _Snapshot, images: dict[str, dict], election,
               new_id: dict[int, int] | None = None) -> Iterator[dict]:
    """Every acta as a bundle row, mesa by mesa in bundle order (one pass over the workdir).
    ``new_id`` (workdir id -> bundle id) is filled along the way when given."""
    next_id = 1
    for (centro, mesa), acts in itertools.groupby(state.actas_by_mesa, key=lambda a: (a["centro"], a["mesa"])):
        ordered = sorted(acts, key=lambda a: _acta_order(a, images))
        ids = {a["id"]: n for n, a in enumerate(ordered, next_id)}
        next_id += len(ordered)
        group = [_acta_row(a, ids[a["id"]], images, election, state) for a in ordered]
        for r in group:     # a duplicate is of an earlier reading of the same mesa and source
            r["duplicate_of"] = ids.get(r["duplicate_of"]) if r["duplicate_of"] is not None else None
        _decide_mesa(mesa_id(centro, mesa), group)
        if new_id is not None:
            new_id.update(ids)
        yield from group


def _vote_rows(a: dict) -> Iterator[dict]:
    """Votes per ballot card of a QR acta (the payload's counts)."""
    for i, n in enumerate(a["counts"] or (), 1):
        yield {"acta_id": a["id"], "position": i, "votes": n}


def _acta_vote_rows(a: dict, election) -> Iterator[dict]:
    """Votes per candidate of an acta, in the election's candidate order."""
    for c in election.candidates:
        yield {"acta_id": a["id"], "candidate": c.code, "votes": a["votes"].get(c.code, 0)}


def _issue_rows(state: _Snapshot, new_id: dict[int, int], printed: Iterable[dict] = ()) -> Iterator[dict]:
    """Inputs that gave no acta, in file order (names sorted as people do), numbered from 1; then the
    printed actas' disagreements (outcome 'disagree', photo order)."""
    for n, i in enumerate(itertools.chain(state.issues, ({**f, "outcome": "disagree"} for f in printed)), 1):
        yield {"id": n, "outcome": i["outcome"], "code": i["code"], "reason": i["reason"],
               "file": public_file_name(i["locator"]), "original_sha256": i["sha256"],
               "acta_id": new_id.get(i["acta_id"])}


def _transcription_rows(state: _Snapshot, new_id: dict[int, int]) -> Iterator[dict]:
    """Agreed transcriptions by bundle acta id (read once the actas have their ids)."""
    yield from sorted(({**t, "acta_id": new_id[t["acta_id"]]} for t in state.transcriptions),
                      key=lambda t: t["acta_id"])


def _transcription_entry_rows(state: _Snapshot, new_id: dict[int, int]) -> Iterator[dict]:
    """Entries behind the transcribed actas, in bundle acta order, numbered afresh."""
    rows = sorted(({**e, "acta_id": new_id[e["acta_id"]]} for e in state.transcription_entries),
                  key=lambda e: (e["acta_id"], e["entered_at"], e["volunteer"]))
    for i, e in enumerate(rows, 1):
        yield {"id": i, **e}


def _actas_by_team(db_path: Path) -> dict[int, int]:
    """{team_bundles id: how many actas it brought}, read back from the written database."""
    conn = open_readonly(db_path)
    try:
        return dict(conn.execute("SELECT team_bundle_id, count(*) FROM actas WHERE team_bundle_id IS NOT NULL "
                                 "GROUP BY team_bundle_id").fetchall())
    finally:
        conn.close()


def _counts(db_path: Path, tables: dict, state: _Snapshot, election) -> dict:
    """The bundle's counts for datapackage.json and the README, read back from its database."""
    conn = open_readonly(db_path)
    try:
        one = lambda sql: conn.execute(sql).fetchone()[0] or 0  # noqa: E731
        by_status = dict(conn.execute("SELECT status, count(*) FROM actas GROUP BY status").fetchall())
        authority = election.authority_count
        return {"mesas_registry": len(election.mesas),
                "authority_count": authority.to_dict() if authority else None, "actas": one("SELECT count(*) FROM actas"),
                "mesas_counted": one("SELECT count(*) FROM actas WHERE counted = 1"),
                "actas_by_status": {s: by_status.get(s, 0) for s in ("ok", "duplicate", "conflict")},
                "images": one("SELECT count(*) FROM images"), "issues": one("SELECT count(*) FROM issues"),
                "photos_awaiting_transcription": state.awaiting_transcription,
                "outside_registry": {
                    "mesas": sum(m["outside_registry"] for m in tables["mesas"]),
                    "actas": one("SELECT sum(outside_registry) FROM actas"),
                    "counted": one("SELECT sum(counted_outside) FROM actas"),
                    "centros_unplaced": sum(bool(c["outside_registry"] and c["cod_edo"] is None)
                                            for c in tables["centros"])}}
    finally:
        conn.close()

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


# --- build -----------------------------------------------------------------------------------------

def _write_database(db_path: Path, state: _Snapshot, images: PublishedImages, election,
                    progress_factory) -> tuple[Path, dict]:
    """The bundle's SQLite file from the workdir snapshot; returns its path and the tables given
    (the small ones are lists, counted again for the datapackage)."""
    n_actas = state.db.execute("SELECT count(*) FROM actas").fetchone()[0]
    new_id: dict[int, int] = {}
    tables = _geography(election, state.mesas_read, printed_store.outside_electors(state.db, election))
    tables["candidates"] = [{"code": c.code, "name": c.name, "cards": c.cards, "sort_order": i}
                            for i, c in enumerate(election.candidates, 1)]
    tables["cards"] = [{"position": k.position, "candidate": k.candidate, "party": k.party,
                        "owner_status": k.owner_status} for k in election.cards]
    tables["images"] = [images.rows[s] for s in sorted(images.rows)]
    tables["team_bundles"] = provenance.team_rows(state.provenance, state.team_ids)
    # streamed in one pass over the workdir's actas, their votes with them: memory does not grow
    tables["actas"] = counted(_acta_rows(state, images.by_original, election, new_id), progress_factory,
                              n_actas, "database: actas and their votes")
    derived = {"votes": ("actas", _vote_rows), "acta_votes": ("actas", lambda a: _acta_vote_rows(a, election))}
    tables["printed"] = printed_store.bundle_rows(state.db, images.by_original)
    tables["issues"] = _issue_rows(state, new_id, printed_store.finding_rows(state.db, images.by_original, election))
    tables["transcriptions"] = _transcription_rows(state, new_id)
    tables["transcription_entries"] = _transcription_entry_rows(state, new_id)
    write_database(db_path, tables, derived, after=lambda conn: audit_tables.write_audit(conn, election))
    return db_path, tables


def build_bundle(workdir, out, key=None, name: str | None = None, password: str | None = None, *,
                 public_key=None, progress_factory: Callable | None = None,
                 shard_size: int = shards.DEFAULT_MAX_MEMBERS,
                 shard_bytes: int = shards.DEFAULT_MAX_BYTES, unread_photos: bool = False,
                 places=None, redact_members: bool = False) -> BuildReport:
    """Build the bundle for ``workdir`` into the folder ``out`` (see the module docstring).

    ``key``: secret key (base path, K.key) to sign with; ``password`` for it (else the
    TESTIGO_KEY_PASSWORD env var). ``public_key`` (without ``key``): embed that public key but
    do not sign, so anyone can rebuild and compare SHA256SUMS with a published bundle.
    ``progress_factory(n, label=None)`` -> context with ``.update(k)`` (``archive.progress``): one
    bar per stage (photos, each streamed table, hashing).
    ``shard_size`` / ``shard_bytes``: most photos / bytes per zip shard (``archive.shards``);
    they are recorded in datapackage.json, since a rebuild must use the same to compare.
    ``unread_photos``: publish the photos awaiting transcription too (for a bundle sent to the
    team that merges it, which can then read or transcribe them; off by default, since a photo
    nobody could read may not be an acta at all). The images table lists them with no acta, the
    issues table says why; ``unread_photos`` in datapackage.json records the choice.
    ``places`` (``archive.places.Places``): where the bundle is published, listed in the README and
    recorded in datapackage.json (``testigo.places``); the same places give the same bytes.
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
        acta_mod.fill_qr_nulos(wd.db, election)
        name = name or election.id
        if not _NAME.match(name) or name.endswith(".db"):
            raise BundleError(f"bundle name {name!r}: use letters, digits, '.', '_' and '-' only")
        _check_output(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with staged_folder(out, "building") as staging:
            if wd.db.execute("SELECT 1 FROM transcription_entries LIMIT 1").fetchone():
                volunteers.ensure_hash_key(wd.db)    # before the read snapshot: a write
            state = _Snapshot(wd, election)
            try:
                for a in state.actas:      # no stored number is signed unless its source gives it
                    state.sources.check(a)
                images = publish_images(wd, state, election, progress_factory, warnings,
                                        max_members=shard_size, max_bytes=shard_bytes,
                                        unread=state.unread if unread_photos else (), redact=redact_members)
                with ShardWriter(staging, images) as shard_writer:   # zips while the database is written
                    db_path, tables = _write_database(staging / f"{name}.db", state, images, election,
                                                      progress_factory)
                    written = shard_writer.wait(progress_factory)
            finally:
                state.close()
            db_file = db_path.name
            totals = national_totals(db_path)
            outside_totals = national_totals(db_path, "outside_registry_totals")
            info = {
                "key_id": signing.key_id(pk) if pk else None,
                "public_key": signing.public_key_base64(pk) if pk else None,
                "public_key_file": signing.public_key_bytes(pk).decode() if pk else None,
                "counts": _counts(db_path, tables, state, election),
                "totals": {c.code: totals.get(c.code, 0) for c in election.candidates},
                "totals_outside_registry": {c.code: outside_totals.get(c.code, 0) for c in election.candidates},
                "software": _software_versions(),
                "shards": {"max_members": shard_size, "max_bytes": shard_bytes},
                "unread_photos": unread_photos, "redact_members": redact_members,
                "teams": provenance.summary(tables["team_bundles"], _actas_by_team(db_path)),
                "places": places,
            }
            if pk:
                (staging / PUBLIC_KEY).write_bytes(signing.public_key_bytes(pk))
            (staging / LICENSE).write_text(LICENSE_TEXT, encoding="utf-8")
            (staging / README).write_text(readme_text(name, election, db_file, info), encoding="utf-8")
            dp = datapackage(name, election, db_file, db_path.stat().st_size,
                              manifest.sha256_file(db_path), info, written)
            (staging / DATAPACKAGE).write_text(json.dumps(dp, ensure_ascii=False, indent=1) + "\n",
                                               encoding="utf-8")
            # the shards were hashed as they were written (published.write_shards)
            manifest.write_manifest(staging, known={s.path: s.sha256 for s in written})
            if sk is not None:
                signing.sign_file(sk, staging / manifest.MANIFEST, signing.trusted_comment(name, election.id))
            files = [p for p in staging.rglob("*") if p.is_file()]
            report = BuildReport(
                path=out, name=name, database=out / db_file, files=len(files),
                bytes=sum(p.stat().st_size for p in files), actas=info["counts"]["actas"],
                mesas_counted=info["counts"]["mesas_counted"], images=len(images.rows),
                images_stripped=images.stripped, shards=len(written), issues=info["counts"]["issues"],
                totals=info["totals"],
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

