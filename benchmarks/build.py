"""Benchmark building, verifying and hashing a bundle of all 24,532 mesas of the real CSV.

Ingests datasets/ve-2024/RESULTADOS_2024_CSV_V1.csv.gz into a temporary workdir, plus the
sample images (datasets/ve-2024/sample/, real decoding) when present and ``--photos N``
acta-like renders (the decoder is replaced by the known payloads: this measures the build,
not the QR reader; benchmarks/decode.py measures that). Then it times:
  - a cold build (strips every photo) and a warm rebuild (published-photo cache hit),
    checking that both give byte-identical files and the CSV's national totals;
  - verify_bundle;
  - manifest hashing over the bundle's bytes vs raw ``hashlib.sha256`` on the same bytes
    already in memory (ratio = manifest time / raw time; 1.0 means hashing is all it costs).

Also the copy of the bundle's bytes (read + write, the disk's floor for writing a bundle): on
a machine whose disk is slower than its sha256, a national build is bound by the disk.

    python benchmarks/build.py                 # 100 rendered photos, ~15 s
    python benchmarks/build.py --photos 0 --keep /tmp/bench
    python benchmarks/build.py --workdir W     # an existing workdir (its published-photo cache is emptied)
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive import bundle, election as election_mod, ingest as ingest_mod, manifest, published, render, signing, verify  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CSV_GZ = ROOT / "datasets" / "ve-2024" / "RESULTADOS_2024_CSV_V1.csv.gz"
SAMPLE = ROOT / "datasets" / "ve-2024" / "sample"
CSV_TOTALS = {"EG": 7_156_462, "NM": 3_241_461, "LM": 84_446, "JABE": 19_966, "JOBR": 21_583,
              "AE": 49_603, "CF": 12_321, "DC": 10_308, "EM": 25_570, "BERA": 37_408}


def _render(job: tuple[str, int, str]) -> tuple[str, str]:
    payload, seed, path = job
    data = render.render_jpeg(payload, seed=seed, level="clean", election=election_mod.load())
    Path(path).write_bytes(data)
    return hashlib.sha256(data).hexdigest(), payload


def _timed(label: str, fn, repeat: int = 1):
    """Run ``fn`` ``repeat`` times; report the best time (the least disturbed run)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    print(f"{label:<46} {best:8.3f} s")
    return out, best


def _tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=100, help="acta-like renders to add (default 100)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=5, help="hashing runs; the best is reported")
    ap.add_argument("--keep", type=Path, help="work here and keep the files (default: a temp dir)")
    ap.add_argument("--workdir", type=Path, help="build this existing workdir instead of ingesting one "
                    "(its published-photo cache is emptied for the cold build)")
    args = ap.parse_args(argv)

    base = args.keep or Path(tempfile.mkdtemp(prefix="testigo-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    wd, out1, out2 = args.workdir or base / "workdir", base / "bundle1", base / "bundle2"
    for p in (out1, out2) if args.workdir else (wd, out1, out2):
        shutil.rmtree(p, ignore_errors=True)
    election = election_mod.load()
    print(f"work folder: {base}   cpus: {os.cpu_count()}")
    if args.workdir:
        return measure(wd, base, out1, out2, args)
    _timed("ingest full CSV (24,532 rows)", lambda: ingest_mod.ingest([str(CSV_GZ)], wd))
    if SAMPLE.is_dir():
        s, _ = _timed(f"ingest {SAMPLE.name}/ (real decoding, {args.jobs} jobs)",
                      lambda: ingest_mod.ingest([str(SAMPLE)], wd, jobs=args.jobs))
        print(f"  sample outcomes: {dict(s.new)}")
    else:
        print(f"(no {SAMPLE.relative_to(ROOT)}: skipped)")
    if args.photos:
        photos = base / "photos"
        shutil.rmtree(photos, ignore_errors=True)
        photos.mkdir()
        rng = random.Random(2024)
        every = render.read_rows(election)   # beyond one photo per mesa: second photos of mesas
        rows = rng.sample(every, min(args.photos, len(every)))
        rows += rng.choices(every, k=args.photos - len(rows))
        jobs = [(render.payload_for_row(r, election, rng), i, str(photos / f"p{i:05d}.jpg"))
                for i, r in enumerate(rows)]
        with ProcessPoolExecutor(args.jobs) as pool:
            plan, _ = _timed(f"render {args.photos} acta-like photos", lambda: dict(pool.map(_render, jobs)))
        real = ingest_mod._decode_job

        def planned(job):  # the real open (type, size, dimensions), the known payload
            from archive import image
            data, name, _ = job
            img = image.open_image(data, name)
            return {"status": "ok", "qr_text": plan[hashlib.sha256(data).hexdigest()], "code": None,
                    "reason": None, "decoder": "benchmark", "step": "plan", "media_type": "image/jpeg",
                    "width": img.width, "height": img.height}
        ingest_mod._decode_job = planned
        try:
            _timed(f"ingest {args.photos} photos (decoder replaced)", lambda: ingest_mod.ingest([str(photos)], wd))
        finally:
            ingest_mod._decode_job = real

    return measure(wd, base, out1, out2, args)


def measure(wd: Path, base: Path, out1: Path, out2: Path, args) -> int:
    """Cold and warm builds of ``wd``, verify, and the baselines on the same bytes."""
    keyfiles = signing.keygen(base / "keys" / "bench", "bench", force=True, limits=signing.INTERACTIVE)
    shutil.rmtree(wd / published.CACHE_DIR, ignore_errors=True)
    r1, t_cold = _timed("build, cold (strips every photo)",
                        lambda: bundle.build_bundle(wd, out1, key=keyfiles.secret, password="bench"))
    r2, t_warm = _timed("build, warm (published-photo cache)",
                        lambda: bundle.build_bundle(wd, out2, key=keyfiles.secret, password="bench"))
    identical = _tree_hashes(out1) == _tree_hashes(out2)
    shutil.rmtree(out2)        # a national bundle twice would crowd the disk cache out
    print(f"  {r1.files} files, {r1.bytes / 1e6:.1f} MB, {r1.actas:,} actas, {r1.images} photos "
          f"({r1.images_stripped} stripped cold, {r2.images_stripped} warm); byte-identical: {identical}")
    print(f"  national totals equal the CSV's: {r1.totals == CSV_TOTALS}")
    rep, t_verify = _timed("verify_bundle (checksums, signature, SQLite)",
                           lambda: verify.verify_bundle(out1, keyfiles.public))
    print(f"  verify ok: {rep.ok} {rep.problems[:3]}")

    copy = base / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    _, t_copy = _timed("copy of the bundle's bytes (read + write)", lambda: shutil.copytree(out1, copy))
    shutil.rmtree(copy)
    files = manifest.list_files(out1).files
    blobs = [(out1 / f).read_bytes() for f in files]
    total = sum(map(len, blobs))
    _, t_raw = _timed(f"raw hashlib.sha256, in memory ({total / 1e6:.1f} MB)",
                      lambda: [hashlib.sha256(b).hexdigest() for b in blobs], args.repeat)
    _, t_seq = _timed("manifest hashing, 1 thread (from files)",
                      lambda: manifest.hash_files(out1, files, workers=1), args.repeat)
    _, t_par = _timed("manifest hashing, threads (from files)",
                      lambda: manifest.hash_files(out1, files), args.repeat)
    print(f"  raw {total / t_raw / 1e6:.0f} MB/s; manifest {total / t_seq / 1e6:.0f} MB/s "
          f"(ratio {t_seq / t_raw:.2f}), threaded {total / t_par / 1e6:.0f} MB/s (ratio {t_par / t_raw:.2f})")
    print(f"  build / raw sha256: cold {t_cold / t_raw:.1f}x, warm {t_warm / t_raw:.1f}x; build / copy of the "
          f"same bytes: cold {t_cold / t_copy:.1f}x, warm {t_warm / t_copy:.1f}x")
    print(f"SUMMARY cold build {t_cold:.2f} s, warm {t_warm:.2f} s, verify {t_verify:.2f} s, "
          f"hash ratio {t_seq / t_raw:.2f} (1 thread) / {t_par / t_raw:.2f} (threads), identical={identical}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if identical and rep.ok and r1.totals == CSV_TOTALS else 1


if __name__ == "__main__":
    sys.exit(main())
