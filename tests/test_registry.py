"""Issue 9: actas of mesas outside the registry are kept, flagged, placed by their centre code
where possible, shown, listed and counted in a separate line; the registry totals stay the CSV's.

Real photos (the conftest photo factory: acta pages with their QR), the real QR decoder, real
ingest and build, real SQLite and Datasette's own client.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sqlite3
import urllib.parse

import pytest

from archive import acta as acta_mod
from archive import election as election_mod
from archive.bundle import build_bundle
from archive.errors import PayloadError, ValidationError
from archive.ingest import ingest
from archive.render import render_page
from archive.verify import verify_bundle
from conftest import CSV_TOTALS, KEY_PASSWORD, make_photo, payload_for_row
from publish.site import server as site_mod
from test_site import SiteClient

PHOTO_WIDTH = 800   # wide enough for the real decoder to read the QR at its first step


def _rows(db_path, sql, params=()):
    conn = sqlite3.connect(f"file:{db_path}?immutable=1", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def _votes(row: dict) -> dict[str, int]:
    return {code: int(row[code]) for code in CSV_TOTALS}


def _as_mesa(row: dict, centro: int, mesa: int) -> dict:
    """A real CSV row's numbers, moved to another (centre, mesa)."""
    return dict(row, CENTRO=str(centro), MESA=str(mesa))


def _without_qr(payload: str) -> bytes:
    """A photo of an acta whose QR was cut off: the top two thirds of the rendered page."""
    page = render_page(payload, election_mod.load())
    page = page.crop((0, 0, page.width, page.height * 2 // 3))
    buf = io.BytesIO()
    page.save(buf, "JPEG", quality=85)
    return buf.getvalue()


# --- the centre code rule, against the whole registry -------------------------------------------

def test_centre_code_rule_holds_for_every_registry_centre(real_csv):
    e = election_mod.load()
    with election_mod.open_text(real_csv) as f:
        places = {int(r["CENTRO"]): (int(r["COD_EDO"]), int(r["COD_MUN"]), int(r["COD_PAR"]))
                  for r in csv.DictReader(f)}
    assert len(places) == 12_817
    rule = e.meta["centre_code"]
    assert rule["rule"] == "EEMMPPCCC" and "12,817" in rule["note"]
    # EE and MM are COD_EDO and COD_MUN for every centre (leading zeros dropped: 7-9 digits)
    for centro, (edo, mun, _) in places.items():
        f = e.code_fields(centro)
        assert (f["estado"], f["municipio"]) == (edo, mun), centro
    # PP numbers the parroquia within its municipio; (EE, MM, PP) <-> COD_PAR is one-to-one
    pairs = {(edo, mun, e.code_fields(c)["parroquia"], par) for c, (edo, mun, par) in places.items()}
    assert len(pairs) == len({p[:3] for p in pairs}) == len({p[3] for p in pairs}) == 1_072
    assert len(e.local_parroquias) == 1_072
    # so the code alone places every registry centre where the registry does
    assert all(e.place_from_code(c) == election_mod.Place(*p) for c, p in places.items())
    # COD_PAR is not PP (a national sequence), which is why the map exists at all
    assert sum(e.code_fields(c)["parroquia"] == par for c, (_, _, par) in places.items()) < 1_000


def test_codes_outside_the_registry_are_placed_as_far_as_known():
    e = election_mod.load()
    assert 21201999 not in e.centros and e.place(21201999) == election_mod.Place(2, 12, 60)
    assert e.place(21299001) == election_mod.Place(2, 12, None)    # parroquia 99: unknown there
    assert e.place(29901001) == election_mod.Place(2, None, None)  # municipio 99 of Anzoátegui
    assert e.place(990101001) == election_mod.UNPLACED             # estado 99: no such state
    assert e.place(201301006) == e.centros[201301006]              # registry first


def test_validate_flags_actas_outside_the_registry_whatever_their_source(csv_rows):
    e = election_mod.load()
    row = csv_rows[0]
    qr = acta_mod.parse_payload(payload_for_row(_as_mesa(row, 21201999, 1)), e)
    assert acta_mod.validate(qr, e) == ("outside_registry", "electors_unknown")
    assert acta_mod.validate(acta_mod.parse_payload(payload_for_row(row), e), e) == ()
    # a sheet row of a mesa the registry lacks is kept too (issue 20), checked against its own RE
    sheet = acta_mod.parse_csv_row(_as_mesa(row, 21201999, 1), e)
    assert acta_mod.validate(sheet, e) == ("outside_registry", "electors_unknown")
    assert acta_mod.validate(sheet, e, electores=int(row["RE"])) == ("outside_registry",)
    with pytest.raises(ValidationError) as err:
        acta_mod.validate(sheet, e, electores=sheet.validos - 1)
    assert err.value.code == "over_electors"
    # a centre code whose estado does not exist is no acta at all (issue 21: headers that exist)
    with pytest.raises(PayloadError) as err:
        acta_mod.parse_payload(payload_for_row(_as_mesa(row, 990101001, 1)), e)
    assert err.value.code == "bad_header"
    # the sum rule still applies outside the registry
    bad = acta_mod.Acta(21201999, 1, "qr", qr.votes, qr.counts, qr.validos + 1, None, qr.payload)
    with pytest.raises(ValidationError) as err:
        acta_mod.validate(bad, e)
    assert err.value.code == "sum_mismatch"


# --- a workdir with photos of mesas outside the registry ------------------------------------------

@pytest.fixture(scope="module")
def outside(tmp_path_factory, small_workdir, csv_rows, csv_slice_rows, signing_key):
    """The 200-row slice workdir plus real photos of mesas the registry lacks; built and signed."""
    e = election_mod.load()
    base = tmp_path_factory.mktemp("outside")
    wd = base / "workdir"
    shutil.copytree(small_workdir, wd)
    in_slice = {(r["CENTRO"], r["MESA"]) for r in csv_slice_rows}
    donors = [r for r in csv_rows if (r["CENTRO"], r["MESA"]) not in in_slice and int(r["EG"]) > 0]
    registry_centre = int(csv_slice_rows[0]["CENTRO"])
    new_mesa = max(m for (c, m) in e.mesas if c == registry_centre) + 5
    mesas = {  # name: (centre, mesa), what the photo says
        "placed": (21201999, 1),                 # estado 2, municipio 12, parroquia 60 by the code
        "registry_centre": (registry_centre, new_mesa),
        "municipio_only": (21299001, 3),
        "estado_only": (249901001, 1),           # municipio 99 of La Guaira: the estado only
    }
    rows = {name: _as_mesa(donors[i * 97], *cm) for i, (name, cm) in enumerate(mesas.items())}
    inbox = base / "inbox"
    inbox.mkdir()
    for name, row in rows.items():
        (inbox / f"{name}.jpg").write_bytes(make_photo(payload_for_row(row), width=PHOTO_WIDTH))
    # the same sheet photographed again: a duplicate, never counted twice
    (inbox / "placed_again.jpg").write_bytes(make_photo(payload_for_row(rows["placed"]), seed=5,
                                                        width=PHOTO_WIDTH))
    # a centre code that breaks the grammar: invalid, recorded with its file, never lost
    bad = payload_for_row(rows["placed"]).replace("21201999.01.", "2120.01.", 1)
    (inbox / "bad_code.jpg").write_bytes(make_photo(bad, width=PHOTO_WIDTH))
    # unreadable photos (the QR cut off), one sent twice: two distinct photos await transcription
    (inbox / "blank.jpg").write_bytes(_without_qr(payload_for_row(donors[1])))
    (inbox / "blank_copy.jpg").write_bytes((inbox / "blank.jpg").read_bytes())
    (inbox / "blank2.jpg").write_bytes(_without_qr(payload_for_row(donors[2])))
    summary = ingest([str(inbox)], wd)
    assert summary.new["decoded"] == 4 and summary.new["duplicate"] == 1 and summary.new["unreadable"] == 3, summary
    out = base / "bundle"
    report = build_bundle(wd, out, key=signing_key.secret, password=KEY_PASSWORD)
    slice_totals = {code: sum(int(r[code]) for r in csv_slice_rows) for code in CSV_TOTALS}
    outside_totals = {code: sum(int(r[code]) for r in rows.values()) for code in CSV_TOTALS}
    return {"workdir": wd, "bundle": out, "db": out / "ve-2024.db", "report": report, "rows": rows,
            "mesas": mesas, "slice_totals": slice_totals, "outside_totals": outside_totals}


def _mid(centro: int, mesa: int) -> str:
    return f"{centro}.{mesa:02d}"


def test_workdir_records_every_input_with_the_flag(outside):
    conn = sqlite3.connect(outside["workdir"] / "state.db")
    got = {loc.rsplit("/", 1)[-1]: (o, c) for loc, o, c in conn.execute(
        "select locator, outcome, code from inputs where kind = 'image'")}
    conn.close()
    for name in outside["mesas"]:
        assert got[f"{name}.jpg"] == ("decoded", "outside_registry"), name
    assert got["placed_again.jpg"] == ("duplicate", "same_numbers")
    assert got["bad_code.jpg"] == ("invalid", "bad_header")
    assert got["blank.jpg"][0] == got["blank2.jpg"][0] == "unreadable"


def test_bundle_flags_outside_actas_and_counts_them_apart(outside):
    db = outside["db"]
    actas = {r["mesa_id"]: r for r in _rows(db, "select * from actas where outside_registry = 1 "
                                                "and status = 'ok'")}
    assert set(actas) == {_mid(*cm) for cm in outside["mesas"].values()}
    for a in actas.values():
        assert a["counted"] == 0 and a["counted_outside"] == 1 and a["source"] == "qr"
        assert a["image_sha256"]                                   # its photo is published
    dup = _rows(db, "select * from actas where status = 'duplicate'")
    assert len(dup) == 1 and dup[0]["outside_registry"] == 1 and dup[0]["counted_outside"] == 0
    # registry actas are never flagged, and only they are counted
    assert _rows(db, "select count(*) as n from actas where outside_registry = 0 and counted = 1")[0]["n"] == 200
    assert _rows(db, "select count(*) as n from actas where outside_registry = 1 and counted = 1")[0]["n"] == 0
    # the registry totals are the slice's, to the vote; the separate line is the outside photos'
    national = {r["candidate"]: r["votes"] for r in _rows(db, "select * from totals_nacional")}
    assert national == outside["slice_totals"]
    line = {r["candidate"]: r["votes"] for r in _rows(db, "select * from outside_registry_totals")}
    assert line == outside["outside_totals"]
    assert sum(line.values()) > 0
    dp = json.loads((outside["bundle"] / "datapackage.json").read_text())["testigo"]
    assert dp["totals"] == outside["slice_totals"]
    assert dp["totals_outside_registry"] == outside["outside_totals"]
    assert dp["counts"]["mesas_registry"] == 24_532
    assert dp["counts"]["outside_registry"] == {"mesas": 4, "actas": 5, "counted": 4, "centros_unplaced": 0}
    assert "outside_registry" in dp["counting_rule"]["en"] and "fuera del registro" in dp["counting_rule"]["es"]
    readme = (outside["bundle"] / "README.md").read_text()
    assert "outside_registry_totals" in readme and "| 5 (4, 4) |" in readme
    report = outside["report"]
    assert report.outside_registry["counted"] == 4 and report.totals_outside_registry == outside["outside_totals"]


def test_bundle_rows_for_outside_mesas_and_centres(outside):
    db = outside["db"]
    m = outside["mesas"]
    mesas = {r["id"]: r for r in _rows(db, "select * from mesas where outside_registry = 1")}
    assert set(mesas) == {_mid(*cm) for cm in m.values()}
    assert all(r["electores"] is None for r in mesas.values())
    assert _rows(db, "select count(*) as n from mesas where outside_registry = 0")[0]["n"] == 24_532
    centros = {r["centro"]: r for r in _rows(db, "select * from centros where outside_registry = 1")}
    # a new mesa of a registry centre keeps that centre's registry row
    assert set(centros) == {m["placed"][0], m["municipio_only"][0], m["estado_only"][0]}
    placed = centros[m["placed"][0]]
    assert (placed["cod_edo"], placed["municipio_id"], placed["parroquia_id"]) == (2, "2.12", "2.12.60")
    assert placed["estado"] == "EDO. ANZOATEGUI" and placed["parroquia"]
    assert placed["electores"] is None and placed["mesas"] == 0
    muni = centros[m["municipio_only"][0]]
    assert (muni["cod_edo"], muni["municipio_id"], muni["parroquia_id"]) == (2, "2.12", None)
    un = centros[m["estado_only"][0]]
    assert (un["cod_edo"], un["estado"], un["municipio_id"], un["parroquia_id"]) == (24, "EDO. LA GUAIRA", None, None)
    # the bundle is whole: foreign keys hold and it verifies with its key
    report = verify_bundle(outside["bundle"], outside["bundle"] / "minisign.pub")
    assert report.ok, report.problems


def test_invalid_code_is_recorded_in_issues(outside):
    issues = _rows(outside["db"], "select * from issues where code = 'bad_header'")
    assert [i["file"] for i in issues] == ["bad_code.jpg"] and issues[0]["original_sha256"]


# --- on the site --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(outside):
    c = SiteClient(site_mod.make_datasette(outside["bundle"]))
    yield c
    c.close()


def test_mesa_page_shows_the_notice(site, outside):
    mid = _mid(*outside["mesas"]["placed"])
    r = site.get(f"/mesa/{mid}")
    assert r.status_code == 200
    assert "Mesa fuera del registro" in r.text and "EDO. ANZOATEGUI" in r.text
    assert "contado aparte" in r.text and 'id="electores">desconocidos<' in r.text
    en = site.get(f"/mesa/{mid}?lang=en").text
    assert "Mesa outside the registry" in en and "counted apart" in en
    data = site.json(f"/mesa/{mid}.json")
    assert data["mesa"]["outside_registry"] == 1 and data["mesa"]["electores"] is None
    assert data["flags"][0]["code"] == "outside_registry"
    counted = next(a for a in data["actas"] if a["id"] == data["counted_acta"])
    assert counted["validos"] == sum(_votes(outside["rows"]["placed"]).values())
    assert counted["image_url"].startswith("/images/")
    assert site.get(f"/centro/{outside['mesas']['estado_only'][0]}").status_code == 200
    centre = site.get(f"/centro/{outside['mesas']['registry_centre'][0]}").text
    assert "fuera del registro" in centre


def test_totals_page_has_the_separate_line(site, outside):
    data = site.json("/totales.json")
    assert data["votes"] == outside["slice_totals"]
    assert data["summary"]["mesas"] == 24_532 and data["summary"]["counted"] == 200
    assert data["outside_registry"]["votes"] == outside["outside_totals"]
    assert data["outside_registry"]["actas"] == 4
    html = site.get("/totales").text
    assert 'id="outside-registry"' in html and 'data-count="outside-actas">4<' in html
    eg = outside["outside_totals"]["EG"]
    assert f'<tr data-code="EG"><td>Edmundo González Urrutia</td><td class="num" data-votes="{eg}">' in html


def test_home_says_how_complete_the_registry_is(site, outside):
    html = site.get("/").text
    got = dict(re.findall(r'data-count="([a-z_]+)">([\d.]+)<', html))
    # awaiting transcription: blank.jpg (sent twice: one photo), blank2.jpg, and bad_code.jpg, whose
    # QR is not an acta's (the transcription queue, counted at build time into datapackage.json)
    assert got == {"mesas": "24.532", "mesas_with_acta": "200", "actas_outside": "5",
                   "awaiting_transcription": "3", "mesas_total": "30.026", "mesas_authority": "30.026"}
    # coverage is stated against the authority's count of mesas (issue 20), with its source
    coverage = re.sub(r"<[^>]+>", "", re.search(r'<span id="coverage">(.*?)\.</span>', html, re.S).group(1))
    assert "200 de 30.026 mesas del país, según la autoridad electoral (0,7 %)" in coverage
    assert "4 mesas fuera del registro, contadas aparte" in coverage
    assert "Consejo Nacional Electoral" in html
    totales = site.json("/totales.json")["summary"]["authority"]
    assert totales["mesas"] == 30_026 and "CNE" in totales["source"]
    assert "200 de 30.026 mesas del país" in re.sub(r"<[^>]+>", "", site.get("/totales").text)
    dp = json.loads((outside["bundle"] / "datapackage.json").read_text())
    assert dp["testigo"]["counts"]["photos_awaiting_transcription"] == 3
    assert "actas_fuera_del_registro" in html


def test_without_an_authority_count_coverage_is_the_registrys(outside, copy_tree):
    bundle = copy_tree(outside["bundle"])
    dp = json.loads((bundle / "datapackage.json").read_text())
    assert dp["testigo"]["counts"].pop("authority_count")["mesas"] == 30_026
    (bundle / "datapackage.json").write_text(json.dumps(dp))
    c = SiteClient(site_mod.make_datasette(bundle))
    try:
        html = c.get("/").text
        assert "200</strong> de <span data-count=\"mesas_total\">24.532</span> mesas del registro" in html
        assert "autoridad electoral" not in html and "30.026" not in html
        assert "de 24.532 en el registro" in re.sub(r"<[^>]+>", "", c.get("/totales").text)
    finally:
        c.close()


def test_outside_actas_are_listed_and_faceted(site, outside):
    listed = site.json("/ve-2024/actas_fuera_del_registro.json?_shape=array")
    assert len(listed) == 5 and {r["mesa_id"] for r in listed} == {_mid(*cm) for cm in outside["mesas"].values()}
    facet = site.json("/ve-2024/actas.json?_size=0")          # a facet the site configures
    counts = {f["value"]: f["count"] for f in facet["facet_results"]["outside_registry"]["results"]}
    assert counts == {0: 200, 1: 5}


def test_check_says_outside_the_registry(site, outside):
    payload = payload_for_row(outside["rows"]["placed"])
    r = site.json("/comprobar.json?qr=" + urllib.parse.quote(payload))
    assert r["result"] == "match" and r["outside_registry"] is True
    assert "outside the registry" in r["message_en"]


# --- the whole CSV: the registry totals stay the CSV's to the vote ------------------------------------

@pytest.mark.slow
def test_full_csv_totals_unchanged_by_an_outside_acta(full_workdir, copy_tree, tmp_path, csv_rows):
    wd = copy_tree(full_workdir)
    row = _as_mesa(csv_rows[7], 249901001, 1)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "outside.jpg").write_bytes(make_photo(payload_for_row(row), width=PHOTO_WIDTH))
    assert ingest([str(inbox)], wd).new["decoded"] == 1
    report = build_bundle(wd, tmp_path / "B")
    assert report.totals == CSV_TOTALS                       # to the vote
    assert report.mesas_counted == 24_532
    assert report.totals_outside_registry == _votes(row)
    db = tmp_path / "B" / "ve-2024.db"
    assert {r["candidate"]: r["votes"] for r in _rows(db, "select * from totals_nacional")} == CSV_TOTALS
    by_estado = _rows(db, "select candidate, sum(votes) as v from totals_estado group by candidate")
    assert {r["candidate"]: r["v"] for r in by_estado} == CSV_TOTALS


def test_testigo_check_says_outside_the_registry(outside, tmp_path):
    from publish.check.acta import check_photo, open_archive
    e = election_mod.load()
    archived = make_photo(payload_for_row(outside["rows"]["placed"]), seed=9, width=PHOTO_WIDTH)
    elsewhere = make_photo(payload_for_row(_as_mesa(outside["rows"]["placed"], 249901001, 9)), width=PHOTO_WIDTH)
    archive = open_archive(bundle=outside["bundle"])
    try:
        found = check_photo(archived, "archived.jpg", archive, e)
        missing = check_photo(elsewhere, "elsewhere.jpg", archive, e)
    finally:
        archive.close()
    assert found.status == "match" and "outside the registry" in found.reason
    assert (missing.status, missing.code) == ("not_in_archive", "outside_registry")
    assert "counted apart" in missing.reason


@pytest.mark.parametrize("header, counts_edit, code", [
    ("0000000.01.1.0001", None, "bad_header"),          # centre 0: estado 0 does not exist
    ("990101001.01.1.0001", None, "bad_header"),        # estado 99 does not exist
    ("201301006.00.1.0001", None, "bad_header"),        # mesa 0
    ("201301006.99.1.0001", None, None),                # mesa 99 of a real centre: kept (outside the registry)
    ("040202001.01.1.0001", None, None),                # leading zeros of a 9-digit code, as real scans print
    ("201301006.01.1.0001", (0, " 140"), "non_numeric_count"),   # a space
    ("201301006.01.1.0001", (0, "140\n"), "non_numeric_count"),  # a newline
    ("201301006.01.1.0001", (1, "07"), "non_numeric_count"),     # a leading zero
    ("201301006.01.1.0001", (1, "٧"), "non_numeric_count"),      # a digit, but not ASCII
])
def test_headers_that_exist_and_plain_counts(election, header, counts_edit, code):
    """Issue 21, item 6: a wrong text is worse than none."""
    from archive.render import KNOWN_PAYLOAD
    _, counts, *trailers = KNOWN_PAYLOAD.split("!")
    counts = counts.split(",")
    if counts_edit:
        counts[counts_edit[0]] = counts_edit[1]
    text = "!".join([header, ",".join(counts), *trailers])
    if code is None:
        a = acta_mod.parse_payload(text, election)
        assert f"{a.centro}.{a.mesa:02d}" == f"{int(header.split('.')[0])}.{header.split('.')[1]}"
    else:
        with pytest.raises(PayloadError) as err:
            acta_mod.parse_payload(text, election)
        assert err.value.code == code
