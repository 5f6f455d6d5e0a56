"""One line for every failure (issue 21, item 8): a full disk, a damaged, read-only or locked
workdir give one line saying what happened and what to do, exit code 1, no traceback; `testigo
--debug` shows the traceback. On the real command, in processes of their own."""
import contextlib
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

TESTIGO = str(Path(sys.executable).with_name("testigo"))


def run(*args, env=None, preexec_fn=None):
    return subprocess.run([TESTIGO, *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})}, preexec_fn=preexec_fn)


def assert_one_line(r, *words):
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@contextlib.contextmanager
def small_disk(tmp_path: Path, size: str):
    """A tmpfs of ``size`` when this runs as root (None otherwise: the caller limits file sizes)."""
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    ok = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                                              capture_output=True).returncode == 0
    try:
        yield mnt if ok else None
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))


def test_a_full_disk_is_one_line_and_the_next_run_finishes(tmp_path, real_csv, copy_tree, small_workdir):
    with small_disk(tmp_path, "3m") as disk:
        wd = (disk or tmp_path) / "wd"
        limit = None if disk else limit_file_size   # else: a bounded file size (EFBIG), the same line
        r = run("ingest", str(real_csv), "--workdir", str(wd), preexec_fn=limit)
        assert_one_line(r, "the disk is full", "free some space")
        assert "cannot rollback" not in r.stderr
        assert not list((wd / "objects").glob("*/*.tmp*"))         # no half-written object left
    # a damaged state.db is one line too
    wd = copy_tree(small_workdir)
    (wd / "state.db").write_bytes(os.urandom(8192))
    for args in (["ingest", str(real_csv), "--workdir", str(wd)], ["transcribe", "--workdir", str(wd), "--status"],
                 ["build", "--workdir", str(wd), "--out", str(tmp_path / "B")]):
        r = run(*args)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "is damaged or not a database" in r.stderr and "restore the workdir's state.db" in r.stderr


def test_a_read_only_workdir_is_one_line(tmp_path, small_workdir):
    with small_disk(tmp_path, "20m") as disk:
        if disk is None:
            if os.geteuid() == 0:
                pytest.skip("cannot mount a tmpfs here, and root writes through file modes")
            disk = tmp_path / "ro"
            disk.mkdir()
        shutil.copytree(small_workdir, disk / "wd")
        if os.geteuid() == 0:
            assert subprocess.run(["mount", "-o", "remount,ro", str(disk)]).returncode == 0
        else:
            for p in [disk / "wd", *(disk / "wd").rglob("*")]:
                p.chmod(p.stat().st_mode & ~0o222)
        r = run("transcribe", "--workdir", str(disk / "wd"), "--status")
        assert_one_line(r, "is read-only", "copy the workdir somewhere writable")
        r = run("ingest", str(small_workdir / "state.db"), "--workdir", str(disk / "wd"))
        assert_one_line(r, "is read-only")


def test_a_locked_workdir_is_one_line_and_debug_shows_the_traceback(tmp_path, small_workdir, copy_tree,
                                                                     photo_factory, payload_for, csv_rows):
    wd = copy_tree(small_workdir)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jpg").write_bytes(photo_factory(payload_for(csv_rows[300])))
    holder = sqlite3.connect(wd / "state.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")        # another writer that does not let go
    try:
        r = run("ingest", str(inbox), "--workdir", str(wd), env={"TESTIGO_BUSY_TIMEOUT": "1"})
        assert_one_line(r, "the workdir is busy", "wait for it to finish and run this again")
        r = run("--debug", "ingest", str(inbox), "--workdir", str(wd), env={"TESTIGO_BUSY_TIMEOUT": "1"})
        assert r.returncode != 0 and "Traceback" in r.stderr and "database is locked" in r.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    r = run("ingest", str(inbox), "--workdir", str(wd))
    assert r.returncode == 0 and "1 new inputs" in r.stdout, r.stderr
