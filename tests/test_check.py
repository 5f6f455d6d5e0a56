"""`testigo check`: a citizen's photo against a bundle or a site (match, mismatch, not in archive,
unreadable), and the comparison rule /comprobar shares with it.

``sample_bundle`` (also used by test_check_browser.py) is a real bundle built from real CSV rows
of the sample's mesas and two shipped sample photos read by the real decoder.
"""
from __future__ import annotations

import csv
import io
import json
import random
import shutil

import pytest
from click.testing import CliRunner

from archive import comparison, render
from archive.acta import parse_payload
from publish.cli import cli
from conftest import KEY_PASSWORD, ROOT

SAMPLE = ROOT / "datasets" / "ve-2024" / "sample"
PHOTOS_IN_BUNDLE = ("201301006_01_mild.jpg", "91001029_03_mild.jpg")


def manifest() -> dict[str, dict]:
    with open(SAMPLE / "MANIFEST.csv", encoding="utf-8") as f:
        return {r["file"]: r for r in csv.DictReader(f)}


def edited(payload: str, move: int = 2) -> str:
    """The payload with ``move`` votes taken from EG's main card (36) and given to NM's (1)."""
    head, counts, *rest = payload.split("!")
    c = [int(x) for x in counts.split(",")]
    assert c[35] >= move
    c[35] -= move
    c[0] += move
    return "!".join([head, ",".join(map(str, c)), *rest])


@pytest.fixture(scope="session")
def sample_bundle(tmp_path_factory, csv_rows, signing_key):
    """A bundle of the sample's mesas (CSV rows) and two of its photos (really decoded)."""
    from archive.bundle import build_bundle
    from archive.ingest import ingest
    base = tmp_path_factory.mktemp("checkbundle")
    m = manifest()
    keys = {(int(r["centro"]), int(r["mesa"])) for r in m.values()}
    rows = [r for r in csv_rows if (int(r["CENTRO"]), int(r["MESA"])) in keys]
    header = [k for k in csv_rows[0] if k != "_line"]
    out = io.StringIO(newline="")
    w = csv.DictWriter(out, header, extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    sheet = base / "sample_rows.csv"
    sheet.write_text(out.getvalue(), encoding="utf-8")
    photos = base / "photos"
    photos.mkdir()
    for name in PHOTOS_IN_BUNDLE:
        shutil.copy(SAMPLE / name, photos / name)
    summary = ingest([str(sheet), str(photos)], base / "work")
    assert summary.new["decoded"] == len(PHOTOS_IN_BUNDLE), summary
    build_bundle(base / "work", base / "B", key=signing_key.secret, password=KEY_PASSWORD)
    return base / "B"


@pytest.fixture(scope="module")
def photos(tmp_path_factory, csv_rows, election):
    """Files for each outcome: match (a shipped sample photo), mismatch (the same acta rendered
    with an edited QR), not archived (a registry mesa with no acta in the bundle), unknown mesa,
    and unreadable (a page whose QR is not an acta's, and a file that is not an image)."""
    d = tmp_path_factory.mktemp("checkphotos")
    m = manifest()
    match = SAMPLE / PHOTOS_IN_BUNDLE[0]
    payload = m[PHOTOS_IN_BUNDLE[0]]["payload"]
    (d / "edited.jpg").write_bytes(render.render_jpeg(edited(payload), seed=5, level="mild", election=election))
    in_sample = {(int(r["centro"]), int(r["mesa"])) for r in m.values()}
    other = next(r for r in csv_rows[5000:] if (int(r["CENTRO"]), int(r["MESA"])) not in in_sample)
    (d / "other_mesa.jpg").write_bytes(render.render_jpeg(
        render.payload_for_row(other, election, random.Random(1)), seed=6, level="mild", election=election))
    unknown = payload.replace("201301006.01.", "201301006.77.", 1)
    (d / "unknown_mesa.jpg").write_bytes(render.render_jpeg(unknown, seed=7, level="mild", election=election))
    (d / "not_an_acta.jpg").write_bytes(render.render_jpeg("https://example.org/hola", seed=8, level="mild",
                                                           election=election))
    (d / "notes.jpg").write_bytes(b"not a photo at all\n")
    return {"match": match, "payload": payload, "edited": d / "edited.jpg", "other": d / "other_mesa.jpg",
            "other_mesa": f"{int(other['CENTRO'])}.{int(other['MESA']):02d}", "unknown": d / "unknown_mesa.jpg",
            "not_acta": d / "not_an_acta.jpg", "not_image": d / "notes.jpg"}


def run(*args):
    return CliRunner().invoke(cli, ["check", *map(str, args)], catch_exceptions=False)


def lines(result) -> list[dict]:
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def test_match(sample_bundle, photos):
    r = run(photos["match"], "--bundle", sample_bundle, "--json")
    assert r.exit_code == 0, r.output
    [c] = lines(r)
    assert c["status"] == "match" and c["mesa_id"] == "201301006.01"
    assert c["differences"] == [] and c["compared"] == 12   # válidos, nulos (the QR has them) + 10 candidates:
    assert c["compared_with"]["source"] == "csv"                 # the counted acta is the sheet row (no cards)
    assert c["qr_text"] == photos["payload"]


def test_mismatch_lists_the_differing_fields(sample_bundle, photos):
    r = run(photos["edited"], "--bundle", sample_bundle, "--json")
    assert r.exit_code == 2
    [c] = lines(r)
    assert c["status"] == "mismatch" and c["mesa_id"] == "201301006.01"
    diff = {d["field"]: (d["yours"], d["archived"]) for d in c["differences"]}
    assert diff["EG"] == (167 - 2, 167) and diff["NM"] == (188 + 2, 188)
    assert "validos" not in diff                       # the edit moved votes, the sum is the same
    # the human output names the fields
    text = run(photos["edited"], "--bundle", sample_bundle).output
    assert "MISMATCH" in text and "Edmundo González Urrutia: photo 165, archive 167" in text


def test_not_in_archive(sample_bundle, photos):
    r = run(photos["other"], photos["unknown"], "--bundle", sample_bundle, "--json")
    assert r.exit_code == 2
    other, unknown = lines(r)
    assert (other["status"], other["code"], other["mesa_id"]) == ("not_in_archive", "not_archived",
                                                                   photos["other_mesa"])
    assert (unknown["status"], unknown["code"], unknown["mesa_id"]) == ("not_in_archive", "outside_registry",
                                                                         "201301006.77")
    assert "outside the registry" in unknown["reason"]


def test_unreadable_photos(sample_bundle, photos):
    r = run(photos["not_acta"], photos["not_image"], "--bundle", sample_bundle, "--json")
    assert r.exit_code == 2
    not_acta, not_image = lines(r)
    assert not_acta["status"] == "unreadable" and not_acta["code"] == "not_acta"
    assert not_acta["qr_text"] == "https://example.org/hola" and "not the acta's QR" in not_acta["reason"]
    assert not_image["status"] == "unreadable" and not_image["mesa_id"] is None and not_image["reason"]


def test_one_bad_photo_makes_the_batch_fail_but_every_photo_is_reported(sample_bundle, photos):
    r = run(photos["match"], photos["edited"], photos["not_image"], "--bundle", sample_bundle)
    assert r.exit_code == 2
    out = r.output.splitlines()
    assert "\tmatch (" in out[0] and "MISMATCH" in out[1] and "unreadable" in out[2]
    assert "3 photos: 1 match, 1 mismatch, 0 not in archive, 1 unreadable" in r.output


def test_against_a_site_url(sample_bundle, photos):
    from test_site import start_server, stop_server
    proc, url = start_server(sample_bundle)
    try:
        r = run(photos["match"], photos["edited"], "--site", url, "--json")
    finally:
        stop_server(proc)
    assert r.exit_code == 2
    match, mismatch = lines(r)
    assert match["status"] == "match" and mismatch["status"] == "mismatch"
    assert {d["field"] for d in mismatch["differences"]} == {"EG", "NM"}


def test_archive_errors_are_clear(photos, tmp_path):
    r = CliRunner().invoke(cli, ["check", str(photos["match"]), "--site", "http://127.0.0.1:9/"])
    assert r.exit_code == 1 and "could not reach http://127.0.0.1:9/mesa/201301006.01.json" in r.output
    r = CliRunner().invoke(cli, ["check", str(photos["match"])])
    assert r.exit_code == 1 and "name the archive to check against" in r.output
    r = CliRunner().invoke(cli, ["check", str(photos["match"]), "--bundle", str(tmp_path)])
    assert r.exit_code == 1 and "holds no .db file; is it a bundle made by `testigo build`?" in r.output


def test_comparison_rule(election):
    """The rule itself: only the citizen's fields; unstated cards and nulos skipped; the reference
    is the counted acta; another archived reading that agrees is named."""
    fields = comparison.fields([(c.code, c.name) for c in election.candidates],
                               [(k.position, k.candidate) for k in election.cards])
    acta = parse_payload(render.KNOWN_PAYLOAD, election)
    yours = comparison.reading_numbers(acta)
    sheet = {"id": 1, "validos": 368, "nulos": 0, "votes": {**acta.votes}, "cards": None, "image_url": None}
    qr = {"id": 2, "validos": 368, "nulos": None, "votes": {**acta.votes}, "cards": list(acta.counts),
          "image_url": "/images/x.jpg", "payload": render.KNOWN_PAYLOAD}
    res = comparison.check_mesa(fields, yours, {"counted_acta": 1, "actas": [sheet, qr]}, render.KNOWN_PAYLOAD)
    assert res["result"] == "match" and res["compared_with"]["id"] == 1 and res["other_matches"] == [2]
    assert {r["field"] for r in res["fields"]} == {"validos", "nulos", *acta.votes}   # no cards on a sheet
    assert res["identical_payload"] is True and res["image_url"] == "/images/x.jpg"
    changed = dict(yours, EG=yours["EG"] + 1)
    res = comparison.check_mesa(fields, changed, {"counted_acta": 2, "actas": [sheet, qr]})
    assert res["result"] == "mismatch" and [r["field"] for r in res["fields"] if not r["same"]] == ["EG"]
    assert comparison.check_mesa(fields, yours, None)["result"] == "unknown_mesa"
    assert comparison.check_mesa(fields, yours, {"counted_acta": None, "actas": []})["result"] == "not_archived"
