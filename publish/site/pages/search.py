"""Buscar: find a centre by code, place name or its name as its actas print it (full-text
search), and list its mesas."""
from __future__ import annotations

import json
import re
import sqlite3

from datasette.database import QueryInterrupted
from datasette.utils.asgi import Response

from ..state import state_of
from .common import as_json, clean_text, normal_mesa_id, page_headers, query, render

MAX_QUERY_CHARS = 200        # search text kept
MAX_TOKENS = 8
MAX_RESULTS = 50


def fts_query(text: str) -> str | None:
    """A safe FTS5 query: each word of the text as a quoted prefix term, all required."""
    tokens = [t for t in re.findall(r"\w+", text) if any(ch.isalnum() for ch in t)][:MAX_TOKENS]
    tokens = [t[:40] for t in tokens]
    if not tokens:
        return None
    return " ".join('"{}"*'.format(t.replace('"', "")) for t in tokens)


async def search_centres(datasette, q: str) -> tuple[list[dict], int, str | None]:
    """(centres, how many matched, problem) for a search text."""
    digits = q.replace(" ", "")
    if digits.isascii() and digits.isdigit():   # a centre code or its beginning
        params = {"p": digits[:12] + "%"}
        matches = "from centros c where c.codigo like :p order by c.codigo"
        count = "select count(*) as n from centros where codigo like :p"
    else:
        fq = fts_query(q)
        if fq is None:
            return [], 0, "no_words"
        params = {"q": fq}
        matches = ("from centros_fts f join centros c on c.rowid = f.rowid where centros_fts match :q "
                   "order by f.rank, c.centro")
        count = "select count(*) as n from centros_fts where centros_fts match :q"
    try:
        rows = await query(datasette, "select c.centro, c.codigo, c.estado, c.municipio, c.parroquia, c.mesas, "
                        f"c.electores {matches} limit :lim", dict(params, lim=MAX_RESULTS + 1))
        total = len(rows) if len(rows) <= MAX_RESULTS else (await query(datasette, count, params))[0]["n"]
    except QueryInterrupted:
        return [], 0, "too_slow"
    except sqlite3.Error:
        return [], 0, "bad_query"
    rows = rows[:MAX_RESULTS]
    if not (digits.isascii() and digits.isdigit()):
        named = await centres_by_printed_name(datasette, params["q"], {r["centro"] for r in rows})
        rows, total = (named + rows)[:MAX_RESULTS], total + len(named)
    if rows:
        await add_printed_names(datasette, rows)
        ids = [r["centro"] for r in rows]
        marks = ",".join("?" * len(ids))
        mesas = await query(datasette, f"""
            select m.id, m.centro, m.mesa, m.electores,
              (select count(*) from actas a where a.mesa_id = m.id) as actas,
              (select count(*) from actas a where a.mesa_id = m.id and a.counted = 1) as counted
            from mesas m where m.centro in ({marks}) order by m.centro, m.mesa""", ids)
        by = {}
        for m in mesas:
            by.setdefault(m["centro"], []).append(m)
        for r in rows:
            r["mesa_list"] = by.get(r["centro"], [])
    return rows, total, None


async def centres_by_printed_name(datasette, fq: str, known: set[int]) -> list[dict]:
    """Centres whose name or address, as printed on an acta photo read by OCR (table printed),
    has every word of the search: people know their school, not its code. Those not in
    ``known`` (already found by place), best match first. [] for a bundle without the table."""
    try:
        hits = await query(datasette, "select p.centro from printed_fts f join printed p on p.rowid = f.rowid "
                                      "where printed_fts match :q and p.centro is not null "
                                      "order by f.rank, p.centro limit :lim", {"q": fq, "lim": 4 * MAX_RESULTS})
    except (QueryInterrupted, sqlite3.Error):
        return []
    ids = list(dict.fromkeys(h["centro"] for h in hits if h["centro"] not in known))[:MAX_RESULTS]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    found = {r["centro"]: r for r in await query(
        datasette, "select c.centro, c.codigo, c.estado, c.municipio, c.parroquia, c.mesas, c.electores "
                   f"from centros c where c.centro in ({marks})", ids)}
    return [found[c] for c in ids if c in found]


async def add_printed_names(datasette, rows: list[dict]) -> None:
    """Each centre's names and addresses as its actas print them, each with the photo it was
    read from (``printed``: [{name, address, photo}]; [] when no photo of it was read)."""
    ids = [r["centro"] for r in rows]
    marks = ",".join("?" * len(ids))
    try:
        names = await query(datasette, "select p.centro, p.centre_name, p.centre_address, i.path from printed p "
                                       "join images i on i.sha256 = p.image_sha256 where p.centro in "
                                       f"({marks}) and p.centre_name is not null "
                                       "order by p.centro, p.centre_name, p.image_sha256", ids)
    except (QueryInterrupted, sqlite3.Error):
        names = []
    by: dict[int, dict[str, dict]] = {}
    for n in names:
        by.setdefault(n["centro"], {}).setdefault(
            n["centre_name"], {"name": n["centre_name"], "address": n["centre_address"], "photo": "/" + n["path"]})
    for r in rows:
        r["printed"] = list(by.get(r["centro"], {}).values())


async def buscar(datasette, request):
    st = state_of(datasette)
    fmt = request.url_vars.get("fmt")
    q, cut = clean_text(request.args.get("q"), MAX_QUERY_CHARS)
    rows, total, problem = ([], 0, None)
    if q:
        rows, total, problem = await search_centres(datasette, q)
    mesa_hint = normal_mesa_id(q, MAX_QUERY_CHARS)
    if fmt:
        return as_json(st, {"ok": True, "q": q, "truncated_query": cut, "total": total, "problem": problem,
                            "mesa": mesa_hint, "centros": rows})
    return await render(datasette, request, "testigo_buscar.html",
                        {"q": q, "cut": cut, "rows": rows, "total": total, "problem": problem,
                         "mesa_hint": mesa_hint, "max_results": MAX_RESULTS})


async def centros_index(datasette, request):
    """/buscar/centros.json: every centre with its place and mesas, for searching in the browser
    (the static mirror has no server to ask). Same file on the site and in the mirror.

    {"places": [[estado, municipio, parroquia], ...],
     "centros": [[centro, place index, electores, mesas], ...]}  where mesas is n for mesas
    1..n (almost every centre) or the list of mesa numbers.
    """
    st = state_of(datasette)
    if st.search_index is None:
        places: dict[tuple, int] = {}
        centros = []
        mesas: dict[int, list[int]] = {}
        for r in await query(datasette, "select centro, mesa from mesas order by centro, mesa"):
            mesas.setdefault(r["centro"], []).append(r["mesa"])
        for r in await query(datasette, "select centro, estado, municipio, parroquia, electores from centros "
                                        "order by centro"):
            place = places.setdefault((r["estado"], r["municipio"], r["parroquia"]), len(places))
            ms = mesas.get(r["centro"], [])
            centros.append([r["centro"], place, r["electores"], len(ms) if ms == list(range(1, len(ms) + 1)) else ms])
        st.search_index = json.dumps({"places": list(places), "centros": centros}, ensure_ascii=False,
                                     separators=(",", ":")).encode()
    headers = page_headers(st)
    headers["Access-Control-Allow-Origin"] = "*"
    return Response(st.search_index, headers=headers, content_type="application/json; charset=utf-8")
