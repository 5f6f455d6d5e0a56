"""The public site: Datasette over a bundle, read-only and immutable, Spanish first.

``make_datasette(bundle_dir)`` returns a configured :class:`datasette.app.Datasette` (for tests
and for embedding); ``serve(bundle_dir, host, port)`` runs it with uvicorn until stopped.

Everything the site shows comes from the bundle directory (see the bundle contract): the
SQLite database opened in Datasette's immutable mode, the photos served out of the zip shards
in ``images/`` (``pages/photos.py``), and the signed checksums, public key and README offered
for download. Nothing is written.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from archive import manifest, shards, signing
from archive.database import COLUMN_DESCRIPTIONS, VIEWS
from archive.errors import TestigoError

from .gate import DATA_CONCURRENCY
from .indexes import facetable_columns, indexed_columns, readonly, relation_names

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
PLUGIN_NAME = "testigo_site"

#: Seconds a browser or CDN may keep a page, a JSON answer or a download whose URL does not
#: change with its content. The bundle never changes under a running site, but a new edition
#: may be deployed at the same address, so this is not a year.
DEFAULT_CACHE_TTL = 600
#: For content-addressed URLs (images named by sha256, static files with ?v=<hash>).
IMMUTABLE_TTL = 31_536_000

DEFAULT_SETTINGS = {
    "sql_time_limit_ms": 1000,      # any one query, including visitors' own SQL
    "max_returned_rows": 1000,
    "default_page_size": 50,
    "num_sql_threads": 3,
    "facet_time_limit_ms": 200,
    "facet_suggest_time_limit_ms": 50,
    "suggest_facets": False,        # suggested facets cost queries on every table page
    "allow_facet": True,            # on indexed columns and the tables' own facets (publish.cache)
    "allow_download": True,
    "allow_csv_stream": True,
    "max_csv_mb": 100,
    "truncate_cells_html": 2048,
    "template_debug": False,
    "trace_debug": False,
}

LICENSE_URLS = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
}

# Descriptions of tables, Spanish / English; column descriptions come from archive.bundle.
TABLE_DESCRIPTIONS = {
    "estados": ("Estados (primer nivel territorial).", "States."),
    "municipios": ("Municipios; id = \"EDO.MUN\".", "Municipalities; id = \"EDO.MUN\"."),
    "parroquias": ("Parroquias; id = \"EDO.MUN.PAR\".", "Parishes; id = \"EDO.MUN.PAR\"."),
    "centros": ("Centros de votación (los datos no traen su nombre, solo el código y el lugar).",
                "Voting centres (the data has codes and places, not centre names)."),
    "mesas": ("Todas las mesas del registro, con sus electores inscritos; id = \"CENTRO.MM\".",
              "Every mesa (polling table) of the registry with its registered electors."),
    "candidates": ("Candidatos.", "Candidates."),
    "cards": ("Tarjetas de la boleta (38) y a qué candidato suman.",
              "The 38 ballot cards and the candidate each one counts for."),
    "images": ("Fotos de actas publicadas (sin metadatos), por sha256.",
               "Published acta photos (metadata stripped), by sha256."),
    "actas": ("Cada lectura de un acta: QR de una foto, fila transcrita de la hoja (CSV) o foto transcrita "
              "por voluntarios.", "Every reading of an acta: the QR of a photo, a transcribed sheet row (CSV) "
              "or a photo transcribed by volunteers."),
    "votes": ("Votos por tarjeta de cada acta leída del QR.", "Votes per ballot card, QR readings."),
    "acta_votes": ("Votos por candidato de cada acta.", "Votes per candidate, every acta."),
    "team_bundles": ("Paquetes firmados de otros equipos de los que vienen actas, con sus claves.",
                     "Other teams' signed bundles this archive took actas from, with their keys."),
    "issues": ("Entradas que no dieron un acta (ilegibles, inválidas, rechazadas...), con el motivo.",
               "Inputs that did not give an acta (unreadable, invalid, rejected...), with the reason."),
    "transcriptions": ("Actas transcritas de una foto por voluntarios: cuántas entradas hicieron falta y los "
                       "alias públicos elegidos (nunca nombres).", "Actas transcribed from a photo by "
                       "volunteers: entries it took and the public aliases chosen (never names)."),
    "totals_nacional": ("Totales nacionales por candidato (actas contadas).", "National totals."),
    "totals_estado": ("Totales por estado y candidato.", "Totals by state."),
    "totals_municipio": ("Totales por municipio y candidato.", "Totals by municipality."),
    "totals_parroquia": ("Totales por parroquia y candidato.", "Totals by parish."),
    "totals_centro": ("Totales por centro y candidato.", "Totals by centre."),
    "outside_registry_totals": ("Línea aparte: votos de las actas de mesas fuera del registro (no entran en "
                                "los totales).", "Separate line: votes of actas of mesas outside the registry "
                                "(not part of the totals)."),
}


class SiteError(TestigoError):
    """The folder is not a bundle the site can serve."""


@dataclass
class DownloadFile:
    name: str            # path relative to the bundle (or the torrent's file name)
    size: int
    sha256: str | None
    path: Path           # where it is on this machine (never shown)

    @property
    def url(self) -> str:
        return "/descargas/" + self.name


@dataclass
class Bundle:
    """What the site needs to know about a bundle directory."""

    path: Path
    db_path: Path
    db_name: str
    election_id: str
    datapackage: dict
    testigo: dict
    sums: dict[str, str]
    public_key: str | None
    key_id: str | None
    readme: str | None
    torrent: Path | None = None
    magnet: str | None = None
    torrent_v1: Path | None = None   # the v1-only companion: what older clients can open
    magnet_v1: str | None = None
    downloads: list[DownloadFile] = field(default_factory=list)
    static_version: str = ""
    images: shards.ShardIndex | None = None   # the photos, indexed once from the shards


def _read_text(p: Path) -> str | None:
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _key_id(pub: Path) -> str | None:
    """Key id of the bundle's minisign.pub as minisign prints it, or None if unreadable."""
    if not pub.is_file():
        return None
    try:
        return signing.key_id(signing.load_public_key(pub))
    except TestigoError:
        return None


def magnet_from_torrent(path: str | Path) -> str | None:
    """The magnet link of a .torrent file, or None (logged) when it cannot be read."""
    from publish.torrent import read_torrent
    try:
        return read_torrent(path).magnet
    except TestigoError as e:
        logging.getLogger(__name__).warning("no magnet link: %s", e)
        return None


def _find_db(path: Path, datapackage: dict) -> Path:
    for res in datapackage.get("resources") or []:
        p = str(res.get("path") or "")
        if p.endswith(".db") and "/" not in p and (path / p).is_file():
            return path / p
    dbs = sorted(path.glob("*.db"))
    if len(dbs) == 1:
        return dbs[0]
    if not dbs:
        raise SiteError(f"{path} holds no .db file; is it a bundle made by `testigo build`?")
    raise SiteError(f"{path} holds several .db files ({', '.join(d.name for d in dbs)}); "
                    "name the bundle's datapackage.json resources")


def load_bundle(bundle_dir: str | Path, torrent: str | Path | None = None) -> Bundle:
    """Read a bundle directory (no verification: `testigo verify` does that)."""
    path = Path(bundle_dir).resolve()
    if not path.is_dir():
        raise SiteError(f"{bundle_dir}: no such bundle folder")
    dp_text = _read_text(path / "datapackage.json")
    try:
        datapackage = json.loads(dp_text) if dp_text else {}
    except ValueError as e:
        raise SiteError(f"{path / 'datapackage.json'} is not valid JSON: {e}")
    if not isinstance(datapackage, dict):
        datapackage = {}
    db_path = _find_db(path, datapackage)
    testigo = datapackage.get("testigo") if isinstance(datapackage.get("testigo"), dict) else {}
    election_id = testigo.get("election") or db_path.stem
    sums_path = path / manifest.MANIFEST
    sums = manifest.parse_manifest(sums_path.read_bytes())[0] if sums_path.is_file() else {}
    public_key = _read_text(path / "minisign.pub")
    b = Bundle(path=path, db_path=db_path, db_name=db_path.stem, election_id=election_id,
               datapackage=datapackage, testigo=testigo, sums=sums, public_key=public_key,
               key_id=_key_id(path / "minisign.pub") or testigo.get("public_key_fingerprint"),
               readme=_read_text(path / "README.md"))

    b.images = shards.open_images(path)
    for problem in b.images.problems:
        logging.getLogger(__name__).warning("photos: %s (run `testigo verify`)", problem)

    def offer(f: Path, sha256: str | None = None) -> None:
        b.downloads.append(DownloadFile(f.name, f.stat().st_size, sha256, f))

    # downloads: top-level files listed in SHA256SUMS, then the checksums and signature
    names = [n for n in sorted(sums) if "/" not in n]
    names += [n for n in (manifest.MANIFEST, manifest.SIGNATURE) if n not in names]
    for n in names:
        if (path / n).is_file():
            offer(path / n, sums.get(n))
    if torrent is None:
        beside = path.with_name(path.name + ".torrent")
        torrent = beside if beside.is_file() else None
    if torrent is not None:
        t = Path(torrent).resolve()
        if not t.is_file():
            raise SiteError(f"{torrent}: no such torrent file")
        b.torrent = t
        b.magnet = magnet_from_torrent(t)
        offer(t)
        # `testigo torrent` writes X.torrent (hybrid v1+v2) and X.v1.torrent beside it
        if t.name.endswith(".torrent") and not t.name.endswith(".v1.torrent"):
            v1 = t.with_name(t.name[: -len(".torrent")] + ".v1.torrent")
            if v1.is_file():
                b.torrent_v1 = v1
                b.magnet_v1 = magnet_from_torrent(v1)
                offer(v1)
    h = hashlib.sha256()
    for p in sorted(STATIC.glob("*")):
        if p.is_file():
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    b.static_version = h.hexdigest()[:12]
    return b


CANNED_QUERIES = {
    "buscar_centros": {
        "title": "Buscar un centro por código o lugar / Find a centre by code or place",
        "description": "Texto libre: código del centro, estado, municipio o parroquia. "
                       "Free text: centre code, state, municipality or parish.",
        "sql": (
            "select centro, codigo, estado, municipio, parroquia, mesas, electores\n"
            "from centros\n"
            "where trim(:q) != ''  -- the empty form: no rows (an empty full-text query is an error)\n"
            "  and (rowid in (select rowid from centros_fts where centros_fts match escape_fts(:q))\n"
            "       or codigo = trim(:q))\n"
            "order by centro\nlimit 200"),
    },
    "mesa": {
        "title": "Una mesa: sus actas / One mesa: its actas",
        "description": "id = CENTRO.MM, p. ej. / e.g. 201301006.01",
        "sql": (
            "select a.id as acta, a.mesa_id, a.source, a.status, a.counted, a.validos, a.nulos,\n"
            "  a.crosscheck, a.crosscheck_diff, a.duplicate_of, i.path as image, a.payload\n"
            "from actas a left join images i on i.sha256 = a.image_sha256\n"
            "where a.mesa_id = :id order by a.id"),
    },
    "votos_de_mesa": {
        "title": "Votos por candidato de una mesa / Votes per candidate of a mesa",
        "sql": (
            "select a.id as acta, a.source, a.status, a.counted, c.code, c.name, v.votes\n"
            "from actas a join acta_votes v on v.acta_id = a.id join candidates c on c.code = v.candidate\n"
            "where a.mesa_id = :id order by a.id, c.sort_order"),
    },
    "actas_con_alertas": {
        "title": "Actas con alertas: duplicadas, en conflicto o distintas de la hoja / Flagged actas",
        "sql": (
            "select a.id as acta, a.mesa_id, a.source, a.status, a.counted, a.crosscheck,\n"
            "  a.crosscheck_diff, a.duplicate_of\n"
            "from actas a where a.status != 'ok' or a.crosscheck = 'disagree'\n"
            "order by a.mesa_id, a.id"),
    },
    "actas_fuera_del_registro": {
        "title": "Actas fuera del registro / Actas outside the registry",
        "description": "Mesas que la hoja por mesa no trae: sus actas se conservan y se cuentan aparte. "
                       "Mesas the per-mesa sheet lacks: their actas are kept and counted apart.",
        "sql": (
            "select a.id as acta, a.mesa_id, a.source, a.status, a.counted_outside, a.validos,\n"
            "  ce.estado, ce.municipio, ce.parroquia, i.path as image, a.payload\n"
            "from actas a join mesas m on m.id = a.mesa_id join centros ce on ce.centro = m.centro\n"
            "  left join images i on i.sha256 = a.image_sha256\n"
            "where a.outside_registry = 1 order by a.mesa_id, a.id"),
    },
    "resumen_de_entradas": {
        "title": "Entradas sin acta, por motivo / Inputs without an acta, by reason",
        "sql": "select outcome, code, count(*) as n from issues group by outcome, code order by n desc",
    },
}


def build_metadata(bundle: Bundle) -> dict:
    """Datasette metadata for a bundle: titles, licence, sources, descriptions, canned queries."""
    dp = bundle.datapackage
    title = dp.get("title") or f"Actas {bundle.election_id}"
    licenses = dp.get("licenses") or [{"name": "CC0-1.0"}]
    lic = licenses[0] if isinstance(licenses, list) and licenses and isinstance(licenses[0], dict) else {}
    lic_name = lic.get("name") or lic.get("title") or "CC0-1.0"
    lic_url = lic.get("path") or LICENSE_URLS.get(lic_name)
    sources = dp.get("sources") if isinstance(dp.get("sources"), list) else []
    source_titles = [s.get("title") for s in sources if isinstance(s, dict) and s.get("title")]
    source = "; ".join(source_titles) or ("Fotos de actas enviadas por ciudadanos y la hoja de resultados "
                                          "por mesa publicada por resultadosconvzla.com")
    source_url = next((s.get("path") for s in sources if isinstance(s, dict)
                       and str(s.get("path", "")).startswith("http")), None)
    key = bundle.key_id or "?"
    description_html = (
        "<p>Actas de escrutinio fotografiadas por ciudadanos, su código QR leído y comprobado, y los "
        "totales que resultan. Datos de dominio público (CC0), firmados: compruebe la firma antes "
        "de confiar en ellos.</p>"
        "<p lang=\"en\"><em>Tally sheets photographed by citizens, their QR codes read and checked, and "
        "the totals they give. Public-domain data, signed: verify the signature before you rely "
        "on it.</em></p>"
        f"<p>Clave pública / public key: <code>{key}</code> — "
        "<a href=\"/descargas\">descargas y verificación / downloads and how to verify</a> · "
        "<a href=\"/\">inicio / home</a></p>")
    tables: dict = {}
    for t in sorted(set(TABLE_DESCRIPTIONS) | set(COLUMN_DESCRIPTIONS)):
        entry: dict = {}
        if t in TABLE_DESCRIPTIONS:
            es, en = TABLE_DESCRIPTIONS[t]
            entry["description"] = f"{es} / {en}"
        if t in COLUMN_DESCRIPTIONS:
            entry["columns"] = dict(COLUMN_DESCRIPTIONS[t])
        tables[t] = entry
    tables.setdefault("centros", {})["label_column"] = "codigo"
    tables.setdefault("candidates", {})["label_column"] = "name"
    tables.setdefault("team_bundles", {})["label_column"] = "provenance"
    tables.setdefault("centros", {})["searchmode"] = "escaped"
    tables.setdefault("actas", {})["facets"] = ["source", "status", "crosscheck", "outside_registry"]
    tables.setdefault("issues", {})["facets"] = ["outcome", "code"]
    for t, (cols, _) in VIEWS.items():   # totals by area: by candidate, and by state below the state level
        area = next(iter(cols))
        if area != "candidate":
            tables.setdefault(t, {})["facets"] = [c for c in ("candidate", "estado")
                                                  if c in cols and not (c == "estado" and area == "cod_edo")]
    # Sorts only where an index answers them (publish.cache refuses facets elsewhere too): a sort
    # on any other column is a full scan per visitor, the cheapest way to keep a Datasette busy.
    indexed = indexed_columns(bundle.db_path)
    for t in relation_names(bundle.db_path):
        tables.setdefault(t, {})["sortable_columns"] = sorted(indexed.get(t, ()))
    return {
        "title": title,
        "description_html": description_html,
        "license": lic_name,
        "license_url": lic_url,
        "source": source,
        "source_url": source_url,
        "about": "testigo — cómo se recogieron y cómo verificar / how it was collected and how to verify",
        "about_url": "/acerca",
        "databases": {
            bundle.db_name: {
                "description_html": description_html,
                "tables": tables,
                "queries": CANNED_QUERIES,
            }
        },
    }


def build_settings(cache_ttl: int = DEFAULT_CACHE_TTL, allow_sql: bool = False, **overrides) -> dict:
    s = dict(DEFAULT_SETTINGS)
    s["default_cache_ttl"] = int(cache_ttl)
    s["default_allow_sql"] = bool(allow_sql)
    s.update(overrides)
    return s


def register_plugin() -> None:
    """Register the site's hooks with Datasette's plugin manager (once per process)."""
    from datasette.plugins import pm
    from . import site_plugin
    if pm.get_plugin(PLUGIN_NAME) is None and not pm.is_registered(site_plugin):
        pm.register(site_plugin, name=PLUGIN_NAME)


def make_datasette(bundle_dir: str | Path, *, torrent: str | Path | None = None,
                   cache_ttl: int = DEFAULT_CACHE_TTL, allow_sql: bool = False,
                   response_cache_mb: int = 64, data_concurrency: int = DATA_CONCURRENCY,
                   settings: dict | None = None):
    """A Datasette serving ``bundle_dir`` read-only (immutable mode), with the site's pages.

    ``torrent``: a .torrent of the bundle to offer (default: ``<bundle>.torrent`` beside the
    folder when it exists). ``cache_ttl``: Cache-Control max-age of pages and downloads.
    ``allow_sql``: let visitors run their own SQL (a private instance). ``response_cache_mb``:
    memory for the in-process cache of repeated answers (0: none). ``data_concurrency``: how
    many of Datasette's own pages are computed at once (publish.gate).
    """
    from datasette.app import Datasette

    bundle = load_bundle(bundle_dir, torrent)
    register_plugin()
    from .site_state import SiteState
    state = SiteState(bundle=bundle, cache_ttl=int(cache_ttl), response_cache_bytes=int(response_cache_mb) * 2**20,
                      data_concurrency=int(data_concurrency))

    class SiteDatasette(Datasette):
        # The hooks find the site's state on the instance; Datasette builds its app (and so
        # calls register_routes / asgi_wrapper) inside __init__, so it must be there first.
        def __init__(self, *args, **kwargs):
            self.testigo_site = state
            super().__init__(*args, **kwargs)

    metadata = build_metadata(bundle)
    state.facetable = facetable_columns(metadata, bundle.db_name)
    ds = SiteDatasette(
        immutables=[str(bundle.db_path)],
        metadata=metadata,
        settings=build_settings(cache_ttl, allow_sql, **(settings or {})),
        template_dir=str(TEMPLATES),
        static_mounts=[("assets", str(STATIC))],
        cors=True,
    )
    db = ds.databases.get(bundle.db_name)
    if db is not None and bundle.sums.get(bundle.db_path.name):
        # The ETag of the .db download; taken from SHA256SUMS instead of hashing GBs at start.
        db.cached_hash = bundle.sums[bundle.db_path.name]
    return ds


class InProcessClient:
    """Datasette's internal client (no server, no socket) usable from synchronous code.

    Requests run on a private event loop in a thread of its own, so this works even where
    another loop is already running in the calling thread (Playwright's, a notebook's).
    """

    def __init__(self, ds):
        import asyncio
        import threading
        self.ds = ds
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="datasette-client", daemon=True)
        self._thread.start()
        self.run(ds.invoke_startup())

    def run(self, coro):
        """Run a coroutine on the client's loop and return its result."""
        import asyncio
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def get(self, path: str, **kw):
        return self.run(self.ds.client.get(path, **kw))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def check_database(bundle: Bundle) -> None:
    """Open the bundle's database read-only and look for the tables the site needs."""
    import sqlite3
    try:
        conn = readonly(bundle.db_path)
        try:
            names = {r[0] for r in conn.execute("select name from sqlite_master where type in ('table', 'view')")}
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise SiteError(f"{bundle.db_path} is not a readable SQLite database: {e}")
    missing = sorted({"mesas", "centros", "actas", "acta_votes", "candidates", "totals_nacional"} - names)
    if missing:
        raise SiteError(f"{bundle.db_path} lacks {', '.join(missing)}: not a testigo bundle database")


def serve(bundle_dir: str | Path, host: str = "127.0.0.1", port: int = 8001, *,
          torrent: str | Path | None = None, cache_ttl: int = DEFAULT_CACHE_TTL,
          allow_sql: bool = False, response_cache_mb: int = 64,
          data_concurrency: int = DATA_CONCURRENCY, echo=None, log_level: str = "warning",
          guard=None) -> None:
    """Serve a bundle until interrupted (blocking).

    Once listening, calls ``echo(url)`` (default: print it), e.g. ``http://127.0.0.1:8001/``;
    with ``port=0`` the URL tells which port was given. ``guard``: see :func:`serve_app`.
    """
    ds = make_datasette(bundle_dir, torrent=torrent, cache_ttl=cache_ttl, allow_sql=allow_sql,
                        response_cache_mb=response_cache_mb, data_concurrency=data_concurrency)
    check_database(ds.testigo_site.bundle)
    from .browser import DataBrowser
    browser = DataBrowser(ds.testigo_site.bundle.path, [
        *(["--torrent", str(torrent)] if torrent else []), "--cache-ttl", str(int(cache_ttl)),
        *(["--allow-sql"] if allow_sql else [])])
    try:
        browser.start()                  # Datasette's own pages, in a process of their own
        ds.testigo_site.browser = browser
        # invoke_startup loads the small tables before the first visitor
        serve_app(ds.app(), host, port, echo=echo, startup=ds.invoke_startup, shutdown=browser.stop,
                  log_level=log_level, guard=guard)
    finally:
        browser.stop()


def serve_app(app, host: str, port: int, *, echo=None, startup=None, shutdown=None,
              log_level: str = "warning", guard=None) -> None:
    """Run an ASGI app with uvicorn until interrupted; ``echo(url)`` once it listens.

    ``startup``: an async callable awaited before the socket opens; ``shutdown``: a callable
    run once the server has stopped (also after a signal, which uvicorn re-raises once it has
    shut down). With ``port=0`` the URL tells which port the system gave. ``guard``: the
    :class:`publish.connections.ConnectionGuard` its connections answer to (default: one with
    the default deadline and per-address cap).
    """
    import uvicorn

    from .connections import ConnectionGuard, raise_open_files_limit

    guard = guard or ConnectionGuard()
    raise_open_files_limit()

    echo = echo or (lambda url: print(url, flush=True))

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            if startup is not None:
                await startup()
            await super().startup(sockets=sockets)
            if self.started:
                for srv in self.servers:
                    for sock in srv.sockets:
                        h, p = sock.getsockname()[:2]
                        echo(f"http://{f'[{h}]' if ':' in h else h}:{p}/")

        async def shutdown(self, sockets=None):
            await super().shutdown(sockets=sockets)
            if shutdown is not None:
                shutdown()      # here: after a signal, uvicorn re-raises it once it has shut down

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            server_header=False, timeout_keep_alive=10, backlog=2048, http=guard.protocol())
    Server(config).run()


def stop_process(proc, timeout: float = 10) -> None:
    """Stop a server started by start_in_subprocess / start_command: SIGTERM, then SIGKILL."""
    import subprocess
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def start_in_subprocess(bundle_dir: str | Path, *args: str, timeout: float = 60, preexec_fn=None):
    """Run `testigo serve BUNDLE --port 0 ARGS` in a child process; return (process, URL).

    For tests and benchmarks that need a real server on loopback: the URL is read from what
    the server prints once it listens. Raises SiteError with the server's stderr if it does not.
    """
    return start_command(["publish.site_cli", str(bundle_dir), "--port", "0", *args], timeout=timeout,
                         preexec_fn=preexec_fn)


def start_command(module_args: list[str], timeout: float = 60, preexec_fn=None):
    """Run `python -m MODULE ARGS` (a server printing its loopback URL); return (process, URL).

    The URL is the first ``http://127.0.0.1:PORT/...`` the process prints (with its path and
    query, e.g. an access code). ``preexec_fn``: run in the child before it starts (e.g. to
    set its resource limits as a service manager would).
    """
    import os
    import re
    import subprocess
    import sys
    import threading

    proc = subprocess.Popen([sys.executable, "-m", *module_args],
                            env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
    found: list[str] = []

    def read():
        for line in proc.stdout:
            m = re.search(r"http://127\.0\.0\.1:\d+/\S*", line)
            if m:
                found.append(m.group(0))
                break
        for _ in proc.stdout:   # never let the pipe fill up
            pass

    t = threading.Thread(target=read, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while not found and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not found:
        proc.kill()
        err = proc.stderr.read() if proc.wait(10) is not None else ""
        raise SiteError(f"the server printed no URL within {timeout:.0f} s: {err.strip()[-2000:]}")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # never let the pipe fill up
    return proc, found[0]
