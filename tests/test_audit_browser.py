"""/auditoria in headless Chromium (Debian's package), on a phone (390×844) and a desktop, in
Spanish and English: the figures are drawn, nothing overflows the screen, the links lead to the
estado and to the flagged mesa. Screenshots are left in the test's tmp folder
(``TESTIGO_SCREENSHOTS`` to keep them elsewhere): auditoria-<lang>-<phone|desktop>.png.
"""
from __future__ import annotations

import pytest

from conftest import shot
from test_audit import ROUNDED, crafted, source_rows  # noqa: F401  (module fixtures)
from publish.site import server as site_mod
from test_site import stop_server

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}


@pytest.fixture(scope="module")
def server(crafted):  # noqa: F811
    proc, url = site_mod.start_in_subprocess(crafted[0], timeout=300)   # a loaded CI machine starts slowly
    yield url.rstrip("/")
    stop_server(proc)


@pytest.mark.parametrize("lang", ["es", "en"])
@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_audit_page_on_phone_and_desktop(server, page, lang, device):
    vp = VIEWPORTS[device]
    page.set_viewport_size(vp)
    page.goto(server + "/auditoria" + ("?lang=en" if lang == "en" else ""))
    title = page.inner_text("#audit-title")
    assert title == ("Auditoría: ¿cuadran las actas?" if lang == "es" else "Audit: do the actas hold together?")
    # the page itself never scrolls sideways (wide tables scroll in their own box)
    assert page.evaluate("document.documentElement.scrollWidth") <= vp["width"]
    fig = page.locator("#fig-fingerprint-EG svg")
    fig.scroll_into_view_if_needed()
    box = fig.bounding_box()
    assert 300 <= box["width"] <= vp["width"] and box["height"] > 250
    cells = page.evaluate("document.querySelectorAll('#fig-fingerprint-EG svg path[fill]').length")
    assert cells >= 3                      # shades of the fingerprint were drawn
    assert page.locator("#tests-table tr.t-flagged").count() == 4       # the rounded estado moves national
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, f"auditoria-{lang}-{device}")
    page.screenshot(path=str(page.shots / f"auditoria-{lang}-{device}-full.png"), full_page=True)


def test_from_the_audit_to_the_estado_and_a_flagged_mesa(server, page):
    page.goto(server + "/auditoria")
    with page.expect_navigation():
        page.click(f'#coverage-table a[href="/auditoria/estado/{ROUNDED}"]')
    assert page.locator("#tests-table tr.t-flagged").count() == 4
    page.goto(server + "/auditoria")
    link = page.locator("#detail-single_candidate .t-mesas a").first
    mesa = link.inner_text()
    with page.expect_navigation():
        link.click()
    assert page.evaluate("location.pathname") == f"/mesa/{mesa}"
    assert "Esta acta está en la comprobación" in page.inner_text("#audit-checks")
