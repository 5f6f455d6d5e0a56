"""``testigo verify``: check a bundle as a downloader would, reporting everything found wrong.

Signature of SHA256SUMS, every checksum, no missing or extra file, datapackage.json consistent
with the manifest and the key, and each database's integrity, foreign keys, images table and
totals (each totals table recomputed from the actas it sums).
The photos are members of zip shards (``archive.shards``): each shard is read once, for its
own checksum and for every member's, so a damaged, missing or extra photo is named exactly
(``images/estado-01-1.zip!<sha256>.jpg``) and must match its name and its images row.

Order matters (issue 21): the signature first, then the database's checksum, and only when both
hold is the database opened, its schema checked against what testigo writes, and its queries run
under a budget (``archive.untrusted``): a crafted database is refused, never run.
"""
from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import manifest, mesa_pages, shards, signing, untrusted
from .bundle import DATAPACKAGE, PUBLIC_KEY
from .database import VIEWS
from .totals import totals_differences
from .progress import progress
from .published import IMAGES_DIR


@dataclass
class VerifyReport:
    """Everything found wrong (``problems``) and worth saying (``warnings``); ``ok`` = no problems."""

    path: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    key_id: str | None = None
    trusted_comment: str | None = None
    files_checked: int = 0
    photos: int = 0         # photos found in the shards
    shards: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


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
    listing = manifest.list_files(root)
    dbs = sorted(p.name for p in root.glob("*.db") if p.is_file() and not p.is_symlink())
    # 1. which key
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
    # 2. the signature of SHA256SUMS, before anything it vouches for is read
    signed: dict[str, str] = {}
    if pk is not None:
        rep.key_id = signing.key_id(pk)
        if (root / manifest.MANIFEST).is_file():
            try:
                rep.trusted_comment, sums = signing.verify_file_bytes(pk, root / manifest.MANIFEST)
                signed = manifest.parse_manifest(sums)[0]
            except signing.SignatureInvalid as e:
                rep.problems.append(f"signature: {e}")
    # 3. each database's checksum, then (only if both hold) its own consistency, which is all
    # SQL outside the GIL: on a thread of its own while the other files are hashed. A database
    # whose signature or checksum does not hold is never opened (archive.untrusted).
    copies: dict[str, untrusted.HashedCopy] = {}
    digests: dict[str, str] = {}
    try:
        for db in dbs:
            if db in signed:
                try:
                    copies[db] = untrusted.HashedCopy(root / db)
                    digests[db] = copies[db].sha256()
                except untrusted.UntrustedDatabase as e:     # not a file, unreadable, no room to copy
                    rep.problems.append(str(e))
        return _verify_copies(rep, root, dbs, signed, copies, digests, pk, listing, workers, progress_factory)
    finally:
        for c in copies.values():
            c.close()


def _verify_copies(rep, root, dbs, signed, copies, digests, pk, listing, workers,
                   progress_factory) -> VerifyReport:
    """Steps 3 to 6 of :func:`verify_bundle`, each database queried from the copy that was hashed."""
    opened = [db for db in dbs if db in digests and digests[db] == signed[db]]
    for db in dbs:
        if db not in opened:
            rep.warnings.append(f"{db} was not opened: its signature or its checksum does not hold (a bundle's "
                                "database is read only once both do)")
    pool = ThreadPoolExecutor(1, thread_name_prefix="verify-db")
    consistency = {db_name: pool.submit(_database_consistency, copies[db_name]) for db_name in opened}
    pool.shutdown(wait=False)
    # 4. checksums: every file, each problem reported; a shard's members hashed in the same read
    photos = _Photos(root)
    with progress(progress_factory, len(listing.files)) as bar:
        check = manifest.check_manifest(root, workers, bar.update, listing=listing,
                                        hasher=lambda rel: digests.get(rel) or photos.hash(rel))
    rep.problems += check.problems()
    rep.files_checked = len(check.entries)
    rep.photos, rep.shards = len(photos.index), len(photos.index.shards)
    if check.ignored:
        rep.warnings.append(f"ignored {len(check.ignored)} file(s) under "
                            f"{', '.join(d + '/' for d in manifest.IGNORED_TOP_DIRS)} (BitTorrent padding)")
    # 5. datapackage.json consistent with the files and the key
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
    # 6. each database: integrity, foreign keys, images table vs files
    for db_name in opened:
        rep.problems += _check_database(copies[db_name], check, dp if isinstance(dp, dict) else None, photos,
                                        consistency[db_name].result())
    # dedupe while keeping order (a damaged file can be reported by two checks the same way)
    rep.problems = list(dict.fromkeys(rep.problems))
    return rep


class _Photos:
    """The shards' index, and each member's sha256 taken while the shard is hashed for SHA256SUMS."""

    def __init__(self, root: Path):
        self.root = root
        self.index = shards.open_images(root)
        self.digests: dict[str, str] = {}      # member name -> sha256 of its bytes

    def hash(self, rel: str) -> str:
        if rel not in self.index.shards:
            return manifest.sha256_file(self.root / rel)
        whole, members = shards.digest_shard(self.root / rel, self.index.in_shard(rel))
        self.digests.update(members)
        return whole

    def digest(self, m: shards.Member) -> str:
        if m.name not in self.digests:      # a shard SHA256SUMS does not list: hashed only now
            self.digests.update(shards.digest_shard(m.path, self.index.in_shard(m.shard))[1])
        return self.digests[m.name]


_EXT = {media: ext for ext, media in shards.MEDIA_TYPES.items()}


def _check_images(db_name: str, rows: list, check: manifest.ManifestCheck, photos: _Photos) -> list[str]:
    """The images table against the shards: sha256 = member name = row, nothing missing or extra."""
    problems = list(photos.index.problems)
    index = photos.index
    named = set()
    for sha, rel, shard, size, media_type, *offset in rows:
        name = f"{sha}.{_EXT.get(media_type, '?')}"
        named.add(name)
        if rel != f"{IMAGES_DIR}/{name}":
            problems.append(f"{db_name}: image {sha} has path {rel!r}, not {IMAGES_DIR}/{name}")
        if shard not in check.entries:
            if shard not in check.missing:
                problems.append(f"{db_name}: image {sha} is in shard {shard!r}, which {manifest.MANIFEST} "
                                "does not list")
            continue
        m = index.members.get(name)
        if m is None:
            if (shard in index.shards and shard not in index.unreadable
                    and name not in index.unusable.get(shard, ())):
                problems.append(f"missing member: {shard}!{name} (in the images table of {db_name}, "
                                "not in the shard)")
            continue
        if m.shard != shard:
            problems.append(f"{m.locator}: the images table of {db_name} says it is in {shard}")
        if m.size != size:
            problems.append(f"{m.locator}: {m.size} bytes, but {size} in the images table of {db_name}")
        if offset and m.offset != offset[0]:
            problems.append(f"{m.locator}: its bytes start at {m.offset}, but the images table of {db_name} "
                            f"says {offset[0]} (a range read of the photo would get other bytes)")
        digest = photos.digest(m)
        if digest != sha:
            problems.append(f"damaged member: {m.locator} (its bytes hash to {digest}, not to its name)")
    for m in index:
        if m.name not in named:
            problems.append(f"extra member: {m.locator} (in the shard, not in the images table of {db_name})")
    used = {r[2] for r in rows}
    for rel in sorted(check.entries):
        if rel.startswith(IMAGES_DIR + "/") and rel not in used:
            problems.append(f"{rel} is in the bundle but holds no photo of the images table of {db_name}")
    return problems


@dataclass
class _Consistency:
    """What a database says of itself: its schema, SQLite's integrity and foreign keys, and whether
    its totals tables are the sum of its actas (``error``: it could not be read at all)."""

    integrity: list[str] = field(default_factory=list)
    foreign_keys: list[str] = field(default_factory=list)
    totals: list[str] = field(default_factory=list)
    error: str | None = None
    opened: bool = True
    schema: list[str] = field(default_factory=list)


def _open_bounded(copy: untrusted.HashedCopy) -> tuple[sqlite3.Connection, untrusted.Budget]:
    conn = copy.connect()
    return conn, untrusted.Budget.for_file(conn, copy.size, copy.path.name)


def _database_consistency(copy: untrusted.HashedCopy) -> _Consistency:
    out = _Consistency()
    db_name = copy.path.name
    try:
        conn, budget = _open_bounded(copy)
    except (OSError, sqlite3.Error, untrusted.UntrustedDatabase) as e:
        out.error, out.opened = f"{db_name}: cannot be opened as SQLite ({e})", False
        return out
    try:
        out.schema = untrusted.schema_problems(conn, db_name)
        if out.schema:           # nothing more is run over a schema that is not ours
            out.opened = False
            return out
        res = [r[0] for r in untrusted.fetch_bounded(conn, "PRAGMA integrity_check", limit=100, what=db_name)]
        if res != ["ok"]:
            out.integrity.append(f"{db_name}: PRAGMA integrity_check failed: {'; '.join(map(str, res[:5]))}")
        fk = conn.execute("PRAGMA foreign_key_check").fetchmany(1001)
        if fk:
            count = len(fk) if len(fk) <= 1000 else "over 1000"
            out.foreign_keys.append(f"{db_name}: {count} foreign key violation(s), e.g. {fk[:3]}")
        out.totals = [f"{db_name}: {d}" for d in totals_differences(conn) + mesa_pages.differences(conn, VIEWS)]
    except untrusted.UntrustedDatabase as e:
        out.error = str(e)
    except sqlite3.DatabaseError as e:
        out.error = str(budget.error(e))
    finally:
        conn.close()
    return out


def _check_database(copy: untrusted.HashedCopy, check: manifest.ManifestCheck, dp: dict | None,
                    photos: _Photos, consistency: _Consistency) -> list[str]:
    db_name = copy.path.name
    if consistency.schema:
        return consistency.schema
    if not consistency.opened:
        return [consistency.error]
    problems = consistency.integrity + consistency.foreign_keys
    try:
        conn, budget = _open_bounded(copy)
    except (OSError, sqlite3.Error, untrusted.UntrustedDatabase) as e:
        return [f"{db_name}: cannot be opened as SQLite ({e})"]
    # no more rows than the shards hold photos, and then some (each extra row is a problem named)
    limit = 2 * len(photos.index) + 10_000
    try:
        rows = untrusted.fetch_bounded(conn, "SELECT sha256, path, shard, size, media_type, offset FROM images",
                                       limit=limit, what=f"{db_name} images")
        problems += _check_images(db_name, rows, check, photos)
        meta = (dp or {}).get("testigo") or {}
        if isinstance(meta.get("totals"), dict):
            got = {r[0]: r[1] for r in untrusted.fetch_bounded(
                conn, "SELECT candidate, votes FROM totals_nacional", limit=1000, what=f"{db_name} totals_nacional")}
            want = {k: v for k, v in meta["totals"].items() if v}
            if {k: v for k, v in got.items() if v} != want:
                problems.append(f"{db_name}: national totals differ from those in {DATAPACKAGE}")
        problems += consistency.totals
    except untrusted.UntrustedDatabase as e:
        problems.append(str(e))
    except sqlite3.DatabaseError as e:
        problems.append(str(budget.error(e)))
    finally:
        conn.close()
    if consistency.error:
        problems.append(consistency.error)
    return problems


def check_before_opening(path, pubkey=None) -> list[str]:
    """What must hold before a bundle's database is opened by anything (``testigo check --bundle``,
    which reads only the database): the signature of SHA256SUMS (``pubkey``, else the key shipped
    inside), each database's checksum, then its schema. Returns the problems (empty: open it)."""
    root = Path(path)
    dbs = sorted(p.name for p in root.glob("*.db"))
    if not dbs:
        return [f"{root} holds no .db file; is it a bundle made by `testigo build`?"]
    pk_source = pubkey if pubkey is not None else root / PUBLIC_KEY
    try:
        pk = signing.load_public_key(pk_source)
        sums = signing.verify_file_bytes(pk, root / manifest.MANIFEST)[1]
    except signing.SigningError as e:
        return [f"signature: {e}"]
    except OSError as e:
        return [f"{manifest.MANIFEST} cannot be read ({e})"]
    signed = manifest.parse_manifest(sums)[0]
    problems = []
    for db in dbs:
        path = root / db
        if path.is_symlink() or not path.is_file():
            problems.append(f"not a regular file: {db} (a bundle holds plain files only)")
            continue
        if db not in signed:
            problems.append(f"extra file: {db} (in the bundle, not listed in {manifest.MANIFEST})")
            continue
        try:
            with untrusted.HashedCopy(path) as copy:     # the schema read from the bytes hashed
                if copy.sha256() != signed[db]:
                    problems.append(f"checksum mismatch: {db} (its content is not what {manifest.MANIFEST} lists)")
                    continue
                conn = copy.connect()
                try:
                    problems += untrusted.schema_problems(conn, db)
                finally:
                    conn.close()
        except untrusted.UntrustedDatabase as e:
            problems.append(str(e))
        except sqlite3.Error as e:
            problems.append(f"{db}: not a valid SQLite database ({e})")
    return problems
