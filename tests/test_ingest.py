"""Ingest over real files and a real workdir: outcomes, bad input, idempotence, resume."""
import csv
import gzip
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import segno
from PIL import Image

from archive import election as election_mod
from archive.ingest import ingest
from archive.workdir import Workdir

ROOT = Path(__file__).resolve().parent.parent
CSV_GZ = ROOT / "datasets" / "ve-2024" / "RESULTADOS_2024_CSV_V1.csv.gz"
KNOWN = ("201301006.01.1.0001!140,7,10,8,1,7,1,0,2,3,0,1,8,1,0,1,0,3,1,1,0,1,0,0,0,0,0,0,1,2,0,0,0,"
         "5,7,155,1,1!0!0")
MESA2 = ("201301006.02.1.0001!100,7,10,8,1,7,1,0,2,3,0,1,41,1,1,1,0,0,1,1,0,0,0,0,0,0,0,0,1,1,0,0,1,"
         "5,7,166,0,1!0!0")  # folds to the CSV row of mesa 2: NM 181, EG 178 ...


def qr_png(text: str, scale: int = 6, size=(900, 1200)) -> bytes:
    """A white page with the QR near the bottom, like an acta."""
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=scale, border=4)
    qr = Image.open(io.BytesIO(buf.getvalue())).convert("L")
    page = Image.new("L", size, 255)
    page.paste(qr, ((size[0] - qr.width) // 2, size[1] - qr.height - 40))
    out = io.BytesIO()
    page.save(out, "PNG")
    return out.getvalue()


def jpeg_of(png: bytes, quality=90) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def outcomes(workdir) -> dict:
    db = sqlite3.connect(Path(workdir) / "state.db")
    rows = db.execute("SELECT locator, outcome, code, reason FROM inputs ORDER BY id").fetchall()
    return {Path(r[0].split("!")[-1]).name if "!" not in r[0] else r[0].split("!")[-1]: r[1:] for r in rows}


def counts_with(payload: str, counts) -> str:
    head, _, *tail = payload.split("!")
    return "!".join([head, ",".join(str(c) for c in counts), *tail])


def test_known_payload_folds_to_csv_row():
    from archive.acta import parse_payload
    e = election_mod.load()
    a = parse_payload(MESA2, e)
    assert a.votes["NM"] == 181 and a.votes["EG"] == 178 and a.validos == 368


def test_every_bad_input_gets_its_outcome_and_the_batch_continues(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    good_counts = KNOWN.split("!")[1].split(",")
    (src / "01_good.png").write_bytes(qr_png(KNOWN))
    (src / "02_truncated.jpg").write_bytes(jpeg_of(qr_png(KNOWN))[:5000])
    (src / "03_text.jpg").write_text("this is not a photo\n")
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, "PNG")  # 400 Mpx, a few KB on disk
    (src / "04_bomb.png").write_bytes(bomb.getvalue())
    blank = io.BytesIO()
    Image.new("L", (800, 1000), 255).save(blank, "PNG")
    (src / "05_no_qr.png").write_bytes(blank.getvalue())
    (src / "06_other_system.png").write_bytes(qr_png("https://example.org/not-an-acta"))
    (src / "07_37_counts.png").write_bytes(qr_png(counts_with(KNOWN, good_counts[:37])))
    (src / "08_39_counts.png").write_bytes(qr_png(counts_with(KNOWN, good_counts + ["0"])))
    (src / "09_negative.png").write_bytes(qr_png(counts_with(KNOWN, ["-1"] + good_counts[1:])))
    (src / "10_non_numeric.png").write_bytes(qr_png(counts_with(KNOWN, ["x"] + good_counts[1:])))
    (src / "11_unknown_mesa.png").write_bytes(qr_png(KNOWN.replace("201301006.01", "249901001.01")))
    (src / "12_gif.gif").write_bytes(b"GIF89a" + b"\x00" * 50)
    with zipfile.ZipFile(src / "13_empty.zip", "w"):
        pass
    with zipfile.ZipFile(src / "14_evil.zip", "w") as z:
        z.writestr("../../etc/evil.png", qr_png(KNOWN))
        z.writestr("fine/mesa2.png", qr_png(MESA2))

    summary = ingest([str(src)], tmp_path / "w")
    got = outcomes(tmp_path / "w")
    assert got["01_good.png"][0] == "decoded"
    assert got["02_truncated.jpg"][:2] == ("rejected-file", "truncated")
    assert got["03_text.jpg"][:2] == ("rejected-file", "not_an_image")
    assert got["04_bomb.png"][:2] == ("rejected-file", "too_large")
    assert got["05_no_qr.png"][0] == "unreadable"
    assert got["06_other_system.png"][0] == "invalid"
    assert got["07_37_counts.png"][:2] == ("invalid", "wrong_count_number")
    assert got["08_39_counts.png"][:2] == ("invalid", "wrong_count_number")
    assert got["09_negative.png"][:2] == ("invalid", "negative_count")
    assert got["10_non_numeric.png"][0] == "invalid"
    # a mesa outside the registry is kept (issue 9), flagged, with a reason that says so
    assert got["11_unknown_mesa.png"][:2] == ("decoded", "outside_registry")
    assert "not in the ve-2024 registry" in got["11_unknown_mesa.png"][2]
    assert got["12_gif.gif"][:2] == ("rejected-file", "unsupported_format")
    assert got["13_empty.zip"][:2] == ("rejected-file", "empty_zip")
    assert got["../../etc/evil.png"][:2] == ("rejected-file", "unsafe_path")
    assert got["fine/mesa2.png"][0] == "decoded"
    # every input has exactly one row, each with a reason unless accepted
    assert summary.total() == 15
    for name, (outcome, code, reason) in got.items():
        if outcome != "decoded":
            assert reason and len(reason) > 10, name
    # nothing was extracted outside the workdir
    assert not (tmp_path / "etc").exists()


def test_same_photo_twice_is_one_image_two_inputs_and_conflicts_are_kept(tmp_path):
    src = tmp_path / "p"
    src.mkdir()
    png = qr_png(KNOWN)
    (src / "a.png").write_bytes(png)
    (src / "b.png").write_bytes(png)                       # same file again
    (src / "c.jpg").write_bytes(jpeg_of(png))              # another photo, same numbers
    changed = KNOWN.replace("!140,", "!141,")
    (src / "d.png").write_bytes(qr_png(changed))           # same mesa, different numbers
    ingest([str(src)], tmp_path / "w")
    got = outcomes(tmp_path / "w")
    assert got["b.png"][:2] == ("duplicate", "same_file")
    assert got["c.jpg"][:2] == ("duplicate", "same_numbers")
    assert got["d.png"][:2] == ("conflict", "different_numbers")
    assert got["a.png"][0] == "conflict"                    # flagged too, not silently preferred
    with Workdir(tmp_path / "w") as wd:
        objects = list((tmp_path / "w" / "objects").rglob("*"))
        assert len([p for p in objects if p.is_file()]) == 3  # a==b stored once
        statuses = sorted(r[0] for r in wd.db.execute("SELECT status FROM actas"))
        assert statuses == ["conflict", "conflict", "duplicate"]


def test_rerun_is_a_noop(tmp_path):
    src = tmp_path / "p"
    src.mkdir()
    (src / "a.png").write_bytes(qr_png(KNOWN))
    (src / "junk.jpg").write_text("nope")
    first = ingest([str(src), str(CSV_GZ)], tmp_path / "w")
    assert first.total() == 2 + 24532
    second = ingest([str(src), str(CSV_GZ)], tmp_path / "w")
    assert second.total() == 0 and second.skipped == 3
    db = sqlite3.connect(tmp_path / "w" / "state.db")
    assert db.execute("SELECT count(*) FROM inputs").fetchone()[0] == 2 + 24532
    assert db.execute("SELECT count(*) FROM actas").fetchone()[0] == 1 + 24532


def test_csv_sums_and_crosscheck(tmp_path):
    src = tmp_path / "p"
    src.mkdir()
    (src / "m1.png").write_bytes(qr_png(KNOWN))
    (src / "m2.png").write_bytes(qr_png(MESA2.replace("!100,", "!101,")))  # disagrees by one NM vote
    ingest([str(CSV_GZ), str(src)], tmp_path / "w")
    with Workdir(tmp_path / "w") as wd:
        sums = wd.db.execute("SELECT sum(json_extract(votes,'$.EG')), sum(json_extract(votes,'$.NM')) "
                             "FROM actas WHERE source_kind='csv'").fetchone()
        assert tuple(sums) == (7156462, 3241461)
        from archive.ingest import crosschecks
        checks = {(c["centro"], c["mesa"]): c for c in crosschecks(wd)}
    assert checks[(201301006, 1)]["result"] == "agree"
    bad = checks[(201301006, 2)]
    assert bad["result"] == "disagree"
    assert bad["differences"]["NM"] == {"qr": 182, "csv": 181}


def test_sheet_with_wrong_columns_is_rejected_and_bad_rows_recorded(tmp_path):
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(CSV_GZ.read_bytes()).decode("utf-8-sig"))))[:5]
    rows[1]["EG"] = "-3"
    rows[2]["VOTOS_VALIDOS"] = str(int(rows[2]["VOTOS_VALIDOS"]) + 1)
    rows[3]["VOTOS_NULOS"] = "99999"
    with open(tmp_path / "five.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ingest([str(tmp_path / "other.csv"), str(tmp_path / "five.csv")], tmp_path / "w")
    db = sqlite3.connect(tmp_path / "w" / "state.db")
    got = db.execute("SELECT locator, outcome, code FROM inputs ORDER BY id").fetchall()
    by = {Path(l).name: (o, c) for l, o, c in got}
    assert by["other.csv"] == ("rejected-file", "unknown_sheet")
    assert by["five.csv#row=1"] == ("transcribed", None)
    assert by["five.csv#row=2"] == ("invalid", "negative_count")
    assert by["five.csv#row=3"] == ("invalid", "sum_mismatch")
    assert by["five.csv#row=4"] == ("invalid", "over_electors")
    assert by["five.csv#row=5"] == ("transcribed", None)


def _ingest_processes(workdir) -> list[int]:
    """Pids of processes whose command line names this workdir."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(workdir).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.timeout(300)
def test_resume_after_kill_9_loses_nothing_and_counts_nothing_twice(tmp_path):
    src = tmp_path / "p"
    src.mkdir()
    e = election_mod.load()
    mesas = sorted(e.mesas)[:300]
    for i, (centro, mesa) in enumerate(mesas):
        counts = ["0"] * 38
        counts[0] = str(i % 7)
        payload = f"{centro}.{mesa:02d}.1.0001!{','.join(counts)}!0!0"
        (src / f"img{i:03d}.png").write_bytes(qr_png(payload, scale=4, size=(500, 700)))
    (src / "zz_text.jpg").write_text("x")
    workdir = tmp_path / "w"
    cmd = [sys.executable, "-m", "publish", "ingest", str(src), "--workdir", str(workdir)]
    kills = 0

    def committed() -> int:
        try:
            with sqlite3.connect(workdir / "state.db", timeout=0.1) as db:
                return db.execute("SELECT count(*) FROM inputs").fetchone()[0]
        except sqlite3.Error:
            return 0

    for threshold in (5, 40, 90):   # kill -9 at three points of the run
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and committed() < threshold and time.monotonic() < deadline:
            time.sleep(0.002)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2, "ingest finished before it could be killed; make the sample bigger"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(workdir / "state.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    n_inputs, n_loc = db.execute("SELECT count(*), count(DISTINCT locator) FROM inputs").fetchone()
    assert n_inputs == n_loc == 301
    assert dict(db.execute("SELECT outcome, count(*) FROM inputs GROUP BY outcome").fetchall()) == {
        "decoded": 300, "rejected-file": 1}
    assert db.execute("SELECT count(*) FROM actas").fetchone()[0] == 300
    # every input's object is there; temp files of killed writes were cleaned up
    assert not list((workdir / "objects").rglob("*.tmp*"))
    stored = {p.name for p in (workdir / "objects").rglob("*") if p.is_file() and ".tmp" not in p.name}
    for (sha,) in db.execute("SELECT sha256 FROM inputs"):
        assert sha in stored
    # no decoder process outlived the ingest it belonged to
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _ingest_processes(workdir):
        time.sleep(0.2)
    assert _ingest_processes(workdir) == []
    # a final re-run is a no-op
    again = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120)
    assert json.loads(again.stdout)["new"] == {}


def test_parallel_decoding_gives_the_same_outcomes(tmp_path):
    from archive import election
    sample = election.load().folder / "sample"
    images = sorted(str(p) for p in sample.glob("*.jpg"))[:12]
    ingest(images, tmp_path / "one", jobs=1)
    ingest(images, tmp_path / "two", jobs=2)

    def table(w):
        db = sqlite3.connect(w / "state.db")
        return db.execute("SELECT i.locator, i.outcome, i.code, a.payload FROM inputs i "
                          "LEFT JOIN actas a ON a.id = i.acta_id ORDER BY i.locator").fetchall()
    one, two = table(tmp_path / "one"), table(tmp_path / "two")
    assert one == two and len(one) == 12
    assert all(row[3] for row in one)  # every sample rendering decoded


def test_pipelined_chunks_record_in_order_and_a_file_named_twice_is_skipped(tmp_path):
    """Chunks are decoded while the one before is recorded; inputs keep the order they were given
    in, and a file given twice in one run is skipped, not a crash."""
    from archive import election
    from archive.ingest import Ingester, expand_sources
    sample = election.load().folder / "sample"
    images = sorted(str(p) for p in sample.glob("*.jpg"))[:11]
    sources = images + images[2:4]          # two files named again, in a later chunk
    serial = ingest(sources, tmp_path / "one", jobs=1)
    items, _ = expand_sources(sources)
    with Workdir(tmp_path / "two") as wd:
        ing = Ingester(wd, jobs=2)
        ing.ingest_items(items, batch=4)     # chunks of 4, 4, 4, 1: three overlap with the next
        assert ing.skipped == serial.skipped == 2

    def table(w):
        db = sqlite3.connect(w / "state.db")
        return db.execute("SELECT i.id, i.locator, i.outcome, i.code, a.payload FROM inputs i "
                          "LEFT JOIN actas a ON a.id = i.acta_id ORDER BY i.id").fetchall()
    one, two = table(tmp_path / "one"), table(tmp_path / "two")
    assert one == two and [r[1] for r in one] == images
    r = subprocess.run([sys.executable, "-m", "publish", "ingest", images[0], images[0], "-w", str(tmp_path / "cli")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "1 new inputs, 1 already ingested (skipped)" in r.stdout, r.stderr[-500:]


def test_damaged_and_oversized_zip_members_are_recorded_and_the_rest_ingested(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good = qr_png(KNOWN)
    with zipfile.ZipFile(src / "lote.zip", "w") as z:
        z.writestr("a_damaged.png", good, compress_type=zipfile.ZIP_STORED)
        z.writestr("b_good.png", good + b"", compress_type=zipfile.ZIP_DEFLATED)
        zeros = bytes(65 * 2**20)
        z.writestr("c_huge1.png", zeros, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("d_huge2.png", zeros, compress_type=zipfile.ZIP_DEFLATED)
    raw = bytearray((src / "lote.zip").read_bytes())
    at = raw.index(good[:64]) + 200        # inside the stored member's data: its CRC no longer matches
    raw[at] ^= 0xFF
    (src / "lote.zip").write_bytes(bytes(raw))
    ingest([str(src)], tmp_path / "w")
    db = sqlite3.connect(tmp_path / "w" / "state.db")
    rows = {loc.split("!")[-1]: (o, c, sha) for loc, o, c, sha in
            db.execute("SELECT locator, outcome, code, sha256 FROM inputs")}
    assert rows["a_damaged.png"][:2] == ("rejected-file", "bad_zip")
    assert rows["b_good.png"][0] == "decoded"
    assert rows["c_huge1.png"][:2] == rows["d_huge2.png"][:2] == ("rejected-file", "too_large")
    assert rows["c_huge1.png"][2] != rows["d_huge2.png"][2]   # each member is its own input
