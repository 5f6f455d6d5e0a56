"""``datapackage.json``: the bundle described as a Frictionless Data Package.

Every file with its size and hash, every table (the totals included) with its schema and column
descriptions, and testigo's own block (key, counting rule, counts, totals, software).
"""
from __future__ import annotations

from . import mesa_pages
from .audit_tables import AUDIT_TABLES
from .database import COLUMN_DESCRIPTIONS, COUNTING_RULE, TABLE_DESCRIPTIONS, TABLES, VIEWS, TableSpec
from .published import IMAGES_DIR


def _field_type(t: type) -> str:
    return {int: "integer", float: "number"}.get(t, "string")


def _schema(name: str, columns: dict[str, type], spec: TableSpec | None, desc: dict | None = None) -> dict:
    desc = desc if desc is not None else COLUMN_DESCRIPTIONS.get(name, {})
    schema: dict = {"fields": [{"name": c, "type": _field_type(t), **({"description": desc[c]} if c in desc else {})}
                               for c, t in columns.items()]}
    if spec is not None:
        schema["primaryKey"] = [spec.pk] if isinstance(spec.pk, str) else list(spec.pk)
        if spec.foreign_keys:
            schema["foreignKeys"] = [{"fields": [col], "reference": {"resource": other, "fields": [other_col]}}
                                     for col, other, other_col in spec.foreign_keys]
    return schema


def _shard_resources(shards, election) -> list[dict]:
    """One resource per photo shard (``published.Shard``), titled by its estado and part."""
    parts: dict[int, int] = {}
    for s in shards:
        parts[s.cod_edo] = parts.get(s.cod_edo, 0) + 1
    seen: dict[int, int] = {}
    out = []
    for s in shards:
        seen[s.cod_edo] = seen.get(s.cod_edo, 0) + 1
        where = election.estados.get(s.cod_edo) or (
            "centres outside the registry whose code names no estado" if s.cod_edo == 0 else f"estado {s.cod_edo:02d}")
        part = f", part {seen[s.cod_edo]} of {parts[s.cod_edo]}" if parts[s.cod_edo] > 1 else ""
        out.append({"name": s.path.removesuffix(".zip").replace("/", "-"), "path": s.path, "format": "zip",
                    "mediatype": "application/zip", "bytes": s.bytes, "hash": f"sha256:{s.sha256}",
                    "title": f"Acta photos of {where}{part}",
                    "description": f"{s.members:,} photos, stored (not recompressed), each named "
                                   "<sha256>.<ext>; table images, column shard, lists them."})
    return out


def datapackage(name: str, election, db_file: str, db_size: int, db_sha: str, info: dict,
                shards=()) -> dict:
    base = {"path": db_file, "format": "sqlite", "mediatype": "application/vnd.sqlite3",
            "bytes": db_size, "hash": f"sha256:{db_sha}"}
    resources = [{"name": "database", "title": "SQLite database (all tables)", **base}]
    for t, spec in TABLES.items():
        resources.append({"name": t, "type": "table", "description": TABLE_DESCRIPTIONS[t], **base,
                          "dialect": {"table": t}, "schema": _schema(t, spec.columns, spec)})
    for v, (cols, _) in VIEWS.items():   # totals: tables computed at build time from the actas
        resources.append({"name": v, "type": "table", "description": TABLE_DESCRIPTIONS[v], **base,
                          "dialect": {"table": v}, "schema": _schema(v, cols, None)})
    for t, (cols, _, _) in mesa_pages.APP_TABLES.items():   # app-shaped pages, computed at build time
        resources.append({"name": t, "type": "table", "description": TABLE_DESCRIPTIONS[t], **base,
                          "dialect": {"table": t}, "schema": _schema(t, cols, None)})
    for a, (cols, _, description, col_desc) in AUDIT_TABLES.items():   # the audit, computed at build time
        resources.append({"name": a, "type": "table", "description": description, **base,
                          "dialect": {"table": a}, "schema": _schema(a, cols, None, col_desc)})
    resources += _shard_resources(shards, election)
    meta = election.meta
    return {
        "$schema": "https://datapackage.org/profiles/2.0/datapackage.json",
        "name": name,
        "title": meta.get("title"),
        "description": (f"{meta.get('title_en')}: per-mesa results from citizen photos of the tally "
                        "sheets (actas) and transcribed sheets, verified and signed by testigo."),
        "licenses": [{"name": "CC0-1.0", "title": "Creative Commons Zero v1.0 Universal",
                      "path": "https://creativecommons.org/publicdomain/zero/1.0/"}],
        "resources": resources,
        "testigo": {
            "election": election.id,
            "title": meta.get("title"),
            "title_en": meta.get("title_en"),
            "date": meta.get("date"),
            "public_key_fingerprint": info["key_id"],
            "public_key": info["public_key"],
            "counting_rule": COUNTING_RULE,
            "counts": info["counts"],
            "totals": info["totals"],
            "totals_outside_registry": info.get("totals_outside_registry"),
            "images": f"zip shards {IMAGES_DIR}/estado-EE-K.zip (one or more per estado, stored, not "
                      "recompressed), members <sha256>.jpg|.png (EXIF/GPS stripped losslessly, only the EXIF "
                      "Orientation kept so viewers show them upright; images.shard names each photo's shard, "
                      "images.original_sha256 is the hash of the file as received)",
            "shards": info["shards"],
            "redact_members": bool(info.get("redact_members")),   # members' part blurred (build --redact-members)
            "unread_photos": bool(info.get("unread_photos")),   # the queue's photos published (build --unread-photos)
            "registry": meta.get("registry", {}).get("note"),
            "payload": meta.get("payload", {}).get("description"),
            "cards_note": meta.get("party_note"),
            "owner_status": meta.get("owner_status"),
            "software": info["software"],
            "team_bundles": info.get("teams") or [],
            "reproducible": "Same workdir, same key and the same software versions give byte-identical files.",
            **({"places": info["places"].to_json()} if info.get("places") else {}),
        },
    }

