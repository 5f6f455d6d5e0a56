"""The whole country end to end: ~30,000 acta photos plus the full CSV, ingest to site.

Synthesizes acta photos from real CSV rows (archive.render) in a realistic mix of sizes and
damage, cached between runs, then for each size (default 3,000 and 30,000 photos) runs every
step as its own child process (the real `testigo` commands) and prints:
  ingest   photos/s per core (CPU time) of the clean photos and of the degraded ones, against
           Pillow's own full decode of the same clean files (the floor; aim <= 2x)
  build    wall time against raw sha256 of the bundle's bytes (aim <= 3x) and against copying
           them (read + write: the disk's floor for writing a bundle), bundle size
  verify   wall time against the same raw sha256
  torrent  hybrid + v1 creation, against the same raw sha256
  memory   peak RSS of every step (largest process of the step, workers included; aim < 1 GiB)
  site     uncached latency (first visit to a fresh server: its response cache empty) of the mesa
           page, a photo, /totales at every level, /auditoria and its estado pages, search and
           the Datasette totals pages (aim <= 200 ms)
  audit    wall time of the audit the build computes (timed again on the bundle's database)
and the ratio of each figure between the largest and the smallest size: per-photo costs
should stay flat (linear growth), latencies and memory should not grow.

Photos (deterministic; real files are 80 KB to 3 MB, median ~260 KB): 52% messenger-forwarded
(~1000 px, ~250 KB), 8% phone originals (~1.2 MB), 2% large phone originals (~3 MB), 38%
degraded (mild 22%, moderate 12%, severe 4%: mostly unreadable, like the 3.8% the community
could not read); one in ten carries EXIF/GPS (stripped at build). Photos beyond the CSV's
24,532 mesas are second photos of a mesa (duplicates). Rendering uses every core under nice.

    python benchmarks/national.py                 # 3,000 and 30,000 (renders ~10 GB once)
    python benchmarks/national.py --quick         # 300 and 3,000 (CI-sized)
    python benchmarks/national.py --render-only   # fill the photo cache and stop

The cache lives in $TESTIGO_BENCH_CACHE or ~/.cache/testigo-bench (outside git); the run's
workdir, bundle and torrents go under it in run-N/ and are deleted after each size unless
--keep. Disk: ~0.33 MB per photo for the cache, and about twice that again while a size runs.
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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CSV_TOTALS = {"EG": 7_156_462, "NM": 3_241_461, "LM": 84_446, "JABE": 19_966, "JOBR": 21_583,
              "AE": 49_603, "CF": 12_321, "DC": 10_308, "EM": 25_570, "BERA": 37_408}
GIB = 1 << 30

# name, share, render level (archive.render.LEVELS) or parameters; "clean" ones are the aim's
PROFILES = (
    ("forwarded", 0.52, "clean"),
    ("phone", 0.08, {"scale": 1.8, "noise": 5.0, "jpeg": 90}),
    ("phone-large", 0.02, {"scale": 2.5, "noise": 7.0, "blur": 0.7, "jpeg": 92}),
    ("mild", 0.22, "mild"),
    ("moderate", 0.12, "moderate"),
    ("severe", 0.04, "severe"),
)
CLEAN = ("forwarded", "phone", "phone-large")
EXIF_EVERY = 10
SEED = 2024
NICE = 10                    # every heavy step and the rendering; the site server runs un-niced
CACHE_VERSION = "1"          # bump when PROFILES or the naming changes


# --- photos ----------------------------------------------------------------------------------------

CSV_ROWS = 24_532            # mesas of the CSV: photo i is of the mesa of photo i % CSV_ROWS


def profile_of(i: int) -> str:
    """The kind of photo ``i`` (a second photo of a mesa is of its first photo's kind)."""
    x = random.Random(f"profile-{SEED}-{i % CSV_ROWS}").random()
    for name, share, _ in PROFILES:
        if x < share:
            return name
        x -= share
    return PROFILES[0][0]


def photo_name(i: int) -> str:
    return f"{i // 1000:03d}/{i:06d}-{profile_of(i)}{'-again' if i >= CSV_ROWS else ''}.jpg"


def _exif_segment() -> bytes:
    from PIL import Image
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132] = "PhoneMaker", "Model 12", "2024:07:28 19:45:00"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (10.0, 29.0, 51.0), "W", (66.0, 54.0, 12.0)
    body = exif.tobytes()                       # b"Exif\0\0" + TIFF
    return b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body


def _render(job: tuple[int, dict, str, str | None]) -> int:
    """Worker: photo ``i`` of ``row`` to ``path`` (atomically); returns its size. A second photo
    of a mesa (``first``: the path of the first one) is that photo as a messenger passes it
    on: scaled and recompressed, so other bytes, same sheet, same numbers."""

    from PIL import Image

    from archive import election as election_mod, render
    i, row, path, first = job
    if first is not None:
        with Image.open(first) as im:
            im = im.resize((round(im.width * 0.9), round(im.height * 0.9)), Image.Resampling.BILINEAR)
            data = render.encode_jpeg(im, 82)
    else:
        election = election_mod.load()
        params = next(p for name, _, p in PROFILES if name == profile_of(i))
        payload = render.payload_for_row(row, election, random.Random(f"payload-{SEED}-{row['_line']}"))
        data = render.render_jpeg(payload, seed=SEED * 1_000_003 + i, level=params, election=election)
    if i % EXIF_EVERY == EXIF_EVERY - 3:
        data = data[:2] + _exif_segment() + data[2:]
    tmp = Path(path + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return len(data)


def ensure_photos(cache: Path, n: int, jobs: int) -> list[Path]:
    """The first ``n`` photos, rendering those not in the cache yet (all cores, progress bar)."""
    from archive import election as election_mod, render
    from archive.cli import progress_bar
    folder = cache / f"photos-v{CACHE_VERSION}"
    paths = [folder / photo_name(i) for i in range(n)]
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        rows = render.read_rows(election_mod.load())
        assert len(rows) == CSV_ROWS, f"the CSV has {len(rows)} rows, not {CSV_ROWS}: update CSV_ROWS"
        order = random.Random(SEED).sample(range(len(rows)), len(rows))
        for d in {paths[i].parent for i in missing}:
            d.mkdir(parents=True, exist_ok=True)
        first = lambda i: str(folder / photo_name(i % CSV_ROWS)) if i >= CSV_ROWS else None  # noqa: E731
        todo = [(i, rows[order[i % CSV_ROWS]], str(paths[i]), first(i)) for i in missing]
        with ProcessPoolExecutor(jobs, initializer=os.nice, initargs=(NICE,)) as pool, progress_bar(f"rendering {len(todo):,} photos")(len(todo)) as bar:
            for batch in ([t for t in todo if t[3] is None], [t for t in todo if t[3] is not None]):
                for _ in pool.map(_render, batch, chunksize=8):      # second photos after the first ones
                    bar.update(1)
    return paths


# --- steps in child processes ------------------------------------------------------------------------

@dataclass
class Step:
    wall: float
    cpu: float
    rss: int               # peak RSS of the largest process of the step (bytes)
    out: str = ""
    code: int = 0


# Forks the step from a small process and reports its peak RSS: Linux counts the RSS a process
# had when forked (here, this benchmark's) in its ru_maxrss, even across exec.
_LAUNCH = ("import os, sys\n"
           "pid = os.fork()\n"
           "if pid == 0:\n    os.execvp(sys.argv[2], sys.argv[2:])\n"
           "_, status, ru = os.wait4(pid, 0)\n"
           "open(sys.argv[1], 'w').write(f'{ru.ru_maxrss} {os.waitstatus_to_exitcode(status)}')\n")


def run_step(argv: list[str], label: str) -> Step:
    """Run ``argv`` under nice; its wall time, CPU time (workers included) and peak RSS (the largest
    of its processes: wait4 of the step, which includes its reaped workers)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        t = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCH, rss_file.name, "nice", "-n", str(NICE), *argv],
                             stdout=subprocess.PIPE, text=True)
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        maxrss, code = (int(x) for x in (rss_file.read().split() or ["0", "1"]))
    step = Step(wall, ru.ru_utime + ru.ru_stime, maxrss * 1024, out, code)
    if step.code != 0:
        sys.exit(f"{label} failed (exit {step.code}): {' '.join(argv)}\n{out[-2000:]}")
    print(f"  {label:<46} {wall:8.1f} s wall {step.cpu:8.1f} s CPU {step.rss / 2**20:7.0f} MiB peak RSS",
          flush=True)
    return step


def testigo(*args: str) -> list[str]:
    return [sys.executable, "-m", "publish", *args]


def child(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", *args]


def _pillow_decode(path: str) -> None:
    from PIL import Image
    with Image.open(path) as im:
        im.load()


def child_main(args: list[str]) -> None:
    """The baselines, run as child processes so their CPU time and memory are measured alike."""
    kind = args[0]
    if kind == "pillow":                          # pillow FILELIST JOBS: full decode of every file
        files = Path(args[1]).read_text().split("\n")
        with ProcessPoolExecutor(int(args[2])) as pool:
            list(pool.map(_pillow_decode, [f for f in files if f], chunksize=16))
    elif kind == "copy":                          # copy FOLDER DEST: every file read and written again
        src, dest = Path(args[1]), Path(args[2])
        for p in sorted(src.rglob("*")):
            if p.is_file():
                target = dest / p.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, target)
    elif kind == "sha256":                        # sha256 FOLDER: every file, as sha256sum would
        from archive import manifest
        for p in sorted(Path(args[1]).rglob("*")):
            if p.is_file():
                manifest.sha256_file(p)


# --- the site --------------------------------------------------------------------------------------

def latency(bundle: Path, rounds: int = 2) -> dict[str, list[float]]:
    """Per kind of page, the ms of each URL's first visit (best of ``rounds`` fresh servers).

    Each server first gets one other URL of each kind (templates compiled, connections open,
    the level tables /totales keeps in memory loaded): what any server has after its first
    visitors. Those first requests are reported apart as "first request to a fresh server"."""
    import httpx
    from publish.site.server import start_in_subprocess
    conn = sqlite3.connect(f"file:{next(bundle.glob('*.db'))}?immutable=1", uri=True)
    rng = random.Random(SEED)
    q = lambda sql: [r[0] for r in conn.execute(sql)]  # noqa: E731
    db = next(bundle.glob("*.db")).stem
    pick = lambda xs, k=6: rng.sample(xs, min(k, len(xs)))  # noqa: E731
    urls = {   # the first of each kind warms the server up
        "/mesa": [f"/mesa/{m}" for m in pick(q("SELECT DISTINCT mesa_id FROM actas WHERE source = 'qr'")
                                             or q("SELECT DISTINCT mesa_id FROM actas"), 21)],
        "/totales": ["/totales.json", "/totales", "/totales?lang=en"],
        **{f"/totales/{lv}": [f"/totales/{lv}/{k}" for k in pick(q(f"SELECT {col} FROM {t}"))]
           for lv, col, t in (("estado", "cod_edo", "estados"), ("municipio", "id", "municipios"),
                              ("parroquia", "id", "parroquias"), ("centro", "centro", "centros"))},
        "/images (photo from a shard)": [f"/{path}" for path in pick(q("SELECT path FROM images"))],
        "/auditoria": ["/auditoria.json", "/auditoria", "/auditoria?lang=en"],
        "/auditoria/estado": [f"/auditoria/estado/{e}" for e in pick(q("SELECT cod_edo FROM estados"), 7)],
        "/buscar": [f"/buscar?q={x}" for x in pick(q("SELECT codigo FROM centros"), 4)
                    + ["libertador", "san jose", "recreo", "maracaibo"]],
        "Datasette totals/actas": [
            f"/{db}/totals_estado", f"/{db}/totals_centro?_sort_desc=votes&_facet=estado&_facet=candidate",
            f"/{db}/totals_parroquia.json", f"/{db}/totals_municipio?candidate=EG&_sort_desc=votes",
            f"/{db}/actas", f"/{db}/mesa?id={pick(q('SELECT id FROM mesas'), 1)[0]}"],
    }
    conn.close()
    urls = {kind: us for kind, us in urls.items() if us}    # a bundle without photos has no photo kind
    best: dict[str, float] = {}
    failed: list[str] = []
    for _ in range(rounds):
        proc, base = start_in_subprocess(bundle)
        try:
            with httpx.Client(base_url=base, timeout=60) as c:
                for u in [us[0] for us in urls.values()] + [u for us in urls.values() for u in us[1:]]:
                    t = time.perf_counter()
                    r = c.get(u)
                    ms = (time.perf_counter() - t) * 1000
                    if r.status_code != 200:
                        failed.append(f"{u} {r.status_code}")
                        ms = float("inf")
                    best[u] = min(best.get(u, ms), ms)
        finally:
            proc.terminate()
            proc.wait(30)
    for f in failed:
        print(f"  NOT 200: {f}", flush=True)
    out = {kind: [best[u] for u in us[1:]] for kind, us in urls.items()}
    out["first request to a fresh server"] = [best[us[0]] for us in urls.values()]
    return out


# --- one size --------------------------------------------------------------------------------------

@dataclass
class Run:
    n: int
    clean: int = 0
    degraded: int = 0
    steps: dict[str, Step] = field(default_factory=dict)
    bundle_bytes: int = 0
    photo_bytes: int = 0
    outcomes: dict = field(default_factory=dict)
    pages: dict[str, list[float]] = field(default_factory=dict)
    audit_s: float = 0.0


def audit_seconds(bundle: Path) -> float:
    """Wall seconds of the audit the build computes (archive.audit_tables.write_audit), timed
    again on a copy of the bundle's database with its audit_* tables dropped."""
    from archive import audit_tables, election
    src = sqlite3.connect(f"file:{next(bundle.glob('*.db'))}?immutable=1", uri=True)
    conn = sqlite3.connect(":memory:")
    src.backup(conn)
    src.close()
    for t in audit_tables.AUDIT_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS [{t}]")
    t0 = time.perf_counter()
    audit_tables.write_audit(conn, election.load())
    took = time.perf_counter() - t0
    conn.close()
    return took


def run_size(n: int, photos: list[Path], cache: Path, jobs: int, keep: bool) -> Run:
    from archive import signing
    from archive.election import load
    work = cache / f"run-{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run = Run(n)
    clean = [p for i, p in enumerate(photos[:n]) if profile_of(i) in CLEAN]
    degraded = [p for i, p in enumerate(photos[:n]) if profile_of(i) not in CLEAN]
    run.clean, run.degraded = len(clean), len(degraded)
    run.photo_bytes = sum(p.stat().st_size for p in photos[:n])
    for name, files in (("clean", clean), ("degraded", degraded)):
        (work / f"{name}.txt").write_text("".join(f"{p}\n" for p in files))
    wd, bundle = work / "workdir", work / "bundle"
    key = signing.keygen(work / "key", unencrypted=True)
    print(f"\n== {n:,} photos ({len(clean):,} clean, {len(degraded):,} degraded, "
          f"{run.photo_bytes / 1e9:.2f} GB) + the full CSV, in {work}", flush=True)
    try:
        s = run.steps
        s["ingest CSV"] = run_step(testigo("ingest", str(load().registry_path), "-w", str(wd), "--json"),
                                   "ingest the CSV")
        for name in ("clean", "degraded"):
            s[f"ingest {name}"] = run_step(testigo("ingest", "--files-from", str(work / f"{name}.txt"), "-w", str(wd),
                                                   "--jobs", str(jobs), "--json"), f"ingest {name} photos")
        run.outcomes = json.loads(s["ingest degraded"].out)["workdir"]
        s["pillow decode"] = run_step(child("pillow", str(work / "clean.txt"), str(jobs)),
                                      "Pillow's decode of the clean photos (floor)")
        s["build"] = run_step(testigo("build", "-w", str(wd), "-o", str(bundle), "--key", str(key.secret)), "build")
        run.bundle_bytes = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
        s["raw sha256"] = run_step(child("sha256", str(bundle)), "raw sha256 of the bundle's bytes (baseline)")
        s["copy"] = run_step(child("copy", str(bundle), str(work / "copy")), "copy of the bundle's bytes (baseline)")
        shutil.rmtree(work / "copy")
        s["verify"] = run_step(testigo("verify", str(bundle), "--pubkey", str(key.public), "-q"), "verify")
        s["torrent"] = run_step(testigo("torrent", str(bundle)), "torrent (hybrid + v1)")
        dp = json.loads((bundle / "datapackage.json").read_text())
        if dp["testigo"]["totals"] != CSV_TOTALS:
            sys.exit(f"the bundle's national totals are not the CSV's: {dp['testigo']['totals']}")
        print("  .. site latency (first visits, best of 2 fresh servers)", file=sys.stderr, flush=True)
        run.pages = latency(bundle)
        run.audit_s = audit_seconds(bundle)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return run


# --- report ----------------------------------------------------------------------------------------

def figures(r: Run) -> dict[str, tuple[float, str]]:
    """{label: (value, how it scales)}: 'photo' a cost per photo (should grow 10x for 10x photos),
    'flat' a rate, ratio, latency or memory (should not grow)."""
    s = r.steps
    out = {
        "ingest clean, photos/s per core (CPU)": (r.clean / s["ingest clean"].cpu, "flat"),
        "ingest degraded, photos/s per core (CPU)": (r.degraded / s["ingest degraded"].cpu, "flat"),
        "Pillow decode of the clean, photos/s per core": (r.clean / s["pillow decode"].cpu, "flat"),
        "ingest clean / Pillow decode, CPU (aim <= 2)": (s["ingest clean"].cpu / s["pillow decode"].cpu, "flat"),
        "ingest clean / Pillow decode, wall": (s["ingest clean"].wall / s["pillow decode"].wall, "flat"),
        "ingest clean, wall s": (s["ingest clean"].wall, "photo"),
        "ingest degraded, wall s": (s["ingest degraded"].wall, "photo"),
        "build, wall s": (s["build"].wall, "photo"),
        "build, CPU s": (s["build"].cpu, "photo"),
        "raw sha256 of the bundle, wall s": (s["raw sha256"].wall, "photo"),
        "build / raw sha256, wall (aim <= 3)": (s["build"].wall / s["raw sha256"].wall, "flat"),
        "build / raw sha256, CPU": (s["build"].cpu / s["raw sha256"].cpu, "flat"),
        "copy of the bundle's bytes, wall s": (s["copy"].wall, "photo"),
        "build / copy of the same bytes, wall": (s["build"].wall / s["copy"].wall, "flat"),
        "verify, wall s": (s["verify"].wall, "photo"),
        "verify / raw sha256, wall": (s["verify"].wall / s["raw sha256"].wall, "flat"),
        "torrent hybrid+v1, wall s": (s["torrent"].wall, "photo"),
        "torrent / raw sha256, wall": (s["torrent"].wall / s["raw sha256"].wall, "flat"),
        "bundle size, MB": (r.bundle_bytes / 1e6, "photo"),
        "audit at build (part of build), wall s": (r.audit_s, "flat"),
        "photos ingested, MB": (r.photo_bytes / 1e6, "photo"),
    }
    for name in ("ingest CSV", "ingest clean", "ingest degraded", "build", "verify", "torrent"):
        out[f"peak RSS {name}, MiB (aim < 1024)"] = (s[name].rss / 2**20, "flat")
    for kind, ms in r.pages.items():
        if kind.startswith("first"):
            out[f"{kind}, max ms"] = (max(ms), "flat")
            continue
        out[f"{kind} uncached, median ms"] = (statistics.median(ms), "flat")
        out[f"{kind} uncached, max ms (aim <= 200)"] = (max(ms), "flat")
    return out


def report(runs: list[Run]) -> int:
    table = [figures(r) for r in runs]
    first, last = runs[0], runs[-1]
    scale = last.n / first.n
    print(f"\n{'figure':<50}" + "".join(f"{r.n:>11,}" for r in runs) + f"{'ratio':>8}{'per photo':>10}")
    for label, (v0, how) in table[0].items():
        vs = [t[label][0] for t in table]
        ratio = vs[-1] / v0 if v0 else float("nan")
        per = f"{ratio / scale:>10.2f}" if how == "photo" else ""
        print(f"{label:<50}" + "".join(f"{v:>11.1f}" for v in vs) + f"{ratio:>8.2f}{per}")
    print(f"(ratio: {last.n:,} photos over {first.n:,}; per photo = ratio / {scale:g}, 1.00 = linear. "
          f"{os.cpu_count()} cores shared with other work; steps under nice {NICE}, the site server not)")
    print(f"outcomes at {last.n:,}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(last.outcomes.items())))
    t = table[-1]
    missed = [f"{k} = {v:.1f}" for k, (v, _) in t.items() if ("aim <= 2)" in k and v > 2)
              or ("aim <= 3)" in k and v > 3) or ("aim < 1024)" in k and v >= 1024) or ("aim <= 200)" in k and v > 200)]
    print(f"aims at {last.n:,} photos: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="3000,30000", help="photo counts, comma-separated (default 3000,30000)")
    ap.add_argument("--quick", action="store_true", help="CI-sized: --sizes 300,3000")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TESTIGO_BENCH_CACHE")
                                                        or Path.home() / ".cache" / "testigo-bench"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (render, ingest)")
    ap.add_argument("--keep", action="store_true", help="keep each size's workdir, bundle and torrents")
    ap.add_argument("--render-only", action="store_true", help="fill the photo cache and stop")
    args = ap.parse_args(argv)
    sizes = sorted({int(x) for x in ("300,3000" if args.quick else args.sizes).split(",")})
    args.cache.mkdir(parents=True, exist_ok=True)
    need = 0.34e6 * max(sizes) * 3.2
    free = shutil.disk_usage(args.cache).free
    print(f"cache {args.cache}; cores {os.cpu_count()}; sizes {', '.join(f'{n:,}' for n in sizes)}")
    photos = ensure_photos(args.cache, max(sizes), args.jobs)
    if args.render_only:
        print(f"{len(photos):,} photos cached, {sum(p.stat().st_size for p in photos) / 1e9:.2f} GB")
        return 0
    if free < need - 0.34e6 * max(sizes):
        sys.exit(f"{args.cache} has {free / 1e9:.0f} GB free; a {max(sizes):,}-photo run needs about "
                 f"{need / 1e9:.0f} GB with the cache: free some space or pass --cache")
    runs = [run_size(n, photos, args.cache, args.jobs, args.keep) for n in sizes]
    return report(runs)


if __name__ == "__main__":
    sys.exit(main())
