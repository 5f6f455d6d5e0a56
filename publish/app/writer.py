"""Write the browser app: the public site as a handful of files that read the bundle over HTTP.

A static host (GitHub Pages, a bucket, a USB stick behind a range-capable server) serves DIR; the
app reads the bundle's database by range requests (sql.js-httpvfs) and each photo by one range
request into its shard (``images.offset``), from DIR itself (the bundle's files hard-linked
there) or from the ``data_urls`` (an Internet Archive item, a web seed, a bucket), tried in order.

What it writes (about 20 files, whatever the size of the bundle):

  index.html              the app; without JavaScript it says what the site is and links the downloads
  testigo-mirror.json     which bundle (sha256 of its SHA256SUMS), where its files are, its key,
                          and the small tables every page needs (candidates, cards, the map)
  assets/                 app.js, audit.js, data.js, comprobar.js, the stylesheets, the vendored libraries
                          (publish/static/vendor/: sql.js-httpvfs, hash-wasm, zxing-wasm; licences kept)
  <the bundle's files>    unless data_urls are given (hard links where the file system allows)

Same bundle, same options: the same bytes (nothing of the time or the machine is written).
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from archive import boundaries, comparison, manifest
from archive import election as election_mod
from archive.database import open_readonly
from archive.errors import DefinitionError, TestigoError

from .. import vendor

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
SITE_STATIC = HERE.parent / "static"
INFO = "testigo-mirror.json"          # the same name as the pre-rendered mirror's (publish/mirror.py)
FORMAT = "testigo-app/1"
VENDORED = ("sql.js-httpvfs", "hash-wasm", "zxing-wasm")
APP_FILES = ("index.html", "app.js", "audit.js", "data.js", "app.css")
DOWNLOADS_MARK = "<!-- DOWNLOADS -->"
SIGNATURE = manifest.MANIFEST + ".minisig"


class AppError(TestigoError):
    """The app cannot be written: not a bundle, a data URL that cannot work, DIR is someone else's."""


@dataclass
class AppReport:
    path: Path
    app_files: int            # files of the app itself
    bundle_files: int         # the bundle's files placed in DIR (0 with data_urls)
    linked: int               # of those, hard links (the rest are copies)
    bytes: int                # bytes of the app's own files
    manifest_sha256: str
    data_urls: list[str]


def _check_url(url: str) -> str:
    """A data URL as the app uses it: http(s) or relative, ending in '/' (it names a folder)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("", "http", "https") or parts.query or parts.fragment:
        raise AppError(f"--data-url {url!r}: give the http(s) address of the folder that holds the bundle's "
                       "files (where SHA256SUMS is), e.g. https://archive.org/download/ITEM/")
    return url if url.endswith("/") else url + "/"


def _bundle_files(bundle: Path) -> tuple[list[str], str]:
    """(the bundle's files, bundle-relative, SHA256SUMS and its signature included; sha256 of SHA256SUMS)."""
    sums_path = bundle / manifest.MANIFEST
    if not sums_path.is_file():
        raise AppError(f"{bundle} has no {manifest.MANIFEST}: it is not a bundle (make one with `testigo build`)")
    sums, problems = manifest.parse_manifest(sums_path.read_bytes())
    if problems:
        raise AppError(f"{sums_path} cannot be read: {problems[0]}")
    files = sorted(sums) + [manifest.MANIFEST] + ([SIGNATURE] if (bundle / SIGNATURE).is_file() else [])
    missing = [f for f in files if not (bundle / f).is_file()]
    if missing:
        raise AppError(f"{bundle} lacks {missing[0]}, which {manifest.MANIFEST} lists: fetch the bundle again")
    return files, manifest.sha256_file(sums_path)


def _database(bundle: Path, files: list[str]) -> str:
    dbs = [f for f in files if f.endswith(".db") and "/" not in f]
    if len(dbs) != 1:
        raise AppError(f"{bundle} should hold one SQLite database at its root, not {len(dbs)}")
    return dbs[0]


def _tables(db_path: Path) -> dict:
    """What every page needs and is small: the candidates and the cards, the page size."""
    conn = open_readonly(db_path)
    try:
        conn.row_factory = sqlite3.Row
        return {"candidates": [dict(r) for r in conn.execute("SELECT code, name FROM candidates ORDER BY sort_order")],
                "cards": [dict(r) for r in conn.execute("SELECT position, candidate FROM cards ORDER BY position")],
                "page_size": conn.execute("PRAGMA page_size").fetchone()[0],
                "has_offsets": "offset" in {r[1] for r in conn.execute("PRAGMA table_info(images)")},
                "printed_names": _printed_names(conn)}
    except sqlite3.Error as e:
        raise AppError(f"{db_path.name} cannot be read ({e}): check the bundle with `testigo verify`") from None
    finally:
        conn.close()


def _printed_names(conn: sqlite3.Connection) -> bool:
    """Whether any centre's name was read from a photo (the search then asks printed_fts too;
    a bundle without, e.g. the sheet alone, saves the search those range reads)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'printed'").fetchone():
        return False
    return conn.execute("SELECT 1 FROM printed WHERE centre_name IS NOT NULL AND centro IS NOT NULL LIMIT 1").fetchone() is not None


def _check_spec(election, tables: dict) -> dict:
    """comprobar.js's spec, as publish/pages/check.browser_spec makes it for the site."""
    fields = comparison.fields([(c["code"], c["name"]) for c in tables["candidates"]],
                               [(k["position"], k["candidate"]) for k in tables["cards"]])
    spec = comparison.browser_spec(fields, election.payload, [k["candidate"] for k in tables["cards"]])
    spec["messages"] = {k: {"es": v, "en": comparison.PAYLOAD_MESSAGES_EN[k]}
                        for k, v in comparison.PAYLOAD_MESSAGES_ES.items()}
    return spec


def _map(election_id: str) -> dict | None:
    """The estados' shapes as SVG paths (archive.boundaries), or None for an election without them."""
    try:
        paths, width, height = boundaries.project(boundaries.load(election_id))
    except DefinitionError:
        return None
    return {"width": width, "height": height, "areas": [{"key": p.shape.cod_edo, "d": p.d} for p in paths]}


def _downloads_html(files: list[str], base: str) -> str:
    from html import escape
    items = "".join(f'<li><a href="{escape(base + f)}">{escape(f)}</a></li>\n' for f in files)
    return f'<ul id="nojs-downloads">\n{items}</ul>'


def _place(src: Path, dest: Path) -> bool:
    """Hard-link src at dest (True), or copy it where links cannot be made (False)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
        return True
    except OSError:
        shutil.copyfile(src, dest)
        return False


def _prepare_out(out: Path) -> None:
    """DIR must be new, empty, or a previous mirror of testigo's (replaced whole)."""
    if out.exists() and not out.is_dir():
        raise AppError(f"{out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / INFO).is_file():
        raise AppError(f"{out} is not empty and holds no {INFO}: not a mirror of testigo's; give a new or "
                       "empty folder (nothing there is deleted)")


def write_app(bundle: str | os.PathLike, out: str | os.PathLike, data_urls: list[str] | tuple = ()) -> AppReport:
    """Write the browser app of ``bundle`` into ``out`` (see the module docstring)."""
    bundle, out = Path(bundle), Path(out)
    urls = [_check_url(u) for u in data_urls]
    files, manifest_sha = _bundle_files(bundle)
    db_name = _database(bundle, files)
    tables = _tables(bundle / db_name)
    if not tables["has_offsets"]:
        raise AppError(f"{db_name} records no photo offsets (images.offset): it was built by an older testigo; "
                       "rebuild the bundle with this one to serve it as an app")
    dp = json.loads((bundle / "datapackage.json").read_text(encoding="utf-8")) if (bundle / "datapackage.json").is_file() else {}
    meta = dp.get("testigo") or {}
    election = election_mod.load(meta.get("election") or election_mod.DEFAULT_ELECTION)
    problems = vendor.check()
    if problems:
        raise AppError(f"the app's vendored libraries are damaged: {problems[0]} (reinstall testigo)")
    _prepare_out(out)
    staging = out.with_name(out.name + ".app-building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        app_files = []

        def put(rel: str, data: bytes) -> None:
            p = staging / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            app_files.append(p)

        for name in ("app.js", "audit.js", "data.js", "app.css"):
            put(f"assets/{name}", (STATIC / name).read_bytes())
        put("assets/site.css", (SITE_STATIC / "site.css").read_bytes())
        put("assets/comprobar.js", (SITE_STATIC / "comprobar.js").read_bytes())
        for pkg in VENDORED:
            for f in sorted((vendor.VENDOR_DIR / pkg).iterdir()):
                put(f"assets/vendor/{pkg}/{f.name}", f.read_bytes())
        config = {
            "format": FORMAT, "bundle": db_name[:-3], "election": election.id,
            "manifest_sha256": manifest_sha, "database": db_name, "page_size": tables["page_size"],
            "key_id": meta.get("public_key_fingerprint"), "public_key": meta.get("public_key"),
            "data_urls": urls or ["./"], "counts": meta.get("counts") or {},
            "candidates": tables["candidates"], "cards": tables["cards"], "printed_names": tables["printed_names"],
            "check_spec": _check_spec(election, tables), "map": _map(election.id),
            "assets": {"worker": "assets/vendor/sql.js-httpvfs/sqlite.worker.js",
                       "wasm": "assets/vendor/sql.js-httpvfs/sql-wasm.wasm",
                       "zxing": "assets/vendor/zxing-wasm/index.js",
                       "zxing_wasm": "assets/vendor/zxing-wasm/zxing_reader.wasm",
                       "comprobar": "assets/comprobar.js"},
            "files": files,
            "signature": (bundle / SIGNATURE).read_text(encoding="utf-8") if (bundle / SIGNATURE).is_file() else None,
        }
        put(INFO, (json.dumps(config, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode())
        page = (STATIC / "index.html").read_text(encoding="utf-8")
        put("index.html", page.replace(DOWNLOADS_MARK, _downloads_html(files, urls[0] if urls else "")).encode())
        linked = 0
        if not urls:
            for rel in files:
                linked += _place(bundle / rel, staging / rel)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return AppReport(path=out, app_files=len(app_files), bundle_files=0 if urls else len(files), linked=linked,
                     bytes=sum((out / p.relative_to(staging)).stat().st_size for p in app_files),
                     manifest_sha256=manifest_sha, data_urls=urls or ["./"])
