"""The site on a bundle built from the full CSV: every Datasette page it links to answers.

Datasette refuses a query that runs past ``sql_time_limit_ms`` (the site's setting, 1 s) with a
400 "took too long"; the totals used to be views recomputed per request and failed exactly so.
Here the site's real settings apply, so a 200 is also "within the time limit".
"""
from __future__ import annotations

import html
import re
import sqlite3

import pytest

from archive.database import VIEWS
from publish.site import server as site_mod
from test_site import SiteClient

DB = "ve-2024"


def _links(text: str) -> set[str]:
    return {html.unescape(h) for h in re.findall(r'href="([^"]+)"', text)}


@pytest.fixture(scope="module")
def client(full_bundle):
    c = SiteClient(site_mod.make_datasette(full_bundle))
    yield c
    c.close()


@pytest.fixture(scope="module")
def area_ids(full_bundle):
    """One real area of every level (the parish with the most centres, and its first centre)."""
    conn = sqlite3.connect(f"file:{full_bundle / (DB + '.db')}?immutable=1", uri=True)
    try:
        par, mun, edo = conn.execute("SELECT parroquia_id, municipio_id, cod_edo FROM centros "
                                     "GROUP BY parroquia_id ORDER BY count(*) DESC LIMIT 1").fetchone()
        centro = conn.execute("SELECT min(centro) FROM centros WHERE parroquia_id = ?", (par,)).fetchone()[0]
        mesa = conn.execute("SELECT min(id) FROM mesas WHERE centro = ?", (centro,)).fetchone()[0]
        # the longest codes of the registry (parroquia 21.14.1050 has a four-digit code)
        longest = {level: conn.execute(f"SELECT {col} FROM {table} ORDER BY length({col}) DESC, {col} "
                                       "LIMIT 1").fetchone()[0]
                   for level, col, table in (("estado", "cod_edo", "estados"), ("municipio", "id", "municipios"),
                                             ("parroquia", "id", "parroquias"), ("centro", "centro", "centros"))}
    finally:
        conn.close()
    return {"estado": edo, "municipio": mun, "parroquia": par, "centro": centro, "mesa": mesa,
            "longest": longest}


@pytest.mark.slow
def test_every_datasette_page_the_site_links_to_answers_200(client, area_ids):
    ids = area_ids
    pages = ["/", "/?lang=en", "/totales", "/buscar?q=libertador", "/descargas", "/acerca", "/comprobar",
             f"/centro/{ids['centro']}", f"/mesa/{ids['mesa']}"]
    pages += [f"/totales/{level}/{key}" for level in ("estado", "municipio", "parroquia", "centro")
              for key in (ids[level], ids["longest"][level])]
    linked: set[str] = set()
    for page in pages:
        r = client.get(page)
        assert r.status_code == 200, (page, r.status_code, r.text[:300])
        linked |= {h for h in _links(r.text) if h == f"/{DB}" or h.startswith(f"/{DB}/")}
    # every level's totals page links its Datasette table, filtered to the area
    for level, column in (("estado", "cod_edo"), ("municipio", "municipio_id"), ("parroquia", "parroquia_id"),
                          ("centro", "centro")):
        assert any(h.startswith(f"/{DB}/totals_{level}?{column}=") for h in linked), (level, sorted(linked))
    assert {f"/{DB}", f"/{DB}/totals_nacional", f"/{DB}/actas_con_alertas"} <= linked
    assert any(h.startswith(f"/{DB}/mesa?id=") for h in linked)
    # the database page ("Datos" in every page's menu) links every table, the totals included
    r = client.get(f"/{DB}")
    tables = {h for h in _links(r.text) if re.fullmatch(rf"/{DB}/[a-z_]+", h)}
    assert {f"/{DB}/{t}" for t in VIEWS} | {f"/{DB}/actas", f"/{DB}/acta_votes"} <= tables
    for url in sorted(linked | tables):
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
        assert "took too long" not in r.text, url


@pytest.mark.slow
def test_totals_tables_sorted_faceted_and_as_json(client, area_ids):
    """What a visitor does on a totals table: sort by votes, facet, filter, download JSON."""
    for name in VIEWS:
        for url in (f"/{DB}/{name}.json?_shape=array&_size=max", f"/{DB}/{name}?_sort_desc=votes",
                    f"/{DB}/{name}?candidate=EG&_sort_desc=votes&_facet=candidate",
                    f"/{DB}/{name}.csv?_size=max"):
            r = client.get(url)
            assert r.status_code == 200, (url, r.status_code, r.text[:300])
    r = client.get(f"/{DB}/totals_centro.json?_shape=objects&_sort_desc=votes&_facet=estado&_facet=candidate&_size=5")
    assert r.status_code == 200, r.text[:300]
    data = r.json()
    votes = [row["votes"] for row in data["rows"]]
    assert votes == sorted(votes, reverse=True) and votes[0] > 0
    assert not data.get("facets_timed_out"), data.get("facets_timed_out")
    assert {f["value"] for f in data["facet_results"]["candidate"]["results"]} >= {"EG", "NM"}
    assert data["filtered_table_rows_count"] == client.json(f"/{DB}/totals_centro.json?_size=0")["filtered_table_rows_count"]
    rows = client.json(f"/{DB}/totals_parroquia.json?parroquia_id={ids_q(area_ids['parroquia'])}&_shape=array")
    assert rows and {r["parroquia_id"] for r in rows} == {area_ids["parroquia"]}


def ids_q(value) -> str:
    import urllib.parse
    return urllib.parse.quote(str(value))
