"""Totals by area (nation, estado, municipio, parroquia, centro) and the centre page."""
from __future__ import annotations

import asyncio
import re
import urllib.parse
from dataclasses import dataclass

from ..state import SiteState, state_of
from .choropleth import estado_map
from .common import as_json, bars, error_page, helpers, query, render
from .queries import national_totals, outside_registry_line


def _parse_int_id(text: str, max_digits: int = 12) -> int | None:
    t = urllib.parse.unquote(text or "").strip()
    if t.isascii() and t.isdigit() and len(t) <= max_digits:
        return int(t)
    return None


async def area_totals(datasette, where_sql: str, params: dict) -> dict:
    """Counted votes per candidate, válidos, nulos, mesas counted over mesas matching where_sql
    (a condition on centros c)."""
    rows = await query(datasette, f"""
        select
          (select count(*) from mesas m join centros c on c.centro = m.centro
             where m.outside_registry = 0 and {where_sql}) as mesas,
          (select coalesce(sum(m.electores), 0) from mesas m join centros c on c.centro = m.centro
             where {where_sql}) as electores,
          count(*) as counted, coalesce(sum(a.validos), 0) as validos, sum(a.nulos) as nulos,
          coalesce(sum(m.electores), 0) as electores_counted
        from actas a join mesas m on m.id = a.mesa_id join centros c on c.centro = m.centro
        where a.counted = 1 and {where_sql}""", params)
    return rows[0] if rows else {}


async def centro_page(datasette, request):
    st = state_of(datasette)
    fmt = request.url_vars.get("fmt")
    centro = _parse_int_id(request.url_vars.get("centro"))
    if centro is None:
        return await error_page(datasette, request, 404, "Ese código de centro no es válido: deben ser solo dígitos.",
                                "That is not a valid centre code: digits only.", fmt)
    rows = await query(datasette, "select * from centros where centro = :c", {"c": centro})
    if not rows:
        return await error_page(datasette, request, 404, f"No hay ningún centro {centro} en el registro.",
                                f"There is no centre {centro} in the registry.", fmt)
    c = rows[0]
    mesas = await query(datasette, """
        select m.id, m.mesa, m.electores,
          (select count(*) from actas a where a.mesa_id = m.id) as actas,
          (select count(*) from actas a where a.mesa_id = m.id and a.source = 'qr') as qr,
          (select a.validos from actas a where a.mesa_id = m.id and (a.counted = 1 or a.counted_outside = 1))
             as validos, m.outside_registry,
          (select group_concat(distinct a.status) from actas a where a.mesa_id = m.id and a.status != 'ok') as flags,
          (select count(*) from actas a where a.mesa_id = m.id and a.crosscheck = 'disagree') as disagree
        from mesas m where m.centro = :c order by m.mesa""", {"c": centro})
    votes = await _votes_for_area(datasette, "centro", centro)
    if fmt:
        return as_json(st, {"ok": True, "centro": c, "mesas": mesas, "votes": votes})
    return await render(datasette, request, "testigo_centro.html",
                        {"c": c, "mesas": mesas, "chart": bars(st, votes), "total": sum(votes.values())})


@dataclass(frozen=True)
class Level:
    column: str     # what names an area of this level in centros and in its totals_<level> table
    id_re: str      # an area id of this level as written in a URL
    area_sql: str   # the area (nombre, and its parents' codes and names) by :k


LEVELS = {
    "estado": Level("cod_edo", r"\d{1,3}", "select cod_edo, nombre from estados where cod_edo = :k"),
    "municipio": Level("municipio_id", r"\d{1,4}\.\d{1,4}",
                       "select m.id, m.nombre, m.cod_edo, e.nombre as estado from municipios m "
                       "left join estados e on e.cod_edo = m.cod_edo where m.id = :k"),
    "parroquia": Level("parroquia_id", r"\d{1,4}\.\d{1,4}\.\d{1,4}",
                       "select p.id, p.nombre, p.cod_edo, p.municipio_id, e.nombre as estado, "
                       "m.nombre as municipio from parroquias p left join estados e on e.cod_edo = p.cod_edo "
                       "left join municipios m on m.id = p.municipio_id where p.id = :k"),
    "centro": Level("centro", r"\d{1,12}",
                    "select centro, codigo as nombre, cod_edo, municipio_id, parroquia_id, estado, "
                    "municipio, parroquia from centros where centro = :k"),
}
#: The sub-areas of an area (None: the nation): their level, and their keys (k) and names by the
#: area's key (:k).
CHILDREN = {
    None: ("estado", "select cod_edo as k, nombre from estados order by cod_edo"),
    "estado": ("municipio", "select id as k, nombre from municipios where cod_edo = :k order by cod_mun"),
    "municipio": ("parroquia", "select id as k, nombre from parroquias where municipio_id = :k order by cod_par"),
    "parroquia": ("centro", "select centro as k, codigo as nombre from centros where parroquia_id = :k "
                            "order by centro"),
}


def _votes_by_area(rows: list[dict]) -> dict:
    """{k: {candidate: votes}} from rows of (k, candidate, votes)."""
    out: dict = {}
    for r in rows:
        out.setdefault(r["k"], {})[r["candidate"]] = int(r["votes"] or 0)
    return out


def _per_candidate(st: SiteState, votes: dict) -> dict:
    """Every candidate's votes, in the candidates' order, 0 where there are none."""
    return {c["code"]: votes.get(c["code"], 0) for c in st.candidates}


async def level_totals(datasette, nivel: str) -> dict:
    """{area key: {candidate: votes}} for every area of a level, read once from the bundle's
    totals_<level> table (the bundle never changes under a running site)."""
    st = state_of(datasette)
    cache = st.level_cache
    if nivel in cache:
        return cache[nivel]
    lock = st.level_locks.setdefault(nivel, asyncio.Lock())
    async with lock:
        if nivel not in cache:
            rows = await query(datasette, f"select {LEVELS[nivel].column} as k, candidate, votes from totals_{nivel}")
            cache[nivel] = _votes_by_area(rows)
    return cache[nivel]


async def _votes_for_area(datasette, nivel: str | None, key) -> dict:
    if nivel is None:
        return await national_totals(datasette)
    if nivel == "centro":   # one centre: an indexed lookup, not the whole table
        rows = await query(datasette, "select candidate, votes from totals_centro where centro = :k", {"k": key})
        found = {r["candidate"]: int(r["votes"] or 0) for r in rows}
    else:
        found = (await level_totals(datasette, nivel)).get(key, {})
    return _per_candidate(state_of(datasette), found)


async def _children(datasette, nivel: str | None, key) -> tuple[str | None, list[dict]]:
    """Sub-areas of an area with their votes per candidate: (child level, rows)."""
    st = state_of(datasette)
    if nivel not in CHILDREN:
        return None, []
    child, names_sql = CHILDREN[nivel]
    names = await query(datasette, names_sql, {"k": key})
    if child == "centro":   # a parish's centres only, not the whole table
        by = _votes_by_area(await query(datasette, "select centro as k, candidate, votes from totals_centro "
                                     "where parroquia_id = :k", {"k": key}))
    else:
        by = await level_totals(datasette, child)
    out = []
    for n in names:
        v = by.get(n["k"], {})
        out.append({"key": n["k"], "nombre": n["nombre"], "votes": _per_candidate(st, v), "total": sum(v.values())})
    return child, out


async def totales(datasette, request):
    st = state_of(datasette)
    await st.warm(datasette)
    fmt = request.url_vars.get("fmt")
    nivel = request.url_vars.get("nivel")
    raw = urllib.parse.unquote(request.url_vars.get("id") or "")
    key = None
    area: dict = {"nivel": nivel or "nacional"}
    crumbs = []
    if nivel is not None:
        if nivel not in LEVELS:
            return await error_page(datasette, request, 404, "Nivel desconocido: use estado, municipio, parroquia o centro.",
                                    "Unknown level: use estado, municipio, parroquia or centro.", fmt)
        if not re.fullmatch(LEVELS[nivel].id_re, raw):
            return await error_page(datasette, request, 404, "Código de área no válido.", "Not a valid area code.", fmt)
        key = int(raw) if nivel in ("estado", "centro") else raw
        rows = await query(datasette, LEVELS[nivel].area_sql, {"k": key})
        if not rows:
            return await error_page(datasette, request, 404, "No existe esa área en los datos.",
                                    "There is no such area in the data.", fmt)
        area.update(rows[0])
        area["key"] = key
        if nivel in ("municipio", "parroquia", "centro"):
            crumbs.append(("estado", area.get("cod_edo"), area.get("estado")))
        if nivel in ("parroquia", "centro"):
            crumbs.append(("municipio", area.get("municipio_id"), area.get("municipio")))
        if nivel == "centro":
            crumbs.append(("parroquia", area.get("parroquia_id"), area.get("parroquia")))
        where, params = f"c.{LEVELS[nivel].column} = :k", {"k": key}
    else:
        where, params = "1 = 1", {}
    votes = await _votes_for_area(datasette, nivel, key)
    summary = await area_totals(datasette, where, params)
    if nivel is None:      # nationally, coverage is also stated against the authority's count
        summary["authority"] = st.counts.get("authority")
    child, children = await _children(datasette, nivel, key)
    outside = await outside_registry_line(datasette) if nivel is None else None
    if fmt:
        return as_json(st, {"ok": True, "area": area, "votes": votes, "summary": summary,
                            "children_level": child, "children": children,
                            **({"outside_registry": outside} if outside else {})})
    chart = bars(st, votes)
    top = [r["code"] for r in chart[:2]]
    for c in children:
        c["others"] = c["total"] - sum(c["votes"].get(k, 0) for k in top)
    area_map = None
    if nivel is None:
        area_map = estado_map(st.bundle.election_id, [r["code"] for r in chart],
                              {c["code"]: c["name"] for c in st.candidates},
                              {c["key"]: c for c in children}, helpers(request))
    ds_url = f"/{st.bundle.db_name}/totals_{nivel or 'nacional'}" + (
        "?" + urllib.parse.urlencode({LEVELS[nivel].column: key}) if nivel else "")
    return await render(datasette, request, "testigo_totales.html", {
        "area": area, "nivel": nivel, "chart": chart, "total": sum(votes.values()), "summary": summary,
        "child": child, "children": children, "top": top, "area_crumbs": crumbs, "ds_url": ds_url,
        "area_map": area_map,
        "outside": dict(outside, chart=bars(st, outside["votes"])) if outside else None})
