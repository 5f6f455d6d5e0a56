"""The data browser in a process of its own, at a lower CPU priority.

`testigo serve` answers the public's pages (home, buscar, mesa, totales, comprobar, descargas,
photos) itself, and hands Datasette's own pages (tables, facets, filters, CSV, visitors' SQL
when allowed) to a second process that runs the same site over a Unix socket, ``nice``\\ d, so
that a crowd sending the expensive requests only ever slows that process down: it has its own
interpreter (rendering a 1,000-row table takes half a second of one), its own SQL threads and
the scheduler's leftovers. The front still counts how many of those requests are in flight
(publish.site.gate) and keeps the rest waiting or refuses them.

Its child runs ``python -m publish.site.dataprocess BUNDLE --uds PATH [serve options]`` by :class:`DataBrowser`;
it exits when the process that started it is gone.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

#: How much lower the data browser's CPU priority is (nice value added; 19 is the lowest).
NICE = 10
START_TIMEOUT_S = 60.0
#: Headers that belong to one connection, not to the request (RFC 9110, section 7.6.1).
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
              b"trailer", b"transfer-encoding", b"upgrade"}
#: Bytes of a streamed answer sent at once by the data browser (see :func:`coalesced`).
CHUNK_BYTES = 64 * 1024


class DataBrowserDown(Exception):
    """The data browser process cannot answer now (starting again)."""


class DataBrowser:
    """Start, watch and talk to the data browser process."""

    def __init__(self, bundle_dir: str | Path, serve_args: list[str], nice: int = NICE):
        self.bundle_dir = str(bundle_dir)
        self.serve_args = list(serve_args)
        self.nice = nice
        self.dir = Path(tempfile.mkdtemp(prefix="testigo-data-"))
        self.socket = str(self.dir / "data.sock")
        self.proc: subprocess.Popen | None = None
        self._client: httpx.AsyncClient | None = None
        self._lock = threading.Lock()

    def start(self, wait: bool = True) -> None:
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                return
            Path(self.socket).unlink(missing_ok=True)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "publish.site.dataprocess", self.bundle_dir, "--uds", self.socket,
                 "--nice", str(self.nice), "--parent", str(os.getpid()), *self.serve_args],
                stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DataBrowserDown(f"the data browser process exited with code {self.proc.returncode}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
                return
            except OSError:
                time.sleep(0.05)
        raise DataBrowserDown(f"the data browser process did not start within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=self.socket),
                                             timeout=httpx.Timeout(120.0, connect=5.0))
        return self._client

    async def forward(self, scope, receive, send) -> None:
        """Answer an ASGI HTTP request with the data browser's answer, streamed."""
        raw = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string") or b""
        url = "http://data" + raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        headers = [(k, v) for k, v in scope.get("headers") or [] if k.lower() not in HOP_BY_HOP]
        request = self.client().build_request(scope["method"], url, headers=headers)
        try:
            response = await self.client().send(request, stream=True)
        except httpx.TransportError as e:
            if self.proc is None or self.proc.poll() is not None:   # it died: bring it back
                self.start(wait=False)          # a fork, not a wait: the requests meanwhile get 503
            raise DataBrowserDown(str(e)) from e
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


def coalesced(app, limit: int = CHUNK_BYTES):
    """ASGI middleware: a streamed answer's small body messages sent as few large ones.

    Datasette's CSV export sends one message per row (24,573 of ~49 bytes for every acta), and
    the front forwards chunk by chunk: each costs it a loop turn, an h11 event and a send(), on
    the process that answers the public's pages. Sent in pieces of ``limit`` bytes (the last
    when the answer ends), the same export is ~20 chunks.
    """
    async def wrapper(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        buffer = bytearray()

        async def send_coalesced(message):
            if message["type"] != "http.response.body":
                return await send(message)
            buffer.extend(message.get("body", b""))
            more = message.get("more_body", False)
            if more and len(buffer) < limit:
                return
            body = bytes(buffer)
            buffer.clear()
            await send({"type": "http.response.body", "body": body, "more_body": more})
        return await app(scope, receive, send_coalesced)
    return wrapper
