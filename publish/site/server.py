"""Running the site: the Datasette app made from a bundle, served by uvicorn.

``make_datasette(bundle_dir)`` returns a configured :class:`datasette.app.Datasette` (for tests
and for embedding); ``serve(bundle_dir, host, port)`` runs it with uvicorn until stopped, with
Datasette's own pages in a data process of their own (``publish.site.browser``).
"""
from __future__ import annotations

import time
from pathlib import Path

from .app import DEFAULT_CACHE_TTL, PLUGIN_NAME, STATIC, TEMPLATES, build_metadata, build_settings, check_database, load_bundle
from .errors import SiteError
from .gate import DATA_CONCURRENCY
from .indexes import facetable_columns


def register_plugin() -> None:
    """Register the site's hooks with Datasette's plugin manager (once per process)."""
    from datasette.plugins import pm
    from . import plugin
    if pm.get_plugin(PLUGIN_NAME) is None and not pm.is_registered(plugin):
        pm.register(plugin, name=PLUGIN_NAME)


def make_datasette(bundle_dir: str | Path, *, torrent: str | Path | None = None,
                   places: str | Path | None = None,
                   cache_ttl: int = DEFAULT_CACHE_TTL, allow_sql: bool = False,
                   response_cache_mb: int = 64, data_concurrency: int = DATA_CONCURRENCY,
                   settings: dict | None = None):
    """A Datasette serving ``bundle_dir`` read-only (immutable mode), with the site's pages.

    ``torrent``: a .torrent of the bundle to offer (default: ``<bundle>.torrent`` beside the
    folder when it exists). ``places``: the places file (default: ``<bundle>.places.json``
    beside the folder when it exists). ``cache_ttl``: Cache-Control max-age of pages and downloads.
    ``allow_sql``: let visitors run their own SQL (a private instance). ``response_cache_mb``:
    memory for the in-process cache of repeated answers (0: none). ``data_concurrency``: how
    many of Datasette's own pages are computed at once (publish.site.gate).
    """
    from datasette.app import Datasette

    bundle = load_bundle(bundle_dir, torrent, places)
    register_plugin()
    from .state import SiteState
    state = SiteState(bundle=bundle, cache_ttl=int(cache_ttl), response_cache_bytes=int(response_cache_mb) * 2**20,
                      data_concurrency=int(data_concurrency))

    class SiteDatasette(Datasette):
        # The hooks find the site's state on the instance; Datasette builds its app (and so
        # calls register_routes / asgi_wrapper) inside __init__, so it must be there first.
        def __init__(self, *args, **kwargs):
            self.testigo_site = state
            super().__init__(*args, **kwargs)

    metadata = build_metadata(bundle)
    state.facetable = facetable_columns(metadata, bundle.db_name)
    ds = SiteDatasette(
        immutables=[str(bundle.db_path)],
        metadata=metadata,
        settings=build_settings(cache_ttl, allow_sql, **(settings or {})),
        template_dir=str(TEMPLATES),
        static_mounts=[("assets", str(STATIC))],
        cors=True,
    )
    db = ds.databases.get(bundle.db_name)
    if db is not None and bundle.sums.get(bundle.db_path.name):
        # The ETag of the .db download; taken from SHA256SUMS instead of hashing GBs at start.
        db.cached_hash = bundle.sums[bundle.db_path.name]
    return ds


class InProcessClient:
    """Datasette's internal client (no server, no socket) usable from synchronous code.

    Requests run on a private event loop in a thread of its own, so this works even where
    another loop is already running in the calling thread (Playwright's, a notebook's).
    """

    def __init__(self, ds):
        import asyncio
        import threading
        self.ds = ds
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="datasette-client", daemon=True)
        self._thread.start()
        self.run(ds.invoke_startup())

    def run(self, coro):
        """Run a coroutine on the client's loop and return its result."""
        import asyncio
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def get(self, path: str, **kw):
        return self.run(self.ds.client.get(path, **kw))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def serve(bundle_dir: str | Path, host: str = "127.0.0.1", port: int = 8001, *,
          torrent: str | Path | None = None, places: str | Path | None = None,
          cache_ttl: int = DEFAULT_CACHE_TTL, allow_sql: bool = False, response_cache_mb: int = 64,
          data_concurrency: int = DATA_CONCURRENCY, echo=None, log_level: str = "warning",
          guard=None) -> None:
    """Serve a bundle until interrupted (blocking).

    Once listening, calls ``echo(url)`` (default: print it), e.g. ``http://127.0.0.1:8001/``;
    with ``port=0`` the URL tells which port was given. ``guard``: see :func:`serve_app`.
    """
    ds = make_datasette(bundle_dir, torrent=torrent, places=places, cache_ttl=cache_ttl, allow_sql=allow_sql,
                        response_cache_mb=response_cache_mb, data_concurrency=data_concurrency)
    check_database(ds.testigo_site.bundle)
    from .browser import DataBrowser
    browser = DataBrowser(ds.testigo_site.bundle.path, [
        *(["--torrent", str(torrent)] if torrent else []), "--cache-ttl", str(int(cache_ttl)),
        *(["--allow-sql"] if allow_sql else [])])
    try:
        browser.start()                  # Datasette's own pages, in a process of their own
        ds.testigo_site.browser = browser
        # invoke_startup loads the small tables before the first visitor
        serve_app(ds.app(), host, port, echo=echo, startup=ds.invoke_startup, shutdown=browser.stop,
                  log_level=log_level, guard=guard)
    finally:
        browser.stop()


def serve_app(app, host: str, port: int, *, echo=None, startup=None, shutdown=None,
              log_level: str = "warning", guard=None, forwarded_allow_ips: str | None = "127.0.0.1") -> None:
    """Run an ASGI app with uvicorn until interrupted; ``echo(url)`` once it listens.

    ``startup``: an async callable awaited before the socket opens; ``shutdown``: a callable
    run once the server has stopped (also after a signal, which uvicorn re-raises once it has
    shut down). With ``port=0`` the URL tells which port the system gave. ``guard``: the
    :class:`publish.site.connections.ConnectionGuard` its connections answer to (default: one with
    the default deadline and per-address cap). ``forwarded_allow_ips``: the proxies whose
    X-Forwarded-For names the client (uvicorn's); None: no proxy, the header is never trusted.
    """
    import uvicorn

    from .connections import ConnectionGuard, raise_open_files_limit

    guard = guard or ConnectionGuard()
    raise_open_files_limit()

    echo = echo or (lambda url: print(url, flush=True))

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            if startup is not None:
                await startup()
            await super().startup(sockets=sockets)
            if self.started:
                for srv in self.servers:
                    for sock in srv.sockets:
                        h, p = sock.getsockname()[:2]
                        echo(f"http://{f'[{h}]' if ':' in h else h}:{p}/")

        async def shutdown(self, sockets=None):
            await super().shutdown(sockets=sockets)
            if shutdown is not None:
                shutdown()      # here: after a signal, uvicorn re-raises it once it has shut down

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            server_header=False, timeout_keep_alive=10, backlog=2048, http=guard.protocol(),
                            proxy_headers=forwarded_allow_ips is not None,
                            forwarded_allow_ips=forwarded_allow_ips or "")
    Server(config).run()


def stop_process(proc, timeout: float = 10) -> None:
    """Stop a server started by start_in_subprocess / start_command: SIGTERM, then SIGKILL."""
    import subprocess
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def start_in_subprocess(bundle_dir: str | Path, *args: str, timeout: float = 60, preexec_fn=None):
    """Run `testigo serve BUNDLE --port 0 ARGS` in a child process; return (process, URL).

    For tests and benchmarks that need a real server on loopback: the URL is read from what
    the server prints once it listens. Raises SiteError with the server's stderr if it does not.
    """
    return start_command(["publish.site.cli", str(bundle_dir), "--port", "0", *args], timeout=timeout,
                         preexec_fn=preexec_fn)


def start_command(module_args: list[str], timeout: float = 60, preexec_fn=None):
    """Run `python -m MODULE ARGS` (a server printing its loopback URL); return (process, URL).

    The URL is the first ``http://127.0.0.1:PORT/...`` the process prints (with its path and
    query, e.g. an access code). ``preexec_fn``: run in the child before it starts (e.g. to
    set its resource limits as a service manager would).
    """
    import os
    import re
    import subprocess
    import sys
    import threading

    proc = subprocess.Popen([sys.executable, "-m", *module_args],
                            env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
    found: list[str] = []

    def read():
        for line in proc.stdout:
            m = re.search(r"http://127\.0\.0\.1:\d+/\S*", line)
            if m:
                found.append(m.group(0))
                break
        for _ in proc.stdout:   # never let the pipe fill up
            pass

    t = threading.Thread(target=read, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while not found and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not found:
        proc.kill()
        err = proc.stderr.read() if proc.wait(10) is not None else ""
        raise SiteError(f"the server printed no URL within {timeout:.0f} s: {err.strip()[-2000:]}")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # never let the pipe fill up
    return proc, found[0]
