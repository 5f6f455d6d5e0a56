"""The public site under attack, on loopback: do the public's pages keep their latency?

    python benchmarks/site_attack.py [BUNDLE] [--duration 15] [--flooders 16] [--inflight 1]

For each configuration of `testigo serve` (the default, whose visitors cannot send their own SQL,
and a private `--allow-sql` instance), starts the server on 127.0.0.1 with its response cache
off (every public request is computed: the worst case, as when attackers vary query strings),
then measures one public visitor opening pages one after another:

  idle     the visitor alone, for --duration seconds
  attack   the same visitor while --flooders clients (each with --inflight requests in flight)
           send the expensive requests of the data browser without pause: facets, sorts and
           filters on the big tables, CSV exports, full-text search, and (where the server lets
           them) custom SQL such as a cross join stopped only by the time limit

The visitor's pages: distinct mesa pages (never the same twice: uncached) and totals pages at
every level (/totales, estado, municipio, parroquia). Reported: p50/p95 per kind, idle and
under attack, their ratio (the aim: p95 under attack <= 3x idle), the public visitor's errors
(the aim: 0), and what the flooders got (answers by status: 200 done, 400 stopped by the time
limit, 403 refused, 429/503 turned away by the concurrency cap).

Without BUNDLE the demo bundle (full CSV + shipped sample) is built in a temp folder. Bounded:
at most 120 s per phase; only loopback addresses are used.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import sqlite3
import statistics
import sys
import time
import urllib.parse
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from site_load import _read_response, build_demo_bundle, cpu_seconds  # noqa: E402

MAX_PHASE_S = 120.0
#: The expensive requests an attacker sends; {n} makes each URL unique (no cache can answer).
ATTACK_PATHS = [
    "/{db}/acta_votes?_sort_desc=votes&votes__gt={n}",
    "/{db}/acta_votes?_facet=votes&_facet=acta_id&_cb={n}",
    "/{db}/totals_centro?_sort=votes&_cb={n}",
    "/{db}/totals_centro?_facet=parroquia&_facet=municipio&_cb={n}",
    "/{db}/actas?_sort=validos&validos__gt={n}",
    "/{db}/actas.csv?_stream=on&_size=max&_cb={n}",
    "/{db}/votes?_sort_desc=votes&_facet=votes&_cb={n}",
    "/{db}/centros?_search=a&_sort=electores&_cb={n}",
    "/{db}/actas?_size=max&_cb={n}",
    "/{db}/mesas?_size=max&_labels=on&_cb={n}",
]
SQL_ATTACK = "/{db}.json?sql=" + urllib.parse.quote(
    "select count(*) from acta_votes a, acta_votes b where a.votes > {n}")


def public_paths(db_path: Path, seed: int = 28) -> tuple[list[str], list[str]]:
    """(mesa pages, each once; totals pages at every level) in a fixed shuffled order."""
    conn = sqlite3.connect(f"file:{db_path}?immutable=1", uri=True)
    try:
        mesas = [r[0] for r in conn.execute("select distinct mesa_id from actas order by mesa_id")]
        areas = [f"/totales/estado/{r[0]}" for r in conn.execute("select cod_edo from estados order by 1")]
        areas += [f"/totales/municipio/{r[0]}" for r in conn.execute("select id from municipios order by 1")]
        areas += [f"/totales/parroquia/{r[0]}" for r in conn.execute("select id from parroquias order by 1")]
    finally:
        conn.close()
    rng = random.Random(seed)
    rng.shuffle(mesas)
    rng.shuffle(areas)
    totals = []
    for i, a in enumerate(areas):       # the national page every fourth time
        totals += ["/totales", a] if i % 3 == 0 else [a]
    return [f"/mesa/{m}" for m in mesas], totals


class Conn:
    """One keep-alive HTTP/1.1 connection to the server (reopened when the server closes it)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def get(self, path: str, timeout: float = 30) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                          "Accept-Encoding: identity\r\n\r\n".encode())
        try:
            status = await asyncio.wait_for(_read_response(self.reader), timeout=timeout)
        except BaseException:
            self.close()
            raise
        if status < 0:
            self.close()
        return abs(status)

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def visitor(host: str, port: int, mesas: list[str], totals: list[str], duration: float,
                  pages: int | None = None) -> dict:
    """One person opening pages one after the other: a mesa page, then a totals page, ..."""
    conn = Conn(host, port)
    lat: dict[str, list[float]] = {"mesa": [], "totales": []}
    errors: Counter = Counter()
    deadline = time.monotonic() + duration
    i = 0
    while time.monotonic() < deadline and (pages is None or i < pages) and mesas:
        kind, path = ("mesa", mesas.pop()) if i % 2 == 0 else ("totales", totals[(i // 2) % len(totals)])
        i += 1
        t = time.perf_counter()
        try:
            status = await conn.get(path)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as e:
            errors[type(e).__name__] += 1
            continue
        if status != 200:
            errors[str(status)] += 1
            continue
        lat[kind].append(time.perf_counter() - t)
    conn.close()
    return {"latencies": lat, "errors": dict(errors)}


async def flooder(host: str, port: int, paths: list[str], stop, seen: Counter, n0: int):
    conn = Conn(host, port)
    n = n0
    while not stop.is_set():
        n += 1
        try:
            seen[await conn.get(paths[n % len(paths)].replace("{n}", str(n)), timeout=60)] += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            seen["socket error"] += 1
            await asyncio.sleep(0.05)
    conn.close()


def flood_process(host: str, port: int, paths: list[str], clients: int, stop, results) -> None:
    """The attackers, in a process of their own (so that their work never delays the visitor's
    clock): ``clients`` connections sending ``paths`` back to back until ``stop`` is set."""
    async def run():
        seen: Counter = Counter()
        tasks = [asyncio.create_task(flooder(host, port, paths, stop, seen, 1000 * i)) for i in range(clients)]
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await asyncio.wait(tasks, timeout=70)
        results.put(dict(seen))
    asyncio.run(run())


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def summary(lat: list[float]) -> dict:
    if not lat:
        return {"n": 0, "p50_ms": None, "p95_ms": None}
    q = statistics.quantiles(lat, n=20, method="inclusive") if len(lat) > 1 else [lat[0]] * 19
    return {"n": len(lat), "p50_ms": round(1000 * statistics.median(lat), 1), "p95_ms": round(1000 * q[18], 1)}


async def measure(host: str, port: int, db_name: str, mesas: list[str], totals: list[str], duration: float,
                  flooders: int, inflight: int, sql: bool) -> dict:
    # warm-up: the first page of each totals level fills that level's in-memory table (a server
    # does it once in its life); neither phase should be charged for it
    levels = {}
    for t in totals:
        levels.setdefault(t.rsplit("/", 1)[0] if t.count("/") > 2 else t, t)
    await visitor(host, port, mesas[-5:], list(levels.values()), duration=60, pages=2 * len(levels))
    del mesas[-5:]
    idle = await visitor(host, port, mesas, totals, duration)
    paths = [p.replace("{db}", db_name) for p in ATTACK_PATHS + ([SQL_ATTACK] if sql else [])]
    ctx = multiprocessing.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=flood_process, args=(host, port, paths, flooders * inflight, stop, results))
    proc.start()
    t0, cpu0 = time.monotonic(), cpu_seconds(proc.pid)
    try:
        await asyncio.sleep(min(3.0, duration / 4))        # let the flood build up first
        attack = await visitor(host, port, mesas, totals, duration)
    finally:
        cpu1, dt = cpu_seconds(proc.pid), time.monotonic() - t0
        stop.set()
        seen = results.get(timeout=90) if proc.is_alive() or not results.empty() else {}
        proc.join(10)
    out = {"idle": {}, "attack": {}, "ratio_p95": {}, "ratio_p50": {},
           "public_errors": {"idle": idle["errors"], "attack": attack["errors"]},
           "flood_answers": {str(k): v for k, v in sorted(seen.items(), key=lambda kv: str(kv[0]))},
           # the attackers' own CPU: on loopback they share the server's cores (in reality they do not)
           "flood_cpu_pct": round(100 * (cpu1 - cpu0) / dt, 1) if cpu0 is not None and cpu1 is not None else None}
    for kind in ("mesa", "totales"):
        i, a = summary(idle["latencies"][kind]), summary(attack["latencies"][kind])
        out["idle"][kind], out["attack"][kind] = i, a
        for p in ("p50", "p95"):
            out[f"ratio_{p}"][kind] = round(a[f"{p}_ms"] / i[f"{p}_ms"], 2) if i[f"{p}_ms"] and a[f"{p}_ms"] else None
    return out


def run_config(bundle: Path, label: str, extra: list[str], a, mesas: list[str], totals: list[str], db_name: str) -> dict:
    from publish.site.server import start_in_subprocess, stop_process
    proc, url = start_in_subprocess(bundle, "--response-cache-mb", "0", *extra)
    try:
        u = urllib.parse.urlsplit(url)
        assert u.hostname == "127.0.0.1", url          # loopback only
        pids = [proc.pid] + children(proc.pid)        # the front and its data browser process
        cpu0, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
        res = asyncio.run(measure(u.hostname, u.port, db_name, mesas, totals, a.duration, a.flooders,
                                  a.inflight, sql="--allow-sql" in extra))
        cpu1, dt = [cpu_seconds(p) for p in pids], time.monotonic() - t0
        res["server_cpu_pct"] = [round(100 * (c1 - c0) / dt, 1) if c0 is not None and c1 is not None else None
                                 for c0, c1 in zip(cpu0, cpu1)]
    finally:
        stop_process(proc)
    res["config"] = f"testigo serve {' '.join(extra) or '(defaults)'}"
    if not a.json:
        report(label, res, a)
    return res


def report(label: str, r: dict, a) -> None:
    print(f"\n== {label}: {r['config']}  ({a.flooders} flooders x {a.inflight} in flight, "
          f"{a.duration:.0f} s per phase; CPU % of the server's processes {r.get('server_cpu_pct')})")
    print(f"   {'page':8} {'idle p50':>9} {'idle p95':>9} {'attack p50':>11} {'attack p95':>11} "
          f"{'x p50':>6} {'x p95':>6} {'n idle/attack':>14}")
    for kind in ("mesa", "totales"):
        i, t = r["idle"][kind], r["attack"][kind]
        print(f"   {kind:8} {i['p50_ms']!s:>9} {i['p95_ms']!s:>9} {t['p50_ms']!s:>11} {t['p95_ms']!s:>11} "
              f"{r['ratio_p50'][kind]!s:>6} {r['ratio_p95'][kind]!s:>6} {i['n']:>7}/{t['n']:<6}")
    errs = r["public_errors"]
    print(f"   public visitor errors: idle {sum(errs['idle'].values())} {errs['idle'] or ''}"
          f"  attack {sum(errs['attack'].values())} {errs['attack'] or ''}")
    print(f"   flood answers (status: count): {r['flood_answers']}; the flooders' own CPU: {r['flood_cpu_pct']} %")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", nargs="?", help="bundle folder (default: build the demo bundle in a temp folder)")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per phase (max 120)")
    ap.add_argument("--flooders", type=int, default=16, help="attacking clients")
    ap.add_argument("--inflight", type=int, default=1, help="requests each attacker keeps in flight")
    ap.add_argument("--config", choices=("default", "allow-sql", "both"), default="both",
                    help="which servers to attack: the default one, a --allow-sql one, or both")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    a = ap.parse_args(argv)
    a.duration = min(max(a.duration, 2.0), MAX_PHASE_S)
    a.flooders, a.inflight = max(0, min(a.flooders, 256)), max(1, min(a.inflight, 16))
    bundle = Path(a.bundle) if a.bundle else build_demo_bundle()
    from publish.site.app import SiteError, load_bundle
    try:
        b = load_bundle(bundle)
    except SiteError as e:
        sys.exit(str(e))
    mesas, totals = public_paths(b.db_path)
    configs = [("default", [])] if a.config in ("default", "both") else []
    configs += [("allow-sql", ["--allow-sql"])] if a.config in ("allow-sql", "both") else []
    results = {}
    for label, extra in configs:
        results[label] = run_config(bundle, label, extra, a, mesas, totals, b.db_name)
    worst = max((r["ratio_p95"][k] or 0) for r in results.values() for k in ("mesa", "totales"))
    errors = sum(sum(r["public_errors"]["attack"].values()) + sum(r["public_errors"]["idle"].values())
                 for r in results.values())
    if a.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"\nworst p95 ratio (attack / idle): {worst}  (aim <= 3)   public visitor errors: {errors}  (aim 0)")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
