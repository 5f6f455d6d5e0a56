"""A bundle spread over several Internet Archive items, against the local fake archive
(tests/iaserver.py) with the real ``internetarchive`` client.

A real signed bundle of 7 photos in 4 zip shards (``--shard-size 2``) is uploaded with item limits
small enough that it needs a top item and parts; shards, SHA256SUMS, ``testigo verify``, the
torrent's file list and the items must all agree, the check covers every item, and a re-run
resumes across items. The slow test builds a national-size bundle (30,000 photos through the real
ingest and build) and shows that its dry run has no item over the archive's 10,000 files.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from archive import manifest, shards
from archive.verify import verify_bundle
from conftest import sha256
from publish import internet_archive as ia
from publish.torrent import metainfo as T
from publish.torrent import cli as torrent_cli
from publish.internet_archive.cli import ByteSize, upload
# the fake archive and its fixtures; the signed bundle of 7 photos in 4 shards
from test_internet_archive import ID, fake, keys, lib_upload, run_cli  # noqa: F401
from test_shards import images_rows, sharded  # noqa: F401

pytestmark = pytest.mark.timeout(120)

TOP_FILES = {"minisign.pub", "SHA256SUMS", "SHA256SUMS.minisig", ia.LISTING}


def bundle_keys(bundle: Path) -> list[str]:
    return ia.list_bundle(bundle).keys


def split_limits(bundle: Path) -> dict:
    """Limits that need a top item and at least two parts: 4 files, and the largest file alone."""
    return {"max_files": 4, "max_bytes": max(s for _, s in ia.list_bundle(bundle).sizes())}


def files(n: int) -> str:
    """How the command counts files: "1 file", "4 files"."""
    return f"{n} file{'s' if n != 1 else ''}"


def item_files(fake, identifier: str) -> set[str]:
    return set(fake.items[identifier].files)


def uploaded_items(fake) -> list[str]:
    return sorted(i for i in fake.items if i == ID or i.startswith(f"{ID}-part-"))


# --- planning (no archive) ---------------------------------------------------------------------
def test_plan_one_item_when_the_bundle_fits_else_parts_in_manifest_order():
    files = [("LICENSE", 10), ("README.md", 20), ("datapackage.json", 30), ("images/estado-01-1.zip", 500),
             ("images/estado-02-1.zip", 400), ("minisign.pub", 5), ("ve-2024.db", 900),
             ("SHA256SUMS", 300), ("SHA256SUMS.minisig", 200)]
    single = ia.plan_items(ID, files)
    assert not single.split and single.top.role == "single" and single.top.keys == tuple(k for k, _ in files)

    layout = ia.plan_items(ID, files, ia.ItemLimits(max_files=4, max_bytes=1000))
    assert [(i.identifier, i.role, i.keys) for i in layout.items] == [
        (f"{ID}-part-01", "part", ("LICENSE", "README.md", "datapackage.json", "images/estado-01-1.zip")),
        (f"{ID}-part-02", "part", ("images/estado-02-1.zip",)),          # + 900 would pass 1000 bytes
        (f"{ID}-part-03", "part", ("ve-2024.db",)),
        (ID, "top", ("minisign.pub", "SHA256SUMS", "SHA256SUMS.minisig")),
    ]
    assert [i.bytes for i in layout.items] == [560, 400, 900, 505]
    assert layout == ia.plan_items(ID, files, ia.ItemLimits(4, 1000)), "same bundle and limits, same items"
    assert sorted(k for i in layout.items for k in i.keys) == sorted(k for k, _ in files)
    assert layout.item_of("ve-2024.db").identifier == f"{ID}-part-03"
    assert layout.item_of(ia.LISTING) is layout.top
    # a hundred parts or more: the numbers widen so that the names still sort
    many = ia.plan_items(ID, [(f"f{i:03d}", 1) for i in range(480)] + files[-2:], ia.ItemLimits(4, 10**6))
    assert many.parts[0].identifier == f"{ID}-part-001" and many.parts[-1].identifier == f"{ID}-part-120"


def test_plan_refuses_what_no_split_can_hold():
    files = [("datapackage.json", 30), ("images/estado-01-1.zip", 5000), ("SHA256SUMS", 300)]
    with pytest.raises(ia.ItemLimitError, match=r"images/estado-01-1\.zip is 5\.0 KB.*--shard-size"):
        ia.plan_items(ID, files, ia.ItemLimits(max_files=10, max_bytes=1000))
    with pytest.raises(ia.ItemLimitError, match=r"ve-2024\.db .*Raise --max-bytes"):
        ia.plan_items(ID, [("ve-2024.db", 5000), ("SHA256SUMS", 3)], ia.ItemLimits(max_files=10, max_bytes=1000))
    with pytest.raises(ia.ItemLimitError, match="--max-files 3 or more"):
        ia.plan_items(ID, files + [("SHA256SUMS.minisig", 1)], ia.ItemLimits(max_files=2, max_bytes=10**6))
    with pytest.raises(ia.InvalidIdentifier, match="shorter --identifier"):
        ia.plan_items("x" * 95, files, ia.ItemLimits(max_files=2, max_bytes=10**6))
    with pytest.raises(ia.ItemLimitError, match="positive"):
        ia.ItemLimits(max_files=0)


# --- one bundle, several items: everything agrees ---------------------------------------------
def test_split_upload_shards_sums_verify_torrent_and_items_agree(fake, keys, sharded, tmp_path):  # noqa: F811
    limits = split_limits(sharded)
    result = lib_upload(sharded, **limits)

    assert result.ok and result.checked and result.plan.split
    items = uploaded_items(fake)
    parts = [i for i in items if i != ID]
    assert len(parts) >= 2 and parts == [f"{ID}-part-{n:02d}" for n in range(1, len(parts) + 1)]
    # every bundle file in exactly one item, stored byte for byte; the top item holds the proof
    where = {}
    for identifier in items:
        for key in item_files(fake, identifier):
            assert key not in where, f"{key} is in {where.get(key)} and {identifier}"
            where[key] = identifier
    assert set(where) == set(bundle_keys(sharded)) | {ia.LISTING}
    assert item_files(fake, ID) == TOP_FILES
    for key, identifier in where.items():
        if key != ia.LISTING:
            assert fake.stored(identifier, key) == (sharded / key).read_bytes(), key
    for identifier in items:   # each item within the limits
        assert len(item_files(fake, identifier)) <= limits["max_files"]
        assert sum(len(fake.stored(identifier, k)) for k in item_files(fake, identifier)) <= limits["max_bytes"]

    # the top item's listing says exactly what each item holds, with SHA256SUMS' hashes
    sums = manifest.parse_manifest((sharded / "SHA256SUMS").read_bytes())[0]
    listing = json.loads(fake.stored(ID, ia.LISTING))
    assert listing["identifier"] == ID and listing["limits"] == limits
    assert listing["manifest_sha256"] == sha256((sharded / "SHA256SUMS").read_bytes())
    assert [e["identifier"] for e in listing["items"]] == [ID, *parts]
    for entry in listing["items"]:
        listed = {c["path"] for c in entry["contents"]}
        assert listed | ({ia.LISTING} if entry["identifier"] == ID else set()) == item_files(fake, entry["identifier"])
        for c in entry["contents"]:
            assert c["bytes"] == (sharded / c["path"]).stat().st_size
            assert c["sha256"] == sums.get(c["path"], sha256((sharded / c["path"]).read_bytes()))
    assert listing["rule"].startswith(f"The top item {ID} holds SHA256SUMS")
    # ... and so does the metadata: the top item lists its parts, each part names its top item
    top_md = fake.items[ID].metadata
    assert top_md["testigo_parts"] == parts and top_md["testigo_max_files"] == "4"
    for n, part in enumerate(parts, 1):
        md = fake.items[part].metadata
        assert md["testigo_part_of"] == ID and md["testigo_part"] == str(n)
        assert md["title"].endswith(f"(part {n} of {len(parts)})") and f"archive.org/details/{ID}" in md["description"]
        assert md["testigo_manifest_sha256"] == top_md["testigo_manifest_sha256"] == listing["manifest_sha256"]
    # the parts were sent first, the top item last, SHA256SUMS and its signature at the very end
    order = [p.identifier for p in fake.stored_puts()]
    assert order[-len(TOP_FILES):] == [ID] * len(TOP_FILES) and ID not in order[:-len(TOP_FILES)]
    assert [p.key for p in fake.stored_puts()][-2:] == ["SHA256SUMS", "SHA256SUMS.minisig"]

    # shards: each in one part, and every photo of the images table is in the archive's copy of it
    zips = sorted(k for k in sums if k.startswith("images/"))
    assert zips == shards.shard_paths(sharded) and len(zips) == 4
    for sha, path, shard, size, _ in images_rows(sharded):
        with zipfile.ZipFile(io.BytesIO(fake.stored(where[shard], shard))) as z:
            data = z.read(Path(path).name)
        assert sha256(data) == sha and len(data) == size

    # verify: the items put together again are the bundle, signature and all
    assert verify_bundle(sharded).ok
    joined = tmp_path / "joined"
    for key, identifier in where.items():
        if key != ia.LISTING:
            (joined / key).parent.mkdir(parents=True, exist_ok=True)
            (joined / key).write_bytes(fake.stored(identifier, key))
    report = verify_bundle(joined)
    assert report.ok and report.photos == 7 and report.shards == 4, report.problems

    # the torrent carries exactly the bundle files that the items hold
    info = T.make_torrent(sharded, tmp_path / "split.torrent")
    assert set(info.files) == set(where) - {ia.LISTING}

    # re-run: nothing is sent, every item checks out
    fake.clear_log()
    again = lib_upload(sharded, **limits)
    assert again.ok and again.sent == [] and fake.puts() == []
    assert len(again.plan.already_there) == len(where)
    checked = {r.path for r in fake.requests if r.method == "GET"}
    assert checked == {f"/metadata/{i}" for i in items}

    # --check-only on the split layout, per item
    out = run_cli(str(sharded), "--identifier", ID, "--check-only", "--max-files", "4",
                  "--max-bytes", str(limits["max_bytes"]))
    assert out.exit_code == 0, out.output
    assert f"OK: all {len(where)} files in the {len(items)} archive items match" in out.output
    for identifier in items:
        n = len(item_files(fake, identifier))
        assert f"  {identifier}: {files(n)} match" in out.output
    assert "--archive-item" in out.output and "cannot span several items" in out.output
    assert fake.puts() == []


def test_damaged_copy_in_one_part_is_named_with_its_part(fake, keys, sharded):  # noqa: F811
    limits = split_limits(sharded)
    layout = ia.plan_items(ID, ia.list_bundle(sharded).sizes(), ia.ItemLimits(**limits))
    victim_item = layout.parts[1]
    victim = victim_item.keys[0]
    fake.corrupt_on.add(victim)
    args = [str(sharded), "--identifier", ID, "--wait", "0", "--max-files", "4",
            "--max-bytes", str(limits["max_bytes"])]

    out = run_cli(*args)

    assert out.exit_code != 0
    assert "do not match the bundle (2 differences in 1 item)" in out.output
    lines = out.output.splitlines()
    at = lines.index(f"  {victim_item.identifier}:")
    assert lines[at + 1].startswith(f"    {victim}: md5 differs (bundle ")
    assert lines[at + 2].startswith(f"    {victim}: sha1 differs (bundle ")
    assert sum(" differs (bundle " in line for line in lines) == 2
    # the re-run resends exactly that file, to that part, and then every item checks out
    fake.clear_log()
    fixed = run_cli(*args)
    assert fixed.exit_code == 0, fixed.output
    assert [(p.identifier, p.key) for p in fake.puts()] == [(victim_item.identifier, victim)]


def test_interrupted_split_upload_resumes_across_items(fake, keys, sharded):  # noqa: F811
    limits = split_limits(sharded)
    order = [(p.identifier, f.key) for p in
             ia.plan_upload(ia.read_bundle(sharded), ID, ia.make_session(), limits=ia.ItemLimits(**limits)).items
             for f in p.files]
    cut = next(i for i, (identifier, _) in enumerate(order) if identifier == f"{ID}-part-02")
    fake.drop_on.add(order[cut][1])

    with pytest.raises(ia.UploadFailed) as err:
        lib_upload(sharded, **limits)

    assert err.value.identifier == f"{ID}-part-02" and err.value.key == order[cut][1]
    assert f"{order[cut][1]} (item {ID}-part-02)" in str(err.value)
    assert [(p.identifier, p.key) for p in fake.stored_puts()] == order[:cut]
    assert ID not in fake.items, "the top item is made last"
    fake.clear_log()

    resumed = lib_upload(sharded, **limits)

    assert resumed.ok
    assert [(p.identifier, p.key) for p in fake.puts()] == order[cut:]


def test_other_limits_than_the_first_upload_are_refused_before_sending(fake, keys, sharded):  # noqa: F811
    limits = split_limits(sharded)
    lib_upload(sharded, **limits)
    fake.clear_log()

    out = run_cli(str(sharded), "--identifier", ID, "--wait", "0")   # the archive's limits: one item

    assert out.exit_code != 0 and fake.puts() == []
    assert f"{ID} holds {ia.LISTING}, which this upload puts in no item" in out.output
    assert f"--max-files 4 --max-bytes {limits['max_bytes']}" in out.output

    other = "testigo-ve-2024-whole"
    ia.upload_bundle(sharded, other, wait=0, timeout=15, retries=0)            # one item
    fake.clear_log()
    out = run_cli(str(sharded), "--identifier", other, "--wait", "0", "--max-files", "4",
                  "--max-bytes", str(limits["max_bytes"]))
    assert out.exit_code != 0 and fake.puts() == []
    assert f"{other} holds ve-2024.db, which this upload puts in {other}-part-" in out.output
    assert "without --max-files/--max-bytes" in out.output


@pytest.mark.parametrize("text,value", [("1000", 1000), ("25GB", 25 * 10**9), ("1.5MB", 1_500_000),
                                        ("2GiB", 2 * 2**30), ("100 kb", 100_000), ("0.001GB", 10**6)])
def test_byte_sizes(text, value):
    assert ByteSize().convert(text, None, None) == value


def test_file_larger_than_an_item_is_a_clear_error(fake, keys, sharded):  # noqa: F811
    db = (sharded / "ve-2024.db").stat().st_size
    out = run_cli(str(sharded), "--identifier", ID, "--max-bytes", str(db - 1), "--dry-run")
    assert out.exit_code != 0
    assert "ve-2024.db is" in out.output and "never cut across items" in out.output
    assert fake.requests == []
    bad = run_cli(str(sharded), "--identifier", ID, "--max-bytes", "lots")
    assert bad.exit_code == 2 and "not a size" in bad.output


def test_dry_run_lists_every_item_with_files_and_bytes(fake, sharded):  # noqa: F811
    limits = split_limits(sharded)
    out = run_cli(str(sharded), "--identifier", ID, "--dry-run", "--max-files", "4",
                  "--max-bytes", f"{limits['max_bytes']}B")

    assert out.exit_code == 0, out.output
    assert fake.puts() == []
    layout = ia.plan_items(ID, ia.list_bundle(sharded).sizes(), ia.ItemLimits(**limits))
    item_lines = [line for line in out.output.splitlines() if line.startswith("Item:")]
    assert len(item_lines) == len(layout.items) >= 3
    assert item_lines[0].startswith(f"Item:   https://archive.org/details/{ID} [top item] (4 files, ")
    for line, item in zip(item_lines[1:], layout.parts):
        assert f"/details/{item.identifier} [part] ({files(len(item.keys))}, {ia.human_size(item.bytes)};" in line
        assert "does not exist yet" in line
    assert "OVER THE LIMIT" not in out.output
    assert f"spread over {len(layout.items)} items" in out.output
    assert out.output.count("testigo_part_of: " + ID) == len(layout.parts)
    for key in bundle_keys(sharded):
        assert key in out.output
    # --help states the rule
    helptext = CliRunner().invoke(upload, ["--help"]).output
    assert "ID-part-01" in helptext and "SHA256SUMS order" in helptext and "--max-bytes" in helptext


def test_torrent_refuses_the_archive_web_seed_for_a_split_upload(fake, keys, sharded, tmp_path):  # noqa: F811
    lib_upload(sharded, **split_limits(sharded))
    out = tmp_path / "t.torrent"
    res = CliRunner().invoke(torrent_cli.torrent, [str(sharded), "--out", str(out), "--archive-item", ID])
    assert res.exit_code == 1 and not out.exists()
    assert f"spread over {len(uploaded_items(fake))} archive.org items ({ID}, {ID}-part-01" in res.output
    assert f"{ID}-part-01" in res.output and "without --archive-item" in res.output
    # without --archive-item the torrent is made as always
    ok = CliRunner().invoke(torrent_cli.torrent, [str(sharded), "--out", str(out)])
    assert ok.exit_code == 0 and out.exists()
    # with the archive unreachable, the local answer stands (this bundle fits one item) and is said
    fake.stop()
    unreachable = CliRunner().invoke(torrent_cli.torrent, [str(sharded), "--out", str(tmp_path / "u.torrent"),
                                                           "--archive-item", "testigo-other-item"])
    assert unreachable.exit_code == 0 and "could not read the archive item testigo-other-item" in unreachable.output


def test_torrent_refuses_a_bundle_that_no_single_item_can_hold(fake, tmp_path):
    """More files than the archive allows in one item: refused without asking the archive."""
    root = tmp_path / "many"
    (root / "data").mkdir(parents=True)
    for i in range(ia.DEFAULT_MAX_FILES):
        (root / "data" / f"{i:05d}.txt").write_bytes(b"%d\n" % i)
    (root / "datapackage.json").write_text('{"testigo": {}}\n')
    lines = [f"{hashlib.sha256((root / r).read_bytes()).hexdigest()}  {r}\n"
             for r in sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())]
    (root / "SHA256SUMS").write_text("".join(lines))
    with pytest.raises(ia.SplitUpload, match=r"spread over 3 archive\.org items .*-part-01"):
        ia.torrent_web_seed(root, ID)
    assert fake.requests == []


# --- national size ------------------------------------------------------------------------------
NATIONAL_PHOTOS = 30_000


@pytest.fixture(scope="module")
def national_bundle(tmp_path_factory, csv_rows, signing_key, stub_ingest) -> Path:
    """30,000 tiny but real JPEG photos (each a distinct image), one or two per registry mesa, through
    the real ingest (QR answers from a plan, as ``stub_ingest`` does) and the real build."""
    from PIL import Image
    from archive import workdir as workdir_mod
    from archive.bundle import build_bundle
    from conftest import KEY_PASSWORD, payload_for_row
    base = tmp_path_factory.mktemp("national")
    inbox = base / "inbox"
    plan = {}
    img = Image.new("L", (32, 8))
    for i in range(NATIONAL_PHOTOS):
        for k in range(4):   # i in four 8x8 blocks of flat grey: survives JPEG, so every photo differs
            img.paste(16 * ((i >> (4 * k)) & 15) + 8, (8 * k, 0, 8 * k + 8, 8))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        folder = inbox / f"{i // 1000:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"acta-{i:05d}.jpg").write_bytes(buf.getvalue())
        plan[sha256(buf.getvalue())] = payload_for_row(csv_rows[i % len(csv_rows)])
    assert len(plan) == NATIONAL_PHOTOS
    with pytest.MonkeyPatch.context() as mp:
        # a throwaway workdir: skip the per-photo fsync that protects volunteers' real photos
        mp.setattr(workdir_mod.os, "fsync", lambda fd: None)
        summary = stub_ingest([inbox], base / "workdir", plan)
    assert summary.new["decoded"] == len(csv_rows) and summary.total() == NATIONAL_PHOTOS
    out = base / "ve-2024-national"
    report = build_bundle(base / "workdir", out, key=signing_key.secret, password=KEY_PASSWORD)
    assert report.images == NATIONAL_PHOTOS
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_dry_run_of_a_national_bundle_has_no_item_over_the_archive_limits(fake, national_bundle):
    keys_ = bundle_keys(national_bundle)
    assert NATIONAL_PHOTOS > ia.ARCHIVE_MAX_FILES > len(keys_), "one file per photo would break the rule"
    assert len(images_rows(national_bundle)) == NATIONAL_PHOTOS
    assert len(shards.shard_paths(national_bundle)) >= NATIONAL_PHOTOS // shards.DEFAULT_MAX_MEMBERS

    out = run_cli(str(national_bundle), "--identifier", ID, "--dry-run")

    assert out.exit_code == 0, out.output
    assert fake.puts() == []
    item_lines = [line for line in out.output.splitlines() if line.startswith("Item:")]
    assert item_lines == [f"Item:   https://archive.org/details/{ID} ({files(len(keys_))}, "
                          f"{ia.human_size(sum(s for _, s in ia.list_bundle(national_bundle).sizes()))}; "
                          "does not exist yet; the first file sent creates it)"]
    assert "OVER THE LIMIT" not in out.output
    # forced into parts of at most 12 files, still none over, every file in one item
    split = run_cli(str(national_bundle), "--identifier", ID, "--dry-run", "--max-files", "12")
    assert split.exit_code == 0, split.output
    lines = [line for line in split.output.splitlines() if line.startswith("Item:")]
    counts = [int(line.split(" (", 1)[1].split(" file")[0]) for line in lines]
    assert len(lines) >= 3 and all(c <= 12 for c in counts) and "OVER THE LIMIT" not in split.output
    assert sum(counts) == len(keys_) + 1            # + the top item's listing
    assert sorted(line.split()[-1] for line in split.output.splitlines()
                  if line.strip().startswith("send ")) == sorted([*keys_, ia.LISTING])
    assert os.path.getsize(national_bundle / "ve-2024.db") < ia.ARCHIVE_MAX_BYTES
