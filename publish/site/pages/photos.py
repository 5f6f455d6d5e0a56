"""``/images/<sha256>.<ext>``: the acta photos, read straight out of the bundle's zip shards.

Same URLs as when the photos were loose files, so pages and templates link them unchanged.
The shards are indexed once when the bundle is loaded (``archive.shards.open_images``); each
request reads only its photo's byte range, in chunks, off the event loop. The name is the
sha256 of the bytes, so the ETag is that hash and the response never changes (the cache layer
adds the immutable Cache-Control and the sandbox CSP for everything under /images/).
"""
from __future__ import annotations

import asyncio
import re

from ..state import state_of
from .common import error_page

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """(start, end exclusive) of a single ``Range: bytes=`` request; None = whole file;
    False = not satisfiable (416). Several ranges are answered with the whole file."""
    m = _RANGE.match((header or "").strip())
    if not m or not (m.group(1) or m.group(2)):
        return None
    if not m.group(1):                              # bytes=-N: the last N bytes
        n = int(m.group(2))
        return (max(0, size - n), size) if n else False
    start = int(m.group(1))
    end = min(int(m.group(2)) + 1, size) if m.group(2) else size
    if start >= size or end <= start:
        return False
    return start, end


async def photo(datasette, request, send):
    st = state_of(datasette)
    name = request.url_vars.get("name") or ""
    index = getattr(st.bundle, "images", None)
    member = index.find(name) if index is not None and "." in name else None
    if member is None:
        return await error_page(datasette, request, 404, "Esa foto no está en este paquete.",
                                "That photo is not in this bundle.")
    etag = f'"{member.sha256}"'
    headers = [(b"content-type", member.media_type.encode()), (b"etag", etag.encode()),
               (b"accept-ranges", b"bytes")]
    if request.headers.get("if-none-match") == etag:
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return None
    span = byte_range(request.headers.get("range"), member.size)
    if span is False:
        await send({"type": "http.response.start", "status": 416,
                    "headers": [(b"content-range", f"bytes */{member.size}".encode()),
                                (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return None
    start, end = span or (0, member.size)
    status = 206 if span else 200
    if span:
        headers.append((b"content-range", f"bytes {start}-{end - 1}/{member.size}".encode()))
    headers.append((b"content-length", str(end - start).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if request.method == "HEAD":
        await send({"type": "http.response.body", "body": b""})
        return None
    chunks = index.stream(member, start, end, CHUNK)
    loop = asyncio.get_running_loop()
    try:
        while (data := await loop.run_in_executor(None, next, chunks, None)) is not None:
            await send({"type": "http.response.body", "body": data, "more_body": True})
    finally:
        chunks.close()
    await send({"type": "http.response.body", "body": b""})
    return None


# Public, identical for every visitor: Datasette's router then leaves the headers alone (no
# "vary: Cookie" on an immutable photo), as it does for its static files.
photo._datasette_static = True
