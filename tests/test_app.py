"""`testigo mirror B --out DIR --app`: the browser app's files (no browser here; see
test_app_browser.py for the pages in Chromium)."""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3

import pytest
from click.testing import CliRunner

from archive import database, manifest
from publish.app.writer import AppError, write_app


def tree(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_app_is_a_handful_of_files_beside_the_bundle(bundle, tmp_path):
    from publish.mirror.cli import mirror
    out = tmp_path / "site"
    r = CliRunner().invoke(mirror, [str(bundle), "--out", str(out), "--app"])
    assert r.exit_code == 0, r.output
    sums = manifest.parse_manifest((bundle / "SHA256SUMS").read_bytes())[0]
    bundle_files = set(sums) | {"SHA256SUMS", "SHA256SUMS.minisig"}
    files = tree(out)
    app_files = set(files) - bundle_files
    assert bundle_files <= set(files) and len(app_files) <= 50, sorted(app_files)
    assert {"index.html", "testigo-mirror.json", "assets/app.js", "assets/vendor/sql.js-httpvfs/LICENSE",
            "assets/vendor/sql.js-httpvfs/sql-wasm.wasm", "assets/vendor/hash-wasm/LICENSE"} <= app_files
    for rel in bundle_files:                  # the bundle's files are hard links, not copies
        assert os.path.samefile(out / rel, bundle / rel), rel
    info = json.loads((out / "testigo-mirror.json").read_text())
    assert info["manifest_sha256"] == manifest.sha256_file(bundle / "SHA256SUMS")
    assert info["data_urls"] == ["./"] and info["database"] == "ve-2024.db"
    assert info["key_id"] and info["public_key"] and info["page_size"] == database.PAGE_SIZE
    assert len(info["candidates"]) == 10 and len(info["cards"]) == 38
    assert f"{len(app_files)} files" in r.output and "hard links" in r.output
    # without JavaScript: what the site is, and the downloads
    page = (out / "index.html").read_text()
    assert "necesita JavaScript" in page and 'href="ve-2024.db"' in page and 'href="SHA256SUMS.minisig"' in page
    # the same bundle gives the same bytes; a second run replaces the first
    again = tmp_path / "again"
    write_app(bundle, again)
    assert tree(again) == files
    write_app(bundle, again)
    assert tree(again) == files


def test_app_with_data_urls_holds_no_bundle_file(bundle, tmp_path):
    out = tmp_path / "site"
    urls = ["https://archive.org/download/testigo-ve-2024", "http://127.0.0.1:9/b/"]
    report = write_app(bundle, out, urls)
    assert report.bundle_files == 0 and report.data_urls == ["https://archive.org/download/testigo-ve-2024/", urls[1]]
    assert not (out / "ve-2024.db").exists() and not (out / "SHA256SUMS").exists()
    info = json.loads((out / "testigo-mirror.json").read_text())
    assert info["data_urls"] == report.data_urls
    assert 'href="https://archive.org/download/testigo-ve-2024/ve-2024.db"' in (out / "index.html").read_text()


@pytest.mark.parametrize("url", ["ftp://example.org/b/", "https://example.org/b/?x=1", "file:///tmp/b"])
def test_a_data_url_that_cannot_work_is_refused(bundle, tmp_path, url):
    with pytest.raises(AppError, match="--data-url"):
        write_app(bundle, tmp_path / "site", [url])
    assert not (tmp_path / "site").exists()


def test_someone_elses_folder_is_never_replaced(bundle, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(AppError, match="not a mirror"):
        write_app(bundle, out)
    assert (out / "notes.txt").read_text() == "keep me"
    with pytest.raises(AppError, match="not a bundle"):
        write_app(out, tmp_path / "site")


def test_every_photo_is_one_range_of_its_shard(bundle):
    """What the app relies on: images.offset and size give the photo's bytes in its shard, and
    mesa_pages carries them for every acta with a photo."""
    db = sqlite3.connect(f"file:{bundle / 've-2024.db'}?mode=ro&immutable=1", uri=True)
    rows = db.execute("SELECT sha256, shard, offset, size FROM images").fetchall()
    pages = [json.loads(p) for (p,) in db.execute("SELECT page FROM mesa_pages")]
    db.close()
    assert rows
    for sha, shard, offset, size in rows:
        with open(bundle / shard, "rb") as f:
            f.seek(offset)
            assert hashlib.sha256(f.read(size)).hexdigest() == sha
    shown = {(a["image_sha256"], a["shard"], a["offset"], a["size"]) for p in pages for a in p["actas"] if a["image_sha256"]}
    assert {(sha, shard, off, size) for sha, shard, off, size in rows} >= shown and shown
