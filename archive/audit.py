"""The consistency checks of the audit: does every archived reading hold together?

Computed once at build time from the bundle's own tables (``audit_tables.write_audit`` stores
them as ``audit_*`` tables), so anyone with ``sqlite3`` can re-run each check and compare. A
check lists the mesas it concerns; a mesa in a check is a reason to look at its acta, never a
verdict. The forensic tests (distributions) are in ``forensics``.
"""
from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field

#: identical_numbers ignores mesas with fewer valid votes: two small mesas can share every
#: figure by coincidence (on the published sheet, two pairs of mesas with 50 to 170 votes do).
IDENTICAL_MIN_VOTES = 100
#: single_candidate: one candidate holds every valid vote of a mesa with at least this many.
SINGLE_CANDIDATE_MIN_VOTES = 50

# id -> (title en, title es, what it means en, what it means es)
CHECKS: dict[str, tuple[str, str, str, str]] = {
    "sum_mismatch": (
        "Candidates' votes do not add up to the valid votes",
        "Los votos de los candidatos no suman los votos válidos",
        "An acta whose candidates' votes differ from its valid votes (among the archived actas, and among "
        "the inputs refused for that reason at ingest, whose mesa the issues table names).",
        "Un acta cuyos votos por candidato no suman sus votos válidos (entre las actas archivadas, y entre "
        "las entradas rechazadas por eso al ingresarlas, cuya mesa nombra la tabla issues)."),
    "over_electors": (
        "More votes than registered electors",
        "Más votos que electores inscritos",
        "Valid plus null votes exceed the mesa's registered electors (archived actas, and inputs refused "
        "for it). Mesas outside the registry have no known electors and are not checked.",
        "Los votos válidos más los nulos superan los electores inscritos de la mesa (actas archivadas y "
        "entradas rechazadas por eso). Las mesas fuera del registro no tienen electores conocidos."),
    "zero_turnout": (
        "No votes at all", "Ningún voto",
        "An acta with no valid and no null votes: a mesa that did not open, or an acta read wrong.",
        "Un acta sin votos válidos ni nulos: una mesa que no abrió, o un acta mal leída."),
    "single_candidate": (
        f"One candidate holds every vote (mesas with ≥ {SINGLE_CANDIDATE_MIN_VOTES} votes)",
        f"Un candidato tiene todos los votos (mesas con ≥ {SINGLE_CANDIDATE_MIN_VOTES} votos)",
        "Every valid vote of the acta went to one candidate. It happens in small, homogeneous places; "
        "it is also what a fabricated acta can look like.",
        "Todos los votos válidos del acta fueron a un candidato. Ocurre en lugares pequeños y homogéneos; "
        "también es el aspecto que puede tener un acta fabricada."),
    "source_disagreement": (
        "Sources of one mesa disagree", "Las fuentes de una mesa no coinciden",
        "The QR reading, the transcribed sheet row and the volunteers' transcription of the same mesa give "
        "different numbers; the per-field counts say which figures differ how often.",
        "La lectura del QR, la fila transcrita de la hoja y la transcripción de voluntarios de una misma "
        "mesa dan números distintos; los conteos por campo dicen qué cifras difieren y cuántas veces."),
    "identical_numbers": (
        f"Different mesas with identical numbers (≥ {IDENTICAL_MIN_VOTES} valid votes)",
        f"Mesas distintas con números idénticos (≥ {IDENTICAL_MIN_VOTES} votos válidos)",
        f"Groups of different mesas whose votes per candidate are all the same. Copied or fabricated actas "
        f"show up this way. Mesas with fewer than {IDENTICAL_MIN_VOTES} valid votes are ignored: there, "
        "coincidence is likely.",
        f"Grupos de mesas distintas cuyos votos por candidato son todos iguales. Las actas copiadas o "
        f"fabricadas aparecen así. Se ignoran las mesas con menos de {IDENTICAL_MIN_VOTES} votos válidos: "
        "allí la coincidencia es probable."),
    "duplicate_photo": (
        "The same photo for two mesas", "La misma foto para dos mesas",
        "Actas of different mesas that point to the same photo bytes.",
        "Actas de mesas distintas que apuntan a los mismos bytes de foto."),
    "acta_id_collision": (
        "One QR acta identifier, two different readings", "Un identificador de acta del QR, dos lecturas distintas",
        "The QR's acta identifier (CENTRO.MESA.TAG.SERIAL) appears in two readings with different numbers.",
        "El identificador de acta del QR (CENTRO.MESA.TAG.SERIAL) aparece en dos lecturas con números distintos."),
}

_ISSUE_MESA = re.compile(r"\bmesa (\d+\.\d+)\b")   # "row 12: mesa 230102013.01: ..."


@dataclass
class Reading:
    """One archived acta with what the checks need (votes in candidate order)."""

    id: int
    mesa_id: str
    source: str
    status: str
    counted: int
    counted_outside: int
    validos: int
    nulos: int | None
    electores: int | None
    cod_edo: int | None
    image: str | None
    payload: str | None
    votes: list[int]


@dataclass
class Check:
    id: str
    rows: list[dict] = field(default_factory=list)   # {mesa_id, acta_id, issue_id, grp, detail}
    fields: dict[tuple[str, str], int] = field(default_factory=dict)   # source_disagreement only

    @property
    def mesas(self) -> list[str]:
        return sorted({r["mesa_id"] for r in self.rows}, key=mesa_key)

    def add(self, mesa_id: str, acta_id: int | None = None, issue_id: int | None = None,
            grp: int | None = None, detail: str | None = None) -> None:
        self.rows.append({"check_id": self.id, "mesa_id": mesa_id, "acta_id": acta_id, "issue_id": issue_id,
                          "grp": grp, "detail": detail})


def mesa_key(mid: str) -> tuple[int, int]:
    """Sort mesa ids 'CENTRO.MM' as numbers."""
    c, _, m = mid.partition(".")
    return (int(c), int(m)) if c.isdigit() and m.isdigit() else (1 << 62, 0)


def candidates(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT code FROM candidates ORDER BY sort_order")]


def readings(conn: sqlite3.Connection, codes: list[str]) -> list[Reading]:
    """Every archived acta (duplicates too), in id order, with its votes per candidate (pivoted
    by SQLite along acta_votes' primary key: a national bundle has a quarter million rows)."""
    pivot = ", ".join(f"COALESCE(SUM(CASE WHEN v.candidate = ? THEN v.votes END), 0)" for _ in codes)
    out = []
    for r in conn.execute("SELECT a.id, a.mesa_id, a.source, a.status, a.counted, a.counted_outside, a.validos, "
                          f"a.nulos, m.electores, ce.cod_edo, a.image_sha256, a.payload, {pivot} FROM actas a "
                          "JOIN mesas m ON m.id = a.mesa_id LEFT JOIN centros ce ON ce.centro = m.centro "
                          "LEFT JOIN acta_votes v ON v.acta_id = a.id GROUP BY a.id ORDER BY a.id", codes):
        out.append(Reading(*r[:12], votes=list(r[12:])))
    return out


def _vector_text(codes: list[str], votes: list[int]) -> str:
    return ", ".join(f"{c} {n}" for c, n in zip(codes, votes))


def _issue_checks(conn: sqlite3.Connection, checks: dict[str, Check]) -> None:
    """Inputs refused at ingest for a sum or electors rule: their mesa is in their reason."""
    for iid, code, reason in conn.execute("SELECT id, code, reason FROM issues WHERE code IN "
                                          "('sum_mismatch', 'over_electors') ORDER BY id"):
        m = _ISSUE_MESA.search(reason or "")
        if m:
            checks[code].add(m.group(1), issue_id=iid, detail=reason)


def _disagreements(codes: list[str], by_mesa: dict[str, list[Reading]], check: Check) -> None:
    fields_seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for mid, group in by_mesa.items():
        live = [r for r in group if r.status != "duplicate"]
        diff: dict[str, dict[str, int | None]] = {}
        for i, a in enumerate(live):
            for b in live[i + 1:]:
                if a.source == b.source:
                    continue
                pair = "/".join(sorted((a.source, b.source)))
                pairs = [(c, a.votes[k], b.votes[k]) for k, c in enumerate(codes)]
                pairs.append(("validos", a.validos, b.validos))
                if a.nulos is not None and b.nulos is not None:
                    pairs.append(("nulos", a.nulos, b.nulos))
                for name, x, y in pairs:
                    if x != y:
                        fields_seen[(name, pair)].add(mid)
                        diff.setdefault(name, {}).update({a.source: x, b.source: y})
        if diff:
            check.add(mid, detail=json.dumps(diff, sort_keys=True))
    order = {c: i for i, c in enumerate([*codes, "validos", "nulos"])}
    check.fields = {k: len(v) for k, v in sorted(fields_seen.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))}


def _groups(check: Check, groups: dict, detail) -> None:
    """Add each group of two or more mesas (numbered in the order of their first mesa)."""
    found = [sorted(mesas.items(), key=lambda kv: mesa_key(kv[0])) for mesas in groups.values() if len(mesas) > 1]
    for n, members in enumerate(sorted(found, key=lambda g: mesa_key(g[0][0])), 1):
        for mid, acta_id in members:
            check.add(mid, acta_id=acta_id, grp=n, detail=detail(members))


def run_checks(conn: sqlite3.Connection, rows: list[Reading] | None = None) -> list[Check]:
    """Every consistency check over the bundle's tables, in the order of ``CHECKS`` (``rows``:
    ``readings(conn, candidates(conn))`` when the caller has them already)."""
    codes = candidates(conn)
    checks = {cid: Check(cid) for cid in CHECKS}
    rows = readings(conn, codes) if rows is None else rows
    by_mesa: dict[str, list[Reading]] = defaultdict(list)
    vectors: dict[tuple, dict[str, int]] = defaultdict(dict)
    photos: dict[str, dict[str, int]] = defaultdict(dict)
    identifiers: dict[str, dict[str, Reading]] = defaultdict(dict)
    for r in rows:
        by_mesa[r.mesa_id].append(r)
        if r.status == "duplicate":
            continue       # the same numbers read again: the first reading stands for it
        cast = r.validos + (r.nulos or 0)
        if sum(r.votes) != r.validos:
            checks["sum_mismatch"].add(r.mesa_id, r.id, detail=f"{_vector_text(codes, r.votes)}: "
                                       f"{sum(r.votes)} ≠ {r.validos}")
        if r.electores is not None and cast > r.electores:
            checks["over_electors"].add(r.mesa_id, r.id, detail=f"{cast} > {r.electores}")
        if cast == 0:
            checks["zero_turnout"].add(r.mesa_id, r.id)
        if r.validos >= SINGLE_CANDIDATE_MIN_VOTES and max(r.votes, default=0) == r.validos:
            checks["single_candidate"].add(r.mesa_id, r.id, detail=codes[r.votes.index(r.validos)])
        if r.validos >= IDENTICAL_MIN_VOTES:
            vectors[tuple(r.votes)].setdefault(r.mesa_id, r.id)
        if r.image:
            photos[r.image].setdefault(r.mesa_id, r.id)
        if r.source == "qr" and r.payload:
            identifiers[r.payload.split("!", 1)[0]].setdefault(r.payload, r)
    _issue_checks(conn, checks)
    _disagreements(codes, by_mesa, checks["source_disagreement"])
    _groups(checks["identical_numbers"], vectors, lambda g: _vector_text(codes, next(
        r.votes for r in by_mesa[g[0][0]] if r.id == g[0][1])))
    _groups(checks["duplicate_photo"], photos, lambda g: f"{len(g)} mesas")
    collisions = {ident: {f"{r.mesa_id}#{r.id}": r.id for r in by_payload.values()}
                  for ident, by_payload in identifiers.items()}
    for n, ident in enumerate(sorted((i for i, v in collisions.items() if len(v) > 1),
                                     key=lambda i: mesa_key(".".join(i.split(".")[:2]))), 1):
        for key, acta_id in sorted(collisions[ident].items(), key=lambda kv: kv[1]):
            checks["acta_id_collision"].add(key.split("#")[0], acta_id, grp=n, detail=ident)
    for c in checks.values():
        c.rows.sort(key=lambda r: (r["grp"] or 0, mesa_key(r["mesa_id"]), r["acta_id"] or 0, r["issue_id"] or 0))
    return list(checks.values())


# --- coverage and the authority's figures -----------------------------------------------------------

def coverage(conn: sqlite3.Connection, published: dict | None = None) -> list[dict]:
    """Mesas and electors of the registry with an archived acta (and counted), national then by estado.

    ``published``: the authority's count ({"mesas", "electores"}) where known, on the national row."""
    sql = ("SELECT ce.cod_edo, e.nombre, count(*), COALESCE(SUM(m.electores), 0), "
           "SUM(EXISTS (SELECT 1 FROM actas a WHERE a.mesa_id = m.id)), "
           "SUM(EXISTS (SELECT 1 FROM actas a WHERE a.mesa_id = m.id AND a.counted = 1)), "
           "COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM actas a WHERE a.mesa_id = m.id AND a.counted = 1) "
           "THEN m.electores END), 0) FROM mesas m JOIN centros ce ON ce.centro = m.centro "
           "LEFT JOIN estados e ON e.cod_edo = ce.cod_edo WHERE m.outside_registry = 0 "
           "GROUP BY ce.cod_edo ORDER BY ce.cod_edo")
    out = []
    for edo, name, mesas, electores, with_acta, counted, electores_counted in conn.execute(sql):
        out.append({"scope": f"estado:{edo}", "cod_edo": edo, "estado": name, "mesas_registry": mesas,
                    "electores_registry": electores, "mesas_with_acta": with_acta or 0,
                    "mesas_counted": counted or 0, "electores_counted": electores_counted,
                    "mesas_published": None, "electores_published": None})
    nat = {"scope": "national", "cod_edo": None, "estado": None,
           **{k: sum(r[k] for r in out) for k in ("mesas_registry", "electores_registry", "mesas_with_acta",
                                                   "mesas_counted", "electores_counted")},
           "mesas_published": (published or {}).get("mesas"), "electores_published": (published or {}).get("electores")}
    return [nat, *out]


def official_rows(bulletins: list[dict], archived: dict[str, int]) -> list[dict]:
    """The authority's bulletins, one row per bulletin and candidate, beside the archived totals."""
    out = []
    for b in bulletins:
        for code, n in (b.get("votes") or {}).items():
            out.append({"bulletin": b["id"], "candidate": code, "announced": n, "archived": archived.get(code, 0)})
    return out


def bulletin_rows(bulletins: list[dict]) -> list[dict]:
    return [{"bulletin": b["id"], "sort_order": i, "read": b.get("read"), "read_text": b.get("read_text"),
             "read_text_es": b.get("read_text_es"), "reported": b.get("reported"),
             "reported_es": b.get("reported_es"), "others_together": b.get("others_together"),
             "validos": b.get("validos"), "nulos": b.get("nulos"), "votantes": b.get("votantes"),
             "electores": b.get("electores"), "sources": json.dumps(b.get("sources") or [], ensure_ascii=False)}
            for i, b in enumerate(bulletins, 1)]


def electors_total(bulletins: list[dict], national: dict) -> int:
    """The country's electors: the authority's published count, else the largest a bulletin
    announced (the register does not change between bulletins), else the registry's own."""
    return (national.get("electores_published") or max((b.get("electores") or 0 for b in bulletins), default=0)
            or national["electores_registry"])


def reach(bulletin: dict, announced: dict[str, int], archived: dict[str, int], national: dict,
          total: int) -> dict | None:
    """Could the electors the archive does not cover turn the archived result into the announced one?

    The remaining electors are ``total`` (``electors_total``) minus those of the mesas counted
    here; at most each of them voted, all for one candidate. Needs the bulletin's two leaders."""
    if len(announced) < 2:
        return None
    first, second = sorted(announced, key=lambda c: -announced[c])[:2]
    remaining = max(0, total - national["electores_counted"])
    margin_announced = announced[first] - announced[second]
    margin_archived = archived.get(first, 0) - archived.get(second, 0)
    return {"bulletin": bulletin["bulletin"],
            "first": first, "second": second, "electores_total": total,
            "electores_counted": national["electores_counted"], "electores_remaining": remaining,
            "margin_announced": margin_announced, "margin_archived": margin_archived,
            "margin_reachable_max": margin_archived + remaining,
            "reachable": int(margin_archived + remaining >= margin_announced),
            "exceeded": json.dumps(sorted(c for c, n in announced.items() if archived.get(c, 0) > n))}
