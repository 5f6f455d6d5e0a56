"""`testigo zenodo` against a local server speaking Zenodo's deposit REST API (tests/zenodoserver.py).

The real command and client (``requests``) run unchanged with ``--url`` set to the server on
127.0.0.1; the bundles are real ones built by ``testigo build`` (conftest's ``bundle``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from archive.bundle import build_bundle
from publish.cli import cli
from publish import zenodo as zn
from publish.internet_archive.bundle import read_bundle

try:
    from zenodoserver import FakeZenodo
except ImportError:  # pragma: no cover - if tests/ becomes a package
    from tests.zenodoserver import FakeZenodo

pytestmark = pytest.mark.timeout(120)

TOKEN = "TESTTOKEN"
MAGNET = "magnet:?xt=urn:btih:0123456789ABCDEF0123456789ABCDEF01234567&dn=ve-2024"


@pytest.fixture
def server():
    with FakeZenodo({TOKEN: "alice", "OTHER": "bob"}) as s:
        yield s


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv("ZENODO_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("ZENODO_TOKEN", TOKEN)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def edition(copy_tree, bundle, tmp_path):
    """A copy of the session bundle, with a places file beside it."""
    b = copy_tree(bundle)
    places = b.parent / f"{b.name}.places.json"
    places.write_text(json.dumps({"internet_archive": ["testigo-ve-2024-test"], "magnet": MAGNET}))
    return b


@pytest.fixture(scope="module")
def second_edition(tmp_path_factory, photo_workdir, signing_key):
    """The same workdir built with one photo per shard: other shards, another database."""
    from conftest import KEY_PASSWORD
    out = tmp_path_factory.mktemp("zenodo2") / "B2"
    build_bundle(photo_workdir.path, out, key=signing_key.secret, password=KEY_PASSWORD, shard_size=1)
    return out


def run(*args):
    return CliRunner().invoke(cli, ["zenodo", *map(str, args)], catch_exceptions=False)


def stored(server, dep_id) -> dict[str, str]:
    """name -> md5 of the bytes the server really holds."""
    return {n: hashlib.md5(f.data).hexdigest() for n, f in server.depositions[int(dep_id)].files.items()}


def expected(bundle_dir: Path) -> dict[str, str]:
    return {zn.zenodo_name(f.key): f.md5 for f in read_bundle(bundle_dir).files}


def only_deposition(server):
    assert len(server.depositions) == 1, list(server.depositions)
    return next(iter(server.depositions.values()))


def test_draft_then_publish(server, env, edition):
    r = run(edition, "--url", server.url, "--community", "venezuela-2024")
    assert r.exit_code == 0, r.output
    dep = only_deposition(server)
    assert not dep.submitted and "It is a draft" in r.output
    assert stored(server, dep.id) == expected(edition)           # every file, byte for byte
    assert "estado-" not in " ".join(k for k in stored(server, dep.id) if "/" in k)
    md = dep.metadata
    assert md["upload_type"] == "dataset" and md["license"] == "cc0-1.0" and md["access_right"] == "open"
    assert md["communities"] == [{"identifier": "venezuela-2024"}]
    assert md["creators"] == [{"name": "testigo"}]
    assert md["title"].startswith("Elección presidencial de Venezuela")
    manifest = hashlib.sha256((edition / "SHA256SUMS").read_bytes()).hexdigest()
    assert md["notes"] == zn.IDENTITY + manifest
    assert {"identifier": "https://archive.org/details/testigo-ve-2024-test", "relation": "isIdenticalTo",
            "scheme": "url", "resource_type": "dataset"} in md["related_identifiers"]
    assert any(x["identifier"] == "urn:btih:0123456789abcdef0123456789abcdef01234567"
               for x in md["related_identifiers"])
    assert "mkdir -p images &amp;&amp; mv estado-*.zip images/" in md["description"] or \
        "mv estado-" in md["description"]
    assert MAGNET.replace("&", "&amp;") in md["description"]
    puts = len(server.puts())
    assert puts == len(expected(edition))

    r = run(edition, "--url", server.url, "--publish")
    assert r.exit_code == 0, r.output
    dep = only_deposition(server)                                  # the same draft, now published
    assert dep.submitted and len(server.puts()) == puts           # nothing sent twice
    assert f"DOI:    10.5072/zenodo.{dep.id}" in r.output
    places = json.loads((edition.parent / f"{edition.name}.places.json").read_text())
    assert places["zenodo_doi"] == f"10.5072/zenodo.{dep.id}"
    assert places["zenodo_concept_doi"] == f"10.5072/zenodo.{dep.concept}"
    assert places["magnet"] == MAGNET                                 # kept

    r = run(edition, "--url", server.url, "--publish")              # a third run only checks
    assert r.exit_code == 0 and "already published" in r.output, r.output
    assert len(server.depositions) == 1 and len(server.puts()) == puts


def test_interrupted_deposit_resumes_in_the_same_draft(server, env, edition):
    names = list(expected(edition))
    victim = next(n for n in names if n.startswith("estado-"))
    server.drop_on.add(victim)
    r = run(edition, "--url", server.url)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "run the same command again" in r.output.lower() and victim in r.output
    before = server.puts()
    assert victim not in before and before                          # some files made it
    r = run(edition, "--url", server.url, "--publish")
    assert r.exit_code == 0, r.output
    dep = only_deposition(server)                                   # no second draft
    after = server.puts()[len(before):]
    assert sorted(after) == sorted(set(names) - set(before))        # only what was missing
    assert victim in after and dep.submitted
    assert stored(server, dep.id) == expected(edition)


def test_new_version_of_the_same_concept(server, env, edition, second_edition):
    assert run(edition, "--url", server.url, "--publish").exit_code == 0
    first = only_deposition(server)
    r = run(second_edition, "--url", server.url, "--new-version-of", first.id, "--publish")
    assert r.exit_code == 0, r.output
    versions = server.versions(first.concept)
    assert [v.id for v in versions][0] == first.id and len(versions) == 2
    new = versions[1]
    assert new.submitted and new.doi != first.doi and new.parent == first.id
    assert stored(server, new.id) == expected(second_edition)       # old shards deleted, new sent
    assert stored(server, first.id) == expected(edition)            # the first edition untouched
    unchanged = {n for n, m in expected(second_edition).items() if expected(edition).get(n) == m}
    assert unchanged >= {"LICENSE", "minisign.pub"}
    assert not unchanged & set(server.puts()[len(expected(edition)):])   # copied, not sent again
    assert f"all versions: DOI 10.5072/zenodo.{first.concept}" in r.output
    # the bundle's identity now names the second edition
    assert zn.bundle_identity({"metadata": new.metadata}) == read_bundle(second_edition).manifest_sha256


def test_a_corrupted_upload_fails_loudly_and_nothing_is_published(server, env, edition):
    victim = next(n for n in expected(edition) if n.endswith(".db"))
    server.corrupt_on.add(victim)
    r = run(edition, "--url", server.url, "--publish")
    assert r.exit_code == 1, r.output
    assert "CHECKSUM MISMATCH" in r.output and victim in r.output and "Nothing was published" in r.output
    dep = only_deposition(server)
    assert not dep.submitted
    # the re-run replaces the damaged copy, checks and publishes
    r = run(edition, "--url", server.url, "--publish")
    assert r.exit_code == 0, r.output
    assert only_deposition(server).submitted and stored(server, dep.id) == expected(edition)
    assert any(m == "DELETE" for m, p, s in server.requests)


def test_a_listing_that_disagrees_stops_before_publishing(server, env, edition):
    server.misreport_on.add("SHA256SUMS")
    r = run(edition, "--url", server.url, "--publish")
    assert r.exit_code == 1 and "CHECKSUM MISMATCH" in r.output, r.output
    assert "SHA256SUMS: Zenodo reports md5" in r.output
    assert not only_deposition(server).submitted
    assert not any(p.endswith("/actions/publish") for m, p, s in server.requests)


def test_token_only_from_the_environment(server, monkeypatch, edition):
    monkeypatch.delenv("ZENODO_TOKEN", raising=False)
    monkeypatch.delenv("ZENODO_ACCESS_TOKEN", raising=False)
    r = run(edition, "--url", server.url)
    assert r.exit_code == 1 and "ZENODO_TOKEN" in r.output and "Traceback" not in r.output
    assert server.requests == []
    monkeypatch.setenv("ZENODO_TOKEN", "WRONG")
    r = run(edition, "--url", server.url)
    assert r.exit_code == 1 and "401" in r.output and "ZENODO_TOKEN" in r.output
    assert "--token" not in run("--help").output


def test_dry_run_changes_nothing(server, env, edition):
    r = run(edition, "--url", server.url, "--dry-run")
    assert r.exit_code == 0, r.output
    assert server.depositions == {} and not any(m != "GET" for m, p, s in server.requests)
    assert "a deposition to be made" in r.output and "send" in r.output and "license: cc0-1.0" in r.output


def test_new_version_of_a_draft_is_refused(server, env, edition, second_edition):
    assert run(edition, "--url", server.url).exit_code == 0
    draft = only_deposition(server)
    r = run(second_edition, "--url", server.url, "--new-version-of", draft.id)
    assert r.exit_code == 1 and "unpublished draft" in r.output, r.output
    assert len(server.depositions) == 1
