"""BitTorrent interoperability: clients that are not libtorrent download from our seeder.

From Debian's packages: aria2 (apt package ``aria2``) and Transmission (``transmission-cli``).
Their tests skip, saying so, when the binary is missing. Loopback only, bounded in time.
"""
from __future__ import annotations

import http.server
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from publish.torrent import metainfo as T

from test_torrent import LISTEN, LOCAL, NAME, assert_matches_sums, fake_bundle, free_port, published, running_seeder  # noqa: F401

# --- interoperability with clients that are not libtorrent ------------------------------------

def bencode(v) -> bytes:
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
    return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"


class Tracker:
    """A throwaway HTTP tracker on 127.0.0.1: answers every announce with ``peers`` (compact)."""

    def __init__(self):
        self.peers: list[tuple[str, int]] = []
        self.announces: list[dict] = []
        tracker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                query = urllib.parse.urlparse(self.path).query
                fields = {}
                for part in query.split("&"):
                    k, _, v = part.partition("=")
                    fields[k] = urllib.parse.unquote_to_bytes(v)
                tracker.announces.append(fields)
                compact = b"".join(socket.inet_aton(h) + struct.pack(">H", p) for h, p in tracker.peers)
                body = bencode({"interval": 30, "min interval": 5, "complete": len(tracker.peers),
                                "incomplete": 0, "peers": compact})
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/announce"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def info_hashes(self) -> set[str]:
        return {f["info_hash"].hex() for f in self.announces if "info_hash" in f}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tracker():
    t = Tracker()
    yield t
    t.close()


def need(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if not path:
        pytest.skip(f"{binary} not installed: apt-get install -y {package}")
    return path


def aria2_cmd(torrent: Path, dl: Path, seconds: int) -> list[str]:
    return [need("aria2c", "aria2"), "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
            "--enable-peer-exchange=false", "--disable-ipv6=true", f"--listen-port={free_port()}",
            "--seed-time=0", "--file-allocation=none", f"--stop={seconds}", "--summary-interval=0",
            "--console-log-level=warn", f"--dir={dl}", str(torrent)]


@pytest.mark.timeout(120)
def test_aria2_downloads_the_v1_torrent_from_our_seeder(fake_bundle, published, tracker, tmp_path):
    # the same v1 torrent with our throwaway tracker in it: trackers are outside the info dict,
    # so the info-hash (the swarm) is the published one
    with_tracker = T.make_torrent(fake_bundle, tmp_path / "v1-tracker.torrent", trackers=[tracker.url], kind="v1")
    assert with_tracker.info_hash_v1 == published["v1"].info_hash_v1
    dl = tmp_path / "aria2"
    with running_seeder(fake_bundle, [published["v1"].path, published["hybrid"].path]) as seeder:
        tracker.peers = [("127.0.0.1", seeder.port)]
        proc = subprocess.run(aria2_cmd(with_tracker.path, dl, 60), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert with_tracker.info_hash_v1 in tracker.info_hashes()
    assert_matches_sums(dl / NAME, fake_bundle)


@pytest.mark.timeout(120)
def test_aria2_cannot_join_the_hybrid_swarm(fake_bundle, published, tracker, tmp_path):
    """Why the v1 companion exists: aria2 1.36 announces a wrong info-hash for hybrids."""
    hybrid = T.make_torrent(fake_bundle, tmp_path / "hybrid-tracker.torrent", trackers=[tracker.url])
    proc = subprocess.Popen(aria2_cmd(hybrid.path, tmp_path / "aria2", 30), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not tracker.announces and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    assert tracker.announces, "aria2 never announced"
    announced = tracker.info_hashes()
    if hybrid.info_hash_v1 in announced:
        pytest.skip("this aria2 computes the hybrid's info-hash correctly: the v1 companion is now only for older clients")
    # aria2 drops the zero-length keys of BEP 52's "file tree" when it re-encodes the info
    # dict, so it asks for a swarm that does not exist: libtorrent answers "invalid info-hash".
    assert announced and hybrid.info_hash_v1 not in announced


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"client exited early (rc={proc.returncode})"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _transmission_settings(cfg: Path, port: int) -> None:
    cfg.mkdir(parents=True)
    (cfg / "settings.json").write_text(
        '{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,'
        ' "port-forwarding-enabled": false, "blocklist-enabled": false, "rpc-enabled": false,'
        f' "peer-port": {port}, "peer-port-random-on-start": false, "speed-limit-up-enabled": false,'
        ' "speed-limit-down-enabled": false, "incomplete-dir-enabled": false}')


@pytest.mark.timeout(150)
def test_transmission_downloads_the_v1_torrent_from_our_seeder(fake_bundle, published, tmp_path):
    binary = need("transmission-cli", "transmission-cli")
    port = free_port()
    cfg, dl, marker = tmp_path / "cfg", tmp_path / "transmission", tmp_path / "finished"
    _transmission_settings(cfg, port)
    dl.mkdir()
    finish = tmp_path / "finish.sh"
    finish.write_text(f"#!/bin/sh\ntouch '{marker}'\n")
    finish.chmod(0o755)
    # Transmission 3 ignores tracker-supplied peers on 127.0.0.0/8 ("martian" addresses) but
    # accepts incoming loopback connections, so our seeder dials it (--peer, as a seeder would
    # push to a known mirror) once it listens.
    proc = subprocess.Popen([binary, "-g", str(cfg), "-w", str(dl), "-p", str(port), "-f", str(finish),
                             str(published["v1"].path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc, 30)
        with running_seeder(fake_bundle, [published["v1"].path], peers=[f"127.0.0.1:{port}"], peer_retry=1.0):
            deadline = time.monotonic() + 90
            while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert marker.exists(), f"transmission did not finish (rc={proc.returncode}): {proc.stderr.read()[-2000:]!r}"
    assert_matches_sums(dl / NAME, fake_bundle)


@pytest.mark.timeout(60)
def test_transmission_3_cannot_open_the_hybrid(published):
    """Why the v1 companion exists: Transmission 3.x rejects BEP 52's zero-length keys."""
    show = need("transmission-show", "transmission-cli")
    version = subprocess.run([show, "--version"], capture_output=True, text=True).stderr + \
        subprocess.run([show, "--version"], capture_output=True, text=True).stdout
    if not re.search(r"\b3\.\d+", version):
        pytest.skip(f"not Transmission 3 ({version.strip()}); 4.x opens hybrid torrents")
    hybrid = subprocess.run([show, str(published["hybrid"].path)], capture_output=True, text=True, timeout=30)
    v1 = subprocess.run([show, str(published["v1"].path)], capture_output=True, text=True, timeout=30)
    assert v1.returncode == 0 and NAME in v1.stdout
    assert hybrid.returncode != 0 and "Error parsing" in (hybrid.stdout + hybrid.stderr)


