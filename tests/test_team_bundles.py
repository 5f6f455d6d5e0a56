"""Team bundles as sources (`testigo ingest B --trust KEYS`): a relay of three teams, merged.

Three teams ingest disjoint and overlapping parts of the shipped sample (real QR decoding),
one of them also a transcribed sheet and one a photo with a conflicting reading; each builds a
bundle signed with its own key. A national workdir with its own sheet and photo takes them in;
a direct ingest of the same inputs is the yardstick.
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

SAMPLE = election_mod.load().folder / "sample"
TEAMS = ("bolivar", "caracas", "zulia")


def write_sheet(path: Path, rows: list[dict]) -> Path:
    with election_mod.open_text(election_mod.load().registry_path) as f:
        header = next(csv.reader(f))
    out = io.StringIO(newline="")
    w = csv.DictWriter(out, header, extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def moved_payload(payload: str, election) -> str:
    """The same acta with one vote moved from the first non-zero card to a card of another
    candidate: válidos unchanged, candidates' numbers different (a conflicting reading)."""
    head, counts, *tail = payload.split("!")
    n = [int(x) for x in counts.split(",")]
    src = next(i for i, v in enumerate(n) if v > 0)
    owner = election.cards[src].candidate
    dst = next(i for i, k in enumerate(election.cards) if k.candidate != owner)
    n[src] -= 1
    n[dst] += 1
    return "!".join([head, ",".join(map(str, n)), *tail])


def db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path / 've-2024.db'}?mode=ro&immutable=1", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def file_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


def table_dump(workdir: Path) -> dict:
    conn = sqlite3.connect(workdir / "state.db")
    out = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
           for t in ("inputs", "actas", "team_bundles", "team_actas", "team_images", "blobs")}
    conn.close()
    return out


def merge(args: list[str]):
    return CliRunner().invoke(cli, ["ingest", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def relay_setup(tmp_path_factory, csv_rows):
    base = tmp_path_factory.mktemp("relay")
    e = election_mod.load()
    truth = {r["file"]: r for r in csv.DictReader(open(SAMPLE / "MANIFEST.csv", encoding="utf-8"))}
    photos = sorted(p for p in SAMPLE.glob("*.jpg"))
    by_mesa = {(int(r["CENTRO"]), int(r["MESA"])): r for r in csv_rows}
    parts = {"bolivar": photos[0:16], "caracas": photos[12:28], "zulia": photos[28:40]}
    inbox = {}
    for team, files in parts.items():
        folder = base / "inbox" / team
        folder.mkdir(parents=True)
        for p in files:
            shutil.copyfile(p, folder / p.name)
        inbox[team] = folder
    # caracas also transcribed a sheet: rows of four of its photos' mesas (cross-check) and five more
    photo_mesas = [(int(truth[p.name]["centro"]), int(truth[p.name]["mesa"])) for p in parts["caracas"][4:8]]
    caracas_rows = [by_mesa[m] for m in photo_mesas] + csv_rows[1000:1005]
    write_sheet(inbox["caracas"] / "hoja_caracas.csv", caracas_rows)
    # zulia photographed one of bolivar's actas and read different numbers
    victim = parts["bolivar"][2]
    conflict_payload = moved_payload(truth[victim.name]["payload"], e)
    (inbox["zulia"] / "otra_foto.jpg").write_bytes(render.render_jpeg(conflict_payload, seed=5, level="clean",
                                                                      election=e))
    conflict_mesa = f"{int(truth[victim.name]['centro'])}.{int(truth[victim.name]['mesa']):02d}"
    keys, bundles, workdirs = {}, {}, {}
    for team in TEAMS:
        keys[team] = signing.keygen(base / "keys" / team, unencrypted=True)
        workdirs[team] = base / "work" / team
        s = ingest([str(inbox[team])], workdirs[team], jobs=2)
        assert s.new["decoded"] + s.new.get("duplicate", 0) >= len(parts[team]) - 1, s
        bundles[team] = base / "bundles" / team
        build_bundle(workdirs[team], bundles[team], key=keys[team].secret)
    keys["nacional"] = signing.keygen(base / "keys" / "nacional", unencrypted=True)
    intruder = signing.keygen(base / "keys" / "intruder", unencrypted=True)
    # the national team's own inputs: a sheet (one row also in caracas's sheet) and one photo zulia also has
    own = base / "inbox" / "nacional"
    own.mkdir(parents=True)
    write_sheet(own / "hoja_nacional.csv", csv_rows[2000:2004] + [csv_rows[1000]])
    shutil.copyfile(parts["zulia"][2], own / parts["zulia"][2].name)
    keys_file = base / "equipos.keys"
    keys_file.write_text("# trusted teams for the national merge\n"
                         + "".join(f"{t}  {signing.public_key_base64(signing.load_public_key(keys[t].public))}"
                                   f"   # key {keys[t].key_id}\n" for t in TEAMS))
    return {"base": base, "inbox": inbox, "own": own, "parts": parts, "keys": keys, "bundles": bundles,
            "workdirs": workdirs, "keys_file": keys_file, "intruder": intruder,
            "conflict_mesa": conflict_mesa, "caracas_rows": caracas_rows, "csv_rows": csv_rows}


@pytest.fixture(scope="module")
def national(relay_setup):
    """The merge, as a coordinator runs it: own inputs, a dry run, then the team bundles; built."""
    r = relay_setup
    base, work = r["base"], r["base"] / "work" / "nacional"
    first = merge([str(r["own"]), "--workdir", str(work), "-j", "2"])
    assert first.exit_code == 0, first.output
    bundle_args = [str(r["bundles"][t]) for t in TEAMS] + ["--workdir", str(work), "--trust", str(r["keys_file"])]
    before = table_dump(work)
    objects_before = sorted(p.name for p in (work / "objects").rglob("*") if p.is_file())
    dry = merge(bundle_args + ["--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert table_dump(work) == before, "a dry run wrote to the workdir"
    assert sorted(p.name for p in (work / "objects").rglob("*") if p.is_file()) == objects_before
    real = merge(bundle_args)
    assert real.exit_code == 0, real.output
    out = base / "bundles" / "nacional"
    report = build_bundle(work, out, key=r["keys"]["nacional"].secret)
    # the yardstick: one workdir ingesting every input directly
    direct = base / "work" / "direct"
    ingest([str(r["own"])] + [str(r["inbox"][t]) for t in TEAMS], direct, jobs=2)
    direct_bundle = base / "bundles" / "direct"
    build_bundle(direct, direct_bundle, key=r["keys"]["nacional"].secret)
    return {"work": work, "bundle": out, "report": report, "dry": dry.output, "real": real.output,
            "bundle_args": bundle_args, "direct": direct_bundle}


def test_merge_gives_the_totals_of_a_direct_ingest(national):
    merged, direct = db(national["bundle"]), db(national["direct"])
    for view in ("totals_nacional", "totals_estado", "totals_centro"):
        assert merged.execute(f"SELECT * FROM {view}").fetchall() == direct.execute(f"SELECT * FROM {view}").fetchall()
    counted = "SELECT a.mesa_id, a.source, a.validos FROM actas a WHERE counted = 1 ORDER BY 1"
    assert merged.execute(counted).fetchall() == direct.execute(counted).fetchall()
    assert sum(r[0] for r in merged.execute("SELECT votes FROM totals_nacional")) > 0
    # the same photos, published once each, with the original's sha256 the volunteer's phone made
    images = "SELECT sha256, original_sha256, size FROM images ORDER BY 1"
    assert merged.execute(images).fetchall() == direct.execute(images).fetchall()


def test_every_acta_names_the_team_that_brought_it(national, relay_setup):
    r = relay_setup
    merged = db(national["bundle"])
    shas = {t: {sha256(p.read_bytes()) for p in r["inbox"][t].glob("*.jpg")} for t in TEAMS}
    own_shas = {sha256(p.read_bytes()) for p in r["own"].glob("*.jpg")}
    mesas = lambda rows: {f"{int(x['CENTRO'])}.{int(x['MESA']):02d}" for x in rows}
    sheet_mesas = {"caracas": mesas(r["caracas_rows"]), "own": mesas(r["csv_rows"][2000:2004] + [r["csv_rows"][1000]])}
    rows = merged.execute("SELECT a.*, i.original_sha256, t.label, t.key_id, t.bundle_hash, t.via FROM actas a "
                          "LEFT JOIN images i ON i.sha256 = a.image_sha256 "
                          "LEFT JOIN team_bundles t ON t.id = a.team_bundle_id").fetchall()
    per_team = {}
    for a in rows:
        team = a["provenance"]
        per_team[team] = per_team.get(team, 0) + 1
        if team == "own":
            assert a["team_bundle_id"] is None
            assert (a["original_sha256"] in own_shas) if a["source"] == "qr" else a["mesa_id"] in sheet_mesas["own"]
            continue
        assert team in TEAMS and a["label"] == team and a["via"] is None
        assert a["key_id"] == r["keys"][team].key_id
        assert a["bundle_hash"] == sha256((r["bundles"][team] / "SHA256SUMS").read_bytes())
        if a["source"] == "qr":
            assert a["original_sha256"] in shas[team], (team, a["mesa_id"])
        else:
            assert a["mesa_id"] in sheet_mesas[team]
    for t in TEAMS:  # every acta of every team bundle is there, once, under its team
        assert per_team[t] == db(r["bundles"][t]).execute("SELECT count(*) FROM actas").fetchone()[0]
    assert per_team["own"] == 5 + 1
    # the same mesa from two teams with the same numbers: a duplicate, both provenances kept
    dup = merged.execute("SELECT d.provenance, o.provenance FROM actas d JOIN actas o ON o.id = d.duplicate_of "
                         "WHERE d.provenance != o.provenance").fetchall()
    assert {tuple(x) for x in dup} >= {("caracas", "bolivar"), ("caracas", "own"), ("zulia", "own")}
    # the bundle says it in its datapackage and README
    dp = json.loads((national["bundle"] / "datapackage.json").read_text())
    teams = {t["team"]: t for t in dp["testigo"]["team_bundles"]}
    assert set(teams) == set(TEAMS) and all(teams[t]["key_id"] == r["keys"][t].key_id for t in TEAMS)
    assert {t: teams[t]["actas"] for t in TEAMS} == {t: per_team[t] for t in TEAMS}
    fields = next(x for x in dp["resources"] if x["name"] == "actas")["schema"]["fields"]
    assert {"team_bundle_id", "provenance"} <= {f["name"] for f in fields}
    readme = (national["bundle"] / "README.md").read_text()
    for t in TEAMS:
        assert r["keys"][t].key_id in readme and teams[t]["bundle_hash"] in readme
    assert "Contributing team bundles" in readme and "neither team is preferred" in readme


def test_the_cross_team_conflict_is_flagged_with_both_teams(national, relay_setup):
    mesa = relay_setup["conflict_mesa"]
    merged = db(national["bundle"])
    rows = merged.execute("SELECT provenance, status, counted FROM actas WHERE mesa_id = ? AND source = 'qr'",
                          (mesa,)).fetchall()
    conflicting = {r["provenance"] for r in rows if r["status"] == "conflict"}
    assert conflicting == {"bolivar", "zulia"} and not any(r["counted"] for r in rows)
    assert re.search(rf"conflict: mesa {re.escape(mesa)} \(qr\): bolivar / zulia read different numbers",
                     national["real"])


def test_the_merge_is_printed_per_team_and_the_dry_run_says_the_same(national):
    real, dry = national["real"], national["dry"]
    assert "[dry run: nothing written]" in dry and "dry run" not in real
    strip = lambda text: re.sub(r" \[dry run: nothing written\]", "", text)
    assert strip(dry) == real
    for t in TEAMS:
        line = next(l for l in real.splitlines() if l.strip().startswith(t + " "))
        assert re.search(r"accepted \d+  duplicates \d+  conflicts \d+  refused 0  known 0", line), line
    zulia = next(l for l in real.splitlines() if l.strip().startswith("zulia "))
    assert "conflicts 1" in zulia


def test_rerunning_the_merge_is_a_no_op_and_the_bundle_rebuilds_identically(national, relay_setup, tmp_path):
    before = table_dump(national["work"])
    again = merge(national["bundle_args"])
    assert again.exit_code == 0 and again.output.count("already taken in before, nothing new") == 3, again.output
    assert table_dump(national["work"]) == before
    rebuilt = tmp_path / "again"
    build_bundle(national["work"], rebuilt, key=relay_setup["keys"]["nacional"].secret)
    assert file_hashes(rebuilt) == file_hashes(national["bundle"])


def test_photos_already_in_the_workdir_are_not_stored_twice(national, relay_setup):
    conn = sqlite3.connect(national["work"] / "state.db")
    own_photo = next(relay_setup["own"].glob("*.jpg"))
    own_sha = sha256(own_photo.read_bytes())
    # zulia's acta of the national team's own photo points at the photo already there
    assert conn.execute("SELECT count(*) FROM team_images WHERE original_sha256 = ?", (own_sha,)).fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM actas WHERE image_sha256 = ?", (own_sha,)).fetchone()[0] == 2
    # photos two teams both published are stored once, under the published sha256
    stored = [r[0] for r in conn.execute("SELECT sha256 FROM team_images")]
    originals = [r[0] for r in conn.execute("SELECT original_sha256 FROM team_images")]
    assert len(originals) == len(set(originals)) == len(stored)
    objects = {p.name for p in (national["work"] / "objects").rglob("*") if p.is_file()}
    assert set(stored) <= objects
    overlap = {sha256(p.read_bytes()) for p in relay_setup["parts"]["bolivar"]} & \
        {sha256(p.read_bytes()) for p in relay_setup["parts"]["caracas"]}
    assert len(overlap) == 4 and overlap <= set(originals)


def test_untrusted_and_tampered_bundles_are_refused_whole(national, relay_setup, copy_tree, tmp_path):
    r = relay_setup
    work = copy_tree(national["work"])
    before = table_dump(work)
    # a bundle signed by a key nobody trusted (an intruder rebuilding caracas's workdir)
    fake = tmp_path / "fake"
    build_bundle(r["workdirs"]["caracas"], fake, key=r["intruder"].secret)
    res = merge([str(fake), "--workdir", str(work), "--trust", str(r["keys_file"])])
    assert res.exit_code == 1
    assert f"signed by key {r['intruder'].key_id}, which is not a trusted key" in res.output
    assert "REFUSED, nothing taken" in res.output
    # a team missing from KEYS is refused the same way
    only_two = tmp_path / "two.keys"
    only_two.write_text("\n".join(l for l in r["keys_file"].read_text().splitlines() if not l.startswith("zulia")))
    fresh = tmp_path / "fresh"
    res = merge([str(r["bundles"]["zulia"]), str(r["bundles"]["bolivar"]), "--workdir", str(fresh),
                 "--trust", str(only_two)])
    assert res.exit_code == 1 and r["keys"]["zulia"].key_id in res.output
    assert re.search(r"bolivar\s+accepted [1-9]\d*", res.output), res.output
    with Workdir(fresh) as wd:
        assert {x[0] for x in wd.db.execute("SELECT label FROM team_bundles")} == {"bolivar"}
    # a team bundle altered after it was signed: one photo, then the database
    for victim in ("images", "ve-2024.db"):
        bad = copy_tree(r["bundles"]["caracas"])
        target = sorted((bad / "images").iterdir())[0] if victim == "images" else bad / victim
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
        res = merge([str(bad), "--workdir", str(work), "--trust", str(r["keys_file"])])
        assert res.exit_code == 1 and "checksum mismatch" in res.output and "caracas" in res.output, res.output
    # a bundle re-signed by an intruder after altering it, with the team's public key still inside
    bad = copy_tree(r["bundles"]["caracas"])
    signing.sign_file(signing.load_secret_key(r["intruder"].secret), bad / "SHA256SUMS", "x")
    res = merge([str(bad), "--workdir", str(work), "--trust", str(r["keys_file"])])
    assert res.exit_code == 1 and "not a trusted key" in res.output
    assert table_dump(work) == before


def test_a_newer_bundle_of_a_team_adds_only_what_is_new(national, relay_setup, copy_tree, tmp_path):
    r = relay_setup
    work = copy_tree(national["work"])
    team_work = copy_tree(r["workdirs"]["bolivar"])
    extra = sorted(SAMPLE.glob("*.jpg"))[36:40]  # zulia's photos, now also photographed in Bolívar
    ingest([str(p) for p in extra], team_work, jobs=2)
    newer = tmp_path / "bolivar-2"
    build_bundle(team_work, newer, key=r["keys"]["bolivar"].secret)
    res = merge([str(newer), "--workdir", str(work), "--trust", str(r["keys_file"]), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)["teams"][0]
    old = db(r["bundles"]["bolivar"]).execute("SELECT count(*) FROM actas").fetchone()[0]
    got = rep["teams"]["bolivar"]
    assert got["known"] == old and got["accepted"] + got["duplicates"] + got["conflicts"] == len(extra)
    assert got["duplicates"] == len(extra)  # zulia brought these first: duplicates, both provenances kept


def test_a_national_bundle_still_names_the_state_teams(national, relay_setup, tmp_path):
    r = relay_setup
    keys = tmp_path / "k"
    keys.write_text(f"nacional {r['keys']['nacional'].public}\n")
    work = tmp_path / "continental"
    res = merge([str(national["bundle"]), "--workdir", str(work), "--trust", str(keys)])
    assert res.exit_code == 0, res.output
    out = tmp_path / "B"
    build_bundle(work, out, key=r["keys"]["nacional"].secret)
    conn = db(out)
    got = dict(conn.execute("SELECT provenance, count(*) FROM actas GROUP BY 1").fetchall())
    assert got == dict(db(national["bundle"]).execute(
        "SELECT CASE provenance WHEN 'own' THEN 'nacional' ELSE provenance || ' via nacional' END, count(*) "
        "FROM actas GROUP BY 1").fetchall())
    chain = conn.execute("SELECT t.label, t.key_id, v.label FROM team_bundles t JOIN team_bundles v ON v.id = t.via "
                         "WHERE t.label = 'zulia'").fetchone()
    assert tuple(chain) == ("zulia", r["keys"]["zulia"].key_id, "nacional")
    assert conn.execute("SELECT * FROM totals_nacional").fetchall() == \
        db(national["bundle"]).execute("SELECT * FROM totals_nacional").fetchall()
    for line in ("zulia via nacional", "bolivar via nacional", "nacional "):
        assert line in res.output


def test_one_command_mixes_own_photos_sheets_and_team_bundles(relay_setup, tmp_path):
    r = relay_setup
    work = tmp_path / "w"
    res = merge([str(r["own"]), *(str(r["bundles"][t]) for t in TEAMS), "--workdir", str(work),
                 "--trust", str(r["keys_file"]), "-j", "1"])
    assert res.exit_code == 0, res.output
    assert "transcribed" in res.output and all(f"{t} (key {r['keys'][t].key_id})" in res.output for t in TEAMS)
    with Workdir(work) as wd:
        kinds = dict(wd.db.execute("SELECT kind, count(*) FROM inputs GROUP BY kind").fetchall())
    assert kinds["image"] == 1 and kinds["sheet-row"] == 5 and kinds["team-bundle"] > 30


def test_cli_guides_the_coordinator(relay_setup, tmp_path):
    r = relay_setup
    res = CliRunner().invoke(cli, ["ingest", str(r["bundles"]["zulia"]), "--workdir", str(tmp_path / "w")])
    assert res.exit_code == 2 and "--trust KEYS" in res.output
    res = CliRunner().invoke(cli, ["ingest", str(r["own"]), "--workdir", str(tmp_path / "w"), "--dry-run",
                                   "--trust", str(r["keys_file"])])
    assert res.exit_code == 2
    assert not (tmp_path / "w").exists()
    help_text = CliRunner().invoke(cli, ["ingest", "--help"]).output
    assert "--trust" in help_text and "--dry-run" in help_text


# --- the KEYS file ----------------------------------------------------------------------------------

def test_keys_file_format(tmp_path, relay_setup):
    k = relay_setup["keys"]
    pub = signing.public_key_base64(signing.load_public_key(k["bolivar"].public))
    (tmp_path / "teams").mkdir()
    shutil.copyfile(k["zulia"].public, tmp_path / "teams" / "zulia.pub")
    f = tmp_path / "keys"
    f.write_text(f"# comment line\n\nbolivar   {pub}   # Bolívar, checked by phone\nzulia teams/zulia.pub\n")
    keys = trust.load_keys(f)
    assert [(x.label, x.key_id) for x in keys] == [("bolivar", k["bolivar"].key_id), ("zulia", k["zulia"].key_id)]
    for text, needle in ((f"bolivar {pub}\nbolivar2 {pub}\n", "already trusted as 'bolivar'"),
                         (f"bolivar {pub}\nbolivar teams/zulia.pub\n", "used twice"),
                         (f"bolivar {pub} extra\n", "line 1: expected 'LABEL  KEY'"),
                         ("bolivar notakey\n", "neither a minisign public key"),
                         (f"bad/label {pub}\n", "must be one word"),
                         ("# nothing\n", "names no key")):
        f.write_text(text)
        with pytest.raises(trust.TrustError, match=re.escape(needle)):
            trust.load_keys(f)


def test_a_folder_that_is_not_a_bundle_is_refused_clearly(tmp_path, relay_setup):
    keys = trust.load_keys(relay_setup["keys_file"])
    with Workdir(tmp_path / "w") as wd:
        rep = relay.ingest_bundle(wd, tmp_path, keys)
    assert not rep.ok and "not a testigo bundle" in rep.refused[0]
