"""The machine reading of the printed acta as one non-human transcription entry (archive.machine_entry).

Real workdirs (the ``transcribe_workdir`` fixture: real photos whose QR is gone), with a printed
reading stored for a photo as `testigo read` stores it (no OCR here: the reading is built from the
acta's numbers, digits and words agreeing, as tests/test_printed_checks.py does).
"""
from __future__ import annotations

import json

from archive import election as election_mod
from archive import known_answers, machine_entry
from archive import number_words as nw
from archive.printed import Count, Printed
from archive.transcription import Transcriptions
from test_transcription import count, fields_of, lines_of


def printed_of(row: dict, lines: list | None = None) -> Printed:
    """What `testigo read` keeps for the acta of sheet ``row`` (``lines``: with some unread, None)."""
    def c(v):
        return Count(str(v) if v is not None else "", nw.spell(v) if v is not None else "", v)
    lines = lines_of(row) if lines is None else lines
    validos, nulos = int(row["VOTOS_VALIDOS"]), int(row["VOTOS_NULOS"])
    p = Printed()
    p.header.update(acta_code=f"{int(row['CENTRO']):09d}.{int(row['MESA']):02d}.1.0001", electors=900)
    p.lines = [c(v) for v in lines]
    p.voters = {"machine": c(validos + nulos), "notebook": c(validos + nulos)}
    p.summary = {k: c(v) for k, v in dict(votos=validos + nulos, validos=validos, parciales=0, nulos=nulos, vacios=0,
                                           opciones_validas=validos, opciones_nulas=nulos, opciones_vacias=0).items()}
    p.engine = "tesseract (test)"
    return p


def store(path, sha: str, p: Printed) -> None:
    from archive.workdir import Workdir
    with Workdir(path, create=False) as wd:
        wd.db.execute("INSERT OR REPLACE INTO printed_readings (sha256, status, engine, reading, error) VALUES "
                      "(?, 'ok', ?, ?, NULL)", (sha, p.engine, json.dumps(p.to_dict(), ensure_ascii=False)))
        known_answers.configure(wd.db, share_=0)


def test_the_machine_reading_alone_never_makes_an_acta(transcribe_workdir, copy_tree):
    path = copy_tree(transcribe_workdir.path)
    sha, row = transcribe_workdir.photos["t_new1.jpg"]
    store(path, sha, printed_of(row))
    t = Transcriptions(path)                     # the sweep enters it as the machine's entry
    try:
        assert t.photo(sha).state == "waiting" and t.photo(sha).entries == 1
        assert count(t, "SELECT count(*) FROM actas WHERE image_sha256 = ?", sha) == 0
        entry = t.db.execute("SELECT e.*, v.alias FROM transcription_entries e JOIN volunteers v "
                             "ON v.id = e.volunteer_id WHERE e.image_sha256 = ?", (sha,)).fetchone()
        assert entry["alias"] == machine_entry.ALIAS and json.loads(entry["typed"])["lines"] == lines_of(row)
        t.close()
        t = Transcriptions(path)                 # a second start enters nothing more
        assert t.photo(sha).entries == 1 and t.machine_entries() == 0
        assert count(t, "SELECT count(*) FROM transcription_decisions") == 0
    finally:
        t.close()


def test_a_volunteer_agreeing_with_the_machine_reading_makes_the_acta(transcribe_workdir, copy_tree):
    path = copy_tree(transcribe_workdir.path)
    sha, row = transcribe_workdir.photos["t_new1.jpg"]
    store(path, sha, printed_of(row))
    t = Transcriptions(path)
    try:
        ana = t.volunteer("Ana")
        s = t.save(sha, ana.id, fields_of(row))      # typed blind, equal to the machine's on every field
        assert (s.state, s.entries) == ("agreed", 2) and s.acta_id
        a = t.db.execute("SELECT * FROM actas WHERE id = ?", (s.acta_id,)).fetchone()
        assert json.loads(a["counts"]) == lines_of(row) and a["validos"] == int(row["VOTOS_VALIDOS"])
        assert json.loads(a["votes"]) == {c.code: int(row[c.csv_column]) for c in election_mod.load().candidates}
    finally:
        t.close()


def test_a_volunteer_disagreeing_with_the_machine_reading_sends_the_photo_to_review(transcribe_workdir, copy_tree):
    path = copy_tree(transcribe_workdir.path)
    sha, row = transcribe_workdir.photos["t_new1.jpg"]
    store(path, sha, printed_of(row))
    t = Transcriptions(path)
    try:
        ana, beto = t.volunteer("Ana"), t.volunteer("Beto")
        assert t.save(sha, ana.id, fields_of(row, move=1)).state == "review"   # one line differs
        assert count(t, "SELECT count(*) FROM actas WHERE image_sha256 = ?", sha) == 0
        s = t.save(sha, beto.id, fields_of(row))          # the next person decides: the machine was right
        assert s.state == "agreed" and s.entries == 3
    finally:
        t.close()


def test_a_partial_reading_enters_nothing_and_a_late_reading_enters_at_the_next_save(transcribe_workdir, copy_tree):
    path = copy_tree(transcribe_workdir.path)
    (sha1, row1), (sha2, row2) = transcribe_workdir.photos["t_new1.jpg"], transcribe_workdir.photos["t_new2.jpg"]
    partial = lines_of(row1)
    partial[5] = None                                    # one line unread: not a machine reading
    store(path, sha1, printed_of(row1, partial))
    t = Transcriptions(path)
    try:
        assert t.photo(sha1).entries == 0
        store(path, sha2, printed_of(row2))              # `testigo read` ran while volunteers worked
        s = t.save(sha2, t.volunteer("Ana").id, fields_of(row2))
        assert s.state == "agreed" and s.entries == 2
    finally:
        t.close()
