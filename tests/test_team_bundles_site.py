"""Team bundles on the site: each acta names the team that brought it, conflicts show both.

Uses the relay of test_team_bundles.py (three teams merged into a national workdir).
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from archive import election as election_mod
from archive import relay, render, signing, trust
from archive.bundle import build_bundle
from publish.cli import cli
from archive.ingest import ingest
from archive.workdir import Workdir
from conftest import sha256

from test_team_bundles import SAMPLE, TEAMS, db, national, relay_setup  # noqa: F401


# --- the site -----------------------------------------------------------------------------------------

def test_mesa_json_names_each_team_and_the_conflict(national, relay_setup):
    from publish.site import server as site_mod
    from test_site import SiteClient
    client = SiteClient(site_mod.make_datasette(national["bundle"]))
    try:
        mesa = relay_setup["conflict_mesa"]
        data = client.json(f"/mesa/{mesa}.json")
        team_flag = next(f for f in data["flags"] if f["code"] == "team_conflict")
        assert team_flag["teams"] == ["bolivar", "zulia"] and "bolivar" in team_flag["es"]
        chains = {a["id"]: a["provenance"]["chain"] for a in data["actas"]}
        assert sorted(c[0]["label"] for c in chains.values()) == ["bolivar", "zulia"]
        assert {c[0]["key_id"] for c in chains.values()} == {relay_setup["keys"][t].key_id for t in ("bolivar", "zulia")}
        # a mesa two teams read alike: a duplicate, both provenances, no team conflict
        dup = db(national["bundle"]).execute(
            "SELECT d.mesa_id FROM actas d JOIN actas o ON o.id = d.duplicate_of WHERE d.provenance = 'caracas' "
            "AND o.provenance = 'bolivar' ORDER BY 1").fetchone()[0]
        alike = client.json(f"/mesa/{dup}.json")
        assert {a["provenance"]["text"] for a in alike["actas"]} >= {"bolivar", "caracas"}
        assert "team_conflict" not in {f["code"] for f in alike["flags"]}
        html = client.get(f"/mesa/{mesa}").text
        assert 'id="provenance"' in html and "t-flag-team_conflict" in html
    finally:
        client.close()


@pytest.fixture(scope="module")
def national_server(national):
    from test_site import start_server, stop_server
    proc, url = start_server(national["bundle"])
    yield url.rstrip("/")
    stop_server(proc)


def test_browser_mesa_page_shows_provenance_and_the_team_conflict(national_server, page, relay_setup):
    from conftest import shot
    r = relay_setup
    mesa = r["conflict_mesa"]
    page.goto(f"{national_server}/mesa/{mesa}")
    flag = page.locator("#flags .t-flag-team_conflict")
    assert flag.count() == 1
    text = flag.inner_text()
    assert "Conflicto entre equipos" in text and "bolivar" in text and "zulia" in text
    rows = page.locator("#provenance-table tbody tr")
    assert rows.count() == 2
    teams = sorted(rows.nth(i).get_attribute("data-team") for i in range(2))
    assert teams == ["bolivar", "zulia"]
    table = page.inner_text("#provenance-table")
    for t in ("bolivar", "zulia"):
        assert r["keys"][t].key_id in table
    assert page.locator("#provenance-table tr.t-prov-conflict").count() == 2
    page.locator("#provenance").scroll_into_view_if_needed()
    shot(page, "relay-mesa-conflict")
    # the bundle link goes to the team bundle's row in Datasette
    with page.expect_navigation():
        page.locator("#provenance-table a").first.click()
    assert "/team_bundles/" in page.url
    assert any(r["keys"][t].key_id in page.content() for t in ("bolivar", "zulia"))
    page.goto(f"{national_server}/mesa/{mesa}?lang=en")
    assert "Conflict between teams" in page.inner_text("#flags")
    assert "Where each reading came from" in page.inner_text("#provenance")


