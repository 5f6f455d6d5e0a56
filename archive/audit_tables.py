"""The audit's ``audit_*`` tables: written once at build time, read back by `testigo audit` and the site.

Everything here is plain rows in a fixed order, so the bundle stays byte-identical for the same
inputs; the checks themselves are in ``audit`` and the forensic tests in ``forensics``.
"""
from __future__ import annotations

import json
import sqlite3

import sqlite_utils

from . import audit, audit_paper, forensics

# name -> (columns, indexes, description, {column: description})
AUDIT_TABLES: dict[str, tuple[dict[str, type], tuple[tuple[str, ...], ...], str, dict[str, str]]] = {
    "audit_notes": (
        {"id": str, "kind": str, "sort_order": int, "title_en": str, "title_es": str, "about_en": str,
         "about_es": str, "limits_en": str, "limits_es": str},
        (("id",),),
        "What each audit check, test and view means, and what it cannot show (English and Spanish).",
        {"id": "Check id (audit_checks), test id (audit_tests) or view (audit_histograms, before ':').",
         "kind": "'check', 'test' or 'view'."}),
    "audit_checks": (
        {"check_id": str, "sort_order": int, "mesas": int, "rows": int, "threshold": int},
        (("check_id",),),
        "Consistency checks: how many mesas each concerns (the mesas are in audit_check_mesas).",
        {"check_id": "Stable id: sum_mismatch, over_electors, zero_turnout, single_candidate, "
                     "source_disagreement, identical_numbers, duplicate_photo, acta_id_collision; and the paper's "
                     "(the printed table): voters_machine_notebook, validos_not_lines, uuid_two_actas, "
                     "printed_before_close.",
         "mesas": "Distinct mesas the check lists.", "rows": "Rows of audit_check_mesas for it.",
         "threshold": "Least valid votes a mesa needs to be considered (single_candidate, identical_numbers); "
                      "NULL for the others."}),
    "audit_check_mesas": (
        {"check_id": str, "mesa_id": str, "acta_id": int, "issue_id": int, "grp": int, "detail": str},
        (("check_id",), ("mesa_id",)),
        "The mesas each check lists, with the acta (or the refused input, issue_id) and what was found.",
        {"mesa_id": "Mesa id 'CENTRO.MM'.", "acta_id": "The acta concerned (actas.id); NULL for a refused input.",
         "issue_id": "The refused input (issues.id) for sum_mismatch / over_electors found at ingest.",
         "grp": "Group number for identical_numbers, duplicate_photo, acta_id_collision and uuid_two_actas "
                "(mesas of one group share the numbers, the photo, the identifier or the printed UUID).",
         "detail": "What was found: the figures, the candidate, the JSON of differing fields, the identifier."}),
    "audit_disagreement_fields": (
        {"field": str, "sources": str, "mesas": int}, (),
        "source_disagreement per field: how many mesas have that figure differ between two sources.",
        {"field": "Candidate code, 'validos' or 'nulos'.", "sources": "The two sources compared, 'csv/qr' etc."}),
    "audit_tests": (
        {"test_id": str, "scope": str, "candidate": str, "n": int, "statistic": float, "p_value": float,
         "flag": int, "detail": str},
        (("scope",),),
        "Forensic tests over the counted actas: last_digit (χ² of last digits against uniform, counts ≥ 10) "
        "and round_digits (share of counts ending in 0 or 5, binomial test against 0.2), per main "
        "candidate, national and per estado.",
        {"scope": "'national' or 'estado:<COD_EDO>'.", "n": "Counts tested (those ≥ 10).",
         "statistic": "χ² (last_digit) or the share ending in 0 or 5 (round_digits); NULL when n < 50.",
         "p_value": "From scipy.stats, 6 significant digits; NULL when n < 50.",
         "flag": f"1 when p_value < {forensics.ALPHA}.",
         "detail": "Counts of last digits 0..9, comma-separated."}),
    "audit_histograms": (
        {"view": str, "scope": str, "x": int, "y": int, "mesas": int},
        (("scope", "view"),),
        "Histograms of the counted actas per mesa (cells with at least one mesa): 'turnout' and "
        "'share:<candidate>' in 0.1 % bins (x = permille, 0..999), 'fingerprint:<candidate>' in 1 % "
        "cells (x = turnout %, y = the candidate's share %, 0..99).",
        {"scope": "'national' or 'estado:<COD_EDO>'.", "mesas": "Mesas in the cell."}),
    "audit_coverage": (
        {"scope": str, "cod_edo": int, "estado": str, "mesas_registry": int, "electores_registry": int,
         "mesas_with_acta": int, "mesas_counted": int, "electores_counted": int, "mesas_published": int,
         "electores_published": int},
        (("scope",),),
        "How much of the registry the archive covers, national and per estado.",
        {"mesas_with_acta": "Registry mesas with at least one archived acta.",
         "electores_counted": "Registered electors of the mesas whose acta is counted.",
         "mesas_published": "The authority's published count of mesas, where the election definition "
                            "records one (national row only); else NULL."}),
    "audit_bulletins": (
        {"bulletin": str, "sort_order": int, "read": str, "read_text": str, "read_text_es": str, "reported": str,
         "reported_es": str, "others_together": int, "validos": int, "nulos": int, "votantes": int,
         "electores": int, "sources": str},
        (),
        "The electoral authority's announced national results, as recorded with their sources in the "
        "election definition.",
        {"sources": "JSON list of where the figures were read."}),
    "audit_official": (
        {"bulletin": str, "candidate": str, "announced": int, "archived": int}, (),
        "Per bulletin and candidate: the announced votes beside this archive's totals (totals_nacional).", {}),
    "audit_reach": (
        {"bulletin": str, "first": str, "second": str, "electores_total": int, "electores_counted": int,
         "electores_remaining": int, "margin_announced": int, "margin_archived": int,
         "margin_reachable_max": int, "reachable": int, "exceeded": str},
        (),
        "Could the electors of the mesas not counted here turn the archived result into the announced one, "
        "if every one of them voted and for the announced winner?",
        {"margin_announced": "Announced votes of first minus second.",
         "margin_archived": "The same two candidates' archived difference.",
         "margin_reachable_max": "margin_archived + electores_remaining: the most first-minus-second could be.",
         "reachable": "1 when margin_reachable_max >= margin_announced.",
         "exceeded": "JSON list of candidates whose archived votes already exceed the announced figure."}),
}

# Descriptions of the columns the table entries above leave out (every column is described).
_MORE: dict[str, dict[str, str]] = {
    "audit_notes": {"sort_order": "Order on the page.", "title_en": "Title in English.", "title_es": "Title in Spanish.",
                    "about_en": "What it finds or shows (English).", "about_es": "What it finds or shows (Spanish).",
                    "limits_en": "What it cannot show (English).", "limits_es": "What it cannot show (Spanish)."},
    "audit_checks": {"sort_order": "Order of the checks (as in audit_notes)."},
    "audit_check_mesas": {"check_id": "The check (audit_checks.check_id)."},
    "audit_disagreement_fields": {"mesas": "Mesas where that field differs between those two sources."},
    "audit_tests": {"test_id": "'last_digit' or 'round_digits'.", "candidate": "Candidate code (a main candidate: "
                    "at least 5 % of the archived valid votes)."},
    "audit_histograms": {"view": "'turnout', 'share:<candidate>' or 'fingerprint:<candidate>'.",
                         "x": "Bin: permille of turnout or share (0..999), or turnout % for a fingerprint (0..99).",
                         "y": "The candidate's share % for a fingerprint (0..99); 0 for the others."},
    "audit_coverage": {"scope": "'national' or 'estado:<COD_EDO>'.", "cod_edo": "State code (NULL: national).",
                       "estado": "State name (NULL: national).", "mesas_registry": "Mesas of the registry.",
                       "electores_registry": "Registered electors of the registry's mesas.",
                       "mesas_counted": "Registry mesas whose acta is counted.",
                       "electores_published": "The authority's published count of electors, where the election "
                                              "definition records one (national row only); else NULL."},
    "audit_bulletins": {"bulletin": "Bulletin id in the election definition.", "sort_order": "Order read (1 = first).",
                        "read": "Date read (ISO 8601).", "read_text": "When it was read, in words (English).",
                        "read_text_es": "When it was read, in words (Spanish).",
                        "reported": "The share of actas or votes it said it covered (English).",
                        "reported_es": "The same in Spanish.", "others_together": "Votes announced for the other "
                        "candidates together, where the bulletin gave no split; else NULL.",
                        "validos": "Announced valid votes.", "nulos": "Announced null votes.",
                        "votantes": "Announced votes cast.", "electores": "Announced registered electors."},
    "audit_official": {"bulletin": "Bulletin id.", "candidate": "Candidate code.", "announced": "Votes announced.",
                       "archived": "Votes in this archive's counted actas (totals_nacional)."},
    "audit_reach": {"bulletin": "Bulletin id.", "first": "The bulletin's first candidate.",
                    "second": "The bulletin's second candidate.",
                    "electores_total": "The country's electors: the published count, else the largest a bulletin "
                                       "announced, else the registry's.",
                    "electores_counted": "Electors of the mesas counted here.",
                    "electores_remaining": "electores_total minus electores_counted."},
}
for _name, _more in _MORE.items():
    AUDIT_TABLES[_name][3].update(_more)


_CHECK_THRESHOLDS = {"single_candidate": audit.SINGLE_CANDIDATE_MIN_VOTES,
                     "identical_numbers": audit.IDENTICAL_MIN_VOTES}


def _notes() -> list[dict]:
    rows = [{"id": cid, "kind": "check", "sort_order": i, "title_en": t[0], "title_es": t[1], "about_en": t[2],
             "about_es": t[3], "limits_en": "A mesa in a check is a reason to look at its acta, not a verdict.",
             "limits_es": "Una mesa en una comprobación es un motivo para mirar su acta, no un veredicto."}
            for i, (cid, t) in enumerate(audit.CHECKS.items(), 1)]
    for i, (cid, t) in enumerate(audit_paper.CHECKS.items(), len(rows) + 1):
        rows.append({"id": cid, "kind": "check", "sort_order": i, "title_en": t[0], "title_es": t[1],
                     "about_en": t[2], "about_es": t[3], "limits_en": t[4], "limits_es": t[5]})
    for i, (nid, t) in enumerate(forensics.NOTES.items(), len(rows) + 1):
        rows.append({"id": nid, "kind": "test" if nid in ("last_digit", "round_digits") else "view",
                     "sort_order": i, "title_en": t[0], "title_es": t[1], "about_en": t[2], "about_es": t[3],
                     "limits_en": t[4], "limits_es": t[5]})
    return rows


def _write(conn: sqlite3.Connection, name: str, rows: list[dict]) -> None:
    columns, indexes, _, _ = AUDIT_TABLES[name]
    db = sqlite_utils.Database(conn, execute_plugins=False)
    db[name].create(columns)
    cols = list(columns)
    conn.executemany(f"INSERT INTO [{name}] ({', '.join(f'[{c}]' for c in cols)}) VALUES "
                     f"({', '.join('?' * len(cols))})", [tuple(r.get(c) for c in cols) for r in rows])
    for idx in indexes:
        db[name].create_index(list(idx), index_name=f"idx_{name}_{'_'.join(idx)}")


def write_empty(conn: sqlite3.Connection) -> None:
    """Every ``audit_*`` table, empty: the schema a bundle's audit has (``archive.untrusted``
    checks a bundle's schema against what testigo writes)."""
    for name in AUDIT_TABLES:
        _write(conn, name, [])


def write_audit(conn: sqlite3.Connection, election) -> None:
    """Compute the audit from the bundle's tables on ``conn`` and store it as the ``audit_*`` tables."""
    codes = audit.candidates(conn)
    readings = audit.readings(conn, codes)
    checks = audit.run_checks(conn, readings) + audit_paper.run_checks(conn, election.meta.get("date", "2024-07-28"))
    mesas = forensics.counted_mesas(readings)
    main = forensics.main_candidates(mesas, codes)
    coverage = audit.coverage(conn, election.published_count)
    archived = dict(conn.execute("SELECT candidate, votes FROM totals_nacional"))
    bulletins = audit.bulletin_rows(election.bulletins)
    official = audit.official_rows(election.bulletins, archived)
    total = audit.electors_total(bulletins, coverage[0])
    reach = [r for b in bulletins if (r := audit.reach(
        b, {o["candidate"]: o["announced"] for o in official if o["bulletin"] == b["bulletin"]},
        archived, coverage[0], total)) is not None]
    _write(conn, "audit_notes", _notes())
    _write(conn, "audit_checks", [{"check_id": c.id, "sort_order": i, "mesas": len(c.mesas), "rows": len(c.rows),
                                   "threshold": _CHECK_THRESHOLDS.get(c.id)} for i, c in enumerate(checks, 1)])
    _write(conn, "audit_check_mesas", [r for c in checks for r in c.rows])
    fields = next(c.fields for c in checks if c.id == "source_disagreement")
    _write(conn, "audit_disagreement_fields", [{"field": f, "sources": s, "mesas": n} for (f, s), n in fields.items()])
    _write(conn, "audit_tests", forensics.digit_tests(mesas, codes, main))
    _write(conn, "audit_histograms", forensics.histograms(mesas, codes, main))
    _write(conn, "audit_coverage", coverage)
    _write(conn, "audit_bulletins", bulletins)
    _write(conn, "audit_official", official)
    _write(conn, "audit_reach", reach)


# --- reading ---------------------------------------------------------------------------------------

def has_audit(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_checks'").fetchone() is not None


def dicts(conn: sqlite3.Connection, sql: str, params=()) -> list[dict]:
    cur = conn.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur]


def read_checks(conn: sqlite3.Connection) -> list[dict]:
    """Each check as `testigo audit --json` gives it (+ Spanish title, threshold, per-field counts)."""
    notes = {n["id"]: n for n in dicts(conn, "SELECT * FROM audit_notes")}
    mesas: dict[str, list[str]] = {}
    for cid, mid in conn.execute("SELECT check_id, mesa_id FROM audit_check_mesas ORDER BY rowid"):
        got = mesas.setdefault(cid, [])
        if not got or got[-1] != mid:
            got.append(mid)
    out = []
    for c in dicts(conn, "SELECT * FROM audit_checks ORDER BY sort_order"):
        listed = sorted(set(mesas.get(c["check_id"], [])), key=audit.mesa_key)
        n = notes.get(c["check_id"], {})
        item = {"id": c["check_id"], "title": n.get("title_en"), "count": c["mesas"], "mesas": listed,
                "title_es": n.get("title_es"), "threshold": c["threshold"]}
        if c["check_id"] == "source_disagreement":
            item["fields"] = dicts(conn, "SELECT field, sources, mesas FROM audit_disagreement_fields ORDER BY rowid")
        out.append(item)
    return out


def read_tests(conn: sqlite3.Connection, scope: str | None = None) -> list[dict]:
    where, params = ("WHERE scope = ?", (scope,)) if scope else ("", ())
    return [{"id": t["test_id"], "scope": t["scope"], "candidate": t["candidate"], "n": t["n"],
             "statistic": t["statistic"], "p_value": t["p_value"], "flag": bool(t["flag"]),
             "digits": [int(x) for x in t["detail"].split(",")] if t["detail"] else []}
            for t in dicts(conn, f"SELECT * FROM audit_tests {where} ORDER BY rowid", params)]


def read_official(conn: sqlite3.Connection) -> list[dict]:
    """Each bulletin with its per-candidate figures and what the remaining electors could change."""
    rows = dicts(conn, "SELECT * FROM audit_official ORDER BY rowid")
    reach = {r["bulletin"]: r for r in dicts(conn, "SELECT * FROM audit_reach")}
    out = []
    for b in dicts(conn, "SELECT * FROM audit_bulletins ORDER BY sort_order"):
        b["sources"] = json.loads(b["sources"] or "[]")
        b["candidates"] = [{k: r[k] for k in ("candidate", "announced", "archived")}
                           for r in rows if r["bulletin"] == b["bulletin"]]
        r = reach.get(b["bulletin"])
        b["reach"] = {**r, "exceeded": json.loads(r["exceeded"])} if r else None
        out.append(b)
    return out


def read_audit(conn: sqlite3.Connection) -> dict:
    """The whole audit of a bundle database, as `testigo audit --json` prints it (less the bundle hash)."""
    return {"checks": read_checks(conn), "tests": read_tests(conn),
            "coverage": dicts(conn, "SELECT * FROM audit_coverage ORDER BY rowid"),
            "official": read_official(conn)}
