"""The bundle's totals as read back: the national lines, and whether every totals table still adds
up the published actas (``verify``). They are written by ``database.materialize``."""
from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

from .database import VIEWS, open_readonly


def totals_differences(conn: sqlite3.Connection) -> list[str]:
    """Where a totals table is not what its SELECT gives from the actas, row by row in order (for
    verify: the stored totals must be the sum of the published actas). Streams both sides.
    A table missing or with other columns (another testigo version's definition) is skipped."""
    out = []
    for name, (columns, sql) in VIEWS.items():
        if [r[1] for r in conn.execute(f"PRAGMA table_info([{name}])")] != list(columns):
            continue
        cols = ", ".join(f"[{c}]" for c in columns)
        stored = conn.execute(f"SELECT {cols} FROM [{name}] ORDER BY rowid")
        fresh = conn.execute(sql)
        for n, (a, b) in enumerate(itertools.zip_longest(stored, fresh), 1):
            if a != b:
                out.append(f"{name} row {n} is {a}, but the actas give {b}: the totals do not add up "
                           "the published actas")
                break
    return out


def national_totals(db_path: Path, relation: str = "totals_nacional") -> dict[str, int]:
    """{candidate: votes} of a national totals relation (``outside_registry_totals``: the separate line)."""
    if relation not in VIEWS:
        raise ValueError(f"{relation} is not a totals relation of the bundle")
    conn = open_readonly(db_path)
    try:
        return {r[0]: r[1] for r in conn.execute(f"SELECT candidate, votes FROM {relation}")}
    finally:
        conn.close()
