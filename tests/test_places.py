"""Where a bundle is published (archive.places): listed in the bundle's README (byte-identical
rebuilds) and on the site's downloads page, from a places file beside the bundle or given."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from archive import places as places_mod
from archive.bundle import build_bundle
from publish.cli import cli
from publish.site import server as site_mod

PLACES = {
    "internet_archive": ["testigo-ve-2024-20240801", "testigo-ve-2024-20240801-fotos"],
    "zenodo_concept_doi": "10.5281/zenodo.1234566",
    "commons_category": "Category:Tally sheets of the 2024 Venezuelan presidential election",
    "magnet": "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=ve-2024",
}
LINKS = ["https://archive.org/details/testigo-ve-2024-20240801",
         "https://archive.org/details/testigo-ve-2024-20240801-fotos",
         "https://doi.org/10.5281/zenodo.1234566",
         "https://commons.wikimedia.org/wiki/Category:Tally_sheets_of_the_2024_Venezuelan_presidential_election"]


@pytest.fixture
def places_file(tmp_path):
    p = tmp_path / "places.json"
    p.write_text(json.dumps(PLACES), encoding="utf-8")
    return p


def test_the_readme_lists_the_places_and_rebuilds_stay_identical(tmp_path, photo_workdir, places_file):
    places = places_mod.load(places_file)
    a = build_bundle(photo_workdir.path, tmp_path / "a", places=places)
    b = build_bundle(photo_workdir.path, tmp_path / "b", places=places_mod.load(places_file))
    plain = build_bundle(photo_workdir.path, tmp_path / "plain")
    assert (a.path / "SHA256SUMS").read_bytes() == (b.path / "SHA256SUMS").read_bytes()
    assert (a.path / "SHA256SUMS").read_bytes() != (plain.path / "SHA256SUMS").read_bytes()
    readme = (a.path / "README.md").read_text(encoding="utf-8")
    assert "## Dónde está publicado / Where it is published" in readme
    for url in LINKS + [PLACES["magnet"]]:
        assert url in readme
    assert "--places PLACES.json" in readme
    dp = json.loads((a.path / "datapackage.json").read_text(encoding="utf-8"))
    recorded = dp["testigo"]["places"]
    assert recorded["internet_archive"] == PLACES["internet_archive"]
    assert recorded["commons_category"] == "Tally sheets of the 2024 Venezuelan presidential election"
    # a rebuilder recreates the places file from datapackage.json and gets the same bundle
    again = tmp_path / "again.json"
    again.write_text(json.dumps(recorded))
    c = build_bundle(photo_workdir.path, tmp_path / "c", places=places_mod.load(again))
    assert (c.path / "SHA256SUMS").read_bytes() == (a.path / "SHA256SUMS").read_bytes()
    plain_readme = (plain.path / "README.md").read_text(encoding="utf-8")
    assert "Where it is published" not in plain_readme and "places" not in json.loads(
        (plain.path / "datapackage.json").read_text())["testigo"]


def test_the_downloads_page_lists_the_places(bundle_copy, places_file, tmp_path):
    from test_site import SiteClient
    c = SiteClient(site_mod.make_datasette(bundle_copy, places=places_file))
    try:
        for lang, title in (("", "Dónde más está publicado"), ("?lang=en", "Where else it is published")):
            r = c.get(f"/descargas{lang}")
            assert r.status_code == 200
            assert title in r.text
            for url in LINKS:
                assert f'href="{url}"' in r.text
            assert PLACES["magnet"].replace("&", "&amp;") in r.text
    finally:
        c.close()
    # the default: BUNDLE.places.json beside the bundle folder
    beside = places_mod.default_path(bundle_copy)
    beside.write_text(json.dumps({"zenodo_doi": "10.5281/zenodo.7654321"}))
    c = SiteClient(site_mod.make_datasette(bundle_copy))
    try:
        r = c.get("/descargas")
        assert 'href="https://doi.org/10.5281/zenodo.7654321"' in r.text
        assert "archive.org/details" not in r.text
    finally:
        c.close()
    beside.unlink()
    c = SiteClient(site_mod.make_datasette(bundle_copy))
    try:
        assert "Dónde más está publicado" not in c.get("/descargas").text
    finally:
        c.close()


@pytest.mark.parametrize("content, says", [
    ({"zenodo_doi": "zenodo 12"}, "is not a DOI"),
    ({"internet_archive": ["no spaces allowed"]}, "archive.org identifiers"),
    ({"magnet": "https://example.org/x.torrent"}, "magnet link"),
    ([1, 2], "one JSON object"),
])
def test_a_bad_places_file_is_a_clear_error(tmp_path, photo_workdir, content, says):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(content))
    with pytest.raises(places_mod.PlacesError, match=says):
        places_mod.load(bad)
    r = CliRunner().invoke(cli, ["build", "--workdir", str(photo_workdir.path), "--out", str(tmp_path / "B"),
                                 "--places", str(bad)])
    assert r.exit_code == 1 and says in r.output and "Traceback" not in r.output
    assert not (tmp_path / "B").exists()
