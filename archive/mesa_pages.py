"""The app-shaped tables ``mesa_pages`` and ``audit_pages``: a page in one row, for readers
that pay per page read.

The browser app (``testigo mirror --app``) reads the database over HTTP range requests, one
request per SQLite page it touches. A mesa's page from the normalised tables touches a dozen
b-trees (mesas and its key, centros, actas and its index, images, acta_votes, votes, each with
its root and leaves): some 25 requests on a first visit. Here the same facts are one JSON value
per mesa, in a table whose rowid is made from the mesa (``key`` = CENTRO * 1000 + MESA): a rowid
b-tree's inner pages hold only integers, so one lookup is three pages at national size (a table
keyed by the text id, WITHOUT ROWID, would carry the JSON in its inner pages too, and be deeper).
The mesas of a centre are neighbours (keys CENTRO*1000 .. CENTRO*1000+999): a centre's page is
one short range scan. A mesa's row carries every reading (QR, sheet row, transcription with the
volunteers' public aliases, the printed acta read by OCR), the issues of its actas and the
audit checks that list it.

``audit_pages`` is the same for the audit: one row per scope (key 0 national, else the estado's
code), the page as `testigo audit --json` reads the ``audit_*`` tables (``audit_tables``), generic
over their rows: a check or test added there appears in the app with no change here.

Like the totals tables they are derived at build time from the published tables (after the
audit), never edited: ``verify`` recomputes them (:func:`differences`) and refuses a bundle where
they say anything else.
"""
from __future__ import annotations

import json
import sqlite3

from . import audit, audit_tables

TABLE = "mesa_pages"
COLUMNS = {"key": int, "id": str, "page": str}
MESAS_PER_CENTRE = 1000     # key = centro * 1000 + mesa (mesa numbers stay far below it)
AUDIT_TABLE = "audit_pages"
AUDIT_COLUMNS = {"key": int, "scope": str, "page": str}
LISTED = 200                # mesas listed per check in an audit page (all are in audit_check_mesas)

# The printed acta's columns a mesa's page shows (archive.printed_store.COLUMNS, less the engine's
# bookkeeping); 'lines' is JSON already.
PRINTED = ("acta_code", "uuid", "printed_at", "estado", "municipio", "parroquia", "centre_name", "centre_address",
           "electors", "voters_machine", "voters_notebook", "votos", "validos", "parciales", "nulos", "vacios",
           "opciones_validas", "opciones_nulas", "opciones_vacias", "lines_read", "complete", "engine")


def _has(conn: sqlite3.Connection, table: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is not None


def select(conn: sqlite3.Connection) -> str:
    """The SELECT of ``mesa_pages``' rows, over the tables ``conn`` has (bundles from before the
    transcriptions, the printed acta or the audit lack them; their pages lack those keys).

    One row per mesa. Keys are the columns' own names (see the tables' descriptions); actas in the
    order the site lists them (the counted one first), cards in ballot order (empty for actas that
    are not QR readings). ORDER BY inside the subqueries fixes the order of the JSON arrays."""
    acta_more, mesa_more = [], []
    if _has(conn, "transcriptions"):
        acta_more.append("'transcription', (SELECT json_object('entries', t.entries, 'transcribers', "
                         "json(COALESCE(t.transcribers, '[]'))) FROM transcriptions t WHERE t.acta_id = a.id)")
    if _has(conn, "printed"):
        cols = ", ".join(f"'{c}', p.[{c}]" for c in PRINTED)
        acta_more.append(f"'printed', (SELECT json_object({cols}, 'lines', json(p.lines)) FROM printed p "
                         "WHERE p.image_sha256 = a.image_sha256)")
    acta_more.append("'issues', (SELECT json_group_array(json(y.j)) FROM (SELECT json_object('id', s.id, "
                     "'outcome', s.outcome, 'code', s.code, 'reason', s.reason, 'file', s.file) AS j FROM issues s "
                     "WHERE s.acta_id = a.id ORDER BY s.id) y)")
    if _has(conn, "audit_check_mesas"):
        mesa_more.append("'audit', (SELECT json_group_array(json(z.j)) FROM (SELECT json_object('check_id', "
                         "k.check_id, 'title_es', n.title_es, 'title_en', n.title_en) AS j FROM audit_checks k "
                         "LEFT JOIN audit_notes n ON n.id = k.check_id WHERE k.check_id IN (SELECT cm.check_id "
                         "FROM audit_check_mesas cm WHERE cm.mesa_id = m.id) ORDER BY k.sort_order) z)")
    acta_more = "".join(", " + x for x in acta_more)
    mesa_more = "".join(", " + x for x in mesa_more)
    return f"""
SELECT m.centro * 1000 + m.mesa AS key, m.id AS id, json_object(
  'mesa', json_object('id', m.id, 'centro', m.centro, 'mesa', m.mesa, 'electores', m.electores,
                      'outside_registry', m.outside_registry, 'codigo', c.codigo, 'estado', c.estado,
                      'municipio', c.municipio, 'parroquia', c.parroquia, 'cod_edo', c.cod_edo,
                      'municipio_id', c.municipio_id, 'parroquia_id', c.parroquia_id),
  'actas', (SELECT json_group_array(json(x.j)) FROM (
      SELECT json_object('id', a.id, 'source', a.source, 'status', a.status, 'counted', a.counted,
                         'counted_outside', a.counted_outside, 'validos', a.validos, 'nulos', a.nulos,
                         'crosscheck', a.crosscheck, 'crosscheck_diff', a.crosscheck_diff,
                         'duplicate_of', a.duplicate_of, 'provenance', a.provenance, 'payload', a.payload,
                         'image_sha256', a.image_sha256, 'shard', i.shard, 'offset', i.[offset],
                         'size', i.size, 'media_type', i.media_type, 'width', i.width, 'height', i.height,
                         'votes', (SELECT json_group_object(v.candidate, v.votes) FROM
                                     (SELECT candidate, votes FROM acta_votes WHERE acta_id = a.id
                                      ORDER BY candidate) v),
                         'cards', (SELECT json_group_array(w.votes) FROM
                                     (SELECT votes FROM votes WHERE acta_id = a.id ORDER BY position) w){acta_more}) AS j
      FROM actas a LEFT JOIN images i ON i.sha256 = a.image_sha256
      WHERE a.mesa_id = m.id ORDER BY a.counted DESC, a.counted_outside DESC, a.id) x){mesa_more}
) AS page
FROM mesas m LEFT JOIN centros c ON c.centro = m.centro
ORDER BY key
"""


DESCRIPTION = ("Each mesa's page in one row (computed at build time from mesas, centros, actas, images, "
               "acta_votes, votes, transcriptions, printed, issues and the audit; verify recomputes it): what "
               "the browser app (testigo mirror --app) reads for a mesa with one lookup over HTTP range requests.")
COLUMN_DESCRIPTIONS = {
    "key": "CENTRO * 1000 + MESA: the rowid, so a mesa is one lookup and a centre's mesas one range.",
    "id": "Mesa id 'CENTRO.MM'.",
    "page": "JSON {mesa: {mesas and centros columns}, actas: [{actas columns, the photo's images columns "
            "(shard, offset, size, ...), votes: {candidate: votes}, cards: [votes per ballot card, in "
            "order; empty unless a QR reading], transcription: {entries, transcribers (public aliases)}, "
            "printed: {printed columns of its photo}, issues: [issues of the acta]}], audit: [{check_id, "
            "title_es, title_en} of the checks listing the mesa]}, the counted acta first.",
}
AUDIT_DESCRIPTION = ("Each audit page in one row (national, then per estado; computed at build time from the "
                     "audit_* tables, as `testigo audit --json` reads them; verify recomputes it): what the "
                     "browser app reads for its audit pages with one lookup.")
AUDIT_COLUMN_DESCRIPTIONS = {
    "key": "0 for the national page, else the estado's code (cod_edo).",
    "scope": "'national' or 'estado:<COD_EDO>' (as in audit_coverage).",
    "page": f"JSON {{scope, coverage: [audit_coverage rows: all on the national page], checks: [{{id, title, "
            f"title_es, count, threshold, fields, mesas: the first {LISTED} of the scope, by mesa}}], tests: "
            "[the scope's audit_tests], flagged_scopes, main: [candidates tested], official: [bulletins, "
            "national only], notes: {id: audit_notes row}, histograms: {view: [[x, y, mesas], ...]}}.",
}
AREA_TABLE = "area_pages"
AREA_COLUMNS = {"key": int, "level": str, "id": str, "page": str}
AREA_DESCRIPTION = ("Each totals page in one row (the nation, each estado, municipio and parroquia; computed at "
                    "build time from the totals_* tables; verify recomputes it): what the browser app reads for a "
                    "totals page with one lookup.")
AREA_COLUMN_DESCRIPTIONS = {
    "key": "0 national; 1e12 + E*1e8 estado E; 2e12 + E*1e8 + M*1e4 municipio 'E.M'; 3e12 + E*1e8 + M*1e4 + P "
           "parroquia 'E.M.P': the rowid, so a page is one lookup.",
    "level": "'nacional', 'estado', 'municipio' or 'parroquia'.", "id": "The area's id ('' national).",
    "page": "JSON {rows: the area's rows of its totals table (all columns), children: the rows one level "
            "below (their key, name, candidate, votes), in table order}.",
}
# level -> (totals table, key column, the level below's table, its key and name columns)
_AREAS = {"nacional": ("totals_nacional", None, "totals_estado", "cod_edo", "estado"),
          "estado": ("totals_estado", "cod_edo", "totals_municipio", "municipio_id", "municipio"),
          "municipio": ("totals_municipio", "municipio_id", "totals_parroquia", "parroquia_id", "parroquia"),
          "parroquia": ("totals_parroquia", "parroquia_id", "totals_centro", "centro", "codigo")}
PLACE_NAMES = "place_names"
PLACE_NAMES_COLUMNS = {"key": int, "estado": str, "municipio": str, "parroquia": str, "centros": int}
PLACE_NAMES_DESCRIPTION = ("Every place (estado, municipio, parroquia) of the centres, once, numbered (computed at "
                           "build time from centros; verify recomputes it): small enough for the browser app to "
                           "read whole and match a search against in a couple of range requests.")
PLACE_NAMES_COLUMN_DESCRIPTIONS = {"key": "The place's number (order of its first centre); place_pages.key.",
                                   "estado": "As in centros.", "municipio": "As in centros.", "parroquia": "As in centros.",
                                   "centros": "How many centres the place has (so a search reads no more of "
                                              "place_pages than it shows)."}
PLACE_TABLE = "place_pages"
PLACE_COLUMNS = {"key": int, "page": str}
PLACE_DESCRIPTION = ("Each place's centres in one row (computed at build time from centros and mesas; verify "
                     "recomputes it): what the app's search by place reads for the places it matched.")
PLACE_COLUMN_DESCRIPTIONS = {"key": "place_names.key.",
                             "page": "JSON [[centro, codigo, mesas, electores, [mesa numbers]], ...] by centro."}
# name -> (columns, description, column descriptions): archive.database and the datapackage list them
APP_TABLES = {TABLE: (COLUMNS, DESCRIPTION, COLUMN_DESCRIPTIONS),
              AUDIT_TABLE: (AUDIT_COLUMNS, AUDIT_DESCRIPTION, AUDIT_COLUMN_DESCRIPTIONS),
              AREA_TABLE: (AREA_COLUMNS, AREA_DESCRIPTION, AREA_COLUMN_DESCRIPTIONS),
              PLACE_NAMES: (PLACE_NAMES_COLUMNS, PLACE_NAMES_DESCRIPTION, PLACE_NAMES_COLUMN_DESCRIPTIONS),
              PLACE_TABLE: (PLACE_COLUMNS, PLACE_DESCRIPTION, PLACE_COLUMN_DESCRIPTIONS)}


def place_rows(conn: sqlite3.Connection) -> tuple[list[tuple], list[tuple[int, str]]]:
    """(place_names rows, place_pages rows): the centres grouped by their place, in centre order."""
    mesas: dict[int, list[int]] = {}
    for centro, mesa in conn.execute("SELECT centro, mesa FROM mesas ORDER BY centro, mesa"):
        mesas.setdefault(centro, []).append(mesa)
    places: dict[tuple, list] = {}
    for centro, codigo, estado, municipio, parroquia, n, electores in conn.execute(
            "SELECT centro, codigo, estado, municipio, parroquia, mesas, electores FROM centros ORDER BY centro"):
        places.setdefault((estado, municipio, parroquia), []).append([centro, codigo, n, electores, mesas.get(centro, [])])
    names = [(i, *place, len(c)) for i, (place, c) in enumerate(places.items(), 1)]
    pages = [(i, json.dumps(c, ensure_ascii=False, separators=(",", ":"))) for i, c in enumerate(places.values(), 1)]
    return names, pages


def area_key(level: str, area_id) -> int:
    """The rowid of an area's page (the app computes the same from the address)."""
    if level == "nacional":
        return 0
    parts = [int(x) for x in str(area_id).split(".")] + [0, 0]
    return (("estado", "municipio", "parroquia").index(level) + 1) * 10**12 + parts[0] * 10**8 + parts[1] * 10**4 + parts[2]


def area_rows(conn: sqlite3.Connection, views: dict | None = None) -> list[tuple[int, str, str, str]]:
    """(key, level, id, page JSON) of each totals page but the centres' (one small lookup already):
    from the totals tables, or with ``views`` (archive.database.VIEWS, for verify) from the SELECTs
    they were made of, so an altered totals table is one problem, not two."""
    def source(t: str) -> str:
        return f"({views[t][1]})" if views else f"[{t}]"
    order = "" if views else " ORDER BY rowid"
    out = []
    for level, (table, key, child, ckey, cname) in _AREAS.items():
        if not _has(conn, table) or not _has(conn, child):
            return []
        rows: dict = {}
        for r in audit_tables.dicts(conn, f"SELECT * FROM {source(table)}{order}"):
            rows.setdefault(r[key] if key else "", []).append(r)
        kids: dict = {}
        for r in audit_tables.dicts(conn, f"SELECT {key or 'NULL'} AS parent, [{ckey}], [{cname}], candidate, votes "
                                          f"FROM {source(child)}{order}"):
            parent = r.pop("parent")
            kids.setdefault(parent if key else "", []).append(r)
        for area_id, mine in rows.items():
            page = {"rows": mine, "children": kids.get(area_id, [])}
            out.append((area_key(level, area_id), level, str(area_id),
                        json.dumps(page, ensure_ascii=False, separators=(",", ":"), sort_keys=True)))
    return sorted(out)


def audit_rows(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
    """(key, scope, page JSON) of each audit page; [] for a database without the audit."""
    if not _has(conn, "audit_checks"):
        return []
    whole = audit_tables.read_audit(conn)
    notes = {n["id"]: n for n in audit_tables.dicts(conn, "SELECT * FROM audit_notes ORDER BY sort_order, id")}
    main = list(dict.fromkeys(t["candidate"] for t in whole["tests"]))
    flagged = sorted({t["scope"] for t in whole["tests"] if t["flag"]})
    by_edo: dict[int, dict[str, set]] = {}
    for cid, mid, edo in conn.execute("SELECT cm.check_id, cm.mesa_id, ce.cod_edo FROM audit_check_mesas cm "
                                      "JOIN mesas m ON m.id = cm.mesa_id JOIN centros ce ON ce.centro = m.centro"):
        by_edo.setdefault(edo, {}).setdefault(cid, set()).add(mid)
    out = []
    for cov in whole["coverage"]:
        scope, edo = cov["scope"], cov["cod_edo"]
        if scope == "national":
            checks = [dict(c, mesas=c["mesas"][:LISTED]) for c in whole["checks"]]
        else:
            here = by_edo.get(edo, {})
            checks = [dict(c, mesas=sorted(here.get(c["id"], ()), key=audit.mesa_key)[:LISTED],
                           count=len(here.get(c["id"], ())), fields=None) for c in whole["checks"]]
        hist: dict[str, list] = {}
        for view, x, y, n in conn.execute("SELECT view, x, y, mesas FROM audit_histograms WHERE scope = ? "
                                          "ORDER BY rowid", (scope,)):
            hist.setdefault(view, []).append([x, y, n])
        page = {"scope": scope, "coverage": whole["coverage"] if scope == "national" else [cov],
                "checks": checks, "tests": [t for t in whole["tests"] if t["scope"] == scope],
                "flagged_scopes": flagged, "main": main,
                "official": whole["official"] if scope == "national" else [], "notes": notes, "histograms": hist}
        out.append((0 if scope == "national" else int(edo), scope,
                    json.dumps(page, ensure_ascii=False, separators=(",", ":"), sort_keys=True)))
    return sorted(out)


def write(conn: sqlite3.Connection) -> None:
    """Create and fill the tables from the tables already written in ``conn`` (the audit's included)."""
    if conn.execute("SELECT 1 FROM mesas WHERE mesa < 0 OR mesa >= ? LIMIT 1", (MESAS_PER_CENTRE,)).fetchone():
        raise ValueError(f"a mesa number outside 0..{MESAS_PER_CENTRE - 1}: mesa_pages keys cannot hold it")
    # place_names first, place_pages last: their pages are then far apart in the file, so the
    # range reader does not take the one for a continuation of the other and read ahead
    conn.execute(f"CREATE TABLE [{PLACE_NAMES}] ([key] INTEGER PRIMARY KEY, [estado] TEXT, [municipio] TEXT, "
                 "[parroquia] TEXT, [centros] INTEGER NOT NULL)")
    conn.executemany(f"INSERT INTO [{PLACE_NAMES}] VALUES (?, ?, ?, ?, ?)", place_rows(conn)[0])
    conn.execute(f"CREATE TABLE [{TABLE}] ([key] INTEGER PRIMARY KEY, [id] TEXT NOT NULL, [page] TEXT NOT NULL)")
    conn.execute(f"INSERT INTO [{TABLE}] (key, id, page) {select(conn)}")
    conn.execute(f"CREATE TABLE [{AUDIT_TABLE}] ([key] INTEGER PRIMARY KEY, [scope] TEXT NOT NULL, "
                 "[page] TEXT NOT NULL)")
    conn.executemany(f"INSERT INTO [{AUDIT_TABLE}] (key, scope, page) VALUES (?, ?, ?)", audit_rows(conn))
    conn.execute(f"CREATE TABLE [{AREA_TABLE}] ([key] INTEGER PRIMARY KEY, [level] TEXT NOT NULL, [id] TEXT NOT NULL, "
                 "[page] TEXT NOT NULL)")
    areas = area_rows(conn)
    if len({r[0] for r in areas}) != len(areas):
        raise ValueError("two areas share an area_pages key: an area id outside the key's widths")
    conn.executemany(f"INSERT INTO [{AREA_TABLE}] (key, level, id, page) VALUES (?, ?, ?, ?)", areas)
    pages = place_rows(conn)[1]
    conn.execute(f"CREATE TABLE [{PLACE_TABLE}] ([key] INTEGER PRIMARY KEY, [page] TEXT NOT NULL)")
    conn.executemany(f"INSERT INTO [{PLACE_TABLE}] VALUES (?, ?)", pages)


def differences(conn: sqlite3.Connection, views: dict | None = None) -> list[str]:
    """Where the stored tables are not what the published tables give (empty when they are; a
    bundle without them, from an older testigo, has nothing to compare)."""
    out = []
    if _has(conn, PLACE_TABLE) and (conn.execute(f"SELECT * FROM [{PLACE_NAMES}] ORDER BY key").fetchall(),
                                    conn.execute(f"SELECT * FROM [{PLACE_TABLE}] ORDER BY key").fetchall()) \
            != place_rows(conn):
        out.append(f"{PLACE_NAMES} / {PLACE_TABLE} are not what centros and mesas give: the bundle's place pages were altered")
    if _has(conn, AREA_TABLE) and conn.execute(f"SELECT key, level, id, page FROM [{AREA_TABLE}] ORDER BY key").fetchall() \
            != area_rows(conn, views):
        out.append(f"{AREA_TABLE} is not what the totals tables give: the bundle's totals pages were altered")
    if _has(conn, AUDIT_TABLE):
        stored = conn.execute(f"SELECT key, scope, page FROM [{AUDIT_TABLE}] ORDER BY key").fetchall()
        if stored != audit_rows(conn):
            out.append(f"{AUDIT_TABLE} is not what the audit_* tables give: the bundle's audit pages were altered")
    if not _has(conn, TABLE):
        return out
    stored = conn.execute(f"SELECT key, id, page FROM [{TABLE}] ORDER BY key")
    fresh = conn.execute(select(conn))
    for a, b in zip(stored, fresh):
        if a != b:
            return out + [f"{TABLE} row {a[1]} is not what the published tables give for mesa {b[1]}: "
                          "the bundle's mesa pages were altered"]
    n_stored = conn.execute(f"SELECT count(*) FROM [{TABLE}]").fetchone()[0]
    n_mesas = conn.execute("SELECT count(*) FROM mesas").fetchone()[0]
    if n_stored != n_mesas:
        out.append(f"{TABLE} has {n_stored:,} rows but mesas has {n_mesas:,}: the bundle's mesa pages were altered")
    return out
