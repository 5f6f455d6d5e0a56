"""Home, about, robots.txt and the downloads page with its files."""
from __future__ import annotations

import urllib.parse
from pathlib import Path

from datasette.utils.asgi import Response, asgi_send_file

from ..headers import FILE_POLICY
from ..state import state_of
from .common import bars, error_page, render
from .queries import national_totals


async def robots(datasette):
    return Response.text("User-agent: *\nDisallow: /*?sql=\nDisallow: /*_facet\nDisallow: /*_sort\n"
                         "Disallow: /*.csv\n", headers={"Cache-Control": "public, max-age=86400"})


async def home(datasette, request):
    st = state_of(datasette)
    await st.warm(datasette)
    votes = await national_totals(datasette)
    ctx = {"chart": bars(st, votes), "total": sum(votes.values()), "counts": st.counts,
           "db_name": st.bundle.db_name}
    return await render(datasette, request, "testigo_home.html", ctx)


DOWNLOAD_TYPES = {".db": "application/vnd.sqlite3", ".json": "application/json",
                  ".md": "text/markdown; charset=utf-8", ".torrent": "application/x-bittorrent"}


async def descargas(datasette, request):
    return await render(datasette, request, "testigo_descargas.html", {})


async def descarga_file(datasette, request, send):
    st = state_of(datasette)
    name = urllib.parse.unquote(request.url_vars.get("name") or "")
    d = next((d for d in st.bundle.downloads if d.name == name), None)
    if d is None:
        return await error_page(datasette, request, 404, "Ese archivo no forma parte de las descargas.",
                                "That file is not one of the downloads.")
    suffix = Path(name).suffix
    ctype = DOWNLOAD_TYPES.get(suffix, "text/plain; charset=utf-8")
    headers = {"cache-control": f"public, max-age={st.cache_ttl}", "content-security-policy": FILE_POLICY,
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
