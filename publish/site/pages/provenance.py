"""The mesa page's provenance block: which team brought each acta, and conflicts between teams.

Bundles built before team bundles existed have no ``team_bundles`` table: every acta is then
the publisher's own and the block is not shown.
"""
from __future__ import annotations

from archive.provenance import OWN, Provenance

from .common import query


async def add_provenance(datasette, actas: list[dict], flags: list[dict]) -> None:
    """Set ``a["provenance"]`` on each acta ({"text", "chain": [team bundles, origin first]}) and
    add a ``team_conflict`` flag naming the teams whose readings of this mesa disagree."""
    has = await query(datasette, "select 1 from sqlite_master where type = 'table' and name = 'team_bundles'")
    if not has or not actas:
        return
    marks = ",".join("?" * len(actas))
    own = await query(datasette, f"select id, team_bundle_id, provenance from actas where id in ({marks})",
                      [a["id"] for a in actas])
    of = {r["id"]: r for r in own}
    teams = Provenance(bundles={r["id"]: r for r in await query(
        datasette, "select id, label, key_id, bundle_hash, via from team_bundles")})
    for a in actas:
        r = of.get(a["id"]) or {}
        tb = r.get("team_bundle_id")
        chain = teams.chain(tb) if tb in teams.bundles else []
        a["provenance"] = {"text": r.get("provenance") or OWN, "team_bundle_id": tb,
                           "chain": [{k: t[k] for k in ("id", "label", "key_id", "bundle_hash")} for t in chain]}
    for source in sorted({a["source"] for a in actas}):
        named = sorted({a["provenance"]["text"] for a in actas
                        if a["source"] == source and a["status"] == "conflict"})
        if len(named) > 1:
            who = " / ".join(_name(n, "es") for n in named)
            who_en = " / ".join(_name(n, "en") for n in named)
            flags.append({"code": "team_conflict", "teams": named,
                          "es": f"Conflicto entre equipos: {who} leyeron números distintos para esta mesa; "
                                "se conservan todas las lecturas y no se prefiere a ninguno.",
                          "en": f"Conflict between teams: {who_en} read different numbers for this mesa; "
                                "every reading is kept and none is preferred."})


def _name(text: str, lang: str) -> str:
    if text == OWN:
        return "este archivo (entradas propias)" if lang == "es" else "this archive (own inputs)"
    return text if lang == "en" else text.replace(" via ", " vía ")
