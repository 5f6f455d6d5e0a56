"""SHA256SUMS: the checksum manifest of a bundle, written and checked.

The file is in ``sha256sum -c`` format so that anyone can check a bundle with coreutils and no
testigo at all; it is the one file the signature covers, so every other file is covered through
it. Modelled on BagIt manifests: checking reports every missing, extra and altered file instead
of stopping at the first, because a reviewer needs the whole list.
"""
from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from .errors import TestigoError

MANIFEST = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.minisig"
# Files that cannot be listed in the manifest: the manifest itself and its signature.
NOT_IN_MANIFEST = frozenset({MANIFEST, SIGNATURE})

# THE single place that decides which paths in a bundle directory are not bundle content.
# ".pad/": BitTorrent v2 / hybrid clients (BEP 47) may write zero-filled padding files there
# when a bundle is downloaded by torrent. Add here, with the reason, and nowhere else.
IGNORED_TOP_DIRS = (".pad",)

BLOCK_SIZE = 1 << 20  # 1 MiB reads: large enough that hashing, not syscalls, dominates
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


class ManifestError(TestigoError):
    """SHA256SUMS cannot be written or parsed (bad path, malformed line)."""


def is_ignored(relpath: str) -> bool:
    """True for paths that are not bundle content (see IGNORED_TOP_DIRS). Posix relative path."""
    top = relpath.split("/", 1)[0]
    return top in IGNORED_TOP_DIRS


def ignored_problems(root: str | os.PathLike, relpaths: Iterable[str]) -> list[str]:
    """Why some ignored files are NOT harmless (same policy as publish/torrent.pad_dir_problems).

    A ``.pad/`` file is tolerated only as BEP 47 padding: directly in .pad/, named by its size
    in decimal, every byte zero. Zeros carry no data, so nothing unsigned can hide there.
    """
    problems = []
    zeros = bytes(BLOCK_SIZE)
    for rel in relpaths:
        parts = rel.split("/")
        if len(parts) != 2 or not parts[1].isdigit():
            problems.append(f"{rel}: only zero-filled pad files named by their size may be in "
                            f"{parts[0]}/ (BitTorrent padding)")
            continue
        with open(Path(root) / rel, "rb") as f:
            while chunk := f.read(BLOCK_SIZE):
                if chunk != zeros[:len(chunk)]:
                    problems.append(f"{rel}: pad file contains non-zero bytes, so it is not BitTorrent "
                                    "padding and not part of the signed bundle")
                    break
    return problems


def sha256_file(path: str | os.PathLike, block_size: int = BLOCK_SIZE) -> str:
    """sha256 hex of a file, streamed through one reused buffer (constant memory)."""
    h = hashlib.sha256()
    buf = bytearray(block_size)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def check_relpath(relpath: str) -> None:
    """Refuse paths that sha256sum would escape or that could point outside the bundle."""
    p = PurePosixPath(relpath)
    if (not relpath or relpath.startswith("/") or "\\" in relpath or "\n" in relpath
            or "\r" in relpath or any(part in ("", ".", "..") for part in relpath.split("/"))
            or p.is_absolute()):
        raise ManifestError(f"unsafe or unsupported path in a bundle: {relpath!r}")


@dataclass
class Listing:
    """What is in a bundle directory: content files, ignored files, and things that cannot be."""

    files: list[str] = field(default_factory=list)      # posix relative paths, sorted
    ignored: list[str] = field(default_factory=list)
    symlinks: list[str] = field(default_factory=list)   # never followed, always a problem
    special: list[str] = field(default_factory=list)    # fifos, sockets, devices


def list_files(root: str | os.PathLike) -> Listing:
    """Every regular file under ``root`` except SHA256SUMS and its signature, sorted by path."""
    root = Path(root)
    out = Listing()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        keep = []
        for d in sorted(dirnames):
            full = Path(dirpath) / d
            if full.is_symlink():
                out.symlinks.append(rel_dir + d)
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            rel = rel_dir + name
            full = Path(dirpath) / name
            if full.is_symlink():
                out.symlinks.append(rel)
            elif not full.is_file():
                out.special.append(rel)
            elif is_ignored(rel):
                out.ignored.append(rel)
            elif rel not in NOT_IN_MANIFEST:
                out.files.append(rel)
    out.files.sort()
    out.ignored.sort()
    out.symlinks.sort()
    out.special.sort()
    return out


def hash_files(root: str | os.PathLike, relpaths: Iterable[str], workers: int | None = None,
               progress: Callable[[int], None] | None = None,
               hasher: Callable[[str], str] | None = None) -> dict[str, str]:
    """sha256 of each relative path. Threads help: hashlib releases the GIL on large updates.

    ``hasher(rel) -> hex``: hashes a file in place of ``sha256_file`` (verify uses it to check a
    photo shard's members in the same read).
    """
    root = Path(root)
    relpaths = list(relpaths)
    workers = workers or min(8, os.cpu_count() or 1)

    def one(rel: str) -> tuple[str, str]:
        return rel, hasher(rel) if hasher is not None else sha256_file(root / rel)

    out: dict[str, str] = {}

    def collect(results: Iterable[tuple[str, str]]) -> None:
        for rel, digest in results:
            out[rel] = digest
            if progress:
                progress(1)

    if workers <= 1 or len(relpaths) < 2:
        collect(map(one, relpaths))
    else:
        with ThreadPoolExecutor(workers) as pool:
            collect(pool.map(one, relpaths))
    return out


def format_manifest(hashes: dict[str, str]) -> bytes:
    """The SHA256SUMS bytes: ``<hex>  <path>\\n`` per file, sorted by path (byte order)."""
    lines = []
    for rel in sorted(hashes):
        check_relpath(rel)
        lines.append(f"{hashes[rel]}  {rel}\n")
    return "".join(lines).encode("utf-8")


def write_manifest(root: str | os.PathLike, workers: int | None = None,
                   progress: Callable[[int], None] | None = None, *,
                   known: dict[str, str] | None = None) -> dict[str, str]:
    """Hash every file under ``root`` and write ``root/SHA256SUMS``. Returns {path: sha256}.

    ``known``: {path: sha256} the caller has just computed while writing those files (the
    build's photo shards), so GBs are not read twice. Refuses a directory holding symlinks or
    special files: a bundle is plain files only.
    """
    root = Path(root)
    listing = list_files(root)
    if listing.symlinks or listing.special:
        raise ManifestError(f"{root} holds symlinks or special files, which a bundle may not "
                            f"contain: {', '.join(listing.symlinks + listing.special)}")
    for rel in listing.files:
        check_relpath(rel)
    present = set(listing.files)
    known = {rel: digest for rel, digest in (known or {}).items() if rel in present}
    hashes = hash_files(root, [rel for rel in listing.files if rel not in known], workers, progress)
    hashes.update(known)
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_bytes(format_manifest(hashes))
    os.replace(tmp, root / MANIFEST)
    return hashes


def parse_manifest(data: bytes) -> tuple[dict[str, str], list[str]]:
    """Parse SHA256SUMS bytes into ({path: sha256}, [problems]); malformed lines are problems."""
    entries: dict[str, str] = {}
    problems: list[str] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return {}, [f"{MANIFEST} is not UTF-8 text ({e})"]
    if text and not text.endswith("\n"):
        problems.append(f"{MANIFEST} does not end with a newline (it was truncated or edited)")
    previous = None
    for number, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), 1):
        m = _LINE.match(line)
        if not m:
            problems.append(f"{MANIFEST} line {number} is not '<sha256>  <path>': {line[:80]!r}")
            continue
        digest, rel = m.groups()
        try:
            check_relpath(rel)
        except ManifestError as e:
            problems.append(f"{MANIFEST} line {number}: {e}")
            continue
        if rel in NOT_IN_MANIFEST or is_ignored(rel):
            problems.append(f"{MANIFEST} line {number} lists {rel}, which cannot be in the manifest")
            continue
        if rel in entries:
            problems.append(f"{MANIFEST} line {number} lists {rel} a second time")
            continue
        if previous is not None and rel < previous:
            problems.append(f"{MANIFEST} line {number}: {rel} is out of order (lines must be sorted by path)")
        previous = rel
        entries[rel] = digest
    return entries, problems


@dataclass
class ManifestCheck:
    """Result of checking a directory against its SHA256SUMS; every kind of failure listed."""

    entries: dict[str, str] = field(default_factory=dict)
    malformed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)       # symlinks, special files
    ignored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        out = list(self.malformed)
        out += [f"missing file: {p} (listed in {MANIFEST}, not in the bundle)" for p in self.missing]
        out += [f"extra file: {p} (in the bundle, not listed in {MANIFEST})" for p in self.extra]
        out += [f"checksum mismatch: {p} (its content is not what {MANIFEST} lists)" for p in self.mismatched]
        out += [f"not a regular file: {p} (a bundle holds plain files only)" for p in self.unsafe]
        return out


def check_manifest(root: str | os.PathLike, workers: int | None = None,
                   progress: Callable[[int], None] | None = None, *,
                   listing: Listing | None = None,
                   hasher: Callable[[str], str] | None = None) -> ManifestCheck:
    """Check every file under ``root`` against ``root/SHA256SUMS``: missing, extra, altered.

    ``listing``: ``list_files(root)`` when the caller already has it (saves a second walk).
    ``hasher``: as for :func:`hash_files`.
    """
    root = Path(root)
    result = ManifestCheck()
    path = root / MANIFEST
    if not path.is_file() or path.is_symlink():
        result.malformed.append(f"{MANIFEST} is missing: nothing can be checked")
        return result
    result.entries, result.malformed = parse_manifest(path.read_bytes())
    listing = listing if listing is not None else list_files(root)
    result.ignored = listing.ignored
    result.malformed += ignored_problems(root, listing.ignored)
    result.unsafe = listing.symlinks + listing.special
    present = set(listing.files)
    result.missing = sorted(set(result.entries) - present)
    result.extra = sorted(present - set(result.entries))
    to_hash = sorted(set(result.entries) & present)
    hashes = hash_files(root, to_hash, workers, progress, hasher)
    result.mismatched = [p for p in to_hash if hashes[p] != result.entries[p]]
    return result
