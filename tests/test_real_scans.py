"""Real acta scans (issue 20): the QR of real thermal-paper strips gives each candidate, válidos
and nulos exactly the citizens' sheet row of its mesa; a strip cut through its QR goes to the
transcription queue. Three small scans live in tests/data/real_scans (MIT, see its README); the
whole set of 20 is used from ../shared/data/ve2024/real_scans when present."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from archive import acta, reading, transcription
from archive.ingest import crosschecks, ingest
from archive.workdir import Workdir, sha256_bytes

HERE = Path(__file__).resolve().parent / "data" / "real_scans"
CUT_THROUGH_QR = "qr-unreadable-incomplete-1.jpg"


def _truth(folder: Path) -> dict[str, dict]:
    with open(folder / "truth.csv", encoding="utf-8", newline="") as f:
        return {r["file"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def rows_by_mesa(csv_rows) -> dict[tuple[int, int], dict]:
    return {(int(r["CENTRO"]), int(r["MESA"])): r for r in csv_rows}


def _assert_equals_the_sheet(a: acta.Acta, row: dict, election) -> None:
    assert a.votes == {c.code: int(row[c.csv_column]) for c in election.candidates}
    assert a.validos == int(row["VOTOS_VALIDOS"])
    assert a.nulos == int(row["VOTOS_NULOS"])           # the QR's first trailing field
    assert a.extra["trailers"][1] == 0                   # the second: kept as is, meaning unknown


def _check_folder(folder: Path, election, rows_by_mesa) -> dict[str, str]:
    """Decode every scan of ``folder``; each readable one must equal truth.csv and its sheet row."""
    truth = _truth(folder)
    status = {}
    for name, t in sorted(truth.items()):
        data = (folder / name).read_bytes()
        assert sha256_bytes(data) == t["sha256"], name
        r = reading.decode_bytes(data, election, name)
        status[name] = r.status
        if not t["qr_text"]:
            continue
        assert (r.status, r.qr_text) == ("ok", t["qr_text"]), name
        a = acta.parse_payload(r.qr_text, election)
        assert (a.centro, a.mesa) == (int(t["centro"]), int(t["mesa"]))
        _assert_equals_the_sheet(a, rows_by_mesa[(a.centro, a.mesa)], election)
    return status


def test_the_repository_scans_give_their_sheet_rows(election, rows_by_mesa):
    status = _check_folder(HERE, election, rows_by_mesa)
    assert status == dict.fromkeys(status, "ok") and len(status) == 3


def test_all_real_scans(shared_data, election, rows_by_mesa):
    status = _check_folder(shared_data / "real_scans", election, rows_by_mesa)
    assert len(status) == 20
    assert sum(s == "ok" for s in status.values()) == 19
    assert status[CUT_THROUGH_QR] == "unreadable"


def test_ingested_scans_cross_check_with_nulos(tmp_path, shared_data, csv_rows, rows_by_mesa):
    """Ingest the 20 scans and the sheet rows of their mesas: 19 actas whose QR agrees with the
    sheet on every candidate, válidos and nulos; the cut strip waits for volunteers."""
    scans = tmp_path / "scans"
    shutil.copytree(shared_data / "real_scans", scans, ignore=shutil.ignore_patterns("*.csv", "*.txt"))
    truth = _truth(shared_data / "real_scans")
    mesas = {(int(t["centro"]), int(t["mesa"])) for t in truth.values() if t["qr_text"]}
    sheet = tmp_path / "filas.csv"
    with open(sheet, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, [k for k in csv_rows[0] if not k.startswith("_")], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows_by_mesa[m] for m in sorted(mesas))
    summary = ingest([str(sheet), str(scans)], tmp_path / "w", jobs=2)
    assert summary.new["decoded"] == 19 and summary.new["transcribed"] == len(mesas)
    with Workdir(tmp_path / "w", create=False) as wd:
        checks = crosschecks(wd)
        assert len(checks) == 19 and {c["result"] for c in checks} == {"agree"}
        nulos = dict(wd.db.execute("select image_sha256, nulos from actas where source_kind = 'qr'").fetchall())
        assert sorted(nulos.values()).count(0) == 17                      # two scans have nulos > 0
        queue = transcription.photos(wd.db)
        assert [p.sha256 for p in queue] == [truth[CUT_THROUGH_QR]["sha256"]]


def test_a_qr_whose_nulos_differ_from_the_sheet_disagrees(tmp_path, election, rows_by_mesa):
    """The cross-check compares nulos like any field (a QR acta used to have none)."""
    t = _truth(HERE)["017911_018022_0093Acta0093.jpg"]
    a = acta.parse_payload(t["qr_text"], election)
    row = rows_by_mesa[(a.centro, a.mesa)]
    sheet = acta.parse_csv_row(dict(row, VOTOS_NULOS=str(int(row["VOTOS_NULOS"]) + 1)), election)
    diff = acta.differences(a.votes, a.validos, sheet.votes, sheet.validos, ("qr", "csv"), a.nulos, sheet.nulos)
    assert diff == {"nulos": {"qr": a.nulos, "csv": a.nulos + 1}}
