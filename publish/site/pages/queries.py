"""Queries more than one page needs (a mesa with its readings, the national lines): pages take
them from here, so that no page imports another."""
from __future__ import annotations

import json

from archive import audit_tables, manifest

from ..state import state_of
from .common import query
from .provenance import add_provenance


async def national_totals(datasette) -> dict:
    st = state_of(datasette)
    if st.national is None:
        rows = await query(datasette, "select candidate, votes from totals_nacional")
        st.national = {r["candidate"]: int(r["votes"] or 0) for r in rows}
    return dict(st.national)


async def outside_registry_line(datasette) -> dict:
    """The separate totals line "actas outside the registry" (read once; the bundle never changes)."""
    st = state_of(datasette)
    if st.outside_line is None:
        rows = await query(datasette, "select candidate, votes from outside_registry_totals")
        found = {r["candidate"]: int(r["votes"] or 0) for r in rows}
        votes = {c["code"]: found.get(c["code"], 0) for c in st.candidates}
        n = (await query(datasette, "select count(*) as actas, count(distinct mesa_id) as mesas from actas "
                                    "where counted_outside = 1"))[0]
        st.outside_line = {"actas": n["actas"], "mesas": n["mesas"], "votes": votes, "total": sum(votes.values())}
    return dict(st.outside_line)


# How the crosscheck names the other source of a mesa (acta.differences keys it by source).
_OTHER_SOURCE = {"qr": ("la lectura del QR", "the QR reading"), "csv": ("la fila de la hoja (CSV)", "the sheet row (CSV)"),
                 "transcribed-photo": ("la foto transcrita por voluntarios", "the photo transcribed by volunteers")}


def _other_source(a: dict) -> str | None:
    """The source the acta's crosscheck_diff compares it with."""
    diff = a.get("crosscheck_diff")
    first = next(iter(diff.values()), None) if isinstance(diff, dict) and diff else None
    return next((k for k in first if k != a["source"]), None) if isinstance(first, dict) else None


def _acta_flags(a: dict) -> list[tuple[str, str, str]]:
    out = []
    if a["status"] == "duplicate":
        out.append(("duplicate", f"Duplicada: los mismos números que el acta {a.get('duplicate_of')}.",
                    f"Duplicate: same numbers as acta {a.get('duplicate_of')}."))
    if a["status"] == "conflict":
        out.append(("conflict", "En conflicto: otra lectura de esta mesa tiene números distintos.",
                    "Conflict: another reading of this mesa has different numbers."))
    if a.get("crosscheck") == "disagree":
        other = _other_source(a)
        es, en = _OTHER_SOURCE.get(other, (other, other)) if other else ("otra fuente", "another source")
        out.append(("disagree", f"No coincide con {es} de esta mesa.", f"Does not agree with {en} of this mesa."))
    return out


_OUTSIDE_REGISTRY = {
    "code": "outside_registry",
    "es": "Mesa fuera del registro: la hoja por mesa publicada no la trae, así que no se conocen sus "
          "electores. Su acta se conserva y se cuenta aparte, en la línea «actas fuera del registro»; "
          "no entra en los totales del registro.",
    "en": "Mesa outside the registry: the published per-mesa sheet does not list it, so its electors are "
          "unknown. Its acta is kept and counted apart, in the line \"actas outside the registry\"; it is "
          "not part of the registry totals."}


async def mesa_data(datasette, mesa_id: str) -> dict | None:
    st = state_of(datasette)
    rows = await query(datasette, """
        select m.id, m.centro, m.mesa, m.electores, c.codigo, c.estado, c.municipio, c.parroquia,
               c.cod_edo, c.municipio_id, c.parroquia_id, m.outside_registry
        from mesas m left join centros c on c.centro = m.centro where m.id = :id""", {"id": mesa_id})
    if not rows:
        return None
    mesa = rows[0]
    actas = await query(datasette, """
        select a.id, a.source, a.status, a.counted, a.validos, a.nulos, a.crosscheck, a.crosscheck_diff,
               a.duplicate_of, a.payload, a.image_sha256, i.path as image_path, i.width, i.height,
               i.media_type, i.size as image_size, a.counted_outside
        from actas a left join images i on i.sha256 = a.image_sha256
        where a.mesa_id = :id order by a.counted desc, a.id""", {"id": mesa_id})
    ids = [a["id"] for a in actas]
    per_cand: dict = {}
    per_card: dict = {}
    if ids:
        marks = ",".join("?" * len(ids))
        for r in await query(datasette, f"select acta_id, candidate, votes from acta_votes where acta_id in ({marks})", ids):
            per_cand.setdefault(r["acta_id"], {})[r["candidate"]] = r["votes"]
        for r in await query(datasette, f"select acta_id, position, votes from votes where acta_id in ({marks}) "
                          "order by acta_id, position", ids):
            per_card.setdefault(r["acta_id"], {})[r["position"]] = r["votes"]
    transcribed = await _transcriptions(datasette, [a["id"] for a in actas if a["source"] == "transcribed-photo"])
    issues: list[dict] = []
    if ids and st.issues_by_acta:
        issues = await query(datasette, f"select id, outcome, code, reason, file, acta_id from issues "
                          f"where acta_id in ({marks}) order by id", ids)
    counted = None
    for a in actas:
        a["votes"] = {c["code"]: per_cand.get(a["id"], {}).get(c["code"]) for c in st.candidates}
        cards = per_card.get(a["id"])
        a["cards"] = [cards.get(k["position"]) for k in st.cards] if cards else None
        try:
            a["crosscheck_diff"] = json.loads(a["crosscheck_diff"]) if a.get("crosscheck_diff") else None
        except ValueError:
            pass
        a["image_url"] = ("/" + a["image_path"].lstrip("/")) if a.get("image_path") else None
        a["transcription"] = transcribed.get(a["id"])
        a["crosscheck_sources"] = [a["source"], _other_source(a)] if _other_source(a) else None
        a["flags"] = [{"code": c, "es": es, "en": en} for c, es, en in _acta_flags(a)]
        cast = (a["validos"] or 0) + (a["nulos"] or 0)
        a["participation"] = (cast / mesa["electores"]) if mesa.get("electores") else None
        if (a["counted"] or a.get("counted_outside")) and counted is None:
            counted = a
    flags = [_OUTSIDE_REGISTRY] if mesa.get("outside_registry") else []
    if not actas:
        flags.append({"code": "no_acta", "es": "No hay ningún acta archivada de esta mesa todavía.",
                      "en": "No acta of this mesa has been archived yet."})
    elif counted is None:
        flags.append({"code": "not_counted", "es": "Las lecturas de esta mesa no coinciden entre sí y no se "
                      "cuenta ninguna en los totales.", "en": "The readings of this mesa disagree; none is "
                      "counted in the totals."})
    for a in actas:
        for f in a["flags"]:
            if f["code"] not in {x["code"] for x in flags}:
                flags.append(f)
    await add_provenance(datasette, actas, flags)
    return {"mesa": mesa, "counted_acta": counted["id"] if counted else None, "actas": actas, "flags": flags,
            "issues": issues, "audit": await checks_of_mesa(datasette, mesa_id)}


async def _transcriptions(datasette, ids: list[int]) -> dict[int, dict]:
    """Entries and public aliases of transcribed-photo actas (bundles before it have no table)."""
    db = datasette.get_database(state_of(datasette).bundle.db_name)
    if not ids or not await db.table_exists("transcriptions"):
        return {}
    rows = await query(datasette, f"select acta_id, entries, transcribers from transcriptions "
                       f"where acta_id in ({','.join('?' * len(ids))})", ids)
    out = {}
    for r in rows:
        try:
            aliases = json.loads(r["transcribers"]) if r["transcribers"] else []
        except ValueError:
            aliases = []
        out[r["acta_id"]] = {"entries": r["entries"], "transcribers": aliases}
    return out


# --- the audit (issue 19): /auditoria and the mesa page's "this acta is in check X" ---------

async def has_audit(datasette) -> bool:
    st = state_of(datasette)
    if st.has_audit is None:
        st.has_audit = bool(await query(datasette, "select 1 from sqlite_master where name = 'audit_checks'"))
    return st.has_audit


async def audit_data(datasette) -> dict:
    """The whole audit (as `testigo audit --json` prints it), read once: the bundle never changes."""
    st = state_of(datasette)
    if st.audit is None:
        if st.pool is None:
            await query(datasette, "select 1")        # opens the site's pool
        result = await st.pool.call(audit_tables.read_audit)
        result["notes"] = {n["id"]: n for n in await query(datasette, "select * from audit_notes")}
        sums = st.bundle.path / manifest.MANIFEST
        st.audit = {"bundle": manifest.sha256_file(sums) if sums.is_file() else None, **result}
    return st.audit


async def checks_of_mesa(datasette, mesa_id: str) -> list[dict]:
    """The checks that list this mesa ("this acta is in check X"), for its page."""
    if not await has_audit(datasette):
        return []
    rows = await query(datasette, "select distinct cm.check_id, n.title_es, n.title_en from audit_check_mesas cm "
                       "join audit_notes n on n.id = cm.check_id join audit_checks c on c.check_id = cm.check_id "
                       "where cm.mesa_id = :id order by c.sort_order", {"id": mesa_id})
    return rows
