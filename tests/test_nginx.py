"""deploy/nginx.conf in front of the real `testigo serve`: Debian's nginx on loopback.

Shows what the deployment promises: answers cached as testigo's Cache-Control says (and only
then), testigo's security headers passed through, stale copies served while testigo is down,
and a client over its rate limit (or holding too many connections) answered 429 while another
client still gets every page.
"""
from __future__ import annotations

import concurrent.futures
import socket
import time
import urllib.parse

import httpx
import pytest

from nginx import NGINX, Nginx
from test_site import mesa_of, start_server, stop_server

PUBLIC_ADDRESS = "127.0.0.2"      # all of 127/8 is loopback: another client, to nginx


@pytest.fixture(scope="module")
def proxied(bundle, tmp_path_factory):
    assert NGINX, "nginx is not installed: apt-get install nginx (make install-test does)"
    proc, url = start_server(bundle)
    ng = None
    try:
        ng = Nginx(tmp_path_factory.mktemp("nginx"), f"127.0.0.1:{urllib.parse.urlsplit(url).port}")
        yield ng, url.rstrip("/")
    finally:
        if ng:
            ng.stop()
        stop_server(proc)


def test_cache_hits_honour_testigos_cache_control_and_keep_its_headers(proxied, photo_workdir):
    ng, upstream = proxied
    mid = mesa_of(photo_workdir.facts["agree"])
    with httpx.Client(base_url=ng.url, timeout=30) as h, httpx.Client(base_url=upstream, timeout=30) as direct:
        image = next(a["image_url"] for a in h.get(f"/mesa/{mid}.json").json()["actas"] if a["image_url"])
        for path in ("/", f"/mesa/{mid}", "/totales?lang=en", "/totales/estado/1.json", image,
                     "/ve-2024/actas.json?_size=5", "/mesa/999999999.01"):
            first, again = h.get(path), h.get(path)
            assert first.headers["x-cache-status"] in ("MISS", "EXPIRED"), path
            assert again.headers["x-cache-status"] == "HIT", path
            assert again.status_code == first.status_code and again.content == first.content, path
            mine = direct.get(path)
            for name in ("cache-control", "content-security-policy", "x-content-type-options",
                         "referrer-policy", "x-frame-options", "content-type"):
                assert again.headers.get(name) == mine.headers.get(name), (path, name)
        assert "immutable" in h.get(image).headers["cache-control"]
        # what testigo says must not be shared is never stored: a visitor with a cookie
        for _ in range(2):
            r = h.get("/totales.json?who=me", headers={"cookie": "session=1"})
            assert "private" in r.headers["cache-control"] and r.headers["x-cache-status"] == "MISS"
        # writes never reach testigo
        assert h.post("/ve-2024/actas", data={"a": 1}).status_code == 405


def test_rate_limit_answers_429_while_the_public_still_gets_pages(proxied, photo_workdir):
    ng, _ = proxied
    mid = mesa_of(photo_workdir.facts["agree"])

    attacker = httpx.Client(base_url=ng.url, timeout=60, limits=httpx.Limits(max_connections=24))
    public = httpx.Client(base_url=ng.url, timeout=30,
                          transport=httpx.HTTPTransport(local_address=PUBLIC_ADDRESS))

    def attack(path):
        return attacker.get(path).status_code

    with concurrent.futures.ThreadPoolExecutor(24) as pool, public, attacker:
        # one address floods the data browser and the site's pages with never-cached URLs
        data = [pool.submit(attack, f"/ve-2024/centros.json?_size=1&n={i}") for i in range(60)]
        pages = [pool.submit(attack, f"/assets/site.css?n={i}") for i in range(150)]
        seen = [public.get(p) for p in ("/", f"/mesa/{mid}", "/totales", f"/mesa/{mid}.json", "/buscar?q=zulia")]
        data_status = [f.result() for f in data]
        page_status = [f.result() for f in pages]
    assert data_status.count(429) >= 30 and set(data_status) <= {200, 429, 503}, data_status
    assert page_status.count(429) >= 50 and set(page_status) <= {200, 429}, page_status
    assert [r.status_code for r in seen] == [200] * len(seen)          # another address: untouched
    assert "limiting requests" in ng.log()


def test_stale_copies_keep_the_site_up_while_testigo_is_down(bundle, tmp_path):
    proc, url = start_server(bundle)
    ng = Nginx(tmp_path / "nginx", f"127.0.0.1:{urllib.parse.urlsplit(url).port}")
    try:
        with httpx.Client(base_url=ng.url, timeout=30) as h:
            cached = h.get("/totales")
            assert cached.status_code == 200
            stop_server(proc)                                   # testigo falls
            r = h.get("/totales")
            assert r.status_code == 200 and r.content == cached.content
            assert r.headers["x-cache-status"] in ("HIT", "STALE")
            assert h.get("/totales/estado/2").status_code == 502   # never cached: nothing to show
    finally:
        ng.stop()
        stop_server(proc)


def _hold(port: int, path: str, address: str = "127.0.0.1") -> socket.socket:
    """A request whose answer is being sent but never read: in progress, for nginx, until closed
    (a receive buffer of a few KB keeps most of a large file on nginx's side)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((address, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: testigo\r\n\r\n".encode())
    s.settimeout(30)
    assert s.recv(12) == b"HTTP/1.1 200", path
    return s


def test_connection_limit_answers_429_to_an_address_holding_too_many(bundle, tmp_path):
    """limit_conn: one address holding the limit's worth of downloads in progress is answered 429
    for one more, another address is not, and the first gets pages again once it lets go. The
    shipped limit (32) is lowered to 2 here, the only change, so that a test can reach it."""
    limit = 2
    database = next(p for p in bundle.iterdir() if p.suffix == ".db")
    proc, url = start_server(bundle)
    ng = Nginx(tmp_path / "nginx", f"127.0.0.1:{urllib.parse.urlsplit(url).port}",
               replace={"limit_conn testigo_conn 32;": f"limit_conn testigo_conn {limit};"})
    held = []
    try:
        download = f"/descargas/{database.name}"
        held = [_hold(ng.port, download) for _ in range(limit)]
        with httpx.Client(base_url=ng.url, timeout=30) as same, httpx.Client(
                base_url=ng.url, timeout=30, transport=httpx.HTTPTransport(local_address=PUBLIC_ADDRESS)) as other:
            assert same.get("/totales").status_code == 429, database.stat().st_size
            assert other.get("/totales").status_code == 200
            for s in held:
                s.close()
            held = []
            deadline = time.monotonic() + 10
            while (status := same.get("/totales").status_code) == 429 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert status == 200
        assert "limiting connections" in ng.log()
    finally:
        for s in held:
            s.close()
        ng.stop()
        stop_server(proc)
