"""End to end in headless Chromium (Debian's package): what a person sees on the public site.

Driven by Playwright (fixtures ``chromium`` and ``page`` in conftest.py). Screenshots of each
step are left in the test's tmp folder (``TESTIGO_SCREENSHOTS`` to keep them elsewhere).
"""
from __future__ import annotations

import pytest

from conftest import shot
from test_site import mesa_of, start_server, stop_server


@pytest.fixture(scope="module")
def server(bundle):
    proc, url = start_server(bundle)
    yield url.rstrip("/")
    stop_server(proc)


def test_find_centre_open_mesa_see_photo(server, page, photo_workdir):
    row = photo_workdir.facts["agree"]
    centro, mesa = str(int(row["CENTRO"])), mesa_of(row)
    page.goto(server + "/")
    assert "Busque su centro" in page.inner_text("body")
    page.fill("#q", centro)
    with page.expect_navigation():
        page.click("#find button[type=submit]")
    assert "/buscar?q=" + centro in page.url
    assert f"Centro {centro}" in page.inner_text("#results")
    shot(page, "1-search")
    with page.expect_navigation():
        page.click(f'#results a[href="/mesa/{mesa}"]')
    assert page.evaluate("location.pathname") == f"/mesa/{mesa}"
    img = page.locator("img.t-acta-img").first
    img.scroll_into_view_if_needed()
    page.wait_for_function("(() => { const i = document.querySelector('img.t-acta-img');"
                           " return i && i.complete && i.naturalWidth > 0; })()")
    assert img.evaluate("i => i.naturalHeight") > 0
    valid = f"{int(row['VOTOS_VALIDOS']):,}".replace(",", ".")
    assert page.inner_text("#validos") == valid
    assert page.inner_text("#electores") == f"{int(row['RE']):,}".replace(",", ".")
    assert "coincide" in page.inner_text("#numbers")
    shot(page, "2-mesa")
    # English is one click away and keeps the page
    with page.expect_navigation():
        page.click("#lang-switch")
    assert page.evaluate("location.search") == "?lang=en"
    assert "Registered electors" in page.inner_text("body")


def test_totals_chart_renders(server, page, photo_workdir):
    expected = photo_workdir.facts["expected_totals"]
    page.goto(server + "/totales")
    bars = page.evaluate("""Array.from(document.querySelectorAll('#chart-totals g.t-bar')).map(g => {
        const r = g.querySelector('rect').getBoundingClientRect();
        return [g.dataset.code, Number(g.dataset.votes), r.width, r.height]; })""")
    assert {code: votes for code, votes, _, _ in bars} == expected
    widths = {code: w for code, _, w, _ in bars}
    leader = max(expected, key=expected.get)
    assert widths[leader] > 100 and all(h > 5 for _, _, _, h in bars)
    assert widths[leader] == max(widths.values())
    box = page.locator("#chart-totals svg").bounding_box()
    assert box["width"] > 300 and box["height"] > 200
    shot(page, "3-totals")
    # drill down to a state from the table
    with page.expect_navigation():
        page.click("#children tbody tr a")
    assert "/totales/estado/" in page.evaluate("location.pathname")
    assert page.locator("#chart-totals rect").count() == len(expected)


def test_check_my_acta_match_and_mismatch(server, page, photo_workdir, payload_for):
    row = photo_workdir.facts["agree"]
    page.goto(server + "/comprobar")

    def check(text: str) -> str:
        page.fill("#qr", text)
        with page.expect_navigation():
            page.click("#qr-submit")
        return page.get_attribute("#check-result", "data-result")

    assert check(payload_for(row)) == "match"
    assert "Coincide" in page.inner_text("#check-result")
    shot(page, "4-check-match")
    assert check(payload_for(row, move=3)) == "mismatch"
    assert "No coincide" in page.inner_text("#check-result")
    diffs = page.evaluate("Array.from(document.querySelectorAll('#field-table tr.t-diff')).map(t => t.dataset.field)")
    assert set(diffs) >= {"EG", "NM"}
    assert page.evaluate("document.querySelector('#fields').open") is True
    shot(page, "5-check-mismatch")
    # nonsense pasted in: a clean message, no error page
    assert check('NEAR(" <b>hola</b> 😀') == "invalid"
    assert "no parece el QR" in page.inner_text("#check-result")
