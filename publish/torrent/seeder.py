"""Seeding: serve a bundle under its torrents until Ctrl-C, refusing a bundle that does not match.

The archivist's command (``testigo seed``): every piece is checked before anything is shared,
the bundle is only ever read, and a status line shows peers, upload rate and ratio.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import libtorrent as lt

from .swarm import close_session, dial, listen_interfaces, open_session, peer_endpoint
from .metainfo import (BundleMismatchError, DEFAULT_LISTEN, KINDS, NotABundleError, TorrentError, TorrentFileError,
                      TorrentInfo, default_torrent_path, describe, load_torrent, lt_flags, mib)


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
                f"sent {mib(self.uploaded)} | ratio {self.ratio:.2f}")


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
        listen_interfaces(listen)          # fail early on a malformed address
        self.listen = listen
        self.discovery = dict(dht=dht, lsd=lsd, upnp=upnp, natpmp=natpmp, utp=utp)
        self.peers = [peer_endpoint(p) for p in peers]
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
        close_session(self.ses, self.handles)
        self.handles = []
        self.ses = None

    def start(self) -> "Seeder":
        loaded = [(p, load_torrent(p)) for p in self.torrent_paths]
        self.infos = [describe(atp, p) for p, atp in loaded]
        self._size = max(i.total_size for i in self.infos)
        self.ses = open_session(self.listen, **self.discovery)
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
        atp.flags = lt_flags("upload_mode", "stop_when_ready")
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
                dial(h, ep)

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
