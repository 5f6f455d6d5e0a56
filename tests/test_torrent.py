"""BitTorrent: making deterministic torrents, refusing damaged bundles, real transfers on loopback.

Every session here listens on 127.0.0.1 only, with DHT, LSD, UPnP and NAT-PMP off; every
transfer is bounded (pytest-timeout plus the library's own timeouts). Interoperability with
clients that are not libtorrent is in test_torrent_interop.py.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import libtorrent as lt
import pytest
from click.testing import CliRunner

from publish.torrent import fetch as fetch_mod, seeder as seeder_mod, metainfo as T
from publish.torrent import cli as torrent_cli
# the local fake archive (tests/iaserver.py), for --archive-item
from test_internet_archive import fake  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
LOCAL = dict(dht=False, lsd=False, upnp=False, natpmp=False)
LISTEN = "127.0.0.1:0"
NAME = "ve-2024-bundle"


# --- a fake bundle of realistic shape ----------------------------------------------------------

def write_fake_bundle(root: Path, seed: int = 7) -> Path:
    """db of a few MB, 30 images of 100-300 KB random bytes in 3 zip shards (as the bundle
    builder writes them), small metadata, real SHA256SUMS."""
    from archive import shards
    rnd = random.Random(seed)
    (root / "images").mkdir(parents=True)
    (root / "ve-2024.db").write_bytes(rnd.randbytes(3 * 1024 * 1024 + 4321))
    loose = root.parent / f"{root.name}-photos"
    loose.mkdir()
    photos = []
    for _ in range(30):
        data = rnd.randbytes(rnd.randint(100_000, 300_000))
        photos.append(loose / f"{hashlib.sha256(data).hexdigest()}.jpg")
        photos[-1].write_bytes(data)
    for part in range(3):
        shards.write_shard(root / shards.shard_name(part + 1, 1), [(p.name, p) for p in photos[part::3]])
    (root / "datapackage.json").write_text('{"name": "ve-2024", "resources": []}\n')
    (root / "README.md").write_text("# Actas ve-2024\n")
    (root / "LICENSE").write_text("CC0-1.0\n")
    (root / "minisign.pub").write_text("untrusted comment: minisign public key\nRWQfake\n")
    write_sums(root)
    (root / "SHA256SUMS.minisig").write_text("untrusted comment: signature\nRWQfakesig\n")
    return root


def write_sums(root: Path) -> None:
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.name not in ("SHA256SUMS", "SHA256SUMS.minisig"))
    lines = [f"{hashlib.sha256((root / r).read_bytes()).hexdigest()}  {r}\n" for r in rels]
    (root / "SHA256SUMS").write_text("".join(lines))


def assert_matches_sums(downloaded: Path, original: Path) -> None:
    """Every file's sha256 matches SHA256SUMS, and the folder holds exactly the bundle's files."""
    sums = {}
    for line in (downloaded / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split("  ", 1)
        sums[rel] = digest
    assert (downloaded / "SHA256SUMS").read_bytes() == (original / "SHA256SUMS").read_bytes()
    for rel, digest in sums.items():
        assert hashlib.sha256((downloaded / rel).read_bytes()).hexdigest() == digest, rel
    on_disk = {p.relative_to(downloaded).as_posix() for p in downloaded.rglob("*") if p.is_file()}
    assert on_disk == set(sums) | {"SHA256SUMS", "SHA256SUMS.minisig"}
    assert (downloaded / "SHA256SUMS.minisig").read_bytes() == (original / "SHA256SUMS.minisig").read_bytes()


@pytest.fixture(scope="module")
def fake_bundle(tmp_path_factory) -> Path:
    return write_fake_bundle(tmp_path_factory.mktemp("fake") / NAME)


@pytest.fixture(scope="module")
def published(fake_bundle, tmp_path_factory) -> dict[str, T.TorrentInfo]:
    out = tmp_path_factory.mktemp("published")
    infos = T.make_torrents(fake_bundle, out / f"{NAME}.torrent")
    return {i.kind: i for i in infos}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_seeder(bundle: Path, torrents, peers=(), peer_retry: float = 5.0):
    seeder = seeder_mod.Seeder(bundle, torrents, LISTEN, peers=peers, **LOCAL)
    seeder.start()
    stop = threading.Event()
    result = {}
    th = threading.Thread(target=lambda: result.update(summary=seeder.run(stop=stop, interval=0.2, peer_retry=peer_retry)),
                          daemon=True)
    th.start()
    try:
        yield seeder
    finally:
        stop.set()
        th.join(20)
        seeder.close()
        assert not th.is_alive(), "seeder did not stop"


# --- the torrent files ---------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_hybrid_torrent_is_v1_and_v2_and_lists_exactly_the_bundle(fake_bundle, published):
    expected = sorted(p.relative_to(fake_bundle).as_posix() for p in fake_bundle.rglob("*") if p.is_file())
    hybrid = published["hybrid"]
    ti = lt.torrent_info(str(hybrid.path))
    ih = ti.info_hashes()
    assert ih.has_v1() and ih.has_v2()
    assert (str(ih.v1), str(ih.v2)) == (hybrid.info_hash_v1, hybrid.info_hash_v2)
    assert f"xt=urn:btih:{ih.v1}" in hybrid.magnet and f"xt=urn:btmh:1220{ih.v2}" in hybrid.magnet

    fs = ti.layout()
    real, pads = [], []
    for i in range(fs.num_files()):
        path = fs.file_path(i)
        assert path.startswith(NAME + "/")
        rel = path[len(NAME) + 1:]
        if fs.file_flags(i) & lt.file_storage.flag_pad_file:
            pads.append((rel, fs.file_size(i)))
        else:
            real.append(rel)
            assert fs.file_size(i) == (fake_bundle / rel).stat().st_size
    assert sorted(real) == expected
    assert real == sorted(real, key=str.encode)          # canonical (byte-wise) order
    # The only other entries are BEP 47 pad files: ".pad/<size>", zeros that align every file
    # to a piece boundary for the v1 half (v2 hashes each file separately). Pad-aware clients
    # neither download nor write them.
    assert pads, "a hybrid of files that are not piece multiples needs padding"
    for rel, size in pads:
        assert re.fullmatch(r"\.pad/\d+", rel) and int(rel.split("/")[1]) == size, rel
        assert 0 < size < ti.piece_length()
    assert {r for r, _ in pads} == set(hybrid.pad_files)

    v1 = published["v1"]
    ti1 = lt.torrent_info(str(v1.path))
    assert ti1.info_hashes().has_v1() and not ti1.info_hashes().has_v2()
    fs1 = ti1.layout()
    assert [fs1.file_path(i)[len(NAME) + 1:] for i in range(fs1.num_files())] == real   # no pad files at all
    assert not any(fs1.file_flags(i) & lt.file_storage.flag_pad_file for i in range(fs1.num_files()))
    assert v1.info_hash_v1 != hybrid.info_hash_v1          # two swarms over the same files

    raw = lt.bdecode(hybrid.path.read_bytes())
    assert b"creation date" not in raw and raw[b"created by"] == b"testigo"


@pytest.mark.timeout(120)
def test_same_bundle_gives_identical_torrent_bytes(fake_bundle, published, tmp_path):
    again = T.make_torrents(fake_bundle, tmp_path / "again.torrent")
    assert again[0].path.read_bytes() == published["hybrid"].path.read_bytes()
    assert again[1].path.read_bytes() == published["v1"].path.read_bytes()

    # a mirror's copy: other place, other mtimes, same folder name -> same bytes
    copy = tmp_path / "elsewhere" / NAME
    shutil.copytree(fake_bundle, copy)
    for p in copy.rglob("*"):
        os.utime(p, (1_000_000_000, 1_000_000_000))
    there = T.make_torrent(copy, tmp_path / "there.torrent")
    assert there.path.read_bytes() == published["hybrid"].path.read_bytes()

    # web seeds and trackers live outside the info dict: adding them keeps the swarm
    seeded = T.make_torrent(fake_bundle, tmp_path / "ws.torrent", web_seeds=["https://mirror.example/b/"],
                            trackers=["udp://tracker.example:1337/announce"])
    assert (seeded.info_hash_v1, seeded.info_hash_v2) == (published["hybrid"].info_hash_v1, published["hybrid"].info_hash_v2)
    raw = lt.bdecode(seeded.path.read_bytes())
    assert raw[b"url-list"] in (b"https://mirror.example/b/", [b"https://mirror.example/b/"])
    assert seeded.web_seeds == ("https://mirror.example/b/",) and "ws=https%3A%2F%2Fmirror.example%2Fb%2F" in seeded.magnet

    # ...but the content does not: one changed byte, another info-hash
    data = bytearray((copy / "LICENSE").read_bytes())
    data[0] ^= 1
    (copy / "LICENSE").write_bytes(bytes(data))
    changed = T.make_torrent(copy, tmp_path / "changed.torrent")
    assert changed.info_hash_v2 != published["hybrid"].info_hash_v2


def test_piece_size_policy_is_a_function_of_sizes():
    assert T.choose_piece_size([100]) == 16 * 1024
    # 30,000 photos of ~300 KB and a 1 GB database: the policy stays under 2^16 pieces
    sizes = [300_000] * 30_000 + [1 << 30]
    piece = T.choose_piece_size(sizes)
    assert piece == 256 * 1024
    assert sum(-(-s // piece) for s in sizes) <= T.MAX_PIECES
    assert T.choose_piece_size([1 << 50]) == T.MAX_PIECE


@pytest.mark.timeout(60)
def test_make_torrent_refuses_what_is_not_a_signed_bundle(fake_bundle, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "x.db").write_bytes(b"x" * 100)
    with pytest.raises(T.NotABundleError, match="SHA256SUMS"):
        T.make_torrent(bare, tmp_path / "bare.torrent")

    b = tmp_path / NAME
    shutil.copytree(fake_bundle, b)
    (b / "notes.txt").write_text("not signed")
    with pytest.raises(T.NotABundleError, match="notes.txt"):
        T.make_torrent(b, tmp_path / "x.torrent")
    (b / "notes.txt").unlink()

    with pytest.raises(T.TorrentFileError, match="inside the bundle"):
        T.make_torrent(b, b / "images" / "x.torrent")

    # zero-filled BEP 47 padding left by a client is not content: skipped
    (b / ".pad").mkdir()
    (b / ".pad" / "1234").write_bytes(bytes(1234))
    info = T.make_torrent(b, tmp_path / "pad.torrent")
    assert not any(f.startswith(".pad/") for f in info.files)
    assert T.pad_dir_problems(b) == []
    # ...but anything else under .pad/ is refused
    (b / ".pad" / "99").write_bytes(b"\0" * 98 + b"!")
    assert T.pad_dir_problems(b)
    with pytest.raises(T.NotABundleError, match="non-zero"):
        T.make_torrent(b, tmp_path / "pad2.torrent")
    shutil.rmtree(b / ".pad")

    (b / "README.md").unlink()
    with pytest.raises(T.NotABundleError, match="README.md"):
        T.make_torrent(b, tmp_path / "y.torrent")


# --- seeding refuses damaged bundles ------------------------------------------------------------

@pytest.mark.timeout(60)
def test_seed_refuses_a_bundle_with_one_corrupted_byte(fake_bundle, published, tmp_path):
    b = tmp_path / NAME
    shutil.copytree(fake_bundle, b)
    victim = sorted((b / "images").iterdir())[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    rel = f"images/{victim.name}"

    with pytest.raises(T.BundleMismatchError) as exc:
        seeder_mod.seed(b, [published["hybrid"].path, published["v1"].path], LISTEN, max_seconds=5, **LOCAL)
    err = exc.value
    assert err.bad_files == {rel: "content differs"}
    assert len(err.bad_pieces) == 1
    assert rel in str(err) and "refusing to seed" in str(err)

    # a missing file is named as such, through the CLI too (exit 1, one clear line)
    victim.unlink()
    runner = CliRunner()
    res = runner.invoke(torrent_cli.seed, [str(b), "--torrent", str(published["v1"].path), "--listen", LISTEN,
                                           "--no-dht", "--no-lsd", "--no-port-mapping", "--duration", "5"])
    assert res.exit_code == 1, res.output
    assert f"{rel}: missing" in res.output and "refusing to seed" in res.output


@pytest.mark.timeout(60)
def test_seed_needs_a_torrent(fake_bundle, tmp_path):
    b = tmp_path / NAME
    shutil.copytree(fake_bundle, b)
    with pytest.raises(T.TorrentFileError, match="testigo torrent"):
        seeder_mod.Seeder(b, None, LISTEN, **LOCAL)
    with pytest.raises(T.ListenError):
        seeder_mod.Seeder(b, [b / "x"], "nonsense", **LOCAL).start()


# --- libtorrent to libtorrent on loopback ------------------------------------------------------

@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["hybrid-magnet", "v1-torrent-file-renamed-mirror"])
def test_e2e_loopback_transfer(fake_bundle, published, tmp_path, how):
    seed_dir = fake_bundle
    if how.endswith("renamed-mirror"):        # a mirror keeps the bundle under another folder name
        seed_dir = tmp_path / "mirror-copy"
        shutil.copytree(fake_bundle, seed_dir)
    with running_seeder(seed_dir, [published["hybrid"].path, published["v1"].path]) as seeder:
        assert seeder.port > 0
        source = published["hybrid"].magnet if how == "hybrid-magnet" else str(published["v1"].path)
        seen = []
        result = fetch_mod.fetch(source, tmp_path / "dl", [f"127.0.0.1:{seeder.port}"], listen=LISTEN, timeout=60,
                         verify=False, on_progress=seen.append, **LOCAL)
        status = seeder.status()
    assert result.path == (tmp_path / "dl" / NAME).resolve()
    assert_matches_sums(result.path, fake_bundle)
    assert not (result.path / ".pad").exists()
    assert sorted(os.listdir(tmp_path / "dl")) == [NAME]
    assert seen[-1].state == "done" and seen[-1].done == seen[-1].total > 0
    assert status.uploaded >= sum(p.stat().st_size for p in fake_bundle.rglob("*") if p.is_file())
    if how == "hybrid-magnet":
        assert result.info_hash_v2 == published["hybrid"].info_hash_v2


@pytest.mark.timeout(60)
def test_fetch_gives_up_when_nobody_seeds(published, tmp_path):
    port = free_port()       # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(T.FetchError, match="timed out"):
        fetch_mod.fetch(published["v1"].magnet, tmp_path / "dl", [f"127.0.0.1:{port}"], listen=LISTEN, timeout=3, **LOCAL)
    assert time.monotonic() - t0 < 30


# --- the real signed bundle: fetch runs verify_bundle -----------------------------------------

@pytest.mark.timeout(240)
def test_fetch_cli_verifies_the_signed_bundle_and_fails_on_tampering(bundle, signing_key, copy_tree, tmp_path):
    good = copy_tree(bundle)
    [hyb] = T.make_torrents(good, tmp_path / "good.torrent", kinds=("hybrid",))
    runner = CliRunner()
    common = ["--listen", LISTEN, "--no-dht", "--no-lsd", "--no-port-mapping", "--timeout", "60"]
    with running_seeder(good, [hyb.path]) as seeder:
        res = runner.invoke(torrent_cli.fetch, [hyb.magnet, "--out", str(tmp_path / "dl"), "--peer",
                                                f"127.0.0.1:{seeder.port}", "--pubkey", str(signing_key.public)] + common)
    assert res.exit_code == 0, res.output
    fetched = tmp_path / "dl" / good.name
    assert str(fetched.resolve()) in res.output.splitlines()[-1]
    from archive.verify import verify_bundle
    assert verify_bundle(fetched, pubkey=signing_key.public).ok

    # A bundle altered after signing (but still matching its own torrent) downloads fine and
    # is then rejected: fetch exits non-zero and says which file is wrong.
    bad = copy_tree(bundle)
    readme = bad / "README.md"
    readme.write_text(readme.read_text() + "\nEdited after signing.\n")
    [hyb_bad] = T.make_torrents(bad, tmp_path / "bad.torrent", kinds=("hybrid",))
    with running_seeder(bad, [hyb_bad.path]) as seeder:
        res = runner.invoke(torrent_cli.fetch, [str(hyb_bad.path), "--out", str(tmp_path / "dl2"), "--peer",
                                                f"127.0.0.1:{seeder.port}", "--pubkey", str(signing_key.public)] + common)
    assert res.exit_code == 1, res.output
    assert "does NOT verify" in res.output and "README.md" in res.output


# --- BEP 19 web seed over loopback HTTP --------------------------------------------------------

class _RangeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root: Path = Path("/nonexistent")
    requests: list = []

    def do_GET(self):
        rel = urllib.parse.unquote(urllib.parse.urlparse(self.path).path).lstrip("/")
        self.requests.append("/" + rel)
        p = (self.root / rel).resolve()
        if self.root.resolve() not in p.parents or not p.is_file():
            self.send_error(404)
            return
        data = p.read_bytes()
        start, end = 0, len(data) - 1
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m:
            start = int(m.group(1))
            end = min(int(m.group(2)), end) if m.group(2) else end
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:end + 1]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.timeout(90)
def test_web_seed_alone_serves_the_bundle(fake_bundle, tmp_path):
    handler = type("H", (_RangeHandler,), {"root": fake_bundle.parent, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        info = T.make_torrent(fake_bundle, tmp_path / "ws.torrent", web_seeds=[url])
        result = fetch_mod.fetch(info.path, tmp_path / "dl", listen=LISTEN, timeout=60, verify=False, **LOCAL)
    finally:
        server.shutdown()
        server.server_close()
    assert_matches_sums(result.path, fake_bundle)
    # BEP 19 multi-file layout: the client asks for <url><torrent name>/<path>, never for pads
    assert handler.requests and all(r.startswith(f"/{NAME}/") for r in handler.requests)
    assert not any("/.pad/" in r for r in handler.requests)


# --- CLI ---------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_torrent_cli_prints_magnets(fake_bundle, tmp_path):
    runner = CliRunner()
    out = tmp_path / "t" / "pub.torrent"
    res = runner.invoke(torrent_cli.torrent, [str(fake_bundle), "--out", str(out), "--web-seed",
                                              "https://archive.org/download/ve-2024/", "--tracker",
                                              "udp://tracker.example:6969/announce"])
    assert res.exit_code == 0, res.output
    magnets = [l for l in res.stdout.splitlines() if l.startswith("magnet:?")]
    assert len(magnets) == 2 and "btmh" in magnets[0] and "btmh" not in magnets[1]
    assert out.is_file() and (tmp_path / "t" / "pub.v1.torrent").is_file()
    assert T.read_torrent(out).web_seeds == ("https://archive.org/download/ve-2024/",)

    res = runner.invoke(torrent_cli.torrent, [str(fake_bundle), "--out", str(tmp_path / "only.torrent"), "--v1-only"])
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 1
    assert T.read_torrent(tmp_path / "only.torrent").kind == "v1"

    res = runner.invoke(torrent_cli.torrent, [str(tmp_path)])
    assert res.exit_code == 1 and "Error:" in res.output and "SHA256SUMS" in res.output
    assert torrent_cli.DEFAULT_LISTEN == T.DEFAULT_LISTEN    # spelled out there to keep --help light


@pytest.mark.timeout(60)
def test_torrent_cli_archive_item_names_the_torrent_and_seeds_from_the_item(fake, fake_bundle, tmp_path):  # noqa: F811
    """(``fake``: the item's layout is read from the local fake archive, never archive.org.)"""
    runner = CliRunner()
    out = tmp_path / "ia.torrent"
    res = runner.invoke(torrent_cli.torrent, [str(fake_bundle), "--out", str(out), "--archive-item",
                                              "testigo-ve-2024-20240801"])
    assert res.exit_code == 0, res.output
    info = T.read_torrent(out)
    # clients fetch WEBSEED/NAME/<file>: https://archive.org/download/<item>/<file>, the item's layout
    assert info.name == "testigo-ve-2024-20240801"
    assert info.web_seeds == ("https://archive.org/download/",)
    assert "ws=https%3A%2F%2Farchive.org%2Fdownload%2F" in res.stdout.splitlines()[0]
    # the item was asked whether it holds the whole bundle (a split upload has no web seed)
    assert [r.path for r in fake.requests] == ["/metadata/testigo-ve-2024-20240801"]
    bad = runner.invoke(torrent_cli.torrent, [str(fake_bundle), "--archive-item", "no spaces"])
    assert bad.exit_code == 2 and "--archive-item" in bad.output
    clash = runner.invoke(torrent_cli.torrent, [str(fake_bundle), "--archive-item", "abc-1", "--name", "x"])
    assert clash.exit_code == 2


def _read_until(stream, pattern: str, timeout: float) -> str:
    """Read lines from a pipe until one matches; fail (not hang) after ``timeout``."""
    got = []
    done = threading.Event()

    def reader():
        for line in stream:
            got.append(line)
            if re.search(pattern, line):
                done.set()
                return
        done.set()
    threading.Thread(target=reader, daemon=True).start()
    assert done.wait(timeout), f"no line matching {pattern!r} within {timeout}s: {''.join(got)}"
    assert re.search(pattern, got[-1] if got else ""), "".join(got)
    return "".join(got)


@pytest.mark.timeout(90)
def test_seed_cli_stops_cleanly_on_ctrl_c(fake_bundle, published):
    code = "import sys; from publish.torrent.cli import seed; seed(sys.argv[1:], prog_name='testigo seed')"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(fake_bundle), "--torrent", str(published["hybrid"].path),
         "--torrent", str(published["v1"].path), "--listen", LISTEN, "--no-dht", "--no-lsd", "--no-port-mapping"],
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        _read_until(proc.stderr, r"seeding on port \d+", 60)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(30)
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, rest
    assert "stopped (interrupted)" in rest


@pytest.mark.timeout(60)
def test_torrent_name_can_differ_from_the_folder(fake_bundle, published, tmp_path):
    # e.g. an Internet Archive item: name = identifier, web seed https://archive.org/download/
    calls = []
    info = T.make_torrent(fake_bundle, tmp_path / "item.torrent", ["https://archive.org/download/"],
                          name="testigo-ve-2024-x", progress=lambda done, total: calls.append((done, total)))
    assert info.name == "testigo-ve-2024-x" and info.files == published["hybrid"].files
    assert info.info_hash_v2 != published["hybrid"].info_hash_v2          # the name is in the info dict
    assert calls and calls[-1][0] == calls[-1][1] == info.num_pieces
    # the seeder maps the torrent's name onto whatever the local folder is called
    with seeder_mod.Seeder(fake_bundle, [info.path], LISTEN, **LOCAL) as seeder:
        assert seeder.infos[0].name == "testigo-ve-2024-x"
