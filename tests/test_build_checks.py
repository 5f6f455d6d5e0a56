"""Build trusts nothing it did not check (issue 21, item 5): an edited state row or a flipped byte
of a stored original stops `testigo build` with one line naming the acta or the object; nothing
is signed and no output folder appears."""
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from publish.cli import cli
from archive.transcription import Transcriptions
from test_transcription import fields_of

FIX = "the workdir's state.db was edited or is damaged"


def build(wd: Path, out: Path):
    return CliRunner().invoke(cli, ["build", "-w", str(wd), "-o", str(out)])


def edit(wd: Path, sql: str) -> int:
    db = sqlite3.connect(wd / "state.db")
    with db:
        n = db.execute(sql).rowcount
    db.close()
    assert n == 1
    return n


def first(wd: Path, sql: str):
    db = sqlite3.connect(wd / "state.db")
    try:
        return db.execute(sql).fetchone()
    finally:
        db.close()


def assert_stopped(r, out: Path, *words):
    assert r.exit_code == 1, r.output
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert "Traceback" not in r.output and lines[-1].startswith("Error: "), r.output
    for w in words:
        assert w in lines[-1], r.output
    assert not out.exists()


def test_an_untouched_workdir_builds(photo_workdir, copy_tree, tmp_path):
    r = build(copy_tree(photo_workdir.path), tmp_path / "B")
    assert r.exit_code == 0, r.output


def test_votes_edited_beside_an_untouched_qr_text_stop_the_build(photo_workdir, copy_tree, tmp_path):
    wd = copy_tree(photo_workdir.path)
    aid, centro, mesa, eg = first(wd, "SELECT id, centro, mesa, json_extract(votes, '$.EG') FROM actas "
                                      "WHERE source_kind = 'qr' AND status = 'ok' ORDER BY id")
    edit(wd, f"UPDATE actas SET votes = json_set(votes, '$.EG', {eg + 1000}) WHERE id = {aid}")
    r = build(wd, tmp_path / "B")
    assert_stopped(r, tmp_path / "B", f"acta {aid} (mesa {centro}.{mesa:02d}, qr)",
                   f"its stored votes EG is {eg + 1000}, but its QR text gives {eg}", FIX)


@pytest.mark.parametrize("column, sql", [
    ("validos", "validos = validos + 1"),
    ("votes NM", "votes = json_set(votes, '$.NM', json_extract(votes, '$.NM') + 7)"),
    ("mesa", "mesa = mesa + 1"),
])
def test_a_sheet_row_edited_in_the_state_stops_the_build(photo_workdir, copy_tree, tmp_path, column, sql):
    wd = copy_tree(photo_workdir.path)
    aid = first(wd, "SELECT min(id) FROM actas WHERE source_kind = 'csv'")[0]
    edit(wd, f"UPDATE actas SET {sql} WHERE id = {aid}")
    r = build(wd, tmp_path / "B")
    assert_stopped(r, tmp_path / "B", f"acta {aid} ", f"its stored {column} is", "but its sheet row (", FIX)


def test_an_edited_stored_sheet_is_named(photo_workdir, copy_tree, tmp_path):
    wd = copy_tree(photo_workdir.path)
    sha = first(wd, "SELECT sha256 FROM inputs WHERE kind = 'sheet-row' AND acta_id IS NOT NULL")[0]
    path = wd / "objects" / sha[:2] / sha
    path.write_bytes(path.read_bytes().replace(b",", b";", 1))
    r = build(wd, tmp_path / "B")
    assert_stopped(r, tmp_path / "B", f"the stored sheet {sha} is damaged")


def test_a_flipped_byte_of_a_stored_original_stops_the_build(photo_workdir, copy_tree, tmp_path):
    wd = copy_tree(photo_workdir.path)
    import shutil
    shutil.rmtree(wd / "published", ignore_errors=True)      # no cached copy: the original is read
    sha = first(wd, "SELECT image_sha256 FROM actas WHERE image_sha256 IS NOT NULL ORDER BY id")[0]
    path = wd / "objects" / sha[:2] / sha
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    r = build(wd, tmp_path / "B")
    assert_stopped(r, tmp_path / "B", f"the workdir's object {sha} is damaged")


def test_an_edited_transcribed_acta_stops_the_build(transcribe_workdir, copy_tree, tmp_path):
    wd = copy_tree(transcribe_workdir.path)
    sha, row = transcribe_workdir.photos["t_new1.jpg"]
    t = Transcriptions(wd)
    try:
        ana, beto = t.volunteer("Ana"), t.volunteer("Beto")
        t.save(sha, ana.id, fields_of(row))
        assert t.save(sha, beto.id, fields_of(row)).state == "agreed"
    finally:
        t.close()
    assert build(wd, tmp_path / "ok").exit_code == 0
    aid = first(wd, f"SELECT acta_id FROM transcription_decisions WHERE image_sha256 = '{sha}'")[0]
    edit(wd, f"UPDATE actas SET votes = json_set(votes, '$.EG', json_extract(votes, '$.EG') + 1000), "
             f"validos = validos + 1000 WHERE id = {aid}")
    r = build(wd, tmp_path / "B")
    assert_stopped(r, tmp_path / "B", f"acta {aid} ", "the entry two volunteers agreed on", FIX)
