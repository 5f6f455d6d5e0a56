"""Load test of the public site on loopback: requests/s and errors for a crowd's lookups.

    python benchmarks/site_load.py BUNDLE [--duration 10] [--connections 32] [--tool auto|wrk|python]
    python benchmarks/site_load.py --url http://127.0.0.1:8001/ --bundle BUNDLE   (a server already running)

Starts ``python -m publish.site.cli BUNDLE --port 0`` on 127.0.0.1 (unless --url), then runs,
each bounded in time and in requests:
  mesa-json-first   every one of --mesas distinct mesa pages once (/mesa/ID.json): the cost of
                    an answer not yet in the response cache (Datasette + SQLite)
  mesa-json         the same mesas in rotation for --duration s: cached lookups
  totals-json       /totales.json for --duration s
  totals-view       Datasette's own /DB/totals_nacional.json?_shape=array for --duration s
The load generator is Debian's ``wrk`` when installed (C, one thread, keep-alive), else a
Python asyncio HTTP/1.1 keep-alive client. Only loopback addresses are accepted as targets.
Reports requests/s, errors (non-2xx and socket errors), latency percentiles and the server's
CPU use (what limits it: a single Python process is one core at 100%).
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_DURATION = 120.0
MAX_REQUESTS = 2_000_000


# --- server ---------------------------------------------------------------------------------------

def build_demo_bundle() -> Path:
    """Without a bundle argument: the demo's bundle (full CSV + shipped sample) in a temp dir."""
    from archive import election
    from archive.bundle import build_bundle
    from archive.ingest import ingest

    tmp = Path(tempfile.mkdtemp(prefix="testigo-site-load-"))
    e = election.load()
    ingest([str(e.registry_path)] + sorted(str(p) for p in (e.folder / "sample").glob("*.jpg")), tmp / "work")
    build_bundle(tmp / "work", tmp / "bundle")
    print(f"built the demo bundle (full CSV + sample) in {tmp / 'bundle'}", flush=True)
    return tmp / "bundle"


def start_server(bundle: Path) -> tuple[subprocess.Popen, str]:
    from publish.site.server import SiteError, start_in_subprocess
    try:
        return start_in_subprocess(bundle)
    except SiteError as e:
        sys.exit(str(e))


def cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# --- Python load generator ---------------------------------------------------------------------------

async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, chunked, close = None, False, False
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
        elif k == b"connection" and b"close" in v.lower():
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()
        close = True
    return -status if close else status


async def python_load(host: str, port: int, paths: list[str], duration: float, connections: int,
                      max_requests: int) -> dict:
    deadline = time.monotonic() + duration
    counter = {"n": 0, "errors": 0, "non2xx": 0}
    latencies: list[float] = []
    idx = [0]

    async def worker():
        reader = writer = None
        while time.monotonic() < deadline and counter["n"] < max_requests:
            path = paths[idx[0] % len(paths)]
            idx[0] += 1
            counter["n"] += 1
            t = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept-Encoding: identity\r\n\r\n".encode())
                status = await asyncio.wait_for(_read_response(reader), timeout=10)
                if status < 0:
                    writer.close()
                    reader = writer = None
                    status = -status
                if not 200 <= status < 400:
                    counter["non2xx"] += 1
                latencies.append(time.perf_counter() - t)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError):
                counter["errors"] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*[worker() for _ in range(connections)])
    elapsed = time.monotonic() - t0
    latencies.sort()
    pct = lambda p: round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else None
    done = len(latencies)
    return {"requests": done, "seconds": round(elapsed, 2), "rps": round(done / elapsed, 1) if elapsed else 0,
            "errors": counter["errors"] + counter["non2xx"], "socket_errors": counter["errors"],
            "non_2xx": counter["non2xx"], "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


# --- wrk ------------------------------------------------------------------------------------------------

LUA = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


def wrk_load(url: str, paths: list[str], duration: float, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % ", ".join(json.dumps(p) for p in paths))
        script = f.name
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
                              "--timeout", "10s", "-s", script, url.rstrip("/") + paths[0]],
                             capture_output=True, text=True, timeout=duration + 60).stdout
    finally:
        os.unlink(script)
    num = lambda pat, default=0: float(m.group(1)) if (m := re.search(pat, out)) else default
    def ms(label):
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return None
        return round(float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)], 2)
    sock = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = int(num(r"Non-2xx or 3xx responses: (\d+)"))
    requests = int(num(r"(\d+) requests in"))
    return {"requests": requests, "seconds": num(r"requests in ([\d.]+)s"), "rps": num(r"Requests/sec:\s+([\d.]+)"),
            "errors": sock + non2xx, "socket_errors": sock, "non_2xx": non2xx, "p50_ms": ms("50"), "p99_ms": ms("99")}


# --- main ---------------------------------------------------------------------------------------------------

def pick_mesas(bundle: Path, n: int, seed: int = 28) -> tuple[str, list[str]]:
    """(database name, n mesa ids with actas) of the database the site serves from ``bundle``."""
    from publish.site.app import SiteError, load_bundle
    try:
        b = load_bundle(bundle)
    except SiteError as e:
        sys.exit(str(e))
    conn = sqlite3.connect(f"file:{b.db_path}?immutable=1", uri=True)
    ids = [r[0] for r in conn.execute("select distinct mesa_id from actas order by mesa_id")]
    conn.close()
    random.Random(seed).shuffle(ids)
    return b.db_name, ids[:n]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", nargs="?", help="bundle folder (also used to pick mesa ids); default: build the demo bundle in a temp folder")
    ap.add_argument("--bundle", dest="bundle_opt", help=argparse.SUPPRESS)
    ap.add_argument("--url", help="a server already running on loopback (default: start one)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per timed scenario (max 120)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--mesas", type=int, default=300, help="distinct mesa pages in the rotation")
    ap.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    a = ap.parse_args(argv)
    if a.bundle or a.bundle_opt:
        bundle = Path(a.bundle or a.bundle_opt)
        if not bundle.is_dir():
            ap.error(f"{bundle}: no such bundle folder")
    else:
        bundle = build_demo_bundle()
    duration = min(max(a.duration, 1.0), MAX_DURATION)
    tool = a.tool if a.tool != "auto" else ("wrk" if shutil.which("wrk") else "python")
    if tool == "wrk" and not shutil.which("wrk"):
        ap.error("wrk is not installed (apt-get install wrk), use --tool python")
    db_name, mesas = pick_mesas(bundle, a.mesas)
    proc = None
    if a.url:
        url = a.url
    else:
        proc, url = start_server(bundle)
    u = urllib.parse.urlsplit(url)
    host = u.hostname or ""
    if not (host == "localhost" or ipaddress.ip_address(host).is_loopback):
        ap.error("only loopback targets (127.0.0.0/8, ::1, localhost) are allowed")
    port = u.port or 80
    pid = proc.pid if proc else None
    results = {"tool": tool, "connections": a.connections, "duration_s": duration, "url": url,
               "mesas": len(mesas), "scenarios": {}}

    def run(name, paths, timed=True):
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        if timed and tool == "wrk":
            r = wrk_load(url, paths, duration, a.connections)
        else:
            r = asyncio.run(python_load(host, port, paths, duration if timed else MAX_DURATION,
                                        min(a.connections, len(paths)) if not timed else a.connections,
                                        MAX_REQUESTS if timed else len(paths)))
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        if cpu0 is not None and cpu1 is not None:
            r["server_cpu_pct"] = round(100 * (cpu1 - cpu0) / (t1 - t0), 1)
        results["scenarios"][name] = r
        if not a.json:
            print(f"{name:18} {r['rps']:>9.1f} req/s  {r['requests']:>8} requests  errors {r['errors']:>4}  "
                  f"p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  server CPU {r.get('server_cpu_pct', '?')}%",
                  flush=True)

    try:
        mesa_paths = [f"/mesa/{m}.json" for m in mesas]
        if not a.json:
            print(f"target {url}  tool {tool}  {a.connections} connections  {duration:.0f} s per timed run  "
                  f"{len(mesas)} mesas", flush=True)
        run("mesa-json-first", mesa_paths, timed=False)
        run("mesa-json", mesa_paths)
        run("totals-json", ["/totales.json"])
        run("totals-view", [f"/{db_name}/totals_nacional.json?_shape=array"])
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    if a.json:
        print(json.dumps(results, indent=2))
    errors = sum(s["errors"] for s in results["scenarios"].values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
