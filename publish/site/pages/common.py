"""What every page shares: language and number formatting, rendering, JSON, errors, charts."""
from __future__ import annotations

import functools
import inspect
import json
import re
import urllib.parse

from datasette.database import QueryInterrupted
from datasette.utils.asgi import Response

from archive.database import mesa_id as format_mesa_id

from ..gate import RETRY_AFTER_S
from ..state import SiteState, state_of

MESA_RE = re.compile(r"^\s*(\d{1,12})\s*[.\-/ ]\s*(\d{1,3})\s*$")


def lang_of(request) -> str:
    if request is None:
        return "es"
    v = (request.args.get("lang") or "").lower()
    return "en" if v.startswith("en") else "es"


def fmt_num(value, lang: str) -> str:
    if value is None or value == "":
        return "—"
    try:
        n = int(value)
    except (TypeError, ValueError):
        return str(value)
    s = f"{n:,}"
    return s.replace(",", ".") if lang == "es" else s


def fmt_pct(part, whole, lang: str, digits: int = 1) -> str:
    try:
        if not whole:
            return "—"
        v = 100.0 * float(part) / float(whole)
    except (TypeError, ValueError):
        return "—"
    s = f"{v:.{digits}f}"
    return (s.replace(".", ",") + " %") if lang == "es" else (s + "%")


def helpers(request, lang: str | None = None) -> dict:
    lang = lang or lang_of(request)

    def T(es, en=None):
        return es if lang == "es" or en is None else en

    def link(path, **params):
        q = {k: v for k, v in params.items() if v is not None and v != ""}
        if lang == "en":
            q["lang"] = "en"
        return path + ("?" + urllib.parse.urlencode(q) if q else "")

    def switch_url():
        if request is None:
            return "/?lang=en"
        pairs = [(k, v) for k, v in urllib.parse.parse_qsl(request.query_string, keep_blank_values=True)
                 if k != "lang"]
        if lang == "es":
            pairs.append(("lang", "en"))
        path = "/" + request.path.lstrip("/")   # never a protocol-relative //host link
        return path + ("?" + urllib.parse.urlencode(pairs) if pairs else "")

    return {
        "lang": lang, "T": T, "link": link, "lang_switch_url": switch_url,
        "n": lambda v: fmt_num(v, lang), "pct": lambda a, b, d=1: fmt_pct(a, b, lang, d),
    }



def page_headers(st: SiteState, status: int = 200, lang: str = "es") -> dict:
    if status >= 500:   # a busy or failing server: no cache may keep that answer
        return {"Cache-Control": "no-store", "Content-Language": lang, "Retry-After": str(RETRY_AFTER_S)}
    ttl = st.cache_ttl if status == 200 else min(60, st.cache_ttl)
    return {"Cache-Control": f"public, max-age={ttl}", "Content-Language": lang}


async def query(datasette, sql: str, params=None) -> list[dict]:
    """Rows as dicts, from the site's own SQL threads (see publish.site.pool)."""
    st = state_of(datasette)
    if st.pool is None:
        from ..pool import SitePool
        st.pool = SitePool(datasette, st.bundle.db_name)
    return await st.pool.query(sql, params or {})


async def render(datasette, request, template: str, context: dict, status: int = 200) -> Response:
    st = state_of(datasette)
    lang = lang_of(request)
    context = dict(context)
    context.setdefault("metadata", datasette.metadata())
    body = await datasette.render_template([template], context, request=request, view_name="testigo")
    return Response.html(body, status=status, headers=page_headers(st, status, lang))


def as_json(st: SiteState, data, status: int = 200) -> Response:
    headers = page_headers(st, status)
    headers["Access-Control-Allow-Origin"] = "*"
    return Response(json.dumps(data, ensure_ascii=False, default=str), status=status, headers=headers,
                    content_type="application/json; charset=utf-8")


async def error_page(datasette, request, status: int, es: str, en: str, fmt: str | None = None) -> Response:
    st = state_of(datasette)
    if fmt:
        return as_json(st, {"ok": False, "status": status, "error": en, "error_es": es}, status)
    return await render(datasette, request, "testigo_error.html",
                        {"status": status, "message_es": es, "message_en": en}, status)


def answers_when_busy(handler):
    """A page handler that answers 503 (try again shortly) when one of its queries hits the time
    limit, instead of a 500: the site says it is busy, it never looks broken."""
    sig = inspect.signature(handler)

    @functools.wraps(handler)
    async def wrapper(*args):
        try:
            return await handler(*args)
        except QueryInterrupted:
            arg = sig.bind(*args).arguments
            fmt = (getattr(arg.get("request"), "url_vars", None) or {}).get("fmt")
            return await error_page(arg["datasette"], arg.get("request"), 503,
                                    "El servidor está muy ocupado; inténtelo de nuevo en unos segundos.",
                                    "The server is very busy; try again in a few seconds.", fmt)
    return wrapper


def clean_text(value: str | None, limit: int) -> tuple[str, bool]:
    """Drop control characters, keep at most ``limit`` characters. Returns (text, was_cut)."""
    if not value:
        return "", False
    cut = len(value) > limit
    value = value[:limit]
    value = "".join(ch for ch in value if ch.isprintable() or ch in " \t")
    return value.strip(), cut


def normal_mesa_id(text: str | None, limit: int = 40) -> str | None:
    """A mesa code as written by a person (``201301006.1``, ``201301006-01``...) as CENTRO.MM, or None."""
    m = MESA_RE.match((text or "")[:limit])
    return format_mesa_id(int(m.group(1)), int(m.group(2))) if m else None


def bars(st: SiteState, votes: dict) -> list[dict]:
    """Rows for the bar chart: [{code, name, votes, share, width}] sorted by votes."""
    names = {c["code"]: c["name"] for c in st.candidates}
    items = [{"code": k, "name": names.get(k, k), "votes": int(v or 0)} for k, v in votes.items()]
    order = {c["code"]: i for i, c in enumerate(st.candidates)}
    items.sort(key=lambda r: (-r["votes"], order.get(r["code"], 99)))
    total = sum(r["votes"] for r in items)
    top = max((r["votes"] for r in items), default=0)
    for r in items:
        r["share"] = (r["votes"] / total) if total else 0.0
        r["width"] = round(100.0 * r["votes"] / top, 2) if top else 0.0
    return items
