"""Vendored browser packages: pinned, licensed, unaltered (offline check of publish/static/vendor)."""
from __future__ import annotations

import json

from publish import vendor


def test_vendored_packages_match_their_records():
    assert vendor.check() == []


def test_check_catches_an_altered_file(tmp_path, monkeypatch):
    pkg = tmp_path / "vendor" / "demo-lib"
    pkg.mkdir(parents=True)
    (pkg / "demo.js").write_text("console.log(1)\n")
    (pkg / "LICENSE").write_text("MIT\n")
    record = {"name": "demo-lib", "version": "1.0.0",
              "files": {"demo.js": vendor._sha256(pkg / "demo.js"), "LICENSE": vendor._sha256(pkg / "LICENSE")}}
    (pkg / "VENDOR.json").write_text(json.dumps(record))
    npm = tmp_path / "npm"
    npm.mkdir()
    (npm / "files.json").write_text(json.dumps({"demo-lib": ["dist/demo.js"]}))
    monkeypatch.setattr(vendor, "VENDOR_DIR", tmp_path / "vendor")
    monkeypatch.setattr(vendor, "NPM_DIR", npm)
    assert vendor.check() == []
    (pkg / "demo.js").write_text("alert('changed')\n")
    assert vendor.check() == ["demo-lib: demo.js differs from what was vendored"]
    (pkg / "LICENSE").unlink()
    del record["files"]["LICENSE"]
    (pkg / "VENDOR.json").write_text(json.dumps(record))
    assert "demo-lib: no licence file vendored" in vendor.check()
