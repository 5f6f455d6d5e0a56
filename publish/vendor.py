"""Browser packages from the npm registry, vendored into ``publish/static/vendor/`` with their licences.

The site and the static mirror must work with no CDN and no network, so browser code is copied
into the Python package. ``publish/npm/package.json`` pins exact versions (``package-lock.json``
records their integrity); ``publish/npm/files.json`` names the files to take from each package.

``python -m publish.vendor`` (``make vendor``) installs with ``npm ci`` and copies the files, the
licence and a ``VENDOR.json`` (name, version, source, integrity, sha256 of each file) per package.
``python -m publish.vendor --check`` (and the test suite) checks, offline, that every vendored
folder matches the lock and its own record and carries a licence.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from archive.errors import TestigoError

HERE = Path(__file__).resolve().parent
NPM_DIR = HERE / "npm"
VENDOR_DIR = HERE / "static" / "vendor"
LICENCE_PREFIXES = ("license", "licence", "copying", "notice")


class VendorError(TestigoError):
    """A vendored browser package is missing, altered, unlicensed or out of step with the lock."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wanted() -> dict[str, list[str]]:
    """{package: [file inside the package]} from files.json (keys starting with '_' are comments)."""
    data = json.loads((NPM_DIR / "files.json").read_text(encoding="utf-8"))
    return {k: list(v) for k, v in data.items() if not k.startswith("_")}


def locked() -> dict[str, dict]:
    """{package: lock entry (version, resolved, integrity, license)} from package-lock.json."""
    lock_path = NPM_DIR / "package-lock.json"
    if not lock_path.exists():
        return {}
    lock = json.loads(lock_path.read_text(encoding="utf-8"))
    return {k.removeprefix("node_modules/"): v for k, v in lock.get("packages", {}).items()
            if k.startswith("node_modules/")}


def vendor(install: bool = True) -> list[Path]:
    """Install the pinned packages with npm and copy their files and licences. Returns the folders."""
    if install:
        if shutil.which("npm") is None:
            raise VendorError("npm is not installed (Debian: apt-get install npm); it is needed only to "
                              "refresh the vendored files, never to run testigo")
        cmd = ["npm", "ci" if (NPM_DIR / "package-lock.json").exists() else "install",
               "--ignore-scripts", "--no-audit", "--no-fund"]
        subprocess.run(cmd, cwd=NPM_DIR, check=True)
    lock = locked()
    out = []
    for name, files in sorted(wanted().items()):
        src = NPM_DIR / "node_modules" / name
        if not src.is_dir():
            raise VendorError(f"{name} is in files.json but not installed: add it to publish/npm/package.json")
        meta = json.loads((src / "package.json").read_text(encoding="utf-8"))
        dest = VENDOR_DIR / name
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        licences = sorted(p.name for p in src.iterdir() if p.is_file() and p.name.lower().startswith(LICENCE_PREFIXES))
        if not licences:
            raise VendorError(f"{name} {meta.get('version')} ships no licence file; vendor another package")
        record = {"name": name, "version": meta.get("version"), "license": meta.get("license"),
                  "homepage": meta.get("homepage"), "resolved": lock.get(name, {}).get("resolved"),
                  "integrity": lock.get(name, {}).get("integrity"), "files": {}}
        for rel in list(files) + licences:
            target = dest / Path(rel).name
            shutil.copyfile(src / rel, target)
            record["files"][target.name] = _sha256(target)
        (dest / "VENDOR.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        out.append(dest)
    return out


def check() -> list[str]:
    """Problems with the vendored folders (empty when all is well). Needs no network."""
    problems = []
    lock = locked()
    names = wanted()
    for name in sorted(names):
        dest = VENDOR_DIR / name
        rec_path = dest / "VENDOR.json"
        if not rec_path.is_file():
            problems.append(f"{name}: not vendored (run `make vendor`)")
            continue
        rec = json.loads(rec_path.read_text(encoding="utf-8"))
        if name in lock and rec.get("version") != lock[name].get("version"):
            problems.append(f"{name}: vendored {rec.get('version')} but the lock pins {lock[name].get('version')}")
        if not any(f.lower().startswith(LICENCE_PREFIXES) for f in rec.get("files", {})):
            problems.append(f"{name}: no licence file vendored")
        for fname, digest in rec.get("files", {}).items():
            p = dest / fname
            if not p.is_file():
                problems.append(f"{name}: {fname} is missing")
            elif _sha256(p) != digest:
                problems.append(f"{name}: {fname} differs from what was vendored")
        for want in names[name]:
            if not (dest / Path(want).name).is_file():
                problems.append(f"{name}: {want} is in files.json but not vendored")
    if VENDOR_DIR.is_dir():
        for extra in sorted(p.name for p in VENDOR_DIR.iterdir() if p.name not in names):
            problems.append(f"{extra}: vendored but not listed in publish/npm/files.json")
    return problems


@lru_cache(maxsize=None)
def static_url(package: str, filename: str) -> str:
    """The site's URL of a vendored file, versioned by its recorded sha256 (so it can be cached for
    good): ``/assets/vendor/<package>/<file>?v=<hash>``."""
    rec = json.loads((VENDOR_DIR / package / "VENDOR.json").read_text(encoding="utf-8"))
    return f"/assets/vendor/{package}/{filename}?v={rec['files'][filename][:12]}"


def main(argv: list[str]) -> int:
    if "--check" in argv:
        problems = check()
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    for d in vendor():
        print(f"vendored {d.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
