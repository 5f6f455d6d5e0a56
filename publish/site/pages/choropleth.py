"""The map on /totales: estados colored by their leading candidate's share of the votes.

Each estado takes the palette of its leading candidate (by that candidate's national rank:
first blues, second oranges, any other purples) and, within it, the class of the leader's share
(SHARE_CLASSES). An estado with no counted votes is NO_DATA grey; a shape with no registry estado
(islands without voters) is NO_VOTERS. Shapes come from :mod:`archive.boundaries`.
"""
from __future__ import annotations

from functools import lru_cache

from archive import boundaries
from archive.errors import DefinitionError

#: Lower bounds of the share classes 1..4; class 0 is a leader under 50%.
SHARE_CLASSES = (0.5, 0.6, 0.7, 0.8)
#: ColorBrewer sequential palettes (5 classes), light to dark, by the leader's national rank.
PALETTES = (
    ("#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c"),   # Blues: the national first
    ("#feedde", "#fdbe85", "#fd8d3c", "#e6550d", "#a63603"),   # Oranges: the national second
    ("#f2f0f7", "#cbc9e2", "#9e9ac8", "#756bb1", "#54278f"),   # Purples: anyone else
)
NO_DATA = "#d9d9d9"
NO_VOTERS = "#f4f4f4"


def share_class(share: float) -> int:
    return sum(share >= t for t in SHARE_CLASSES)


def color(rank: int, share: float) -> str:
    """The fill of an area whose leader is national rank ``rank`` (0-based) with ``share`` of its votes."""
    return PALETTES[min(rank, len(PALETTES) - 1)][share_class(share)]


@lru_cache(maxsize=4)
def _projected(election_id: str):
    return boundaries.project(boundaries.load(election_id))


def estado_map(election_id: str, national_order: list[str], names: dict, votes_by_estado: dict,
               helpers: dict) -> dict | None:
    """The map's areas and legend for the template, or None when the election ships no boundaries.

    ``national_order``: candidate codes by national votes (the chart's order); ``names``: {code:
    name}; ``votes_by_estado``: {cod_edo: {"nombre", "votes": {code: n}, "total"}}.
    """
    try:
        paths, width, height = _projected(election_id)
    except DefinitionError:   # no boundaries for this election: the page keeps its tables
        return None
    T, n, pct, link = helpers["T"], helpers["n"], helpers["pct"], helpers["link"]
    rank = {code: i for i, code in enumerate(national_order)}
    areas, leaders = [], set()
    for p in paths:
        s = p.shape
        area = {"d": p.d, "adm1_code": s.adm1_code, "key": s.cod_edo, "href": None, "leader": None,
                "share": None}
        if s.cod_edo is None:
            area.update(fill=NO_VOTERS, name=s.name or "—",
                        info=f"{s.name or '—'}: " + T("sin electores en el registro", "no registered voters"))
            areas.append(area)
            continue
        row = votes_by_estado.get(s.cod_edo) or {"nombre": s.name, "votes": {}, "total": 0}
        # a link only to an estado the data has (a bundle's registry may cover part of the map)
        area.update(name=row["nombre"], href=link(f"/totales/estado/{s.cod_edo}") if s.cod_edo in votes_by_estado else None)
        total = row["total"]
        if not total:
            area.update(fill=NO_DATA, info=f"{row['nombre']}: " + T("sin actas contadas", "no counted actas"))
        else:
            ranked = sorted(row["votes"].items(), key=lambda kv: (-kv[1], rank.get(kv[0], 99)))
            leader, top = ranked[0]
            leaders.add(leader)
            area.update(leader=leader, share=top / total, fill=color(rank.get(leader, 99), top / total),
                        info=f"{row['nombre']}: " + " · ".join(
                            f"{names.get(c, c)} {pct(v, total)}" for c, v in ranked[:2])
                        + f" ({n(top)} {T('de', 'of')} {n(total)} {T('votos', 'votes')})")
        areas.append(area)
    bounds = ["< 50%"] + [f"{int(lo * 100)}–{int(hi * 100)}%" for lo, hi in zip(SHARE_CLASSES, SHARE_CLASSES[1:])]
    bounds.append(f"≥ {int(SHARE_CLASSES[-1] * 100)}%")
    legend = [{"code": c, "name": names.get(c, c), "swatches": list(zip(PALETTES[min(rank.get(c, 99), 2)], bounds))}
              for c in national_order if c in leaders]
    return {"width": width, "height": height, "areas": areas, "legend": legend,
            "no_data": NO_DATA, "no_voters": NO_VOTERS}
