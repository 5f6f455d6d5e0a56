"""Datasette hooks of the public site: its pages, template helpers, cache headers.

Registered by :func:`publish.site.register_plugin`; every hook does nothing on a Datasette
that :func:`publish.site.make_datasette` did not configure (``datasette.testigo_site``).

Pages (``?lang=en`` for English; ``.json`` for the data of the page):
  /                   home: what this is, search, national totals, check-my-acta, downloads
  /buscar?q=          find a centre by code or place (full-text search), with its mesas
  /centro/CENTRO      one centre: its mesas and totals
  /mesa/CENTRO.MM     one mesa: acta image(s), numbers, participation, cross-check, flags
  /totales[/NIVEL/ID] totals by candidate: national, estado, municipio, parroquia, centro
  /comprobar          check my acta: paste the QR text, or the mesa code and numbers
  /descargas          the bundle's files, signature, public key, torrent; how to verify
  /acerca             how the data was collected (the bundle README)
"""
from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.utils.asgi import Response, asgi_send_file

from archive.acta import parse_payload, validate
from archive.bundle import mesa_id as format_mesa_id
from archive.errors import PayloadError

from .site import IMMUTABLE_TTL

MAX_QUERY_CHARS = 200        # search text kept
MAX_TOKENS = 8
MAX_QR_CHARS = 4000          # anything longer is refused before parsing
MAX_RESULTS = 50
MESA_RE = re.compile(r"^\s*(\d{1,12})\s*[.\-/ ]\s*(\d{1,3})\s*$")


# --------------------------------------------------------------------------- state

@dataclass
class SiteState:
    bundle: object
    cache_ttl: int = 600
    response_cache_bytes: int = 64 * 2**20
    candidates: list = field(default_factory=list)     # [{code, name, sort_order, cards}]
    cards: list = field(default_factory=list)          # [{position, candidate, party}]
    counts: dict = field(default_factory=dict)         # for the home page
    _election: object = None
    _election_error: str | None = None
    _warmed: bool = False
    _warm_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    cache: "ResponseCache | None" = None
    level_cache: dict = field(default_factory=dict)
    level_locks: dict = field(default_factory=dict)
    national: dict | None = None
    issues_by_acta: bool = False

    async def warm(self, datasette) -> None:
        """Load the small tables every page needs (once: the startup hook, or the first request
        that gets here before it has finished)."""
        if self._warmed:
            return
        async with self._warm_lock:
            if not self._warmed:
                await self._load(datasette)
                self._warmed = True

    async def _load(self, datasette) -> None:
        db = datasette.get_database(self.bundle.db_name)
        names = set(await db.table_names()) | set(await db.view_names())
        if "candidates" in names:
            rows = (await db.execute("select * from candidates order by sort_order, code")).rows
            self.candidates = [dict(r) for r in rows]
        if "cards" in names:
            self.cards = [dict(r) for r in (await db.execute("select * from cards order by position")).rows]
        counts = {}
        for sql_name, sql in (
            ("mesas", "select count(*) from mesas"),
            ("counted", "select count(*) from actas where counted = 1"),
            ("images", "select count(*) from images"),
        ):
            try:
                counts[sql_name] = (await db.execute(sql)).rows[0][0]
            except Exception:
                counts[sql_name] = None
        self.counts = counts
        if "issues" in names:
            cols = await db.table_columns("issues")
            self.issues_by_acta = "acta_id" in cols
        # the election definition (for check-my-acta) reads the registry: off the event loop
        await asyncio.get_running_loop().run_in_executor(None, self.election)

    def election(self):
        """The election definition (for parse_payload), loaded on first use."""
        if self._election is None and self._election_error is None:
            try:
                from archive import election as election_mod
                self._election = election_mod.load(self.bundle.election_id)
            except Exception as e:
                self._election_error = str(e)
        return self._election


def _state(datasette) -> SiteState | None:
    return getattr(datasette, "testigo_site", None)


# --------------------------------------------------------------------------- language

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


# --------------------------------------------------------------------------- hooks

@hookimpl
def extra_template_vars(request, datasette):
    st = _state(datasette)
    if st is None:
        return {}
    h = helpers(request)
    h["site"] = st
    h["bundle"] = st.bundle
    return h


@hookimpl
def extra_css_urls(datasette):
    st = _state(datasette)
    if st is None:
        return []
    return [f"/assets/site.css?v={st.bundle.static_version}"]


@hookimpl
def startup(datasette):
    st = _state(datasette)
    if st is None:
        return None

    async def inner():
        await st.warm(datasette)
    return inner


@hookimpl
def register_routes(datasette):
    if _state(datasette) is None:
        return []
    return [
        (r"^/$", home),
        (r"^/robots\.txt$", robots),
        (r"^/buscar(?P<fmt>\.json)?$", buscar),
        (r"^/centro/(?P<centro>[^/]*?)(?P<fmt>\.json)?$", centro_page),
        (r"^/mesa$", mesa_redirect),
        (r"^/mesa/(?P<id>[^/]*?)(?P<fmt>\.json)?$", mesa_page),
        (r"^/totales(?P<fmt>\.json)?$", totales),
        (r"^/totales/(?P<nivel>[a-z]+)/(?P<id>[^/]*?)(?P<fmt>\.json)?$", totales),
        (r"^/comprobar(?P<fmt>\.json)?$", comprobar),
        (r"^/descargas$", descargas),
        (r"^/descargas/(?P<name>[^/]+)$", descarga_file),
        (r"^/acerca$", acerca),
    ]


@hookimpl
def asgi_wrapper(datasette):
    st = _state(datasette)
    if st is None:
        return None

    def wrap(app):
        st.cache = ResponseCache(st.response_cache_bytes)
        return CacheLayer(app, st)
    return wrap


# --------------------------------------------------------------------------- caching

class ResponseCache:
    """LRU of whole responses (status, headers, body) by request path and query.

    The database is immutable and the pages are functions of it, so a repeated anonymous
    GET can be answered without Datasette. Bounded by total body bytes.
    """

    MAX_ENTRY = 512 * 1024

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.used = 0
        self.entries: OrderedDict = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.inflight: dict = {}

    def get(self, key):
        e = self.entries.get(key)
        if e is not None:
            self.entries.move_to_end(key)
            self.hits += 1
        else:
            self.misses += 1
        return e

    def put(self, key, status, headers, body: bytes):
        if self.max_bytes <= 0 or len(body) > self.MAX_ENTRY:
            return
        if key in self.entries:
            return
        self.entries[key] = (status, headers, body)
        self.used += len(body) + 200
        while self.used > self.max_bytes and self.entries:
            _, (_, _, b) = self.entries.popitem(last=False)
            self.used -= len(b) + 200


COALESCE_WAIT_S = 15.0
NO_CACHE_PREFIXES = (b"/-/", b"/descargas/", b"/images/", b"/assets/")


class CacheLayer:
    """ASGI middleware: Cache-Control for static content, and the response cache."""

    def __init__(self, app, st: SiteState):
        self.app = app
        self.st = st

    def _static_headers(self, path: bytes, query: bytes, status: int) -> list[tuple[bytes, bytes]]:
        if status not in (200, 304):
            return []
        immutable = (b"cache-control", f"public, max-age={IMMUTABLE_TTL}, immutable".encode())
        if path.startswith(b"/images/"):
            # named by the sha256 of their bytes: they can never change
            return [immutable, (b"content-security-policy", b"default-src 'none'; sandbox")]
        if path.startswith(b"/assets/") and b"v=" in query:
            return [immutable]
        if path.startswith((b"/assets/", b"/-/static/")) or path == b"/favicon.ico" or path.endswith(b".db"):
            return [(b"cache-control", f"public, max-age={self.st.cache_ttl}".encode())]
        return []

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http":
            return await self.app(scope, receive, send)
        path = (scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")).partition(b"?")[0]
        query = scope.get("query_string") or b""
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD", "OPTIONS"):
            # The site is read-only: no logins, no writes, no canned write queries. Refusing
            # here also spares Datasette's POST handlers (a POST to a table page is a 500 there).
            body = b"405: this site is read-only / este sitio es de solo lectura\n"
            await send({"type": "http.response.start", "status": 405,
                        "headers": [(b"allow", b"GET, HEAD, OPTIONS"), (b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        req_headers = {k.lower() for k, _ in scope.get("headers") or []}
        personal = b"cookie" in req_headers or b"authorization" in req_headers
        cache = self.st.cache
        cacheable = (method == "GET" and not personal and cache is not None and cache.max_bytes > 0
                     and not path.startswith(NO_CACHE_PREFIXES) and not path.endswith(b".db")
                     and b"_trace" not in query and b"_stream" not in query)
        key = (path, query)
        leader = False
        if cacheable:
            hit = cache.get(key)
            if hit is None and key in cache.inflight:
                # Someone is computing this very answer: wait for it rather than compute it again
                # (a crowd opening the same new page at once costs one query, not hundreds).
                try:
                    await asyncio.wait_for(cache.inflight[key].wait(), timeout=COALESCE_WAIT_S)
                except asyncio.TimeoutError:
                    pass
                hit = cache.entries.get(key)
            if hit is not None:
                status, headers, body = hit
                await send({"type": "http.response.start", "status": status,
                            "headers": headers + [(b"x-testigo-cache", b"hit")]})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            if key not in cache.inflight:
                cache.inflight[key] = asyncio.Event()
                leader = True
        captured = {"status": None, "headers": None, "body": [], "size": 0, "ok": cacheable, "done": False}

        async def wrapped_send(message):
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers") or []]
                names = {k.lower() for k, _ in headers}
                extra = self._static_headers(path, query, status)
                if extra:
                    drop = {k for k, _ in extra}
                    headers = [(k, v) for k, v in headers if k.lower() not in drop] + extra
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if captured["ok"] and (status != 200 or b"set-cookie" in names):
                    captured["ok"] = False
                for k, v in headers:
                    if k.lower() == b"content-length" and v.isdigit() and int(v) > ResponseCache.MAX_ENTRY:
                        captured["ok"] = False
                    if k.lower() == b"cache-control" and (b"no-store" in v or b"private" in v):
                        captured["ok"] = False
                captured["status"], captured["headers"] = status, headers
                message = dict(message, headers=headers + ([(b"x-testigo-cache", b"miss")]
                                                           if captured["ok"] else []))
            elif message["type"] == "http.response.body" and captured["ok"]:
                body = message.get("body", b"")
                captured["size"] += len(body)
                if captured["size"] > ResponseCache.MAX_ENTRY:
                    captured["ok"] = False
                    captured["body"] = []
                else:
                    captured["body"].append(body)
                    if not message.get("more_body", False):
                        captured["done"] = True
            await send(message)

        try:
            await self.app(scope, receive, wrapped_send)
            if captured["ok"] and captured["done"]:
                cache.put(key, captured["status"], captured["headers"], b"".join(captured["body"]))
        finally:
            if leader:
                cache.inflight.pop(key).set()


# --------------------------------------------------------------------------- helpers

def _headers(st: SiteState, status: int = 200, lang: str = "es") -> dict:
    ttl = st.cache_ttl if status == 200 else min(60, st.cache_ttl)
    return {"Cache-Control": f"public, max-age={ttl}", "Content-Language": lang,
            "Referrer-Policy": "no-referrer"}


async def _q(datasette, sql: str, params=None) -> list[dict]:
    st = _state(datasette)
    db = datasette.get_database(st.bundle.db_name)
    res = await db.execute(sql, params or {}, log_sql_errors=False)
    return [dict(r) for r in res.rows]


async def render(datasette, request, template: str, context: dict, status: int = 200) -> Response:
    st = _state(datasette)
    lang = lang_of(request)
    context = dict(context)
    context.setdefault("metadata", datasette.metadata())
    body = await datasette.render_template([template], context, request=request, view_name="testigo")
    return Response.html(body, status=status, headers=_headers(st, status, lang))


def as_json(st: SiteState, data, status: int = 200) -> Response:
    headers = _headers(st, status)
    headers["Access-Control-Allow-Origin"] = "*"
    return Response(json.dumps(data, ensure_ascii=False, default=str), status=status, headers=headers,
                    content_type="application/json; charset=utf-8")


async def error_page(datasette, request, status: int, es: str, en: str, fmt: str | None = None) -> Response:
    st = _state(datasette)
    if fmt:
        return as_json(st, {"ok": False, "status": status, "error": en, "error_es": es}, status)
    return await render(datasette, request, "testigo_error.html",
                        {"status": status, "message_es": es, "message_en": en}, status)


def _clean_text(value: str | None, limit: int) -> tuple[str, bool]:
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


# --------------------------------------------------------------------------- pages

async def robots(datasette):
    return Response.text("User-agent: *\nDisallow: /*?sql=\nDisallow: /*_facet\nDisallow: /*_sort\n"
                         "Disallow: /*.csv\n", headers={"Cache-Control": "public, max-age=86400"})


async def national_totals(datasette) -> dict:
    st = _state(datasette)
    if st.national is None:
        rows = await _q(datasette, "select candidate, votes from totals_nacional")
        st.national = {r["candidate"]: int(r["votes"] or 0) for r in rows}
    return dict(st.national)


async def home(datasette, request):
    st = _state(datasette)
    await st.warm(datasette)
    votes = await national_totals(datasette)
    ctx = {"chart": bars(st, votes), "total": sum(votes.values()), "counts": st.counts,
           "db_name": st.bundle.db_name}
    return await render(datasette, request, "testigo_home.html", ctx)


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
        rows = await _q(datasette, "select c.centro, c.codigo, c.estado, c.municipio, c.parroquia, c.mesas, "
                        f"c.electores {matches} limit :lim", dict(params, lim=MAX_RESULTS + 1))
        total = len(rows) if len(rows) <= MAX_RESULTS else (await _q(datasette, count, params))[0]["n"]
    except QueryInterrupted:
        return [], 0, "too_slow"
    except sqlite3.Error:
        return [], 0, "bad_query"
    rows = rows[:MAX_RESULTS]
    if rows:
        ids = [r["centro"] for r in rows]
        marks = ",".join("?" * len(ids))
        mesas = await _q(datasette, f"""
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


async def buscar(datasette, request):
    st = _state(datasette)
    fmt = request.url_vars.get("fmt")
    q, cut = _clean_text(request.args.get("q"), MAX_QUERY_CHARS)
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


def _parse_int_id(text: str, max_digits: int = 12) -> int | None:
    t = urllib.parse.unquote(text or "").strip()
    if t.isascii() and t.isdigit() and len(t) <= max_digits:
        return int(t)
    return None


async def area_totals(datasette, where_sql: str, params: dict) -> dict:
    """Counted votes per candidate, válidos, nulos, mesas counted over mesas matching where_sql
    (a condition on centros c)."""
    rows = await _q(datasette, f"""
        select
          (select count(*) from mesas m join centros c on c.centro = m.centro where {where_sql}) as mesas,
          (select coalesce(sum(m.electores), 0) from mesas m join centros c on c.centro = m.centro
             where {where_sql}) as electores,
          count(*) as counted, coalesce(sum(a.validos), 0) as validos, sum(a.nulos) as nulos,
          coalesce(sum(m.electores), 0) as electores_counted
        from actas a join mesas m on m.id = a.mesa_id join centros c on c.centro = m.centro
        where a.counted = 1 and {where_sql}""", params)
    return rows[0] if rows else {}


async def centro_page(datasette, request):
    st = _state(datasette)
    fmt = request.url_vars.get("fmt")
    centro = _parse_int_id(request.url_vars.get("centro"))
    if centro is None:
        return await error_page(datasette, request, 404, "Ese código de centro no es válido: deben ser solo dígitos.",
                                "That is not a valid centre code: digits only.", fmt)
    rows = await _q(datasette, "select * from centros where centro = :c", {"c": centro})
    if not rows:
        return await error_page(datasette, request, 404, f"No hay ningún centro {centro} en el registro.",
                                f"There is no centre {centro} in the registry.", fmt)
    c = rows[0]
    mesas = await _q(datasette, """
        select m.id, m.mesa, m.electores,
          (select count(*) from actas a where a.mesa_id = m.id) as actas,
          (select count(*) from actas a where a.mesa_id = m.id and a.source = 'qr') as qr,
          (select a.validos from actas a where a.mesa_id = m.id and a.counted = 1) as validos,
          (select group_concat(distinct a.status) from actas a where a.mesa_id = m.id and a.status != 'ok') as flags,
          (select count(*) from actas a where a.mesa_id = m.id and a.crosscheck = 'disagree') as disagree
        from mesas m where m.centro = :c order by m.mesa""", {"c": centro})
    votes = await _votes_for_area(datasette, "centro", centro)
    if fmt:
        return as_json(st, {"ok": True, "centro": c, "mesas": mesas, "votes": votes})
    return await render(datasette, request, "testigo_centro.html",
                        {"c": c, "mesas": mesas, "chart": bars(st, votes), "total": sum(votes.values())})


async def mesa_redirect(datasette, request):
    mesa_id = normal_mesa_id(request.args.get("id"))
    if mesa_id is None:
        return await error_page(datasette, request, 400,
                                "Escriba la mesa como CENTRO.MESA, por ejemplo 201301006.01.",
                                "Write the mesa as CENTRO.MESA, for example 201301006.01.")
    return Response.redirect(helpers(request)["link"](f"/mesa/{mesa_id}"))


def _acta_flags(a: dict) -> list[tuple[str, str, str]]:
    out = []
    if a["status"] == "duplicate":
        out.append(("duplicate", f"Duplicada: los mismos números que el acta {a.get('duplicate_of')}.",
                    f"Duplicate: same numbers as acta {a.get('duplicate_of')}."))
    if a["status"] == "conflict":
        out.append(("conflict", "En conflicto: otra lectura de esta mesa tiene números distintos.",
                    "Conflict: another reading of this mesa has different numbers."))
    if a.get("crosscheck") == "disagree":
        out.append(("disagree", "No coincide con la fila de la hoja (CSV) de esta mesa.",
                    "Does not agree with this mesa's sheet row (CSV)."))
    return out


async def mesa_data(datasette, mesa_id: str) -> dict | None:
    st = _state(datasette)
    rows = await _q(datasette, """
        select m.id, m.centro, m.mesa, m.electores, c.codigo, c.estado, c.municipio, c.parroquia,
               c.cod_edo, c.municipio_id, c.parroquia_id
        from mesas m left join centros c on c.centro = m.centro where m.id = :id""", {"id": mesa_id})
    if not rows:
        return None
    mesa = rows[0]
    actas = await _q(datasette, """
        select a.id, a.source, a.status, a.counted, a.validos, a.nulos, a.crosscheck, a.crosscheck_diff,
               a.duplicate_of, a.payload, a.image_sha256, i.path as image_path, i.width, i.height,
               i.media_type, i.size as image_size
        from actas a left join images i on i.sha256 = a.image_sha256
        where a.mesa_id = :id order by a.counted desc, a.id""", {"id": mesa_id})
    ids = [a["id"] for a in actas]
    per_cand: dict = {}
    per_card: dict = {}
    if ids:
        marks = ",".join("?" * len(ids))
        for r in await _q(datasette, f"select acta_id, candidate, votes from acta_votes where acta_id in ({marks})", ids):
            per_cand.setdefault(r["acta_id"], {})[r["candidate"]] = r["votes"]
        for r in await _q(datasette, f"select acta_id, position, votes from votes where acta_id in ({marks}) "
                          "order by acta_id, position", ids):
            per_card.setdefault(r["acta_id"], {})[r["position"]] = r["votes"]
    issues: list[dict] = []
    if ids and st.issues_by_acta:
        issues = await _q(datasette, f"select id, outcome, code, reason, file, acta_id from issues "
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
        a["flags"] = [{"code": c, "es": es, "en": en} for c, es, en in _acta_flags(a)]
        cast = (a["validos"] or 0) + (a["nulos"] or 0)
        a["participation"] = (cast / mesa["electores"]) if mesa.get("electores") else None
        if a["counted"] and counted is None:
            counted = a
    flags = []
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
    return {"mesa": mesa, "counted_acta": counted["id"] if counted else None, "actas": actas, "flags": flags,
            "issues": issues}


async def mesa_page(datasette, request):
    st = _state(datasette)
    await st.warm(datasette)
    fmt = request.url_vars.get("fmt")
    raw = urllib.parse.unquote(request.url_vars.get("id") or "")
    mesa_id = normal_mesa_id(raw)
    if mesa_id is None:
        return await error_page(datasette, request, 404,
                                "Ese código de mesa no es válido; escríbalo como CENTRO.MESA, por ejemplo 201301006.01.",
                                "That is not a valid mesa code; write it as CENTRO.MESA, e.g. 201301006.01.", fmt)
    if mesa_id != raw and not fmt:
        return Response.redirect(helpers(request)["link"](f"/mesa/{mesa_id}"))
    data = await mesa_data(datasette, mesa_id)
    if data is None:
        return await error_page(datasette, request, 404, f"La mesa {mesa_id} no está en el registro de esta elección.",
                                f"Mesa {mesa_id} is not in this election's registry.", fmt)
    if fmt:
        return as_json(st, dict(data, ok=True))
    counted = next((a for a in data["actas"] if a["id"] == data["counted_acta"]), None)
    chart = bars(st, {k: v for k, v in counted["votes"].items() if v is not None}) if counted else []
    return await render(datasette, request, "testigo_mesa.html", dict(data, counted=counted, chart=chart))


@dataclass(frozen=True)
class Level:
    column: str     # what names an area of this level in centros and in its totals_<level> view
    id_re: str      # an area id of this level as written in a URL
    area_sql: str   # the area (nombre, and its parents' codes and names) by :k


LEVELS = {
    "estado": Level("cod_edo", r"\d{1,3}", "select cod_edo, nombre from estados where cod_edo = :k"),
    "municipio": Level("municipio_id", r"\d{1,3}\.\d{1,3}",
                       "select m.id, m.nombre, m.cod_edo, e.nombre as estado from municipios m "
                       "left join estados e on e.cod_edo = m.cod_edo where m.id = :k"),
    "parroquia": Level("parroquia_id", r"\d{1,3}\.\d{1,3}\.\d{1,3}",
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
    totals_<level> view (a view is a full aggregation either way; the bundle never changes)."""
    st = _state(datasette)
    cache = st.level_cache
    if nivel in cache:
        return cache[nivel]
    lock = st.level_locks.setdefault(nivel, asyncio.Lock())
    async with lock:
        if nivel not in cache:
            rows = await _q(datasette, f"select {LEVELS[nivel].column} as k, candidate, votes from totals_{nivel}")
            cache[nivel] = _votes_by_area(rows)
    return cache[nivel]


async def _votes_for_area(datasette, nivel: str | None, key) -> dict:
    if nivel is None:
        return await national_totals(datasette)
    if nivel == "centro":   # one centre: an indexed lookup is cheaper than the whole view
        rows = await _q(datasette, "select candidate, votes from totals_centro where centro = :k", {"k": key})
        found = {r["candidate"]: int(r["votes"] or 0) for r in rows}
    else:
        found = (await level_totals(datasette, nivel)).get(key, {})
    return _per_candidate(_state(datasette), found)


async def _children(datasette, nivel: str | None, key) -> tuple[str | None, list[dict]]:
    """Sub-areas of an area with their votes per candidate: (child level, rows)."""
    st = _state(datasette)
    if nivel not in CHILDREN:
        return None, []
    child, names_sql = CHILDREN[nivel]
    names = await _q(datasette, names_sql, {"k": key})
    if child == "centro":   # a parish's centres only, not the whole view
        by = _votes_by_area(await _q(datasette, "select centro as k, candidate, votes from totals_centro "
                                     "where centro in (select centro from centros where parroquia_id = :k)",
                                     {"k": key}))
    else:
        by = await level_totals(datasette, child)
    out = []
    for n in names:
        v = by.get(n["k"], {})
        out.append({"key": n["k"], "nombre": n["nombre"], "votes": _per_candidate(st, v), "total": sum(v.values())})
    return child, out


async def totales(datasette, request):
    st = _state(datasette)
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
        rows = await _q(datasette, LEVELS[nivel].area_sql, {"k": key})
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
    child, children = await _children(datasette, nivel, key)
    if fmt:
        return as_json(st, {"ok": True, "area": area, "votes": votes, "summary": summary,
                            "children_level": child, "children": children})
    chart = bars(st, votes)
    top = [r["code"] for r in chart[:2]]
    for c in children:
        c["others"] = c["total"] - sum(c["votes"].get(k, 0) for k in top)
    ds_url = f"/{st.bundle.db_name}/totals_{nivel or 'nacional'}" + (
        "?" + urllib.parse.urlencode({LEVELS[nivel].column: key}) if nivel else "")
    return await render(datasette, request, "testigo_totales.html", {
        "area": area, "nivel": nivel, "chart": chart, "total": sum(votes.values()), "summary": summary,
        "child": child, "children": children, "top": top, "area_crumbs": crumbs, "ds_url": ds_url})


# --------------------------------------------------------------------------- check my acta

PAYLOAD_MESSAGES_ES = {
    "empty": "El texto está vacío: pegue el texto del código QR del acta.",
    "not_acta": "Ese texto no parece el QR de un acta de esta elección. Debe tener la forma "
                "CENTRO.MESA.N.SERIE!38 números separados por comas!N!N.",
    "bad_header": "El encabezado del QR (CENTRO.MESA.N.SERIE) no es válido.",
    "wrong_count_number": "El acta debe traer exactamente un número por tarjeta de la boleta.",
    "non_numeric_count": "Uno de los valores no es un número entero.",
    "negative_count": "Uno de los números es negativo.",
    "count_too_large": "Uno de los números es mayor que los electores de cualquier mesa.",
    "too_long": "El texto es demasiado largo para ser el QR de un acta.",
}


def _field_rows(st: SiteState, yours: dict, archived: dict) -> list[dict]:
    out = []
    for key, label_es, label_en in _fields(st):
        if key not in yours:
            continue
        a = archived.get(key)
        if a is None and key.startswith(("card:", "nulos")):
            continue
        out.append({"field": key, "es": label_es, "en": label_en, "yours": yours[key], "archived": a,
                    "same": yours[key] == a})
    return out


def _fields(st: SiteState) -> list[tuple[str, str, str]]:
    f = [("validos", "Votos válidos", "Valid votes"), ("nulos", "Votos nulos", "Null votes")]
    f += [(c["code"], c["name"], c["name"]) for c in st.candidates]
    f += [(f"card:{k['position']}", f"Tarjeta {k['position']} ({k['candidate']})",
           f"Card {k['position']} ({k['candidate']})") for k in st.cards]
    return f


def _acta_numbers(a: dict) -> dict:
    nums = {"validos": a.get("validos")}
    if a.get("nulos") is not None:
        nums["nulos"] = a["nulos"]
    nums.update({k: v for k, v in (a.get("votes") or {}).items() if v is not None})
    if a.get("cards"):
        nums.update({f"card:{i}": v for i, v in enumerate(a["cards"], 1) if v is not None})
    return nums


def _parse_numbers_form(st: SiteState, args) -> tuple[dict, list[str]]:
    yours, bad = {}, []
    for key in ["validos", "nulos"] + [c["code"] for c in st.candidates]:
        raw = (args.get(key) or "").strip()[:20]
        if raw == "":
            continue
        t = raw.replace(".", "").replace(",", "").replace(" ", "")
        if t.isascii() and t.isdigit() and len(t) <= 7:
            yours[key] = int(t)
        else:
            bad.append(key)
    return yours, bad


async def check_acta(datasette, args) -> dict:
    """Compare what a citizen has (QR text, or mesa code and numbers) with the archive."""
    st = _state(datasette)
    await st.warm(datasette)
    res: dict = {"ok": False, "result": None, "mesa_id": None, "fields": [], "compared_with": None,
                 "other_matches": [], "input": None, "message_es": "", "message_en": "", "code": None}
    qr_raw = args.get("qr")
    mesa_raw = args.get("mesa")
    if qr_raw is not None and qr_raw.strip():
        if len(qr_raw) > MAX_QR_CHARS:
            res.update(result="invalid", code="too_long", message_es=PAYLOAD_MESSAGES_ES["too_long"],
                       message_en=f"The text is {len(qr_raw)} characters, far too long for an acta QR.")
            return res
        res["input"] = "qr"
        election = st.election()
        if election is None:
            res.update(result="unavailable", code="no_election",
                       message_es="La definición de la elección no está disponible en este servidor.",
                       message_en=f"The election definition is not available on this server: {st._election_error}")
            return res
        try:
            acta = parse_payload(qr_raw.strip(), election)
        except PayloadError as e:
            res.update(result="invalid", code=e.code,
                       message_es=PAYLOAD_MESSAGES_ES.get(e.code, "El texto no es un QR de acta válido."),
                       message_en=str(e))
            return res
        except Exception as e:  # parse_payload promises PayloadError; stay clean regardless
            res.update(result="invalid", code="unparseable", message_es="No se pudo leer ese texto.",
                       message_en=f"Could not read that text ({type(e).__name__}).")
            return res
        mesa_id = acta.mesa_key
        try:
            validate(acta, election)
        except PayloadError as e:
            if e.code != "unknown_mesa":   # reported below, from the bundle's own registry
                res["warning_code"], res["warning_en"] = e.code, str(e)
        yours = {"validos": acta.validos, **acta.votes}
        yours.update({f"card:{i}": c for i, c in enumerate(acta.counts or (), 1)})
        payload = acta.payload
    elif mesa_raw is not None and (mesa_raw.strip() or any(args.get(k) for k in ("validos", "nulos"))):
        res["input"] = "numbers"
        mesa_id = normal_mesa_id(urllib.parse.unquote(mesa_raw))
        if mesa_id is None:
            res.update(result="invalid", code="bad_mesa",
                       message_es="Escriba la mesa como CENTRO.MESA, por ejemplo 201301006.01.",
                       message_en="Write the mesa as CENTRO.MESA, for example 201301006.01.")
            return res
        yours, bad = _parse_numbers_form(st, args)
        if bad:
            res.update(result="invalid", code="bad_number", mesa_id=mesa_id,
                       message_es="Estos campos no son números enteros: " + ", ".join(bad) + ".",
                       message_en="These fields are not whole numbers: " + ", ".join(bad) + ".")
            return res
        if not yours:
            res.update(result="invalid", code="no_numbers", mesa_id=mesa_id,
                       message_es="Escriba al menos un número del acta (votos de un candidato, válidos o nulos).",
                       message_en="Enter at least one number from the acta (a candidate's votes, valid or null).")
            return res
        payload = None
    else:
        return res  # nothing asked: the form only
    res["mesa_id"] = mesa_id
    data = await mesa_data(datasette, mesa_id)
    if data is None:
        res.update(result="unknown_mesa", code="unknown_mesa",
                   message_es=f"La mesa {mesa_id} no está en el registro de esta elección: revise el código del "
                              "centro y el número de mesa.",
                   message_en=f"Mesa {mesa_id} is not in this election's registry: check the centre code and "
                              "the mesa number.")
        return res
    res["ok"] = True
    actas = data["actas"]
    if not actas:
        res.update(result="not_archived", code="not_archived",
                   message_es=f"Todavía no tenemos ningún acta de la mesa {mesa_id}. Si tiene la foto, envíela.",
                   message_en=f"We have no acta of mesa {mesa_id} yet. If you have the photo, send it in.")
        return res
    ref = next((a for a in actas if a["id"] == data["counted_acta"]), None) or actas[0]
    rows = _field_rows(st, yours, _acta_numbers(ref))
    res["fields"] = rows
    res["compared_with"] = {"id": ref["id"], "source": ref["source"], "status": ref["status"],
                            "counted": ref["counted"], "image_url": ref.get("image_url")}
    for a in actas:
        if a["id"] != ref["id"] and all(r["same"] for r in _field_rows(st, yours, _acta_numbers(a))):
            res["other_matches"].append(a["id"])
    res["identical_payload"] = bool(payload) and any(a.get("payload") == payload for a in actas)
    differ = [r for r in rows if not r["same"]]
    if not differ:
        res.update(result="match", code="match",
                   message_es=f"Coincide: los {len(rows)} campos comparados son iguales a los del acta archivada "
                              f"de la mesa {mesa_id}.",
                   message_en=f"Match: all {len(rows)} fields compared equal the archived acta of mesa {mesa_id}.")
    else:
        res.update(result="mismatch", code="mismatch",
                   message_es=f"No coincide: {len(differ)} de {len(rows)} campos son distintos de los del acta "
                              f"archivada de la mesa {mesa_id}.",
                   message_en=f"Mismatch: {len(differ)} of {len(rows)} fields differ from the archived acta "
                              f"of mesa {mesa_id}.")
    return res


async def comprobar(datasette, request):
    st = _state(datasette)
    fmt = request.url_vars.get("fmt")
    try:
        res = await check_acta(datasette, request.args)
    except QueryInterrupted:
        return await error_page(datasette, request, 503, "El servidor está ocupado; inténtelo de nuevo.",
                                "The server is busy; try again.", fmt)
    if fmt:
        return as_json(st, res)
    qr_echo, _ = _clean_text(request.args.get("qr"), 400)
    return await render(datasette, request, "testigo_comprobar.html", {
        "res": res, "qr": qr_echo, "form": {k: (request.args.get(k) or "")[:20]
                                            for k in ["mesa", "validos", "nulos"] + [c["code"] for c in st.candidates]}})


# --------------------------------------------------------------------------- downloads

DOWNLOAD_TYPES = {".db": "application/vnd.sqlite3", ".json": "application/json",
                  ".md": "text/markdown; charset=utf-8", ".torrent": "application/x-bittorrent"}


async def descargas(datasette, request):
    return await render(datasette, request, "testigo_descargas.html", {})


async def descarga_file(datasette, request, send):
    st = _state(datasette)
    name = urllib.parse.unquote(request.url_vars.get("name") or "")
    d = next((d for d in st.bundle.downloads if d.name == name), None)
    if d is None:
        return await error_page(datasette, request, 404, "Ese archivo no forma parte de las descargas.",
                                "That file is not one of the downloads.")
    suffix = Path(name).suffix
    ctype = DOWNLOAD_TYPES.get(suffix, "text/plain; charset=utf-8")
    headers = {"cache-control": f"public, max-age={st.cache_ttl}", "content-security-policy": "default-src 'none'; sandbox",
               "access-control-allow-origin": "*"}
    if d.sha256:
        headers["etag"] = f'"{d.sha256}"'
        if request.headers.get("if-none-match") == headers["etag"]:
            await send({"type": "http.response.start", "status": 304,
                        "headers": [(k.encode(), v.encode()) for k, v in headers.items()]})
            await send({"type": "http.response.body", "body": b""})
            return None
    attach = suffix in (".db", ".torrent")
    try:
        await asgi_send_file(send, d.path, filename=name if attach else None, content_type=ctype,
                             chunk_size=256 * 1024, headers=headers)
    except FileNotFoundError:
        return await error_page(datasette, request, 404, "El archivo ya no está en el servidor.",
                                "The file is no longer on the server.")
    return None


async def acerca(datasette, request):
    return await render(datasette, request, "testigo_acerca.html", {})
