"""End to end in headless Chromium (Debian's package): what a person sees on the public site.

Chromium is driven over the DevTools protocol with a tiny stdlib websocket client, so nothing
but the `chromium` package is needed (no driver, no downloaded browser). Typing uses
Input.insertText and clicks are real mouse events at the element's position.
Screenshots of each step are left in the test's tmp folder (``TESTIGO_SCREENSHOTS`` to keep
them elsewhere).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from test_site import mesa_of, start_server, stop_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install chromium); the browser tests need it")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1200,1600"]


class WebSocket:
    """Just enough of RFC 6455 for one DevTools connection on loopback (text frames, masked)."""

    def __init__(self, url: str, timeout: float = 30):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket handshake refused: {head[:200]!r}")

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        parts = []
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if opcode == 0x9:
                self._send_frame(0xA, data)
                continue
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if opcode in (0x0, 0x1, 0x2):
                parts.append(data)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def close(self) -> None:
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class Browser:
    """One headless Chromium tab, driven over DevTools."""

    def __init__(self, shots: Path):
        self.profile = tempfile.mkdtemp(prefix="testigo-chromium-")
        self.shots = shots
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}",
                                      "--remote-debugging-port=0", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.quit()
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        deadline = time.monotonic() + 30
        while True:
            pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
                     if t.get("type") == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.ws = WebSocket(pages[0]["webSocketDebuggerUrl"])
        self.next_id = 0
        self.cmd("Page.enable")
        self.cmd("Runtime.enable")

    def cmd(self, method: str, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression: str):
        r = self.cmd("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"JS error in {expression[:80]!r}: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    def wait(self, expression: str, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while True:
            try:
                v = self.js(expression)
            except RuntimeError:
                v = None
            if v:
                return v
            if time.monotonic() > deadline:
                self.screenshot("timeout")
                raise AssertionError(f"timed out waiting for {expression!r} on {self.js('location.href')}")
            time.sleep(0.1)

    def open(self, url: str) -> None:
        self.cmd("Page.navigate", url=url)
        self.wait(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def type_into(self, selector: str, text: str) -> None:
        self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.focus(); e.value = ''; }})()")
        self.cmd("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (scrolled into view first)."""
        box = self.wait(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView({{block: 'center'}});
            const r = e.getBoundingClientRect(); return r.width ? [r.x + r.width / 2, r.y + r.height / 2] : null; }})()""")
        before = self.js("location.href")
        for kind in ("mousePressed", "mouseReleased"):
            self.cmd("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
        return before

    def click_and_wait(self, selector: str) -> None:
        before = self.click(selector)
        self.wait(f"location.href !== {json.dumps(before)} && document.readyState === 'complete'")

    def text(self, selector: str) -> str:
        return self.js(f"document.querySelector({json.dumps(selector)})?.innerText ?? null")

    def screenshot(self, name: str) -> Path:
        data = base64.b64decode(self.cmd("Page.captureScreenshot", format="png")["data"])
        p = self.shots / f"{name}.png"
        p.write_bytes(data)
        return p

    def quit(self) -> None:
        if getattr(self, "ws", None):
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(bundle):
    proc, url = start_server(bundle)
    yield url.rstrip("/")
    stop_server(proc)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    shots = Path(os.environ.get("TESTIGO_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    shots.mkdir(parents=True, exist_ok=True)
    b = Browser(shots)
    yield b
    b.quit()


def test_find_centre_open_mesa_see_photo(server, browser, photo_workdir):
    row = photo_workdir.facts["agree"]
    centro, mesa = str(int(row["CENTRO"])), mesa_of(row)
    browser.open(server + "/")
    assert "Busque su centro" in browser.text("body")
    browser.type_into("#q", centro)
    browser.click_and_wait("#find button[type=submit]")
    assert "/buscar?q=" + centro in browser.js("location.href")
    browser.wait("!!document.querySelector('#results')")
    assert f"Centro {centro}" in browser.text("#results")
    browser.screenshot("1-search")
    browser.click_and_wait(f'#results a[href="/mesa/{mesa}"]')
    assert browser.js("location.pathname") == f"/mesa/{mesa}"
    browser.js("document.querySelector('img.t-acta-img').scrollIntoView()")
    width = browser.wait("(() => { const i = document.querySelector('img.t-acta-img');"
                         " return i && i.complete && i.naturalWidth; })()")
    assert width > 0
    assert browser.js("document.querySelector('img.t-acta-img').naturalHeight") > 0
    valid = f"{int(row['VOTOS_VALIDOS']):,}".replace(",", ".")
    assert browser.text("#validos") == valid
    assert browser.text("#electores") == f"{int(row['RE']):,}".replace(",", ".")
    assert "coincide" in browser.text("#numbers")
    browser.screenshot("2-mesa")
    # English is one click away and keeps the page
    browser.click_and_wait("#lang-switch")
    assert browser.js("location.search") == "?lang=en"
    assert "Registered electors" in browser.text("body")


def test_totals_chart_renders(server, browser, photo_workdir):
    expected = photo_workdir.facts["expected_totals"]
    browser.open(server + "/totales")
    bars = browser.js("""Array.from(document.querySelectorAll('#chart-totals g.t-bar')).map(g => {
        const r = g.querySelector('rect').getBoundingClientRect();
        return [g.dataset.code, Number(g.dataset.votes), r.width, r.height]; })""")
    assert {code: votes for code, votes, _, _ in bars} == expected
    widths = {code: w for code, _, w, _ in bars}
    leader = max(expected, key=expected.get)
    assert widths[leader] > 100 and all(h > 5 for _, _, _, h in bars)
    assert widths[leader] == max(widths.values())
    svg = browser.js("(() => { const r = document.querySelector('#chart-totals svg').getBoundingClientRect();"
                     " return [r.width, r.height]; })()")
    assert svg[0] > 300 and svg[1] > 200
    browser.screenshot("3-totals")
    # drill down to a state from the table
    browser.click_and_wait("#children tbody tr a")
    assert "/totales/estado/" in browser.js("location.pathname")
    assert browser.js("document.querySelectorAll('#chart-totals rect').length") == len(expected)


def test_check_my_acta_match_and_mismatch(server, browser, photo_workdir, payload_for):
    row = photo_workdir.facts["agree"]
    browser.open(server + "/comprobar")
    browser.type_into("#qr", payload_for(row))
    browser.click_and_wait("#qr-submit")
    assert browser.wait("document.querySelector('#check-result')?.dataset.result") == "match"
    assert "Coincide" in browser.text("#check-result")
    browser.screenshot("4-check-match")
    browser.type_into("#qr", payload_for(row, move=3))
    browser.click_and_wait("#qr-submit")
    assert browser.wait("document.querySelector('#check-result')?.dataset.result") == "mismatch"
    assert "No coincide" in browser.text("#check-result")
    diffs = browser.js("Array.from(document.querySelectorAll('#field-table tr.t-diff')).map(t => t.dataset.field)")
    assert set(diffs) >= {"EG", "NM"}
    assert browser.js("document.querySelector('#fields').open") is True
    browser.screenshot("5-check-mismatch")
    # nonsense pasted in: a clean message, no error page
    browser.type_into("#qr", 'NEAR(" <b>hola</b> 😀')
    browser.click_and_wait("#qr-submit")
    assert browser.wait("document.querySelector('#check-result')?.dataset.result") == "invalid"
    assert "no parece el QR" in browser.text("#check-result")
