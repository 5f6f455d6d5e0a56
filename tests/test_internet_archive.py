"""Uploading a bundle to the Internet Archive, against a local fake archive (tests/iaserver.py).

The real ``internetarchive`` client runs unchanged: its session is built with
``{'general': {'secure': False}}`` and ``HTTP_PROXY``/``HTTPS_PROXY`` point at the fake server, so
its ``PUT http://s3.us.archive.org/...`` and ``GET http://archive.org/metadata/...`` arrive there.
A guard on ``socket.connect``/``getaddrinfo`` fails any test that tries to reach another address.
"""
from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from internetarchive import ArchiveSession, Item

from archive import errors
from publish import internet_archive as ia
from publish.internet_archive.cli import upload
try:
    from iaserver import FakeArchive  # tests/ has no __init__.py: pytest puts it on sys.path
except ImportError:  # pragma: no cover - if tests/ becomes a package
    from tests.iaserver import FakeArchive

pytestmark = pytest.mark.timeout(60)

ACCESS, SECRET = "TESTACCESS", "TESTSECRET"
ID = "testigo-ve-2024-test"
KEY_ID = "4F1A2B3C5D6E7F80"
BIG = 300_000  # bytes of the big image: large enough to be cut mid-body

_real_make_session = ia.make_session


# --- a test bundle, made here until the bundle builder lands --------------------------------
def _bytes(label: str, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def make_bundle(root: Path, *, images: int = 4, variant: str = "a") -> Path:
    """The photos in two zip shards, as the bundle builder writes them; the big one in the first."""
    from archive import shards
    root.mkdir(parents=True)
    (root / "images").mkdir()
    files: dict[str, bytes] = {"ve-2024.db": b"SQLite format 3\x00" + _bytes("db" + variant, 50_000)}
    loose = root.parent / f"{root.name}-photos"
    loose.mkdir()
    groups: dict[str, list] = {}
    for i in range(images):
        size = BIG if i == 1 else 2_000 + 500 * i
        data = b"\xff\xd8\xff\xe0" + _bytes(f"img{i}{variant}", size) + b"\xff\xd9"
        photo = loose / f"{hashlib.sha256(data).hexdigest()}.jpg"
        photo.write_bytes(data)
        groups.setdefault(shards.shard_name(1 + i % 2, 1), []).append((photo.name, photo))
    for rel, members in groups.items():
        shards.write_shard(root / rel, members)
        files[rel] = (root / rel).read_bytes()
    files["README.md"] = "# Actas de escrutinio\n\nDatos públicos.\n".encode()
    files["LICENSE"] = b"CC0 1.0 Universal\n"
    files["minisign.pub"] = (f"untrusted comment: minisign public key {KEY_ID}\n"
                             "RWSAf1xtPDsaTwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n").encode()
    resources = [{"path": k, "bytes": len(v), "hash": "sha256:" + hashlib.sha256(v).hexdigest()}
                 for k, v in sorted(files.items())]
    datapackage = {
        "name": "testigo-ve-2024",
        "title": "Actas de escrutinio — Elección presidencial de Venezuela 2024",
        "description": "Fotos de actas enviadas por ciudadanos,\nleídas y verificadas con testigo.",
        "licenses": [{"name": "CC0-1.0", "path": "https://creativecommons.org/publicdomain/zero/1.0/",
                      "title": "Creative Commons Zero v1.0 Universal"}],
        "keywords": ["Venezuela", "elecciones 2024", "actas"],
        "resources": resources,
        # As archive/bundle.py writes it: no manifest_sha256 here (datapackage.json is itself
        # listed in SHA256SUMS); the bundle's identity is the sha256 of SHA256SUMS.
        "testigo": {"election": "ve-2024", "title": "Elección presidencial 2024",
                    "date": "2024-07-28", "public_key_fingerprint": KEY_ID},
    }
    files["datapackage.json"] = json.dumps(datapackage, ensure_ascii=False, indent=2).encode()
    for key, data in files.items():
        (root / key).write_bytes(data)
    sums = "".join(f"{hashlib.sha256(files[k]).hexdigest()}  {k}\n" for k in sorted(files))
    (root / "SHA256SUMS").write_text(sums)
    (root / "SHA256SUMS.minisig").write_text(
        f"untrusted comment: signature from minisign secret key\nRUSAf1xtPDsaT{variant}fake==\n"
        "trusted comment: timestamp:1722124800\tfile:SHA256SUMS\nfakeglobalsig==\n")
    return root


def keys_in_upload_order(bundle: Path) -> list[str]:
    listed = sorted(line.split("  ", 1)[1] for line in (bundle / "SHA256SUMS").read_text().splitlines())
    return listed + ["SHA256SUMS", "SHA256SUMS.minisig"]


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- fixtures -----------------------------------------------------------------------------
@pytest.fixture
def fake(monkeypatch, tmp_path):
    """The fake archive, the client routed to it, and no way out of the machine."""
    server = FakeArchive(ACCESS, SECRET).start()
    for var in ("NO_PROXY", "no_proxy", "IA_ACCESS_KEY_ID", "IA_SECRET_ACCESS_KEY",
                "IA_CONFIG_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, server.url)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no developer's real ia.ini is read
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))

    def make_session(config=None):
        merged = {"general": {"secure": False}}
        for section, values in (config or {}).items():
            merged.setdefault(section, {}).update(values)
        return _real_make_session(merged)

    monkeypatch.setattr(ia, "make_session", make_session)
    monkeypatch.setattr(ia.client, "make_session", make_session)  # where the package looks it up

    # The library patches socket.connect once per process; wrap whatever is there now.
    ArchiveSession(config={"general": {"secure": False}})
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo
    loopback = {"127.0.0.1", "::1", "localhost"}

    def guarded_connect(sock, address):
        if isinstance(address, tuple) and address[0] not in loopback:
            raise AssertionError(f"test tried to connect to {address!r}")
        return real_connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in loopback and host is not None:
            raise AssertionError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield server
    server.stop()
    strays = [r for r in server.requests if r.host not in ("archive.org", "s3.us.archive.org")]
    assert not strays, f"requests for other hosts reached the fake archive: {strays}"


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("IA_ACCESS_KEY_ID", ACCESS)
    monkeypatch.setenv("IA_SECRET_ACCESS_KEY", SECRET)


@pytest.fixture
def bundle(tmp_path) -> Path:
    return make_bundle(tmp_path / "B")


def run_cli(*args: str):
    return CliRunner().invoke(upload, list(args), catch_exceptions=False)


def lib_upload(bundle: Path, **kwargs) -> ia.UploadResult:
    kwargs.setdefault("wait", 0)
    kwargs.setdefault("timeout", 15)
    kwargs.setdefault("retries", 0)
    return ia.upload_bundle(bundle, ID, **kwargs)


# --- upload and check ---------------------------------------------------------------------
def test_upload_sends_every_file_once_with_md5_and_metadata(fake, keys, bundle):
    result = lib_upload(bundle, collection="opensource_media")

    order = keys_in_upload_order(bundle)
    assert result.ok and result.checked
    assert result.sent == order
    puts = fake.puts(ID)
    assert [p.key for p in puts] == order, "each file sent exactly once, signature files last"
    assert all(p.status == 200 for p in puts)
    for p in puts:
        local = bundle / p.key
        assert p.header("Content-MD5") == md5_of(local) == p.body_md5
        assert p.header("Authorization") == f"LOW {ACCESS}:{SECRET}"
        assert p.header("x-archive-auto-make-bucket") == "1"
        assert p.header("x-archive-queue-derive") == "0"
        assert p.header("Transfer-Encoding") is None
        assert int(p.header("Content-Length")) == local.stat().st_size
        assert fake.stored(ID, p.key) == local.read_bytes()
    assert any(p.key.startswith("images/") and p.path.startswith(f"/{ID}/images/") for p in puts)

    meta = fake.items[ID].metadata
    assert meta["mediatype"] == "data"
    assert meta["title"] == "Actas de escrutinio — Elección presidencial de Venezuela 2024"
    assert meta["description"].startswith("Fotos de actas enviadas por ciudadanos,\nleídas")
    assert meta["date"] == "2024-07-28"
    assert meta["subject"] == ["Venezuela", "elecciones 2024", "actas"]
    assert meta["licenseurl"] == "https://creativecommons.org/publicdomain/zero/1.0/"
    assert meta["language"] == "spa"
    assert meta["creator"]
    assert meta["collection"] == "opensource_media"
    assert meta["testigo_public_key_fingerprint"] == KEY_ID
    assert meta["testigo_manifest_sha256"] == \
        hashlib.sha256((bundle / "SHA256SUMS").read_bytes()).hexdigest()
    assert meta["testigo_election"] == "ve-2024"

    # The check read the item's file list after the last PUT.
    last_put = max(i for i, r in enumerate(fake.requests) if r.method == "PUT")
    assert any(r.method == "GET" and r.path == f"/metadata/{ID}"
               for r in fake.requests[last_put + 1:])


def test_rerun_sends_nothing(fake, keys, bundle):
    lib_upload(bundle)
    fake.clear_log()

    again = lib_upload(bundle)

    assert again.sent == [] and again.ok
    assert fake.puts() == []
    assert len(again.plan.already_there) == len(keys_in_upload_order(bundle))
    out = run_cli(str(bundle), "--identifier", ID, "--wait", "0")
    assert out.exit_code == 0, out.output
    assert "0 sent now" in out.output
    assert fake.puts() == []


def test_interrupted_upload_is_finished_by_rerun_without_resending(fake, keys, bundle):
    order = keys_in_upload_order(bundle)
    cut = next(k for k in order if (bundle / k).stat().st_size > BIG)  # cut inside the big image
    at = order.index(cut)
    assert 2 <= at < len(order) - 2, "files were sent before it and remain after it"
    fake.drop_on.add(cut)

    first = run_cli(str(bundle), "--identifier", ID, "--wait", "0")

    assert first.exit_code != 0
    assert cut in first.output and "same command again" in first.output
    completed = [p.key for p in fake.stored_puts(ID)]
    assert completed == order[:at]
    assert [p.key for p in fake.puts(ID) if p.dropped] == [cut]
    assert cut not in fake.items[ID].files
    fake.clear_log()

    second = run_cli(str(bundle), "--identifier", ID, "--wait", "0")

    assert second.exit_code == 0, second.output
    resent = [p.key for p in fake.puts(ID)]
    assert resent == order[at:]
    assert not set(resent) & set(completed), "completed files must not be sent again"
    assert sorted(fake.items[ID].files) == sorted(order)
    for key in order:
        assert fake.stored(ID, key) == (bundle / key).read_bytes()


def test_server_side_corruption_fails_the_check_loudly(fake, keys, bundle):
    victim = [k for k in keys_in_upload_order(bundle) if k.startswith("images/")][0]
    fake.corrupt_on.add(victim)

    out = run_cli(str(bundle), "--identifier", ID, "--wait", "0")

    assert out.exit_code != 0
    assert victim in out.output
    assert "md5 differs" in out.output and "sha1 differs" in out.output
    bad_lines = [line for line in out.output.splitlines() if " differs (bundle " in line]
    assert len(bad_lines) == 2 and all(victim in line for line in bad_lines)
    assert "still being processed" not in out.output  # a new file listed wrong is no delay

    # Running again replaces exactly the damaged file, and then the item checks out.
    fake.clear_log()
    fixed = run_cli(str(bundle), "--identifier", ID, "--wait", "0")
    assert fixed.exit_code == 0, fixed.output
    assert [p.key for p in fake.puts(ID)] == [victim]


def test_copy_damaged_in_transit_is_refused_by_content_md5(fake, keys, bundle):
    victim = keys_in_upload_order(bundle)[1]
    fake.tamper_on.add(victim)

    with pytest.raises(ia.UploadFailed) as err:
        lib_upload(bundle)

    assert err.value.key == victim
    assert victim in str(err.value) and "damaged copy" in str(err.value)
    refused = [p for p in fake.puts(ID) if p.key == victim]
    assert [p.status for p in refused] == [400]
    assert victim not in fake.items[ID].files
    assert lib_upload(bundle).sent == keys_in_upload_order(bundle)[1:]


def test_fake_archive_rejects_a_wrong_content_md5(fake, keys, tmp_path):
    """The fake archive really checks Content-MD5, so the tests above can fail."""
    path = tmp_path / "x.txt"
    path.write_bytes(b"hello")
    item = Item(ia.make_session(), ID, {})
    with pytest.raises(Exception) as err:
        item.upload_file(str(path), key="x.txt", headers={"Content-MD5": "0" * 32},
                         request_kwargs={"timeout": 10})
    assert "400" in str(err.value) or "Content-MD5" in str(err.value)
    assert ID not in fake.items
    ok = item.upload_file(str(path), key="x.txt", verify=True, request_kwargs={"timeout": 10})
    assert ok.status_code == 200
    assert fake.puts()[-1].header("Content-MD5") == hashlib.md5(b"hello").hexdigest()


def test_overloaded_archive_is_retried_by_the_client(fake, keys, bundle):
    victim = keys_in_upload_order(bundle)[0]
    fake.slowdown_on.add(victim)

    result = lib_upload(bundle, retries=2, retries_sleep=1)

    assert result.ok
    assert [p.status for p in fake.puts(ID) if p.key == victim] == [503, 200]
    assert any(r.host == "s3.us.archive.org" and "check_limit=1" in r.query
               for r in fake.requests)


def test_overloaded_archive_without_retries_says_wait(fake, keys, bundle):
    fake.slowdown_on.add(keys_in_upload_order(bundle)[0])
    with pytest.raises(ia.UploadFailed) as err:
        lib_upload(bundle, retries=0)
    assert "overloaded" in str(err.value) and "run the same command again" in str(err.value)


def test_listing_lag_is_waited_for(fake, keys, bundle):
    fake.listing_lag = 2  # new files are listed from the third read of the item on

    result = lib_upload(bundle, wait=10, poll_interval=0.05)

    assert result.ok
    reads = [r for r in fake.requests if r.method == "GET" and r.path == f"/metadata/{ID}"]
    assert len(reads) >= 3


def test_unlisted_files_are_reported_as_pending_when_not_waiting(fake, keys, bundle):
    fake.listing_lag = 100

    with pytest.raises(ia.VerificationFailed) as err:
        lib_upload(bundle, wait=0)

    assert all(d.problem == "missing" and d.pending for d in err.value.differences)
    assert "--check-only" in str(err.value)
    fake.listing_lag = 0
    for f in fake.items[ID].files.values():
        f.visible_after = 0
    out = run_cli(str(bundle), "--identifier", ID, "--check-only")
    assert out.exit_code == 0, out.output
    assert fake.stored_puts(ID) and not [p for p in fake.puts(ID) if p.status != 200]


def test_extra_file_in_item_fails_the_check(fake, keys, bundle):
    lib_upload(bundle)
    fake.add_file(ID, "stray-photo.jpg", b"not part of the bundle")

    out = run_cli(str(bundle), "--identifier", ID, "--wait", "0")

    assert out.exit_code != 0
    assert "stray-photo.jpg" in out.output and "not in the bundle" in out.output


# --- dry run, credentials, refusals -------------------------------------------------------
def test_dry_run_sends_nothing_and_needs_no_keys(fake, bundle):
    out = run_cli(str(bundle), "--identifier", ID, "--dry-run", "--collection", "opensource_media")

    assert out.exit_code == 0, out.output
    assert fake.puts() == []
    assert all(r.method == "GET" for r in fake.requests)
    for key in keys_in_upload_order(bundle):
        assert key in out.output
    assert "mediatype: data" in out.output
    assert "date: 2024-07-28" in out.output
    assert f"testigo_public_key_fingerprint: {KEY_ID}" in out.output
    assert "collection: opensource_media" in out.output
    big = max((bundle / "images").iterdir(), key=lambda p: p.stat().st_size)   # the big image's shard
    assert f"{big.stat().st_size / 1000:.1f} KB  images/{big.name}" in out.output
    assert "Dry run" in out.output


def test_dry_run_on_a_partly_uploaded_item_shows_what_is_skipped(fake, keys, bundle):
    order = keys_in_upload_order(bundle)
    fake.drop_on.add(order[3])
    with pytest.raises(ia.UploadFailed):
        lib_upload(bundle)
    fake.clear_log()

    out = run_cli(str(bundle), "--identifier", ID, "--dry-run")

    assert out.exit_code == 0, out.output
    assert fake.puts() == []
    lines = out.output.splitlines()
    for key in order[:3]:
        assert any(line.strip().startswith("skip") and line.endswith(key) for line in lines)
    for key in order[3:]:
        assert any(line.strip().startswith("send") and line.endswith(key) for line in lines)


def test_missing_credentials_is_a_clear_error(fake, bundle):
    out = run_cli(str(bundle), "--identifier", ID)

    assert out.exit_code != 0
    assert "ia configure" in out.output
    assert "IA_ACCESS_KEY_ID" in out.output and "IA_SECRET_ACCESS_KEY" in out.output
    assert fake.requests == [], "nothing is asked of the archive without keys"
    with pytest.raises(ia.MissingCredentials):
        lib_upload(bundle)
    assert issubclass(ia.MissingCredentials, errors.TestigoError)


def test_half_set_environment_is_a_clear_error(fake, bundle, monkeypatch):
    monkeypatch.setenv("IA_ACCESS_KEY_ID", ACCESS)

    out = run_cli(str(bundle), "--identifier", ID)

    assert out.exit_code != 0
    assert "IA_SECRET_ACCESS_KEY" in out.output and "ia configure" in out.output
    assert fake.requests == []


def test_keys_from_the_ia_configure_file(fake, bundle, tmp_path, monkeypatch):
    config = Path(tmp_path / "home" / ".config" / "internetarchive" / "ia.ini")
    config.parent.mkdir(parents=True)
    config.write_text("[s3]\naccess = CFGACCESS\nsecret = CFGSECRET\n\n"
                      "[cookies]\nlogged-in-user = v%40example.org\nlogged-in-sig = x\n\n"
                      "[general]\nscreenname = volunteer\n")
    fake.credentials["CFGACCESS"] = "CFGSECRET"

    out = run_cli(str(bundle), "--identifier", ID, "--wait", "0")

    assert out.exit_code == 0, out.output
    assert {p.header("Authorization") for p in fake.puts()} == {"LOW CFGACCESS:CFGSECRET"}


def test_wrong_keys_are_explained(fake, bundle, monkeypatch):
    monkeypatch.setenv("IA_ACCESS_KEY_ID", "WRONG")
    monkeypatch.setenv("IA_SECRET_ACCESS_KEY", "WRONG")

    with pytest.raises(ia.UploadFailed) as err:
        lib_upload(bundle)

    assert "403" in str(err.value) and "ia configure" in str(err.value)
    assert len(fake.puts()) == 1 and ID not in fake.items


def test_item_holding_another_bundle_is_refused_before_sending(fake, keys, bundle, tmp_path):
    lib_upload(bundle)
    other = make_bundle(tmp_path / "other", variant="b")
    fake.clear_log()

    with pytest.raises(ia.ItemConflict) as err:
        lib_upload(other)

    assert "new --identifier" in str(err.value)
    assert fake.puts() == []


def test_identifier_used_by_something_else_is_refused(fake, keys, bundle):
    fake.add_file(ID, "holiday.mp4", b"video", metadata={"mediatype": "movies"})

    out = run_cli(str(bundle), "--identifier", ID, "--wait", "0")

    assert out.exit_code != 0 and "not a testigo bundle" in out.output
    assert fake.puts() == []


def test_damaged_or_padded_bundle_is_refused_before_any_request(fake, keys, bundle):
    img = sorted((bundle / "images").iterdir())[0]
    img.write_bytes(img.read_bytes() + b"x")
    with pytest.raises(ia.BundleError) as err:
        lib_upload(bundle)
    assert img.name in str(err.value) and "damaged" in str(err.value)

    img.write_bytes(img.read_bytes()[:-1])
    (bundle / "notes.txt").write_text("draft")
    with pytest.raises(ia.BundleError) as err:
        lib_upload(bundle)
    assert "notes.txt" in str(err.value)

    (bundle / "notes.txt").unlink()
    (bundle / "images" / "elsewhere.jpg").symlink_to("/etc/hostname")
    with pytest.raises(ia.BundleError) as err:
        lib_upload(bundle)
    assert "symlink" in str(err.value) and "elsewhere.jpg" in str(err.value)
    assert fake.requests == []


def test_invalid_identifier(fake, keys, bundle):
    out = run_cli(str(bundle), "--identifier", "-bad id!")
    assert out.exit_code != 0 and "identifier" in out.output
    assert fake.requests == []


def test_web_seed_url():
    assert ia.internet_archive_web_seed("testigo-ve-2024") == \
        "https://archive.org/download/testigo-ve-2024/"
    with pytest.raises(ia.InvalidIdentifier):
        ia.internet_archive_web_seed("no spaces allowed")


def test_item_metadata_from_datapackage_without_optional_fields(bundle):
    dp_path = bundle / "datapackage.json"
    dp = json.loads(dp_path.read_text())
    b = ia.read_bundle(bundle)
    md = ia.item_metadata(b)
    assert "collection" not in md and "created" not in dp
    assert md["rights"] == "Creative Commons Zero v1.0 Universal"
    assert ia.item_metadata(b, "mycoll")["collection"] == "mycoll"

    del dp["keywords"]  # archive/bundle.py writes none
    dp_path.write_text(json.dumps(dp))
    sums = "".join(line if not line.endswith("  datapackage.json\n") else
                   f"{hashlib.sha256(dp_path.read_bytes()).hexdigest()}  datapackage.json\n"
                   for line in (bundle / "SHA256SUMS").read_text().splitlines(keepends=True))
    (bundle / "SHA256SUMS").write_text(sums)
    assert ia.item_metadata(ia.read_bundle(bundle))["subject"] == ["testigo", "ve-2024", "actas"]
