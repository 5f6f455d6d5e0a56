"""The public site over real bundles: pages, JSON, check-my-acta, downloads, caching, bad input.

Unit tests use Datasette's own test client against ``make_datasette``; ``test_real_server_*``
run ``python -m publish.site.cli`` on 127.0.0.1 and talk to it with httpx.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from archive.manifest import parse_manifest

from publish.site import server as site_mod
from publish.site.headers import FILE_POLICY

ROOT = Path(__file__).resolve().parent.parent
CSV_TOTALS = {"EG": 7_156_462, "NM": 3_241_461, "LM": 84_446, "JABE": 19_966, "JOBR": 21_583,
              "AE": 49_603, "CF": 12_321, "DC": 10_308, "EM": 25_570, "BERA": 37_408}
KNOWN = ("201301006.01.1.0001!140,7,10,8,1,7,1,0,2,3,0,1,8,1,0,1,0,3,1,1,0,1,0,0,0,0,0,0,1,2,0,0,0,"
         "5,7,155,1,1!0!0")


def mesa_of(row: dict) -> str:
    return f"{int(row['CENTRO'])}.{int(row['MESA']):02d}"


class SiteClient(site_mod.InProcessClient):
    """Datasette's in-process client (on its own loop and thread; no pytest-asyncio needed)."""

    def json(self, path: str) -> dict:
        r = self.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:500])
        return r.json()


@pytest.fixture(scope="module")
def site(bundle):
    c = SiteClient(site_mod.make_datasette(bundle))
    yield c
    c.close()


@pytest.fixture(scope="module")
def facts(photo_workdir):
    return photo_workdir.facts


# --- configuration -------------------------------------------------------------------------------

def test_immutable_read_only_with_metadata(site, bundle):
    ds = site.ds
    db = ds.databases["ve-2024"]
    assert db.is_mutable is False
    md = site.json("/-/metadata.json")
    assert md["license"] == "CC0-1.0" and "creativecommons.org" in md["license_url"]
    assert md["title"] and md["source"]
    from archive.database import COLUMN_DESCRIPTIONS
    tables = md["databases"]["ve-2024"]["tables"]
    assert tables["actas"]["columns"]["counted"] == COLUMN_DESCRIPTIONS["actas"]["counted"]
    assert set(md["databases"]["ve-2024"]["queries"]) >= {"buscar_centros", "mesa", "actas_con_alertas"}
    assert str(bundle) not in json.dumps(md)          # no local paths in public metadata
    settings = site.json("/-/settings.json")
    assert settings["sql_time_limit_ms"] <= 2000 and settings["max_returned_rows"] <= 1000
    key_id = site.ds.testigo_site.bundle.key_id
    # as minisign prints it: upper-case hex without leading zeros, as in minisign.pub's comment
    assert key_id and re.fullmatch(r"[0-9A-F]{1,16}", key_id)
    assert (bundle / "minisign.pub").read_text().splitlines()[0].endswith(" " + key_id)
    assert key_id in site.get("/").text and key_id in site.get("/descargas").text
    # writes are refused: immutable file, and SQL that writes is an error, not a change
    r = site.get("/ve-2024.json?sql=" + urllib.parse.quote("delete from actas"))
    assert r.status_code == 400
    assert sqlite3.connect(f"file:{bundle / 've-2024.db'}?mode=ro", uri=True).execute(
        "select count(*) from actas").fetchone()[0] > 0


def test_visitors_sql_is_off_by_default_and_time_limited_when_allowed(site, bundle):
    heavy = ("with recursive n(i) as (select 1 union all select i + 1 from n) "
             "select count(*) from n")
    r = site.get("/ve-2024.json?sql=" + urllib.parse.quote(heavy))
    assert r.status_code == 403                      # the public site runs no visitor's SQL
    assert site.get("/ve-2024/mesa.json?id=1.01").status_code == 200    # canned queries stay
    private = SiteClient(site_mod.make_datasette(bundle, allow_sql=True))
    try:
        t = time.monotonic()
        r = private.get("/ve-2024.json?sql=" + urllib.parse.quote(heavy))
        assert r.status_code == 400 and r.json()["ok"] is False
        assert time.monotonic() - t < 10
        assert private.json("/ve-2024.json?_shape=array&sql=select+count(*)+as+n+from+mesas")[0]["n"] > 0
    finally:
        private.close()


def test_home_spanish_first_links_every_task(site):
    r = site.get("/")
    assert r.status_code == 200 and r.headers["content-language"] == "es"
    html = r.text
    for href in ('action="/buscar"', 'action="/mesa"', 'href="/totales"', 'action="/comprobar"',
                 'href="/descargas"', 'href="/ve-2024"'):
        assert href in html, href
    assert "Compruebe su acta" in html and "English" in html
    en = site.get("/?lang=en")
    assert en.headers["content-language"] == "en"
    assert "Check your acta" in en.text and 'href="/totales?lang=en"' in en.text
    assert '<svg role="img"' in html                       # national chart right on the home page


# --- 1. find a centre ------------------------------------------------------------------------------

def test_search_centre_by_code_and_by_place(site, facts):
    row = facts["agree"]
    centro = str(int(row["CENTRO"]))
    data = site.json("/buscar.json?q=" + centro)
    assert [c["centro"] for c in data["centros"]] == [int(centro)]
    assert mesa_of(row) in [m["id"] for m in data["centros"][0]["mesa_list"]]
    # by place: parish name without accents, lower case, plus the state name
    place = row["PAR"].replace("PQ.", "").strip().lower()
    data = site.json("/buscar.json?q=" + urllib.parse.quote(place))
    assert int(centro) in [c["centro"] for c in data["centros"]], place
    html = site.get("/buscar?q=" + centro).text
    assert f'href="/mesa/{mesa_of(row)}"' in html and f'href="/centro/{centro}"' in html
    # a prefix of the code finds it too
    assert int(centro) in [c["centro"] for c in site.json(f"/buscar.json?q={centro[:-2]}")["centros"]]
    # the canned query does the same through Datasette
    rows = site.json(f"/ve-2024/buscar_centros.json?_shape=array&q={centro}")
    assert rows and rows[0]["centro"] == int(centro)


def test_search_mesa_code_suggests_the_mesa(site, facts):
    m = mesa_of(facts["agree"])
    data = site.json("/buscar.json?q=" + m)
    assert data["mesa"] == m
    r = site.get("/mesa?id=" + m)
    assert r.status_code == 302 and r.headers["location"] == f"/mesa/{m}"


def test_centre_page_lists_its_mesas(site, facts):
    row = facts["agree"]
    data = site.json(f"/centro/{int(row['CENTRO'])}.json")
    assert mesa_of(row) in [m["id"] for m in data["mesas"]]
    assert all(m["id"].startswith(str(int(row["CENTRO"])) + ".") for m in data["mesas"])
    assert site.get(f"/centro/{int(row['CENTRO'])}").status_code == 200
    assert site.get("/centro/999999999").status_code == 404


# --- 2. one mesa -----------------------------------------------------------------------------------

def test_mesa_page_shows_image_numbers_and_crosscheck(site, facts):
    row = facts["agree"]
    mid = mesa_of(row)
    data = site.json(f"/mesa/{mid}.json")
    assert data["mesa"]["electores"] == int(row["RE"])
    counted = next(a for a in data["actas"] if a["id"] == data["counted_acta"])
    assert counted["source"] == "csv" and counted["validos"] == int(row["VOTOS_VALIDOS"])
    assert counted["nulos"] == int(row["VOTOS_NULOS"])
    assert counted["votes"]["EG"] == int(row["EG"]) and counted["votes"]["NM"] == int(row["NM"])
    qr = next(a for a in data["actas"] if a["source"] == "qr")
    assert qr["crosscheck"] == "agree" and qr["image_url"].startswith("/images/")
    assert len(qr["cards"]) == 38 and sum(qr["cards"]) == qr["validos"]
    html = site.get(f"/mesa/{mid}").text
    assert f'src="{qr["image_url"]}"' in html and "coincide" in html
    assert 'id="participation"' in html and 'id="chart-mesa"' in html
    img = site.get(qr["image_url"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(img.content).hexdigest() == Path(qr["image_url"]).stem
    assert "immutable" in img.headers["cache-control"] and "max-age=31536000" in img.headers["cache-control"]


def test_mesa_flags(site, facts):
    dis = site.json(f"/mesa/{mesa_of(facts['disagree'])}.json")
    qr = next(a for a in dis["actas"] if a["source"] == "qr")
    assert qr["crosscheck"] == "disagree" and qr["crosscheck_diff"]["EG"]["qr"] == int(facts["disagree"]["EG"]) - 1
    assert "disagree" in {f["code"] for f in dis["flags"]}
    assert "no coincide" in site.get(f"/mesa/{mesa_of(facts['disagree'])}").text

    dup = site.json(f"/mesa/{mesa_of(facts['dup'])}.json")
    assert {a["status"] for a in dup["actas"]} == {"ok", "duplicate"}
    assert dup["counted_acta"] is not None and "duplicate" in {f["code"] for f in dup["flags"]}

    con = site.json(f"/mesa/{mesa_of(facts['conflict'])}.json")
    assert con["counted_acta"] is None
    assert {"conflict", "not_counted"} <= {f["code"] for f in con["flags"]}

    only = site.json(f"/mesa/{mesa_of(facts['qr_only'])}.json")
    assert next(a for a in only["actas"] if a["id"] == only["counted_acta"])["source"] == "qr"


def test_mesa_without_acta_and_unknown_and_bad_codes(site, bundle):
    conn = sqlite3.connect(f"file:{bundle / 've-2024.db'}?immutable=1", uri=True)
    empty = conn.execute("select id from mesas where id not in (select mesa_id from actas) limit 1").fetchone()[0]
    data = site.json(f"/mesa/{empty}.json")
    assert data["actas"] == [] and data["flags"][0]["code"] == "no_acta"
    assert site.get(f"/mesa/{empty}").status_code == 200
    r = site.get("/mesa/999999999.01")
    assert r.status_code == 404 and "no está en el registro" in r.text
    assert site.get("/mesa/999999999.01.json").json()["ok"] is False
    assert site.get("/mesa/abc").status_code == 404
    # a loosely written code is normalised
    c, m = empty.split(".")
    r = site.get(f"/mesa/{c}.{int(m)}")
    assert r.status_code == 302 and r.headers["location"] == f"/mesa/{empty}"


# --- 3. totals --------------------------------------------------------------------------------------

def test_totals_match_bundle_and_add_up(site, facts, bundle):
    nat = site.json("/totales.json")
    assert nat["votes"] == facts["expected_totals"]
    dp = json.loads((bundle / "datapackage.json").read_text())
    assert nat["votes"] == dp["testigo"]["totals"]
    by_state = {c: sum(ch["votes"][c] for ch in nat["children"]) for c in nat["votes"]}
    assert by_state == nat["votes"]
    state = next(ch for ch in nat["children"] if ch["total"])
    st = site.json(f"/totales/estado/{state['key']}.json")
    assert st["votes"] == state["votes"] and st["children_level"] == "municipio"
    mun = next(ch for ch in st["children"] if ch["total"])
    mu = site.json(f"/totales/municipio/{mun['key']}.json")
    assert mu["votes"] == mun["votes"]
    par = next(ch for ch in mu["children"] if ch["total"])
    pa = site.json(f"/totales/parroquia/{par['key']}.json")
    assert pa["votes"] == par["votes"] and pa["children_level"] == "centro"
    assert sum(c["total"] for c in pa["children"]) == sum(pa["votes"].values())
    html = site.get("/totales").text
    bars = re.findall(r'<g class="t-bar" data-code="(\w+)" data-votes="(\d+)">', html)
    assert {c: int(v) for c, v in bars} == nat["votes"]
    assert site.get("/totales/estado/999").status_code == 404
    assert site.get("/totales/pais/1").status_code == 404


@pytest.mark.slow
def test_full_csv_totals_shown_by_site(full_bundle):
    c = SiteClient(site_mod.make_datasette(full_bundle))
    try:
        assert c.json("/totales.json")["votes"] == CSV_TOTALS
        es, en = c.get("/totales").text, c.get("/totales?lang=en").text
        assert "7.156.462" in es and "3.241.461" in es
        assert "7,156,462" in en and "3,241,461" in en
        assert "7.156.462" in c.get("/").text
        view = c.json("/ve-2024/totals_nacional.json?_shape=array")
        assert {r["candidate"]: r["votes"] for r in view} == CSV_TOTALS
    finally:
        c.close()


# --- 4. check my acta ---------------------------------------------------------------------------------

def test_check_qr_match_and_mismatch(site, facts, payload_for):
    row = facts["agree"]
    ok = site.json("/comprobar.json?qr=" + urllib.parse.quote(payload_for(row)))
    assert ok["result"] == "match" and ok["mesa_id"] == mesa_of(row)
    assert all(f["same"] for f in ok["fields"]) and len(ok["fields"]) >= 11
    bad = site.json("/comprobar.json?qr=" + urllib.parse.quote(payload_for(row, move=2)))
    assert bad["result"] == "mismatch"
    diff = {f["field"]: (f["yours"], f["archived"]) for f in bad["fields"] if not f["same"]}
    assert diff["EG"] == (int(row["EG"]) - 2, int(row["EG"]))
    assert diff["NM"] == (int(row["NM"]) + 2, int(row["NM"]))
    html = site.get("/comprobar?qr=" + urllib.parse.quote(payload_for(row, move=2))).text
    assert 'data-result="mismatch"' in html and 't-diff' in html
    # a QR-counted mesa: compared card by card, and the identical text is recognised
    q = site.json("/comprobar.json?qr=" + urllib.parse.quote(payload_for(facts["qr_only"])))
    assert q["result"] == "match" and q["identical_payload"] is True
    assert any(f["field"] == "card:36" for f in q["fields"])
    # the page (the form, without the browser's QR reader) shows the archived photo to compare with
    html = site.get("/comprobar?qr=" + urllib.parse.quote(payload_for(facts["qr_only"]))).text
    src = re.search(r'id="check-archived-photo" src="([^"]+)"', html).group(1)
    assert src == q["image_url"] and src.startswith("/images/")
    photo = site.get(src)
    assert photo.status_code == 200 and photo.headers["content-type"].startswith("image/")
    assert hashlib.sha256(photo.content).hexdigest() == src.rsplit("/", 1)[1].split(".")[0]


def test_check_numbers_form(site, facts):
    row = facts["agree"]
    q = {"mesa": mesa_of(row), "EG": row["EG"], "NM": row["NM"], "validos": row["VOTOS_VALIDOS"],
         "nulos": row["VOTOS_NULOS"]}
    assert site.json("/comprobar.json?" + urllib.parse.urlencode(q))["result"] == "match"
    q["NM"] = str(int(row["NM"]) + 1)
    r = site.json("/comprobar.json?" + urllib.parse.urlencode(q))
    assert r["result"] == "mismatch" and [f["field"] for f in r["fields"] if not f["same"]] == ["NM"]
    r = site.json("/comprobar.json?" + urllib.parse.urlencode({"mesa": mesa_of(row), "EG": "doce"}))
    assert r["result"] == "invalid" and r["code"] == "bad_number"
    r = site.json("/comprobar.json?" + urllib.parse.urlencode({"mesa": "centro uno"}))
    assert r["result"] == "invalid" and r["code"] == "bad_mesa"


@pytest.mark.parametrize("text,code", [
    ("hola", "not_acta"),
    ("201301006.01.1.0001!1,2,3!0!0", "wrong_count_number"),
    ("2013.01.1.0001!" + ",".join(["0"] * 38) + "!0!0", "bad_header"),
    ("201301006.01.1.0001!" + ",".join(["x"] + ["0"] * 37) + "!0!0", "non_numeric_count"),
    ("201301006.01.1.0001!" + ",".join(["-1"] + ["0"] * 37) + "!0!0", "negative_count"),
    ("201301006.01.1.0001!" + ",".join(["100001"] + ["0"] * 37) + "!0!0", "count_too_large"),
    ("9" * 5000, "too_long"),
])
def test_check_bad_qr_text_gets_clean_message(site, text, code):
    r = site.get("/comprobar.json?qr=" + urllib.parse.quote(text))
    assert r.status_code == 200
    data = r.json()
    assert data["result"] == "invalid" and data["code"] == code and data["message_es"]
    html = site.get("/comprobar?qr=" + urllib.parse.quote(text))
    assert html.status_code == 200 and 'data-result="invalid"' in html.text


def test_check_unknown_and_unarchived_mesa(site, bundle):
    counts = ",".join(["0"] * 38)
    # a valid acta QR of a mesa the registry lacks: outside the registry, not (yet) archived
    r = site.json("/comprobar.json?qr=" + urllib.parse.quote(f"249901001.01.1.0001!{counts}!0!0"))
    assert r["result"] == "not_archived" and r["code"] == "outside_registry" and r["outside_registry"]
    # a centre code whose estado does not exist is not an acta at all (issue 21: headers that exist)
    assert site.json("/comprobar.json?qr=" + urllib.parse.quote(f"999999999.01.1.0001!{counts}!0!0"))["result"] == "invalid"
    assert "outside the registry" in r["message_en"] and "fuera del registro" in r["message_es"]
    # a typed mesa code that is nowhere: still unknown
    r = site.json("/comprobar.json?" + urllib.parse.urlencode({"mesa": "999999999.01", "EG": "1"}))
    assert r["result"] == "unknown_mesa"
    conn = sqlite3.connect(f"file:{bundle / 've-2024.db'}?immutable=1", uri=True)
    empty = conn.execute("select id from mesas where id not in (select mesa_id from actas) limit 1").fetchone()[0]
    c, m = empty.split(".")
    r = site.json("/comprobar.json?qr=" + urllib.parse.quote(f"{c}.{m}.1.0001!{counts}!0!0"))
    assert r["result"] == "not_archived" and r["mesa_id"] == empty
    assert site.json("/comprobar.json")["result"] is None            # the form alone


# --- 5. downloads -----------------------------------------------------------------------------------------

def test_downloads_match_signed_checksums(site, bundle):
    html = site.get("/descargas").text
    for name in ("ve-2024.db", "SHA256SUMS", "SHA256SUMS.minisig", "minisign.pub", "datapackage.json"):
        assert f'href="/descargas/{name}"' in html, name
    assert "minisign -Vm SHA256SUMS -p minisign.pub" in html and "sha256sum -c SHA256SUMS" in html
    sums, _ = parse_manifest((bundle / "SHA256SUMS").read_bytes())
    for name in ("ve-2024.db", "minisign.pub", "README.md"):
        r = site.get("/descargas/" + name)
        assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sums[name]
        assert r.headers["etag"] == f'"{sums[name]}"'
    r = site.get("/descargas/ve-2024.db", headers={"if-none-match": f'"{sums["ve-2024.db"]}"'})
    assert r.status_code == 304
    assert site.get("/descargas/SHA256SUMS").content == (bundle / "SHA256SUMS").read_bytes()
    for bad in ("nope.txt", "..%2F..%2Fetc%2Fpasswd", "images", "%2Fetc%2Fpasswd"):
        assert site.get("/descargas/" + bad).status_code == 404, bad
    assert site.get("/images/..%2F..%2Fve-2024.db").status_code == 404
    assert "magnet:" not in html                                     # no torrent given


def test_photos_are_served_from_the_shards(site, bundle):
    import zipfile
    db = sqlite3.connect(f"file:{bundle / 've-2024.db'}?mode=ro&immutable=1", uri=True)
    rows = db.execute("SELECT sha256, path, shard, media_type, size FROM images ORDER BY sha256").fetchall()
    assert rows and not (bundle / "images" / Path(rows[0][1]).name).exists()   # only zips on disk
    for sha, path, shard, media_type, size in rows:
        r = site.get("/" + path)
        assert r.status_code == 200, (path, r.status_code)
        with zipfile.ZipFile(bundle / shard) as z:
            assert r.content == z.read(Path(path).name)                     # the member's bytes
        assert hashlib.sha256(r.content).hexdigest() == sha and len(r.content) == size
        assert r.headers["content-type"] == media_type and r.headers["etag"] == f'"{sha}"'
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["content-security-policy"] == FILE_POLICY      # nothing in a photo may run
        assert r.headers["x-content-type-options"] == "nosniff" and "vary" not in r.headers
    sha, path, shard, media_type, size = rows[0]
    whole = site.get("/" + path).content
    r = site.get("/" + path, headers={"if-none-match": f'"{sha}"'})
    assert r.status_code == 304 and r.content == b"" and "immutable" in r.headers["cache-control"]
    r = site.get("/" + path, headers={"range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == whole[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{size}"
    assert site.get("/" + path, headers={"range": "bytes=-10"}).content == whole[-10:]
    assert site.get("/" + path, headers={"range": f"bytes={size}-"}).status_code == 416
    r = site.run(site.ds.client.request("HEAD", "/" + path))
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == str(size)
    other_ext = path[:-3] + ("jpg" if path.endswith("png") else "png")
    for bad in (other_ext, f"/images/{sha}", "/images/" + "0" * 64 + ".jpg", "/" + shard,
                "/images/..%2Fve-2024.db", "/images", "/images/x%00.jpg"):
        r = site.get(bad if bad.startswith("/") else "/" + bad)
        assert r.status_code == 404 and "sandbox" not in r.headers.get("content-security-policy", ""), bad


def _make_torrent(bundle: Path, dest: Path) -> Path:
    import libtorrent as lt
    t = lt.create_torrent(lt.list_files(str(bundle)))
    lt.set_piece_hashes(t, str(bundle.parent))
    dest.write_bytes(lt.bencode(t.generate()))
    return dest


def test_torrent_and_magnet(bundle, tmp_path, copy_tree):
    torrent = _make_torrent(bundle, tmp_path / "ve-2024-bundle.torrent")
    c = SiteClient(site_mod.make_datasette(bundle, torrent=torrent))
    try:
        html = c.get("/descargas").text
        magnet = re.search(r'href="(magnet:\?[^"]+)"', html).group(1)
        assert "xt=urn:btih:" in magnet.replace("&amp;", "&")
        r = c.get("/descargas/ve-2024-bundle.torrent")
        assert r.status_code == 200 and r.content == torrent.read_bytes()
        assert r.headers["content-type"] == "application/x-bittorrent"
    finally:
        c.close()
    # <bundle>.torrent beside the folder is found without the option
    b2 = copy_tree(bundle)
    _make_torrent(b2, b2.with_name(b2.name + ".torrent"))
    c = SiteClient(site_mod.make_datasette(b2))
    try:
        assert "magnet:?" in c.get("/descargas").text
    finally:
        c.close()


def test_site_offers_the_hybrid_and_the_v1_torrent_made_by_testigo_torrent(bundle, copy_tree):
    from publish.torrent.metainfo import make_torrents
    b2 = copy_tree(bundle)
    made = {t.kind: t for t in make_torrents(b2)}
    c = SiteClient(site_mod.make_datasette(b2))
    try:
        html = c.get("/descargas").text.replace("&amp;", "&")
        for kind in ("hybrid", "v1"):
            assert made[kind].magnet in html
            r = c.get("/descargas/" + Path(made[kind].path).name)
            assert r.status_code == 200 and r.content == Path(made[kind].path).read_bytes()
        assert f"testigo seed {b2.name}" in html
    finally:
        c.close()


def test_not_a_bundle(tmp_path):
    with pytest.raises(site_mod.SiteError, match="no .db file"):
        site_mod.make_datasette(tmp_path)
    with pytest.raises(site_mod.SiteError, match="no such bundle"):
        site_mod.make_datasette(tmp_path / "missing")


# --- caching ---------------------------------------------------------------------------------------------

def test_cache_headers_and_response_cache(site):
    r1 = site.get("/totales.json?x=cachetest")
    r2 = site.get("/totales.json?x=cachetest")
    assert r1.headers["x-testigo-cache"] == "miss" and r2.headers["x-testigo-cache"] == "hit"
    assert r1.content == r2.content and r2.headers["cache-control"] == "public, max-age=600"
    # a visitor with a cookie is neither served from nor stored in the shared cache
    r3 = site.get("/totales.json?x=cachetest", headers={"cookie": "a=b"})
    assert "x-testigo-cache" not in r3.headers and "private" in r3.headers["cache-control"]
    css = site.get(f"/assets/site.css?v={site.ds.testigo_site.bundle.static_version}")
    assert css.status_code == 200 and "immutable" in css.headers["cache-control"]
    assert f"/assets/site.css?v={site.ds.testigo_site.bundle.static_version}" in site.get("/").text
    db = site.get("/ve-2024.db")
    assert db.status_code == 200 and "max-age=600" in db.headers["cache-control"]
    assert site.get("/ve-2024/actas.json").headers["cache-control"] == "max-age=600"
    err = site.get("/mesa/1.01")
    assert err.status_code == 404 and err.headers["cache-control"] == "public, max-age=60"


def test_concurrent_identical_misses_are_computed_once(bundle):
    ds = site_mod.make_datasette(bundle)
    c = SiteClient(ds)
    try:
        async def burst():
            return await asyncio.gather(*[ds.client.get("/totales/estado/1.json") for _ in range(20)])
        rs = c.run(burst())
        assert {r.status_code for r in rs} == {200}
        assert sum(r.headers.get("x-testigo-cache") == "miss" for r in rs) == 1
        assert len({r.content for r in rs}) == 1
    finally:
        c.close()


# --- hostile input ---------------------------------------------------------------------------------------

NASTY = [
    '"', '""', '"unbalanced', "*", "**", "NEAR(", "NEAR(a b", "NEAR(a, b, 5)", "a OR", "AND", "NOT x",
    "^", "-", "+", "estado:zulia", "{codigo estado}: 1", "((((", ")", "a\"b\"c",
    "' OR 1=1 --", "'; DROP TABLE actas; --", "1; select * from issues", "' UNION SELECT * FROM issues --",
    "%", "_", "\\", "\x00", "\x00\x01\x1b[31m", "\u202e\u200b\ufeff", "😀🇻🇪", "🇻🇪 maracaibo",
    "Ｍａｒａｃａｉｂｏ", "é" * 3000, "x" * 20000, "ZULIA*", "201301006*", "2013 01 006", "١٢٣",
    "<script>alert(1)</script>", "../../etc/passwd", "%00", "%%%", "~2E~2E",
]
ENDPOINTS = ["/buscar?q=", "/buscar.json?q=", "/comprobar?qr=", "/comprobar.json?qr=", "/comprobar?mesa=",
             "/comprobar.json?mesa=201301006.01&EG=", "/ve-2024/centros?_search=", "/ve-2024/centros.json?_search=",
             "/ve-2024/buscar_centros?q=", "/ve-2024/buscar_centros.json?q=", "/ve-2024/mesa.json?id=",
             "/mesa/", "/centro/", "/totales/estado/", "/totales/municipio/", "/descargas/", "/mesa?id="]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_hostile_input_never_500(site, endpoint):
    for text in NASTY:
        url = endpoint + urllib.parse.quote(text, safe="")
        r = site.get(url)
        assert r.status_code < 500, (url[:120], r.status_code, r.text[:300])
        assert r.status_code in (200, 302, 400, 404), (url[:120], r.status_code)
        assert "Traceback" not in r.text
        if r.headers.get("content-type", "").startswith("text/html"):
            assert "<script>alert(1)</script>" not in r.text
        if r.status_code == 200 and endpoint.startswith("/buscar.json"):
            assert r.json()["ok"] is True


def test_hostile_search_reports_cleanly(site):
    d = site.json("/buscar.json?q=" + urllib.parse.quote('"*" ( ^ -'))
    assert d["centros"] == [] and d["problem"] == "no_words"
    d = site.json("/buscar.json?q=" + urllib.parse.quote('NEAR(zulia "'))   # FTS words are just words
    assert d["problem"] is None and d["centros"] == []
    d = site.json("/buscar.json?q=" + "x" * 5000)
    assert d["truncated_query"] is True and len(d["q"]) == 200
    assert "Ningún centro" in site.get("/buscar?q=zzzzqqqq").text
    # FTS syntax in Datasette's own search box is escaped (default), raw mode errors are clean
    assert site.get("/ve-2024/centros.json?_search=" + urllib.parse.quote("NEAR(")).status_code == 200
    r = site.get("/ve-2024/centros.json?_searchmode=raw&_search=" + urllib.parse.quote('NEAR("'))
    assert r.status_code == 400


# --- real server over HTTP -----------------------------------------------------------------------------------

def start_server(bundle: Path, *extra: str, preexec_fn=None) -> tuple[subprocess.Popen, str]:
    return site_mod.start_in_subprocess(bundle, *extra, preexec_fn=preexec_fn)


def stop_server(proc: subprocess.Popen) -> None:
    site_mod.stop_process(proc)


def test_real_server_over_http(bundle, facts):
    proc, url = start_server(bundle)
    try:
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=30) as h:
            home = h.get("/")
            assert home.status_code == 200 and "Busque su centro" in home.text
            mid = mesa_of(facts["agree"])
            mesa = h.get(f"/mesa/{mid}.json").json()
            img = next(a["image_url"] for a in mesa["actas"] if a["image_url"])
            r = h.get(img)
            assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
            assert r.headers["x-content-type-options"] == "nosniff"
            assert hashlib.sha256(r.content).hexdigest() == img.rsplit("/", 1)[1].split(".")[0]
            assert h.head(img).headers["content-length"] == str(len(r.content))
            assert h.get("/totales.json").json()["votes"] == facts["expected_totals"]
            assert h.get("/descargas/SHA256SUMS").content == (bundle / "SHA256SUMS").read_bytes()
            # hostile input over the wire, including a URL far longer than any form sends
            for q in ('NEAR("', "x" * 12000, "%00%ff%fe"):
                r = h.get("/buscar?q=" + q)
                assert r.status_code in (200, 400, 414, 431), r.status_code
            r = h.get("/comprobar?qr=" + "9" * 30000)
            assert r.status_code in (200, 400, 414, 431)
            for path in ("/ve-2024/actas", "/", "/ve-2024", "/-/logout", "/comprobar"):
                r = h.post(path, data={"x": "1"})
                assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, OPTIONS", path
            assert h.request("DELETE", "/ve-2024/actas").status_code == 405
            assert h.get("/").status_code == 200                      # still alive
        assert proc.poll() is None
    finally:
        stop_server(proc)


def test_serve_cli_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    r = subprocess.run([sys.executable, "-m", "publish.site.cli", str(tmp_path), "--port", "0"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "error:" in r.stderr and "Traceback" not in r.stderr
