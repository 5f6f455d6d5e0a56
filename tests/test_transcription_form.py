"""The paper form (archive/transcription_form.py): the code as printed, lines and computed votes, and
entries saved before the form followed the paper (candidate totals only) in a real workdir."""
from __future__ import annotations

import json
import sqlite3

from archive import consensus, desk, known_answers
from archive import election as election_mod
from archive.transcription import Transcriptions
from archive.transcription_form import desk_fields, form_fields, groups, lines, parse_entry, value_of
from test_transcription import count, fields_of, lines_of


def test_the_form_follows_the_printed_acta():
    e = election_mod.load()
    names = [f[0] for f in form_fields(e)]
    assert names == ["centro", "mesa"] + [f"l_{i}" for i in range(1, 39)] + ["votos", "validos", "parciales",
                                                                             "nulos", "vacios"]
    ls = lines(e)
    assert (ls[0].sigla, ls[0].code, ls[0].candidate) == ("PSUV", 269, "NM")
    assert (ls[33].sigla, ls[33].code, ls[33].candidate) == ("UNTC", 460, "EG")
    # the candidates in the order the paper groups them (not the ballot's candidate order)
    assert [c.code for c, _ in groups(e)] == ["NM", "LM", "JABE", "JOBR", "AE", "CF", "DC", "EG", "EM", "BERA"]
    assert [len(g) for _, g in groups(e)] == [13, 6, 1, 4, 6, 1, 2, 3, 1, 1]


def test_an_entry_is_an_acta_with_its_lines_and_computed_votes(csv_slice_rows):
    e = election_mod.load()
    row = next(r for r in csv_slice_rows if int(r["EG"]) > 3)
    a = parse_entry(fields_of(row, move=1), e)
    assert list(a.counts) == lines_of(row, move=1) and a.votes == e.votes_by_candidate(a.counts)
    assert a.votes["EG"] == int(row["EG"]) - 1 and a.votes["NM"] == int(row["NM"]) + 1
    assert a.extra == {"votos": a.validos + a.nulos, "parciales": 0, "vacios": 0}
    # the whole code as printed, in the centre box, is the centre and the mesa
    code = f"{int(row['CENTRO']):09d}.{int(row['MESA']):02d}.1.0001"
    same = parse_entry(fields_of(row, move=1, centro=code, mesa=""), e)
    assert value_of(same) == value_of(a)
    # agreement is on every field typed: a summary figure or one line moved within a candidate differs
    assert value_of(parse_entry(fields_of(row, vacios="1", votos=str(a.validos + a.nulos + 1)), e)) != value_of(
        parse_entry(fields_of(row), e))
    f = fields_of(row)
    f["l_34"], f["l_35"] = str(int(f["l_34"]) - 1), str(int(f["l_35"]) + 1)      # EG's total unchanged
    moved = parse_entry(f, e)
    assert moved.votes == parse_entry(fields_of(row), e).votes and value_of(moved) != value_of(parse_entry(fields_of(row), e))


def _old_entry(db, sha: str, vid: int, row: dict) -> int:
    """An entry as the form before this one saved it: candidate totals, no lines (``typed`` NULL)."""
    e = election_mod.load()
    votes = {c.code: int(row[c.csv_column]) for c in e.candidates}
    from archive.acta import Acta
    a = Acta(int(row["CENTRO"]), int(row["MESA"]), "transcribed-photo", votes, None, int(row["VOTOS_VALIDOS"]),
             int(row["VOTOS_NULOS"]))
    return db.execute("INSERT INTO transcription_entries (image_sha256, volunteer_id, entered_at, illegible, centro, "
                      "mesa, votes, validos, nulos, value, after_decision) VALUES (?,?,?,?,?,?,?,?,?,?,0)",
                      (sha, vid, "2026-12-01T10:00:00+00:00", 0, a.centro, a.mesa, json.dumps(a.votes), a.validos,
                       a.nulos, value_of(a))).lastrowid


def test_old_entries_load_are_shown_and_decided(transcribe_workdir, copy_tree):
    """A workdir from before the paper form (no ``typed`` column; an entry of candidate totals): it
    opens, the desk shows the old entry's totals beside a new entry's lines, an old and a new entry
    never agree (the new one typed more), two new ones do, and the coordinator can still accept
    the old one (an acta without lines)."""
    path = copy_tree(transcribe_workdir.path)
    (sha, row), (sha2, row2) = transcribe_workdir.photos["t_new1.jpg"], transcribe_workdir.photos["t_new2.jpg"]
    db = sqlite3.connect(path / "state.db")
    if "typed" in {r[1] for r in db.execute("PRAGMA table_info(transcription_entries)")}:
        db.execute("ALTER TABLE transcription_entries DROP COLUMN typed")
    old_ids = []
    for name, s, r in (("Olga", sha, row), ("Omar", sha2, row2)):
        vid = db.execute("INSERT INTO volunteers (name, name_key, created_at) VALUES (?, ?, '2026-12-01')",
                         (name, name.lower())).lastrowid
        old_ids.append(_old_entry(db, s, vid, r))
    db.commit()
    db.close()
    t = Transcriptions(path)
    try:
        known_answers.configure(t.db, share_=0)
        assert t.photo(sha).state == "waiting"
        ana, beto = t.volunteer("Ana"), t.volunteer("Beto")
        assert t.save(sha, ana.id, fields_of(row)).state == "review"          # old vs new: not the same fields
        shown = desk.entries(t.db, sha, [f[0] for f in desk_fields(t.election)])
        assert shown[0]["values"]["v_EG"] == int(row["EG"]) and "l_1" not in shown[0]["values"]
        assert shown[1]["values"]["l_1"] == lines_of(row)[0] and shown[1]["values"]["v_EG"] == int(row["EG"])
        s = t.save(sha, beto.id, fields_of(row))                              # two new entries agree
        assert s.state == "agreed"
        assert json.loads(t.db.execute("SELECT counts FROM actas WHERE id = ?", (s.acta_id,)).fetchone()[0]) == lines_of(row)
        # the coordinator accepts an old entry: an acta of its candidate totals, no lines
        t._tx(consensus.accept, t.db, sha2, old_ids[1], t._acta_of, "old form")
        a = t.db.execute("SELECT * FROM actas WHERE image_sha256 = ? AND source_kind = 'transcribed-photo'",
                         (sha2,)).fetchone()
        assert a["counts"] is None and json.loads(a["votes"])["EG"] == int(row2["EG"])
        assert count(t, "SELECT count(*) FROM transcription_entries WHERE typed IS NULL") == 2
    finally:
        t.close()
