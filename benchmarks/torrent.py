"""Benchmark torrent creation and a loopback transfer of a bundle-shaped folder.

Builds a temporary bundle-like folder (one database-like file and many 100-300 KB "photos"
of random bytes, with a real SHA256SUMS; ``--size-mb`` in total), warms the page cache, then:
  - raw hashing: ``hashlib`` SHA-1 and SHA-256 over the same bytes read from disk, one pass
    each, single thread -- what a v1+v2 torrent has to compute at minimum;
  - make_torrent, hybrid (v1+v2) and v1-only: MB/s, and ratio = raw time / torrent time
    (above 1.0 means libtorrent's threaded hashing beats a single-threaded hashlib pass);
  - a transfer from a libtorrent seeder to a libtorrent fetch over 127.0.0.1 (DHT/LSD/UPnP/
    NAT-PMP off, peer added by hand), hybrid torrent, MB/s: TCP only (--no-utp), then with
    uTP allowed (the default, which libtorrent picks first; its LEDBAT congestion control is
    slow on loopback).
Every step is bounded (the transfer times out after ``--timeout`` seconds).

    python benchmarks/torrent.py                    # 256 MB, under two minutes
    python benchmarks/torrent.py --size-mb 1024
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive import manifest  # noqa: E402
from publish import fetch as fetch_mod, seeder as seeder_mod, torrent as T  # noqa: E402

LOCAL = dict(dht=False, lsd=False, upnp=False, natpmp=False)


def make_bundle(root: Path, size_mb: int, seed: int = 1) -> int:
    rnd = random.Random(seed)
    (root / "images").mkdir(parents=True)
    total = size_mb * 1024 * 1024
    db = total // 4
    block = rnd.randbytes(1 << 20)
    with open(root / "ve-2024.db", "wb") as f:          # varied, incompressible-looking bytes
        for i in range(db >> 20):
            f.write(hashlib.sha256(i.to_bytes(8, "big")).digest() + block[32:])
    written = (db >> 20) << 20
    n = 0
    while written < total:
        size = rnd.randint(100_000, 300_000)
        data = hashlib.sha256(n.to_bytes(8, "big")).digest() + rnd.randbytes(size - 32)
        (root / "images" / f"{hashlib.sha256(data).hexdigest()}.jpg").write_bytes(data)
        written += size
        n += 1
    for name, text in (("datapackage.json", "{}\n"), ("README.md", "# bench\n"), ("LICENSE", "CC0\n"),
                       ("minisign.pub", "untrusted comment: bench\nRWQ\n")):
        (root / name).write_text(text)
    manifest.write_manifest(root)
    (root / "SHA256SUMS.minisig").write_text("untrusted comment: bench\nRWQ\n")
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def raw_hash(root: Path) -> float:
    t = time.perf_counter()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            s1, s2 = hashlib.sha1(), hashlib.sha256()
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    s1.update(chunk)
                    s2.update(chunk)
    return time.perf_counter() - t


def transfer(bundle: Path, torrent: Path, dl: Path, utp: bool, timeout: float) -> float | None:
    """Seconds from starting the download to having every piece verified, or None on timeout."""
    net = dict(LOCAL, utp=utp)
    with seeder_mod.Seeder(bundle, [torrent], "127.0.0.1:0", **net) as seeder:
        stop = threading.Event()
        th = threading.Thread(target=seeder.run, kwargs=dict(stop=stop, interval=0.5), daemon=True)
        th.start()
        try:
            t = time.perf_counter()
            fetch_mod.fetch(torrent, dl, [f"127.0.0.1:{seeder.port}"], listen="127.0.0.1:0", timeout=timeout,
                    verify=False, **net)
            return time.perf_counter() - t
        except T.FetchError:
            return None
        finally:
            stop.set()
            th.join(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=256, help="bundle size in MB (default 256)")
    ap.add_argument("--timeout", type=float, default=120, help="transfer time limit in seconds")
    ap.add_argument("--keep", type=Path, help="build the folder here and keep it")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="testigo-bench-torrent-"))
    work = args.keep or tmp
    try:
        bundle = work / "bench-bundle"
        if bundle.exists():
            shutil.rmtree(bundle)
        t = time.perf_counter()
        size = make_bundle(bundle, args.size_mb)
        files = sum(1 for p in bundle.rglob("*") if p.is_file())
        mb = size / 1e6
        print(f"bundle: {files} files, {mb:.1f} MB (built in {time.perf_counter() - t:.1f} s)")
        raw_hash(bundle)                                   # warm the page cache
        raw = min(raw_hash(bundle) for _ in range(2))
        print(f"{'raw sha1+sha256 (hashlib, 1 thread)':<42} {raw:7.2f} s  {mb / raw:8.1f} MB/s")
        infos = {}
        for kind in ("hybrid", "v1"):
            t = time.perf_counter()
            infos[kind] = T.make_torrent(bundle, work / f"bench.{kind}.torrent", kind=kind)
            dt = time.perf_counter() - t
            i = infos[kind]
            print(f"{'make_torrent ' + kind:<42} {dt:7.2f} s  {mb / dt:8.1f} MB/s  ratio raw/torrent {raw / dt:5.2f}"
                  f"  ({i.piece_length // 1024} KiB pieces, {i.num_pieces} pieces, "
                  f"{i.path.stat().st_size / 1e6:.2f} MB .torrent, {len(i.pad_files)} pad files)")

        for label, utp in (("TCP", False), ("uTP allowed, the default", True)):
            dl = work / f"dl-{'utp' if utp else 'tcp'}"
            shutil.rmtree(dl, ignore_errors=True)
            dt = transfer(bundle, infos["hybrid"].path, dl, utp, args.timeout)
            if dt is None:
                print(f"{'loopback transfer, ' + label:<42} timed out after {args.timeout:.0f} s")
                continue
            ok = manifest.check_manifest(dl / bundle.name).ok
            print(f"{'loopback transfer, ' + label:<42} {dt:7.2f} s  {mb / dt:8.1f} MB/s"
                  f"  (libtorrent -> libtorrent; SHA256SUMS {'OK' if ok else 'MISMATCH'})")
            if not ok:
                sys.exit(1)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
