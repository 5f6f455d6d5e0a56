"""Verifying bundles: every kind of tampering is rejected; stock tools agree with testigo."""
import hashlib
import json
import shutil
import sqlite3
import subprocess

import pytest
from click.testing import CliRunner

from archive import manifest, signing
from archive.bundle import DATAPACKAGE
from archive.verify import verify_bundle
from conftest import KEY_PASSWORD

needs_tools = pytest.mark.skipif(not (shutil.which("sha256sum") and shutil.which("minisign")),
                                 reason="coreutils sha256sum and Debian minisign are needed")


def flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def reseal(root, key_files, password=None):
    """What a publisher (or an intruder with their own key) does after changing files: new
    datapackage hashes, new SHA256SUMS, new signature. Lets one check the deeper checks alone."""
    dp_path = root / DATAPACKAGE
    dp = json.loads(dp_path.read_text())
    for res in dp["resources"]:
        res["hash"] = "sha256:" + manifest.sha256_file(root / res["path"])
        res["bytes"] = (root / res["path"]).stat().st_size
    dp["testigo"]["public_key_fingerprint"] = key_files.key_id
    dp_path.write_text(json.dumps(dp, ensure_ascii=False, indent=1) + "\n")
    manifest.write_manifest(root)
    sk = signing.load_secret_key(key_files.secret, password)
    signing.sign_file(sk, root / "SHA256SUMS", signing.trusted_comment("ve-2024", "ve-2024"))


def test_untouched_bundle_passes(bundle, signing_key):
    rep = verify_bundle(bundle, pubkey=signing_key.public)
    assert rep.ok, rep.problems
    assert rep.warnings == [] and rep.key_id == signing_key.key_id
    assert rep.files_checked == len(manifest.list_files(bundle).files)
    assert "bundle:ve-2024" in rep.trusted_comment and "timestamp" not in rep.trusted_comment
    # the pubkey can also be given as a base64 string or as the key base path
    assert verify_bundle(bundle, signing.public_key_base64(signing.load_public_key(signing_key.public))).ok
    assert verify_bundle(bundle, signing_key.public.with_suffix("")).ok


def test_without_pubkey_passes_but_warns_loudly(bundle):
    rep = verify_bundle(bundle)
    assert rep.ok
    assert len(rep.warnings) == 1 and "INSIDE the bundle" in rep.warnings[0] and "--pubkey" in rep.warnings[0]


def _targets(bundle):
    image = sorted((bundle / "images").iterdir())[0].relative_to(bundle).as_posix()
    sig_lines = (bundle / "SHA256SUMS.minisig").read_bytes().split(b"\n")
    line_starts = [sum(len(x) + 1 for x in sig_lines[:i]) for i in range(4)]
    cases = [("ve-2024.db", None), (image, None), ("SHA256SUMS", None), ("datapackage.json", None),
             ("README.md", None), ("LICENSE", None), ("minisign.pub", None)]
    # every line of the signature: untrusted comment, signature, trusted comment, global signature
    cases += [("SHA256SUMS.minisig", start + 25) for start in line_starts]
    cases += [("SHA256SUMS.minisig", -1)]  # the final newline
    return cases


@pytest.mark.parametrize("index", range(12))
def test_one_changed_byte_in_any_file_is_rejected(bundle_copy, signing_key, index):
    rel, offset = _targets(bundle_copy)[index]
    path = bundle_copy / rel
    flip(path, offset if offset is not None else path.stat().st_size // 2)
    for key in (signing_key.public, None):
        rep = verify_bundle(bundle_copy, key)
        assert not rep.ok, (rel, offset)
        if rel != "SHA256SUMS.minisig" and rel != "SHA256SUMS":
            assert any(f"checksum mismatch: {rel}" in p for p in rep.problems), rep.problems
        else:
            assert any(p.startswith("signature:") for p in rep.problems), rep.problems


def test_changed_sha256sums_line_is_caught_by_the_signature(bundle_copy, signing_key):
    # a consistent lie: change README and its line in SHA256SUMS; only the signature notices
    readme = bundle_copy / "README.md"
    readme.write_text(readme.read_text() + "\nextra\n")
    sums = bundle_copy / "SHA256SUMS"
    lines = sums.read_text().splitlines()
    lines = [f"{manifest.sha256_file(readme)}  README.md" if l.endswith("  README.md") else l for l in lines]
    sums.write_text("\n".join(lines) + "\n")
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert [p for p in rep.problems if "signature" in p] and not [p for p in rep.problems if "checksum" in p]


@pytest.mark.parametrize("victim", ["ve-2024.db", "image", "datapackage.json", "SHA256SUMS.minisig",
                                    "SHA256SUMS", "minisign.pub"])
def test_removed_file_is_rejected(bundle_copy, signing_key, victim):
    path = sorted((bundle_copy / "images").iterdir())[0] if victim == "image" else bundle_copy / victim
    path.unlink()
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert not rep.ok
    rel = path.relative_to(bundle_copy).as_posix()
    if victim not in ("SHA256SUMS", "SHA256SUMS.minisig"):
        assert f"missing file: {rel} (listed in SHA256SUMS, not in the bundle)" in rep.problems
    assert not verify_bundle(bundle_copy).ok


@pytest.mark.parametrize("extra", ["notes.txt", "images/0000.jpg", "sub/dir/x.db", ".hidden"])
def test_added_file_is_rejected(bundle_copy, signing_key, extra):
    path = bundle_copy / extra
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not part of the bundle")
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert not rep.ok and f"extra file: {extra} (in the bundle, not listed in SHA256SUMS)" in rep.problems


def test_symlink_is_rejected(bundle_copy, signing_key):
    (bundle_copy / "link.txt").symlink_to("/etc/hostname")
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert "not a regular file: link.txt (a bundle holds plain files only)" in rep.problems


def test_bittorrent_padding_is_ignored_with_a_warning(bundle_copy, signing_key):
    (bundle_copy / ".pad").mkdir()
    (bundle_copy / ".pad" / "16384").write_bytes(bytes(16384))
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert rep.ok, rep.problems
    assert any(".pad/" in w for w in rep.warnings)
    assert manifest.is_ignored(".pad/16384") and not manifest.is_ignored("images/.pad")


@pytest.mark.parametrize("name,content", [("100", b"\x00" * 99 + b"x"), ("notes", b"\x00"), ("sub/12", b"\x00")])
def test_padding_folder_cannot_hide_data(bundle_copy, signing_key, name, content):
    path = bundle_copy / ".pad" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert not rep.ok and any(p.startswith(f".pad/{name}:") for p in rep.problems), rep.problems


def test_unsafe_manifest_paths_are_never_opened(bundle_copy):
    sums = bundle_copy / "SHA256SUMS"
    sums.write_text(sums.read_text() + "0" * 64 + "  ../../etc/passwd\n" + "0" * 64 + "  /etc/passwd\n")
    rep = verify_bundle(bundle_copy)
    assert sum("unsafe or unsupported path" in p for p in rep.problems) == 2
    assert not any("missing file: ../" in p or "missing file: /etc" in p for p in rep.problems)


def test_a_different_key_is_rejected(bundle, other_key):
    rep = verify_bundle(bundle, pubkey=other_key.public)
    assert not rep.ok
    assert any("was made by key" in p and other_key.key_id in p for p in rep.problems), rep.problems
    assert any("minisign.pub is key" in p for p in rep.problems)


def test_resigned_by_an_intruder_passes_only_against_the_shipped_key(bundle_copy, signing_key, other_key):
    (bundle_copy / "README.md").write_text("Fake results.\n")
    shutil.copyfile(other_key.public, bundle_copy / "minisign.pub")
    reseal(bundle_copy, other_key)
    shipped = verify_bundle(bundle_copy)
    assert shipped.ok and "INSIDE the bundle" in shipped.warnings[0]   # integrity only: warned
    real = verify_bundle(bundle_copy, signing_key.public)
    assert not real.ok and any("was made by key" in p for p in real.problems)


def test_foreign_key_violation_is_rejected_even_when_resealed(bundle_copy, signing_key):
    db = sqlite3.connect(bundle_copy / "ve-2024.db")
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("DELETE FROM mesas WHERE id = (SELECT mesa_id FROM actas WHERE counted = 1 LIMIT 1)")
    db.commit()
    db.close()
    reseal(bundle_copy, signing_key, KEY_PASSWORD)
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert "foreign key violation" in rep.problems[0], rep.problems
    # the mesa's votes are gone from the join the totals are summed over: they no longer add up
    # (and the app's pages, derived from the same tables, no longer match them either)
    assert all("do not add up the published actas" in p or "pages were altered" in p
               for p in rep.problems[1:]), rep.problems


def test_altered_mesa_page_is_rejected_even_when_resealed(bundle_copy, signing_key):
    """mesa_pages is what the browser app shows: a number changed there alone is caught."""
    db = sqlite3.connect(bundle_copy / "ve-2024.db")
    mesa_id, page = db.execute("SELECT id, page FROM mesa_pages WHERE page LIKE '%\"validos\":%' LIMIT 1").fetchone()
    db.execute("UPDATE mesa_pages SET page = ? WHERE id = ?", (page.replace('"validos":', '"validos":1', 1), mesa_id))
    db.commit()
    db.close()
    reseal(bundle_copy, signing_key, KEY_PASSWORD)
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert rep.problems == [f"ve-2024.db: mesa_pages row {mesa_id} is not what the published tables give for mesa "
                            f"{mesa_id}: the bundle's mesa pages were altered"], rep.problems


def test_corrupt_database_is_rejected_even_when_resealed(bundle_copy, signing_key):
    path = bundle_copy / "ve-2024.db"
    data = bytearray(path.read_bytes())
    # a table row and its index entry now disagree: the first 'disagree' that is a value of its own
    # (actas.crosscheck), not part of a word (the audit's source_disagreement, its table's name)
    at = next(i for i in range(1, len(data)) if data.startswith(b"disagree", i)
              and not (chr(data[i - 1]).isalnum() or data[i - 1] in b"_ "))
    data[at:at + 8] = b"DISAGREE"
    path.write_bytes(bytes(data))
    reseal(bundle_copy, signing_key, KEY_PASSWORD)
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert rep.problems and all("ve-2024.db" in p for p in rep.problems), rep.problems
    assert any("integrity_check" in p or "not a valid SQLite" in p for p in rep.problems)


def test_totals_that_do_not_add_up_the_actas_are_rejected_even_when_resealed(bundle_copy, signing_key):
    db = sqlite3.connect(bundle_copy / "ve-2024.db")
    db.execute("UPDATE totals_estado SET votes = votes + 1000 WHERE rowid = 1")
    db.commit()
    db.close()
    reseal(bundle_copy, signing_key, KEY_PASSWORD)
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert len(rep.problems) == 1, rep.problems
    assert "totals_estado row 1" in rep.problems[0] and "do not add up the published actas" in rep.problems[0]


def test_images_table_and_files_must_agree(bundle_copy, signing_key):
    db = sqlite3.connect(bundle_copy / "ve-2024.db")
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("DELETE FROM images WHERE rowid = (SELECT min(rowid) FROM images)")
    db.commit()
    db.close()
    reseal(bundle_copy, signing_key, KEY_PASSWORD)
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert any("not in the images table" in p for p in rep.problems), rep.problems


@needs_tools
def test_stock_tools_verify_a_built_bundle(bundle, bundle_copy, other_key):
    sums = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=bundle, capture_output=True, text=True)
    assert sums.returncode == 0, sums.stdout + sums.stderr
    assert sums.stdout.count(": OK") == len(manifest.list_files(bundle).files)
    ms = subprocess.run(["minisign", "-Vm", "SHA256SUMS", "-p", "minisign.pub"], cwd=bundle,
                        capture_output=True, text=True)
    assert ms.returncode == 0 and "Signature and comment signature verified" in ms.stdout, ms.stdout + ms.stderr
    # -H: the signature is the modern prehashed kind
    assert subprocess.run(["minisign", "-VHm", "SHA256SUMS", "-p", "minisign.pub"], cwd=bundle,
                          capture_output=True).returncode == 0
    # and they fail when they should
    assert subprocess.run(["minisign", "-Vm", "SHA256SUMS", "-p", str(other_key.public)], cwd=bundle,
                          capture_output=True).returncode != 0
    flip(bundle_copy / "README.md", 10)
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=bundle_copy,
                          capture_output=True).returncode != 0
    flip(bundle_copy / "SHA256SUMS", 10)
    assert subprocess.run(["minisign", "-Vm", "SHA256SUMS", "-p", "minisign.pub"], cwd=bundle_copy,
                          capture_output=True).returncode != 0


@needs_tools
def test_debian_minisign_can_sign_with_a_testigo_key(signing_key, tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("hola\n")
    r = subprocess.run(["minisign", "-S", "-s", str(signing_key.secret), "-m", str(f)],
                       input=KEY_PASSWORD + "\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pk = signing.load_public_key(signing_key.public)
    pk.verify_file(f)  # py-minisign accepts minisign's signature; raises otherwise


def test_cli_verify_lists_every_problem(bundle_copy, signing_key):
    from archive.bundle_cli import verify
    (bundle_copy / "LICENSE").write_text("mine now\n")
    (bundle_copy / "extra.txt").write_text("x")
    sorted((bundle_copy / "images").iterdir())[0].unlink()
    r = CliRunner().invoke(verify, [str(bundle_copy), "--pubkey", str(signing_key.public)])
    assert r.exit_code == 1
    assert "FAILED" in r.output and "checksum mismatch: LICENSE" in r.output
    assert "extra file: extra.txt" in r.output and "missing file: images/" in r.output
    r = CliRunner().invoke(verify, [str(bundle_copy.parent / "nothing-here")])
    assert r.exit_code == 1 and "is not a folder" in r.output


# --- the photo shards: a damaged, missing, extra or misplaced member is named exactly ---------------

def _members(root):
    from archive import shards
    index = shards.open_images(root)
    assert not index.problems and len(index.shards) >= 2
    return index


def _rewrite_shard(root, rel, members: dict[str, bytes], tmp_path):
    """Write shard ``rel`` again, deterministically, holding exactly ``members``."""
    from archive import shards
    src = tmp_path / "members"
    src.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        (src / name).write_bytes(data)
    shards.write_shard(root / rel, [(name, src / name) for name in members])


def test_changed_byte_in_a_photo_names_the_shard_and_the_member(bundle, bundle_copy, signing_key):
    m = next(iter(_members(bundle_copy)))
    flip(bundle_copy / m.shard, m.offset + m.size // 2)
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert f"checksum mismatch: {m.shard} (its content is not what SHA256SUMS lists)" in rep.problems
    damaged = [p for p in rep.problems if p.startswith("damaged member:")]
    data = bytearray(_members(bundle).read(m.name))  # the untouched bundle's copy of the photo
    data[m.size // 2] ^= 0x01
    assert damaged == [f"damaged member: {m.locator} (its bytes hash to {hashlib.sha256(data).hexdigest()}, "
                       "not to its name)"]
    assert m.locator == f"{m.shard}!{m.sha256}.{m.name.rsplit('.', 1)[1]}"
    # even re-signed (a broken build, or an intruder with the key), the photo check still fails
    reseal(bundle_copy, signing_key, KEY_PASSWORD)
    rep = verify_bundle(bundle_copy, signing_key.public)
    assert len(rep.problems) == 1 and rep.problems[0].startswith(f"damaged member: {m.locator} "), rep.problems


@pytest.mark.parametrize("change", ["drop", "add", "move", "compress", "not-a-zip"])
def test_resealed_shard_members_must_match_the_images_table(bundle_copy, signing_key, tmp_path, change):
    import zipfile
    index = _members(bundle_copy)
    first, second = index.shards[:2]
    victim = index.in_shard(first)[0]
    content = {m.name: index.read(m) for m in index.in_shard(first)}
    if change == "drop":
        del content[victim.name]
        _rewrite_shard(bundle_copy, first, content, tmp_path)
        want = [f"missing member: {victim.locator} (in the images table of ve-2024.db, not in the shard)"]
    elif change == "add":
        extra = b"\xff\xd8\xff\xe0 not a photo of the bundle \xff\xd9"
        name = f"{hashlib.sha256(extra).hexdigest()}.jpg"
        _rewrite_shard(bundle_copy, first, {**content, name: extra}, tmp_path)
        want = [f"extra member: {first}!{name} (in the shard, not in the images table of ve-2024.db)"]
    elif change == "move":
        moved = content.pop(victim.name)
        _rewrite_shard(bundle_copy, first, content, tmp_path)
        other = {m.name: index.read(m) for m in index.in_shard(second)}
        _rewrite_shard(bundle_copy, second, {**other, victim.name: moved}, tmp_path / "2")
        want = [f"{second}!{victim.name}: the images table of ve-2024.db says it is in {first}"]
    elif change == "compress":
        with zipfile.ZipFile(bundle_copy / first, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in content.items():
                z.writestr(name, data)
        want = [f"{first}!{name}: compressed or encrypted; shard members are stored as they are"
                for name in sorted(content)]
    else:
        (bundle_copy / first).write_bytes(b"PK\x03\x04 this is not a zip file any more")
        want = None
    reseal(bundle_copy, signing_key, KEY_PASSWORD)
    rep = verify_bundle(bundle_copy, signing_key.public)
    if want is None:
        assert len(rep.problems) == 1 and rep.problems[0].startswith(f"{first}: cannot be read as a zip"), rep.problems
    else:
        # a member added or removed moves the bytes of the members after it: verify says so too
        moved = [p for p in rep.problems if "its bytes start at" in p]
        assert [p for p in rep.problems if p not in moved] == want
        assert all(p.startswith((first, second)) for p in moved)
        if change == "add":
            assert len(moved) == sum(n > name for n in content), moved
