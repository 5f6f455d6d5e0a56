"""The crawl: every link the site exposes, on a bundle built from the full CSV, answers.

From the home page in both languages, every link of every page is followed: the site's own
pages (a sample of each kind: the full set is what `testigo mirror` renders and checks), and
Datasette's pages they link to, plus the links on those (sorts, facets, filters, next pages,
rows, JSON and CSV), up to a number per table. No page may answer 4xx/5xx, say a query took
too long, or drop a facet it was asked for (Datasette lists those as "facets timed out").
The site's real settings apply (1 s per query, 200 ms per facet).
"""
from __future__ import annotations

import re
from collections import Counter

import pytest

from crawler import crawl
from publish.site import server as site_mod
from test_site import SiteClient

DB = "ve-2024"
PER_KIND = 25           # the site's own pages of one kind (mesa, centro, totales/parroquia...)
PER_TABLE = 60          # Datasette's pages of one table (sorts, facets, filters, rows, formats)


def kind(path: str) -> tuple[str, bool]:
    """(what kind of page, is it Datasette's) for a crawled path."""
    p, _, query = path.partition("?")
    english = "lang=en" in query
    if p == f"/{DB}" or p.startswith((f"/{DB}/", f"/{DB}.", "/-/")) and not p.startswith("/-/static/"):
        table = re.match(rf"^/{DB}/([^/.?]+)", p)
        return ("ds:" + (table.group(1) if table else p.strip("/")), True)
    parts = p.strip("/").split("/")
    name = "/".join(parts[:2]) if parts[0] == "totales" and len(parts) > 2 else parts[0]
    return (name + (" en" if english else ""), False)


@pytest.mark.slow
def test_every_link_the_site_exposes_answers_with_its_facets(full_bundle):
    client = SiteClient(site_mod.make_datasette(full_bundle))
    taken: Counter = Counter()

    def get(path):
        r = client.get(path)
        return r.status_code, r.headers.get("content-type", ""), r.text

    def datasette_hops(page) -> int:
        hops = 0
        while page is not None and kind(page.path)[1]:
            hops += 1
            page = page.via
        return hops

    def follow(link, parent):
        what, is_datasette = kind(link)
        if is_datasette and datasette_hops(parent) >= 2:
            return False                     # Datasette's pages, and the links on those: no further
        taken[what] += 1
        return taken[what] <= (PER_TABLE if is_datasette else PER_KIND)

    try:
        result = crawl(get, ["/", "/?lang=en"], follow, limit=6000)
    finally:
        client.close()
    kinds = Counter(kind(p)[0] for p in result.pages)
    datasette = [p for p in result.pages.values() if kind(p.path)[1]]
    assert len(datasette) > 200 and len(result.pages) > 500, kinds
    for needed in ("mesa", "centro", "totales", "totales/estado", "totales/municipio", "totales/parroquia",
                   "totales/centro", "buscar", "comprobar", "descargas", "acerca", "mesa en",
                   f"ds:{DB}", "ds:totals_centro", "ds:totals_parroquia", "ds:actas", "ds:mesa"):
        assert kinds[needed], (needed, kinds)
    failures = [(p.path, p.status, p.found_on) for p in result.failures()]
    assert not failures, failures[:20]
    for p in result.html_pages():
        assert "took too long" not in p.text, p.path
        assert 'class="facets-timed-out"' not in p.text, (p.path, re.search(r"These facets timed out: [^<]*", p.text))
    faceted = [p for p in datasette if "facet-results" in p.text or "_facet=" in p.path]
    assert len(faceted) > 20            # the check above did look at pages with facets
    print(f"crawled {len(result.pages)} pages ({len(datasette)} of Datasette's, {len(faceted)} with facets)")
