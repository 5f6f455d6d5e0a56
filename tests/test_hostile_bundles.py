"""Hostile bundles (issue 21, item 1): a bundle's signature and checksums are checked before SQLite
reads a byte of its database, its schema must be what testigo writes, and every query over it is
bounded. Run on the real commands (verify, ingest --trust, check --bundle, fetch's verification),
each in a process of its own whose peak memory and time are measured."""
import hashlib
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archive import untrusted
from conftest import KEY_PASSWORD
from test_verify import reseal

TESTIGO = str(Path(sys.executable).with_name("testigo"))
# A VIEW named images over an endless recursive CTE: reading it grows memory without end
# (2.8 GB in 12-18 s on main at e89dde9, until the machine killed the reader).
ENDLESS_VIEW = ("CREATE VIEW images AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
                "SELECT printf('%064d', n) AS sha256, printf('%064d', n) AS original_sha256, "
                "'images/x.jpg' AS path, 'images/x.zip' AS shard, 'image/jpeg' AS media_type, n AS size, "
                "NULL AS width, NULL AS height, 1 AS orientation, zeroblob(1000) AS pad FROM r")
MAX_SECONDS = 30
MAX_RSS_MB = 400          # a testigo command over a small bundle; the attack took 2,800


def edit_database(root: Path, *statements: str) -> None:
    db = sqlite3.connect(root / "ve-2024.db")
    db.execute("PRAGMA foreign_keys = OFF")
    for sql in statements:
        db.execute(sql)
    db.commit()
    db.execute("VACUUM")
    db.close()


def rewrite_sums_keep_old_signature(root: Path) -> None:
    """SHA256SUMS made to match the edited database; the team's old signature left beside it."""
    sums = root / "SHA256SUMS"
    lines = []
    for line in sums.read_text().splitlines():
        digest, rel = line.split("  ", 1)
        if rel == "ve-2024.db":
            digest = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        lines.append(f"{digest}  {rel}")
    sums.write_text("\n".join(lines) + "\n")


def run_measured(*args, cwd=None) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a command in a process of its own; (result, seconds, its peak RSS in MB). An address
    space limit keeps a regression from taking the machine down with it."""
    probe = ("import resource, subprocess, sys, time\n"
             "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
             "t = time.monotonic()\n"
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=120)\n"
             "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr)\n"
             "print('MEASURED', time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
             " file=sys.stderr)\n"
             "sys.exit(r.returncode)\n")
    r = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=cwd,
                       timeout=180)
    last = r.stderr.strip().splitlines()[-1].split()
    assert last[0] == "MEASURED", r.stderr
    r.stderr = "\n".join(r.stderr.strip().splitlines()[:-1])
    return r, float(last[1]), int(last[2]) / 1024


def assert_refused_quickly(r, seconds, rss, *words):
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "Traceback" not in out, out
    for w in words:
        assert w in out, out
    assert seconds < MAX_SECONDS and rss < MAX_RSS_MB, (seconds, rss)


@pytest.fixture
def keys_file(tmp_path, signing_key):
    path = tmp_path / "equipos.keys"
    path.write_text(f"equipo  {signing_key.public.read_text().splitlines()[1]}\n")
    return path


@pytest.fixture
def endless(bundle_copy):
    """The attack of issue 21: the VIEW, and the trusted team's old (now invalid) signature."""
    edit_database(bundle_copy, "DROP TABLE images", ENDLESS_VIEW)
    rewrite_sums_keep_old_signature(bundle_copy)
    return bundle_copy


def test_a_view_with_an_old_signature_is_refused_before_sqlite_reads_it(endless, signing_key, keys_file,
                                                                         photo_workdir, copy_tree):
    r, s, rss = run_measured(TESTIGO, "verify", str(endless), "--pubkey", str(signing_key.public))
    assert_refused_quickly(r, s, rss, "signature: SHA256SUMS.minisig does not verify",
                           "ve-2024.db was not opened")
    wd = copy_tree(photo_workdir.path)
    before = sqlite3.connect(wd / "state.db").execute("SELECT count(*) FROM inputs").fetchone()
    r, s, rss = run_measured(TESTIGO, "ingest", str(endless), "--workdir", str(wd), "--trust", str(keys_file))
    assert_refused_quickly(r, s, rss, "REFUSED, nothing taken", "signature")
    assert sqlite3.connect(wd / "state.db").execute("SELECT count(*) FROM inputs").fetchone() == before
    photo = next(p for p in (photo_workdir.inbox / "telefono de ana" / "fotos").glob("*.jpg"))
    r, s, rss = run_measured(TESTIGO, "check", str(photo), "--bundle", str(endless))
    assert_refused_quickly(r, s, rss, "its database was not opened", "signature")


def test_a_view_signed_by_the_trusted_key_is_refused_by_its_schema(endless, signing_key, keys_file,
                                                                    photo_workdir, copy_tree):
    # the worst case: the team's own key signed it (stolen key, or a broken build)
    reseal(endless, signing_key, KEY_PASSWORD)
    refusal = "it holds a view 'images'; testigo writes no views"
    r, s, rss = run_measured(TESTIGO, "verify", str(endless), "--pubkey", str(signing_key.public))
    assert_refused_quickly(r, s, rss, refusal)
    r, s, rss = run_measured(TESTIGO, "ingest", str(endless), "--workdir", str(copy_tree(photo_workdir.path)),
                             "--trust", str(keys_file))
    assert_refused_quickly(r, s, rss, refusal, "REFUSED, nothing taken")
    photo = next(p for p in (photo_workdir.inbox / "telefono de ana" / "fotos").glob("*.jpg"))
    r, s, rss = run_measured(TESTIGO, "check", str(photo), "--bundle", str(endless))
    assert_refused_quickly(r, s, rss, refusal)
    # fetch verifies what it downloaded with the same check (publish.fetch.verify_download)
    from publish.torrent.fetch import verify_download
    t = time.monotonic()
    rep = verify_download(endless, str(signing_key.public))
    assert not rep.ok and any(refusal in p for p in rep.problems) and time.monotonic() - t < MAX_SECONDS


@pytest.mark.parametrize("edit, named", [
    ("CREATE TRIGGER t AFTER INSERT ON actas BEGIN DELETE FROM actas; END", "a trigger 't'"),
    ("CREATE TABLE notes (x)", "table 'notes' is not one testigo writes"),
    ("CREATE INDEX idx_sneaky ON actas (length(zeroblob(1000000000)))", "index 'idx_sneaky'"),
])
def test_any_object_testigo_does_not_write_is_named(bundle_copy, signing_key, edit, named):
    edit_database(bundle_copy, edit)
    reseal(bundle_copy, signing_key, KEY_PASSWORD)
    from archive.verify import verify_bundle
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert [p for p in rep.problems if named in p], rep.problems


def test_a_redefined_table_is_refused(bundle_copy, signing_key):
    # same name, other definition: a generated column computes on every read
    edit_database(bundle_copy, "ALTER TABLE issues ADD COLUMN g AS (length(zeroblob(100000000)))")
    reseal(bundle_copy, signing_key, KEY_PASSWORD)
    from archive.verify import verify_bundle
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert rep.problems == ["ve-2024.db: table 'issues' is not defined as testigo defines it (another version, "
                            "or an edited schema)"]


def test_the_expected_schema_is_the_one_a_build_writes(bundle):
    conn = sqlite3.connect(bundle / "ve-2024.db")
    assert set(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")) == untrusted.expected_schema()
    assert untrusted.schema_problems(conn, "x") == []


def test_a_query_over_an_untrusted_database_stops_at_its_budget():
    conn = sqlite3.connect(":memory:")
    budget = untrusted.Budget(conn, 0.5, "team.db")
    t = time.monotonic()
    with pytest.raises(sqlite3.OperationalError) as e:
        conn.execute("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT max(n) FROM r").fetchone()
    assert time.monotonic() - t < 3 and budget.caused(e.value)
    assert "took SQLite over 0 s" in str(budget.error(e.value)) or "over 1 s" in str(budget.error(e.value))
    # the caller's own time between rows is not counted against the budget
    budget = untrusted.Budget(conn, 0.5, "team.db")
    cur = conn.execute("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 20000) SELECT n FROM r")
    for i, _ in enumerate(cur):
        if i in (1, 10_000):
            time.sleep(0.4)
    assert not budget.expired
    # a value longer than the cap is refused
    with pytest.raises(sqlite3.DataError) as e:
        conn.execute("SELECT zeroblob(?)", (untrusted.MAX_VALUE_BYTES + 1,)).fetchone()
    assert "longer than 16 MiB" in str(budget.error(e.value))
    with pytest.raises(untrusted.UntrustedDatabase, match="more than 10 rows"):
        untrusted.fetch_bounded(conn, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
                                "SELECT n FROM r", limit=10, what="team.db")


def test_a_hashed_copy_is_read_from_the_bytes_hashed_even_after_a_swap(tmp_path):
    path, other = tmp_path / "a.db", tmp_path / "b.db"
    for p, value in ((path, "hashed"), (other, "swapped in")):
        conn = sqlite3.connect(p)
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES (?)", (value,))
        conn.commit()
        conn.close()
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    with untrusted.HashedCopy(path) as copy:
        assert copy.sha256() == want
        os.replace(other, path)                  # the name now points to other bytes
        conn = copy.connect()
        assert conn.execute("SELECT v FROM t").fetchall() == [("hashed",)]
        conn.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.db"]   # nothing written beside it
    with pytest.raises(untrusted.UntrustedDatabase, match="not a regular file"):
        untrusted.HashedCopy(tmp_path)


def test_verify_reads_the_database_it_hashed_not_one_swapped_in_after(bundle_copy, signing_key, monkeypatch):
    """The gap left in issue 21: a database swapped in between its hashing and its opening."""
    crafted = bundle_copy.parent / "crafted.db"
    crafted.write_bytes((bundle_copy / "ve-2024.db").read_bytes())
    conn = sqlite3.connect(crafted)
    conn.execute("DROP TABLE images")
    conn.execute(ENDLESS_VIEW)
    conn.commit()
    conn.close()
    hashed = untrusted.HashedCopy.sha256

    def hash_then_swap(self, *a, **k):
        digest = hashed(self, *a, **k)
        if crafted.exists():
            os.replace(crafted, self.path)
        return digest

    monkeypatch.setattr(untrusted.HashedCopy, "sha256", hash_then_swap)
    from archive.verify import verify_bundle
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert not crafted.exists()                          # the swap happened
    assert rep.problems == [], rep.problems              # and the crafted view was never read


def test_no_room_to_copy_the_database_aside_is_one_problem_not_a_crash(bundle_copy, signing_key, monkeypatch,
                                                                       tmp_path):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-dir"))
    from archive.verify import verify_bundle
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert any("ve-2024.db: could not be copied aside" in p and "TMPDIR" in p for p in rep.problems), rep.problems
    assert not rep.ok
