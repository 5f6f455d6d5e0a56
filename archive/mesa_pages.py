"""The table ``mesa_pages``: each mesa's page in one row, for readers that pay per page read.

The browser app (``testigo mirror --app``) reads the database over HTTP range requests, one
request per SQLite page it touches. A mesa's page from the normalised tables touches a dozen
b-trees (mesas and its key, centros, actas and its index, images, acta_votes, votes, each with
its root and leaves): some 25 requests on a first visit. Here the same facts are one JSON value
per mesa, in a table whose rowid is made from the mesa (``key`` = CENTRO * 1000 + MESA): a rowid
b-tree's inner pages hold only integers, so one lookup is three pages at national size (a table
keyed by the text id, WITHOUT ROWID, would carry the JSON in its inner pages too, and be deeper).
The mesas of a centre are neighbours (keys CENTRO*1000 .. CENTRO*1000+999): a centre's page is
one short range scan.

Like the totals tables it is derived at build time from the published tables, never edited:
``verify`` recomputes it (:func:`differences`) and refuses a bundle where it says anything else.
"""
from __future__ import annotations

import sqlite3

TABLE = "mesa_pages"
COLUMNS = {"key": int, "id": str, "page": str}
MESAS_PER_CENTRE = 1000     # key = centro * 1000 + mesa (mesa numbers stay far below it)

# One row per mesa. Keys are the columns' own names (see the tables' descriptions); actas in the
# order the site lists them (the counted one first), cards in ballot order (empty for actas that
# are not QR readings). ORDER BY inside the subqueries fixes the order of the JSON arrays.
SELECT = """
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
                                     (SELECT votes FROM votes WHERE acta_id = a.id ORDER BY position) w)) AS j
      FROM actas a LEFT JOIN images i ON i.sha256 = a.image_sha256
      WHERE a.mesa_id = m.id ORDER BY a.counted DESC, a.counted_outside DESC, a.id) x)
) AS page
FROM mesas m LEFT JOIN centros c ON c.centro = m.centro
ORDER BY key
"""

DESCRIPTION = ("Each mesa's page in one row (computed at build time from mesas, centros, actas, images, "
               "acta_votes and votes; verify recomputes it): what the browser app (testigo mirror --app) "
               "reads for a mesa with one lookup over HTTP range requests.")
COLUMN_DESCRIPTIONS = {
    "key": "CENTRO * 1000 + MESA: the rowid, so a mesa is one lookup and a centre's mesas one range.",
    "id": "Mesa id 'CENTRO.MM'.",
    "page": "JSON {mesa: {mesas and centros columns}, actas: [{actas columns, the photo's images columns "
            "(shard, offset, size, ...), votes: {candidate: votes}, cards: [votes per ballot card, in "
            "order; empty unless a QR reading]}]}, the counted acta first.",
}


def write(conn: sqlite3.Connection) -> None:
    """Create and fill the table from the tables already written in ``conn``."""
    if conn.execute("SELECT 1 FROM mesas WHERE mesa < 0 OR mesa >= ? LIMIT 1", (MESAS_PER_CENTRE,)).fetchone():
        raise ValueError(f"a mesa number outside 0..{MESAS_PER_CENTRE - 1}: mesa_pages keys cannot hold it")
    conn.execute(f"CREATE TABLE [{TABLE}] ([key] INTEGER PRIMARY KEY, [id] TEXT NOT NULL, [page] TEXT NOT NULL)")
    conn.execute(f"INSERT INTO [{TABLE}] (key, id, page) {SELECT}")


def differences(conn: sqlite3.Connection) -> list[str]:
    """Where the stored table is not what the published tables give (empty when it is; a bundle
    without the table, from an older testigo, has nothing to compare)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone():
        return []
    stored = conn.execute(f"SELECT key, id, page FROM [{TABLE}] ORDER BY key")
    fresh = conn.execute(SELECT)
    for a, b in zip(stored, fresh):
        if a != b:
            return [f"{TABLE} row {a[1]} is not what the published tables give for mesa {b[1]}: "
                    "the bundle's mesa pages were altered"]
    n_stored = conn.execute(f"SELECT count(*) FROM [{TABLE}]").fetchone()[0]
    n_mesas = conn.execute("SELECT count(*) FROM mesas").fetchone()[0]
    if n_stored != n_mesas:
        return [f"{TABLE} has {n_stored:,} rows but mesas has {n_mesas:,}: the bundle's mesa pages were altered"]
    return []
