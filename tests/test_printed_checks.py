"""The printed acta's checks, on readings built from a real QR payload (no OCR here): cross-check
with the QR, the sheet and the registry; the machine reading offered to volunteers; the audit's
paper-only checks."""
from __future__ import annotations

import json

from archive import election as election_mod
from archive import number_words as nw
from archive.printed import Count, Printed
from archive.printed_checks import (candidate_votes, crosscheck, machine_reading, paper_findings,
                                    printed_before_close, uuid_reused, validos_differ, voters_differ)

# ve2024 real_scans 784821_007643_0134Acta0133.jpg (truth.csv): centre 240111020, mesa 1
QR = ("240111020.01.1.0001!149,6,9,3,13,2,0,2,11,4,1,1,3,1,0,0,1,1,0,0,1,0,0,1,1,0,0,0,0,0,0,0,0,8,23,334,"
      "2,2!0!0")
COUNTS = [int(c) for c in QR.split("!")[1].split(",")]


def reading(lines=COUNTS, validos=None, machine=579, notebook=579, uuid="e9c5f03a-2a0d-4546-b2e5-458bb5d54fd1",
            printed_at="2024-07-28T20:24:06", electors=891, code="240111020.01.1.0001") -> Printed:
    def c(v):
        return Count(str(v) if v is not None else "", nw.spell(v) if v is not None else "", v)
    validos = sum(v for v in lines if v is not None) if validos is None else validos
    p = Printed()
    p.header.update(acta_code=code, uuid=uuid, printed_at=printed_at, electors=electors)
    p.lines = [c(v) for v in lines]
    p.voters = {"machine": c(machine), "notebook": c(notebook)}
    p.summary = {k: c(v) for k, v in dict(votos=validos, validos=validos, parciales=0, nulos=0, vacios=0,
                                           opciones_validas=validos, opciones_nulas=0, opciones_vacias=0).items()}
    return p


def qr_row(counts=COUNTS):
    e = election_mod.load()
    return {"id": 1, "centro": 240111020, "mesa": 1, "counts": json.dumps(counts),
            "votes": json.dumps(e.votes_by_candidate(counts)), "validos": sum(counts), "nulos": 0}


def test_agreeing_sources_give_no_finding():
    p = reading()
    assert p.complete
    assert crosscheck(p, qr_row(), qr_row(), election_mod.load()) == []


def test_each_disagreement_names_its_field():
    lines = list(COUNTS)
    lines[13] = 5                                  # AD: the paper says 5, the QR 1
    p = reading(lines)
    found = {f.field: f for f in crosscheck(p, qr=qr_row())}
    assert set(found) == {"line_14", "validos"}
    assert found["line_14"].printed == 5 and found["line_14"].other == 1 and found["line_14"].code == "printed_line_14"
    sheet = qr_row()
    sheet["votes"] = json.dumps({**json.loads(sheet["votes"]), "EG": 0})
    assert [f.field for f in crosscheck(reading(), sheet=sheet)] == ["votes_EG"]
    other_mesa = {**qr_row(), "mesa": 2}
    assert [f.field for f in crosscheck(reading(), qr=other_mesa)] == ["acta_code"]


def test_unread_fields_are_not_compared():
    lines = [None] * 38
    p = reading(lines, validos=None)
    p.summary["validos"] = Count()
    assert crosscheck(p, qr_row(), qr_row()) == []
    assert candidate_votes(p)["NM"] is None and not p.complete
    assert machine_reading(p) is None


def test_machine_reading_only_when_complete():
    m = machine_reading(reading())
    assert m["centro"] == 240111020 and m["mesa"] == 1 and m["lines"] == COUNTS
    assert m["votes"] == election_mod.load().votes_by_candidate(COUNTS)
    assert m["summary"]["validos"] == sum(COUNTS)
    one_missing = list(COUNTS)
    one_missing[0] = None
    assert machine_reading(reading(one_missing, validos=sum(COUNTS))) is None
    assert machine_reading(reading(validos=sum(COUNTS) + 1)) is None   # lines and válidos must add up


def test_paper_only_checks_for_the_audit():
    assert paper_findings(reading()) == []
    assert voters_differ(reading(notebook=578)).field == "voters_notebook"
    assert validos_differ(reading(validos=sum(COUNTS) + 3)).other == sum(COUNTS)
    early = printed_before_close(reading(printed_at="2024-07-28T17:59:59"))
    assert early and early.field == "printed_at"
    assert printed_before_close(reading(printed_at="2024-07-28T18:00:00")) is None
    same = reading()
    other = reading(code="240111020.02.1.0001")
    again = reading()
    reused = uuid_reused([("a" * 64, same), ("b" * 64, other), ("c" * 64, again)])
    assert list(reused) == ["e9c5f03a-2a0d-4546-b2e5-458bb5d54fd1"]
    assert [code for _, code in reused["e9c5f03a-2a0d-4546-b2e5-458bb5d54fd1"]] == [
        "240111020.01.1.0001", "240111020.02.1.0001"]
    assert uuid_reused([("a" * 64, same), ("c" * 64, again)]) == {}    # two photos of one acta


def test_registry_electors_checked():
    e = election_mod.load()
    m = e.mesa(240111020, 1)
    assert m is not None
    assert crosscheck(reading(electors=m.electores), election=e) == []
    assert [f.field for f in crosscheck(reading(electors=m.electores + 1), election=e)] == ["electors"]
