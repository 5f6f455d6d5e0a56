"""The transcription server's limits on the real server (issue 21, item 9): X-Forwarded-For is not
believed unless a proxy is configured (a rotating header dodged the limit on wrong codes), and
a large chunked POST is refused without being read to its end."""
import http.client
import time
from urllib.parse import urlsplit

import pytest

from publish.site import server as site_mod
from publish.transcribe.app import MAX_FAILURES


@pytest.fixture
def server(transcribe_workdir, copy_tree):
    def start(*args):
        wd = copy_tree(transcribe_workdir.path)
        proc, url = site_mod.start_command(["publish.transcribe.cli", "--workdir", str(wd), "--port", "0", *args])
        started.append(proc)
        return url
    started = []
    yield start
    for proc in started:
        site_mod.stop_process(proc)


def get(url: str, path: str, headers: dict) -> int:
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.request("GET", path, headers=headers)
        return c.getresponse().status
    finally:
        c.close()


def test_a_rotating_x_forwarded_for_does_not_dodge_the_limit(server):
    url = server()
    codes = [get(url, "/?clave=nope", {"X-Forwarded-For": f"10.1.{i}.{i}"}) for i in range(MAX_FAILURES + 2)]
    assert codes[:MAX_FAILURES] == [403] * MAX_FAILURES and codes[MAX_FAILURES:] == [429, 429], codes


def test_behind_a_configured_proxy_each_forwarded_address_has_its_own_limit(server):
    url = server("--forwarded-allow-ips", "127.0.0.1")
    codes = [get(url, "/?clave=nope", {"X-Forwarded-For": "10.2.0.1"}) for _ in range(MAX_FAILURES + 1)]
    assert codes[-1] == 429
    assert get(url, "/?clave=nope", {"X-Forwarded-For": "10.2.0.2"}) == 403    # another visitor behind it


def test_a_large_chunked_post_is_refused_without_reading_it_all(server):
    url = server()
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    sent = 0

    def body():
        nonlocal sent
        chunk = b"x" * 65536
        for _ in range(64 * 1024):            # 4 GiB if it were all read
            sent += len(chunk)
            yield chunk
    t = time.monotonic()
    try:
        c.request("POST", "/entrar", body=body(), headers={"Transfer-Encoding": "chunked",
                                                           "Content-Type": "application/x-www-form-urlencoded"},
                  encode_chunked=True)
        status = c.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        status = 413         # the server answered and closed before the body was sent: refused
    finally:
        c.close()
    assert status == 413
    assert sent < 64 * 2**20 and time.monotonic() - t < 20, (sent, time.monotonic() - t)
