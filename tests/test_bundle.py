"""Building bundles from real workdirs: contents, counting rule, images, reproducibility."""
import io
import json
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from archive import bundle as bundle_mod
from archive import database, locators, published, shards, totals
from archive import manifest, signing
from archive.bundle import build_bundle
from archive.verify import verify_bundle
from conftest import CSV_TOTALS, KEY_PASSWORD, bundle_image, sha256


def file_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def db_of(bundle: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{bundle / 've-2024.db'}?mode=ro&immutable=1", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def test_layout_matches_the_contract(bundle, signing_key):
    names = sorted(p.name for p in bundle.iterdir())
    assert names == ["LICENSE", "README.md", "SHA256SUMS", "SHA256SUMS.minisig", "datapackage.json",
                     "images", "minisign.pub", "ve-2024.db"]
    lines = (bundle / "SHA256SUMS").read_text().splitlines()
    paths = [line.split("  ", 1)[1] for line in lines]
    assert paths == sorted(paths) and "SHA256SUMS" not in paths and "SHA256SUMS.minisig" not in paths
    assert set(paths) == {p for p in file_hashes(bundle) if not p.startswith("SHA256SUMS")}
    dp = json.loads((bundle / "datapackage.json").read_text())
    assert dp["testigo"]["public_key_fingerprint"] == signing_key.key_id
    assert dp["testigo"]["election"] == "ve-2024" and dp["testigo"]["date"] == "2024-07-28"
    db_res = next(r for r in dp["resources"] if r["name"] == "actas")
    assert db_res["hash"] == "sha256:" + sha256((bundle / "ve-2024.db").read_bytes())
    assert db_res["bytes"] == (bundle / "ve-2024.db").stat().st_size
    assert [f["name"] for f in db_res["schema"]["fields"]][:3] == ["id", "mesa_id", "source"]
    assert all("description" in f for r in dp["resources"] if "schema" in r for f in r["schema"]["fields"])
    # the photos are zip shards: each listed in the datapackage like every file, with its hash
    zips = sorted(p for p in paths if p.startswith("images/"))
    assert zips and all(re.fullmatch(r"images/estado-\d\d-\d+\.zip", p) for p in zips)
    listed = {r["path"]: r for r in dp["resources"] if r.get("format") == "zip"}
    assert sorted(listed) == zips
    for p in zips:
        assert listed[p]["hash"] == "sha256:" + sha256((bundle / p).read_bytes())
        assert listed[p]["bytes"] == (bundle / p).stat().st_size and listed[p]["title"].startswith("Acta photos of")
    assert dp["testigo"]["shards"] == {"max_members": shards.DEFAULT_MAX_MEMBERS,
                                       "max_bytes": shards.DEFAULT_MAX_BYTES}
    assert (bundle / "minisign.pub").read_bytes() == signing_key.public.read_bytes()
    readme = (bundle / "README.md").read_text()
    for needle in ("sha256sum -c SHA256SUMS", "minisign -Vm SHA256SUMS -p minisign.pub", "testigo verify",
                   signing.public_key_base64(signing.load_public_key(signing_key.public)),
                   "Regla de conteo", "Counting rule", "cmp B2/SHA256SUMS"):
        assert needle in readme, needle
    text = "".join((bundle / n).read_text() for n in ("README.md", "datapackage.json", "LICENSE"))
    # nothing that changes between builds: the only date is the election's
    assert "timestamp" not in text and set(re.findall(r"\d{4}-\d{2}-\d{2}", text)) == {"2024-07-28"}


def test_schema_foreign_keys_indexes_totals_and_search(bundle):
    db = db_of(bundle)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(database.TABLES) <= tables and "centros_fts" in tables
    assert set(database.VIEWS) <= tables   # totals are tables written at build time, not views
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'view'").fetchone()[0] == 0
    fks = {(t, r["from"], r["table"]) for t in database.TABLES for r in db.execute(f"PRAGMA foreign_key_list({t})")}
    assert ("actas", "mesa_id", "mesas") in fks and ("actas", "image_sha256", "images") in fks
    assert ("acta_votes", "candidate", "candidates") in fks and ("centros", "parroquia_id", "parroquias") in fks
    # the totals' SELECTs join on indexes, not scans of the big tables (they run at build and verify)
    for name, (_, sql) in database.VIEWS.items():
        plan = " ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "SCAN acta_votes" not in plan and "SCAN mesas" not in plan, (name, plan)
    assert db.execute("PRAGMA page_size").fetchone()[0] == database.PAGE_SIZE
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    hits = db.execute("SELECT centro, parroquia FROM centros WHERE centro IN "
                      "(SELECT rowid FROM centros_fts WHERE centros_fts MATCH 'RECREO')").fetchall()
    assert hits and all("RECREO" in r["parroquia"] for r in hits)
    assert db.execute("SELECT count(*) FROM mesas").fetchone()[0] == 24_532
    assert db.execute("SELECT id FROM municipios WHERE id = '20.13'").fetchone()
    assert db.execute("SELECT count(*) FROM cards").fetchone()[0] == 38


def test_totals_are_indexed_tables_equal_to_their_definition(bundle):
    db = db_of(bundle)
    for name, (columns, sql) in database.VIEWS.items():
        assert [r["name"] for r in db.execute(f"PRAGMA table_info({name})")] == list(columns)
        stored = [tuple(r) for r in db.execute(f"SELECT * FROM {name} ORDER BY rowid")]
        assert stored and stored == [tuple(r) for r in db.execute(sql)], name   # same rows, same order
        indexed = {tuple(c["name"] for c in db.execute(f"PRAGMA index_info([{i['name']}])"))
                   for i in db.execute(f"PRAGMA index_list({name})")}
        assert indexed == set(database.totals_indexes(columns)), name
    # what the site and Datasette's pages ask of them is answered from an index
    for sql in ("SELECT candidate, votes FROM totals_centro WHERE centro = 1",
                "SELECT * FROM totals_parroquia WHERE parroquia_id = '1.1.1'",
                "SELECT * FROM totals_centro WHERE candidate = 'EG' ORDER BY votes DESC LIMIT 51",
                "SELECT * FROM totals_municipio ORDER BY votes DESC LIMIT 51"):
        plan = " ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (sql, plan)
    assert totals.totals_differences(db) == []


def test_every_totals_entry_is_materialized_the_same_way(tmp_path, monkeypatch):
    """Another totals relation added to VIEWS becomes an indexed table with no other change."""
    extra = ({"cod_edo": int, "estado": str, "mesas": int},
             "SELECT cod_edo, estado, count(*) AS mesas FROM centros GROUP BY cod_edo ORDER BY cod_edo DESC")
    monkeypatch.setitem(database.VIEWS, "totals_centros_por_estado", extra)
    tables = {name: [] for name in database.TABLES}
    tables["estados"] = [{"cod_edo": 1, "nombre": "A"}, {"cod_edo": 2, "nombre": "B"}]
    tables["municipios"] = [{"id": "1.1", "cod_edo": 1, "cod_mun": 1, "nombre": "m"}]
    tables["parroquias"] = [{"id": "1.1.1", "municipio_id": "1.1", "cod_edo": 1, "cod_par": 1, "nombre": "p"}]
    tables["centros"] = [{"centro": c, "codigo": str(c), "parroquia_id": "1.1.1", "municipio_id": "1.1",
                          "cod_edo": 1, "estado": "A", "municipio": "m", "parroquia": "p", "mesas": 1,
                          "electores": 1} for c in (10, 11)]
    database.write_database(tmp_path / "x.db", tables)
    db = sqlite3.connect(tmp_path / "x.db")
    assert db.execute("SELECT type FROM sqlite_master WHERE name = 'totals_centros_por_estado'").fetchone() == ("table",)
    assert db.execute("SELECT * FROM totals_centros_por_estado").fetchall() == [(1, "A", 2)]
    assert {r[1] for r in db.execute("PRAGMA index_list(totals_centros_por_estado)")} == {
        "idx_totals_centros_por_estado_cod_edo", "idx_totals_centros_por_estado_estado",
        "idx_totals_centros_por_estado_mesas"}
    assert totals.totals_differences(db) == []
    db.execute("UPDATE totals_centros_por_estado SET mesas = 3")
    assert "totals_centros_por_estado row 1 is (1, 'A', 3), but the actas give (1, 'A', 2)" in \
        totals.totals_differences(db)[0]
    # a SELECT that does not give the declared columns is a mistake caught at the first build
    monkeypatch.setitem(database.VIEWS, "totals_centros_por_estado", ({"cod_edo": int, "n": int}, extra[1]))
    with pytest.raises(ValueError, match="gives columns"):
        database.write_database(tmp_path / "y.db", tables)


def test_counting_rule_and_crosschecks(bundle, photo_workdir, csv_slice_rows):
    f = photo_workdir.facts
    db = db_of(bundle)

    def actas(row):
        mid = f"{int(row['CENTRO'])}.{int(row['MESA']):02d}"
        return [dict(r) for r in db.execute("SELECT * FROM actas WHERE mesa_id = ? ORDER BY id", (mid,))]

    got = {r["candidate"]: r["votes"] for r in db.execute("SELECT * FROM totals_nacional")}
    assert got == f["expected_totals"]
    counted_mesas = db.execute("SELECT count(DISTINCT mesa_id), count(*) FROM actas WHERE counted = 1").fetchone()
    assert tuple(counted_mesas) == (len(csv_slice_rows) + 2,) * 2   # one counted acta per mesa
    csv_a, qr_a = actas(f["agree"])
    assert (csv_a["source"], csv_a["counted"], qr_a["counted"]) == ("csv", 1, 0)
    assert qr_a["crosscheck"] == csv_a["crosscheck"] == "agree"
    csv_d, qr_d = actas(f["disagree"])
    assert csv_d["counted"] == 1 and qr_d["crosscheck"] == "disagree"
    assert json.loads(qr_d["crosscheck_diff"])["EG"] == {"qr": int(f["disagree"]["EG"]) - 1,
                                                         "csv": int(f["disagree"]["EG"])}
    (only,) = actas(f["qr_only"])
    # the QR's first trailing field is the mesa's nulos: it reaches the bundle (issue 20)
    assert only["source"] == "qr" and only["counted"] == 1 and only["payload"]
    assert only["nulos"] == int(f["qr_only"]["VOTOS_NULOS"]) == int(only["payload"].split("!")[2])
    dups = actas(f["dup"])
    assert sorted(a["status"] for a in dups) == ["duplicate", "ok"]
    ok = next(a for a in dups if a["status"] == "ok")
    assert ok["counted"] == 1 and next(a for a in dups if a["status"] == "duplicate")["duplicate_of"] == ok["id"]
    conflict = actas(f["conflict"])
    assert [a["status"] for a in conflict] == ["conflict", "conflict"] and not any(a["counted"] for a in conflict)
    # per-card votes fold back to per-candidate votes
    for a in db.execute("SELECT id FROM actas WHERE source = 'qr'"):
        cards = db.execute("SELECT c.candidate, sum(v.votes) FROM votes v JOIN cards c USING (position) "
                           "WHERE v.acta_id = ? GROUP BY c.candidate", (a[0],)).fetchall()
        per = dict(db.execute("SELECT candidate, votes FROM acta_votes WHERE acta_id = ?", (a[0],)).fetchall())
        assert dict(cards) == per
    # ids follow (centro, mesa, source, image, payload), never the workdir's ids
    keys = [(int(r["mesa_id"].split(".")[0]), int(r["mesa_id"].split(".")[1]), r["source"], r["image_sha256"] or "")
            for r in db.execute("SELECT * FROM actas ORDER BY id")]
    assert keys == sorted(keys)


def test_issues_name_files_without_local_paths(bundle, photo_workdir):
    db = db_of(bundle)
    issues = {r["file"]: dict(r) for r in db.execute("SELECT * FROM issues")}
    assert set(issues) == {"blurry.jpg", "conflict_a.jpg", "dup_a.jpg", "hoja_extra.csv#row=1",
                           "conflict_b.jpg", "notas.txt", "same_as_agree.jpg"}
    assert issues["blurry.jpg"]["outcome"] == "unreadable"
    assert issues["blurry.jpg"]["original_sha256"] == photo_workdir.facts["unreadable_sha"]
    assert issues["hoja_extra.csv#row=1"]["code"] == "bad_header"   # centre 999999999: no estado 99
    assert issues["same_as_agree.jpg"]["code"] == "same_file" and issues["same_as_agree.jpg"]["acta_id"]
    # no text anywhere in the database mentions the volunteer's folders, nor a zip's name or
    # folders (a chat export is a zip named after the contact who sent the photos)
    secret_bits = [photo_workdir.facts["local_dir"], "telefono de ana", str(photo_workdir.inbox.parent),
                   "lote 2", "whatsapp/"]
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '%fts%'"):
        for row in db.execute(f"SELECT * FROM [{table}]"):
            for value in row:
                if isinstance(value, str):
                    assert not any(s in value for s in secret_bits), (table, value)


def test_published_images_have_no_metadata_and_record_the_original(bundle, photo_workdir):
    db = db_of(bundle)
    rows = db.execute("SELECT * FROM images ORDER BY sha256").fetchall()
    photos = photo_workdir.facts["photos"]
    unreadable = photo_workdir.facts["unreadable_sha"]
    assert {r["original_sha256"] for r in rows} == set(photos.values()) - {unreadable}
    index = shards.open_images(bundle)
    assert not index.problems
    assert sorted(m.name for m in index) == sorted(Path(r["path"]).name for r in rows)
    for r in rows:
        assert r["path"] == f"images/{r['sha256']}.{'png' if r['media_type'] == 'image/png' else 'jpg'}"
        assert index.find(r["sha256"]).shard == r["shard"]
        data = index.read(r["sha256"])
        assert sha256(data) == r["sha256"] and len(data) == r["size"]
        original = (photo_workdir.path / "objects" / r["original_sha256"][:2] / r["original_sha256"]).read_bytes()
        assert sha256(original) == r["original_sha256"]
        before, after = Image.open(io.BytesIO(original)), Image.open(io.BytesIO(data))
        assert before.getexif().get_ifd(0x8825), "the fixture photo should carry GPS"
        assert not after.getexif() and not after.getexif().get_ifd(0x8825)
        assert b"Exif\x00\x00" not in data and b"TestPhone" not in data and b"volunteer" not in data
        assert not {k for k in after.info if k not in ("jfif", "jfif_version", "jfif_unit", "jfif_density",
                                                       "dpi", "gamma", "srgb", "icc_profile")}, after.info
        assert after.tobytes() == before.tobytes()      # lossless: the same pixels
        assert (r["width"], r["height"]) == after.size
        assert r["media_type"] == {"JPEG": "image/jpeg", "PNG": "image/png"}[after.format]


def test_two_builds_are_byte_identical(photo_workdir, signing_key, bundle, tmp_path):
    a = build_bundle(photo_workdir.path, tmp_path / "a", key=signing_key.secret, password=KEY_PASSWORD)
    build_bundle(photo_workdir.path, tmp_path / "b", key=signing_key.secret, password=KEY_PASSWORD)
    ha, hb = file_hashes(tmp_path / "a"), file_hashes(tmp_path / "b")
    assert ha == hb and ha == file_hashes(bundle)
    assert len([p for p in ha if p.startswith("images/")]) == a.shards == 3
    assert len(shards.open_images(tmp_path / "a")) == a.images == 7
    # with several shards per estado too (at most 2 photos each)
    d = build_bundle(photo_workdir.path, tmp_path / "d", key=signing_key.secret, password=KEY_PASSWORD,
                     shard_size=2)
    build_bundle(photo_workdir.path, tmp_path / "e", key=signing_key.secret, password=KEY_PASSWORD,
                 shard_size=2)
    hd = file_hashes(tmp_path / "d")
    assert hd == file_hashes(tmp_path / "e") and d.shards > a.shards
    assert len([p for p in hd if p.endswith("-2.zip")]) >= 1
    # without the secret key, a third party rebuilds with the public key and gets the same manifest
    c = build_bundle(photo_workdir.path, tmp_path / "c", public_key=signing_key.public)
    assert not c.signed and not (tmp_path / "c" / "SHA256SUMS.minisig").exists()
    assert (tmp_path / "c" / "SHA256SUMS").read_bytes() == (bundle / "SHA256SUMS").read_bytes()


def test_rebuild_replaces_a_previous_bundle_and_refuses_foreign_folders(photo_workdir, tmp_path, bundle):
    out = tmp_path / "out"
    build_bundle(photo_workdir.path, out, public_key=bundle / "minisign.pub")
    (out / "images" / "stale.jpg").write_bytes(b"left over")
    (out / "old.db").write_bytes(b"older database")
    build_bundle(photo_workdir.path, out, public_key=bundle / "minisign.pub")
    assert not (out / "images" / "stale.jpg").exists() and not (out / "old.db").exists()
    assert manifest.check_manifest(out).ok
    (out / "my notes.txt").write_text("do not delete me")
    with pytest.raises(bundle_mod.OutputNotEmpty, match="my notes.txt"):
        build_bundle(photo_workdir.path, out)
    assert (out / "my notes.txt").exists()
    other = tmp_path / "photos-of-my-cat"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(bundle_mod.OutputNotEmpty, match="not a testigo bundle"):
        build_bundle(photo_workdir.path, other)
    assert (other / "cat.jpg").read_bytes() == b"meow"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_rebuild_strips_only_new_photos(photo_workdir, copy_tree, stub_ingest, photo_factory, payload_for,
                                        csv_rows, tmp_path):
    wd = copy_tree(photo_workdir.path)
    import shutil
    shutil.rmtree(wd / published.CACHE_DIR, ignore_errors=True)
    first = build_bundle(wd, tmp_path / "b1")
    assert first.images_stripped == first.images == 7
    assert build_bundle(wd, tmp_path / "b1").images_stripped == 0
    new_row = csv_rows[-1]
    photo = photo_factory(payload_for(new_row))
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "late.jpg").write_bytes(photo)
    stub_ingest([tmp_path / "new"], wd, {sha256(photo): payload_for(new_row)})
    third = build_bundle(wd, tmp_path / "b1")
    assert (third.images, third.images_stripped) == (8, 1)
    assert verify_bundle(tmp_path / "b1").problems == ["no minisign.pub in the bundle and no --pubkey "
                                                       "given: the signature cannot be checked"]


def test_a_photo_without_metadata_is_not_stored_twice(photo_workdir, copy_tree, stub_ingest, payload_for,
                                                     csv_rows, tmp_path):
    """Stripping a photo that has no metadata changes nothing: the published-photo cache then
    shares the workdir's object (a hard link) instead of holding a second copy."""
    from archive.image import strip_metadata
    from archive.render import render_jpeg
    wd = copy_tree(photo_workdir.path)
    row = csv_rows[-2]
    photo = render_jpeg(payload_for(row), seed=5)          # no EXIF, no comment
    assert strip_metadata(photo) == photo
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "plain.jpg").write_bytes(photo)
    stub_ingest([tmp_path / "new"], wd, {sha256(photo): payload_for(row)})
    build_bundle(wd, tmp_path / "b")
    obj = wd / "objects" / sha256(photo)[:2] / sha256(photo)
    cached = wd / published.CACHE_DIR / "objects" / sha256(photo)[:2] / sha256(photo)
    assert cached.stat().st_ino == obj.stat().st_ino and obj.stat().st_nlink == 2
    row = db_of(tmp_path / "b").execute("SELECT * FROM images WHERE original_sha256 = ?", (sha256(photo),)).fetchone()
    assert row["sha256"] == sha256(photo) and bundle_image(tmp_path / "b", row) == photo
    # a photo with metadata gets its own, stripped, file
    exif_sha = photo_workdir.facts["photos"]["agree.jpg"]
    published_sha = db_of(tmp_path / "b").execute("SELECT sha256 FROM images WHERE original_sha256 = ?",
                                                  (exif_sha,)).fetchone()[0]
    assert published_sha != exif_sha
    assert (wd / published.CACHE_DIR / "objects" / published_sha[:2] / published_sha).stat().st_nlink == 1


def test_public_names_keep_no_folder_and_no_zip_name():
    """A chat export is a zip named after the contact who sent the photos: the bundle names a
    zipped photo by its own file name only, in the issues table and in reasons quoting it."""
    chat = "/home/ana/Descargas/WhatsApp Chat with Ana Pérez.zip!WhatsApp Chat with Ana Pérez/IMG-20240728-WA0003.jpg"
    sheet, windows = "/home/ana/hoja.csv#row=7", "C:\\Users\\ana\\fotos\\lote.zip!IMG_1.jpg"
    assert [locators.public_file_name(x) for x in (chat, sheet, windows, "foto.jpg")] == \
        ["IMG-20240728-WA0003.jpg", "hoja.csv#row=7", "IMG_1.jpg", "foto.jpg"]
    prefixes = locators.local_prefixes([chat, sheet, windows, "foto.jpg"])
    for loc in (chat, sheet, windows):
        said = locators.scrub(f"the same file was already ingested as {loc}", prefixes)
        assert said == f"the same file was already ingested as {locators.public_file_name(loc)}"
    assert locators.scrub("no QR code found", prefixes) == "no QR code found"


def test_issue_files_sort_as_people_sort_names():
    names = ["lote 10.zip!b.jpg", "foto 10.jpg", "foto 9.jpg", "foto 009.jpg", "foto.jpg", "foto-1.jpg",
             "a", "a1", "a-", "hoja.csv#row=100", "hoja.csv#row=20", "Z 1", "é 2", "foto 10b.jpg"]
    expected = ["Z 1", "a", "a1", "a-", "foto 009.jpg", "foto 9.jpg", "foto 10.jpg", "foto 10b.jpg",
                "foto-1.jpg", "foto.jpg", "hoja.csv#row=20", "hoja.csv#row=100", "lote 10.zip!b.jpg", "é 2"]
    by_key = sorted(names, key=lambda n: (bundle_mod.natural_key(n), n))
    assert by_key == expected
    # SQLite sorts the keys the same way (the build sorts issues in SQL)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (name TEXT, k TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(n, bundle_mod.natural_key(n)) for n in names])
    assert [r[0] for r in db.execute("SELECT name FROM t ORDER BY k, name")] == expected


def test_photos_differing_only_in_metadata_are_published_once(photo_workdir, copy_tree, stub_ingest,
                                                             photo_factory, payload_for, csv_rows, tmp_path):
    from archive.image import strip_metadata
    wd = copy_tree(photo_workdir.path)
    payload = payload_for(csv_rows[-2])
    with_gps = photo_factory(payload)
    without = strip_metadata(with_gps)   # e.g. the same file passed through a metadata cleaner
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(with_gps)
    (tmp_path / "in" / "b.jpg").write_bytes(without)
    stub_ingest([tmp_path / "in"], wd, {sha256(d): payload for d in (with_gps, without)})
    report = build_bundle(wd, tmp_path / "b")
    assert report.images == 8 and len(shards.open_images(tmp_path / "b")) == 8
    assert len(report.warnings) == 1 and "differ only in metadata" in report.warnings[0]
    db = db_of(tmp_path / "b")
    sha = sha256(without)
    assert db.execute("SELECT count(*) FROM actas WHERE image_sha256 = ?", (sha,)).fetchone()[0] == 2
    assert db.execute("SELECT original_sha256 FROM images WHERE sha256 = ?", (sha,)).fetchone()[0] == min(
        sha256(with_gps), sha)
    assert verify_bundle(tmp_path / "b").problems == ["no minisign.pub in the bundle and no --pubkey "
                                                      "given: the signature cannot be checked"]


def test_photos_stripped_in_worker_processes_give_the_same_bundle(photo_workdir, copy_tree, tmp_path, monkeypatch):
    """A national build strips on every core (worker processes) and zips in a process of its
    own; the bundle is the one a single process makes, and a worker's error reaches the caller."""
    import shutil
    one = copy_tree(photo_workdir.path)
    shutil.rmtree(one / published.CACHE_DIR, ignore_errors=True)
    alone = build_bundle(one, tmp_path / "alone")
    assert alone.images_stripped == alone.images == 7
    many = copy_tree(photo_workdir.path)
    shutil.rmtree(many / published.CACHE_DIR, ignore_errors=True)
    monkeypatch.setattr(published, "_PER_WORKER", 1)            # 7 photos are enough for 2 workers
    workers = build_bundle(many, tmp_path / "workers")
    assert workers.images_stripped == 7
    assert (tmp_path / "alone" / "SHA256SUMS").read_bytes() == (tmp_path / "workers" / "SHA256SUMS").read_bytes()
    assert len(shards.open_images(tmp_path / "workers")) == 7
    # an object gone from the workdir: the worker's error, with its advice, stops the build
    shutil.rmtree(many / published.CACHE_DIR)
    victim = next(p for p in (many / "objects").rglob("*") if p.is_file() and
                  p.name in {r["original_sha256"] for r in database_rows(tmp_path / "workers", "images")})
    victim.unlink()
    with pytest.raises(bundle_mod.WorkdirInconsistent, match="re-ingest the photo"):
        build_bundle(many, tmp_path / "broken")
    assert not (tmp_path / "broken").exists()


def database_rows(bundle: Path, table: str) -> list[dict]:
    return [dict(r) for r in db_of(bundle).execute(f"SELECT * FROM [{table}]")]


def test_damaged_image_cache_is_detected(photo_workdir, copy_tree, tmp_path):
    wd = copy_tree(photo_workdir.path)
    build_bundle(wd, tmp_path / "b")
    victim = next((wd / published.CACHE_DIR / "objects").rglob("*"))
    while victim.is_dir():
        victim = next(victim.iterdir())
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(bundle_mod.BundleError, match="cache"):
        build_bundle(wd, tmp_path / "b")
    assert manifest.check_manifest(tmp_path / "b").ok  # the previous bundle is left untouched


def test_wrong_or_missing_password(photo_workdir, signing_key, tmp_path, monkeypatch):
    monkeypatch.delenv(signing.PASSWORD_ENV, raising=False)
    with pytest.raises(signing.KeyPasswordError, match=signing.PASSWORD_ENV):
        build_bundle(photo_workdir.path, tmp_path / "x", key=signing_key.secret)
    with pytest.raises(signing.KeyPasswordError, match="wrong password"):
        build_bundle(photo_workdir.path, tmp_path / "x", key=signing_key.secret, password="nope")
    monkeypatch.setenv(signing.PASSWORD_ENV, KEY_PASSWORD)
    assert build_bundle(photo_workdir.path, tmp_path / "x", key=signing_key.secret).signed
    assert not (tmp_path / "y").exists()


def test_keygen_refuses_silent_unencrypted_keys_and_overwrites(tmp_path):
    with pytest.raises(signing.KeyPasswordError, match="--no-password"):
        signing.keygen(tmp_path / "k")
    files = signing.keygen(tmp_path / "k", "pw", limits=signing.INTERACTIVE)
    assert signing.secret_key_is_encrypted(files.secret)
    assert oct(files.secret.stat().st_mode & 0o777) == "0o600"
    assert files.public.read_text().startswith(f"untrusted comment: minisign public key {files.key_id}\n")
    with pytest.raises(signing.SigningError, match="already exists"):
        signing.keygen(tmp_path / "k", "pw2")
    plain = signing.keygen(tmp_path / "demo", unencrypted=True)
    assert not signing.secret_key_is_encrypted(plain.secret)


def test_cli_keygen_build_verify(photo_workdir, tmp_path, monkeypatch):
    from archive.bundle_cli import build, keygen, verify
    runner = CliRunner()
    monkeypatch.setenv(signing.PASSWORD_ENV, "pw from env")
    monkeypatch.setattr(signing, "SENSITIVE", signing.INTERACTIVE)
    r = runner.invoke(keygen, [str(tmp_path / "keys" / "pub")])
    assert r.exit_code == 0, r.output
    assert "encrypted" in r.output and signing.secret_key_is_encrypted(tmp_path / "keys" / "pub.key")
    r = runner.invoke(build, ["--workdir", str(photo_workdir.path), "--out", str(tmp_path / "B"),
                              "--key", str(tmp_path / "keys" / "pub")])
    assert r.exit_code == 0, r.output
    assert "EG" in r.output and "signed with key" in r.output
    r = runner.invoke(verify, [str(tmp_path / "B"), "--pubkey", str(tmp_path / "keys" / "pub.pub")])
    assert r.exit_code == 0 and r.output.startswith("OK"), r.output
    (tmp_path / "B" / "README.md").write_text("edited\n")
    r = runner.invoke(verify, [str(tmp_path / "B"), "--pubkey", str(tmp_path / "keys" / "pub.pub")])
    assert r.exit_code == 1 and "checksum mismatch: README.md" in r.output
    r = runner.invoke(build, ["--workdir", str(photo_workdir.path), "--out", str(tmp_path / "C"),
                              "--key", str(tmp_path / "nokey")])
    assert r.exit_code == 1 and "no secret key" in r.output and "Traceback" not in r.output
    for cmd in (build, keygen, verify):
        r = runner.invoke(cmd, ["--help"])
        assert r.exit_code == 0 and "--password" not in r.output
        assert cmd is verify or signing.PASSWORD_ENV in r.output


@pytest.mark.slow
def test_full_csv_bundle_totals_to_the_vote(full_bundle, real_csv):
    import csv as csv_mod
    from archive.election import open_text
    sums = dict.fromkeys(CSV_TOTALS, 0)
    with open_text(real_csv) as f:
        for row in csv_mod.DictReader(f):
            for k in sums:
                sums[k] += int(row[k])
    assert sums == CSV_TOTALS
    db = db_of(full_bundle)
    assert {r["candidate"]: r["votes"] for r in db.execute("SELECT * FROM totals_nacional")} == CSV_TOTALS
    assert db.execute("SELECT count(*), sum(counted) FROM actas").fetchone()[:] == (24_532, 24_532)
    by_state = db.execute("SELECT candidate, sum(votes) FROM totals_estado GROUP BY candidate").fetchall()
    assert dict(by_state) == CSV_TOTALS
    by_centre = db.execute("SELECT sum(votes) FROM totals_centro").fetchone()[0]
    assert by_centre == sum(CSV_TOTALS.values())
    dp = json.loads((full_bundle / "datapackage.json").read_text())
    assert dp["testigo"]["totals"] == CSV_TOTALS
    assert verify_bundle(full_bundle).ok
