"""Load test of `testigo transcribe` behind Debian's nginx on loopback: many volunteers saving at once.

    python benchmarks/transcribe_load.py [--volunteers 10,100,300] [--duration 30] [--think 2-6]
                                         [--photos 600] [--cache DIR]

Builds (once, kept in --cache) a workdir of --photos photos in the transcription queue: real
PNGs whose QR is not an acta (``invalid``, the real decoder reads them). For each crowd size it
takes a fresh copy, invites that many volunteers (``archive.volunteers``), starts
``python -m publish.transcribe.cli --workdir W --port 0`` and Debian's nginx in front of it with
deploy/nginx-transcribe.conf (rendered for loopback: plain HTTP on a free port, the rest
as shipped), and lets every volunteer, from their own loopback address (127.0.0.N, so nginx's
per-address limits apply as on the internet), enter by their link and then, for --duration
seconds: ask for a photo, "type" for a random --think time, save an entry (4 in 5 right, 1 in 5
off by a vote, so photos go to review too). Bounded in time (--duration, at most 300 s per
crowd) and in volunteers (at most 1,000); only loopback.

Prints per crowd size: saves, saves/s, p50/p95/max save latency (POST to redirect), errors
(non-3xx answers and socket errors), entries lost (saves the server confirmed that are not in
state.db: must be 0), and p50/p95 as ratios against the smallest crowd measured in the same run.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
MAX_DURATION, MAX_VOLUNTEERS = 300.0, 1000
CONF = ROOT / "deploy" / "nginx-transcribe.conf"


def build_workdir(cache: Path, photos: int) -> Path:
    """A workdir whose queue holds ``photos`` photos (QR read, not an acta: ``invalid``)."""
    import segno

    from archive.ingest import ingest
    wd = cache / f"workdir-{photos}"
    if (wd / "state.db").exists():
        return wd
    inbox = cache / f"inbox-{photos}"
    inbox.mkdir(parents=True, exist_ok=True)
    for i in range(photos):
        segno.make(f"foto de prueba {i}: no es un acta", micro=False).save(str(inbox / f"p{i:05d}.png"),
                                                                          scale=4, border=4)
    t = time.monotonic()
    summary = ingest([str(inbox)], wd, jobs=2)
    print(f"built the workdir: {dict(summary.new)} in {time.monotonic() - t:.0f} s ({wd})", flush=True)
    return wd


def nginx_conf(tmp: Path, port: int, upstream: str) -> Path:
    """deploy/nginx-transcribe.conf for loopback: the HTTPS server on plain HTTP at ``port``."""
    from nginx import MAIN, check_config, substitute
    import os
    site = CONF.read_text()
    start = site.index("server {\n    listen 80;")
    end = site.index("\n}\n", site.index("location / { return 301")) + 3
    site = site[:start] + site[end:]                     # no redirect server on loopback
    site = substitute(site, "listen 443 ssl;", f"listen 127.0.0.1:{port};")
    site = "".join(line for line in site.splitlines(keepends=True)
                   if "[::]" not in line and "ssl_" not in line and "http2" not in line)
    site = substitute(site, "server 127.0.0.1:8002;", f"server {upstream};")
    (tmp / "testigo.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(MAIN.format(tmp=tmp, user=user).replace("worker_connections 512",
                                                                            "worker_connections 4096"))
    checked = check_config(tmp)
    if checked.returncode != 0:
        sys.exit(f"nginx -t refused the configuration:\n{checked.stderr}")
    return tmp / "nginx.conf"


def start_nginx(tmp: Path, upstream: str):
    from nginx import NGINX, free_port
    if NGINX is None:
        sys.exit("nginx is not installed (apt-get install nginx)")
    port = free_port()
    nginx_conf(tmp, port, upstream)
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import socket
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("nginx did not start")


def entry(i: int, wrong: bool) -> dict:
    """A valid entry for photo number ``i`` (a mesa outside the registry: municipio 99 of estado 24)."""
    lines = [(i * 7 + k * 3) % 50 for k in range(38)]      # the paper form: 38 party lines and the summary
    if wrong:
        lines[0] += 1
    validos = sum(lines)
    return {"centro": str(249900000 + i), "mesa": "1", "votos": str(validos + 2), "validos": str(validos),
            "parciales": "0", "nulos": "2", "vacios": "0", **{f"l_{k}": str(v) for k, v in enumerate(lines, 1)}}


async def volunteer(n: int, base: str, link: str, clock: dict, think: tuple[float, float], out: dict) -> None:
    """One volunteer: enters by their link, waits for everyone to be in, then saves until the end."""
    import httpx
    transport = httpx.AsyncHTTPTransport(local_address=f"127.0.{1 + n // 250}.{1 + n % 250}", verify=clock["tls"])
    async with httpx.AsyncClient(base_url=base, transport=transport, timeout=30) as c:
        try:
            r = await c.get(link, follow_redirects=True)
            clock["entered"] += 1
            if clock["entered"] == clock["crowd"]:
                clock["stop"] = time.monotonic() + clock["duration"]
                clock["go"].set()
            if r.status_code != 200:
                out["errors"] += 1
                return
            await clock["go"].wait()
            await asyncio.sleep(random.uniform(0, think[0]))      # not all in the same instant
            stop = clock["stop"]
            while time.monotonic() < stop:
                r = await c.get("/siguiente", follow_redirects=True)
                m = re.search(r"/foto/([0-9a-f]{64})$", str(r.url))
                if r.status_code != 200 or not m:
                    out["idle"] += 1
                    if r.status_code != 200:
                        out["errors"] += 1
                    await asyncio.sleep(2)
                    continue
                token = re.search(r'name="csrftoken" value="([^"]+)"', r.text).group(1)
                await asyncio.sleep(random.uniform(*think))
                if time.monotonic() >= stop:
                    break
                i = int(out["index"][m.group(1)])
                data = {"csrftoken": token, **entry(i, random.random() < 0.2)}
                t = time.perf_counter()
                r = await c.post(f"/foto/{m.group(1)}", data=data)
                dt = time.perf_counter() - t
                if r.status_code in (302, 303) and "hecho=" in r.headers.get("location", ""):
                    out["saved"] += 1
                    out["latency"].append(dt)
                elif r.status_code in (302, 303):   # decided meanwhile / already entered: not an entry
                    out["refused"] += 1
                else:
                    out["errors"] += 1
        except (httpx.HTTPError, OSError):
            out["errors"] += 1


def index_of(wd: Path) -> dict[str, int]:
    """photo sha256 -> its number (which numbers a right entry has)."""
    db = sqlite3.connect(wd / "state.db")
    try:
        rows = db.execute("SELECT sha256, locator FROM inputs WHERE kind = 'image'").fetchall()
    finally:
        db.close()
    return {sha: int(re.search(r"p(\d+)\.png", loc).group(1)) for sha, loc in rows}


def run_crowd(base_wd: Path, tmp: Path, n: int, duration: float, think: tuple[float, float]) -> dict:
    from archive import known_answers, volunteers
    from archive.workdir import Workdir
    from publish.site import server as site_mod
    wd = tmp / f"wd-{n}"
    shutil.copytree(base_wd, wd)
    with Workdir(wd, create=False) as w:
        known_answers.configure(w.db, share_=0)
        links = [volunteers.LINK_PATH + i.token for i in volunteers.invite(w.db, "Carga", n)]
    server, url = site_mod.start_command(["publish.transcribe.cli", "--workdir", str(wd), "--port", "0",
                                                  "--forwarded-allow-ips", "127.0.0.1"])
    ng_tmp = tmp / f"nginx-{n}"
    ng_tmp.mkdir()
    try:
        nginx, base = start_nginx(ng_tmp, url.split("//")[1].split("/")[0])
    except BaseException:           # nginx refused to start: never leave the server behind
        server.terminate()
        server.wait(10)
        raise
    out = {"saved": 0, "refused": 0, "errors": 0, "idle": 0, "latency": [], "index": index_of(wd)}
    try:
        async def crowd():
            import ssl
            clock = {"crowd": n, "entered": 0, "duration": duration, "go": asyncio.Event(),
                     "tls": ssl.create_default_context()}   # one context: making 300 takes seconds
            await asyncio.gather(*[volunteer(k, base, links[k], clock, think, out) for k in range(n)])
            return clock
        t0 = time.monotonic()
        clock = asyncio.run(crowd())
        elapsed = duration
        print(f"  ({n} volunteers entered by their links in {clock['stop'] - duration - t0:.1f} s)", flush=True)
    finally:
        nginx.terminate()
        nginx.wait(10)
        server.terminate()
        server.wait(10)
    db = sqlite3.connect(wd / "state.db")
    stored = db.execute("SELECT count(*) FROM transcription_entries").fetchone()[0]
    decided = db.execute("SELECT count(*) FROM transcription_decisions").fetchone()[0]
    db.close()
    lat = sorted(out["latency"]) or [float("nan")]
    return {"volunteers": n, "saves": out["saved"], "per_s": out["saved"] / elapsed, "refused": out["refused"],
            "p50": statistics.median(lat), "p95": lat[min(len(lat) - 1, int(0.95 * len(lat)))], "max": lat[-1],
            "errors": out["errors"], "lost": out["saved"] - stored, "decided": decided, "idle": out["idle"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--volunteers", default="10,100,300", help="crowd sizes, comma-separated (first = baseline)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of saving per crowd size")
    ap.add_argument("--think", default="2-6", help="seconds a volunteer types before saving, min-max")
    ap.add_argument("--photos", type=int, default=600, help="photos in the queue")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "testigo-transcribe-load",
                    help="where the base workdir is built once and kept")
    a = ap.parse_args(argv)
    sizes = [int(x) for x in a.volunteers.split(",")]
    if not all(1 <= s <= MAX_VOLUNTEERS for s in sizes) or not 1 <= a.duration <= MAX_DURATION:
        sys.exit(f"volunteers 1..{MAX_VOLUNTEERS}, duration 1..{MAX_DURATION:.0f} s")
    think = tuple(float(x) for x in a.think.split("-"))
    base_wd = build_workdir(a.cache, a.photos)
    rows = []
    with tempfile.TemporaryDirectory(prefix="testigo-transcribe-load-") as tmp:
        for n in sizes:
            r = run_crowd(base_wd, Path(tmp), n, a.duration, think)
            rows.append(r)
            print(f"  {n} volunteers: {r['saves']} saves, {r['errors']} errors, {r['lost']} lost, "
                  f"{r['refused']} refused (photo decided meanwhile), {r['idle']} times nothing to do", flush=True)
    b = rows[0]
    print(f"\ntestigo transcribe behind nginx, loopback; {a.duration:.0f} s per crowd, think {a.think} s")
    print(f"{'volunteers':>10} {'saves':>6} {'saves/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
          f"{'p50 x':>6} {'p95 x':>6} {'errors':>6} {'lost':>5} {'decided':>7}")
    for r in rows:
        print(f"{r['volunteers']:>10} {r['saves']:>6} {r['per_s']:>8.1f} {r['p50'] * 1000:>8.0f} "
              f"{r['p95'] * 1000:>8.0f} {r['max'] * 1000:>8.0f} {r['p50'] / b['p50']:>6.1f} {r['p95'] / b['p95']:>6.1f} "
              f"{r['errors']:>6} {r['lost']:>5} {r['decided']:>7}")
    if any(r["lost"] for r in rows):
        sys.exit("ENTRIES LOST")


if __name__ == "__main__":
    main()
