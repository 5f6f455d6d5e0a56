"""The browser app's audit pages and its mesa page with every reading, in headless Chromium,
served by Debian's nginx on loopback (the app on one origin, the bundle on another: CORS).

The audit is a bundle built from crafted inputs where checks list planted mesas (as
tests/test_audit.py builds it); the numbers the app shows must be `testigo audit --json`'s on the
same bundle. The mesa page's readings are a bundle with volunteers' transcriptions (public aliases)
and duplicate photos (issues); its values must be the bundle's rows.
"""
from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from archive import mesa_pages
from archive.bundle import build_bundle
from conftest import KEY_PASSWORD, payload_for_row, shot
from nginx import NGINX, StaticNginx
from publish.app.writer import write_app
from publish.cli import cli

pytestmark = pytest.mark.skipif(NGINX is None, reason="Debian's nginx is not installed (APT_TEST)")

BUDGET_REQUESTS, BUDGET_BYTES = 15, 300 * 1000


def num(text: str) -> int:
    return int(text.replace(".", "").replace(",", "").strip())


def mid(row) -> str:
    return f"{int(row['CENTRO'])}.{int(row['MESA']):02d}"


@pytest.fixture(scope="module")
def crafted(tmp_path_factory, csv_rows, stub_ingest, signing_key):
    from test_audit import ESTADOS, _build, _craft
    rows, planted, extras = _craft([r for r in csv_rows if r["COD_EDO"] in ESTADOS])
    q = extras["qr_only"]
    photos = {"disagree.jpg": payload_for_row(extras["disagree"], move=2), "q1.jpg": payload_for_row(q),
              "q2.jpg": payload_for_row(q, move=1)}
    return _build(tmp_path_factory.mktemp("appaudit"), rows, photos, stub_ingest, signing_key), planted


@pytest.fixture(scope="module")
def readings(tmp_path_factory, transcribe_workdir, signing_key):
    """The transcription workdir with two photos agreed by volunteers (aliases ana-caracas, carla)."""
    from archive.transcription import Transcriptions
    from test_transcription import fields_of
    path = tmp_path_factory.mktemp("appreadings") / "wd"
    shutil.copytree(transcribe_workdir.path, path)
    t = Transcriptions(path)
    ana, beto, carla = t.volunteer("Ana Pérez", "ana-caracas"), t.volunteer("Beto Ruiz"), t.volunteer("Carla Secreta", "carla")
    p = transcribe_workdir.photos
    for name, entries in {"t_qr.jpg": [(ana, 1), (beto, 1)], "t_new1.jpg": [(ana, 0), (beto, 2), (carla, 0)]}.items():
        sha, row = p[name]
        for who, move in entries:
            t.save(sha, who.id, fields_of(row, move=move))
    t.close()
    out = path.parent / "B"
    build_bundle(path, out, key=signing_key.secret, password=KEY_PASSWORD)
    return out, {name: p[name][1] for name in ("t_qr.jpg", "t_new1.jpg")}


@pytest.fixture(scope="module")
def generic(crafted, tmp_path_factory):
    """The crafted bundle plus a check the app has never heard of (as another branch adds checks:
    rows of audit_checks, audit_notes and audit_check_mesas), its app tables recomputed."""
    out = tmp_path_factory.mktemp("appgeneric") / "B"
    shutil.copytree(crafted[0], out)
    db = sqlite3.connect(next(out.glob("*.db")))
    mesa = db.execute("SELECT id FROM mesas WHERE outside_registry = 0 ORDER BY id LIMIT 1").fetchone()[0]
    db.execute("INSERT INTO audit_checks (check_id, sort_order, mesas, rows, threshold) VALUES "
               "('printed_summary_gap', 99, 1, 1, NULL)")
    db.execute("INSERT INTO audit_notes (id, kind, sort_order, title_en, title_es, about_en, about_es, limits_en, "
               "limits_es) VALUES ('printed_summary_gap', 'check', 99, 'Printed summary gap', 'Hueco del resumen impreso', "
               "'About it in English.', 'Acerca de ella en castellano.', 'Its limits.', 'Sus límites.')")
    db.execute("INSERT INTO audit_check_mesas (check_id, mesa_id, detail) VALUES ('printed_summary_gap', ?, 'x')", (mesa,))
    for table in mesa_pages.APP_TABLES:
        db.execute(f"DROP TABLE {table}")
    mesa_pages.write(db)
    db.commit()
    db.close()
    return out, mesa


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, crafted, readings, generic):
    tmp = tmp_path_factory.mktemp("apppages")
    data = tmp / "data"
    data.mkdir()
    for name, b in (("audit", crafted[0]), ("readings", readings[0]), ("generic", generic[0])):
        (data / name).symlink_to(b, target_is_directory=True)
    servers = {"data": StaticNginx(tmp / "ngx-data", data)}
    try:
        for name in ("audit", "readings", "generic"):
            write_app(data / name, tmp / "apps" / name, [f"{servers['data'].url}/{name}/"])
        servers["app"] = StaticNginx(tmp / "ngx-app", tmp / "apps")
        yield servers
    finally:
        for s in servers.values():
            s.stop()


def open_app(page, hosts, app: str, route: str, kind: str) -> None:
    page.goto(f"{hosts['app'].url}/{app}/index.html#{route}")
    page.wait_for_selector(f"#view[data-ready='1'][data-page='{kind}']", timeout=60_000)


def audit_json(bundle) -> dict:
    res = CliRunner().invoke(cli, ["audit", str(bundle), "--json", "--pubkey", str(bundle / "minisign.pub")])
    assert res.exit_code == 0, res.output
    return json.loads(res.output[res.output.index("{"):])


def test_audit_pages_show_what_testigo_audit_says(hosts, page, crafted):
    bundle, planted = crafted
    want = audit_json(bundle)
    before = len(hosts["data"].requests())
    open_app(page, hosts, "audit", "/auditoria", "audit")
    seen = hosts["data"].requests()[before:]
    nat = want["coverage"][0]
    assert num(page.inner_text("#cov-mesas")) == nat["mesas_counted"]
    assert num(page.inner_text("#cov-electores")) == nat["electores_counted"]
    assert page.locator("#coverage-table tbody tr").count() == len(want["coverage"]) - 1
    db = sqlite3.connect(next(bundle.glob("*.db")))
    notes = dict(db.execute("SELECT id, about_es FROM audit_notes"))
    for c in want["checks"]:
        assert num(page.inner_text(f'[data-count="{c["id"]}"]')) == c["count"], c["id"]
        links = page.locator(f'#detail-{c["id"]} .t-mesas a').evaluate_all("as => as.map(a => a.getAttribute('href'))")
        assert links == [f"#/mesa/{m}" for m in c["mesas"]], c["id"]
        assert notes[c["id"]] in page.text_content(f'#detail-{c["id"]}'), c["id"]
    for cid, mesas in planted.items():
        got = next(c for c in want["checks"] if c["id"] == cid)
        assert mesas <= set(got["mesas"]), cid
    national = [t for t in want["tests"] if t["scope"] == "national"]
    rows = page.locator("#tests-table tbody tr")
    assert rows.count() == len(national)
    for i, t in enumerate(national):
        r = rows.nth(i)
        assert (r.get_attribute("data-test"), r.get_attribute("data-candidate")) == (t["id"], t["candidate"])
        cells = r.locator("td").all_inner_texts()
        assert num(cells[2]) == t["n"] and ("⚑" in cells[5]) == t["flag"]
        if t["p_value"] is not None and t["p_value"] >= 0.0001:
            assert cells[4] == f"{t['p_value']:.4f}"
    main = list(dict.fromkeys(t["candidate"] for t in want["tests"]))
    assert page.locator("svg.t-fingerprint").count() == len(main) and page.locator("svg.t-hist").count() == 1 + len(main)
    assert page.locator("svg.t-digits").count() == len([t for t in national if t["id"] == "last_digit" and t["digits"]])
    for b in want["official"]:
        for c in b["candidates"]:
            tds = page.locator(f'#official-{b["bulletin"]} tr[data-code="{c["candidate"]}"] td').all_inner_texts()
            assert (num(tds[1]), num(tds[2])) == (c["announced"], c["archived"])
    assert len(seen) <= BUDGET_REQUESTS and sum(r[3] for r in seen) <= BUDGET_BYTES, seen
    shot(page, "app-7-audit")
    # an estado: the rounded one's digit tests flagged; another lists its own planted mesas only
    from test_audit import ROUNDED
    page.evaluate("r => { document.getElementById('view').dataset.ready = ''; location.hash = r; }", f"#/auditoria/estado/{ROUNDED}")
    page.wait_for_selector("#view[data-ready='1'][data-page='audit']")
    assert page.inner_text("#view").count("⚑ marcada") == 4
    page.evaluate("r => { document.getElementById('view').dataset.ready = ''; location.hash = r; }", "#/en/auditoria/estado/23")
    page.wait_for_selector("#view[data-ready='1'][data-page='audit']")
    links = page.locator("#detail-identical_numbers .t-mesas a").all_inner_texts()
    assert set(links) == {m for m in planted["identical_numbers"] if m.startswith("23")}
    assert "Audit" in page.inner_text("#audit-title")
    en = dict(db.execute("SELECT id, about_en FROM audit_notes"))
    assert en["identical_numbers"] in page.text_content("#detail-identical_numbers")


def test_flagged_mesa_links_its_check(hosts, page, crafted):
    m = sorted(crafted[1]["single_candidate"])[0]
    open_app(page, hosts, "audit", f"/mesa/{m}", "mesa")
    link = page.locator("#audit-checks a")
    assert link.count() == 1 and link.get_attribute("href") == "#/auditoria?check=single_candidate"
    page.evaluate("document.getElementById('view').dataset.ready = ''")
    link.click()
    page.wait_for_selector("#view[data-ready='1'][data-page='audit']")
    assert page.locator("#detail-single_candidate").evaluate("d => d.open")
    open_app(page, hosts, "audit", "/", "home")
    assert page.locator('#home-audit[href="#/auditoria"]').count() == 1 and page.locator('#nav a[href="#/auditoria"]').count() == 1


def test_a_new_check_appears_with_no_app_change(hosts, page, generic):
    _, mesa = generic
    open_app(page, hosts, "generic", "/auditoria", "audit")
    assert num(page.inner_text('[data-count="printed_summary_gap"]')) == 1
    detail = page.text_content("#detail-printed_summary_gap")
    assert "Hueco del resumen impreso" in detail and "Acerca de ella en castellano." in detail and "Sus límites." in detail
    assert page.locator(f'#detail-printed_summary_gap a[href="#/mesa/{mesa}"]').count() == 1
    open_app(page, hosts, "generic", f"/en/mesa/{mesa}", "mesa")
    assert "Printed summary gap" in page.inner_text("#audit-checks")


def test_mesa_page_shows_every_reading(hosts, page, readings):
    bundle, rows = readings
    db = sqlite3.connect(next(bundle.glob("*.db")))
    db.row_factory = sqlite3.Row
    for name, row in rows.items():
        m = mid(row)
        actas = [dict(a) for a in db.execute("SELECT * FROM actas WHERE mesa_id = ? ORDER BY id", (m,))]
        open_app(page, hosts, "readings", f"/mesa/{m}", "mesa")
        shown = {li.get_attribute("data-acta"): li.get_attribute("data-source") for li in page.locator("#sources li").all()}
        assert shown == {str(a["id"]): a["source"] for a in actas}
        for a in actas:
            t = db.execute("SELECT entries, transcribers FROM transcriptions WHERE acta_id = ?", (a["id"],)).fetchone()
            if t:
                li = page.locator(f'#transcription li[data-acta="{a["id"]}"]')
                assert num(li.locator(".t-entries").inner_text()) == t["entries"]
                assert li.locator(".t-aliases").inner_text() == ", ".join(json.loads(t["transcribers"]))
            if a["crosscheck"] == "disagree":
                diff = json.loads(a["crosscheck_diff"])
                table = page.locator(f'table.t-diff[data-acta="{a["id"]}"]')
                assert table.locator("tbody tr").count() == len(diff)
        if name == "t_qr.jpg":
            assert page.locator("table.t-diff").count() >= 1 and "ana-caracas" in page.inner_text("#transcription")
        if name == "t_new1.jpg":
            assert "ana-caracas, carla" in page.inner_text("#transcription")
    # the issues of a mesa's actas (a photo sent twice): the bundle's rows
    m, n_issues = db.execute("SELECT a.mesa_id, count(*) FROM issues i JOIN actas a ON a.id = i.acta_id "
                             "GROUP BY a.mesa_id ORDER BY a.mesa_id LIMIT 1").fetchone()
    ids = [str(r[0]) for r in db.execute("SELECT i.id FROM issues i JOIN actas a ON a.id = i.acta_id WHERE a.mesa_id = ? "
                                         "ORDER BY i.id", (m,))]
    open_app(page, hosts, "readings", f"/mesa/{m}", "mesa")
    assert page.locator("#issues-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.issue)") == ids
    assert len(ids) == n_issues
    shot(page, "app-8-mesa-readings")


@pytest.fixture(scope="module")
def printed_bundle(tmp_path_factory, read_workdir_path, signing_key):
    """Three real scans read by OCR with their sheet rows (tests/test_printed_bundle.py's workdir)."""
    out = tmp_path_factory.mktemp("appprinted") / "B"
    build_bundle(read_workdir_path, out, key=signing_key.secret, password=KEY_PASSWORD)
    return out


try:
    from test_printed_bundle import read_workdir_path  # noqa: F401  (the fixture, shared)
    from archive import ocr
    HAS_OCR = ocr.available()
except ImportError:
    HAS_OCR = False


@pytest.mark.skipif(not HAS_OCR, reason="tesseract-ocr with tesseract-ocr-spa not installed")
def test_printed_reading_and_search_by_printed_name(page, printed_bundle, tmp_path):
    db = sqlite3.connect(next(printed_bundle.glob("*.db")))
    db.row_factory = sqlite3.Row
    printed = [dict(r) for r in db.execute("SELECT p.*, a.mesa_id, a.id AS acta_id FROM printed p JOIN actas a "
                                           "ON a.image_sha256 = p.image_sha256 WHERE p.centre_name IS NOT NULL "
                                           "AND p.centro IS NOT NULL ORDER BY a.id")]
    assert printed
    write_app(printed_bundle, tmp_path / "www" / "app")
    server = StaticNginx(tmp_path / "ngx", tmp_path / "www")
    try:
        for p in printed:
            page.goto(f"{server.url}/app/index.html#/mesa/{p['mesa_id']}")
            page.wait_for_selector("#view[data-ready='1'][data-page='mesa']", timeout=60_000)
            col = [t.strip() for t in page.locator("#printed-table thead th").all_inner_texts()].index(f"#{p['acta_id']}")
            for field in ("centre_name", "centre_address", "uuid", "printed_at", "electors", "voters_machine",
                          "voters_notebook", "lines_read"):
                cell = page.locator(f'#printed-table tr[data-field="{field}"] td').nth(col).inner_text()
                want = p[field]
                assert (cell == "—" if want is None else
                        num(cell) == want if isinstance(want, int) else cell == want), (field, cell, want)
        # a word of the printed name that no place name has: found by the printed name alone
        words = [w for p in printed for w in p["centre_name"].split() if len(w) > 3 and w.isalpha()]
        word = next(w for w in words if not db.execute("SELECT count(*) FROM centros_fts WHERE centros_fts MATCH ?",
                                                        (f'"{w}"*',)).fetchone()[0])
        want = {p["centro"] for p in printed if word.lower() in p["centre_name"].lower()}
        page.goto(f"{server.url}/app/index.html#/buscar?q={word.lower()}")
        page.wait_for_selector("#view[data-ready='1'][data-page='search']", timeout=60_000)
        got = page.locator("#results li > a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
        assert {h.rsplit("/", 1)[1] for h in got if h.startswith("#/centro/")} == {str(c) for c in want}
        assert word.lower() in page.inner_text("#results .t-printed-name").lower()
        shot(page, "app-9-printed-search")
    finally:
        server.stop()


def test_search_by_place_finds_what_the_full_text_index_finds(hosts, page, crafted):
    """The app matches place names itself (place_names, read whole): the same centres as the
    bundle's full-text index, for one word, a word's beginning, two words, any case."""
    db = sqlite3.connect(next(crafted[0].glob("*.db")))
    parroquia, municipio = db.execute("SELECT parroquia, municipio FROM centros WHERE parroquia LIKE 'PQ. %' "
                                      "ORDER BY centro LIMIT 1 OFFSET 20").fetchone()
    word = parroquia.split()[-1]
    for text in (word.lower(), word[:4], f"{municipio.split()[-1]} {word}".upper()):
        fq = " ".join(f'"{w}"*' for w in text.split())
        want = [f"#/centro/{c}" for (c,) in db.execute(
            "SELECT c.centro FROM centros_fts f JOIN centros c ON c.rowid = f.rowid WHERE centros_fts MATCH ? "
            "ORDER BY c.centro LIMIT 50", (fq,))]
        assert want, text
        open_app(page, hosts, "audit", f"/buscar?q={text}", "search")
        got = page.locator("#results li > a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
        assert [h for h in got if h.startswith("#/centro/")] == want, text
