"""The browser app (`testigo mirror --app`) against Debian's nginx on loopback: what each page
kind costs a first-time visitor (requests, bytes, time), and what writing the app costs.

The app and the data are served by two nginx (deploy/nginx-app.conf: Range and CORS) on two
origins, as on GitHub Pages + an Internet Archive item. Each page is opened in a new Chromium
context (cold cache) and counted in the data host's access log until the page is drawn, its
photo shown and the signature checked. Prints per page kind: requests, bytes, time, against
  - the budget (issue 22: a mesa or totals page within 15 requests and 300 KB of data, beyond
    the app's own files and the photo),
  - baselines measured in the same run: the whole database fetched with one GET from the same
    nginx (what an app without range reads would pay: bytes and time), and opening the app's
    own files (index.html and the vendored libraries, from the app host).
Writing the app is timed against hard-linking the bundle's files (its floor: the app links them).

    python benchmarks/app.py                     # the full-CSV bundle (24,532 mesas), built once
    python benchmarks/app.py --bundle B          # any bundle, e.g. national.py --keep's (with photos)

The full-CSV bundle is built under $TESTIGO_BENCH_CACHE or ~/.cache/testigo-bench (outside git).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

BUDGET_REQUESTS, BUDGET_BYTES = 15, 300_000


def full_csv_bundle(cache: Path) -> Path:
    out = cache / "app-fullcsv" / "B"
    if (out / "SHA256SUMS").is_file():
        return out
    work = out.parent
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    exe = [sys.executable, "-m", "publish"]
    csv = ROOT / "datasets" / "ve-2024" / "RESULTADOS_2024_CSV_V1.csv.gz"
    subprocess.run([*exe, "keygen", str(work / "k"), "--no-password"], check=True, capture_output=True)
    subprocess.run([*exe, "ingest", str(csv), "--workdir", str(work / "wd")], check=True, capture_output=True)
    subprocess.run([*exe, "build", "--workdir", str(work / "wd"), "--out", str(out), "--key", str(work / "k")],
                   check=True, capture_output=True)
    return out


def sample(db: Path, n: int, seed: int = 22) -> dict[str, list[str]]:
    """Routes of each page kind: random mesas (those with a photo first), their centres, areas."""
    conn = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    rng = random.Random(seed)
    photo = [r[0] for r in conn.execute("SELECT DISTINCT a.mesa_id FROM actas a WHERE a.image_sha256 IS NOT NULL")]
    mesas = rng.sample(photo, min(n, len(photo))) if photo else []
    if len(mesas) < n:
        rest = [r[0] for r in conn.execute("SELECT id FROM mesas WHERE outside_registry = 0")]
        mesas += rng.sample(rest, n - len(mesas))
    estados = [r[0] for r in conn.execute("SELECT DISTINCT cod_edo FROM totals_estado")]
    municipios = [r[0] for r in conn.execute("SELECT DISTINCT municipio_id FROM totals_municipio")]
    parroquias = [r[0] for r in conn.execute("SELECT DISTINCT parroquia_id FROM totals_parroquia")]
    words = [r[0].split()[-1] for r in conn.execute("SELECT DISTINCT municipio FROM centros WHERE municipio IS NOT NULL")]
    # a word of a centre's printed name (the printed table, read by OCR), where the bundle has any
    try:
        names = [w for (name,) in conn.execute("SELECT DISTINCT centre_name FROM printed WHERE centre_name IS NOT NULL "
                                               "AND centro IS NOT NULL ORDER BY centre_name")
                 for w in name.split() if len(w) > 4 and w.isalpha()]
    except sqlite3.Error:
        names = []
    audited = [r[0] for r in conn.execute("SELECT key FROM audit_pages WHERE key > 0")] \
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_pages'").fetchone() else []
    conn.close()
    return {
        "home": ["/"],
        "mesa": [f"/mesa/{m}" for m in mesas],
        "centro": [f"/centro/{m.split('.')[0]}" for m in mesas],
        "search (code)": [f"/buscar?q={m.split('.')[0]}" for m in mesas],
        "search (place)": [f"/buscar?q={w}" for w in rng.sample(words, min(n, len(words)))],
        "totals (national)": ["/totales"],
        "totals (estado)": [f"/totales/estado/{k}" for k in rng.sample(estados, min(n, len(estados)))],
        "totals (municipio)": [f"/totales/municipio/{k}" for k in rng.sample(municipios, min(n, len(municipios)))],
        "totals (parroquia)": [f"/totales/parroquia/{k}" for k in rng.sample(parroquias, min(n, len(parroquias)))],
        "comprobar": ["/comprobar"],
        **({"search (printed name)": [f"/buscar?q={w}" for w in rng.sample(sorted(set(names)), min(n, len(set(names))))]}
           if names else {}),
        **({"audit (national)": ["/auditoria"],
            "audit (estado)": [f"/auditoria/estado/{k}" for k in rng.sample(audited, min(n, len(audited)))]}
           if audited else {}),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, help="a built bundle (default: the full-CSV one, built once)")
    ap.add_argument("--pages", type=int, default=5, help="pages of each kind (random mesas and areas)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TESTIGO_BENCH_CACHE")
                                                       or Path.home() / ".cache" / "testigo-bench"))
    args = ap.parse_args(argv)
    from conftest import CHROMIUM, CHROMIUM_FLAGS
    from nginx import StaticNginx
    from playwright.sync_api import sync_playwright
    from publish.app.writer import write_app

    bundle = args.bundle or full_csv_bundle(args.cache)
    db = next(bundle.glob("*.db"))
    tmp = Path(tempfile.mkdtemp(prefix="testigo-app-bench-"))
    servers = []
    try:
        # writing the app, against hard-linking the bundle's files
        t = time.perf_counter()
        shutil.copytree(bundle, tmp / "linked", copy_function=os.link)
        t_link = time.perf_counter() - t
        t = time.perf_counter()
        report = write_app(bundle, tmp / "same-origin")
        t_write = time.perf_counter() - t
        data = StaticNginx(tmp / "ngx-data", bundle)
        servers.append(data)
        write_app(bundle, tmp / "apps" / "app", [data.url + "/"])
        app = StaticNginx(tmp / "ngx-app", tmp / "apps")
        servers.append(app)
        print(f"bundle {bundle} ({db.stat().st_size / 1e6:.1f} MB database)")
        print(f"write --app: {t_write:.2f} s, {report.app_files} files besides the bundle's {report.bundle_files} "
              f"({report.bytes / 1e6:.1f} MB); hard-linking the bundle: {t_link:.3f} s (x{t_write / max(t_link, 1e-6):.0f})")
        # baseline: the whole database in one GET, from the same nginx
        t = time.perf_counter()
        with urllib.request.urlopen(f"{data.url}/{db.name}") as r:
            whole = len(r.read())
        t_whole = time.perf_counter() - t
        print(f"baseline: the whole database in one GET: {whole / 1e6:.1f} MB in {t_whole:.2f} s")
        routes = sample(db, args.pages)
        rows = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
            own = []
            for kind, paths in routes.items():
                figures = []
                for route in paths:
                    ctx = browser.new_context()
                    page = ctx.new_page()
                    app_before = len(app.requests())
                    before = len(data.requests())
                    t = time.perf_counter()
                    page.goto(f"{app.url}/app/index.html#{route}")
                    page.wait_for_selector("#view[data-ready='1']", timeout=120_000)
                    page.wait_for_selector("#signature[data-ok]", timeout=120_000)
                    if page.locator("#images figure.t-photo").count():
                        page.wait_for_selector("#images figure.t-photo[data-verified]", timeout=120_000)
                    elapsed = time.perf_counter() - t
                    seen = data.requests()[before:]
                    photo = [r for r in seen if r[1].startswith("/images/")]
                    rest = [r for r in seen if r not in photo]
                    figures.append((len(rest), sum(r[3] for r in rest), elapsed, sum(r[3] for r in photo), len(photo)))
                    own.append(sum(r[3] for r in app.requests()[app_before:]))
                    ctx.close()
                n = [f[0] for f in figures]
                b = [f[1] for f in figures]
                s = [f[2] for f in figures]
                rows.append((kind, len(figures), statistics.median(n), max(n), statistics.median(b), max(b),
                             statistics.median(s), max(s), max(f[3] for f in figures),
                             max(f[4] for f in figures)))
            browser.close()
        print(f"the app's own files (cached by browsers after the first page): {statistics.median(own) / 1e6:.2f} MB a cold visit")
        print(f"\n{'page kind':20} {'n':>2} {'requests med/max':>17} {'KB med/max':>15} {'s med/max':>12} "
              f"{'KB/whole db':>11} {'t/whole GET':>11} {'photo KB (req)':>14}  budget")
        over = 0
        for kind, k, nm, nx, bm, bx, sm, sx, photo, photo_n in rows:
            ok = nx <= BUDGET_REQUESTS and bx <= BUDGET_BYTES
            budgeted = kind.startswith(("mesa", "totals", "audit", "search"))
            over += budgeted and not ok
            print(f"{kind:20} {k:>2} {nm:>8.0f} / {nx:<6} {bm / 1e3:>7.0f} / {bx / 1e3:<5.0f} {sm:>5.2f} / {sx:<5.2f} "
                  f"{bx / whole:>11.4f} {sm / t_whole:>11.2f} {photo / 1e3:>9.0f} ({photo_n})  "
                  f"{('ok' if ok else 'OVER') if budgeted else '-'}")
        print(f"\nbudget (mesa, totals, audit and search pages): {BUDGET_REQUESTS} requests, {BUDGET_BYTES // 1000} KB of data each; "
              f"{'all within' if not over else f'{over} page kind(s) over'}")
        return 0
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
