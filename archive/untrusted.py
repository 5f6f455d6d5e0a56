"""A bundle database not yet trusted: its schema checked, every query over it bounded.

A bundle comes from elsewhere (a team, a torrent, a USB stick). SQLite runs whatever its schema
says: a VIEW named ``images`` over an endless recursive CTE grows a reader's memory without end,
a trigger or a generated column runs code on reads. So a bundle's database is opened only after
its signature and checksum hold (the callers: ``archive.verify``, ``archive.relay``, ``testigo
check --bundle``), and then, before any query of ours, its schema must be exactly what this
testigo writes (:func:`schema_problems`: tables and indexes of ``archive.database``, no view, no
trigger, nothing else). Every query after that runs under a :class:`Budget` (a progress handler
with a deadline, a cap on the length of any value), and rows are read with limits.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sqlite3
import stat
import tempfile
import time
import urllib.request
from pathlib import Path

from .errors import TestigoError

# The longest value any query may produce (a payload, a provenance list): far above what a
# bundle holds, far below what would hurt. SQLite checks it on every value it reads or makes.
MAX_VALUE_BYTES = 16 << 20
# Seconds any one database's checks may take, plus this many per MiB of the file: a national
# bundle's checks take seconds; a crafted one is stopped rather than run for ever.
BASE_SECONDS = 120.0
SECONDS_PER_MIB = 0.5
_STEPS = 10_000   # VM instructions between two looks at the clock (about a millisecond)
_GAP = 0.05       # at most this much of the time between two looks is counted as SQLite's


class UntrustedDatabase(TestigoError):
    """A bundle's database is not what testigo writes, or a query over it ran out of its budget."""


class HashedCopy:
    """A bundle's database read once: hashed and copied in the same pass, queried from the copy.

    Hashing a file by name and then letting SQLite open that name leaves a gap: a file swapped in
    under the name in between would be read, never hashed. SQLite cannot be handed the descriptor
    the hash was read through (it resolves ``/proc/self/fd/N`` back to a name), so the bytes
    hashed are written to a private folder as they are read, and SQLite opens that copy.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.digest: str | None = None
        self._dir: str | None = None
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            raise UntrustedDatabase(f"{self.path.name}: cannot be opened ({e.strerror or e})") from None
        if not stat.S_ISREG(os.fstat(self.fd).st_mode):
            os.close(self.fd)
            raise UntrustedDatabase(f"not a regular file: {self.path.name} (a bundle holds plain files only)")
        self.size = os.fstat(self.fd).st_size

    @property
    def copy(self) -> Path:
        return Path(self._dir or "") / "copy.db"

    def sha256(self, block_size: int = 1 << 20) -> str:
        """The sha256 of the bytes read, which are the bytes :meth:`connect` will query."""
        if self.digest is None:
            h = hashlib.sha256()
            try:
                self._dir = tempfile.mkdtemp(prefix="testigo-copy-")
                with open(self.copy, "xb") as out:
                    while chunk := os.read(self.fd, block_size):
                        h.update(chunk)
                        out.write(chunk)
                os.close(self.fd)          # the original is not read again
                self.fd = -1
            except OSError as e:
                self.close()
                raise UntrustedDatabase(f"{self.path.name}: could not be copied aside to be read safely "
                                        f"({e.strerror or e}); free some space in {tempfile.gettempdir()} "
                                        "(or set TMPDIR) and try again") from None
            self.size, self.digest = self.copy.stat().st_size, h.hexdigest()
        return self.digest

    def connect(self) -> sqlite3.Connection:
        """A read-only connection to the bytes hashed (never writes beside the file)."""
        if self.digest is None:
            raise UntrustedDatabase(f"{self.path.name}: hashed before it is opened, never the other way round")
        return sqlite3.connect("file:" + urllib.request.pathname2url(str(self.copy)) + "?mode=ro&immutable=1",
                               uri=True)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "HashedCopy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@functools.lru_cache(maxsize=1)
def expected_schema() -> frozenset[tuple[str, str, str, str | None]]:
    """(type, name, tbl_name, sql) of every object :func:`archive.database.write_database` makes
    (written once, empty, into a scratch file: the schema comes from the one code that writes it)."""
    from .audit_tables import write_empty
    from .database import TABLES, write_database
    with tempfile.TemporaryDirectory(prefix="testigo-schema-") as tmp:
        path = Path(tmp) / "empty.db"
        write_database(path, {name: [] for name in TABLES}, after=write_empty)
        conn = sqlite3.connect(path)
        try:
            return frozenset(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
        finally:
            conn.close()


def schema_problems(conn: sqlite3.Connection, db_name: str, limit: int = 10_000) -> list[str]:
    """Every object of the database that this testigo does not write, named (empty: the schema is
    ours). Reading ``sqlite_master`` runs nothing the schema defines; it is read with a row limit."""
    expected = expected_schema()
    by_name = {name: (kind, sql) for kind, name, _, sql in expected}
    problems = []
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master LIMIT ?", (limit + 1,)).fetchall()
    if len(rows) > limit:
        return [f"{db_name}: more than {limit} schema objects; testigo writes {len(expected)}"]
    for kind, name, tbl, sql in rows:
        if (kind, name, tbl, sql) in expected:
            continue
        if kind in ("view", "trigger"):
            problems.append(f"{db_name}: it holds a {kind} {name!r}; testigo writes no {kind}s (a {kind} "
                            "runs code whenever the database is read): refused, nothing of it was run")
        elif name in by_name:
            problems.append(f"{db_name}: {kind} {name!r} is not defined as testigo defines it "
                            f"(another version, or an edited schema)")
        else:
            problems.append(f"{db_name}: {kind} {name!r} is not one testigo writes")
    return problems


class Budget:
    """A cap on the time SQLite spends on a connection's queries (its progress handler; the time the
    caller spends between rows is not counted, so a long relay is not cut short), and on the length
    of any value; a query past it fails, and :meth:`error` says why in words."""

    def __init__(self, conn: sqlite3.Connection, seconds: float, what: str):
        self.conn, self.seconds, self.what = conn, seconds, what
        self.used = 0.0
        self.last = time.monotonic()
        self.expired = False
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.set_progress_handler(self._tick, _STEPS)

    @classmethod
    def for_file(cls, conn: sqlite3.Connection, size: int, what: str) -> "Budget":
        return cls(conn, BASE_SECONDS + SECONDS_PER_MIB * size / 2**20, what)

    def _tick(self) -> int:
        now = time.monotonic()
        self.used += min(now - self.last, _GAP)   # a longer gap was the caller's time between rows
        self.last = now
        if self.used > self.seconds:
            self.expired = True
            return 1          # SQLite stops the statement: "interrupted"
        return 0

    def caused(self, e: BaseException) -> bool:
        """Whether ``e`` is this budget's doing (time spent, or a value too long)."""
        return isinstance(e, sqlite3.Error) and (self.expired or "too big" in str(e))

    def error(self, e: sqlite3.Error) -> TestigoError:
        """The exception to raise for ``e`` met under this budget."""
        if self.expired:
            return UntrustedDatabase(f"{self.what}: its queries took SQLite over {self.seconds:.0f} s and were "
                                     "stopped; a database testigo writes is read in far less: refused")
        if "too big" in str(e):
            return UntrustedDatabase(f"{self.what}: it holds a value longer than {MAX_VALUE_BYTES >> 20} MiB, "
                                     "which testigo never writes: refused")
        return UntrustedDatabase(f"{self.what}: not a valid SQLite database ({e})")


def fetch_bounded(conn: sqlite3.Connection, sql: str, params=(), *, limit: int, what: str) -> list:
    """The rows of ``sql``, refusing more than ``limit`` of them (never more read into memory)."""
    cur = conn.execute(sql, params)
    rows = cur.fetchmany(limit + 1)
    if len(rows) > limit:
        cur.close()
        raise UntrustedDatabase(f"{what}: more than {limit} rows, more than the bundle can hold: refused")
    return rows
