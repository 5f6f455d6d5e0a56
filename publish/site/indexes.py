"""What an index of the bundle's database can answer: the columns a visitor may sort or facet by.

A sort or a facet on a column without an index is a full scan of the table per request: the
cheapest way to keep a public Datasette busy. The site offers them only where an index answers
(publish.site's metadata; publish.site.cache refuses the other facets).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path


def readonly(db_path: Path) -> sqlite3.Connection:
    """The database, opened immutable: nothing is ever written beside the bundle's file."""
    return sqlite3.connect(f"file:{db_path}?immutable=1", uri=True)


def relation_names(db_path: Path) -> list[str]:
    """Tables and views a visitor can browse (not the full-text index's own tables)."""
    conn = readonly(db_path)
    try:
        rows = conn.execute("select name, sql from sqlite_master where type in ('table', 'view') "
                            "and name not like 'sqlite_%' order by name").fetchall()
    finally:
        conn.close()
    fts = [n for n, sql in rows if "virtual table" in (sql or "").lower()]
    return [n for n, _ in rows if not any(n == f or n.startswith(f + "_") for f in fts)]


def indexed_columns(db_path: Path) -> dict[str, set[str]]:
    """{table: columns an index can sort or group by}: every column of an index, and the
    primary key (or rowid). Views have none."""
    conn = readonly(db_path)
    try:
        out: dict[str, set[str]] = {}
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
        for t in tables:
            cols = out.setdefault(t, set())
            info = conn.execute("select name, pk from pragma_table_info(?)", (t,)).fetchall()
            pks = [n for n, pk in sorted(info, key=lambda r: r[1]) if pk]
            cols |= set(pks) or {"rowid"}
            for (index,) in conn.execute("select name from pragma_index_list(?)", (t,)).fetchall():
                cols |= {r[0] for r in conn.execute("select name from pragma_index_info(?)", (index,)) if r[0]}
        return out
    finally:
        conn.close()


def facetable_columns(metadata: dict, db_name: str) -> dict[str, set[str]]:
    """{table: columns a visitor may facet by}: the indexed ones and the table's own facets."""
    return {t: set(m.get("sortable_columns", ())) | set(m.get("facets", ()))
            for t, m in metadata["databases"][db_name]["tables"].items()}
