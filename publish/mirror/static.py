"""`testigo mirror`: the public site as static files, for any web host, a USB stick or
``python3 -m http.server``, with no Python (and no testigo) on the server.

When a site falls, copies must be up within minutes, hosted by anyone. The mirror is the site
itself, not a second version of it: every page is rendered by the real app (the same
templates, through Datasette's in-process client) and written where a static host finds it:

  /mesa/<id>          ->  mesa/<id>/index.html         (/en/mesa/<id>/index.html in English:
  /totales/estado/1   ->  totales/estado/1/index.html   static hosts ignore query strings)
  /mesa/<id>.json     ->  mesa/<id>.json               (the same paths the server answers, so
  /buscar/centros.json -> buscar/centros.json           the pages' JavaScript works on both)

Links in the pages are rewritten to those paths; links to Datasette's data browser, which needs
a server, go to the downloads page (the whole database is there, with how to explore it).
Search runs in the browser (publish/static/buscar.js) from /buscar/centros.json. Photos,
downloads and static files are copied as they are. The mirror carries its own SHA256SUMS,
signed like a bundle (``key``), so visitors can check the copy they are served.

Same bundle, same testigo: byte-identical mirror. Pages are rendered a few at a time and
written as they come, so memory stays flat whatever the number of mesas. Host it at the root
of a domain or port (the pages use absolute paths, as on the site).
"""
from __future__ import annotations

import asyncio
import html
import json
import os
import re
import shutil
import sqlite3
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from archive import manifest, signing
from archive.errors import TestigoError
from archive.progress import progress

from ..site.app import STATIC
from ..site.server import InProcessClient, make_datasette

#: The mirror's description of itself (what bundle it shows, made by what), at its root.
INFO = "testigo-mirror.json"
PUBLIC_KEY = "minisign.pub"
#: Pages fetched from the app at once: enough to keep its SQL threads and renderer busy.
BATCH = 16
LEVELS = ("estado", "municipio", "parroquia", "centro")
#: Site paths that are pages of the mirror (each becomes <path>/index.html).
PAGE_RE = re.compile(r"^/(?:buscar|comprobar|descargas|acerca|auditoria|auditoria/estado/[^/]+|totales|"
                     r"totales/(?:estado|municipio|parroquia|centro)"
                     r"/[^/]+|centro/[^/]+|mesa/[^/]+)?$")
#: Site paths that are files of the mirror, kept as they are.
FILE_RE = re.compile(r"^/(?:assets/|-/static/|images/|descargas/[^/]+$|buscar/centros\.json$|robots\.txt$)")
JSON_RE = re.compile(r"^/(?:auditoria|auditoria/estado/[^/]+|totales|totales/(?:estado|municipio|parroquia|centro)/[^/]+|centro/[^/]+|mesa/[^/]+)\.json$")
#: URL attributes of the site's HTML: href="/..." src="/..." action="/..."
URL_ATTR_RE = re.compile(r'(\s(?:href|src|action)=")(/(?!/)[^"]*)(")')


class MirrorError(TestigoError):
    """The mirror cannot be written (a page does not render, the folder is someone else's)."""


@dataclass
class MirrorReport:
    path: Path
    pages: int = 0
    json: int = 0
    files: int = 0
    images: int = 0
    bytes: int = 0
    signed: bool = False
    key_id: str | None = None
    manifest_sha256: str = ""
    warnings: list[str] = field(default_factory=list)


# --- paths ------------------------------------------------------------------------------------------

def site_paths(db_path: Path) -> Iterator[str]:
    """Every site path the mirror holds, in a fixed order: each page in Spanish and English
    (``?lang=en``), then its JSON where the site has one. Streams from the database."""
    conn = sqlite3.connect(f"file:{db_path}?immutable=1", uri=True)
    try:
        def page(path: str, json_too: bool = True) -> Iterator[str]:
            yield path
            yield path + "?lang=en"
            if json_too:
                yield path + ".json"
        yield from page("/", False)
        for p in ("/buscar", "/comprobar", "/descargas", "/acerca"):
            yield from page(p, False)
        yield "/buscar/centros.json"
        yield from page("/totales")
        for scope in _audit_scopes(conn):
            yield from page(scope)
        for level, sql in (("estado", "select cod_edo from estados order by 1"),
                           ("municipio", "select id from municipios order by 1"),
                           ("parroquia", "select id from parroquias order by 1"),
                           ("centro", "select centro from centros order by 1")):
            for (key,) in conn.execute(sql):
                yield from page(f"/totales/{level}/{key}")
        for (centro,) in conn.execute("select centro from centros order by 1"):
            yield from page(f"/centro/{centro}")
        for (mesa,) in conn.execute("select id from mesas order by centro, mesa"):
            yield from page(f"/mesa/{mesa}")
    finally:
        conn.close()


def _audit_scopes(conn: sqlite3.Connection) -> list[str]:
    """The audit's pages (/auditoria and one per estado), where the bundle has the audit."""
    if not conn.execute("select 1 from sqlite_master where name = 'audit_coverage'").fetchone():
        return []
    return ["/auditoria", *(f"/auditoria/estado/{e}" for (e,) in conn.execute(
        "select cod_edo from audit_coverage where cod_edo is not null order by rowid"))]


def count_paths(db_path: Path) -> int:
    conn = sqlite3.connect(f"file:{db_path}?immutable=1", uri=True)
    try:
        areas = sum(conn.execute(f"select count(*) from {t}").fetchone()[0]
                    for t in ("estados", "municipios", "parroquias", "centros"))
        centros, mesas = (conn.execute(f"select count(*) from {t}").fetchone()[0] for t in ("centros", "mesas"))
        audit = len(_audit_scopes(conn))
    finally:
        conn.close()
    return 2 + 4 * 2 + 1 + 3 * (1 + audit + areas + centros + mesas)


def static_url(url: str) -> str:
    """Where a link of the site points to in the mirror (a path with a trailing slash for
    pages, the same path for files and JSON, the downloads page for what needs a server)."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    english = any(k == "lang" and v.lower().startswith("en") for k, v in query)
    rest = urllib.parse.urlencode([(k, v) for k, v in query if k != "lang"])
    fragment = "#" + parts.fragment if parts.fragment else ""
    if FILE_RE.match(path):
        return url
    if JSON_RE.match(path):
        return path + fragment
    lang = "/en" if english else ""
    if path == "/mesa":                      # the home page's "open a mesa" form: the search finds it
        path = "/buscar"
    if not PAGE_RE.match(path):              # Datasette's pages need a server: say how to get the data
        return f"{lang}/descargas/{fragment}"
    return (lang + path.rstrip("/") + "/") + ("?" + rest if rest else "") + fragment


def file_for(url: str) -> str:
    """The file (relative to the mirror's root) that a static host serves for ``url``."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    rel = path.lstrip("/")
    if path.endswith("/"):
        rel += "index.html"
    manifest.check_relpath(rel)
    return rel


def rewrite(page: str, policy: str) -> tuple[str, set[str]]:
    """A page of the site as a page of the mirror: links to static paths, its charset and the
    Content-Security-Policy as <meta> (a static host sends neither). Returns (page, file URLs it uses)."""
    used: set[str] = set()

    def repl(m: re.Match) -> str:
        url = html.unescape(m.group(2))
        new = static_url(url)
        if FILE_RE.match(urllib.parse.urlsplit(new).path):
            used.add(new)
        return m.group(0) if new == url else m.group(1) + html.escape(new, quote=True) + m.group(3)
    page = URL_ATTR_RE.sub(repl, page)
    # frame-ancestors has no effect in a <meta> policy (browsers say so in the console): left out
    meta_policy = "; ".join(p for p in policy.split("; ") if not p.startswith("frame-ancestors"))
    meta = f'<meta http-equiv="Content-Security-Policy" content="{html.escape(meta_policy, quote=True)}">'
    # a static host may send text/html without a charset (python -m http.server does): say it here
    meta = '<meta charset="utf-8">\n    ' + meta
    page = re.sub(r"<head>", lambda m: m.group(0) + "\n    " + meta, page, count=1)
    return page, used


# --- writing -------------------------------------------------------------------------------------------

def _write(root: Path, rel: str, data: bytes) -> int:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return len(data)


def _published_images(bundle) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(mirror path, reader of its bytes) of every published photo, out of the bundle's shards
    (each read checked against its sha256 name)."""
    for m in bundle.images or ():
        yield f"images/{m.name}", lambda m=m: bundle.images.read(m)


def _check_output(out: Path) -> None:
    """A new or empty folder, or a previous mirror (replaced whole)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / INFO).is_file())):
        raise MirrorError(f"{out} exists and is not an empty folder or a previous mirror: choose a new folder")


def make_mirror(bundle_dir: str | Path, out: str | Path, *, key=None, password: str | None = None,
                torrent: str | Path | None = None, jobs: int | None = None,
                places: str | Path | None = None,
                progress_factory: Callable | None = None) -> MirrorReport:
    """Write the static mirror of ``bundle_dir`` into ``out`` (see the module docstring).

    ``key``: secret key (K or K.key) to sign the mirror's SHA256SUMS with; ``password`` for it
    (else $TESTIGO_KEY_PASSWORD). ``torrent``, ``places``: as for `testigo serve`. ``jobs``: processes
    rendering pages (default: one per core). ``progress_factory(n)`` -> a context with
    ``.update(k)`` (pages, then files).
    """
    from archive.staging import staged_folder

    out = Path(out)
    _check_output(out)
    jobs = max(1, int(jobs or os.cpu_count() or 1))
    sk = signing.load_secret_key(key, password) if key is not None else None
    ds = make_datasette(bundle_dir, torrent=torrent, places=places, response_cache_mb=0)
    st = ds.testigo_site
    bundle = st.bundle
    report = MirrorReport(path=out, signed=sk is not None,
                          key_id=signing.key_id(sk.get_public_key()) if sk is not None else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    client = InProcessClient(ds)
    try:
        with staged_folder(out, "mirroring") as staging:
            with progress(progress_factory, count_paths(bundle.db_path)) as bar:
                if jobs == 1:
                    counts = [_render_share(client, staging, 0, 1, bar.update)]
                else:
                    counts = _render_in_processes(bundle.path, torrent, staging, jobs, bar.update, places)
            used: set[str] = set()
            for pages, json_files, files in counts:
                report.pages += pages
                report.json += json_files
                used |= files
            _copy_files(client, bundle, staging, used, report, progress_factory)
            (staging / INFO).write_text(json.dumps({
                "what": "static mirror of a testigo site (testigo mirror)",
                "bundle": bundle.db_name, "election": bundle.election_id,
                "bundle_manifest_sha256": manifest.sha256_file(bundle.path / manifest.MANIFEST)
                if (bundle.path / manifest.MANIFEST).is_file() else None,
                "bundle_key_id": bundle.key_id, "mirror_key_id": report.key_id,
                "verify": ["sha256sum -c SHA256SUMS", "minisign -Vm SHA256SUMS -p minisign.pub"],
            }, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            if sk is not None:
                (staging / PUBLIC_KEY).write_bytes(signing.public_key_bytes(sk.get_public_key()))
            manifest.write_manifest(staging)
            if sk is not None:
                signing.sign_file(sk, staging / manifest.MANIFEST,
                                  f"file:SHA256SUMS\tmirror-of:{bundle.db_name}\telection:{bundle.election_id}"
                                  "\tsigned-by:testigo")
            else:
                report.warnings.append("the mirror is not signed (no --key): visitors can check its files "
                                       "against SHA256SUMS but not who made it")
            report.bytes = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
            report.manifest_sha256 = manifest.sha256_file(staging / manifest.MANIFEST)
        return report
    finally:
        client.close()
        if st.pool is not None:
            st.pool.close()
        if sk is not None:
            sk.wipe()


def _render_share(client: InProcessClient, root: Path, share: int, jobs: int,
                  done: Callable[[int], None]) -> tuple[int, int, set[str]]:
    """Render every ``jobs``-th page of the site (starting at ``share``) into ``root``.
    Returns (HTML pages, JSON files, file URLs the pages use)."""
    policy = client.ds.testigo_site.policy
    counts = [0, 0]
    used: set[str] = set()
    batch: list[str] = []

    def flush():
        async def fetch_all():
            return await asyncio.gather(*[client.ds.client.get(p) for p in batch])
        for path, r in zip(batch, client.run(fetch_all())):
            if r.status_code != 200:
                raise MirrorError(f"{path} answered {r.status_code} instead of a page: {r.text[:200]}")
            target = file_for(static_url(path))
            if r.headers.get("content-type", "").startswith("text/html"):
                page, files = rewrite(r.text, policy)
                used.update(files)
                _write(root, target, page.encode("utf-8"))
                counts[0] += 1
            else:
                _write(root, target, r.content)
                counts[1] += 1
        done(len(batch))
        batch.clear()
    for i, path in enumerate(site_paths(client.ds.testigo_site.bundle.db_path)):
        if i % jobs == share:
            batch.append(path)
            if len(batch) == BATCH:
                flush()
    if batch:
        flush()
    return counts[0], counts[1], used


_rendered = None   # in a rendering process: the shared count of pages done (for the progress bar)


def _worker_init(counter, parent: int) -> None:
    global _rendered
    _rendered = counter
    from archive.staging import exit_with_parent
    exit_with_parent(parent)       # a killed mirror leaves no worker rendering for nobody


def _worker(bundle_dir: str, torrent, root: str, share: int, jobs: int,
            places: str | None = None) -> tuple[int, int, set[str]]:
    def done(n):
        with _rendered.get_lock():
            _rendered.value += n
    ds = make_datasette(bundle_dir, torrent=torrent, places=places, response_cache_mb=0)
    client = InProcessClient(ds)
    try:
        return _render_share(client, Path(root), share, jobs, done)
    finally:
        client.close()


def _render_in_processes(bundle_dir: Path, torrent, root: Path, jobs: int, update, places=None) -> list:
    """Render the pages in ``jobs`` processes (one Datasette each), reporting progress here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init, initargs=(counter, os.getpid())) as ex:
        futures = [ex.submit(_worker, str(bundle_dir), str(torrent) if torrent else None, str(root), i, jobs,
                             str(places) if places else None)
                   for i in range(jobs)]
        reported = 0
        while True:
            finished, pending = wait(futures, timeout=0.5)
            now = counter.value
            update(now - reported)
            reported = now
            if not pending:
                break
            if any(f.exception() for f in finished):   # one failed: stop the others
                for f in pending:
                    f.cancel()
                break
        return [f.result() for f in futures]


def _copy_files(client: InProcessClient, bundle, root: Path, used: set[str], report: MirrorReport,
                progress_factory) -> None:
    """Static files (every asset, and Datasette's the pages use), downloads and photos."""
    assets = ["/assets/" + p.relative_to(STATIC).as_posix() for p in sorted(STATIC.rglob("*")) if p.is_file()]
    fetched = sorted({u.split("?")[0] for u in used if u.startswith("/-/static/")} | set(assets)
                     | {"/robots.txt"})
    images = list(_published_images(bundle))
    with progress(progress_factory, len(fetched) + len(bundle.downloads) + len(images)) as bar:
        for url in fetched:
            r = client.get(url)
            if r.status_code != 200:
                raise MirrorError(f"{url} answered {r.status_code}")
            _write(root, file_for(url), r.content)
            report.files += 1
            bar.update(1)
        for d in bundle.downloads:
            target = root / file_for(d.url)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(d.path, target)
            report.files += 1
            bar.update(1)
        for rel, read in images:
            _write(root, file_for("/" + rel), read())
            report.images += 1
            bar.update(1)
