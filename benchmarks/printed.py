"""Benchmark the printed-acta reader (archive/printed.py) on the real scans.

For every scan of a folder with a truth.csv (default: /work/shared/data/ve2024/real_scans, else
the three in tests/data/real_scans_ocr) it reads the printed acta and prints:
- the share of header fields read (acta code, UUID, print time, estado, municipio, parroquia,
  centre name and address, centre code, electors) and of voters / summary figures read;
- the share of party lines read, and how many were WRONG against the QR (truth.csv) and against
  the sheet (RESULTADOS V1: per-candidate sums where all their lines were read, válidos, nulos,
  electors): wrong must be 0, since a line whose digits and words disagree is unread, not guessed;
- each header, voters and summary field against what a person reads on the scan
  (tests/data/printed_truth/truth.json): how many read, and how many WRONG (must be 0);
- the time per strip against plain Tesseract (`tesseract IMAGE - -l spa`, default page layout)
  on the same image, in the same run, one thread each: the ratio is what the cleaning, the
  layout and the rereads cost.

    python benchmarks/printed.py                       # ~20 scans, one strip at a time
    python benchmarks/printed.py --scans DIR -n 5
    TESTIGO_ROOT=/path/to/other/checkout python benchmarks/printed.py   # its reader, this truth
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
sys.path.insert(0, os.environ.get("TESTIGO_ROOT", str(Path(__file__).resolve().parent.parent)))

import pytesseract  # noqa: E402

from archive import election as election_mod  # noqa: E402
from archive import ocr  # noqa: E402
from archive.image import open_image  # noqa: E402
from archive.printed import HEADER_FIELDS, read_image  # noqa: E402
from archive.printed_checks import candidate_votes  # noqa: E402

ROOT = Path(os.environ.get("TESTIGO_ROOT", Path(__file__).resolve().parent.parent))
SHARED = Path("/work/shared/data/ve2024/real_scans")
TRUTH = Path(__file__).resolve().parent.parent / "tests" / "data" / "printed_truth" / "truth.json"
SUMMARY = ("votos", "validos", "parciales", "nulos", "vacios", "opciones_validas", "opciones_nulas",
           "opciones_vacias")


def shown(name: str, truth: dict) -> dict | None:
    """What a person reads on the scan (tests/data/printed_truth), as flat fields."""
    t = truth.get(name)
    if t is None:
        return None
    out = {k: t[k] for k in HEADER_FIELDS if k in t}
    out.update({f"voters_{k}": v for k, v in t["voters"].items()})
    out.update(t["summary"])
    return out


def sheet_rows(election) -> dict[tuple[int, int], dict]:
    with election_mod.open_text(election.registry_path) as f:
        return {(int(r["CENTRO"]), int(r["MESA"])): r for r in csv.DictReader(f)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scans", type=Path, default=SHARED if (SHARED / "truth.csv").exists()
                    else ROOT / "tests" / "data" / "real_scans_ocr")
    ap.add_argument("-n", type=int, default=0, help="only the first N scans")
    args = ap.parse_args()
    if not ocr.available():
        print("tesseract-ocr with tesseract-ocr-spa is not installed (make install)")
        return 1
    election = election_mod.load()
    sheet = sheet_rows(election)
    with open(args.scans / "truth.csv", encoding="utf-8") as f:
        truth = list(csv.DictReader(f))
    if args.n:
        truth = truth[:args.n]
    header_read = header_total = lines_read = lines_total = 0
    table_read = table_total = 0
    wrong_qr = wrong_sheet = 0
    people = json.loads(TRUTH.read_text(encoding="utf-8"))["scans"] if TRUTH.exists() else {}
    per_field: dict[str, list[int]] = {}
    wrong_shown: list[tuple] = []
    ours, plain = [], []
    print(f"{'scan':34} {'hdr':>5} {'lines':>6} {'wrongQR':>7} {'wrongSh':>7} {'ours s':>7} {'plain s':>7}")
    for t in truth:
        data = (args.scans / t["file"]).read_bytes()
        im = open_image(data, t["file"])
        start = time.perf_counter()
        p = read_image(im)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        pytesseract.image_to_string(im, lang="spa")
        plain.append(time.perf_counter() - start)
        h = sum(p.header[k] is not None for k in HEADER_FIELDS)
        header_read += h
        header_total += len(HEADER_FIELDS)
        figures = list(p.voters.values()) + list(p.summary.values())
        table_read += sum(c.value is not None for c in figures)
        table_total += len(figures)
        values = p.line_values()
        lines_read += sum(v is not None for v in values)
        lines_total += 38
        wq = ws = 0
        if t["qr_text"]:
            counts = [int(c) for c in t["qr_text"].split("!")[1].split(",")]
            wq = sum(v is not None and v != c for v, c in zip(values, counts))
            row = sheet.get((int(t["centro"]), int(t["mesa"])))
            if row:
                for cand in election.candidates:
                    v = candidate_votes(p).get(cand.code)
                    ws += v is not None and v != int(row[cand.csv_column])
                s = p.summary_values()
                ws += s.get("validos") is not None and s["validos"] != int(row["VOTOS_VALIDOS"])
                ws += s.get("nulos") is not None and s["nulos"] != int(row["VOTOS_NULOS"])
                ws += p.header["electors"] is not None and p.header["electors"] != int(row["RE"])
        wrong_qr += wq
        wrong_sheet += ws
        if (want := shown(t["file"], people)) is not None:
            got = {k: p.header.get(k) for k in HEADER_FIELDS}
            got.update({f"voters_{k}": c.value for k, c in p.voters.items()})
            got.update({k: c.value for k, c in p.summary.items()})
            for k, w in want.items():
                cell = per_field.setdefault(k, [0, 0])
                cell[1] += 1
                if got.get(k) is not None:
                    cell[0] += 1
                    if got[k] != w:
                        wrong_shown.append((t["file"], k, got[k], w))
        print(f"{t['file'][:34]:34} {h:>2}/{len(HEADER_FIELDS)} {sum(v is not None for v in values):>3}/38 "
              f"{wq:>7} {ws:>7} {ours[-1]:>7.1f} {plain[-1]:>7.1f}", flush=True)
    n = len(truth)
    print(f"\n{n} scans from {args.scans}")
    print(f"header fields read:      {header_read}/{header_total} = {header_read / header_total:.1%}")
    print(f"voters+summary read:     {table_read}/{table_total} = {table_read / table_total:.1%}")
    print(f"party lines read:        {lines_read}/{lines_total} = {lines_read / lines_total:.1%}")
    print(f"wrong vs QR:             {wrong_qr}   (must be 0)")
    print(f"wrong vs sheet:          {wrong_sheet}   (must be 0)")
    if per_field:
        print("read per field (against what a person reads, tests/data/printed_truth):")
        print("  " + ", ".join(f"{k} {r}/{n}" for k, (r, n) in per_field.items()))
        print(f"wrong vs the person:     {len(wrong_shown)}   (must be 0) {wrong_shown or ''}")
    print(f"time per strip:          {statistics.mean(ours):.1f} s (median {statistics.median(ours):.1f}); "
          f"plain Tesseract on the same image {statistics.mean(plain):.1f} s; "
          f"ratio {statistics.mean(ours) / statistics.mean(plain):.2f}x")
    return 0 if wrong_qr == 0 and wrong_sheet == 0 and not wrong_shown else 1


if __name__ == "__main__":
    sys.exit(main())
