"""`testigo commons` against a real MediaWiki on loopback (tests/mediawiki.py: Debian's mediawiki,
SQLite, PHP's built-in server), through the real client (mwclient), with a real bundle's photos.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
from click.testing import CliRunner

from publish.cli import cli
from publish import commons as cm
from publish.internet_archive.bundle import read_bundle

try:
    from mediawiki import MediaWiki, available
except ImportError:  # pragma: no cover - if tests/ becomes a package
    from tests.mediawiki import MediaWiki, available

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(available() is not None, reason=str(available()))]

MAGNET = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=ve-2024"


@pytest.fixture
def wiki(tmp_path):
    with MediaWiki(tmp_path / "wiki") as w:
        yield w


@pytest.fixture
def env(monkeypatch, wiki):
    monkeypatch.setenv(cm.USER_VARIABLE, wiki.user)
    monkeypatch.setenv(cm.PASSWORD_VARIABLE, wiki.bot_password)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def places(tmp_path):
    p = tmp_path / "places.json"
    p.write_text(json.dumps({"internet_archive": ["testigo-ve-2024-test"], "magnet": MAGNET,
                             "commons_category": "Tally sheets of the 2024 Venezuelan presidential election"}))
    return p


@pytest.fixture(scope="module")
def photos(bundle):
    """(photo, bytes, sha1) of every acta photo in the bundle."""
    reader = cm.PhotoReader(bundle)
    out = []
    for p in cm.acta_photos(bundle):
        data = reader.read(p)
        out.append((p, data, hashlib.sha1(data).hexdigest()))
    return out


@pytest.fixture(scope="module")
def style():
    from archive import election
    return cm.PageStyle.from_election(election.load().meta)


def run(wiki, bundle, *args):
    return CliRunner().invoke(cli, ["commons", str(bundle), "--api", wiki.api, "--pause", "0", *map(str, args)],
                              catch_exceptions=False)


def uploads(site) -> list[str]:
    """Titles of every upload the wiki logged (a file uploaded twice appears twice)."""
    return [e["title"] for e in site.logevents(type="upload")]


def test_upload_pages_categories_and_a_second_run_uploads_nothing(wiki, env, bundle, photos, style, places):
    assert len(photos) >= 5
    r = run(wiki, bundle, "--places", places)
    assert r.exit_code == 0, r.output
    assert f"{len(photos)} uploaded" in r.output
    assert f"SHA-1 of all {len(photos)} file(s) match" in r.output
    site = wiki.client()
    manifest = read_bundle(bundle).manifest_sha256
    for photo, data, sha1 in photos:
        name = cm.file_name(photo, style)
        image = site.images[name]
        assert image.exists, name
        assert image.imageinfo["sha1"] == sha1
        assert image.imageinfo["size"] == len(data)
        text = image.text()
        for needle in (photo.mesa_id, photo.sha256, photo.original_sha256, manifest,
                       "https://archive.org/details/testigo-ve-2024-test", MAGNET, "{{PD-VenezuelaGov}}",
                       "{{Cc-zero}}", str(photo.centro)):
            assert needle in text, (needle, name)
        reading = photo.readings[0]
        if reading.validos is not None:
            assert f"{reading.validos:,}" in text
        cats = {c.name.split(":", 1)[1] for c in image.categories()}
        assert cats == set(cm.categories(photo, style))
        assert any(photo.estado.replace(".", "") in c.replace(".", "") for c in cats)
        assert any(photo.municipio.replace(".", "") in c.replace(".", "") for c in cats)
    # every category page exists, the municipio's inside the estado's, the estado's in the top one
    for photo, _, _ in photos:
        est, mun = cm.categories(photo, style)
        assert site.pages[f"Category:{est}"].exists and site.pages[f"Category:{mun}"].exists
        assert f"Category:{est}" in {c.name for c in site.pages[f"Category:{mun}"].categories()}
        assert f"Category:{style.category}" in {c.name for c in site.pages[f"Category:{est}"].categories()}
        members = {p.name for p in site.categories[est]}
        assert f"File:{cm.file_name(photo, style)}" in members
    logged = uploads(site)
    assert sorted(logged) == sorted(f"File:{cm.file_name(p, style)}" for p, _, _ in photos)

    r = run(wiki, bundle, "--places", places)                   # the second run uploads nothing
    assert r.exit_code == 0, r.output
    assert f"{len(photos)} already there" in r.output and "uploaded" not in r.output.split("photo(s):")[1]
    assert uploads(wiki.client()) == logged


def test_an_interrupted_run_resumes_without_uploading_twice(wiki, env, bundle, photos, style):
    class StopAfterTwo(cm.CommonsProgress):
        sent = 0

        def outcome(self, o):
            self.sent += o.status == "sent"
            if self.sent == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cm.upload_photos(bundle, api=wiki.api, user=wiki.user, password=wiki.bot_password,
                         progress=StopAfterTwo())
    assert len(uploads(wiki.client())) == 2
    r = run(wiki, bundle)
    assert r.exit_code == 0, r.output
    assert "2 already there" in r.output and f"{len(photos) - 2} uploaded" in r.output
    logged = uploads(wiki.client())
    assert len(logged) == len(photos) == len(set(logged))        # each photo exactly once


def test_a_killed_run_resumes_without_uploading_twice(wiki, env, bundle, photos):
    """The command itself, killed (SIGKILL) after its first uploads, then run again."""
    import os
    import signal
    import subprocess
    import sys
    import time
    exe = [sys.executable, "-m", "publish", "commons", str(bundle), "--api", wiki.api, "--pause", "1"]
    log = wiki.root / "killed-run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(exe, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    site = wiki.client()
    try:
        deadline = time.monotonic() + 120
        while len(uploads(site)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = len(uploads(site))
    assert 2 <= done < len(photos), (done, log.read_text(errors="replace")[-3000:])
    r = run(wiki, bundle)
    assert r.exit_code == 0, r.output
    assert f"{done} already there" in r.output and f"{len(photos) - done} uploaded" in r.output
    logged = uploads(wiki.client())
    assert len(logged) == len(photos) == len(set(logged))


def test_chunked_uploads_and_a_duplicate_among_them(wiki, env, bundle, photos, style):
    """Photos larger than the chunk size go up in chunks (as real acta scans over 1 MB do)."""
    import io
    photo, data, sha1 = photos[1]
    site = wiki.client()
    site.upload(io.BytesIO(data), filename="Hand upload.jpg", description="by hand", comment="by hand")
    small = min(len(d) for _, d, _ in photos)
    w = cm.Wiki(wiki.api, chunk_size=max(4096, small // 3))
    result = cm.upload_photos(bundle, api=wiki.api, wiki=w, user=wiki.user, password=wiki.bot_password)
    assert result.count("sent") == len(photos) - 1 and result.count("duplicate") == 1
    assert result.checked == len(photos)
    for p, d, s in photos:
        if p is not photo:
            assert site.images[cm.file_name(p, style)].imageinfo["sha1"] == s


def test_a_duplicate_already_on_the_wiki_is_skipped(wiki, env, bundle, photos, style):
    photo, data, sha1 = photos[2]
    site = wiki.client()
    import io
    site.upload(io.BytesIO(data), filename="Someone else's acta.jpg", description="uploaded by hand",
                comment="by hand")
    r = run(wiki, bundle)
    assert r.exit_code == 0, r.output
    assert "DUPLICATE" in r.output and "Someone else's acta.jpg" in r.output.replace("_", " ")
    assert f"{len(photos) - 1} uploaded" in r.output and "1 duplicate" in r.output
    assert not site.images[cm.file_name(photo, style)].exists
    assert len(uploads(site)) == len(photos)                      # the hand upload + the others


def test_limit_then_the_rest(wiki, env, bundle, photos):
    r = run(wiki, bundle, "--limit", 2)
    assert r.exit_code == 0, r.output
    assert "2 uploaded" in r.output and "Stopped at --limit 2" in r.output
    assert len(uploads(wiki.client())) == 2
    r = run(wiki, bundle)
    assert r.exit_code == 0 and f"{len(photos) - 2} uploaded" in r.output, r.output
    assert len(uploads(wiki.client())) == len(photos)


def test_a_file_that_changed_on_the_wiki_fails_the_sha1_check(wiki, env, bundle, photos, style):
    assert run(wiki, bundle).exit_code == 0
    photo, _, sha1 = photos[0]
    name = cm.file_name(photo, style)
    db = sqlite3.connect(wiki.root / "db" / "testwiki.sqlite")
    with db:                                                      # the wiki's record of the file changes
        n = db.execute("UPDATE image SET img_sha1 = ? WHERE img_name = ?",
                       ("0" * 31, name.replace(" ", "_"))).rowcount
    db.close()
    assert n == 1
    r = run(wiki, bundle)
    assert r.exit_code == 1, r.output
    assert "SHA-1 MISMATCH" in r.output and name in r.output and sha1 in r.output
    assert len(uploads(wiki.client())) == len(photos)             # nothing uploaded over it


def test_dry_run_and_credentials(wiki, monkeypatch, bundle, photos):
    monkeypatch.delenv(cm.USER_VARIABLE, raising=False)
    monkeypatch.delenv(cm.PASSWORD_VARIABLE, raising=False)
    r = run(wiki, bundle, "--dry-run")
    assert r.exit_code == 0, r.output
    assert r.output.count("  would upload ") == len(photos) and "{{PD-VenezuelaGov}}" in r.output
    r = run(wiki, bundle, "--user", wiki.user)
    assert r.exit_code == 1 and cm.PASSWORD_VARIABLE in r.output and "Traceback" not in r.output
    monkeypatch.setenv(cm.PASSWORD_VARIABLE, "0" * 32)
    r = run(wiki, bundle, "--user", wiki.user)
    assert r.exit_code == 1 and "refused the login" in r.output
    assert uploads(wiki.client()) == []
    assert "--password" not in run(wiki, bundle, "--help").output
