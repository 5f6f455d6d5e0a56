"""`testigo mirror`: the public site as static files, checked file by file and in a browser.

The mirror renders every mesa of the registry, so these tests use a small election: the real
ve-2024 definition with the registry cut to three parishes (real rows), found through
$TESTIGO_DATASETS, plus three of the shipped sample photos (decoded for real). A full-registry
mirror works the same way, only longer (see README).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

from archive import election as election_mod
from conftest import KEY_PASSWORD, shot
from publish.site import server as site_mod
from publish.mirror.static import MirrorError, make_mirror

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "datasets" / "ve-2024" / "sample"
PHOTOS = ["201301006_01_mild.jpg", "100601008_03_moderate.jpg", "130402009_04_mild.jpg"]
ELECTION = "ve-2024-muestra"
DB = ELECTION


@pytest.fixture(scope="module")
def small_election(tmp_path_factory):
    """ve-2024 with its registry cut to the parishes of three sample photos (real rows)."""
    full = election_mod.load("ve-2024")
    base = tmp_path_factory.mktemp("defs")
    folder = base / ELECTION
    shutil.copytree(full.folder, folder, ignore=shutil.ignore_patterns("sample", "*.csv.gz"))
    meta = json.loads((folder / "election.json").read_text())
    meta["id"], meta["registry"]["files"] = ELECTION, ["registry.csv"]
    (folder / "election.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1))
    centros = {int(p.split("_")[0]) for p in PHOTOS}
    parishes = {(m.cod_edo, m.cod_mun, m.cod_par) for m in full.mesas.values() if m.centro in centros}
    with election_mod.open_text(full.registry_path) as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if (int(r["COD_EDO"]), int(r["COD_MUN"]), int(r["COD_PAR"])) in parishes]
        header = reader.fieldnames
    out = io.StringIO()
    w = csv.DictWriter(out, header, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    (folder / "registry.csv").write_text(out.getvalue(), encoding="utf-8")
    mp = pytest.MonkeyPatch()
    mp.setenv("TESTIGO_DATASETS", str(base))         # children (mirror workers, CLI) see it too
    yield folder
    mp.undo()


@pytest.fixture(scope="module")
def mirror_bundle(small_election, tmp_path_factory, signing_key) -> Path:
    from archive.bundle import build_bundle
    from archive.ingest import ingest
    base = tmp_path_factory.mktemp("mirrorbundle")
    summary = ingest([str(small_election / "registry.csv")] + [str(SAMPLE / p) for p in PHOTOS],
                     base / "work", ELECTION, jobs=1)
    assert summary.new["decoded"] == 3, summary.new
    build_bundle(base / "work", base / "B", key=signing_key.secret, password=KEY_PASSWORD)
    return base / "B"


@pytest.fixture(scope="module")
def mirror(mirror_bundle, tmp_path_factory, signing_key) -> Path:
    out = tmp_path_factory.mktemp("mirror") / "site"
    make_mirror(mirror_bundle, out, key=signing_key.secret, password=KEY_PASSWORD, jobs=1)
    return out


def files_of(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def db_rows(bundle: Path, sql: str) -> list:
    conn = sqlite3.connect(f"file:{bundle / (DB + '.db')}?immutable=1", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_same_bundle_same_mirror_signed_and_checkable(mirror, mirror_bundle, tmp_path, signing_key):
    again = tmp_path / "again"
    report = make_mirror(mirror_bundle, again, key=signing_key.secret, password=KEY_PASSWORD, jobs=2)
    assert files_of(again) == files_of(mirror)                # byte for byte, whatever the processes
    assert report.signed and report.pages > 500 and report.images == 3
    # what a visitor does with a copy: the stock tools, no testigo
    r = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=mirror, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["minisign", "-Vm", "SHA256SUMS", "-p", "minisign.pub"], cwd=mirror, capture_output=True, text=True)
    assert r.returncode == 0 and "Signature and comment signature verified" in r.stdout, r.stdout + r.stderr
    listed = {line.split("  ", 1)[1] for line in (mirror / "SHA256SUMS").read_text().splitlines()}
    assert listed == set(files_of(mirror)) - {"SHA256SUMS", "SHA256SUMS.minisig"}
    # a changed page no longer checks
    tampered = tmp_path / "tampered"
    shutil.copytree(mirror, tampered)
    (tampered / "totales" / "index.html").write_text("<h1>otros números</h1>")
    assert subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=tampered,
                          capture_output=True).returncode != 0


def test_every_page_and_json_of_the_site_is_there(mirror, mirror_bundle):
    mesas = [r[0] for r in db_rows(mirror_bundle, "select id from mesas")]
    centros = [r[0] for r in db_rows(mirror_bundle, "select centro from centros")]
    assert len(mesas) > 50
    for m in mesas:
        for rel in (f"mesa/{m}/index.html", f"en/mesa/{m}/index.html", f"mesa/{m}.json"):
            assert (mirror / rel).is_file(), rel
    for c in centros:
        for rel in (f"centro/{c}/index.html", f"totales/centro/{c}/index.html", f"centro/{c}.json"):
            assert (mirror / rel).is_file(), rel
    for level, sql in (("estado", "select cod_edo from estados"), ("municipio", "select id from municipios"),
                       ("parroquia", "select id from parroquias")):
        for (k,) in db_rows(mirror_bundle, sql):
            assert (mirror / f"totales/{level}/{k}/index.html").is_file() and (mirror / f"totales/{level}/{k}.json").is_file()
    for rel in ("index.html", "en/index.html", "buscar/index.html", "buscar/centros.json", "totales/index.html",
                "totales.json", "comprobar/index.html", "descargas/index.html", "acerca/index.html",
                "auditoria/index.html", "en/auditoria/index.html", "auditoria.json",
                f"descargas/{DB}.db", "descargas/SHA256SUMS", "descargas/SHA256SUMS.minisig",
                "descargas/minisign.pub", "assets/buscar.js", "assets/site.css", "-/static/app.css"):
        assert (mirror / rel).is_file(), rel
    # the JSON is the server's, byte for byte, at the same path
    client = site_mod.InProcessClient(site_mod.make_datasette(mirror_bundle))
    try:
        with_photo = db_rows(mirror_bundle, "select mesa_id from actas where image_sha256 is not null limit 1")[0][0]
        for (e,) in db_rows(mirror_bundle, "select cod_edo from audit_coverage where cod_edo is not null"):
            assert (mirror / f"auditoria/estado/{e}/index.html").is_file()
            assert (mirror / f"en/auditoria/estado/{e}/index.html").is_file()
        for path in (f"/mesa/{with_photo}.json", "/totales.json", f"/centro/{centros[0]}.json", "/buscar/centros.json",
                     "/auditoria.json"):
            assert (mirror / path.lstrip("/")).read_bytes() == client.get(path).content, path
        data = json.loads((mirror / f"mesa/{with_photo}.json").read_text())
        image = next(a["image_url"] for a in data["actas"] if a["image_url"])
        assert (mirror / image.lstrip("/")).read_bytes() == client.get(image).content
    finally:
        client.close()


def test_every_link_of_every_page_leads_to_a_file_of_the_mirror(mirror):
    missing, datasette = set(), set()
    pages = list(mirror.rglob("*.html"))
    for page in pages:
        text = page.read_text()
        assert 'http-equiv="Content-Security-Policy"' in text, page
        for url in re.findall(r'\s(?:href|src|action)="(/[^"]*)"', text):
            path = urllib.parse.unquote(urllib.parse.urlsplit(url.replace("&amp;", "&")).path)
            if path.startswith(f"/{DB}") or path.startswith("/-/") and not path.startswith("/-/static/"):
                datasette.add(path)
            target = mirror / (path.lstrip("/") + ("index.html" if path.endswith("/") else ""))
            if not target.is_file():
                missing.add((page.relative_to(mirror).as_posix(), url))
    assert len(pages) > 500
    assert not datasette, sorted(datasette)[:10]
    assert not missing, sorted(missing)[:10]


def test_mirror_command(mirror_bundle, tmp_path, signing_key):
    env = dict(os.environ, TESTIGO_KEY_PASSWORD=KEY_PASSWORD, PYTHONUNBUFFERED="1")
    out = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "publish", "mirror", str(mirror_bundle), "--out", str(out),
                        "--key", str(signing_key.secret), "--jobs", "1"], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "pages" in r.stdout and "signed with key" in r.stdout and (out / "index.html").is_file()
    # a folder that is not a previous mirror is never overwritten
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    r = subprocess.run([sys.executable, "-m", "publish", "mirror", str(mirror_bundle), "--out", str(other)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 1 and "not an empty folder or a previous mirror" in r.stderr
    assert (other / "notes.txt").read_text() == "mine"
    with pytest.raises(MirrorError):
        make_mirror(mirror_bundle, other)


# --- in a browser, from a plain static server ------------------------------------------------------

@pytest.fixture(scope="module")
def static_server(mirror):
    proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                             "--directory", str(mirror)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    line = proc.stdout.readline()
    m = re.search(r"port (\d+)", line)
    assert m, line
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    yield f"http://127.0.0.1:{m.group(1)}"
    proc.terminate()
    proc.wait(10)


def test_mirror_in_a_browser_search_open_a_mesa_see_photo_numbers_totals(static_server, page, mirror, mirror_bundle):
    mesa_id, centro, validos = db_rows(mirror_bundle, "select p.mesa_id, m.centro, c.validos from actas p "
                                       "join mesas m on m.id = p.mesa_id join actas c on c.mesa_id = p.mesa_id "
                                       "and c.counted = 1 where p.image_sha256 is not null order by 1 limit 1")[0]
    blocked = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text
            and "frame-ancestors" not in m.text else None)
    page.goto(static_server + "/")
    page.fill("#q", str(centro))
    with page.expect_navigation():
        page.click("#find button[type=submit]")
    assert "/buscar/?q=" in page.url
    page.wait_for_selector("#results")
    assert f"Centro {centro}" in page.inner_text("#results")
    assert "votación" in page.inner_text("h1")          # served without a charset: the page says utf-8
    shot(page, "mirror-1-search")
    with page.expect_navigation():
        page.click(f'#results a[href="/mesa/{mesa_id}/"]')
    assert page.evaluate("location.pathname") == f"/mesa/{mesa_id}/"
    page.locator("img.t-acta-img").first.scroll_into_view_if_needed()
    page.wait_for_function("(() => { const i = document.querySelector('img.t-acta-img');"
                           " return i && i.complete && i.naturalWidth > 0; })()")
    assert page.inner_text("#validos") == f"{validos:,}".replace(",", ".")
    shot(page, "mirror-2-mesa")
    with page.expect_navigation():
        page.click("#lang-switch")
    assert page.evaluate("location.pathname") == f"/en/mesa/{mesa_id}/" and "Registered electors" in page.inner_text("body")
    # the totals, from the menu, with the chart the bundle's numbers give
    with page.expect_navigation():
        page.click('.t-nav a[href="/en/totales/"]')
    bars = page.evaluate("Array.from(document.querySelectorAll('#chart-totals g.t-bar'))"
                         ".map(g => [g.dataset.code, Number(g.dataset.votes)])")
    totals = json.loads((mirror_bundle / "datapackage.json").read_text())["testigo"]["totals"]
    assert dict(bars) == totals and sum(totals.values()) > 0
    shot(page, "mirror-3-totals")
    # a place name finds the centre too, accents and case aside
    place = db_rows(mirror_bundle, f"select parroquia from centros where centro = {centro}")[0][0]
    word = max(re.findall(r"\w+", place.replace("PQ.", "")), key=len).lower()
    page.goto(static_server + "/buscar/?q=" + urllib.parse.quote(word))
    page.wait_for_selector("#results")
    assert f"Centro {centro}" in page.inner_text("#results")
    assert blocked == []                    # the mirror's <meta> policy let every script it needs run


@pytest.mark.parametrize("lang", ["es", "en"])
def test_mirror_checks_a_photo_in_the_browser_and_links_to_its_mesa_page(static_server, page, lang):
    """/comprobar in the mirror reads the QR in the browser as on the site, and its link to the
    mesa goes to the mirror's page of that mesa (a folder, under /en/ in English), not to the
    site's ?lang=en address a static host ignores."""
    prefix = "/en" if lang == "en" else ""
    page.goto(f"{static_server}{prefix}/comprobar/")
    page.set_input_files("#photo-file", str(SAMPLE / PHOTOS[0]))
    page.wait_for_selector("#photo-result", timeout=60_000)
    assert page.get_attribute("#photo-result", "data-result") == "match"
    mesa_id = "201301006.01"
    link = page.locator(f'#photo-result a:has-text("{mesa_id}")')
    assert link.get_attribute("href") == f"{prefix}/mesa/{mesa_id}/"
    with page.expect_navigation():
        link.click()
    assert page.evaluate("location.pathname") == f"{prefix}/mesa/{mesa_id}/"
    assert ("Registered electors" if lang == "en" else "Electores") in page.inner_text("body")
