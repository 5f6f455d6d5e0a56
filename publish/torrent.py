"""BitTorrent distribution of a signed bundle: make the .torrent files, seed them, fetch them.

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
import re
import signal
import socket
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
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


def _mib(n: float) -> str:
    return f"{n / 1048576:.1f} MiB"


def _lt_flags(*names: str) -> int:
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


def parse_hostport(text: str, *, what: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` / ``[IPv6]:PORT`` -> (host, port). Raises ListenError."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]\s]+):(\d+)", text.strip())
    if not m:
        raise ListenError(f"{what} {text!r} is not HOST:PORT (for IPv6 write [ADDR]:PORT)")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 <= port <= 65535:
        raise ListenError(f"{what} {text!r}: port must be 0-65535")
    return host, port


def _peer_endpoint(text: str) -> tuple[str, int]:
    host, port = parse_hostport(text, what="peer")
    if port == 0:
        raise ListenError(f"peer {text!r}: port 0 is not a peer")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise ListenError(f"peer {text!r}: cannot resolve {host!r} ({e})") from None
    return infos[0][4][0], port


# Peers given by hand are dialled over TCP: every client listens on TCP, uTP is optional. With
# libtorrent's default flags (uTP first) a TCP-only peer (Transmission 3 with uTP off) was never
# reached: each retry waited out another uTP timeout (tests/test_torrent.py, transmission).
_PEX_ENCRYPTION_ONLY = 1   # pex_flags: encryption supported; *not* utp (4) or holepunch (8)


def _dial(handle: "lt.torrent_handle", endpoint: tuple[str, int]) -> None:
    with contextlib.suppress(Exception):
        handle.connect_peer(endpoint, 0, _PEX_ENCRYPTION_ONLY)


def _listen_interfaces(listen: str) -> str:
    parts = [p.strip() for p in listen.split(",") if p.strip()]
    if not parts:
        raise ListenError("--listen needs HOST:PORT, e.g. 0.0.0.0:6881")
    out = []
    for p in parts:
        host, port = parse_hostport(p, what="listen address")
        out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return ",".join(out)


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


def _load_torrent(path: Path) -> "lt.add_torrent_params":
    """Parse a .torrent file. Its trackers and web seeds are in the result, not in ``.ti``."""
    try:
        return lt.load_torrent_buffer(path.read_bytes())
    except (OSError, RuntimeError) as e:
        raise TorrentFileError(f"cannot read torrent {path}: {e}") from None


def _describe(atp: "lt.add_torrent_params", path: Path | None) -> TorrentInfo:
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
    return _describe(_load_torrent(p), p)


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
    return _describe(lt.load_torrent_buffer(data), target)


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


# --------------------------------------------------------------------------------------------
# sessions


def _session(listen: str, *, dht: bool, lsd: bool, upnp: bool, natpmp: bool, utp: bool = True) -> "lt.session":
    interfaces = _listen_interfaces(listen)
    cat = lt.alert.category_t
    settings = {
        "listen_interfaces": interfaces,
        "enable_dht": dht,
        "enable_lsd": lsd,
        "enable_upnp": upnp,
        "enable_natpmp": natpmp,
        # uTP (LEDBAT) yields to other traffic on home lines; TCP is much faster on LANs and
        # loopback (see benchmarks/torrent.py)
        "enable_incoming_utp": utp,
        "enable_outgoing_utp": utp,
        "user_agent": f"testigo libtorrent/{lt.__version__}",
        "alert_mask": int(cat.error_notification | cat.status_notification | cat.storage_notification),
        # several mirrors behind one NAT, and loopback tests, share an IP
        "allow_multiple_connections_per_ip": True,
    }
    try:
        ses = lt.session(settings)
    except (RuntimeError, KeyError, TypeError) as e:
        raise ListenError(f"cannot start a BitTorrent session on {listen}: {e}") from None
    # wait for the listen sockets: at least one must open
    deadline = time.monotonic() + 5
    ok = failed = 0
    errors = []
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert):
                ok += 1
            elif isinstance(a, lt.listen_failed_alert):
                failed += 1
                errors.append(a.message())
        if ok and ses.listen_port():
            break
        if failed and not ok:
            break
    if not ok:
        raise ListenError(f"cannot listen on {listen}: {'; '.join(errors) or 'no socket opened'}")
    return ses


def _close_session(ses: "lt.session | None", handles: Iterable["lt.torrent_handle"] = ()) -> None:
    if ses is None:
        return
    with contextlib.suppress(Exception):
        ses.pause()
    for h in handles:
        with contextlib.suppress(Exception):
            ses.remove_torrent(h)
    # dropping the last reference runs the session destructor, which waits for the disk
    # threads and closes the files


# --------------------------------------------------------------------------------------------
# seeding


@dataclass
class SeedStatus:
    name: str
    port: int
    peers: int
    upload_rate: float          # bytes/s, payload
    uploaded: int               # bytes, payload, this session
    ratio: float                # uploaded / bundle size
    elapsed: float
    torrents: int

    def line(self) -> str:
        return (f"seeding {self.name} ({self.torrents} torrent{'s' if self.torrents != 1 else ''}, port {self.port}) | "
                f"peers {self.peers} | up {self.upload_rate / 1024:.1f} KiB/s | "
                f"sent {_mib(self.uploaded)} | ratio {self.ratio:.2f}")


@dataclass
class SeedSummary:
    uploaded: int
    seconds: float
    max_peers: int
    interrupted: bool
    torrents: list[TorrentInfo] = field(default_factory=list)


def find_torrents(bundle_dir: Path) -> list[Path]:
    """The torrents ``make_torrent`` writes by default beside the bundle, if they exist."""
    return [p for p in (default_torrent_path(bundle_dir, k) for k in KINDS) if p.is_file()]


class Seeder:
    """A libtorrent session serving one bundle under one or more torrents (hybrid and v1).

    ``start()`` opens the session, force-rechecks the local files against every torrent and
    raises ``BundleMismatchError`` (before any peer is served) unless all pieces check out.
    ``run()`` then seeds until ``stop`` is set, ``max_seconds`` pass, or Ctrl-C / SIGTERM.
    The torrents are added in upload mode, so libtorrent never writes into the bundle.
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        torrents: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        listen: str = DEFAULT_LISTEN,
        *,
        dht: bool = True,
        lsd: bool = True,
        upnp: bool = True,
        natpmp: bool = True,
        utp: bool = True,
        peers: Sequence[str] = (),
        check_timeout: float | None = None,
    ):
        self.bundle_dir = Path(bundle_dir).resolve()
        if not self.bundle_dir.is_dir():
            raise NotABundleError(f"{self.bundle_dir} is not a directory")
        if torrents is None:
            paths = find_torrents(self.bundle_dir)
            if not paths:
                raise TorrentFileError(
                    f"no torrent found beside {self.bundle_dir} (looked for {default_torrent_path(self.bundle_dir).name}"
                    f" and {default_torrent_path(self.bundle_dir, 'v1').name}); run `testigo torrent` first or pass --torrent")
        elif isinstance(torrents, (str, os.PathLike)):
            paths = [Path(torrents)]
        else:
            paths = [Path(t) for t in torrents]
        self.torrent_paths = paths
        _listen_interfaces(listen)          # fail early on a malformed address
        self.listen = listen
        self.discovery = dict(dht=dht, lsd=lsd, upnp=upnp, natpmp=natpmp, utp=utp)
        self.peers = [_peer_endpoint(p) for p in peers]
        self.check_timeout = check_timeout
        self.ses: lt.session | None = None
        self.handles: list[lt.torrent_handle] = []
        self.infos: list[TorrentInfo] = []
        self.port = 0
        self._size = 0

    # -- lifecycle
    def __enter__(self) -> "Seeder":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        _close_session(self.ses, self.handles)
        self.handles = []
        self.ses = None

    def start(self) -> "Seeder":
        loaded = [(p, _load_torrent(p)) for p in self.torrent_paths]
        self.infos = [_describe(atp, p) for p, atp in loaded]
        self._size = max(i.total_size for i in self.infos)
        self.ses = _session(self.listen, **self.discovery)
        try:
            self.port = self.ses.listen_port()
            for p, atp in loaded:
                self.handles.append(self._add_checked(p, atp))
            for h in self.handles:
                h.unset_flags(lt.torrent_flags.stop_when_ready)
                h.resume()
            self.connect_peers()
        except BaseException:
            self.close()
            raise
        return self

    def _add_checked(self, path: Path, atp: "lt.add_torrent_params") -> "lt.torrent_handle":
        ti = atp.ti
        fs = ti.layout()
        prefix = ti.name()
        atp.save_path = str(self.bundle_dir.parent)
        if prefix != self.bundle_dir.name:      # the mirror renamed the folder: map paths onto it
            atp.renamed_files = {
                i: os.path.join(self.bundle_dir.name, fs.file_path(i)[len(prefix) + 1:])
                for i in range(fs.num_files()) if not fs.file_flags(i) & lt.file_storage.flag_pad_file}
        # never download into the bundle; pause as soon as the check is done
        atp.flags = _lt_flags("upload_mode", "stop_when_ready")
        h = self.ses.add_torrent(atp)
        h.force_recheck()
        deadline = None if self.check_timeout is None else time.monotonic() + self.check_timeout
        while True:
            st = h.status()
            if st.errc.value() != 0 and st.state not in (st.checking_files, st.checking_resume_data):
                raise BundleMismatchError(
                    f"refusing to seed {self.bundle_dir}: checking it against {path.name} failed: {st.errc.message()}",
                    torrent=str(path), bad_files={}, bad_pieces=[])
            if st.state in (st.seeding, st.downloading, st.finished) and st.paused:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TorrentError(f"checking {self.bundle_dir} against {path.name} took longer than {self.check_timeout:.0f}s")
            self.ses.wait_for_alert(200)
            self.ses.pop_alerts()
        st = h.status(int(lt.torrent_handle.query_pieces))
        if st.is_seeding and st.num_pieces == ti.num_pieces():
            return h
        bad_pieces = [i for i, have in enumerate(st.pieces) if not have]
        progress = h.file_progress(int(lt.torrent_handle.piece_granularity))
        bad: dict[str, str] = {}
        for i in range(fs.num_files()):
            if fs.file_flags(i) & lt.file_storage.flag_pad_file or progress[i] == fs.file_size(i):
                continue
            rel = fs.file_path(i)[len(prefix) + 1:].replace(os.sep, "/")
            disk = self.bundle_dir / rel
            if not disk.is_file():
                bad[rel] = "missing"
            elif disk.stat().st_size != fs.file_size(i):
                bad[rel] = f"wrong size ({disk.stat().st_size} bytes, torrent says {fs.file_size(i)})"
            else:
                bad[rel] = "content differs"
        listing = "; ".join(f"{k}: {v}" for k, v in list(bad.items())[:10]) + (" ..." if len(bad) > 10 else "")
        raise BundleMismatchError(
            f"refusing to seed {self.bundle_dir}: {len(bad)} file(s) do not match {path.name} "
            f"({len(bad_pieces)} bad piece(s): {', '.join(map(str, bad_pieces[:20]))}{' ...' if len(bad_pieces) > 20 else ''}): "
            f"{listing}. Re-download or restore the bundle; do not re-make the torrent from damaged files.",
            torrent=str(path), bad_files=bad, bad_pieces=bad_pieces)

    def connect_peers(self) -> None:
        for h in self.handles:
            for ep in self.peers:
                _dial(h, ep)

    def status(self, elapsed: float = 0.0) -> SeedStatus:
        sts = [h.status() for h in self.handles]
        up = sum(s.total_payload_upload for s in sts)
        return SeedStatus(
            name=self.bundle_dir.name, port=self.port,
            peers=sum(s.num_peers for s in sts),
            upload_rate=float(sum(s.upload_payload_rate for s in sts)),
            uploaded=up, ratio=up / self._size if self._size else 0.0,
            elapsed=elapsed, torrents=len(sts),
        )

    def run(
        self,
        stop: threading.Event | None = None,
        max_seconds: float | None = None,
        on_status: Callable[[SeedStatus], None] | None = None,
        interval: float = 1.0,
        peer_retry: float = 5.0,
        on_start: Callable[[], None] | None = None,
    ) -> SeedSummary:
        """Seed until ``stop`` is set, ``max_seconds`` pass, or SIGINT/SIGTERM (main thread).

        ``on_start`` is called once Ctrl-C is handled, so a caller that announces "seeding" there
        never tells a user to press Ctrl-C a moment before pressing it would abort instead."""
        if self.ses is None:
            self.start()
        stop = stop or threading.Event()
        restore = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                restore[sig] = signal.signal(sig, lambda *_: stop.set())
        t0 = time.monotonic()
        last_peer = t0
        max_peers = 0
        interrupted = False
        try:
            if on_start:
                on_start()
            while not stop.is_set():
                now = time.monotonic()
                if max_seconds is not None and now - t0 >= max_seconds:
                    break
                for a in self.ses.pop_alerts():
                    if isinstance(a, lt.file_error_alert):
                        raise TorrentError(f"seeding {self.bundle_dir} stopped: {a.message()}")
                if self.peers and now - last_peer >= peer_retry:
                    self.connect_peers()
                    last_peer = now
                st = self.status(now - t0)
                max_peers = max(max_peers, st.peers)
                if on_status:
                    on_status(st)
                wait = interval if max_seconds is None else max(0.0, min(interval, max_seconds - (now - t0)))
                stop.wait(wait)
            interrupted = stop.is_set()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            for sig, old in restore.items():
                signal.signal(sig, old)
        final = self.status(time.monotonic() - t0)
        return SeedSummary(uploaded=final.uploaded, seconds=final.elapsed, max_peers=max_peers,
                           interrupted=interrupted, torrents=list(self.infos))


def seed(
    bundle_dir: str | os.PathLike,
    torrent_path: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    listen: str = DEFAULT_LISTEN,
    dht: bool = True,
    *,
    lsd: bool = True,
    upnp: bool = True,
    natpmp: bool = True,
    utp: bool = True,
    peers: Sequence[str] = (),
    stop: threading.Event | None = None,
    max_seconds: float | None = None,
    on_status: Callable[[SeedStatus], None] | None = None,
    on_ready: Callable[[Seeder], None] | None = None,
    interval: float = 1.0,
) -> SeedSummary:
    """Check the bundle against its torrent(s), refuse it if anything differs, then seed.

    ``torrent_path``: one path, several (hybrid and v1), or None for the default files beside
    the bundle. Stops cleanly on ``stop``, ``max_seconds`` or Ctrl-C (returns a summary with
    ``interrupted=True``). Raises ``BundleMismatchError`` naming the bad files and pieces.
    """
    with Seeder(bundle_dir, torrent_path, listen, dht=dht, lsd=lsd, upnp=upnp, natpmp=natpmp, utp=utp,
                peers=peers) as s:
        if on_ready:
            on_ready(s)
        return s.run(stop=stop, max_seconds=max_seconds, on_status=on_status, interval=interval)


# --------------------------------------------------------------------------------------------
# fetching


@dataclass
class FetchProgress:
    state: str                  # "metadata", "checking", "downloading", "done"
    done: int                   # bytes
    total: int                  # bytes (0 until the metadata is known)
    rate: float                 # bytes/s
    peers: int
    elapsed: float

    def line(self, width: int = 30) -> str:
        frac = self.done / self.total if self.total else 0.0
        bar = "#" * int(frac * width)
        return (f"[{bar:<{width}}] {frac * 100:5.1f}% {_mib(self.done)}/{_mib(self.total)} "
                f"{self.rate / 1048576:.2f} MiB/s peers {self.peers} ({self.state})")


@dataclass
class FetchResult:
    path: Path                  # the downloaded bundle directory (out_dir / name)
    name: str
    info_hash_v1: str | None
    info_hash_v2: str | None
    downloaded: int             # payload bytes received
    seconds: float
    report: object = None       # archive.verify.verify_bundle's report (None if verify=False)


def verify_download(path: Path, pubkey: str | None = None):
    # ------------------------------------------------------------------------------------
    # VERIFY HOOK: fetch checks what it downloaded with the bundle verifier, exactly like
    # `testigo verify` (signature, every checksum, no missing/extra file, database). Imported
    # here, not at the top, so `testigo torrent` does not pay for sqlite_utils and minisign.
    # ------------------------------------------------------------------------------------
    from archive.verify import verify_bundle

    return verify_bundle(path, pubkey=pubkey)


def _load_source(source: str | os.PathLike) -> "lt.add_torrent_params":
    s = os.fspath(source)
    if s.startswith("magnet:"):
        try:
            return lt.parse_magnet_uri(s)
        except (RuntimeError, ValueError) as e:
            raise TorrentFileError(f"not a usable magnet link: {e}") from None
    p = Path(s)
    if not p.is_file():
        raise TorrentFileError(f"{s!r} is neither a magnet link nor a .torrent file")
    return _load_torrent(p)


def fetch(
    magnet_or_torrent: str | os.PathLike,
    out_dir: str | os.PathLike,
    peers: Sequence[str] = (),
    *,
    listen: str = DEFAULT_LISTEN,
    dht: bool = True,
    lsd: bool = True,
    upnp: bool = True,
    natpmp: bool = True,
    utp: bool = True,
    timeout: float | None = None,
    on_progress: Callable[[FetchProgress], None] | None = None,
    interval: float = 0.5,
    verify: bool = True,
    pubkey: str | None = None,
    stop: threading.Event | None = None,
) -> FetchResult:
    """Download a bundle into ``out_dir/<name>/`` and verify it.

    ``peers``: ``HOST:PORT`` strings to connect to directly (retried every few seconds until
    connected). ``timeout`` bounds the whole download. Raises ``FetchError`` on failure or
    timeout and ``FetchVerifyError`` if the downloaded bundle does not verify.
    """
    _listen_interfaces(listen)
    atp = _load_source(magnet_or_torrent)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    endpoints = [_peer_endpoint(p) for p in peers]
    atp.save_path = str(out)
    atp.flags = int(atp.flags) & ~_lt_flags("paused", "auto_managed", "upload_mode", "seed_mode")
    ses = _session(listen, dht=dht, lsd=lsd, upnp=upnp, natpmp=natpmp, utp=utp)
    h = None
    t0 = time.monotonic()
    try:
        h = ses.add_torrent(atp)
        last_connect = -1e9
        while True:
            now = time.monotonic()
            if stop is not None and stop.is_set():
                raise FetchError("download cancelled")
            for a in ses.pop_alerts():
                if isinstance(a, (lt.file_error_alert, lt.torrent_error_alert)):
                    raise FetchError(f"download failed: {a.message()}")
                if isinstance(a, lt.metadata_failed_alert):
                    raise FetchError(f"the metadata a peer sent does not match the link: {a.message()}")
            st = h.status()
            if endpoints and st.num_peers < len(endpoints) and now - last_connect >= 3:
                for ep in endpoints:
                    _dial(h, ep)
                last_connect = now
            if st.has_metadata and st.is_finished and st.state not in (st.checking_files, st.checking_resume_data):
                break
            if timeout is not None and now - t0 > timeout:
                pct = f"{st.progress * 100:.1f}%" if st.has_metadata else "no metadata yet"
                raise FetchError(f"download timed out after {timeout:.0f}s ({pct}, {st.num_peers} peer(s)); "
                                 f"add a peer with --peer HOST:PORT or try again later")
            if on_progress:
                state = ("metadata" if not st.has_metadata else
                         "checking" if st.state in (st.checking_files, st.checking_resume_data) else "downloading")
                on_progress(FetchProgress(state, st.total_wanted_done, st.total_wanted, float(st.download_payload_rate),
                                          st.num_peers, now - t0))
            ses.wait_for_alert(int(interval * 1000))
        st = h.status()
        ti = h.torrent_file()
        name = ti.name()
        ih = ti.info_hashes()
        downloaded = st.total_payload_download
        if on_progress:
            on_progress(FetchProgress("done", st.total_wanted, st.total_wanted, 0.0, st.num_peers, time.monotonic() - t0))
    finally:
        _close_session(ses, [h] if h is not None else [])
        del ses, h
    seconds = time.monotonic() - t0
    path = out / name
    report = verify_download(path, pubkey) if verify else None
    result = FetchResult(path=path, name=name, info_hash_v1=str(ih.v1) if ih.has_v1() else None,
                         info_hash_v2=str(ih.v2) if ih.has_v2() else None, downloaded=downloaded,
                         seconds=seconds, report=report)
    if report is not None and not report.ok:
        problems = list(report.problems)
        raise FetchVerifyError(
            f"downloaded {path} but it does NOT verify, do not use or re-share it: " + "; ".join(problems[:10])
            + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""), path=path, problems=problems)
    return result
