"""The site's own SQL threads: the public's pages never wait behind the data browser's queries.

Datasette runs every query (its table pages, facets, CSV exports, visitors' SQL) on one shared
pool of ``num_sql_threads`` threads: a few expensive requests fill it and every page waits in
the queue behind them. The site's pages (home, buscar, mesa, centro, totales, comprobar) run
their small, indexed queries here instead, on threads and connections of their own.
"""
from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

from datasette.database import QueryInterrupted
from datasette.utils import sqlite_timelimit

#: Threads for the site's own queries; they are short, so two keep a core busy between them.
SITE_THREADS = 2
#: No site query takes this long on an indexed bundle; a slower one is a bug to see, not to wait for.
SITE_TIME_LIMIT_MS = 3000


class SitePool:
    """Read-only connections to the bundle's database, one per thread of a small pool."""

    def __init__(self, datasette, db_name: str, threads: int = SITE_THREADS,
                 time_limit_ms: int = SITE_TIME_LIMIT_MS):
        self.datasette = datasette
        self.db_name = db_name
        self.time_limit_ms = time_limit_ms
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="testigo-site-sql")
        self.local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.datasette.get_database(self.db_name).connect()   # immutable, read-only
            self.datasette._prepare_connection(conn, self.db_name)     # same functions as Datasette's
            self.local.conn = conn
        return conn

    def _run(self, sql: str, params) -> list[dict]:
        conn = self._connection()
        with sqlite_timelimit(conn, self.time_limit_ms):
            try:
                cur = conn.execute(sql, params if params is not None else {})
                cols = [d[0] for d in cur.description or ()]
                return [dict(zip(cols, row)) for row in cur.fetchall()]
            except sqlite3.OperationalError as e:
                if e.args == ("interrupted",):
                    raise QueryInterrupted(e, sql, params)
                raise

    def _call(self, fn):
        conn = self._connection()
        with sqlite_timelimit(conn, self.time_limit_ms):
            return fn(conn)

    async def call(self, fn):
        """``fn(conn)`` on one of the site's connections (a reader shared with the command line)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._call, fn)

    async def query(self, sql: str, params=None) -> list[dict]:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._run, sql, params)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
