"""The workdir: content-addressed originals plus a SQLite state database.

Everything ingest learns is kept here so that an interrupted run resumes, a re-run is a
no-op, and building a bundle never needs to decode an image again.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from .errors import WorkdirError

SCHEMA_VERSION = 1
STATE_DB = "state.db"

OUTCOMES = ("decoded", "transcribed", "duplicate", "conflict", "unreadable", "invalid", "rejected-file")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- one row per distinct file content ever seen (images, zips, sheets)
CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    media_type TEXT,            -- image/jpeg, image/png, text/csv, or NULL when rejected
    width INTEGER, height INTEGER
);
-- the decode result of an image content: decoded once, reused forever
CREATE TABLE IF NOT EXISTS readings (
    sha256 TEXT PRIMARY KEY REFERENCES blobs(sha256),
    status TEXT NOT NULL,       -- ok / unreadable / invalid / rejected
    qr_text TEXT, code TEXT, reason TEXT, decoder TEXT, step TEXT
);
-- one row per input (file, zip member, sheet row): exactly one outcome each
CREATE TABLE IF NOT EXISTS inputs (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,       -- what the user named on the command line
    locator TEXT NOT NULL,      -- path, zip!member or sheet#row
    sha256 TEXT NOT NULL,       -- content of the file (for sheet rows: of the sheet)
    kind TEXT NOT NULL,         -- image / sheet-row / file / transcription
    outcome TEXT NOT NULL,
    code TEXT, reason TEXT,
    acta_id INTEGER REFERENCES actas(id),
    UNIQUE (locator, sha256)
);
CREATE INDEX IF NOT EXISTS inputs_sha256 ON inputs(sha256);
-- one row per accepted reading of a mesa (QR or transcribed); never overwritten
CREATE TABLE IF NOT EXISTS actas (
    id INTEGER PRIMARY KEY,
    centro INTEGER NOT NULL, mesa INTEGER NOT NULL,
    source_kind TEXT NOT NULL,  -- qr / csv / transcribed-photo
    image_sha256 TEXT REFERENCES blobs(sha256),
    payload TEXT,
    counts TEXT,                -- JSON list per ballot card (QR only)
    votes TEXT NOT NULL,        -- JSON {candidate: votes}
    validos INTEGER NOT NULL, nulos INTEGER,
    numbers TEXT NOT NULL,      -- canonical numbers: equal => duplicate, different => conflict
    status TEXT NOT NULL,       -- ok / duplicate / conflict
    duplicate_of INTEGER REFERENCES actas(id),
    extra TEXT
);
CREATE INDEX IF NOT EXISTS actas_mesa ON actas(centro, mesa, source_kind);
CREATE INDEX IF NOT EXISTS actas_image ON actas(image_sha256);   -- has this photo an acta already?
-- sheets fully ingested (the last batch of a sheet writes its row here)
CREATE TABLE IF NOT EXISTS sheets (
    sha256 TEXT PRIMARY KEY, locator TEXT NOT NULL, rows INTEGER NOT NULL
);
-- sheets being ingested, batch by batch (archive/sheet.py): how far each got, and how it was read
CREATE TABLE IF NOT EXISTS sheet_progress (
    sha256 TEXT PRIMARY KEY, locator TEXT NOT NULL,
    encoding TEXT NOT NULL,     -- utf-8-sig / utf-8 / cp1252 / latin-1: the first that read it whole
    header TEXT NOT NULL,       -- its columns as read
    rows_done INTEGER NOT NULL  -- rows committed so far (a killed ingest resumes after them)
);
-- photos linked to sheet rows by name (archive/photolink.py): a photo whose file name is the
-- basename of a row's URL (as on the citizens' site) is that row's mesa's photo
CREATE TABLE IF NOT EXISTS photo_names (
    name TEXT NOT NULL, sha256 TEXT NOT NULL REFERENCES blobs(sha256), PRIMARY KEY (name, sha256)
);
CREATE TABLE IF NOT EXISTS sheet_urls (
    name TEXT NOT NULL, acta_id INTEGER NOT NULL REFERENCES actas(id), PRIMARY KEY (name, acta_id)
);
-- transcription by volunteers (archive/transcription.py): who typed what, when, for which photo
CREATE TABLE IF NOT EXISTS volunteers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,         -- as typed; private: never published, never shown to others
    name_key TEXT NOT NULL UNIQUE,  -- the name folded (case, accents, spaces): one person, one volunteer
    alias TEXT,                 -- the public alias the volunteer chose; NULL = anonymous
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transcription_entries (
    id INTEGER PRIMARY KEY,
    image_sha256 TEXT NOT NULL REFERENCES blobs(sha256),
    volunteer_id INTEGER NOT NULL REFERENCES volunteers(id),
    entered_at TEXT NOT NULL,   -- UTC, ISO 8601
    illegible INTEGER NOT NULL, -- 1: "cannot be read" (no numbers)
    centro INTEGER, mesa INTEGER, votes TEXT, validos INTEGER, nulos INTEGER,
    value TEXT NOT NULL,        -- mesa + canonical numbers (or 'illegible'): entries agree when equal
    after_decision INTEGER NOT NULL,  -- 1: saved after the photo was decided (kept, not counted)
    UNIQUE (image_sha256, volunteer_id)
);
CREATE TABLE IF NOT EXISTS transcription_decisions (
    image_sha256 TEXT PRIMARY KEY REFERENCES blobs(sha256),
    decision TEXT NOT NULL,     -- agreed / illegible / unresolved
    value TEXT,                 -- the value two entries agreed on
    entries INTEGER NOT NULL,   -- entries made up to the decision
    acta_id INTEGER REFERENCES actas(id),
    decided_at TEXT NOT NULL
);
-- invitations, set-asides, voided entries, known answers, the coordinator's desk
-- (archive/volunteers.py, archive/known_answers.py, archive/consensus.py)
CREATE TABLE IF NOT EXISTS invitations (   -- a volunteer who enters by a personal link
    volunteer_id INTEGER PRIMARY KEY REFERENCES volunteers(id),
    token_sha256 TEXT NOT NULL UNIQUE,      -- the link's secret, hashed: state.db does not hold links
    created_at TEXT NOT NULL,
    revoked_at TEXT                         -- set: the link does nothing more
);
CREATE TABLE IF NOT EXISTS volunteers_set_aside (   -- entries no longer count (never told)
    volunteer_id INTEGER PRIMARY KEY REFERENCES volunteers(id),
    reason TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS voided_entries (  -- kept, but they decide nothing
    entry_id INTEGER PRIMARY KEY REFERENCES transcription_entries(id),
    reason TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS known_handouts (  -- photos with known numbers given to a volunteer
    volunteer_id INTEGER NOT NULL REFERENCES volunteers(id),
    image_sha256 TEXT NOT NULL REFERENCES blobs(sha256),
    at TEXT NOT NULL,
    PRIMARY KEY (volunteer_id, image_sha256)
);
CREATE TABLE IF NOT EXISTS known_answer_entries (  -- an entry on such a photo: scores, decides nothing
    entry_id INTEGER PRIMARY KEY REFERENCES transcription_entries(id),
    expected TEXT NOT NULL, correct INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS transcription_reviews (  -- the coordinator's comments and decisions
    id INTEGER PRIMARY KEY,
    image_sha256 TEXT NOT NULL REFERENCES blobs(sha256),
    at TEXT NOT NULL,
    action TEXT NOT NULL,       -- comment / accept / not_an_acta / reopen / set_aside
    entry_id INTEGER REFERENCES transcription_entries(id),
    comment TEXT
);
CREATE INDEX IF NOT EXISTS transcription_entries_volunteer ON transcription_entries(volunteer_id);
-- the printed acta read by OCR (archive/printed_store.py): once per image content
CREATE TABLE IF NOT EXISTS printed_readings (
    sha256 TEXT PRIMARY KEY REFERENCES blobs(sha256),
    status TEXT NOT NULL,       -- ok / failed
    engine TEXT,                -- e.g. "tesseract 5.3.0 spa"
    reading TEXT,               -- JSON of archive.printed.Printed (NULL when failed)
    error TEXT
);
-- relay (archive/relay.py): other teams' signed bundles taken in with `ingest --trust`.
-- via: the bundle that carried this one (NULL: ingested here); a carried bundle's details
-- are as its carrier recorded them. Direct ones keep their SHA256SUMS, signature and database
-- in objects/.
CREATE TABLE IF NOT EXISTS team_bundles (
    id INTEGER PRIMARY KEY,
    via INTEGER REFERENCES team_bundles(id),
    label TEXT NOT NULL, key_id TEXT NOT NULL, public_key TEXT,
    bundle_hash TEXT NOT NULL,  -- sha256 of its SHA256SUMS
    name TEXT,                  -- its bundle name
    signature_sha256 TEXT, database_sha256 TEXT
);
CREATE INDEX IF NOT EXISTS team_bundles_hash ON team_bundles(bundle_hash);
-- every acta of a team bundle that was taken (accepted or refused), by its identity at its
-- origin, so a newer bundle of the same team adds only what is new
CREATE TABLE IF NOT EXISTS team_actas (
    acta_key TEXT PRIMARY KEY,
    team_bundle_id INTEGER NOT NULL REFERENCES team_bundles(id),
    input_id INTEGER NOT NULL REFERENCES inputs(id),
    acta_id INTEGER REFERENCES actas(id)   -- NULL when refused
);
CREATE INDEX IF NOT EXISTS team_actas_acta ON team_actas(acta_id);
-- team photos are stored as the team published them (already stripped): the original's sha256
CREATE TABLE IF NOT EXISTS team_images (
    sha256 TEXT PRIMARY KEY REFERENCES blobs(sha256),
    original_sha256 TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS team_images_original ON team_images(original_sha256);
"""


def busy_timeout() -> float:
    """Seconds a writer waits for another to let go of the workdir before it gives up with one
    line (TESTIGO_BUSY_TIMEOUT; 30 by default)."""
    try:
        return max(0.0, float(os.environ.get("TESTIGO_BUSY_TIMEOUT", "30")))
    except ValueError:
        return 30.0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this machine): its temporary files are still being written."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:       # someone else's process: alive
        return True
    try:                          # a zombie (dead, not yet reaped) is not alive
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:][:1] != "Z"
    except (OSError, ValueError):
        return True


def sweep_temporaries(objects: Path) -> int:
    """Remove the ``<sha>.tmp<pid>`` files whose writer is dead (killed mid-write); a file another
    ingest on this workdir is still writing is left to it. Returns how many were removed."""
    removed = 0
    for stale in objects.glob("*/*.tmp*"):
        owner = stale.name.rpartition(".tmp")[2]
        if owner.isdigit() and pid_alive(int(owner)):
            continue
        stale.unlink(missing_ok=True)
        removed += 1
    return removed


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Workdir:
    """A testigo workdir: ``objects/`` by sha256 and ``state.db``."""

    def __init__(self, path: str | os.PathLike, create: bool = True, election: str | None = None):
        self.path = Path(path)
        db_path = self.path / STATE_DB
        if not db_path.exists() and not create:
            raise WorkdirError(f"{self.path} is not a testigo workdir (no {STATE_DB}); "
                               "run `testigo ingest SOURCE --workdir DIR` first")
        if self.path.is_dir() and not os.access(self.path, os.W_OK):
            raise WorkdirError(f"{self.path} is read-only (a read-only disk or folder, or another user's): "
                               "testigo writes to its workdir even to read it; copy the workdir somewhere "
                               "writable, or run testigo as the user who owns it")
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "objects").mkdir(exist_ok=True)
        if create:
            sweep_temporaries(self.path / "objects")
        # several writers (ingest, volunteers transcribing) wait for each other rather than fail
        self.db = sqlite3.connect(db_path, isolation_level=None, timeout=busy_timeout())
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) != SCHEMA_VERSION:
            raise WorkdirError(f"{self.path} was made by another testigo version "
                               f"(schema {version}, this one reads {SCHEMA_VERSION})")
        stored = self.get_meta("election")
        if stored is None and election:
            self.set_meta("election", election)
        elif election and stored and stored != election:
            raise WorkdirError(f"{self.path} holds election {stored!r}, not {election!r}; "
                               "use one workdir per election")

    @property
    def election_id(self) -> str | None:
        return self.get_meta("election")

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def object_path(self, sha256: str) -> Path:
        return self.path / "objects" / sha256[:2] / sha256

    def store(self, data: bytes, sha256: str | None = None) -> str:
        """Store bytes by content hash (atomic: temp file + rename). Returns the sha256."""
        sha256 = sha256 or sha256_bytes(data)
        dest = self.object_path(sha256)
        if not dest.exists():
            dest.parent.mkdir(exist_ok=True)
            tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, dest)
            except BaseException:       # disk full, killed: no half-written file left behind
                tmp.unlink(missing_ok=True)
                raise
        return sha256

    def store_file(self, path: Path) -> tuple[str, int]:
        """Store a file by content hash, streamed (a sheet may be larger than memory).
        Returns its sha256 and size."""
        h, size = hashlib.sha256(), 0
        tmp = self.path / "objects" / "incoming" / f"sheet.tmp{os.getpid()}"
        tmp.parent.mkdir(exist_ok=True)
        with open(path, "rb") as src, open(tmp, "wb") as out:
            while chunk := src.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        sha256 = h.hexdigest()
        dest = self.object_path(sha256)
        if dest.exists():
            tmp.unlink()
        else:
            dest.parent.mkdir(exist_ok=True)
            os.replace(tmp, dest)
        return sha256, size

    def outcome_counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT outcome, count(*) FROM inputs GROUP BY outcome").fetchall()
        return {r[0]: r[1] for r in rows}

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
