"""Fetching: download a bundle by magnet link or .torrent, resume, then verify it like `testigo verify`."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import libtorrent as lt

from .swarm import close_session, dial, listen_interfaces, open_session, peer_endpoint
from .metainfo import (DEFAULT_LISTEN, FetchError, FetchVerifyError, TorrentFileError, load_torrent, lt_flags,
                      mib)



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
        return (f"[{bar:<{width}}] {frac * 100:5.1f}% {mib(self.done)}/{mib(self.total)} "
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
    return load_torrent(p)


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
    listen_interfaces(listen)
    atp = _load_source(magnet_or_torrent)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    endpoints = [peer_endpoint(p) for p in peers]
    atp.save_path = str(out)
    atp.flags = int(atp.flags) & ~lt_flags("paused", "auto_managed", "upload_mode", "seed_mode")
    ses = open_session(listen, dht=dht, lsd=lsd, upnp=upnp, natpmp=natpmp, utp=utp)
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
                    dial(h, ep)
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
        close_session(ses, [h] if h is not None else [])
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
