"""/comprobar with a photo, in headless Chromium: the QR is read in the browser (vendored
zxing-wasm) and compared there with /mesa/<id>.json; no request carries the photo.

The archive is ``sample_bundle`` (test_check.py): real CSV rows of the sample's mesas and two
shipped sample photos. The edited photo is the same acta rendered with a changed QR.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pathlib import Path

from archive import render
from conftest import shot
from test_check import PHOTOS_IN_BUNDLE, SAMPLE, edited, manifest, sample_bundle  # noqa: F401 (fixture)
from test_site import start_server, stop_server

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(sample_bundle):  # noqa: F811
    proc, url = start_server(sample_bundle)
    yield url.rstrip("/")
    stop_server(proc)


@pytest.fixture(scope="module")
def edited_photo(tmp_path_factory, election):
    payload = manifest()[PHOTOS_IN_BUNDLE[0]]["payload"]
    path = tmp_path_factory.mktemp("edited") / "mi_acta.jpg"
    path.write_bytes(render.render_jpeg(edited(payload), seed=11, level="mild", election=election))
    return path


def record_requests(page) -> list:
    seen = []
    page.on("request", lambda r: seen.append((r.method, r.url, r.post_data_buffer, r.headers)))
    return seen


def feed(page, photo) -> str:
    page.evaluate("document.getElementById('photo-outcome').textContent = ''")
    page.set_input_files("#photo-file", str(photo))
    page.wait_for_selector("#photo-result", timeout=60_000)
    return page.get_attribute("#photo-result", "data-result")


def test_photo_checked_in_the_browser_and_never_sent(server, page, sample_bundle, edited_photo):  # noqa: F811
    requests = record_requests(page)
    page.goto(server + "/comprobar")
    assert page.locator("#photo-check").is_visible()          # shown once the script runs
    assert "Su foto no sale de su teléfono" in page.inner_text("#privacy")
    match_photo = SAMPLE / PHOTOS_IN_BUNDLE[0]

    assert feed(page, match_photo) == "match"
    assert "Coincide" in page.inner_text("#photo-result")
    assert "201301006.01" in page.inner_text("#photo-result")
    assert page.get_attribute("#your-photo", "src").startswith("blob:")   # their photo, shown locally
    page.wait_for_function("document.getElementById('archived-photo').naturalWidth > 0")
    assert page.get_attribute("#archived-photo", "src").startswith("/images/")
    rows = page.evaluate("Array.from(document.querySelectorAll('#photo-field-table tbody tr'))"
                         ".map(t => [t.dataset.field, t.className])")
    assert len(rows) == 12 and all(c == "t-same" for _, c in rows)   # válidos, nulos, 10 candidates
    assert "nulos" in [f for f, _ in rows]                     # the QR's nulos, compared in the browser too
    shot(page, "1-photo-match")

    assert feed(page, edited_photo) == "mismatch"
    assert "No coincide: 2 de 12 campos" in page.inner_text("#photo-result")
    diffs = page.evaluate("Array.from(document.querySelectorAll('#photo-field-table tr.t-diff'))"
                          ".map(t => t.dataset.field)")
    # the browser's verdict is the CLI's (one definition of the comparison)
    # (`testigo check` run as a volunteer would run it)
    cli = subprocess.run([sys.executable, "-m", "publish", "check", str(edited_photo), "--bundle", str(sample_bundle),
                          "--json"], capture_output=True, text=True, timeout=120)
    expected = json.loads(cli.stdout)
    assert cli.returncode == 2 and expected["status"] == "mismatch"
    assert sorted(diffs) == sorted(d["field"] for d in expected["differences"]) == ["EG", "NM"]
    assert page.evaluate("document.querySelector('#photo-fields').open") is True
    shot(page, "2-photo-mismatch")

    # What went over the network: no request body at all, no image bytes, no QR text; only GETs of
    # the page, its scripts and styles, the decoder, the mesa's JSON and the archived photo.
    photos = [match_photo.read_bytes(), edited_photo.read_bytes()]
    assert requests
    for method, url, body, headers in requests:
        assert method == "GET" and not body, (method, url)
        assert not any(p[:64].hex() in url or str(len(p)) == headers.get("content-length") for p in photos)
        assert "!" not in url and "%21" not in url, url                    # the QR text is never sent
    paths = [u.split(server, 1)[1].split("?")[0] for _, u, _, _ in requests if u.startswith(server)]
    assert [p for p in paths if p.startswith("/mesa/")] == ["/mesa/201301006.01.json"] * 2
    assert set(paths) <= {"/comprobar", "/mesa/201301006.01.json", "/assets/site.css", "/assets/comprobar.js",
                          "/assets/vendor/zxing-wasm/index.js", "/assets/vendor/zxing-wasm/zxing_reader.wasm",
                          "/-/static/app.css", "/favicon.ico"} | {p for p in paths if p.startswith("/images/")}
    assert all(u.startswith((server, "blob:", "data:")) for _, u, _, _ in requests)   # no CDN


def test_photo_check_on_a_phone_in_english(server, chromium, tmp_path):
    context = chromium.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.shots = Path(os.environ.get("TESTIGO_SCREENSHOTS") or tmp_path)
    try:
        page.goto(server + "/comprobar?lang=en")
        assert "Your photo never leaves your phone" in page.inner_text("#privacy")
        assert page.get_attribute("#photo-camera", "capture") == "environment"
        assert feed(page, SAMPLE / PHOTOS_IN_BUNDLE[1]) == "match"
        assert page.inner_text("#photo-result").startswith("✔ Match: all 12 fields")
        href = page.get_attribute("#photo-result a[href^='/mesa/']", "href")   # the site's English page
        assert href.endswith("?lang=en") and not href.startswith("/en/"), href
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]   # nothing wider than the phone
        box = page.locator("#your-photo").bounding_box()
        assert box["width"] <= PHONE["width"]
        shot(page, "3-photo-phone-en")
    finally:
        context.close()


def test_a_photo_without_an_acta_qr_gets_a_clear_message(server, page, tmp_path, election):
    not_acta = tmp_path / "otra_cosa.jpg"
    not_acta.write_bytes(render.render_jpeg("https://example.org/hola", seed=3, level="mild", election=election))
    page.goto(server + "/comprobar")
    assert feed(page, not_acta) == "invalid"
    assert "no parece el QR de un acta" in page.inner_text("#photo-result")
