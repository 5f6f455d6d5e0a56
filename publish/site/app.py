"""The bundle as a site: what the site loads from a bundle folder and what it tells Datasette.

The bottom of the site's room: :func:`load_bundle` reads the folder, :func:`build_metadata`
and :func:`build_settings` describe it to Datasette. Running it is ``publish.site.server``.

Everything the site shows comes from the bundle directory (see the bundle contract): the
SQLite database opened in Datasette's immutable mode, the photos served out of the zip shards
in ``images/`` (``pages/photos.py``), and the signed checksums, public key and README offered
for download. Nothing is written.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from archive import manifest, shards, signing
from archive import places as places_mod
from archive.database import COLUMN_DESCRIPTIONS, VIEWS
from archive.errors import TestigoError

from .errors import SiteError
from .indexes import indexed_columns, readonly, relation_names

HERE = Path(__file__).resolve().parent.parent   # publish/: templates and static are shared
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
    "allow_facet": True,            # on indexed columns and the tables' own facets (publish.site.cache)
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
    places: places_mod.Places = field(default_factory=places_mod.Places)   # where else it is published
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
    from ..torrent.metainfo import read_torrent
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


def load_bundle(bundle_dir: str | Path, torrent: str | Path | None = None,
                places: str | Path | None = None) -> Bundle:
    """Read a bundle directory (no verification: `testigo verify` does that). ``places``: the
    places file (archive.places; default: ``<bundle>.places.json`` beside the folder, if any)."""
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
    b.places = places_mod.load(places or places_mod.default_path(path), required=places is not None)
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
    # Sorts only where an index answers them (publish.site.cache refuses facets elsewhere too): a sort
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
