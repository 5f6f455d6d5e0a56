"""`testigo audit B --html OUT`: the audit as one self-contained page for people who will never
run Datasette (a court, an editor): figures inline as SVG, no script, no link needed to read it,
laid out to print on paper. The figures are the same as the site's (``audit_figures``)."""
from __future__ import annotations

from html import escape

from . import audit_figures

CSS = """
body { font: 11pt/1.45 system-ui, sans-serif; color: #111; max-width: 48rem; margin: 1.5rem auto; padding: 0 1rem; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #999; }
table { border-collapse: collapse; width: 100%; margin: 0.6em 0; font-size: 0.95em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.2em 0.4em; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.flag td { background: #fdecea; } .limits { color: #444; } code { font-size: 0.95em; }
.mesas { font-family: monospace; font-size: 0.85em; word-break: break-all; }
figure { margin: 1em 0; break-inside: avoid; } .t-fig { width: 100%; height: auto; max-width: 34rem; }
.t-digits { max-width: 20rem; } .meta { color: #444; font-size: 0.9em; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } }
"""


def _n(v, lang: str) -> str:
    if v is None:
        return "—"
    s = f"{int(v):,}"
    return s.replace(",", ".") if lang == "es" else s


def _p(p) -> str:
    return "—" if p is None else ("< 0.0001" if p < 0.0001 else f"{p:.4f}")


def render_report(result: dict, lang: str = "es") -> str:
    """The report's HTML text (UTF-8); ``result`` is ``audit_report.audit_bundle``'s."""
    T = (lambda es, en: es) if lang == "es" else (lambda es, en: en)   # noqa: E731
    n = lambda v: _n(v, lang)   # noqa: E731
    notes = result.get("notes") or {}

    def note(i: str) -> str:
        x = notes.get(i)
        if not x:
            return ""
        about, limits = (x["about_es"], x["limits_es"]) if lang == "es" else (x["about_en"], x["limits_en"])
        return (f"<p>{escape(about)}</p>" + (f'<p class="limits"><strong>{T("Límites", "Limits")}:</strong> '
                                             f"{escape(limits)}</p>" if limits else ""))

    out = [f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
           f'<meta name="viewport" content="width=device-width, initial-scale=1">'
           f'<title>{T("Auditoría de las actas", "Audit of the actas")}</title><style>{CSS}</style></head><body>',
           f'<h1>{T("Auditoría de las actas archivadas", "Audit of the archived actas")}</h1>',
           f'<p class="meta">{T("Paquete", "Bundle")}: SHA256SUMS <code>{escape(result["bundle"])}</code>. '
           + T("Calculado al construir el paquete firmado (tablas audit_*); repítalo con <code>testigo audit B --json</code> "
               "o con sqlite3. Una mesa señalada o una prueba marcada es un motivo para mirar, nunca una prueba de fraude.",
               "Computed when the signed bundle was built (audit_* tables); repeat it with <code>testigo audit B --json</code> "
               "or sqlite3. A listed mesa or a flagged test is a reason to look, never proof of fraud.") + "</p>"]
    nat = result["coverage"][0]
    whole = nat["mesas_published"] or nat["mesas_registry"]
    out.append(f'<h2>{T("Cobertura", "Coverage")}</h2><p>{T("Mesas con acta contada", "Mesas with a counted acta")}: '
               f'<strong>{n(nat["mesas_counted"])}</strong> {T("de", "of")} {n(whole)}; '
               f'{T("electores de esas mesas", "electors of those mesas")}: <strong>{n(nat["electores_counted"])}</strong>.</p>')
    out.append(f'<table><tr><th>{T("Estado", "State")}</th><th class="n">{T("Mesas", "Mesas")}</th>'
               f'<th class="n">{T("Contadas", "Counted")}</th><th class="n">{T("Electores cubiertos", "Electors covered")}</th></tr>')
    for c in result["coverage"][1:]:
        out.append(f'<tr><td>{escape(c["estado"] or "—")}</td><td class="n">{n(c["mesas_registry"])}</td>'
                   f'<td class="n">{n(c["mesas_counted"])}</td><td class="n">{n(c["electores_counted"])}</td></tr>')
    out.append("</table>")
    for b in result["official"]:
        out.append(f'<h2>{T("Boletín oficial", "Official bulletin")}: {escape(b["read_text_es"] if lang == "es" else b["read_text"] or "")}'
                   f' · {escape((b["reported_es"] if lang == "es" else b["reported"]) or "")}</h2>'
                   f'<table><tr><th>{T("Candidato", "Candidate")}</th><th class="n">{T("Anunciado", "Announced")}</th>'
                   f'<th class="n">{T("En las actas", "In the actas")}</th></tr>')
        for c in b["candidates"]:
            cls = ' class="flag"' if c["archived"] > c["announced"] else ""
            out.append(f'<tr{cls}><td>{escape(c["candidate"])}</td><td class="n">{n(c["announced"])}</td>'
                       f'<td class="n">{n(c["archived"])}</td></tr>')
        out.append("</table>")
        r = b["reach"]
        if r:
            verdict = (T("alcanzable", "reachable") if r["reachable"] else
                       T("inalcanzable aunque todos votaran por", "unreachable even if all of them voted for") + f" {r['first']}")
            out.append(f'<p>{T("Electores que el archivo no cubre", "Electors the archive does not cover")}: '
                       f'{n(r["electores_remaining"])}. {r["first"]} − {r["second"]}: '
                       f'{T("anunciado", "announced")} {n(r["margin_announced"])}, {T("en las actas", "in the actas")} '
                       f'{n(r["margin_archived"])}, {T("como máximo", "at most")} {n(r["margin_reachable_max"])}: '
                       f'<strong>{verdict}</strong>.'
                       + (f' {T("Ya superan lo anunciado en las actas", "Already above the announced figure in the actas")}: '
                          f'{", ".join(r["exceeded"])}.' if r["exceeded"] else "") + "</p>")
        out.append(f'<p class="meta">{T("Fuentes", "Sources")}: {escape("; ".join(b["sources"]))}</p>')
    out.append(f'<h2>{T("Comprobaciones de consistencia", "Consistency checks")}</h2>')
    for c in result["checks"]:
        out.append(f'<h3>{escape(c["title_es"] if lang == "es" else c["title"])}: {n(c["count"])} <code>{c["id"]}</code></h3>'
                   + note(c["id"]))
        for f in c.get("fields") or ():
            out.append(f'<p>{escape(f["field"])} ({escape(f["sources"])}): {n(f["mesas"])}</p>')
        if c["mesas"]:
            out.append(f'<p class="mesas">{escape(", ".join(c["mesas"]))}</p>')
    out.append(f'<h2>{T("Pruebas de dígitos", "Digit tests")}</h2>' + note("last_digit") + note("round_digits"))
    out.append(f'<table><tr><th>{T("Prueba", "Test")}</th><th>{T("Ámbito", "Scope")}</th><th>{T("Candidato", "Candidate")}</th>'
               f'<th class="n">n</th><th class="n">{T("Estadístico", "Statistic")}</th><th class="n">p</th></tr>')
    for t in result["tests"]:
        stat = "—" if t["statistic"] is None else f"{t['statistic']:.4g}"
        out.append(f'<tr{" class=flag" if t["flag"] else ""}><td>{t["id"]}</td><td>{escape(t["scope"])}</td>'
                   f'<td>{escape(t["candidate"])}</td><td class="n">{n(t["n"])}</td><td class="n">{stat}</td>'
                   f'<td class="n">{_p(t["p_value"])}{" ⚑" if t["flag"] else ""}</td></tr>')
    out.append("</table>")
    for t in result["tests"]:
        if t["scope"] == "national" and t["id"] == "last_digit" and t["digits"]:
            svg = audit_figures.digits(t["digits"], T("Últimos dígitos de ", "Last digits of ") + t["candidate"],
                                       f"n = {t['n']}", t["flag"])
            out.append(f'<figure>{svg}'
                       f'<figcaption>{T("Últimos dígitos de", "Last digits of")} {escape(t["candidate"])}, {T("nacional", "national")}</figcaption></figure>')
    out.append(f'<h2>{T("Distribuciones (nacional)", "Distributions (national)")}</h2>')
    views: dict[str, list[dict]] = {}
    for r in result.get("histograms") or ():
        views.setdefault(r["view"], []).append(r)
    main = list(dict.fromkeys(t["candidate"] for t in result["tests"]))
    for c in main:
        cells = [(r["x"], r["y"], r["mesas"]) for r in views.get(f"fingerprint:{c}", [])]
        out.append(f'<figure><h3>{T("Huella electoral", "Election fingerprint")}: {escape(c)}</h3>'
                   + audit_figures.fingerprint(cells, f"fingerprint {c}", T("participación (%)", "turnout (%)"),
                                               T(f"proporción de {c} (%)", f"{c}'s share (%)"), f"{len(cells)} cells")
                   + f"<figcaption>{note('fingerprint')}</figcaption></figure>")
    for view, title in (("turnout", T("Participación por mesa", "Turnout per mesa")),
                        *((f"share:{c}", T(f"Proporción de {c} por mesa", f"{c}'s share per mesa")) for c in main)):
        bins = [(r["x"], r["mesas"]) for r in views.get(view, [])]
        out.append(f"<figure><h3>{escape(title)}</h3>"
                   + audit_figures.histogram(bins, title, "%", T("en rojo los porcentajes enteros", "whole percentages in red"))
                   + f"<figcaption>{note('turnout' if view == 'turnout' else 'share')}</figcaption></figure>")
    out.append("</body></html>\n")
    return "".join(out)
