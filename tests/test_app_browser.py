"""The browser app (`testigo mirror --app`) in headless Chromium, served by Debian's nginx on
loopback with deploy/nginx-app.conf: the app on one origin, the bundle on another (CORS).

Each test opens the app in a new browser context (cold cache), so the requests the data host's
access log shows for a page are what a first-time visitor costs.
"""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import make_photo, payload_for_row, shot
from nginx import NGINX, StaticNginx
from publish.app.writer import write_app

pytestmark = pytest.mark.skipif(NGINX is None, reason="Debian's nginx is not installed (APT_TEST)")

BUDGET_REQUESTS = 15          # issue 22: a mesa page's first view, beyond the app's files and the photo
BUDGET_BYTES = 300 * 1000
NO_RANGE = {"    gzip off;\n": "    gzip off;\n    max_ranges 0;\n"}
NO_CORS = {'        add_header Access-Control-Allow-Origin "*" always;\n': ""}


def num(text: str) -> int:
    return int(text.replace(".", "").replace(",", "").strip())


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, bundle):
    """Data hosts (good, without Range, without CORS) over the bundle and an altered copy; apps
    written for each case under one app host."""
    tmp = tmp_path_factory.mktemp("apphosts")
    data = tmp / "data"
    data.mkdir()
    (data / "good").symlink_to(bundle, target_is_directory=True)
    altered = data / "altered"
    shutil.copytree(bundle, altered)
    sums = (altered / "SHA256SUMS").read_text().splitlines(keepends=True)
    sums[0] = ("0" if sums[0][0] != "0" else "1") + sums[0][1:]       # one hash changed after signing
    (altered / "SHA256SUMS").write_text("".join(sums))
    servers = {"data": StaticNginx(tmp / "ngx-data", data), "norange": StaticNginx(tmp / "ngx-norange", data, NO_RANGE),
               "nocors": StaticNginx(tmp / "ngx-nocors", data, NO_CORS)}
    apps = tmp / "apps"
    try:
        good = servers["data"].url + "/good/"
        write_app(bundle, apps / "main", [good])
        write_app(bundle, apps / "failover", [servers["nocors"].url + "/good/", servers["norange"].url + "/good/", good])
        write_app(bundle, apps / "norange", [servers["norange"].url + "/good/"])
        write_app(bundle, apps / "altered", [servers["data"].url + "/altered/"])
        servers["app"] = StaticNginx(tmp / "ngx-app", apps)
        yield {k: v for k, v in servers.items()}
    finally:
        for s in servers.values():
            s.stop()


def open_app(page, hosts, app: str, route: str) -> None:
    page.goto(f"{hosts['app'].url}/{app}/index.html#{route}")
    wait_ready(page)


def wait_ready(page, kind: str | None = None) -> None:
    page.wait_for_selector("#view[data-ready='1']" + (f"[data-page='{kind}']" if kind else ""), timeout=60_000)


def go(page, route: str, kind: str) -> None:
    page.evaluate("r => { document.getElementById('view').dataset.ready = ''; location.hash = r; }", route)
    wait_ready(page, kind)


def test_pages_read_the_bundle_from_another_origin(hosts, page, photo_workdir, bundle):
    facts = photo_workdir.facts
    row = facts["agree"]
    centro, mesa_id = str(int(row["CENTRO"])), f"{int(row['CENTRO'])}.{int(row['MESA']):02d}"
    open_app(page, hosts, "main", "/")
    assert page.get_attribute("#view", "data-page") == "home"
    shown = {r.get_attribute("data-code"): num(r.inner_text().split("\t")[-1])
             for r in page.locator("#totals-table tbody tr").all()}
    assert shown == facts["expected_totals"]
    # the signature of SHA256SUMS, checked in the browser with the bundle's key
    page.wait_for_selector("#signature[data-ok]")
    key_id = json.loads((bundle / "datapackage.json").read_text())["testigo"]["public_key_fingerprint"]
    assert page.get_attribute("#signature", "data-ok") == "1" and page.inner_text("#key-id") == key_id
    shot(page, "app-1-home")
    # search by centre code, then its mesa with the photo
    page.fill("#q", centro)
    page.evaluate("document.getElementById('view').dataset.ready = ''")
    page.click("#find button[type=submit]")
    wait_ready(page, "search")
    assert page.evaluate("location.hash") == f"#/buscar?q={centro}"
    assert f"Centro {centro}" in page.inner_text("#results")
    page.evaluate("document.getElementById('view').dataset.ready = ''")
    page.click(f'#results a[href="#/mesa/{mesa_id}"]')
    wait_ready(page, "mesa")
    assert page.inner_text("#validos") == f"{int(row['VOTOS_VALIDOS']):,}".replace(",", ".")
    assert page.inner_text("#electores") == f"{int(row['RE']):,}".replace(",", ".")
    assert "coincide" in page.inner_text("#numbers")
    page.wait_for_selector("figure.t-photo[data-verified='1'] img.t-acta-img")
    assert page.locator("img.t-acta-img").first.evaluate("i => i.complete && i.naturalWidth > 0")
    shot(page, "app-2-mesa")
    # the centre: its mesas, linked the same way
    go(page, f"#/centro/{centro}", "centro")
    assert page.locator(f'#mesas a[href="#/mesa/{mesa_id}"]').count() == 1
    # totals with the map, and a state below
    go(page, "#/totales", "totals")
    bars = {b.get_attribute("data-code"): int(b.get_attribute("data-votes"))
            for b in page.locator("#chart-totals .t-bar").all()}
    assert bars == facts["expected_totals"]
    assert page.locator("#map-svg path").count() > 20 and page.locator("#children tbody tr").count() >= 1
    first = page.locator("#children tbody tr").first
    key, total = first.get_attribute("data-key"), num(first.locator("td").last.inner_text())
    go(page, f"#/totales/estado/{key}", "totals")
    assert num(page.inner_text("#total-votes")) == total
    shot(page, "app-3-totals")
    # English, one click away, same page
    page.evaluate("document.getElementById('view').dataset.ready = ''")
    page.click("#lang-switch")
    wait_ready(page, "totals")
    assert page.evaluate("location.hash") == f"#/en/totales/estado/{key}"
    assert "Votes for candidates in the counted actas" in page.inner_text("#view")
    go(page, "#/en/descargas", "descargas")
    assert "What this page proves and what it does not" in page.inner_text("#view")
    assert page.locator('#downloads a[href$="/good/ve-2024.db"]').count() == 1


def test_mesa_page_first_view_is_within_budget(hosts, page, photo_workdir):
    row = photo_workdir.facts["agree"]
    mesa_id = f"{int(row['CENTRO'])}.{int(row['MESA']):02d}"
    before = len(hosts["data"].requests())
    open_app(page, hosts, "main", f"/mesa/{mesa_id}")
    page.wait_for_selector("figure.t-photo[data-verified='1']")
    page.wait_for_selector("#signature[data-ok='1']")
    seen = hosts["data"].requests()[before:]
    photos = [r for r in seen if r[1].startswith("/good/images/")]
    data = [r for r in seen if r not in photos]
    assert len(photos) == 1 and photos[0][2] == 206          # the photo: one range request
    assert all(r[1].startswith("/good/") for r in data)
    assert any(r[1] == "/good/ve-2024.db" and r[2] == 206 for r in data)
    assert not any(r[1] == "/good/ve-2024.db" and r[0] == "GET" and r[2] == 200 for r in data)  # never whole
    n, sent = len(data), sum(r[3] for r in data)
    assert n <= BUDGET_REQUESTS, f"{n} requests for a mesa page: {data}"
    assert sent <= BUDGET_BYTES, f"{sent:,} bytes for a mesa page"
    # totals pages likewise, each a first view in a fresh browser
    for route in ("/totales", f"/totales/estado/{int(row['CENTRO']) // 10_000_000}"):
        fresh = page.context.browser.new_context().new_page()
        before = len(hosts["data"].requests())
        open_app(fresh, hosts, "main", route)
        assert fresh.get_attribute("#view", "data-page") == "totals" and fresh.locator("#not-found").count() == 0
        fresh.wait_for_selector("#signature[data-ok='1']")
        later = hosts["data"].requests()[before:]
        fresh.context.close()
        assert sum(r[3] for r in later) <= BUDGET_BYTES and len(later) <= BUDGET_REQUESTS, (route, later)


def test_comprobar_reads_the_qr_in_the_browser(hosts, page, photo_workdir, tmp_path):
    row = photo_workdir.facts["agree"]
    photo = tmp_path / "mi_acta.jpg"
    photo.write_bytes(make_photo(payload_for_row(row), width=1400))
    open_app(page, hosts, "main", "/comprobar")
    page.wait_for_selector("#photo-check:not([hidden])")
    page.set_input_files("#photo-file", str(photo))
    page.wait_for_selector("#photo-result", timeout=60_000)
    assert page.get_attribute("#photo-result", "data-result") == "match", page.inner_text("#photo-outcome")
    mesa_id = f"{int(row['CENTRO'])}.{int(row['MESA']):02d}"
    assert page.locator(f'#photo-outcome a[href="#/mesa/{mesa_id}"]').count() == 1
    shot(page, "app-4-comprobar")


def test_hosts_without_range_or_cors_are_named_and_skipped(hosts, page):
    open_app(page, hosts, "failover", "/")
    assert page.get_attribute("#view", "data-page") == "home"
    problems = page.locator("#host-status li").all_inner_texts()
    assert len(problems) == 2, problems
    assert hosts["nocors"].url in problems[0] and "CORS" in problems[0]
    assert hosts["norange"].url in problems[1] and "Range" in problems[1] and "entera" in problems[1]
    assert page.locator("#totals-table tbody tr").count() == 10
    # a host that ignores Range, alone: the page says so and never downloads the database
    before = len(hosts["norange"].requests())
    open_app(page, hosts, "norange", "/")
    assert "Range" in page.inner_text("#host-status") and page.locator("#host-error").is_visible()
    sent = sum(r[3] for r in hosts["norange"].requests()[before:])
    assert sent < 1_000_000, f"{sent:,} bytes: the whole database was sent"
    shot(page, "app-5-norange")


def test_altered_sha256sums_fails_the_signature(hosts, page):
    open_app(page, hosts, "altered", "/")
    page.wait_for_selector("#signature[data-ok]")
    assert page.get_attribute("#signature", "data-ok") == "0"
    assert "NO verifica" in page.inner_text("#signature")
    shot(page, "app-6-altered")
