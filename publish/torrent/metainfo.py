"""BitTorrent distribution of a signed bundle: the .torrent files (seeding: ``seeder.py``; fetching: ``fetch.py``).

What gets published, and why (see tests/test_torrent.py for the evidence):

* ``B.torrent`` -- a **hybrid v1+v2** torrent (BEP 52). v2 gives every file its own SHA-256
  merkle root, so a mirror can check any single file and identical files dedupe across
  releases. Its v1 half needs BEP 47 pad files (``.pad/<size>``) so that every file starts on
  a piece boundary; pad files are zeros that pad-aware clients never download or write.
* ``B.v1.torrent`` -- a plain **v1-only** (BEP 3) companion with **no pad files**.
  Debian 12's packaged clients cannot use the hybrid torrent at all: transmission 3.00 refuses
  to open it (its bencode parser rejects the zero-length dictionary keys that BEP 52's
  ``file tree`` requires) and aria2 1.36 drops those keys when it re-encodes the info
  dictionary, so it announces and handshakes with a wrong info-hash that no seeder knows
  (it connects again and again and transfers nothing). Both download the v1 companion fine.
  The two torrents are two swarms over the same files; ``seed`` serves both at once.

Both are deterministic: same bundle bytes -> same .torrent bytes and info-hashes. No creation
date, no file modification times or attributes, files in sorted (byte-wise) order, a fixed
creator string, and a piece size that depends only on the file sizes (``choose_piece_size``).
The torrent's name is the bundle directory's name unless ``name=`` says otherwise.

Library functions do the work; ``publish/torrent_cli.py`` holds the thin click commands.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

import libtorrent as lt

from archive.errors import TestigoError

# --------------------------------------------------------------------------------------------
# errors


class TorrentError(TestigoError):
    """Base class for everything the torrent commands report."""


class NotABundleError(TorrentError):
    """The directory is not a complete bundle (no SHA256SUMS, unlisted or missing files...)."""


class TorrentFileError(TorrentError):
    """A .torrent file or magnet link that cannot be read, or an output path that is unsafe."""


class ListenError(TorrentError):
    """A --listen/--peer address that is malformed, or a port that cannot be opened."""


class BundleMismatchError(TorrentError):
    """The local bundle does not match the torrent: ``seed`` refuses to serve it.

    ``bad_files`` maps each bundle-relative path to what is wrong with it (``missing``,
    ``wrong size ...``, ``content differs``); ``bad_pieces`` lists the failing piece indices
    of ``torrent``.
    """

    def __init__(self, message: str, *, torrent: str, bad_files: dict[str, str], bad_pieces: list[int]):
        super().__init__(message)
        self.torrent = torrent
        self.bad_files = bad_files
        self.bad_pieces = bad_pieces


class FetchError(TorrentError):
    """A download that failed or timed out."""


class FetchVerifyError(FetchError):
    """The download completed but the bundle did not verify (``problems`` says why)."""

    def __init__(self, message: str, *, path: Path, problems: list[str]):
        super().__init__(message)
        self.path = path
        self.problems = problems


# --------------------------------------------------------------------------------------------
# constants and small helpers

KINDS = ("hybrid", "v1")
DEFAULT_LISTEN = "0.0.0.0:6881,[::]:6881"   # IPv4 and IPv6, like libtorrent's own default
CREATOR = "testigo"                 # fixed: a version here would change the .torrent bytes
PAD_DIR = ".pad"                    # where BEP 47 pad files live (libtorrent: .pad/<size>)

MIN_PIECE = 16 * 1024               # BEP 52 minimum, and libtorrent's
MAX_PIECE = 16 * 1024 * 1024
MAX_PIECES = 1 << 16                # piece-size policy target, see choose_piece_size()


def mib(n: float) -> str:
    return f"{n / 1048576:.1f} MiB"


def lt_flags(*names: str) -> int:
    v = 0
    for n in names:
        v |= int(getattr(lt.torrent_flags, n))
    return v


def choose_piece_size(sizes: Iterable[int]) -> int:
    """The piece-size policy: a pure function of the file sizes, so torrents are reproducible.

    The smallest power of two from 16 KiB to 16 MiB for which the hybrid layout (every file
    padded to a piece boundary) has at most 65,536 pieces. Small pieces keep the per-file
    padding small; the cap bounds the piece hashes (20 bytes a piece for v1) in the .torrent.
    Since the photos travel in zip shards a bundle is a few dozen files, so the .torrent is
    mostly piece hashes (a few MB for a 13 GB national bundle, at 256 KiB pieces).
    Changing this function changes every info-hash: treat it as part of the format.
    """
    sizes = [s for s in sizes if s > 0]
    piece = MIN_PIECE
    while piece < MAX_PIECE and sum(-(-s // piece) for s in sizes) > MAX_PIECES:
        piece *= 2
    return piece


# --------------------------------------------------------------------------------------------
# the bundle's files


def pad_dir_problems(bundle_dir: str | os.PathLike) -> list[str]:
    """Problems with a top-level ``.pad/`` folder, or [] if it is absent or harmless.

    Policy (shared with ``verify``, which applies it through ``archive.manifest``): a
    BitTorrent client that does not understand BEP 47 writes the pad files of a padded v1
    torrent to disk as ``.pad/<N>``. Such a folder is ignored -- it is not bundle content --
    when it holds only regular files directly in ``.pad/``, named by a decimal number, whose
    bytes are all zero: zeros carry no data, so nothing unsigned can hide there. Anything else
    in it (non-zero bytes, other names, subfolders, symlinks) is a problem.
    """
    from archive import manifest

    listing = manifest.list_files(bundle_dir)
    unsafe = [p for p in listing.symlinks + listing.special if manifest.is_ignored(p)]
    return [f"{p}: not a regular file" for p in unsafe] + manifest.ignored_problems(bundle_dir, listing.ignored)


def bundle_files(bundle_dir: str | os.PathLike) -> list[str]:
    """The files a torrent of this bundle carries: sorted POSIX relative paths.

    That is every file listed in SHA256SUMS plus SHA256SUMS and its .minisig (when present).
    Refuses a directory that is not a complete bundle: no SHA256SUMS, a listed file missing,
    a file not listed (it would be published unsigned), symlinks or special files, or a
    ``.pad/`` folder that is not pure padding (see ``pad_dir_problems``; pure padding is
    skipped). Contents are not hashed here: run ``testigo verify`` before publishing.
    """
    from archive import manifest

    root = Path(bundle_dir)
    if not root.is_dir():
        raise NotABundleError(f"{root} is not a directory")
    sums = root / manifest.MANIFEST
    if not sums.is_file() or sums.is_symlink():
        raise NotABundleError(f"{root} is not a bundle: it has no {manifest.MANIFEST} file (build it with `testigo build`)")
    listed, malformed = manifest.parse_manifest(sums.read_bytes())
    if malformed:
        raise NotABundleError(f"{sums}: " + "; ".join(malformed[:5]))
    listing = manifest.list_files(root)
    problems = [f"not a regular file: {p}" for p in listing.symlinks + listing.special]
    problems += manifest.ignored_problems(root, listing.ignored)
    present = set(listing.files)
    missing = sorted(set(listed) - present)
    unlisted = sorted(present - set(listed))
    problems += [f"missing (listed in {manifest.MANIFEST}): {p}" for p in missing]
    problems += [f"not listed in {manifest.MANIFEST} (would be published unsigned): {p}" for p in unlisted]
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise NotABundleError(f"{root} is not a complete bundle: " + "; ".join(problems[:10]) + more)
    files = set(listing.files) | {manifest.MANIFEST}
    if (root / manifest.SIGNATURE).is_file():
        files.add(manifest.SIGNATURE)
    return sorted(files, key=lambda r: r.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# making torrents


@dataclass(frozen=True)
class TorrentInfo:
    """What ``make_torrent`` wrote (or, for ``read_torrent``, what a .torrent holds)."""

    kind: str                       # "hybrid" or "v1"
    name: str                       # the torrent's top folder (normally the bundle dir name)
    info_hash_v1: str | None        # hex SHA-1 (present for hybrid and v1)
    info_hash_v2: str | None        # hex SHA-256 (hybrid only)
    magnet: str
    files: tuple[str, ...]          # bundle-relative paths, pad files excluded
    pad_files: tuple[str, ...]      # ".pad/<size>" entries of the v1 layout (hybrid only)
    piece_length: int
    num_pieces: int
    total_size: int                 # bytes of real files
    trackers: tuple[str, ...] = ()
    web_seeds: tuple[str, ...] = ()
    path: Path | None = None


def magnet_link(name: str, v1: str | None, v2: str | None, trackers: Sequence[str] = (), web_seeds: Sequence[str] = ()) -> str:
    """A magnet link with btih (v1) and/or btmh (v2, multihash 0x12 0x20) plus dn/tr/ws."""
    q = []
    if v1:
        q.append(f"xt=urn:btih:{v1}")
    if v2:
        q.append(f"xt=urn:btmh:1220{v2}")
    q.append("dn=" + urllib.parse.quote(name, safe=""))
    q += ["tr=" + urllib.parse.quote(t, safe="") for t in trackers]
    q += ["ws=" + urllib.parse.quote(w, safe="") for w in web_seeds]
    return "magnet:?" + "&".join(q)


def load_torrent(path: Path) -> "lt.add_torrent_params":
    """Parse a .torrent file. Its trackers and web seeds are in the result, not in ``.ti``."""
    try:
        return lt.load_torrent_buffer(path.read_bytes())
    except (OSError, RuntimeError) as e:
        raise TorrentFileError(f"cannot read torrent {path}: {e}") from None


def describe(atp: "lt.add_torrent_params", path: Path | None) -> TorrentInfo:
    ti = atp.ti
    fs = ti.layout()
    ih = ti.info_hashes()
    v1 = str(ih.v1) if ih.has_v1() else None
    v2 = str(ih.v2) if ih.has_v2() else None
    prefix = ti.name() + "/"
    files, pads, total = [], [], 0
    for i in range(fs.num_files()):
        rel = fs.file_path(i).replace(os.sep, "/")
        rel = rel[len(prefix):] if rel.startswith(prefix) else rel
        if fs.file_flags(i) & lt.file_storage.flag_pad_file:
            pads.append(rel)
        else:
            files.append(rel)
            total += fs.file_size(i)
    trackers = tuple(atp.trackers)
    seeds = tuple(atp.url_seeds)
    return TorrentInfo(
        kind="hybrid" if (v1 and v2) else ("v1" if v1 else "v2"),
        name=ti.name(), info_hash_v1=v1, info_hash_v2=v2,
        magnet=magnet_link(ti.name(), v1, v2, trackers, seeds),
        files=tuple(files), pad_files=tuple(pads), piece_length=ti.piece_length(),
        num_pieces=ti.num_pieces(), total_size=total, trackers=trackers, web_seeds=seeds, path=path,
    )


def read_torrent(path: str | os.PathLike) -> TorrentInfo:
    """Describe an existing .torrent file."""
    p = Path(path)
    return describe(load_torrent(p), p)


def default_torrent_path(bundle_dir: Path, kind: str = "hybrid", name: str | None = None) -> Path:
    """``<parent>/<name>.torrent`` (hybrid) or ``<parent>/<name>.v1.torrent``, beside the bundle."""
    bundle_dir = Path(bundle_dir).resolve()
    name = name or bundle_dir.name
    return bundle_dir.parent / (f"{name}.torrent" if kind == "hybrid" else f"{name}.v1.torrent")


def build_torrent(
    bundle_dir: str | os.PathLike,
    *,
    kind: str = "hybrid",
    web_seeds: Sequence[str] = (),
    trackers: Sequence[str] = (),
    name: str | None = None,
    piece_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> bytes:
    """Hash the bundle and return the bencoded .torrent (nothing is written)."""
    if kind not in KINDS:
        raise TorrentFileError(f"unknown torrent kind {kind!r} (use one of {', '.join(KINDS)})")
    root = Path(bundle_dir).resolve()
    rels = bundle_files(root)
    name = name or root.name
    if not name or "/" in name or name in (".", ".."):
        raise TorrentFileError(f"bad torrent name {name!r}")
    sizes = [(root / r).stat().st_size for r in rels]
    if sum(sizes) == 0:
        raise NotABundleError(f"{root}: all files are empty, nothing to share")
    piece = piece_size or choose_piece_size(sizes)
    if piece < MIN_PIECE or piece & (piece - 1):
        raise TorrentFileError(f"piece size {piece} must be a power of two >= {MIN_PIECE}")

    entries = [lt.create_file_entry(str(PurePosixPath(name, r)), s) for r, s in zip(rels, sizes)]
    flags = 0 if kind == "hybrid" else int(lt.create_torrent.v1_only)
    ct = lt.create_torrent(entries, piece, flags)
    ct.set_creation_date(0)             # 0 = omit the "creation date" key
    ct.set_creator(CREATOR)
    for tier, url in enumerate(trackers):
        ct.add_tracker(url, tier)
    for url in web_seeds:
        ct.add_url_seed(url)

    with contextlib.ExitStack() as stack:
        base = root.parent
        if name != root.name:           # libtorrent reads <base>/<name>/...: alias the bundle
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="testigo-torrent-")))
            (base / name).symlink_to(root, target_is_directory=True)
        total = ct.num_pieces()
        try:
            if progress is None:
                lt.set_piece_hashes(ct, str(base))
            else:
                lt.set_piece_hashes(ct, str(base), lambda i: progress(int(i) + 1, total))
        except (RuntimeError, OSError) as e:
            raise NotABundleError(f"cannot hash {root}: {e} (did a file change while hashing?)") from None
    # create_torrent.generate_buf() is unusable from Python in libtorrent 2.1.1 (it tries to
    # decode the bytes as UTF-8), so bencode the entry instead.
    return lt.bencode(ct.generate())


def make_torrent(
    bundle_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    web_seeds: Sequence[str] = (),
    trackers: Sequence[str] = (),
    *,
    kind: str = "hybrid",
    name: str | None = None,
    piece_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TorrentInfo:
    """Write a deterministic .torrent for ``bundle_dir`` and describe it.

    ``kind="hybrid"`` (default) is BEP 52 v1+v2; ``kind="v1"`` is the pad-free v1 companion
    for clients that cannot open hybrids. ``out`` defaults to ``default_torrent_path`` (beside
    the bundle, never inside it). ``web_seeds`` are BEP 19 ``url-list`` entries: for this
    multi-file torrent a client fetches ``<url>/<name>/<path>`` (``<url><name>/<path>`` if the
    url ends in ``/``). ``trackers`` each get their own tier, in the given order.
    """
    root = Path(bundle_dir).resolve()
    target = Path(out) if out is not None else default_torrent_path(root, kind, name)
    t_abs = target.resolve()
    if t_abs == root or root in t_abs.parents:
        raise TorrentFileError(f"{target} is inside the bundle; write the torrent beside it (the bundle must stay as signed)")
    data = build_torrent(root, kind=kind, web_seeds=web_seeds, trackers=trackers, name=name,
                         piece_size=piece_size, progress=progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return describe(lt.load_torrent_buffer(data), target)


def make_torrents(
    bundle_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    web_seeds: Sequence[str] = (),
    trackers: Sequence[str] = (),
    *,
    kinds: Sequence[str] = KINDS,
    name: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[TorrentInfo]:
    """The publication set: the hybrid ``out`` (default ``<name>.torrent``) and the v1
    companion beside it (``X.torrent`` -> ``X.v1.torrent``). With only one kind, ``out`` is
    that file's path."""
    root = Path(bundle_dir).resolve()
    result = []
    for kind in kinds:
        if out is None:
            target = default_torrent_path(root, kind, name)
        elif len(kinds) == 1 or kind == "hybrid":
            target = Path(out)
        else:
            o = Path(out)
            stem = o.name[: -len(".torrent")] if o.name.endswith(".torrent") else o.name
            target = o.with_name(f"{stem}.v1.torrent")
        cb = (lambda done, total, k=kind: progress(k, done, total)) if progress else None
        result.append(make_torrent(root, target, web_seeds, trackers, kind=kind, name=name, progress=cb))
    return result
