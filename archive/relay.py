"""Relay: another team's signed bundle taken in as a source (``testigo ingest B --trust KEYS``).

A bundle is refused whole, with nothing taken, unless it is signed by a trusted key and every
checksum holds (``verify.verify_bundle``: the same check any downloader runs). Then each of
its actas goes through the classification every photo and sheet row goes through
(``Ingester._add_acta``: duplicate or conflict per mesa and source), as an input of kind
``team-bundle``, and where it came from is kept (``team_bundles``, ``team_actas``; see
``archive.provenance``). The team's QR texts and numbers are parsed and validated again under
this workdir's election; photos are not decoded again (the team's signature vouches for its
reading), but they are opened and checked like any received photo. The photos the team could
not read, when its bundle carries them (``testigo build --unread-photos``), are taken with the
team's reading and join this workdir's transcription queue.

One transaction per bundle: all of it or nothing. ``dry_run`` is the same run rolled back.
"""
from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import minisign
from PIL import Image

from . import acta as acta_mod
from . import image as image_mod
from . import manifest, provenance, shards, signing, trust, untrusted
from .bundle import DATAPACKAGE, _is_previous_bundle
from .database import mesa_id as format_mesa_id
from .errors import PayloadError, RejectedFile
from .ingest import Ingester, Item
from .progress import progress
from .verify import verify_bundle
from .workdir import Workdir, sha256_bytes

KIND = "team-bundle"                              # inputs.kind of a team bundle's actas
SOURCES = ("qr", "csv", "transcribed-photo")       # acta sources a team bundle may carry
OUTCOME_COLUMNS = {"decoded": "accepted", "transcribed": "accepted", "duplicate": "duplicates",
                   "conflict": "conflicts", "invalid": "refused", "rejected-file": "refused"}
COLUMNS = ("accepted", "duplicates", "conflicts", "refused", "known")


def is_bundle(path) -> bool:
    """A testigo bundle folder (SHA256SUMS and a testigo datapackage.json), not a photo folder."""
    p = Path(path)
    return p.is_dir() and (p / manifest.MANIFEST).is_file() and _is_previous_bundle(p)


def image_reader(bundle_dir) -> Callable[[dict], bytes]:
    """``read(images_row) -> bytes`` for a team bundle's photos, checked against their sha256:
    THE one place that reads them (through ``archive.shards``; the shards are indexed on the
    first photo needed, so a bundle with nothing new opens none)."""
    index: list[shards.ShardIndex] = []

    def read(row) -> bytes:
        if not index:
            index.append(shards.open_images(bundle_dir))
        try:
            return index[0].read(row["sha256"])
        except shards.ShardError as e:
            raise RejectedFile("team_image_unreadable", f"{row['path']}: {e}") from None
    return read


@dataclass
class TeamReport:
    """What one team bundle gave: per team (origin first), accepted / duplicates / conflicts /
    refused / known (already taken from an earlier bundle), and the reasons in words."""

    bundle: str
    label: str | None = None
    key_id: str | None = None
    bundle_hash: str | None = None
    refused: list[str] = field(default_factory=list)     # why the whole bundle was refused
    already: bool = False                                 # this exact bundle was taken in before
    teams: dict[str, Counter] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    dry_run: bool = False
    unread: Counter = field(default_factory=Counter)     # its unread photos: taken / already here

    @property
    def ok(self) -> bool:
        return not self.refused

    def total(self) -> Counter:
        out: Counter = Counter()
        for c in self.teams.values():
            out.update(c)
        return out

    def to_dict(self) -> dict:
        return {"bundle": self.bundle, "label": self.label, "key_id": self.key_id,
                "bundle_hash": self.bundle_hash, "refused": self.refused, "already": self.already,
                "dry_run": self.dry_run, "teams": {t: {k: c.get(k, 0) for k in COLUMNS}
                                                   for t, c in self.teams.items()},
                "unread_photos": {k: self.unread.get(k, 0) for k in ("taken", "already here")},
                "reasons": self.reasons}


class _Refused(Exception):
    """The whole bundle is refused (internal: becomes TeamReport.refused)."""


def ingest_bundle(wd: Workdir, path, keys: list[trust.TrustedKey], *, dry_run: bool = False,
                  ingester: Ingester | None = None, progress_factory: Callable | None = None) -> TeamReport:
    """Take in the team bundle at ``path`` if a key in ``keys`` signed it (see the module doc)."""
    root = Path(path)
    rep = TeamReport(str(path), dry_run=dry_run)
    own_transaction = dry_run and not wd.db.in_transaction  # else the caller rolls back at its end
    if own_transaction:
        wd.db.execute("BEGIN IMMEDIATE")
    try:
        _take(wd, root, keys, rep, dry_run, ingester or Ingester(wd), progress_factory)
    except _Refused as e:
        rep.refused = list(e.args[0]) if isinstance(e.args[0], list) else [str(e)]
    finally:
        if own_transaction:
            wd.db.execute("ROLLBACK")
    return rep


def _take(wd: Workdir, root: Path, keys, rep: TeamReport, dry_run: bool, ing: Ingester,
          progress_factory) -> None:
    if not is_bundle(root):
        raise _Refused(f"{root} is not a testigo bundle (it needs {manifest.MANIFEST} and {DATAPACKAGE})")
    # 1. who signed it, and do we trust that key
    try:
        sig, _ = signing.read_signature(root / manifest.SIGNATURE)
    except signing.SignatureInvalid as e:
        raise _Refused(f"{e}; ask the team for a bundle built with `testigo build --key`") from None
    rep.key_id = signing.signature_key_id(sig)
    tk = trust.find(keys, rep.key_id)
    if tk is None:
        trusted = ", ".join(f"{k.label} {k.key_id}" for k in keys)
        raise _Refused(f"signed by key {rep.key_id}, which is not a trusted key (trusted: {trusted}); "
                       "if this team is genuine, confirm its key id with it over a second channel and "
                       "add its public key to the keys file")
    rep.label = tk.label
    # 2. every checksum, the signature, the database: the downloader's check, unchanged
    check = verify_bundle(root, tk.public_key, progress_factory=progress_factory)
    if not check.ok:
        raise _Refused([f"does not verify with {tk.label}'s key {tk.key_id}: {p}" for p in check.problems])
    # 3. read what was verified once, into memory, and check it again (the files may change)
    sums = (root / manifest.MANIFEST).read_bytes()
    sig, sig_raw = signing.read_signature(root / manifest.SIGNATURE)
    try:
        tk.public_key.verify(sums, sig)
    except minisign.Error:
        raise _Refused(f"{manifest.MANIFEST} changed while it was being read; copy the bundle again") from None
    rep.bundle_hash = sha256_bytes(sums)
    entries, _ = manifest.parse_manifest(sums)
    dp = json.loads((root / DATAPACKAGE).read_text(encoding="utf-8"))
    if not isinstance(dp, dict) or not isinstance(dp.get("testigo"), dict):
        raise _Refused(f"its {DATAPACKAGE} is not a testigo datapackage")
    election = dp["testigo"].get("election")
    if election != ing.election_id:
        raise _Refused(f"the bundle is of election {election!r}, this workdir of {ing.election_id!r}")
    db_rel = next((r.get("path") for r in dp.get("resources", []) if r.get("name") == "database"), None)
    if db_rel not in entries:
        raise _Refused(f"{DATAPACKAGE} names no database listed in {manifest.MANIFEST}")
    db_bytes = (root / db_rel).read_bytes()
    if sha256_bytes(db_bytes) != entries[db_rel]:
        raise _Refused(f"{db_rel} changed while it was being read; copy the bundle again")
    db = wd.db
    if db.execute("SELECT 1 FROM team_bundles WHERE bundle_hash = ? AND via IS NULL",
                  (rep.bundle_hash,)).fetchone():
        rep.already = True
        team, budget = _open(db_bytes)
        try:
            rep.teams[tk.label] = Counter(known=team.execute("SELECT count(*) FROM actas").fetchone()[0])
        except sqlite3.DatabaseError as e:
            raise _Refused(str(budget.error(e))) from None
        finally:
            team.close()
        return
    team, budget = _open(db_bytes)
    before = db.execute("SELECT coalesce(max(id), 0) FROM inputs").fetchone()[0]
    outer = not db.in_transaction  # else: part of the caller's dry run, which rolls back at its end
    db.execute("BEGIN IMMEDIATE" if outer else "SAVEPOINT team_bundle")
    try:
        if not dry_run:
            for data in (sums, sig_raw, db_bytes):
                wd.store(data)
        ids = _record_bundles(db, team, tk, rep.bundle_hash, dp.get("name"), sha256_bytes(sig_raw),
                              entries[db_rel])
        read = image_reader(root)
        known = _take_actas(wd, ing, team, read, root, tk, rep, ids, dry_run, progress_factory)
        _take_unread(wd, ing, team, read, root, tk, rep, dry_run)
        _summarize(wd, rep, before, known)
        db.execute("COMMIT" if outer else "RELEASE team_bundle")
    except BaseException as e:
        if outer:
            db.execute("ROLLBACK")
        else:
            db.execute("ROLLBACK TO team_bundle")
            db.execute("RELEASE team_bundle")
        if budget.caused(e):   # the team's queries, stopped
            raise _Refused(str(budget.error(e))) from None
        raise
    finally:
        team.close()


def _open(data: bytes) -> tuple[sqlite3.Connection, untrusted.Budget]:
    """The team's database from the verified bytes (in memory: no second read of the file), its
    schema checked against what testigo writes before any query of ours, every query bounded."""
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    try:
        conn.deserialize(data)
        problems = untrusted.schema_problems(conn, "its database")
    except sqlite3.DatabaseError as e:
        conn.close()
        raise _Refused(f"its database cannot be read ({e})") from None
    if problems:
        conn.close()
        raise _Refused(problems)
    return conn, untrusted.Budget.for_file(conn, len(data), "its database")


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def _record_bundles(db, team, tk: trust.TrustedKey, bundle_hash: str, name: str | None,
                    sig_sha: str, db_sha: str) -> dict[int | None, int]:
    """team_bundles rows for this bundle and those it carried. Returns {its id (None = its own
    inputs): workdir team_bundles id}."""
    cur = db.execute("INSERT INTO team_bundles (via, label, key_id, public_key, bundle_hash, name, "
                     "signature_sha256, database_sha256) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)",
                     (tk.label, tk.key_id, tk.base64, bundle_hash, name, sig_sha, db_sha))
    ids: dict[int | None, int] = {None: cur.lastrowid}
    pending = list(_carried(team).bundles.values())
    while pending:
        ready = [r for r in pending if r["via"] is None or r["via"] in ids]
        if not ready:
            raise _Refused("its team_bundles table has a cycle or a dangling via; the bundle is damaged")
        for r in ready:
            cur = db.execute("INSERT INTO team_bundles (via, label, key_id, public_key, bundle_hash, name) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (ids[r["via"]], r["label"], r["key_id"],
                                                           r["public_key"], r["bundle_hash"], r["name"]))
            ids[r["id"]] = cur.lastrowid
        pending = [r for r in pending if r not in ready]
    return ids


def _acta_of(row, votes: dict[str, int], election) -> tuple[acta_mod.Acta, tuple[str, ...]]:
    """Rebuild and re-validate an acta from the team's row (the team's word is checked, not
    copied). Returns it with ``acta.validate``'s flags (outside_registry)."""
    source = row["source"]
    if source not in SOURCES:
        raise PayloadError("unknown_source", f"source {source!r} is not one this testigo knows ({', '.join(SOURCES)})")
    try:
        centro, mesa = (int(x) for x in str(row["mesa_id"]).split("."))
    except ValueError:
        raise PayloadError("bad_header", f"mesa id {row['mesa_id']!r} is not CENTRO.MM") from None
    if source == "qr":
        a = acta_mod.parse_payload(row["payload"], election)
        if (a.centro, a.mesa) != (centro, mesa) or a.votes != votes or a.validos != row["validos"]:
            raise PayloadError("team_inconsistent", f"the team's numbers for mesa {row['mesa_id']} differ "
                               "from its own QR text")
    else:
        missing = [c.code for c in election.candidates if c.code not in votes]
        if missing:
            raise PayloadError("team_inconsistent", f"the team's row has no votes for {', '.join(missing)}")
        a = acta_mod.Acta(centro, mesa, source, {c.code: votes[c.code] for c in election.candidates},
                          None, row["validos"], row["nulos"], row["payload"], {})
    return a, acta_mod.validate(a, election)


def _carried(team) -> provenance.Provenance:
    """The team bundles the team's own bundle carried (its team_bundles table; none if absent)."""
    if "team_bundles" not in {r[0] for r in team.execute("SELECT name FROM sqlite_master")}:
        return provenance.Provenance()
    return provenance.Provenance(bundles={r["id"]: dict(r) for r in team.execute(
        "SELECT id, label, key_id, public_key, bundle_hash, name, via FROM team_bundles ORDER BY id")})


def _take_actas(wd: Workdir, ing: Ingester, team, read: Callable[[dict], bytes], root: Path,
                tk: trust.TrustedKey, rep: TeamReport, ids: dict, dry_run: bool, progress_factory) -> Counter:
    """Each acta of the team's bundle, in its id order. Returns {team_bundles id: how many were
    already taken from an earlier bundle}."""
    db = wd.db
    known: Counter = Counter()
    votes: dict[int, dict[str, int]] = defaultdict(dict)
    for r in team.execute("SELECT acta_id, candidate, votes FROM acta_votes"):
        votes[r[0]][r[1]] = r[2]
    images = {r["sha256"]: r for r in team.execute("SELECT * FROM images")}
    has_team = "team_bundle_id" in _columns(team, "actas")
    carried = _carried(team)
    # duplicates after the readings they repeat, so the team's own first readings stay first here
    rows = team.execute("SELECT * FROM actas ORDER BY status = 'duplicate', id").fetchall()
    seen: Counter = Counter()
    with progress(progress_factory, len(rows)) as bar:
        for r in rows:
            their = r["team_bundle_id"] if has_team else None
            image = images.get(r["image_sha256"]) if r["image_sha256"] else None
            chain = [b["key_id"] for b in carried.chain(their)] + [tk.key_id]  # origin first, then this bundle
            ident = json.dumps([chain, r["mesa_id"], r["source"],
                                image["original_sha256"] if image else r["image_sha256"], r["payload"],
                                sorted(votes[r["id"]].items()), r["validos"], r["nulos"]])
            seen[ident] += 1
            key = sha256_bytes(f"{ident}#{seen[ident]}".encode())
            bar.update(1)
            if db.execute("SELECT 1 FROM team_actas WHERE acta_key = ?", (key,)).fetchone():
                known[ids[their]] += 1  # taken from an earlier bundle of this team
                continue
            locator = f"{KIND}:{tk.label}:{rep.bundle_hash[:16]}!acta={r['id']}"
            source = str(root)
            try:
                a, flags = _acta_of(r, votes[r["id"]], ing.election)
                if r["image_sha256"] and image is None:
                    raise PayloadError("team_inconsistent", f"its photo {r['image_sha256']} is not in its "
                                       "images table")
                image_sha = _take_image(wd, read, image, dry_run) if image else None
            except (PayloadError, RejectedFile) as e:
                outcome = "rejected-file" if isinstance(e, RejectedFile) else "invalid"
                ing._input(source, locator, rep.bundle_hash, outcome, e.code,
                           f"{tk.label}'s acta {r['id']} (mesa {r['mesa_id']}): {e}", kind=KIND)
            else:
                ing._add_acta(a, source, locator, rep.bundle_hash, image_sha, kind=KIND, flags=flags)
            inp = db.execute("SELECT id, acta_id FROM inputs WHERE locator = ? AND sha256 = ?",
                             (locator, rep.bundle_hash)).fetchone()
            db.execute("INSERT INTO team_actas VALUES (?, ?, ?, ?)", (key, ids[their], inp[0], inp[1]))
    return known


# The team's photos that gave it no acta: published with ``build --unread-photos``, listed in its
# images table with no acta, and in its issues table with why (matched by the original's sha256,
# or by the published one for a photo the team itself took from another team).
_UNREAD = """
SELECT im.sha256, im.original_sha256, im.path, im.size, i.outcome, i.code, i.reason, min(i.id) AS first_issue
FROM images im JOIN issues i ON i.original_sha256 IN (im.original_sha256, im.sha256)
WHERE i.outcome IN ('unreadable', 'invalid')
  AND NOT EXISTS (SELECT 1 FROM actas a WHERE a.image_sha256 = im.sha256)
GROUP BY im.sha256 ORDER BY im.original_sha256"""   # SQLite: the bare columns are min(i.id)'s row


def _take_unread(wd: Workdir, ing: Ingester, team, read: Callable[[dict], bytes], root: Path,
                 tk: trust.TrustedKey, rep: TeamReport, dry_run: bool) -> None:
    """Each photo the team could not read, with its reading (like its actas, not decoded again):
    an input here, in this workdir's transcription queue. A photo already here is not taken again."""
    if "issues" not in {r[0] for r in team.execute("SELECT name FROM sqlite_master")}:
        return
    db = wd.db
    for row in team.execute(_UNREAD).fetchall():
        if _image_here(db, row["original_sha256"], row["sha256"]):
            rep.unread["already here"] += 1
            continue
        locator = f"{KIND}:{tk.label}:{rep.bundle_hash[:16]}!photo={row['original_sha256']}"
        try:
            sha = _store_image(wd, read, row, dry_run)    # not here: checked just above
        except RejectedFile as e:
            ing._input(str(root), locator, rep.bundle_hash, "rejected-file", e.code,
                       f"{tk.label}'s unread photo {row['original_sha256']}: {e}", kind=KIND)
            continue
        reading = {"status": row["outcome"], "qr_text": None, "code": row["code"],
                   "reason": f"{tk.label}: {row['reason']}", "decoder": KIND, "step": None}
        ing.classify_image(Item(str(root), locator, lambda: b""), row["size"], sha, None, reading)
        rep.unread["taken"] += 1
    if rep.unread["taken"]:
        rep.reasons.append(f"{rep.unread['taken']} photo(s) {tk.label} could not read: taken with its reading, "
                           "in this workdir's transcription queue (`testigo transcribe`)")


def _image_here(db, original: str, published: str) -> str | None:
    """The workdir sha256 of a team photo already here (by its original's or its own sha256)."""
    blob = "SELECT sha256 FROM blobs WHERE sha256 = ? AND media_type LIKE 'image/%'"
    for sql, sha in ((blob, original), ("SELECT sha256 FROM team_images WHERE original_sha256 = ? "
                                        "ORDER BY sha256", original), (blob, published)):
        hit = db.execute(sql, (sha,)).fetchone()
        if hit:
            return hit[0]
    return None


def _take_image(wd: Workdir, read: Callable[[dict], bytes], row, dry_run: bool) -> str:
    """The workdir sha256 for a team photo: the same photo already here (by its original's or
    its own sha256) is reused, never stored twice; else the team's published copy is stored."""
    return _image_here(wd.db, row["original_sha256"], row["sha256"]) or _store_image(wd, read, row, dry_run)


def _store_image(wd: Workdir, read: Callable[[dict], bytes], row, dry_run: bool) -> str:
    """Store a team photo not yet here, as the team published it; returns its sha256."""
    db = wd.db
    original, published = row["original_sha256"], row["sha256"]
    data = read(row)   # checked against its sha256 by the shard reader
    with image_mod.open_image(data, row["path"]) as im:
        media_type, (width, height) = Image.MIME[im.format], im.size
    if not dry_run:
        wd.store(data, published)
    db.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?, ?)", (published, len(data), media_type, width, height))
    db.execute("INSERT INTO team_images VALUES (?, ?)", (published, original))
    return published


def _summarize(wd: Workdir, rep: TeamReport, before: int, known: Counter) -> None:
    """Counts per team (origin first) of what this bundle's actas became, and the conflicts and
    refusals in words, read back from the workdir inside the bundle's transaction."""
    db = wd.db
    team_of = provenance.read(db).text
    rep.teams.setdefault(rep.label, Counter())
    for tb, n in known.items():
        rep.teams.setdefault(team_of(tb), Counter())["known"] += n
    rows = db.execute("SELECT i.outcome, i.reason, i.acta_id, t.team_bundle_id, i.code FROM inputs i "
                      "JOIN team_actas t ON t.input_id = i.id WHERE i.id > ? ORDER BY i.id", (before,)).fetchall()
    conflicts, outside = [], 0
    for outcome, reason, acta_id, tb, code in rows:
        outside += code == acta_mod.OUTSIDE_REGISTRY
        rep.teams.setdefault(team_of(tb), Counter())[OUTCOME_COLUMNS.get(outcome, outcome)] += 1
        if outcome in ("invalid", "rejected-file"):
            rep.reasons.append(f"refused: {reason}")
        elif outcome == "conflict":
            mesa = tuple(db.execute("SELECT centro, mesa, source_kind FROM actas WHERE id = ?", (acta_id,)).fetchone())
            if mesa not in conflicts:
                conflicts.append(mesa)
    for centro, mesa, source in conflicts:  # once per mesa, naming every team whose reading disagrees
        teams = sorted({team_of(r[0]) if r[0] is not None else "this workdir's own inputs" for r in db.execute(
            "SELECT p.team_bundle_id FROM actas a LEFT JOIN team_actas p ON p.acta_id = a.id WHERE a.centro = ? "
            "AND a.mesa = ? AND a.source_kind = ? AND a.status = 'conflict'", (centro, mesa, source))})
        rep.reasons.append(f"conflict: mesa {format_mesa_id(centro, mesa)} ({source}): {' / '.join(teams)} read "
                           "different numbers; all readings kept and flagged, none preferred")
    if outside:
        rep.reasons.append(f"{outside} accepted acta(s) name a mesa outside the registry: kept, flagged "
                           "outside_registry, counted apart from the registry totals")


def ingest_bundles(paths: list[str], workdir, keys: list[trust.TrustedKey], *, dry_run: bool = False,
                   election: str | None = None, progress_factory: Callable | None = None) -> list[TeamReport]:
    """Take in several team bundles, in the order given; a refused one never stops the others.

    ``dry_run``: report what each would give, write nothing (not even a new workdir).
    ``progress_factory(n)``: as for ingest, used for each bundle's checksums, then its actas.
    """
    import tempfile
    scratch = None
    if dry_run and not (Path(workdir) / "state.db").exists():
        scratch = tempfile.TemporaryDirectory(prefix="testigo-dry-run-")
        workdir = Path(scratch.name) / "w"
    try:
        with Workdir(workdir, election=election) as wd:
            ing = Ingester(wd, election)
            if dry_run:  # one transaction over all bundles, so each sees what the ones before gave
                wd.db.execute("BEGIN IMMEDIATE")
            try:
                return [ingest_bundle(wd, p, keys, dry_run=dry_run, ingester=ing,
                                      progress_factory=progress_factory) for p in paths]
            finally:
                if dry_run:
                    wd.db.execute("ROLLBACK")
    finally:
        if scratch is not None:
            scratch.cleanup()


def report_lines(rep: TeamReport) -> list[str]:
    """A merge a person can follow: one block per bundle, a line per team, then the reasons."""
    who = f"{rep.label} (key {rep.key_id})" if rep.label else (f"key {rep.key_id}" if rep.key_id else "?")
    head = f"{rep.bundle}: {who}"
    if rep.refused:
        return [f"{head}: REFUSED, nothing taken"] + [f"    - {r}" for r in rep.refused]
    lines = [f"{head}, bundle sha256 {rep.bundle_hash[:16]}…"
             + (": already taken in before, nothing new" if rep.already else "")
             + (" [dry run: nothing written]" if rep.dry_run else "")]
    for team, c in rep.teams.items():
        lines.append(f"    {team:24} " + "  ".join(f"{k} {c.get(k, 0)}" for k in COLUMNS))
    lines += [f"    - {r}" for r in rep.reasons]
    return lines
