"""Team bundles at their edges: transcribed photos, actas outside the registry, photos nobody
could read yet (they reach the merging workdir's transcription queue).
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from archive import election as election_mod
from archive import relay, render, signing, trust
from archive.bundle import build_bundle
from publish.cli import cli
from archive.ingest import ingest
from archive.workdir import Workdir
from conftest import sha256

from test_team_bundles import SAMPLE, TEAMS, db, file_hashes, merge, moved_payload, table_dump, write_sheet  # noqa: F401


def test_a_team_bundle_alone_gives_its_own_totals_including_transcribed_photos(transcribe_workdir, copy_tree,
                                                                                tmp_path):
    """One team's bundle (QR photos, sheet rows, a photo transcribed by its volunteers) merged into
    an empty workdir: every acta comes through with its source, the same totals and counted mesas."""
    from archive.transcription import Transcriptions
    from test_transcription import fields_of
    work = copy_tree(transcribe_workdir.path)
    sha, row = transcribe_workdir.photos["t_new1.jpg"]
    queue = Transcriptions(work)
    try:
        for name in ("Ana", "Beto"):
            queue.save(sha, queue.volunteer(name).id, fields_of(row))
    finally:
        queue.close()
    key = signing.keygen(tmp_path / "keys" / "lara", unencrypted=True)
    team = tmp_path / "lara-bundle"
    build_bundle(work, team, key=key.secret)
    keys = tmp_path / "keys.txt"
    keys.write_text(f"lara {key.public}\n")
    merged_work, merged = tmp_path / "w", tmp_path / "merged"
    res = merge([str(team), "--workdir", str(merged_work), "--trust", str(keys)])
    assert res.exit_code == 0 and re.search(r"lara\s+accepted [1-9]\d*\s+duplicates \d+\s+conflicts \d+\s+refused 0",
                                            res.output), res.output
    build_bundle(merged_work, merged, key=key.secret)
    a, b = db(team), db(merged)
    for sql in ("SELECT * FROM totals_nacional", "SELECT * FROM totals_centro",
                "SELECT mesa_id, source, status, counted, validos, nulos, crosscheck FROM actas ORDER BY 1, 2, 5",
                "SELECT sha256, original_sha256 FROM images ORDER BY 1"):
        assert a.execute(sql).fetchall() == b.execute(sql).fetchall(), sql
    t = b.execute("SELECT a.provenance, a.counted, i.original_sha256 FROM actas a JOIN images i "
                  "ON i.sha256 = a.image_sha256 WHERE a.source = 'transcribed-photo'").fetchall()
    assert [tuple(x) for x in t] == [("lara", 1, sha)]
    assert {r[0] for r in b.execute("SELECT DISTINCT provenance FROM actas")} == {"lara"}


def test_outside_registry_actas_of_a_team_stay_flagged_and_apart(csv_rows, tmp_path):
    """A team's QR acta of a mesa the registry lacks comes through kept and flagged, counted in
    the separate line, never in the registry totals (decision 3), and names its team."""
    from conftest import make_photo, payload_for_row
    from test_registry import PHOTO_WIDTH, _as_mesa
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    outside = _as_mesa(csv_rows[4321], 21201999, 1)
    (inbox / "fuera.jpg").write_bytes(make_photo(payload_for_row(outside), width=PHOTO_WIDTH))
    (inbox / "dentro.jpg").write_bytes(make_photo(payload_for_row(csv_rows[4322]), width=PHOTO_WIDTH))
    ingest([str(inbox)], tmp_path / "team", jobs=1)
    key = signing.keygen(tmp_path / "sucre", unencrypted=True)
    build_bundle(tmp_path / "team", tmp_path / "B", key=key.secret)
    (tmp_path / "keys").write_text(f"sucre {key.public}\n")
    res = merge([str(tmp_path / "B"), "--workdir", str(tmp_path / "w"), "--trust", str(tmp_path / "keys")])
    assert res.exit_code == 0 and re.search(r"sucre\s+accepted 2 ", res.output), res.output
    assert "1 accepted acta(s) name a mesa outside the registry" in res.output
    build_bundle(tmp_path / "w", tmp_path / "M", key=key.secret)
    team, merged = db(tmp_path / "B"), db(tmp_path / "M")
    for sql in ("SELECT * FROM totals_nacional", "SELECT * FROM outside_registry_totals",
                "SELECT mesa_id, outside_registry, counted, counted_outside FROM actas ORDER BY 1"):
        assert team.execute(sql).fetchall() == merged.execute(sql).fetchall(), sql
    row = merged.execute("SELECT outside_registry, counted_outside, provenance FROM actas WHERE mesa_id = ?",
                         ("21201999.01",)).fetchone()
    assert tuple(row) == (1, 1, "sucre")
    with Workdir(tmp_path / "w") as wd:  # the input says so too, as for an own photo
        assert [r[0] for r in wd.db.execute("SELECT locator FROM inputs WHERE code = 'outside_registry'")] == \
            [f"team-bundle:sucre:{sha256((tmp_path / 'B' / 'SHA256SUMS').read_bytes())[:16]}!acta="
             f"{team.execute('SELECT id FROM actas WHERE outside_registry = 1').fetchone()[0]}"]


def test_photos_a_team_could_not_read_reach_the_merging_workdirs_transcription_queue(transcribe_workdir, copy_tree,
                                                                                    tmp_path):
    """`build --unread-photos`: the team's queue (photos that gave no acta) travels in its bundle,
    listed with no acta and its issue; the merge takes them with the team's reading into the
    national queue, where two volunteers' entries make the acta. A plain build publishes none."""
    from archive.transcription import Transcriptions, unread
    from archive.transcription import photos as transcription_photos
    from archive.verify import verify_bundle
    from test_transcription import fields_of
    work = copy_tree(transcribe_workdir.path)
    photos = transcribe_workdir.photos
    queue = Transcriptions(work)
    try:
        for name in ("Ana", "Beto"):          # the team transcribed one photo itself
            queue.save(photos["t_new1.jpg"][0], queue.volunteer(name).id, fields_of(photos["t_new1.jpg"][1]))
        waiting = set(unread(queue.db))
    finally:
        queue.close()
    assert photos["t_new1.jpg"][0] not in waiting and photos["t_new2.jpg"][0] in waiting and len(waiting) >= 8
    key = signing.keygen(tmp_path / "keys" / "lara", unencrypted=True)
    no_acta = "SELECT original_sha256 FROM images WHERE sha256 NOT IN (SELECT image_sha256 FROM actas " \
              "WHERE image_sha256 IS NOT NULL)"
    plain, team = tmp_path / "plain", tmp_path / "lara-bundle"
    build_bundle(work, plain, key=key.secret)
    assert db(plain).execute(no_acta).fetchall() == []                 # the default: none published
    assert json.loads((plain / "datapackage.json").read_text())["testigo"]["unread_photos"] is False
    res = CliRunner().invoke(cli, ["build", "--workdir", str(work), "--out", str(team), "--key",
                                   str(key.secret), "--unread-photos"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert verify_bundle(team, signing.load_public_key(key.public)).ok
    t = db(team)
    assert {r[0] for r in t.execute(no_acta)} == waiting
    issues = {r[0]: r[1] for r in t.execute("SELECT original_sha256, outcome FROM issues")}
    assert {issues[s] for s in waiting} == {"unreadable", "invalid"}
    assert json.loads((team / "datapackage.json").read_text())["testigo"]["unread_photos"] is True
    assert "--unread-photos" in (team / "README.md").read_text()
    # the merge: the team's unread photos join this workdir's queue, as the team's published copies
    keys = tmp_path / "keys.txt"
    keys.write_text(f"lara {key.public}\n")
    merged_work = tmp_path / "w"
    args = [str(team), "--workdir", str(merged_work), "--trust", str(keys)]
    dry = merge(args + ["--dry-run"])
    assert dry.exit_code == 0 and f"{len(waiting)} photo(s) lara could not read" in dry.output, dry.output
    assert not merged_work.exists()
    res = merge(args)
    assert res.exit_code == 0 and f"{len(waiting)} photo(s) lara could not read: taken" in res.output, res.output
    published = {r[1]: r[0] for r in t.execute("SELECT sha256, original_sha256 FROM images")}
    queue = Transcriptions(merged_work)
    try:
        here = {p.sha256: p for p in transcription_photos(queue.db)}
        assert set(here) == {published[s] for s in waiting}
        assert all(p.state == "open" for p in here.values())
        reasons = dict(queue.db.execute("SELECT sha256, reason FROM inputs WHERE outcome IN ('unreadable', 'invalid')"))
        assert all(reasons[s].startswith("lara: ") for s in here), reasons
        new2 = published[photos["t_new2.jpg"][0]]
        for name in ("Carla", "Dario"):
            queue.save(new2, queue.volunteer(name).id, fields_of(photos["t_new2.jpg"][1]))
    finally:
        queue.close()
    before = table_dump(merged_work)
    again = merge(args)
    assert again.exit_code == 0 and "already taken in before" in again.output
    assert table_dump(merged_work) == before
    # later the team's own volunteers agree on another photo: its newer bundle decides it here too
    queue = Transcriptions(work)
    try:
        for name in ("Ana", "Beto"):
            queue.save(photos["t_new3.jpg"][0], queue.volunteer(name).id, fields_of(photos["t_new3.jpg"][1]))
    finally:
        queue.close()
    build_bundle(work, tmp_path / "lara-2", key=key.secret, unread_photos=True)
    newer = merge([str(tmp_path / "lara-2")] + args[1:])
    assert newer.exit_code == 0 and "could not read" not in newer.output, newer.output
    with Workdir(merged_work) as wd:
        assert set(unread(wd.db)) == {published[s] for s in waiting} - {new2, published[photos["t_new3.jpg"][0]]}
    build_bundle(merged_work, tmp_path / "M", key=key.secret)
    m = db(tmp_path / "M")
    row = m.execute("SELECT a.source, a.counted, i.original_sha256 FROM actas a JOIN images i "
                    "ON i.sha256 = a.image_sha256 WHERE a.mesa_id = ?",
                    (f"{int(photos['t_new2.jpg'][1]['CENTRO'])}.{int(photos['t_new2.jpg'][1]['MESA']):02d}",)).fetchone()
    assert tuple(row) == ("transcribed-photo", 1, photos["t_new2.jpg"][0])   # the team's original named
    counts = json.loads((tmp_path / "M" / "datapackage.json").read_text())["testigo"]["counts"]
    assert counts["photos_awaiting_transcription"] == len(waiting) - 2
    assert m.execute("SELECT provenance FROM actas WHERE source = 'transcribed-photo' AND image_sha256 = ?",
                     (published[photos["t_new3.jpg"][0]],)).fetchone()[0] == "lara"
