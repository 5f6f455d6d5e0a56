"""The estado map on /totales: every registry estado has one shape, the colors follow the totals,
and it works in a phone-sized and a desktop browser, in Spanish and English."""
from __future__ import annotations

import json
import os
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from archive import boundaries
from conftest import ROOT, shot
from publish.site.pages import choropleth
from test_site import SiteClient, start_server, stop_server

DATA = ROOT / "datasets" / "ve-2024"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def test_every_registry_estado_has_exactly_one_shape(election):
    rows = boundaries.read_match(DATA)
    codes = Counter(int(r["cod_edo"]) for r in rows)
    assert set(codes) == set(election.estados) and set(codes.values()) == {1}   # all 24, none twice
    features = json.loads((DATA / boundaries.SHAPES_FILE).read_text(encoding="utf-8"))["features"]
    in_file = Counter(f["properties"]["adm1_code"] for f in features)
    assert set(in_file.values()) == {1}                                          # no shape twice in the file
    used = Counter(r["adm1_code"] for r in rows)
    assert set(used.values()) == {1} and set(used) <= set(in_file)               # no shape for two estados
    for r in rows:                       # the table says which registry estado each shape is
        assert r["estado"] == election.estados[int(r["cod_edo"])]
    shapes = boundaries.load("ve-2024")
    by_code = Counter(s.cod_edo for s in shapes if s.cod_edo is not None)
    assert by_code == Counter(dict.fromkeys(election.estados, 1))
    unmatched = sorted(s.name for s in shapes if s.cod_edo is None)
    assert unmatched == ["", "Dependencias Federales"]          # islands without voters only
    assert (DATA / boundaries.SHAPES_FILE).stat().st_size < 60_000  # simplified: small enough to ship
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert boundaries.SOURCE_PACKAGE in readme and "Natural Earth" in readme and boundaries.MATCH_FILE in readme


def test_projection_keeps_the_country_in_its_box():
    paths, width, height = boundaries.project(boundaries.load("ve-2024"))
    assert width == 600 and 400 < height < 600                  # Venezuela is a little wider than tall
    nums = [float(v) for p in paths for v in p.d.replace("M", " ").replace("L", " ").replace("Z", " ").split()]
    xs, ys = nums[0::2], nums[1::2]
    assert min(xs) == 0 and max(xs) == width and min(ys) == 0 and max(ys) == height


class MapAreas(HTMLParser):
    """{estado code: attributes of its <a> plus the fill of its <path>} from the /totales page."""

    def __init__(self):
        super().__init__()
        self.areas: dict = {}
        self.none: list = []
        self._open = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and "t-area" in (a.get("class") or ""):
            self._open = a
        elif tag == "path" and self._open is not None:
            self.areas[int(self._open["data-key"])] = dict(self._open, fill=a["fill"])
            self._open = None
        elif tag == "path" and a.get("class") == "t-area-none":
            self.none.append(a)


def luminance(hex_color: str) -> float:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.fixture(scope="module")
def site(bundle):
    from publish.site import server as site_mod
    c = SiteClient(site_mod.make_datasette(bundle))
    yield c
    c.close()


def test_colors_follow_the_data(site, election):
    data = site.json("/totales.json")
    national = sorted(data["votes"], key=lambda c: -data["votes"][c])       # the national ranking
    page = MapAreas()
    page.feed(site.get("/totales").text)
    assert set(page.areas) == set(election.estados)
    assert len(page.none) == 2 and all(p["fill"] == choropleth.NO_VOTERS for p in page.none)
    seen_data = seen_none = 0
    for child in data["children"]:
        area = page.areas[child["key"]]
        assert area["href"] == f"/totales/estado/{child['key']}"
        total = sum(child["votes"].values())
        if not total:
            seen_none += 1
            assert area["fill"] == choropleth.NO_DATA and area["data-leader"] == ""
            continue
        seen_data += 1
        leader = max(child["votes"], key=lambda c: (child["votes"][c], -national.index(c)))
        share = child["votes"][leader] / total
        assert area["data-leader"] == leader
        assert float(area["data-share"]) == pytest.approx(share, abs=1e-6)
        klass = 0 if share < 0.5 else 1 if share < 0.6 else 2 if share < 0.7 else 3 if share < 0.8 else 4
        palette = choropleth.PALETTES[min(national.index(leader), 2)]
        assert area["fill"] == palette[klass], (child["nombre"], leader, share)
        assert child["nombre"] in area["data-info"] and f"{share * 100:.1f}".replace(".", ",") in area["data-info"]
    assert seen_data >= 15                       # the slice covers most estados
    # within one leader's palette, a larger share is never lighter
    for leader in {a["data-leader"] for a in page.areas.values() if a["data-leader"]}:
        ranked = sorted((float(a["data-share"]), luminance(a["fill"])) for a in page.areas.values()
                        if a["data-leader"] == leader)
        assert all(l1 >= l2 for (_, l1), (_, l2) in zip(ranked, ranked[1:]))


def test_colors_change_with_the_data():
    """The scale itself: palettes by national rank, classes by share, grey without votes."""
    assert choropleth.color(0, 0.499) == choropleth.PALETTES[0][0]
    assert choropleth.color(0, 0.5) == choropleth.PALETTES[0][1]
    assert choropleth.color(1, 0.85) == choropleth.PALETTES[1][4]
    assert choropleth.color(5, 0.65) == choropleth.PALETTES[2][2]
    for palette in choropleth.PALETTES:
        lum = [luminance(c) for c in palette]
        assert lum == sorted(lum, reverse=True)          # light to dark


@pytest.fixture(scope="module")
def server(bundle):
    proc, url = start_server(bundle)
    yield url.rstrip("/")
    stop_server(proc)


@pytest.mark.parametrize("size,lang", [("phone", "es"), ("desktop", "en")])
def test_map_screenshots_and_numbers_on_tap_or_hover(server, chromium, tmp_path, size, lang):
    phone = size == "phone"
    context = chromium.new_context(viewport=PHONE if phone else DESKTOP, is_mobile=phone, has_touch=phone,
                                   device_scale_factor=2 if phone else 1)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.shots = Path(os.environ.get("TESTIGO_SCREENSHOTS") or tmp_path)
    try:
        page.goto(server + "/totales" + ("?lang=en" if lang == "en" else ""))
        svg = page.locator("#map-svg")
        svg.scroll_into_view_if_needed()
        box = svg.bounding_box()
        width = (PHONE if phone else DESKTOP)["width"]
        assert 300 < box["width"] <= width and box["height"] > 0.6 * box["width"] * 0.7
        assert page.evaluate("document.documentElement.scrollWidth") <= width     # no sideways scrolling
        assert page.locator("#map a.t-area").count() == 24
        bolivar = page.locator("#map a.t-area[data-key='6']")
        if phone:                               # first tap: the numbers; second tap: the estado's page
            bolivar.tap()
            assert page.evaluate("location.pathname") == "/totales"
            assert page.inner_text("#map-info").startswith("EDO. BOLIVAR:")
            assert "Ver sus totales" in page.inner_text("#map-info")
        else:
            bolivar.hover()
            assert page.inner_text("#map-info").startswith("EDO. BOLIVAR:")
            assert "Open its totals" in page.inner_text("#map-info") and "votes)" in page.inner_text("#map-info")
        shot(page, f"map-{size}-{lang}")
        page.screenshot(path=str(page.shots / f"map-{size}-{lang}-full.png"), full_page=True)
        with page.expect_navigation():
            bolivar.tap() if phone else bolivar.click()
        assert page.evaluate("location.pathname") == "/totales/estado/6"
    finally:
        context.close()
