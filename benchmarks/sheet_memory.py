"""Peak memory of ingesting a per-mesa sheet 50x the real one, against the real one (issue 21).

A sheet is streamed and written in short batches, so ingest's peak memory should not grow with
the sheet: the goal is a ratio near 1 between the peak (max RSS) of ingesting the big sheet and
that of ingesting the real sheet, both measured in this run, each in a fresh process (the old
ingest held the whole file and its text: about 7x the file). The big sheet is the real first
sheet (24,532 rows) written N times, copy k with its mesa numbers moved by 100*k, so every row is
a distinct mesa (outside the registry from the second copy on: kept and counted apart).

    python benchmarks/sheet_memory.py               # 50x (~200 MB, 1.2 M rows): several minutes
    python benchmarks/sheet_memory.py --scale 5     # a quick look
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archive import election as election_mod  # noqa: E402

INGEST = "import sys; from archive.ingest import ingest; s = ingest([sys.argv[1]], sys.argv[2]); print(s.total())"


def write_sheet(path: Path, scale: int) -> int:
    """The real sheet written ``scale`` times (mesas moved by 100 per copy); returns its rows."""
    election = election_mod.load()
    n = 0
    with election_mod.open_text(election.registry_path) as src:
        reader = csv.reader(src)
        header = next(reader)
        rows = list(reader)                   # the real sheet: 4 MB, held once here, not in ingest
    mesa = header.index("MESA")
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(header)
        for k in range(scale):
            for r in rows:
                if k:
                    r = r[:mesa] + [str(int(r[mesa]) + 100 * k)] + r[mesa + 1:]
                w.writerow(r)
                n += 1
    return n


def measure(sheet: Path, workdir: Path) -> tuple[float, float, int]:
    """Ingest ``sheet`` in a fresh process: (peak RSS in MB, seconds, inputs it recorded)."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", INGEST, str(sheet), str(workdir)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"ingest of {sheet.name} failed (exit {proc.returncode})")
    return usage.ru_maxrss / 1024, time.perf_counter() - t, int(out.strip() or 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=50, help="how many times the real sheet (default 50)")
    ap.add_argument("--tmp", default=None, help="folder for the sheets and workdirs (default: a temporary one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        base_sheet, big_sheet = tmp / "real.csv", tmp / f"x{args.scale}.csv"
        base_rows = write_sheet(base_sheet, 1)
        big_rows = write_sheet(big_sheet, args.scale)
        base_mb, big_mb = base_sheet.stat().st_size / 2**20, big_sheet.stat().st_size / 2**20
        base_peak, base_s, base_n = measure(base_sheet, tmp / "w1")
        big_peak, big_s, big_n = measure(big_sheet, tmp / "w2")
        assert (base_n, big_n) == (base_rows, big_rows), (base_n, big_n)
        print(f"{'sheet':>12} {'rows':>10} {'file MB':>8} {'peak MB':>8} {'peak/file':>9} {'seconds':>8} {'rows/s':>8}")
        for name, rows, mb, peak, s in (("real (1x)", base_rows, base_mb, base_peak, base_s),
                                        (f"{args.scale}x", big_rows, big_mb, big_peak, big_s)):
            print(f"{name:>12} {rows:>10,} {mb:>8.1f} {peak:>8.1f} {peak / mb:>9.2f} {s:>8.1f} {rows / s:>8,.0f}")
        print(f"peak memory {args.scale}x / 1x: {big_peak / base_peak:.2f} (goal: flat, near 1.0; "
              f"the file grew {big_mb / base_mb:.0f}x); time per row {args.scale}x / 1x: "
              f"{(big_s / big_rows) / (base_s / base_rows):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
