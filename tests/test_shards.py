"""The photos in zip shards: planning, deterministic bytes, reading by offset, and one bundle of
several shards on which SHA256SUMS, verify, the torrent (a real libtorrent transfer on loopback)
and the Internet Archive upload (tests/iaserver.py) all agree."""
from __future__ import annotations

import hashlib
import io
import re
import shutil
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from archive import manifest, shards
from archive.bundle import build_bundle
from conftest import KEY_PASSWORD, sha256
# the fake archive and the loopback seeder of the upload and torrent tests (fixtures included)
from test_internet_archive import ID, fake, keys, lib_upload  # noqa: F401
from test_torrent import LISTEN, LOCAL, running_seeder

needs_unzip = pytest.mark.skipif(not shutil.which("unzip"), reason="Debian's unzip is needed (APT_TEST)")


def photo_files(folder: Path, sizes: list[int], ext: str = "jpg") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, size in enumerate(sizes):
        data = hashlib.sha256(f"photo {i}".encode()).digest() * (size // 32 + 1)
        data = data[:size]
        p = folder / f"{sha256(data)}.{ext}"
        p.write_bytes(data)
        out.append(p)
    return out


# --- planning --------------------------------------------------------------------------------

def test_plan_groups_by_estado_and_splits_balanced_parts():
    names = [f"{i:064x}.jpg" for i in range(25)]
    photos = ([shards.ShardPhoto(n, 100, 7, (i,)) for i, n in enumerate(names[:11])]
              + [shards.ShardPhoto(n, 100, 21, (0,)) for n in names[11:14]]
              + [shards.ShardPhoto(n, 10_000, 3, (i,)) for i, n in enumerate(names[14:])])
    plan = shards.plan_shards(photos, max_members=4, max_bytes=25_000)
    assert list(plan) == ["images/estado-03-1.zip", "images/estado-03-2.zip", "images/estado-03-3.zip",
                          "images/estado-03-4.zip", "images/estado-03-5.zip", "images/estado-03-6.zip",
                          "images/estado-07-1.zip", "images/estado-07-2.zip", "images/estado-07-3.zip",
                          "images/estado-21-1.zip"]
    # 11 photos, at most 4 a shard -> 3 parts of 3-4, consecutive in (centro, mesa) order
    assert [len(plan[f"images/estado-07-{k}.zip"]) for k in (1, 2, 3)] == [3, 4, 4]
    assert plan["images/estado-07-1.zip"] == sorted(names[:3])
    # 11 photos of 10,000 bytes, at most 25,000 bytes a shard -> parts of 2 (and one of 1)
    assert sorted(len(plan[f"images/estado-03-{k}.zip"]) for k in range(1, 7)) == [1, 2, 2, 2, 2, 2]
    assert sorted(n for members in plan.values() for n in members) == sorted(names)
    assert all(members == sorted(members) for members in plan.values())
    # a photo larger than the byte limit still gets a shard of its own
    huge = shards.plan_shards([shards.ShardPhoto(names[0], 50, 1), shards.ShardPhoto(names[1], 10, 1)],
                              max_bytes=40)
    assert list(huge.values()) == [[names[0]], [names[1]]]


@pytest.mark.parametrize("kwargs,photos,match", [
    ({"max_members": 10_001}, [], "at most 10,000"),
    ({"max_members": 0}, [], "1 to 10,000"),
    ({"max_bytes": 0}, [], "positive"),
    ({}, [shards.ShardPhoto("photo.jpg", 1, 1)], "<sha256>.jpg"),
    ({}, [shards.ShardPhoto("a" * 64 + ".jpg", 1, 1)] * 2, "twice"),
])
def test_plan_refuses_what_the_archive_or_the_layout_cannot_take(kwargs, photos, match):
    with pytest.raises(shards.ShardError, match=match):
        shards.plan_shards(photos, **kwargs)


# --- writing and reading -------------------------------------------------------------------------

def test_shard_bytes_are_deterministic_stored_and_plain(tmp_path):
    files = photo_files(tmp_path / "src", [5000, 1, 70_000, 0])
    shards.write_shard(tmp_path / "a.zip", [(p.name, p) for p in files])
    shards.write_shard(tmp_path / "b.zip", [(p.name, p) for p in reversed(files)])
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as z:
        assert z.testzip() is None and z.comment == b""
        infos = z.infolist()
        assert [i.filename for i in infos] == sorted(p.name for p in files)
        for i in infos:
            assert i.compress_type == zipfile.ZIP_STORED and i.date_time == (1980, 1, 1, 0, 0, 0)
            assert (i.create_system, i.external_attr >> 16, i.extra, i.comment) == (3, 0o100644, b"", b"")
            assert z.read(i) == (tmp_path / "src" / i.filename).read_bytes()
    assert not list(tmp_path.glob("*.tmp*"))
    with pytest.raises(shards.ShardError, match="twice"):
        shards.write_shard(tmp_path / "c.zip", [(files[0].name, files[0])] * 2)
    assert not (tmp_path / "c.zip").exists()


def test_index_reads_members_by_offset(tmp_path):
    root = tmp_path / "bundle"
    files = photo_files(tmp_path / "src", [3000, 200_000, 10])
    pngs = photo_files(tmp_path / "src", [4000], "png")
    (root / "images").mkdir(parents=True)
    shards.write_shard(root / "images/estado-01-1.zip", [(p.name, p) for p in files[:2]])
    shards.write_shard(root / "images/estado-02-1.zip", [(p.name, p) for p in files[2:] + pngs])
    index = shards.open_images(root)
    assert index.shards == ["images/estado-01-1.zip", "images/estado-02-1.zip"] and not index.problems
    assert [m.name for m in index] == sorted(p.name for p in files + pngs) and len(index) == 4
    big = files[1]
    m = index.find(big.stem)
    assert m is index.find(big.name) and m.shard == "images/estado-01-1.zip" and m.media_type == "image/jpeg"
    assert index.find(pngs[0].name).media_type == "image/png"
    assert index.find(big.stem + ".png") is None and big.stem + ".png" not in index
    data = big.read_bytes()
    assert index.read(big.name) == data == shards.read_image(root, big.stem)
    assert b"".join(index.stream(m, 1000, 150_000, chunk=4096)) == data[1000:150_000]
    # the offset is the member's first byte in the zip file
    assert (root / m.shard).read_bytes()[m.offset:m.offset + m.size] == data
    with pytest.raises(shards.ImageNotFound):
        index.read("0" * 64)
    # one pass over the file gives the file's and every member's sha256 (blocks cut members)
    whole, members = shards.digest_shard(root / m.shard, index.in_shard(m.shard), block_size=1000)
    assert whole == manifest.sha256_file(root / m.shard)
    assert members == {p.name: sha256(p.read_bytes()) for p in files[:2]}
    # a damaged member is refused on read; a shard that is not a zip is reported, not fatal
    raw = bytearray((root / m.shard).read_bytes())
    raw[m.offset + 5] ^= 1
    (root / m.shard).write_bytes(bytes(raw))
    with pytest.raises(shards.DamagedImage, match=m.locator.replace("!", ".")):
        shards.open_images(root).read(big.name)
    (root / "images/estado-02-1.zip").write_bytes(b"not a zip")
    broken = shards.open_images(root)
    assert broken.unreadable == {"images/estado-02-1.zip"} and "cannot be read as a zip" in broken.problems[0]
    assert len(broken) == 2


def test_member_offsets_are_known_before_the_shard_is_written(tmp_path):
    """The images table records offsets planned before the zip exists: the layout must be the
    writer's, byte for byte (a member near 4 GiB gets a zip64 header: 20 bytes more)."""
    files = photo_files(tmp_path / "src", [5, 70_000, 3000, 1]) + photo_files(tmp_path / "src", [900], "png")
    planned = shards.member_offsets((p.name, p.stat().st_size) for p in files)
    (tmp_path / "images").mkdir()
    shards.write_shard(tmp_path / "images" / "s.zip", [(p.name, p) for p in files])
    index = shards.open_images(tmp_path, ["images/s.zip"])
    assert {m.name: m.offset for m in index} == planned and len(planned) == 5
    raw = (tmp_path / "images" / "s.zip").read_bytes()
    for p in files:
        assert raw[planned[p.name]:planned[p.name] + p.stat().st_size] == p.read_bytes()
    a, b = "a" * 64 + ".jpg", "b" * 64 + ".jpg"
    big = shards.member_offsets([(a, 4 * 1024 ** 3), (b, 1)])
    assert big[b] - big[a] - 4 * 1024 ** 3 == 30 + len(b) and big[a] == 30 + len(a) + 20


@needs_unzip
def test_stock_unzip_reads_a_shard(tmp_path):
    files = photo_files(tmp_path / "src", [3000, 9000])
    shards.write_shard(tmp_path / "s.zip", [(p.name, p) for p in files])
    listing = subprocess.run(["unzip", "-l", "s.zip"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert all(p.name in listing.stdout for p in files) and "1980-01-01 00:00" in listing.stdout
    out = subprocess.run(["unzip", "-p", "s.zip", files[1].name], cwd=tmp_path, capture_output=True, check=True)
    assert out.stdout == files[1].read_bytes()
    assert subprocess.run(["unzip", "-tq", "s.zip"], cwd=tmp_path, capture_output=True).returncode == 0


# --- one bundle of several shards: everything agrees ---------------------------------------------

@pytest.fixture(scope="module")
def sharded(tmp_path_factory, photo_workdir, signing_key) -> Path:
    """The signed test bundle built with at most 2 photos a shard (7 photos, 3 estados)."""
    out = tmp_path_factory.mktemp("sharded") / "ve-2024-sharded"
    report = build_bundle(photo_workdir.path, out, key=signing_key.secret, password=KEY_PASSWORD, shard_size=2)
    assert report.images == 7 and report.shards == 4
    return out


def images_rows(bundle: Path) -> list[tuple]:
    db = sqlite3.connect(f"file:{bundle / 've-2024.db'}?mode=ro&immutable=1", uri=True)
    try:
        return db.execute("SELECT sha256, path, shard, size, offset FROM images ORDER BY sha256").fetchall()
    finally:
        db.close()


@needs_unzip
def test_shards_table_sums_and_verify_agree(sharded, signing_key):
    rows = images_rows(sharded)
    sums, problems = manifest.parse_manifest((sharded / "SHA256SUMS").read_bytes())
    zips = sorted(p for p in sums if p.startswith("images/"))
    assert not problems and zips == shards.shard_paths(sharded) == sorted({r[2] for r in rows})
    assert any(z.endswith("-2.zip") for z in zips)                  # an estado split in two
    for sha, _, z, size, offset in rows:    # one read of the recorded range is the photo
        with open(sharded / z, "rb") as f:
            f.seek(offset)
            assert sha256(f.read(size)) == sha
    for z in zips:
        listing = subprocess.run(["unzip", "-Z1", z], cwd=sharded, capture_output=True, text=True, check=True)
        names = listing.stdout.split()
        assert 1 <= len(names) <= 2 and names == sorted(Path(r[1]).name for r in rows if r[2] == z)
        for name in names:
            data = subprocess.run(["unzip", "-p", z, name], cwd=sharded, capture_output=True, check=True).stdout
            assert sha256(data) == name.split(".")[0]
    stock = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=sharded, capture_output=True, text=True)
    assert stock.returncode == 0 and stock.stdout.count(": OK") == len(sums)
    from archive.bundle_cli import verify
    r = CliRunner().invoke(verify, [str(sharded), "--pubkey", str(signing_key.public)])
    assert r.exit_code == 0 and r.output.startswith("OK") and "7 photos in 4 shards" in r.output, r.output


@pytest.mark.timeout(180)
def test_torrent_of_a_sharded_bundle_transfers_and_verifies(sharded, signing_key, tmp_path):
    from publish.torrent import fetch as fetch_mod, metainfo as T
    hybrid, v1 = T.make_torrents(sharded, tmp_path / "sharded.torrent")
    sums = manifest.parse_manifest((sharded / "SHA256SUMS").read_bytes())[0]
    expected = sorted([*sums, "SHA256SUMS", "SHA256SUMS.minisig"], key=str.encode)
    assert list(hybrid.files) == list(v1.files) == expected
    with running_seeder(sharded, [hybrid.path, v1.path]) as seeder:
        got = fetch_mod.fetch(hybrid.magnet, tmp_path / "dl", [f"127.0.0.1:{seeder.port}"], listen=LISTEN, timeout=90,
                      pubkey=str(signing_key.public), **LOCAL)
    assert got.report.ok, got.report.problems          # fetch ran verify_bundle on the download
    for rel in sums:
        assert (got.path / rel).read_bytes() == (sharded / rel).read_bytes(), rel
    assert len(shards.open_images(got.path)) == 7


def test_upload_of_a_sharded_bundle_matches_the_item(fake, keys, sharded):  # noqa: F811
    result = lib_upload(sharded)
    sums = manifest.parse_manifest((sharded / "SHA256SUMS").read_bytes())[0]
    item = fake.items[ID].files
    assert result.ok and result.checked
    assert sorted(item) == sorted([*sums, "SHA256SUMS", "SHA256SUMS.minisig"]) and len(item) <= 10_000
    for key in sums:
        assert hashlib.sha256(fake.stored(ID, key)).hexdigest() == sums[key], key
    # every photo of the images table is in the archive's copy of its shard
    for sha, path, shard, size, offset in images_rows(sharded):
        with zipfile.ZipFile(io.BytesIO(fake.stored(ID, shard))) as z:
            data = z.read(Path(path).name)
        assert sha256(data) == sha and len(data) == size
        assert fake.stored(ID, shard)[offset:offset + size] == data      # one range of the item's shard
    plan = lib_upload(sharded, dry_run=True).plan
    assert plan.to_send == [] and len(plan.already_there) == len(item)


def test_build_cli_shard_size(photo_workdir, signing_key, tmp_path):
    from archive.bundle_cli import build
    runner = CliRunner()
    common = ["--workdir", str(photo_workdir.path), "--pubkey", str(signing_key.public)]
    r = runner.invoke(build, common + ["--out", str(tmp_path / "one"), "--shard-size", "1"])
    assert r.exit_code == 0 and re.search(r"photos 7 \(\d newly stripped\) in 7 shard\(s\)", r.output), r.output
    assert len(shards.shard_paths(tmp_path / "one")) == 7
    readme = (tmp_path / "one" / "README.md").read_text()
    assert "--pubkey minisign.pub --shard-size 1\n" in readme        # how to rebuild the same bytes
    for bad in ("0", "10001", "x"):
        r = runner.invoke(build, common + ["--out", str(tmp_path / "bad"), "--shard-size", bad])
        assert r.exit_code == 2 and "--shard-size" in r.output and not (tmp_path / "bad").exists()
    assert "Most photos per zip shard" in runner.invoke(build, ["--help"]).output
