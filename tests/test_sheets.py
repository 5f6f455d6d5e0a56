"""Sheets as people publish them (issue 20): encodings, CRLF, no RE, unknown headers, the
citizens' second sheet; streamed in short batches that other writers can get between and that a
killed ingest resumes (issue 21, item 2)."""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from archive import sheet as sheet_mod
from archive.bundle import build_bundle
from archive.ingest import ingest
from conftest import CSV_TOTALS, ROOT

TESTIGO = [sys.executable, "-m", "publish"]


def _outcomes(wd: Path) -> dict[str, tuple]:
    conn = sqlite3.connect(wd / "state.db")
    try:
        return {loc.rsplit("/", 1)[-1]: (o, c, r) for loc, o, c, r in
                conn.execute("select locator, outcome, code, reason from inputs")}
    finally:
        conn.close()


def _sheet_text(rows: list[dict], columns: list[str], newline: str = "\n") -> str:
    out = io.StringIO(newline="")
    w = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator=newline)
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


COLUMNS_V1 = ["COD_EDO", "EDO", "COD_MUN", "MUN", "COD_PAR", "PAR", "CENTRO", "MESA", "RE", "VOTOS_VALIDOS",
              "VOTOS_NULOS", "EG", "NM", "LM", "JABE", "JOBR", "AE", "CF", "DC", "EM", "BERA", "URL"]
COLUMNS_V2 = [c for c in COLUMNS_V1 if c != "RE"]


@pytest.fixture(scope="module")
def accented_rows(csv_rows) -> list[dict]:
    """Ten real rows whose place names have accents or Ñ (they break a wrong decoding)."""
    rows = [r for r in csv_rows if not (r["MUN"] + r["PAR"]).isascii()][:10]
    assert len(rows) == 10
    return rows


@pytest.mark.parametrize("name, encoding, bom, newline, gz", [
    ("utf8_bom.csv", "utf-8", True, "\r\n", False),
    ("utf8.csv", "utf-8", False, "\n", False),
    ("cp1252_crlf.csv", "cp1252", False, "\r\n", False),
    ("latin1.csv.gz", "latin-1", False, "\n", True),
])
def test_every_encoding_and_line_end_reads_the_same(tmp_path, accented_rows, name, encoding, bom, newline, gz):
    text = _sheet_text(accented_rows, COLUMNS_V1, newline)
    data = (codecs.BOM_UTF8 if bom else b"") + text.encode(encoding)
    if encoding == "latin-1":      # a byte Windows-1252 leaves undefined: only Latin-1 reads it
        data = data.replace(b"PQ.", b"PQ\x81", 1)
    path = tmp_path / name
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    wd = tmp_path / "w"
    summary = ingest([str(path)], wd)
    assert summary.new == {"transcribed": 10}
    expected = {"utf-8": "utf-8-sig" if bom else "utf-8", "cp1252": "cp1252", "latin-1": "latin-1"}[encoding]
    assert summary.notes == [f"{name}: read as {expected}"]
    conn = sqlite3.connect(wd / "state.db")
    assert conn.execute("select encoding, rows_done from sheet_progress").fetchone() == (expected, 10)
    got = {(c, m): (json.loads(v), val, nul) for c, m, v, val, nul in
           conn.execute("select centro, mesa, votes, validos, nulos from actas")}
    conn.close()
    for r in accented_rows:
        votes, validos, nulos = got[(int(r["CENTRO"]), int(r["MESA"]))]
        assert votes["EG"] == int(r["EG"]) and validos == int(r["VOTOS_VALIDOS"]) and nulos == int(r["VOTOS_NULOS"])


def test_no_re_column_uses_the_registry_and_says_so_outside_it(tmp_path, csv_rows):
    inside = dict(csv_rows[3])
    over = dict(csv_rows[4], VOTOS_NULOS=str(int(csv_rows[4]["RE"])))        # more cast than electors
    outside = dict(csv_rows[5], CENTRO="21201999", MESA="1")               # a mesa the registry lacks
    path = tmp_path / "sin_re.csv"
    path.write_text(_sheet_text([inside, over, outside], COLUMNS_V2), encoding="utf-8")
    summary = ingest([str(path)], tmp_path / "w")
    assert "no RE column" in summary.notes[0]
    got = _outcomes(tmp_path / "w")
    assert got["sin_re.csv#row=1"][:2] == ("transcribed", None)
    assert got["sin_re.csv#row=2"][:2] == ("invalid", "over_electors")    # the registry's electors
    o = got["sin_re.csv#row=3"]
    assert o[:2] == ("transcribed", "outside_registry")
    assert "electors are unknown" in o[2] and "could not be made" in o[2]


def test_unknown_header_is_one_clear_line(tmp_path, csv_rows):
    path = tmp_path / "otra_cosa.csv"
    path.write_text("nombre,telefono\nAna,555\n", encoding="utf-8")
    good = tmp_path / "buena.csv"
    good.write_text(_sheet_text(csv_rows[:3], COLUMNS_V1), encoding="utf-8")
    r = subprocess.run(TESTIGO + ["ingest", str(path), str(good), "-w", str(tmp_path / "w")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    refused = [line for line in r.stdout.splitlines() if "otra_cosa.csv" in line]
    assert len(refused) == 1
    assert "not a per-mesa results sheet" in refused[0] and "CENTRO, MESA, VOTOS_VALIDOS" in refused[0]
    assert "transcribed" in r.stdout and "      3 new" in r.stdout        # the batch went on
    assert _outcomes(tmp_path / "w")["otra_cosa.csv"][:2] == ("rejected-file", "unknown_sheet")


def test_damaged_rows_and_files_never_stop_the_sheet(tmp_path, csv_rows):
    text = _sheet_text(csv_rows[:3], COLUMNS_V1)
    lines = text.splitlines(keepends=True)
    lines.insert(2, "1,2,3\n")                                  # a short row
    lines.insert(3, "a\x00b,c\n")                                 # a NUL byte: the csv module refuses it
    (tmp_path / "rota.csv").write_text("".join(lines), encoding="utf-8")
    (tmp_path / "cortada.csv.gz").write_bytes(gzip.compress(text.encode())[:-20])   # truncated gzip
    (tmp_path / "vacia.csv").write_bytes(b"")
    summary = ingest([str(tmp_path)], tmp_path / "w")
    got = _outcomes(tmp_path / "w")
    assert [got[f"rota.csv#row={i}"][0] for i in (1, 2, 3, 4, 5)] == \
        ["transcribed", "invalid", "invalid", "transcribed", "transcribed"]
    assert got["cortada.csv.gz"][:2] == ("rejected-file", "bad_sheet")
    assert got["vacia.csv"][:2] == ("rejected-file", "unknown_sheet")
    assert summary.new["transcribed"] == 3


def test_a_killed_sheet_resumes_after_its_last_batch(tmp_path, csv_rows, monkeypatch):
    path = tmp_path / "hoja.csv"
    path.write_text(_sheet_text(csv_rows[:1234], COLUMNS_V1), encoding="utf-8")
    monkeypatch.setattr(sheet_mod, "BATCH_ROWS", 100)
    real, calls = sheet_mod._write_batch, []

    def dies_on_the_fifth(*a, **kw):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt        # as a kill between batches
        return real(*a, **kw)
    monkeypatch.setattr(sheet_mod, "_write_batch", dies_on_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        ingest([str(path)], tmp_path / "w")
    conn = sqlite3.connect(tmp_path / "w" / "state.db")
    assert conn.execute("select rows_done from sheet_progress").fetchone() == (400,)
    assert conn.execute("select count(*) from inputs").fetchone() == (400,)
    monkeypatch.setattr(sheet_mod, "_write_batch", real)
    summary = ingest([str(path)], tmp_path / "w")
    assert summary.new == {"transcribed": 834} and "resumed after row 400" in summary.notes[0]
    assert conn.execute("select count(*), count(distinct locator) from inputs").fetchone() == (1234, 1234)
    assert conn.execute("select rows from sheets").fetchone() == (1234,)
    assert ingest([str(path)], tmp_path / "w").skipped == 1                 # done: nothing again
    conn.close()


def test_other_writers_wait_at_most_a_batch(tmp_path, real_csv):
    """While the whole first sheet is ingested (24,532 rows), another writer (a volunteer's save,
    another ingest) gets the write lock within a second, every time."""
    wd = tmp_path / "w"
    ingest([], wd)                                            # the workdir exists before the sheet
    proc = subprocess.Popen(TESTIGO + ["ingest", str(real_csv), "-w", str(wd), "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    waits = []
    conn = sqlite3.connect(wd / "state.db", timeout=5, isolation_level=None)
    try:
        while proc.poll() is None:
            t = time.monotonic()
            conn.execute("BEGIN IMMEDIATE")
            waits.append(time.monotonic() - t)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('probe', ?)", (str(len(waits)),))
            conn.execute("COMMIT")
            time.sleep(0.05)
    finally:
        out, err = proc.communicate(timeout=300)
        conn.close()
    assert proc.returncode == 0, err
    assert json.loads(out)["new"] == {"transcribed": 24_532}
    print(f"{len(waits)} writes, longest wait {max(waits):.3f} s")
    assert len(waits) > 10 and max(waits) < 2.0, (len(waits), max(waits))


# --- the citizens' two real sheets (../shared/data/ve2024) ---------------------------------------------

def test_v2_alone_ingests_without_a_traceback(tmp_path, shared_data):
    r = subprocess.run(TESTIGO + ["ingest", str(shared_data / "RESULTADOS_2024_CSV_V2.csv"), "-w", str(tmp_path / "w")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "read as cp1252; no RE column" in r.stdout
    conn = sqlite3.connect(tmp_path / "w" / "state.db")
    got = dict(conn.execute("select coalesce(code, outcome), count(*) from inputs group by 1"))
    conn.close()
    # 24,530 mesas of the registry (the first sheet's), 543 outside it: none invalid
    assert got == {"transcribed": 24_530, "outside_registry": 543}


@pytest.mark.slow
def test_v1_then_v2_keeps_the_new_mesas_apart(tmp_path, shared_data, full_workdir, copy_tree):
    wd = copy_tree(full_workdir)
    summary = ingest([str(shared_data / "RESULTADOS_2024_CSV_V2.csv")], wd)
    assert summary.new == {"duplicate": 24_530, "transcribed": 543}       # same numbers: duplicates
    report = build_bundle(wd, tmp_path / "B")
    assert report.totals == CSV_TOTALS                                      # the registry's, to the vote
    assert report.mesas_counted == 24_532
    assert report.outside_registry["mesas"] == 543 and report.outside_registry["counted"] == 543
    db = sqlite3.connect(tmp_path / "B" / "ve-2024.db")
    assert db.execute("select count(*), sum(outside_registry) from mesas").fetchone() == (25_075, 543)
    assert db.execute("select count(*) from issues where code not in ('same_numbers')").fetchone() == (0,)
    assert db.execute("select count(*) from actas where outside_registry = 1 and source = 'csv' "
                      "and counted_outside = 1").fetchone() == (543,)
    db.close()


# --- photos linked to their sheet rows by the URL's file name --------------------------------------------

def test_a_photo_named_as_a_rows_url_is_that_mesas_photo(tmp_path, csv_rows):
    """Photo before the sheet and sheet before the photo: either way the row's acta carries the
    unreadable photo, the photo stays in the transcription queue with the row's mesa, and the
    bundle publishes it with the row's acta; a photo of another name is linked to nothing."""
    from archive import photolink, transcription
    from archive.workdir import Workdir
    from conftest import add_unreadable_photos
    first, second, other = csv_rows[10], csv_rows[11], csv_rows[12]
    names = {r["URL"].rsplit("/", 1)[1]: r for r in (first, second)}
    assert all(n.endswith(".jpg") for n in names)
    early, late = tmp_path / "early", tmp_path / "late"
    (n1, r1), (n2, r2) = names.items()
    photos = {**add_unreadable_photos(early, {n1: r1, "foto_cualquiera.jpg": other}),
              **add_unreadable_photos(late, {n2: r2})}
    sheet = tmp_path / "hoja.csv"
    sheet.write_text(_sheet_text([first, second, other], COLUMNS_V1), encoding="utf-8")
    wd = tmp_path / "w"
    ingest([str(early)], wd)                 # the photo first, then its row
    ingest([str(sheet)], wd)
    ingest([str(late)], wd)                  # the row first, then its photo
    with Workdir(wd, create=False) as w:
        linked = dict(w.db.execute("select centro || '.' || mesa, image_sha256 from actas where source_kind = 'csv'"))
        for name, r in names.items():
            sha = photos[name][0]
            assert linked[f"{int(r['CENTRO'])}.{int(r['MESA'])}"] == sha
            assert photolink.linked_mesa(w.db, sha) == (int(r["CENTRO"]), int(r["MESA"]))
        assert linked[f"{int(other['CENTRO'])}.{int(other['MESA'])}"] is None
        queue = {p.sha256: p.decision for p in transcription.photos(w.db)}
        assert queue == {photos[n][0]: None for n in photos}     # all three still wait for volunteers
    build_bundle(wd, tmp_path / "B")
    db = sqlite3.connect(tmp_path / "B" / "ve-2024.db")
    published = dict(db.execute("select a.mesa_id, i.original_sha256 from actas a join images i "
                                "on i.sha256 = a.image_sha256 where a.source = 'csv'"))
    db.close()
    assert published == {f"{int(r['CENTRO'])}.{int(r['MESA']):02d}": photos[n][0] for n, r in names.items()}
