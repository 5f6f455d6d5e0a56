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
import sqlite3
import tempfile
import time
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
