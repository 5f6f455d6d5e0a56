"""Hostile names in the inputs: HTML and JavaScript in folder and file names, zip members and
sheet fields go through the real ingest and build, and reach every page that shows them escaped
(and the Content-Security-Policy would stop them anyway)."""
from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import pytest

from archive import election as election_mod
from conftest import shot
from crawler import crawl
from publish.site import server as site_mod
from test_site import SiteClient, start_server, stop_server

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "datasets" / "ve-2024" / "sample"
PHOTO_A, MESA_A = "201301006_01_mild.jpg", "201301006.01"
# id=... marks each hostile name: a real element with that id would mean it was not escaped
FOLDER = "<i id=folder>fotos"
FILE = '"><img src=x id=file onerror=alert(1)>.jpg'
DUP = "<svg id=dup onload=alert(2)>.jpg"
ZIP = "<b id=zipname>lote.zip"
MEMBER = "<img src=x id=member onerror=alert(3)>.jpg"
TEXT_MEMBER = "<iframe id=txt src=javascript:alert(4)>.txt"
SHEET = "hoja <b id=sheet>.csv"
FIELD = "<b id=field>1</b>"
SHOWN = ("file", "dup", "member", "txt", "sheet", "field")      # each must reach some page, escaped
RAW_TAG = re.compile(r"<(?:img|svg|iframe|b|i|script)\b[^>]*\bid=(?:folder|file|dup|zipname|member|txt|sheet|field)\b",
                     re.I)


@pytest.fixture(scope="module")
def crafted_bundle(tmp_path_factory) -> Path:
    from archive.bundle import build_bundle
    from archive.ingest import ingest
    base = tmp_path_factory.mktemp("crafted")
    inbox = base / "inbox"
    folder = inbox / FOLDER
    folder.mkdir(parents=True)
    photo = (SAMPLE / PHOTO_A).read_bytes()
    (folder / FILE).write_bytes(photo)
    (folder / DUP).write_bytes(photo)                      # the same file again: an issue of mesa A
    with zipfile.ZipFile(inbox / ZIP, "w") as z:
        z.writestr("fotos/" + MEMBER, photo)               # and again, inside a zip
        z.writestr("fotos/" + TEXT_MEMBER, "not a photo")  # refused: not an image
    e = election_mod.load("ve-2024")
    with election_mod.open_text(e.registry_path) as f:
        reader = csv.DictReader(f)
        header, row = reader.fieldnames, next(reader)
    out = io.StringIO()
    w = csv.DictWriter(out, header, lineterminator="\n")
    w.writeheader()
    w.writerow(dict(row, EG=FIELD))                        # a sheet row with markup in a vote field
    (inbox / SHEET).write_text(out.getvalue(), encoding="utf-8")
    summary = ingest([str(inbox)], base / "work", jobs=1)
    assert summary.new["decoded"] == 1 and summary.new["duplicate"] == 2, summary.new
    assert summary.new["rejected-file"] == 1 and summary.new["invalid"] == 1, summary.new
    build_bundle(base / "work", base / "bundle")
    return base / "bundle"


@pytest.fixture(scope="module")
def crafted_site(crafted_bundle):
    c = SiteClient(site_mod.make_datasette(crafted_bundle))
    yield c
    c.close()


def test_crafted_names_reach_every_page_escaped(crafted_site):
    def get(path):
        r = crafted_site.get(path)
        return r.status_code, r.headers.get("content-type", ""), r.text

    shows_names = ("/ve-2024/issues", "/ve-2024/resumen_de_entradas", "/ve-2024/actas_con_alertas")
    own = ("/", "/buscar", "/totales", "/comprobar", "/descargas", "/acerca", f"/mesa/{MESA_A}", "/centro/201301006")

    def follow(path, parent):
        p = path.split("?")[0]
        return parent.depth < 2 and (p in own or p == "/ve-2024" or p.startswith(shows_names))
    result = crawl(get, ["/", f"/mesa/{MESA_A}", "/ve-2024/issues", "/ve-2024/issues.json"], follow, limit=400)
    pages = result.html_pages()
    assert len(pages) >= 10 and not result.failures(), [(p.path, p.status) for p in result.failures()]
    for p in pages:
        assert not RAW_TAG.search(p.text), (p.path, RAW_TAG.search(p.text).group(0))
        assert "id=folder" not in p.text, p.path             # volunteers' folders are never published
    everything = "\n".join(p.text for p in result.pages.values())
    for marker in SHOWN:
        assert f"id={marker}" in everything, marker          # it did reach a page: escaped
    mesa = result.pages[f"/mesa/{MESA_A}"].text
    assert "&lt;svg id=dup onload=alert(2)&gt;.jpg" in mesa and "&lt;img src=x id=member" in mesa


def test_crafted_names_do_nothing_in_a_browser(crafted_bundle, page):
    proc, url = start_server(crafted_bundle)
    try:
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for path in (f"mesa/{MESA_A}", "ve-2024/issues", "ve-2024/issues/1", "ve-2024/resumen_de_entradas"):
            page.goto(url + path)
            page.wait_for_load_state("load")
            found = page.evaluate("Array.from(document.querySelectorAll('[id]')).map(e => e.id)"
                                  ".filter(i => ['file','dup','member','txt','sheet','field','zipname','folder'].includes(i))")
            assert found == [], (path, found)
        shot(page, "crafted-issues")
        page.goto(url + f"mesa/{MESA_A}")
        assert "<svg id=dup onload=alert(2)>.jpg" in page.inner_text("#issues")   # shown as text
        assert dialogs == []
    finally:
        stop_server(proc)
