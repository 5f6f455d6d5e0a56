"""Benchmark the QR reader on acta-like renders of real CSV rows at each degradation level.

Per level it prints the decoded rate (text equal to the rendered payload), wrong texts (a
decode whose text differs from the truth: must stay 0), invalid/unreadable counts, the mean
(and 95th percentile) time of ``reading.decode_bytes`` per image, the mean time Pillow alone
takes to open and decode the same JPEG (the floor) and the ratio; then the same for the
two-call path ``decode(open_image(data))`` (o+d), which loads full resolution first. Goals:
>= 99% decoded and 0 wrong on "moderate"; within 2x the Pillow floor on "clean".

    python benchmarks/decode.py                  # 60 images per level, ~1-2 minutes
    python benchmarks/decode.py -n 200 --levels moderate --keep /tmp/renders

Beside the rendered levels, the row "real" is the real acta scans of
``../shared/data/ve2024/real_scans`` (their ``truth.csv`` holds the text each must give, none for
the strip cut through its QR), found beside the checkout or above it, or named with ``--real DIR``.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from archive import election as election_mod  # noqa: E402
from archive import image, reading, render  # noqa: E402


def _render_one(job: tuple[str, str, int, str]) -> str:
    payload, level, seed, path = job
    data = render.render_jpeg(payload, seed=seed, level=level, election=election_mod.load())
    Path(path).write_bytes(data)
    return path


def _best(fn, repeat: int) -> tuple[object, float]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def _pillow_floor(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as im:
        im.load()


def _real_scans_dir() -> Path | None:
    here = Path(__file__).resolve().parent.parent
    return next((p / "shared" / "data" / "ve2024" / "real_scans" for p in here.parents
                 if (p / "shared" / "data" / "ve2024" / "real_scans" / "truth.csv").is_file()), None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--per-level", type=int, default=60, help="images per level (default 60)")
    ap.add_argument("--levels", default=",".join(render.LEVELS), help="comma-separated levels")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--repeat", type=int, default=3,
                    help="time each decode and each Pillow open+decode this many times, keep the best")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes for rendering")
    ap.add_argument("--keep", metavar="DIR", help="write the renders here instead of a temp dir")
    ap.add_argument("--show-failures", action="store_true", help="list files not decoded")
    ap.add_argument("--real", metavar="DIR", default=None,
                    help="real scans with a truth.csv (default: ../shared/data/ve2024/real_scans when present)")
    ap.add_argument("--no-real", action="store_true", help="rendered levels only")
    args = ap.parse_args(argv)

    levels = [lv.strip() for lv in args.levels.split(",") if lv.strip()]
    election = election_mod.load()
    rng = random.Random(args.seed)
    rows = render.read_rows(election)
    tmp = None
    if args.keep:
        out = Path(args.keep)
        out.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="testigo-bench-")
        out = Path(tmp.name)

    jobs, truth = [], {}
    for level in levels:
        for i, row in enumerate(rng.sample(rows, args.per_level)):
            payload = render.payload_for_row(row, election, rng)
            path = str(out / f"{level}_{i:04d}_{row['CENTRO']}_{int(row['MESA']):02d}.jpg")
            jobs.append((payload, level, args.seed * 7919 + len(jobs), path))
            truth[path] = (level, payload)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(_render_one, jobs, chunksize=4))
    print(f"rendered {len(jobs)} images in {time.perf_counter() - t0:.1f}s ({out})")


    real = None if args.no_real else (Path(args.real) if args.real else _real_scans_dir())
    if real is not None:
        with open(real / "truth.csv", encoding="utf-8", newline="") as f:
            for t in csv.DictReader(f):
                path = str(real / t["file"])
                jobs.append((None, "real", 0, path))
                truth[path] = ("real", t["qr_text"] or None)
        levels = levels + ["real"]
    reading.decode_bytes(Path(jobs[0][3]).read_bytes(), election)  # warm up imports and caches
    results: dict[str, list] = {lv: [] for lv in levels}
    for _, level, _, path in jobs:
        data = Path(path).read_bytes()
        r, t_dec = _best(lambda: reading.decode_bytes(data, election, path), args.repeat)
        _, t_pil = _best(lambda: _pillow_floor(data), args.repeat)
        r2, t_two = _best(lambda: reading.decode(image.open_image(data, path), election), args.repeat)
        assert (r2.status, r2.qr_text) == (r.status, r.qr_text), (path, r, r2)
        results[level].append((path, r, t_dec, t_pil, t_two))

    print(f"\n{'level':<9} {'n':>4} {'decoded':>8} {'wrong':>5} {'invalid':>7} {'unread':>6} "
          f"{'ms/img':>7} {'p95 ms':>7} {'pillow':>7} {'ratio':>6} {'o+d ms':>7} {'ratio':>6}  steps")
    for level in levels:
        rs = results[level]
        n = len(rs)
        ok = sum(1 for p, r, *_ in rs if r.status == "ok" and r.qr_text == truth[p][1])
        wrong = sum(1 for p, r, *_ in rs if r.qr_text is not None and r.qr_text != truth[p][1])
        inval = sum(1 for _, r, *_ in rs if r.status == "invalid")
        unread = sum(1 for _, r, *_ in rs if r.status == "unreadable")
        t_dec = [x[2] for x in rs]
        t_pil = [x[3] for x in rs]
        t_two = [x[4] for x in rs]
        mean_dec, mean_pil = statistics.mean(t_dec) * 1000, statistics.mean(t_pil) * 1000
        mean_two = statistics.mean(t_two) * 1000
        p95 = sorted(t_dec)[min(n - 1, int(n * 0.95))] * 1000
        steps = Counter(f"{r.decoder}:{r.step}" for _, r, *_ in rs if r.status == "ok")
        top = ", ".join(f"{k} {v}" for k, v in steps.most_common(4))
        print(f"{level:<9} {n:>4} {100 * ok / n:>7.1f}% {wrong:>5} {inval:>7} {unread:>6} "
              f"{mean_dec:>7.1f} {p95:>7.1f} {mean_pil:>7.1f} {mean_dec / mean_pil:>6.2f} "
              f"{mean_two:>7.1f} {mean_two / mean_pil:>6.2f}  {top}")
        if args.show_failures:
            for p, r, *_ in rs:
                if r.status != "ok":
                    print(f"    {Path(p).name}: {r.status} {r.code}")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
