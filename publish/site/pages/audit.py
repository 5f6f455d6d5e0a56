"""/auditoria and /auditoria/estado/<code>: whether the actas hold together (issue 19).

The figures are the bundle's ``audit_*`` tables, read with the same reader as `testigo audit`
(``archive.audit_tables``), so the page, its JSON and the command line cannot disagree. Charts
are SVG drawn here (``archive.audit_figures``): no script, they work in the mirror and offline.
"""
from __future__ import annotations

from markupsafe import Markup

from archive import audit_figures

from ..state import state_of
from .common import as_json, error_page, helpers, lang_of, query, render
from .queries import audit_data, has_audit

#: Mesas listed per check on a page (all are in the JSON, the CLI and audit_check_mesas).
LISTED = 200


def _figures(hist: list[dict], main: list[str], T) -> list[dict]:
    """The SVG figures of one scope: fingerprint, turnout and share histograms per main candidate."""
    views: dict[str, list[dict]] = {}
    for r in hist:
        views.setdefault(r["view"], []).append(r)
    out = []
    for c in main:
        cells = [(r["x"], r["y"], r["mesas"]) for r in views.get(f"fingerprint:{c}", [])]
        out.append({"id": f"fingerprint-{c}", "note": "fingerprint",
                    "title": T(f"Huella electoral: participación contra la proporción de {c}",
                               f"Election fingerprint: turnout against {c}'s share"), "svg": Markup(audit_figures.fingerprint(
            cells, T(f"Huella electoral de {c}", f"Election fingerprint of {c}"), T("participación (%)", "turnout (%)"),
            T(f"proporción de {c} (%)", f"{c}'s share (%)"),
            T(f"{sum(x[2] for x in cells)} mesas: participación contra la proporción de {c}",
              f"{sum(x[2] for x in cells)} mesas: turnout against {c}'s share")))})
    bins = [(r["x"], r["mesas"]) for r in views.get("turnout", [])]
    out.append({"id": "turnout", "note": "turnout", "title": T("Participación por mesa", "Turnout per mesa"), "svg": Markup(audit_figures.histogram(
        bins, T("Participación por mesa", "Turnout per mesa"), T("participación (%)", "turnout (%)"),
        T("Mesas por participación, en intervalos de 0,1 %; en rojo los porcentajes enteros",
          "Mesas by turnout in 0.1 % bins; whole percentages in red")))})
    for c in main:
        bins = [(r["x"], r["mesas"]) for r in views.get(f"share:{c}", [])]
        out.append({"id": f"share-{c}", "note": "share",
                    "title": T(f"Proporción de {c} por mesa", f"{c}'s share per mesa"), "svg": Markup(audit_figures.histogram(
            bins, T(f"Proporción de {c} por mesa", f"{c}'s share per mesa"), T(f"proporción de {c} (%)", f"{c}'s share (%)"),
            T(f"Mesas por proporción de {c}, en intervalos de 0,1 %; en rojo los porcentajes enteros",
              f"Mesas by {c}'s share in 0.1 % bins; whole percentages in red")))})
    return out


def _digit_figures(tests: list[dict], T) -> list[dict]:
    out = []
    for t in tests:
        if t["id"] == "last_digit" and t["digits"]:
            flagged = any(u["flag"] for u in tests if u["candidate"] == t["candidate"])
            t = dict(t, svg=Markup(audit_figures.digits(
                t["digits"], T(f"Últimos dígitos de {t['candidate']}", f"Last digits of {t['candidate']}"),
                T(f"{t['n']} conteos ≥ 10", f"{t['n']} counts ≥ 10"), flagged)))
            out.append(t)
    return out


async def _scope_page(datasette, request, scope: str, cod_edo: int | None):
    st = state_of(datasette)
    await st.warm(datasette)
    fmt = request.url_vars.get("fmt")
    if not await has_audit(datasette):
        return await error_page(datasette, request, 404,
                                "Este paquete se construyó antes de que testigo calculara la auditoría.",
                                "This bundle was built before testigo computed the audit.", fmt)
    data = await audit_data(datasette)
    coverage = next((c for c in data["coverage"] if c["scope"] == scope), None)
    if coverage is None:
        return await error_page(datasette, request, 404, "Ese estado no tiene mesas en el registro.",
                                "That state has no mesas in the registry.", fmt)
    tests = [t for t in data["tests"] if t["scope"] == scope]
    if cod_edo is None:
        checks = data["checks"]
    else:
        rows = await query(datasette, "select distinct cm.check_id, cm.mesa_id from audit_check_mesas cm "
                           "join mesas m on m.id = cm.mesa_id join centros ce on ce.centro = m.centro "
                           "where ce.cod_edo = :e", {"e": cod_edo})
        here: dict[str, set] = {}
        for r in rows:
            here.setdefault(r["check_id"], set()).add(r["mesa_id"])
        checks = [dict(c, mesas=[m for m in c["mesas"] if m in here.get(c["id"], ())],
                       count=len(here.get(c["id"], ())), fields=None) for c in data["checks"]]
    if fmt:
        # the national JSON is `testigo audit --json` (every scope's tests); an estado's, its own
        body = {"bundle": data["bundle"], "scope": scope, "checks": checks,
                "tests": data["tests"] if cod_edo is None else tests, "coverage":
                data["coverage"] if cod_edo is None else [coverage]}
        if cod_edo is None:
            body["official"] = data["official"]
        return as_json(st, body)
    T = helpers(request)["T"]
    main = list(dict.fromkeys(t["candidate"] for t in data["tests"]))
    hist = await query(datasette, "select view, x, y, mesas from audit_histograms where scope = :s order by rowid",
                       {"s": scope})
    estados = [c for c in data["coverage"] if c["scope"] != "national"]
    flagged_scopes = {t["scope"] for t in data["tests"] if t["flag"]}
    ctx = {"scope": scope, "cod_edo": cod_edo, "coverage": coverage, "checks": checks, "tests": tests,
           "notes": data["notes"], "official": data["official"] if cod_edo is None else [],
           "figures": _figures(hist, main, T), "digit_figures": _digit_figures(tests, T), "estados": estados,
           "flagged_scopes": flagged_scopes, "listed": LISTED, "lang": lang_of(request),
           "names": {c["code"]: c["name"] for c in st.candidates}}
    return await render(datasette, request, "testigo_auditoria.html", ctx)


async def auditoria(datasette, request):
    return await _scope_page(datasette, request, "national", None)


async def auditoria_estado(datasette, request):
    code = request.url_vars.get("code") or ""
    if not code.isdigit() or len(code) > 3:
        return await error_page(datasette, request, 404, "Ese código de estado no es válido.",
                                "That is not a valid state code.", request.url_vars.get("fmt"))
    return await _scope_page(datasette, request, f"estado:{int(code)}", int(code))
