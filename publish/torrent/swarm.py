"""libtorrent sessions on testigo's terms: listen addresses, dialling peers, closing cleanly.

Shared by the seeder (``publish/seeder.py``) and the downloader (``publish/fetch.py``).
"""
from __future__ import annotations

import contextlib
import re
import socket
import time
from typing import Iterable

import libtorrent as lt



from .metainfo import ListenError


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


def peer_endpoint(text: str) -> tuple[str, int]:
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


def dial(handle: "lt.torrent_handle", endpoint: tuple[str, int]) -> None:
    with contextlib.suppress(Exception):
        handle.connect_peer(endpoint, 0, _PEX_ENCRYPTION_ONLY)


def listen_interfaces(listen: str) -> str:
    parts = [p.strip() for p in listen.split(",") if p.strip()]
    if not parts:
        raise ListenError("--listen needs HOST:PORT, e.g. 0.0.0.0:6881")
    out = []
    for p in parts:
        host, port = parse_hostport(p, what="listen address")
        out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return ",".join(out)



def open_session(listen: str, *, dht: bool, lsd: bool, upnp: bool, natpmp: bool, utp: bool = True) -> "lt.session":
    interfaces = listen_interfaces(listen)
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


def close_session(ses: "lt.session | None", handles: Iterable["lt.torrent_handle"] = ()) -> None:
    if ses is None:
        return
    with contextlib.suppress(Exception):
        ses.pause()
    for h in handles:
        with contextlib.suppress(Exception):
            ses.remove_torrent(h)
    # dropping the last reference runs the session destructor, which waits for the disk
    # threads and closes the files
