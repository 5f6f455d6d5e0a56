"""`testigo read` over a real workdir, and the printed readings in the bundle: the printed table,
its search by centre name, disagreements as issues with the field named, resumability and
deterministic bytes. Real scans (tests/data/real_scans_ocr, MIT) and real sheet rows."""
from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from archive import election as election_mod
from archive import ocr
from archive.bundle import build_bundle
from publish.cli import cli
from archive.ingest import ingest
from archive.printed_store import read_workdir
from archive.workdir import Workdir

DATA = Path(__file__).parent / "data" / "real_scans_ocr"
SCANS = sorted(p.name for p in DATA.glob("*.jpg"))
CHANGED = (240111026, 2)     # this mesa's sheet row gets one more vote for NM (and válidos)

pytestmark = pytest.mark.skipif(not ocr.available(), reason="tesseract-ocr with tesseract-ocr-spa not installed")


def _mesas() -> list[tuple[int, int]]:
    with open(DATA / "truth.csv", encoding="utf-8") as f:
        return [(int(r["centro"]), int(r["mesa"])) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def read_workdir_path(tmp_path_factory, csv_rows, real_csv):
    """A workdir with the three scans and their mesas' sheet rows (one changed), read by OCR."""
    base = tmp_path_factory.mktemp("printed")
    wanted = set(_mesas())
    rows = [dict(r) for r in csv_rows if (int(r["CENTRO"]), int(r["MESA"])) in wanted]
    assert len(rows) == 3
    for r in rows:
        if (int(r["CENTRO"]), int(r["MESA"])) == CHANGED:
            r["NM"] = str(int(r["NM"]) + 1)
            r["VOTOS_VALIDOS"] = str(int(r["VOTOS_VALIDOS"]) + 1)
    with election_mod.open_text(real_csv) as f:
        header = next(csv.reader(f))
    out = io.StringIO(newline="")
    w = csv.DictWriter(out, header, extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    sheet = base / "sheet.csv"
    sheet.write_bytes(b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"))
    photos = base / "photos"
    photos.mkdir()
    for name in SCANS:
        shutil.copy(DATA / name, photos / name)
    wd = base / "workdir"
    ingest([str(sheet), str(photos)], wd, jobs=2)
    summary = read_workdir(wd, jobs=2)
    assert (summary.read, summary.failed) == (3, 0)
    return wd


@pytest.fixture(scope="module")
def built(read_workdir_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("printed_bundle") / "bundle"
    build_bundle(read_workdir_path, out)
    return out


def test_read_is_resumable_and_reads_each_content_once(read_workdir_path):
    again = read_workdir(read_workdir_path, jobs=2)
    assert (again.read, again.failed, again.skipped) == (0, 0, 3)
    result = CliRunner().invoke(cli, ["read", "--workdir", str(read_workdir_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"read": 0, "failed": 0, "already_read": 3}
    with Workdir(read_workdir_path, create=False) as wd:
        engines = {r[0] for r in wd.db.execute("SELECT engine FROM printed_readings")}
    assert len(engines) == 1 and next(iter(engines)).startswith("tesseract ")


def test_bundle_publishes_the_printed_table(built):
    db = sqlite3.connect(next(built.glob("*.db")))
    db.row_factory = sqlite3.Row
    rows = db.execute("SELECT * FROM printed ORDER BY image_sha256").fetchall()
    assert len(rows) == 3
    for r in rows:
        assert db.execute("SELECT 1 FROM images WHERE sha256 = ?", (r["image_sha256"],)).fetchone()
        acta = db.execute("SELECT id FROM actas WHERE image_sha256 = ? AND source = 'qr'", (r["image_sha256"],)).fetchone()
        assert acta, "the project's decoder reads these QRs"
        counts = [v["votes"] for v in db.execute("SELECT votes FROM votes WHERE acta_id = ? ORDER BY position", (acta[0],))]
        lines = json.loads(r["lines"])
        assert len(lines) == 38 and r["lines_read"] == sum(v is not None for v in lines) >= 30
        assert all(v is None or v == c for v, c in zip(lines, counts))     # no wrong line
    # the datapackage documents the table
    dp = json.loads((built / "datapackage.json").read_text())
    assert any(res.get("name") == "printed" or "printed" in json.dumps(res) for res in dp["resources"])


def test_centre_found_by_a_word_of_its_printed_name(built):
    db = sqlite3.connect(next(built.glob("*.db")))
    hits = db.execute("SELECT p.centre_name, p.image_sha256 FROM printed p JOIN printed_fts f ON f.rowid = p.rowid "
                      "WHERE printed_fts MATCH 'centre_name: AMELIA'").fetchall()
    assert [h[0] for h in hits] == ["ESCUELA BASICA ROSA AMELIA FLORES"]


def test_disagreement_with_the_sheet_is_an_issue_naming_the_field(built):
    db = sqlite3.connect(next(built.glob("*.db")))
    issues = db.execute("SELECT code, reason, file FROM issues WHERE outcome = 'disagree' ORDER BY id").fetchall()
    codes = {c for c, _, _ in issues}
    changed = [i for i in issues if i[2] == "784821_705855_0163Acta0162.jpg"]
    assert changed, issues
    assert codes <= {"printed_validos", "printed_votes_NM"}, codes   # the sheet's change, nothing else
    for code, reason, _ in changed:
        assert code.removeprefix("printed_") in reason and "sheet" in reason


def test_bundle_bytes_are_deterministic(read_workdir_path, built, tmp_path):
    again = tmp_path / "again"
    build_bundle(read_workdir_path, again)
    assert (again / "SHA256SUMS").read_bytes() == (built / "SHA256SUMS").read_bytes()


def test_site_search_finds_a_centre_by_a_word_of_its_printed_name(built):
    """Buscar: 'amelia' (no place is called so) finds centre 40202001 through its acta photo."""
    from publish.site import server as site_mod
    client = site_mod.InProcessClient(site_mod.make_datasette(built))
    try:
        r = client.get("/buscar.json?q=amelia")
        assert r.status_code == 200, r.text[:300]
        data = r.json()
        assert [c["centro"] for c in data["centros"]] == [40202001] and data["total"] == 1
        printed = data["centros"][0]["printed"]
        assert printed[0]["name"] == "ESCUELA BASICA ROSA AMELIA FLORES"
        photo = client.get(printed[0]["photo"])
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
        html = client.get("/buscar?q=Rosa+Amelia").text
        assert "ESCUELA BASICA ROSA AMELIA FLORES" in html and printed[0]["photo"] in html
        # a place word still finds centres by place, now with their printed names beside them
        by_place = client.get("/buscar.json?q=Soublette").json()
        assert 240111020 in [c["centro"] for c in by_place["centros"]]
        assert client.get("/buscar.json?q=zzzznotaname").json()["total"] == 0
    finally:
        client.close()


def test_build_redact_members_blurs_names_keeps_votes_and_qr(read_workdir_path, tmp_path):
    """`build --redact-members`: the members' names are gone from the published photo, the QR
    still decodes to the same acta, the original's sha256 is kept and the change recorded."""
    import hashlib
    import zipfile

    import pytesseract
    from PIL import Image

    from archive import reading
    from archive.redact import members_band

    out = tmp_path / "redacted"
    result = CliRunner().invoke(cli, ["build", "--workdir", str(read_workdir_path), "--out", str(out),
                                      "--redact-members"])
    assert result.exit_code == 0, result.output
    db = sqlite3.connect(next(out.glob("*.db")))
    original = DATA / "784821_007643_0134Acta0133.jpg"
    sha = hashlib.sha256(original.read_bytes()).hexdigest()
    published, shard, redacted = db.execute("SELECT sha256, shard, redacted FROM images WHERE original_sha256 = ?",
                                            (sha,)).fetchone()
    assert redacted == 1 and published != sha
    assert {r[0] for r in db.execute("SELECT redacted FROM images")} == {1}
    assert json.loads((out / "datapackage.json").read_text())["testigo"]["redact_members"] is True
    with zipfile.ZipFile(out / shard) as z:
        data = z.read(f"{published}.jpg")
    assert hashlib.sha256(data).hexdigest() == published
    election = election_mod.load()
    assert reading.decode_bytes(data, election).qr_text == reading.decode_bytes(original.read_bytes(), election).qr_text
    before, after = Image.open(original), Image.open(io.BytesIO(data))
    top, bottom = members_band(before)
    text_before = pytesseract.image_to_string(before.crop((0, top, before.size[0], bottom)), lang="spa")
    text_after = pytesseract.image_to_string(after.crop((0, top, after.size[0], bottom)), lang="spa")
    assert "TORRELLES" in text_before and "24334162" in text_before      # the president's name and cédula
    assert "TORRELLES" not in text_after and "24334162" not in text_after and "Nombre" not in text_after
    # the votes above the band are as they were (but for JPEG re-encoding); the band is not
    from PIL import ImageChops, ImageStat

    def change(box):
        return ImageStat.Stat(ImageChops.difference(before.convert("L").crop(box), after.convert("L").crop(box))).mean[0]
    w = before.size[0]
    assert change((0, 0, w, top - 4)) < 2 < 10 < change((0, top, w, bottom))


def test_ingest_read_reads_as_it_ingests(tmp_path):
    photos = tmp_path / "in"
    photos.mkdir()
    shutil.copy(DATA / "784821_705855_0163Acta0162.jpg", photos / "acta.jpg")
    wd = tmp_path / "w"
    result = CliRunner().invoke(cli, ["ingest", str(photos), "--workdir", str(wd), "--read", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "printed actas: 1 read by OCR, 0 could not be read" in result.output
    with Workdir(wd, create=False) as w:
        (reading,) = [json.loads(r[0]) for r in w.db.execute("SELECT reading FROM printed_readings")]
    assert reading["header"]["centre_name"] == "DESARROLLO URBANISTICO MARE ABAJO"
