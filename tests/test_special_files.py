"""Only regular files are read (issue 21, item 4): a FIFO, a link to a device, a link to a folder,
and links inside a zip each get a named reason, and `testigo ingest` neither hangs nor reads
without bound. Run on the real command, in a process of its own with a timeout."""
import os
import sqlite3
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from archive.ingest import MAX_FILE_BYTES, _read_file
from archive.errors import RejectedFile

import pytest

TESTIGO = str(Path(sys.executable).with_name("testigo"))


def inputs(wd: Path) -> dict[str, tuple]:
    db = sqlite3.connect(wd / "state.db")
    try:
        return {Path(r[0].split("!")[0]).name + ("!" + r[0].split("!")[1] if "!" in r[0] else ""): r[1:]
                for r in db.execute("SELECT locator, outcome, code, reason FROM inputs")}
    finally:
        db.close()


def test_special_files_in_a_folder_are_named_and_never_read(tmp_path, photo_factory, payload_for, csv_slice_rows):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "real.jpg").write_bytes(photo_factory(payload_for(csv_slice_rows[0])))
    os.mkfifo(inbox / "pipe.jpg")                          # ingest hung forever on it
    (inbox / "zero.jpg").symlink_to("/dev/zero")           # read 2.7 GB in 5 s (st_size 0)
    (inbox / "hosts.jpg").symlink_to("/etc/hostname")      # a link to a real file: not followed either
    (inbox / "carpeta").symlink_to("/etc")                 # a link to a folder: not walked, but said
    os.mkfifo(inbox / "hoja.csv")                          # a "sheet" that is a pipe
    with zipfile.ZipFile(inbox / "lote.zip", "w") as z:    # a volunteer's zip holding a link
        link = zipfile.ZipInfo("fotos/enlace.jpg")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(link, "/dev/zero")
        fifo = zipfile.ZipInfo("fotos/tubo.jpg")
        fifo.create_system = 3
        fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
        z.writestr(fifo, "")
    wd = tmp_path / "wd"
    t = time.monotonic()
    r = subprocess.run([TESTIGO, "ingest", str(inbox), "--workdir", str(wd), "-j", "1"],
                       capture_output=True, text=True, timeout=120)
    assert time.monotonic() - t < 60
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    got = inputs(wd)
    assert got["real.jpg"][0] == "decoded"
    for name, what in [("pipe.jpg", "is a named pipe (FIFO)"), ("zero.jpg", "is a symbolic link to /dev/zero"),
                       ("hosts.jpg", "is a symbolic link to /etc/hostname"), ("carpeta", "is a symbolic link to /etc"),
                       ("hoja.csv", "is a named pipe (FIFO)"),
                       ("lote.zip!fotos/enlace.jpg", "is a symbolic link"), ("lote.zip!fotos/tubo.jpg", "is a named pipe")]:
        outcome, code, reason = got[name]
        assert (outcome, code) == ("rejected-file", "not_regular_file"), (name, got[name])
        assert what in reason, (name, reason)
    assert not any(k.startswith("carpeta/") or k == "hostname" for k in got)   # nothing under /etc was read
    # the workdir holds no byte of /dev/zero: every object is small
    assert max(p.stat().st_size for p in (wd / "objects").rglob("*") if p.is_file()) < 1 << 20


def test_a_device_named_on_the_command_line_is_refused_not_read(tmp_path):
    link = tmp_path / "acta.jpg"
    link.symlink_to("/dev/zero")
    wd = tmp_path / "wd"
    r = subprocess.run([TESTIGO, "ingest", str(link), "--workdir", str(wd)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    outcome, code, reason = inputs(wd)["acta.jpg"]
    assert code == "not_regular_file" and "is a character device" in reason, reason


def test_a_file_is_read_with_a_bound_whatever_its_size_claims(tmp_path):
    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 10)
    with pytest.raises(RejectedFile) as e:
        _read_file(big)()
    assert e.value.code == "too_large"
    ok = tmp_path / "ok.jpg"
    ok.write_bytes(b"\xff\xd8" + b"x" * 100)
    assert _read_file(ok)() == ok.read_bytes()
