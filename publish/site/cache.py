"""The site's response cache and headers: an ASGI layer in front of Datasette.

Static content (photos and assets named by hash) gets an immutable Cache-Control; repeated
anonymous GETs of pages are answered from memory; identical requests in flight are coalesced;
anything but GET/HEAD/OPTIONS is refused (the site is read-only); every answer carries the
security headers (publish.site.headers); Datasette's own data-browser pages wait for a turn at the
gate (publish.site.gate) so that they can never crowd out the public's pages.
"""
from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from collections import OrderedDict

from .browser import DataBrowserDown
from .gate import RETRY_AFTER_S, Busy, Gate
from .headers import FILE_POLICY, add_security_headers
from .app import IMMUTABLE_TTL
from .state import SiteState


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
#: Files served as they are (no SQL, no rendering): never held at the gate.
FILE_PREFIXES = (b"/assets/", b"/images/", b"/-/static/", b"/-/static-plugins/", b"/descargas/")


async def send_simple(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], policy: str,
                      content_type: bytes = b"text/plain; charset=utf-8") -> None:
    """A complete small answer (refusals, busy), with the security headers."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")] + headers
    await send({"type": "http.response.start", "status": status, "headers": add_security_headers(headers, policy)})
    await send({"type": "http.response.body", "body": body, "more_body": False})


#: Query parameters that ask Datasette for a facet (a GROUP BY over the filtered table).
FACET_PARAMS = ("_facet", "_facet_array", "_facet_date")


def refused_facets(st: SiteState, path: bytes, query: bytes) -> list[str]:
    """The facets a data-browser request asks for on a column without an index (and not among
    the table's own facets): each is a full scan per visitor, so they are not offered."""
    if not st.facetable or b"_facet" not in query:
        return []
    parts = urllib.parse.unquote(path.decode("utf-8", "replace")).strip("/").split("/")
    if len(parts) != 2 or parts[0] != st.bundle.db_name:
        return []
    table = re.sub(r"\.(json|csv)$", "", parts[1])
    allowed = st.facetable.get(table, set())
    return [v for k, v in urllib.parse.parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True)
            if k in FACET_PARAMS and v not in allowed]


def busy_body(path: bytes) -> tuple[bytes, bytes]:
    """(body, content type) of the 503 the gate gives: JSON for JSON URLs, text otherwise."""
    es = ("El explorador de datos está muy solicitado ahora: inténtelo en unos segundos, o descargue "
          "la base de datos completa en /descargas y explórela en su computadora.")
    en = ("The data browser is in heavy demand right now: try again in a few seconds, or download the "
          "whole database from /descargas and explore it on your own computer.")
    if path.endswith(b".json"):
        return (json.dumps({"ok": False, "status": 503, "error": en, "error_es": es}, ensure_ascii=False).encode(),
                b"application/json; charset=utf-8")
    return f"503: {es}\n{en}\n".encode(), b"text/plain; charset=utf-8"


class CacheLayer:
    """ASGI middleware: headers, the read-only rule, the response cache and the data gate."""

    def __init__(self, app, st: SiteState, site_paths: list[str], gate: Gate | None = None):
        self.app = app
        self.st = st
        self.site_paths = [re.compile(p) for p in site_paths]
        self.gate = gate or Gate()

    def is_data_browser(self, path: bytes) -> bool:
        """Is this one of Datasette's own pages (table, query, row, database...)?"""
        if path.startswith(FILE_PREFIXES) or path == b"/favicon.ico" or path.endswith(b".db"):
            return False
        text = path.decode("utf-8", "replace")
        return not any(p.match(text) for p in self.site_paths)

    def _static_headers(self, path: bytes, query: bytes, status: int) -> list[tuple[bytes, bytes]]:
        if status not in (200, 304):
            return []
        immutable = (b"cache-control", f"public, max-age={IMMUTABLE_TTL}, immutable".encode())
        if path.startswith(b"/images/"):
            # named by the sha256 of their bytes: they can never change
            return [immutable, (b"content-security-policy", FILE_POLICY.encode())]
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
        policy = self.st.policy
        if method not in ("GET", "HEAD", "OPTIONS"):
            # The site is read-only: no logins, no writes, no canned write queries. Refusing
            # here also spares Datasette's POST handlers (a POST to a table page is a 500 there).
            return await send_simple(send, 405, b"405: this site is read-only / este sitio es de solo lectura\n",
                                     [(b"allow", b"GET, HEAD, OPTIONS")], policy)
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
                headers = add_security_headers(headers, policy)
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
            if self.is_data_browser(path):
                refused = refused_facets(self.st, path, query)
                if refused:
                    await asyncio.sleep(self.gate.refusal_delay_s)    # as the gate's refusals: no instant retry
                    msg = (f"No facet by {', '.join(refused)}: facets are offered on indexed columns only. "
                           "Download the database (/descargas) to group by anything. / Sin facetas por esas "
                           "columnas: descargue la base de datos para agrupar por cualquiera.")
                    body = (json.dumps({"ok": False, "status": 400, "error": msg}).encode()
                            if b".json" in path else msg.encode() + b"\n")
                    await send_simple(send, 400, body, [], policy, b"application/json; charset=utf-8"
                                      if b".json" in path else b"text/plain; charset=utf-8")
                    return
                browser = self.st.browser
                try:
                    async with self.gate.turn():
                        if browser is None:
                            await self.app(scope, receive, wrapped_send)
                        else:
                            await browser.forward(scope, receive, wrapped_send)
                except (Busy, DataBrowserDown):
                    body, ctype = busy_body(path)
                    await send_simple(send, 503, body, [(b"retry-after", str(RETRY_AFTER_S).encode())],
                                      policy, ctype)
                    return
            else:
                await self.app(scope, receive, wrapped_send)
            if captured["ok"] and captured["done"]:
                cache.put(key, captured["status"], captured["headers"], b"".join(captured["body"]))
        finally:
            if leader:
                cache.inflight.pop(key).set()
