"""Connections to the real `testigo serve` over loopback: clients that send no whole request
(idle, or trickling header lines: slowloris) lose their connections at the deadline, one address
cannot hold more than its share, and the site stays up for everyone else even with a service's
default limit of 1,024 open files. Attackers connect from 127.0.0.2, visitors from 127.0.0.3
(all of 127/8 is loopback), a local reverse proxy from 127.0.0.1.
"""
from __future__ import annotations

import resource
import socket
import time
from urllib.parse import urlsplit

import httpx

from publish.site.connections import ConnectionGuard, raise_open_files_limit
from test_site import start_server, stop_server

ATTACKER, VISITOR = "127.0.0.2", "127.0.0.3"


def connect(port: int, address: str, send: bytes = b"") -> socket.socket:
    s = socket.socket()
    s.bind((address, 0))
    s.connect(("127.0.0.1", port))
    if send:
        s.sendall(send)
    s.setblocking(False)
    return s


def closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:          # reset
        return True


def wait_closed(socks: list[socket.socket], within: float) -> int:
    """How many of ``socks`` the server closed within ``within`` seconds (stops when all are)."""
    deadline, done = time.monotonic() + within, set()
    while time.monotonic() < deadline and len(done) < len(socks):
        done |= {i for i, s in enumerate(socks) if i not in done and closed_by_server(s)}
        time.sleep(0.05)
    return len(done)


def visitor(url: str, path: str = "/totales", timeout: float = 10) -> int:
    with httpx.Client(base_url=url, timeout=timeout, transport=httpx.HTTPTransport(local_address=VISITOR)) as h:
        return h.get(path).status_code


def test_clients_that_send_no_whole_request_lose_their_connection_at_the_deadline(bundle):
    proc, url = start_server(bundle, "--request-timeout", "1", "--max-per-address", "0")
    port = urlsplit(url).port
    socks = []
    try:
        idle = [connect(port, ATTACKER) for _ in range(20)]
        trickle = [connect(port, ATTACKER, b"GET / HTTP/1.1\r\nHost: x\r\n") for _ in range(20)]
        socks = idle + trickle
        # an answer that takes longer than the deadline to read is never cut
        with httpx.Client(base_url=url, timeout=30) as h:
            with h.stream("GET", f"/descargas/{next(bundle.glob('*.db')).name}") as r:
                got = 0
                for chunk in r.iter_bytes(256 * 1024):
                    got += len(chunk)
                    time.sleep(0.1)
                    for s in trickle:   # the trickle goes on: bytes do not extend the deadline
                        try:
                            s.send(b"X-a: b\r\n")
                        except OSError:
                            pass
            assert r.status_code == 200 and got == next(bundle.glob("*.db")).stat().st_size
            # a kept-alive connection idle after its answer goes too, as uvicorn's keep-alive says
            assert h.get("/totales.json").status_code == 200
        assert wait_closed(socks, within=6) == len(socks)
        assert visitor(url) == 200
    finally:
        for s in socks:
            s.close()
        stop_server(proc)


def test_one_address_cannot_hold_more_than_its_share_but_a_local_proxy_can(bundle):
    proc, url = start_server(bundle, "--request-timeout", "30", "--max-per-address", "10")
    port = urlsplit(url).port
    held, proxy = [], []
    try:
        held = [connect(port, ATTACKER) for _ in range(10)]
        extra = connect(port, ATTACKER)
        assert wait_closed([extra], within=5) == 1                  # one too many: closed at once
        assert wait_closed(held, within=0.5) == 0                   # its ten stay until the deadline
        extra.close()
        assert visitor(url) == 200                                   # another address is untouched
        proxy = [connect(port, "127.0.0.1") for _ in range(20)]     # nginx on this machine: no cap
        assert wait_closed(proxy, within=1) == 0
        for s in held:
            s.close()
        time.sleep(0.3)
        with httpx.Client(base_url=url, timeout=10, transport=httpx.HTTPTransport(local_address=ATTACKER)) as h:
            assert h.get("/totales").status_code == 200              # its share is free again
    finally:
        for s in held + proxy:
            s.close()
        stop_server(proc)


def _service_limit():
    """The child's open files limited as a systemd service's soft default (1,024), hard too."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def test_a_slowloris_cannot_take_the_site_down_with_1024_open_files(bundle):
    """1,500 idle connections from one address: more than the process can hold open. Without the
    guard every visitor timed out for as long as the attacker liked; with the default cap the
    visitor is answered at once, and with no cap at all, once the deadline has passed."""
    for args, within in ((("--request-timeout", "2"), 5), (("--request-timeout", "2", "--max-per-address", "0"), 12)):
        proc, url = start_server(bundle, *args, preexec_fn=_service_limit)
        socks = []
        try:
            socks = [connect(urlsplit(url).port, ATTACKER) for _ in range(1500)]
            start, status = time.monotonic(), None
            while time.monotonic() - start < within and status != 200:
                try:
                    status = visitor(url, timeout=3)
                except httpx.HTTPError:
                    status = None
            assert status == 200, (args, status)
        finally:
            for s in socks:
                s.close()
            stop_server(proc)


def test_guard_counts_and_releases_addresses():
    g = ConnectionGuard(deadline=5, per_address=2)
    assert [g.admit("10.0.0.1") for _ in range(3)] == [True, True, False]
    assert g.closed["too_many"] == 1 and g.open["10.0.0.1"] == 2
    assert all(g.admit("127.0.0.1") for _ in range(50)) and "127.0.0.1" not in g.open
    g.release("10.0.0.1")
    g.release("10.0.0.1")
    assert "10.0.0.1" not in g.open and g.admit("10.0.0.1")
    assert all(ConnectionGuard(per_address=0).admit("10.0.0.1") for _ in range(1000))


def test_open_files_limit_is_raised_to_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        now = raise_open_files_limit()
        assert now[0] == (hard if hard != resource.RLIM_INFINITY else 1 << 20)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == now[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
