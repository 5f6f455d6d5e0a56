"""The audit (issue 19): checks and forensic tests computed at build time into audit_* tables.

Bundles are built from crafted inputs (real rows of three estados, with planted anomalies) and
from the same rows untouched; every check must list exactly the planted mesas, the rounded
estado's digit tests must be flagged, and nothing must fire in the clean case. The audit is
then recomputed with plain SQL and scipy, and compared with `testigo audit --json`.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner
from scipy import stats

from archive import audit, audit_paper, audit_tables
from archive.bundle import build_bundle
from publish.cli import cli
from conftest import KEY_PASSWORD, make_photo, payload_for_row

ESTADOS = ("22", "23", "24")     # Amazonas, Delta Amacuro, La Guaira: 609 mesas
ROUNDED = "24"                    # EG and NM rounded to tens there, válidos kept their sum
CODES = ["EG", "NM", "LM", "JABE", "JOBR", "AE", "CF", "DC", "EM", "BERA"]
SAME = {"EG": 101, "NM": 43, "LM": 3, "JABE": 0, "JOBR": 1, "AE": 2, "CF": 0, "DC": 1, "EM": 0, "BERA": 1}


def _mid(row) -> str:
    return f"{int(row['CENTRO'])}.{int(row['MESA']):02d}"


def _write_csv(path: Path, rows: list[dict]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[k for k in rows[0] if not k.startswith("_")], extrasaction="ignore",
                       lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text("\ufeff" + buf.getvalue(), encoding="utf-8")
    return path


def _set(row: dict, votes: dict[str, int], nulos: int | None = None) -> dict:
    row = dict(row)
    for c in CODES:
        row[c] = str(votes.get(c, 0))
    row["VOTOS_VALIDOS"] = str(sum(votes.values()))
    if nulos is not None:
        row["VOTOS_NULOS"] = str(nulos)
    return row


def _round(n: int) -> int:
    return n - n % 10 + (10 if n % 10 >= 5 else 0)


def _craft(rows: list[dict]) -> tuple[list[dict], dict[str, set[str]], dict]:
    """The crafted sheet and, per check, the mesas planted in it; plus the QR-only extras."""
    rows = [dict(r) for r in rows]
    planted: dict[str, set[str]] = defaultdict(set)
    free = [i for i, r in enumerate(rows) if r["COD_EDO"] != ROUNDED]
    # 30 mesas with the same vote vector (each has room for it)
    same = [i for i in free if int(rows[i]["RE"]) >= 200][:30]
    assert len(same) == 30
    for i in same:
        rows[i] = _set(rows[i], SAME, nulos=0)
        planted["identical_numbers"].add(_mid(rows[i]))
    rest = [i for i in free if i not in same]
    zero, single, summ, over, disagree, qr_only = rest[:6]
    rows[zero] = _set(rows[zero], {}, nulos=0)
    planted["zero_turnout"].add(_mid(rows[zero]))
    rows[single] = _set(rows[single], {"NM": 77}, nulos=0)
    planted["single_candidate"].add(_mid(rows[single]))
    rows[summ] = dict(rows[summ], VOTOS_VALIDOS=str(int(rows[summ]["VOTOS_VALIDOS"]) + 1))
    planted["sum_mismatch"].add(_mid(rows[summ]))
    rows[over] = _set(rows[over], {"EG": int(rows[over]["RE"]) + 5}, nulos=0)
    planted["over_electors"].add(_mid(rows[over]))
    planted["source_disagreement"].add(_mid(rows[disagree]))
    planted["acta_id_collision"].add(_mid(rows[qr_only]))
    extras = {"disagree": rows[disagree], "qr_only": rows[qr_only]}
    for i, r in enumerate(rows):          # one estado rounded to tens, sums kept
        if r["COD_EDO"] == ROUNDED:
            votes = {c: int(r[c]) for c in CODES}
            votes["EG"], votes["NM"] = _round(votes["EG"]), _round(votes["NM"])
            if sum(votes.values()) + int(r["VOTOS_NULOS"]) > int(r["RE"]):
                votes["EG"] -= 10
            rows[i] = _set(r, votes)
    del rows[qr_only]                     # known only by its two conflicting QR photos
    return rows, planted, extras


def _build(tmp: Path, rows: list[dict], photos: dict[str, str], stub_ingest, signing_key) -> Path:
    inbox = tmp / "inbox"
    inbox.mkdir(parents=True)
    _write_csv(inbox / "sheet.csv", rows)
    plan = {}
    for name, payload in photos.items():
        data = make_photo(payload)
        (inbox / name).write_bytes(data)
        plan[hashlib.sha256(data).hexdigest()] = payload
    stub_ingest([inbox], tmp / "wd", plan)
    out = tmp / "B"
    build_bundle(tmp / "wd", out, key=signing_key.secret, password=KEY_PASSWORD)
    return out


@pytest.fixture(scope="module")
def source_rows(csv_rows):
    return [r for r in csv_rows if r["COD_EDO"] in ESTADOS]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory, source_rows, stub_ingest, signing_key):
    rows, planted, extras = _craft(source_rows)
    q = extras["qr_only"]
    p1 = payload_for_row(q)
    p2 = payload_for_row(q, move=1)       # same identifier (CENTRO.MESA.1.0001), other numbers
    photos = {"disagree.jpg": payload_for_row(extras["disagree"], move=2), "q1.jpg": p1, "q2.jpg": p2}
    out = _build(tmp_path_factory.mktemp("crafted"), rows, photos, stub_ingest, signing_key)
    return out, rows, planted


@pytest.fixture(scope="module")
def clean(tmp_path_factory, source_rows, stub_ingest, signing_key):
    return _build(tmp_path_factory.mktemp("clean"), source_rows, {}, stub_ingest, signing_key)


def _db(bundle: Path) -> sqlite3.Connection:
    return sqlite3.connect(next(bundle.glob("*.db")))


def _audit_json(bundle: Path) -> dict:
    res = CliRunner().invoke(cli, ["audit", str(bundle), "--json", "--pubkey", str(bundle / "minisign.pub")])
    assert res.exit_code == 0, res.output
    return json.loads(res.output[res.output.index("{"):])


def test_each_check_lists_exactly_the_planted_mesas(crafted):
    bundle, rows, planted = crafted
    got = {c["id"]: c for c in _audit_json(bundle)["checks"]}
    assert list(got) == [*audit.CHECKS, *audit_paper.CHECKS]     # the paper's: tests/test_audit_paper.py
    for cid in audit.CHECKS:
        if cid == "duplicate_photo":
            continue            # ingest keeps one reading per photo bytes: see the test below
        assert set(got[cid]["mesas"]) == planted[cid], cid
        assert got[cid]["count"] == len(planted[cid])
    assert got["identical_numbers"]["count"] == 30
    fields = {(f["field"], f["sources"]): f["mesas"] for f in got["source_disagreement"]["fields"]}
    assert fields == {("EG", "csv/qr"): 1, ("NM", "csv/qr"): 1}


def test_rounded_estado_is_flagged_and_no_other(crafted):
    bundle, rows, _ = crafted
    tests = _audit_json(bundle)["tests"]
    flagged = {(t["id"], t["scope"], t["candidate"]) for t in tests if t["flag"]}
    for tid in ("last_digit", "round_digits"):
        for cand in ("EG", "NM"):
            assert (tid, f"estado:{ROUNDED}", cand) in flagged
    # the 30 copies of one vector (EG 101, NM 43) sit in Delta Amacuro (23) and skew its digits too;
    # Amazonas (22), where nothing touches the digits, is never flagged
    assert {s for _, s, _ in flagged} <= {f"estado:{ROUNDED}", "estado:23", "national"}
    rounded = [t for t in tests if t["scope"] == f"estado:{ROUNDED}" and t["id"] == "last_digit"]
    assert all(t["digits"][0] == t["n"] for t in rounded)     # every count ends in 0


def test_clean_case_plants_nothing(clean):
    got = _audit_json(clean)
    assert all(c["count"] == 0 and c["mesas"] == [] for c in got["checks"]), got["checks"]
    assert not [t for t in got["tests"] if t["flag"]]
    nat = got["coverage"][0]
    assert nat["mesas_registry"] == 24_532 and nat["mesas_counted"] == 609


def test_duplicate_photo_fires_on_a_crafted_database(clean, tmp_path):
    """Ingest never gives one photo to two mesas, so the planted case is written into a copy."""
    db = tmp_path / "x.db"
    shutil.copy(next(clean.glob("*.db")), db)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO images (sha256, original_sha256, path, shard, media_type, size, offset) "
                 "VALUES ('ab', 'cd', 'images/ab.jpg', 'images/estado-22-1.zip', 'image/jpeg', 1, 0)")
    ids = [r[0] for r in conn.execute("SELECT id FROM actas ORDER BY id LIMIT 2")]
    conn.execute("UPDATE actas SET image_sha256 = 'ab' WHERE id IN (?, ?)", ids)
    mesas = {r[0] for r in conn.execute("SELECT mesa_id FROM actas WHERE id IN (?, ?)", ids)}
    checks = {c.id: c for c in audit.run_checks(conn)}
    assert set(checks["duplicate_photo"].mesas) == mesas
    assert all(not c.rows for k, c in checks.items() if k != "duplicate_photo")


def _sql_recompute(conn: sqlite3.Connection) -> dict:
    """The audit again, from the bundle's ordinary tables with plain SQL (and scipy for p-values)."""
    one = lambda sql: sorted({r[0] for r in conn.execute(sql)}, key=audit.mesa_key)  # noqa: E731
    live = "FROM actas a WHERE a.status != 'duplicate'"
    vec = ("(SELECT group_concat(votes) FROM (SELECT v.votes FROM acta_votes v JOIN candidates c "
           "ON c.code = v.candidate WHERE v.acta_id = a.id ORDER BY c.sort_order))")
    groups = defaultdict(set)
    for mid, v in conn.execute(f"SELECT a.mesa_id, {vec} {live} AND a.validos >= 100"):
        groups[v].add(mid)
    out = {
        "zero_turnout": one(f"SELECT a.mesa_id {live} AND a.validos + COALESCE(a.nulos, 0) = 0"),
        "single_candidate": one(f"SELECT a.mesa_id {live} AND a.validos >= 50 AND EXISTS (SELECT 1 FROM "
                                "acta_votes v WHERE v.acta_id = a.id AND v.votes = a.validos)"),
        "over_electors": one(f"SELECT a.mesa_id {live} AND a.validos + COALESCE(a.nulos, 0) > "
                             "(SELECT electores FROM mesas m WHERE m.id = a.mesa_id) UNION "
                             "SELECT substr(reason, instr(reason, 'mesa ') + 5, instr(substr(reason, instr(reason, 'mesa ') + 5), ':') - 1) FROM issues "
                             "WHERE code = 'over_electors'"),
        "sum_mismatch": one(f"SELECT a.mesa_id {live} AND a.validos != (SELECT sum(votes) FROM acta_votes v "
                            "WHERE v.acta_id = a.id) UNION SELECT substr(reason, instr(reason, 'mesa ') + 5, instr(substr(reason, instr(reason, 'mesa ') + 5), ':') - 1) "
                            "FROM issues WHERE code = 'sum_mismatch'"),
        "identical_numbers": sorted((m for g in groups.values() if len(g) > 1 for m in g), key=audit.mesa_key),
    }
    tests = {}
    for cand in ("EG", "NM"):
        digits = dict(conn.execute("SELECT v.votes % 10, count(*) FROM acta_votes v JOIN actas a ON a.id = v.acta_id "
                                   "WHERE a.counted = 1 AND v.candidate = ? AND v.votes >= 10 GROUP BY 1", (cand,)))
        observed = [digits.get(d, 0) for d in range(10)]
        tests[cand] = (sum(observed), float(stats.chisquare(observed).pvalue))
    return {"checks": out, "tests": tests}


@pytest.mark.parametrize("which", ["crafted", "clean"])
def test_cli_agrees_with_direct_sql(which, crafted, clean):
    bundle = crafted[0] if which == "crafted" else clean
    got = _audit_json(bundle)
    conn = _db(bundle)
    want = _sql_recompute(conn)
    checks = {c["id"]: c["mesas"] for c in got["checks"]}
    for cid, mesas in want["checks"].items():
        assert checks[cid] == mesas, cid
    for cand, (n, p) in want["tests"].items():
        t = next(t for t in got["tests"] if t["id"] == "last_digit" and t["scope"] == "national"
                 and t["candidate"] == cand)
        assert t["n"] == n and t["p_value"] == pytest.approx(p, rel=1e-5, abs=1e-300)
    assert got["bundle"] == hashlib.sha256((bundle / "SHA256SUMS").read_bytes()).hexdigest()


def test_histograms_count_every_counted_mesa(crafted):
    conn = _db(crafted[0])
    counted = conn.execute("SELECT count(*) FROM actas WHERE counted = 1").fetchone()[0]
    for view in ("turnout", "share:EG", "share:NM", "fingerprint:EG"):
        n = conn.execute("SELECT sum(mesas) FROM audit_histograms WHERE scope = 'national' AND view = ?",
                         (view,)).fetchone()[0]
        assert n == counted - 1 if view != "turnout" else n == counted   # the zero-turnout mesa has no share
    per_estado = conn.execute("SELECT sum(mesas) FROM audit_histograms WHERE scope LIKE 'estado:%' "
                              "AND view = 'turnout'").fetchone()[0]
    assert per_estado == counted


def test_official_results_and_reach(clean):
    conn = _db(clean)
    got = {(r[0], r[1]): (r[2], r[3]) for r in conn.execute("SELECT * FROM audit_official")}
    assert got[("boletin-2", "NM")][0] == 6_408_844 and got[("boletin-2", "EG")][0] == 5_326_104
    archived = dict(conn.execute("SELECT candidate, votes FROM totals_nacional"))
    assert got[("boletin-2", "EG")][1] == archived["EG"]
    r = dict(zip([d[0] for d in conn.execute("SELECT * FROM audit_reach").description],
                 conn.execute("SELECT * FROM audit_reach WHERE bulletin = 'boletin-2'").fetchone()))
    counted_electors = conn.execute("SELECT sum(m.electores) FROM actas a JOIN mesas m ON m.id = a.mesa_id "
                                    "WHERE a.counted = 1").fetchone()[0]
    assert r["electores_total"] == 21_321_805
    assert r["electores_remaining"] == 21_321_805 - counted_electors
    assert r["margin_reachable_max"] == archived["NM"] - archived["EG"] + r["electores_remaining"]
    # 609 mesas only: the remaining electors could make any announced margin here
    assert r["reachable"] == 1


def test_audit_tables_are_documented(clean):
    """Every audit_* table is in datapackage.json with a description of each of its columns (as
    stored), and in the bundle's README. (Same inputs, same bytes: test_bundle covers the audit.)"""
    dp = json.loads((clean / "datapackage.json").read_text())
    res = {r["name"]: r for r in dp["resources"]}
    conn = _db(clean)
    readme = (clean / "README.md").read_text()
    for t in audit_tables.AUDIT_TABLES:
        stored = [r[1] for r in conn.execute(f"PRAGMA table_info([{t}])")]
        assert [f["name"] for f in res[t]["schema"]["fields"]] == stored
        assert all(f.get("description") for f in res[t]["schema"]["fields"]), t
        assert f"`{t}`" in readme


def test_audit_refuses_a_tampered_bundle(clean, copy_tree):
    b = copy_tree(clean)
    with open(next(b.glob("*.db")), "r+b") as f:
        f.seek(5000)
        f.write(b"\xff")
    res = CliRunner().invoke(cli, ["audit", str(b), "--pubkey", str(b / "minisign.pub")])
    assert res.exit_code == 1 and "does not verify" in res.output


@pytest.mark.slow
@pytest.mark.timeout(1800)     # the whole CSV is ingested first (full_workdir)
def test_real_csv(full_bundle, csv_rows):
    """The whole published sheet: every check agrees with a computation over the CSV itself."""
    got = _audit_json(full_bundle)
    checks = {c["id"]: c for c in got["checks"]}
    groups = defaultdict(set)
    for r in csv_rows:
        if int(r["VOTOS_VALIDOS"]) >= audit.IDENTICAL_MIN_VOTES:
            groups[tuple(int(r[c]) for c in CODES)].add(_mid(r))
    identical = {m for g in groups.values() if len(g) > 1 for m in g}
    assert set(checks["identical_numbers"]["mesas"]) == identical
    single = {_mid(r) for r in csv_rows if int(r["VOTOS_VALIDOS"]) >= 50
              and max(int(r[c]) for c in CODES) == int(r["VOTOS_VALIDOS"])}
    assert set(checks["single_candidate"]["mesas"]) == single
    for cid in ("sum_mismatch", "over_electors", "zero_turnout", "source_disagreement", "duplicate_photo",
                "acta_id_collision"):
        assert checks[cid]["count"] == 0
    eg = Counter(int(r["EG"]) % 10 for r in csv_rows if int(r["EG"]) >= 10)
    t = next(t for t in got["tests"] if (t["id"], t["scope"], t["candidate"]) == ("last_digit", "national", "EG"))
    assert t["digits"] == [eg[d] for d in range(10)]
    assert got["coverage"][0]["mesas_counted"] == 24_532
    b2 = next(b for b in got["official"] if b["bulletin"] == "boletin-2")
    assert b2["reach"]["reachable"] == 0 and b2["reach"]["exceeded"] == ["EG"]


# --- the site: /auditoria agrees with the command line ------------------------------------------

@pytest.fixture(scope="module")
def site(crafted):
    from publish.site import server as site_mod
    client = site_mod.InProcessClient(site_mod.make_datasette(crafted[0]))
    yield client
    client.close()


def test_site_json_is_the_cli_json(site, crafted):
    r = site.get("/auditoria.json")
    assert r.status_code == 200
    page = r.json()
    cli_json = _audit_json(crafted[0])
    for key in ("bundle", "checks", "tests", "coverage", "official"):
        assert page[key] == cli_json[key], key


def test_site_pages_show_checks_tests_and_figures(site, crafted):
    _, _, planted = crafted
    es = site.get("/auditoria")
    en = site.get("/auditoria?lang=en")
    assert es.status_code == en.status_code == 200
    assert "Auditoría: ¿cuadran las actas?" in es.text and "Audit: do the actas hold together?" in en.text
    for cid, mesas in planted.items():
        for m in mesas:
            assert f'href="/mesa/{m}"' in es.text, (cid, m)
    assert es.text.count('class="t-fig t-fingerprint"') == 2 and es.text.count('class="t-fig t-hist"') == 3
    assert 'id="official-boletin-2"' in es.text and "6.408.844" in es.text
    # the rounded estado: its page flags its digit tests; its row on the national page says so
    page = site.get(f"/auditoria/estado/{ROUNDED}")
    assert page.status_code == 200 and page.text.count("⚑ marcada") == 4
    data = site.get(f"/auditoria/estado/{ROUNDED}.json").json()
    assert {t["scope"] for t in data["tests"]} == {f"estado:{ROUNDED}"} and all(t["flag"] for t in data["tests"])
    assert all(c["count"] == 0 for c in data["checks"])       # nothing else was planted there
    d23 = site.get("/auditoria/estado/23.json").json()
    ident = next(c for c in d23["checks"] if c["id"] == "identical_numbers")
    assert set(ident["mesas"]) == {m for m in planted["identical_numbers"] if m.startswith("23")}
    assert site.get("/auditoria/estado/77").status_code == 404
    assert site.get("/auditoria/estado/x1").status_code == 404


def test_flagged_mesa_links_to_its_check_and_home_links_the_audit(site, crafted):
    _, rows, planted = crafted
    m = sorted(planted["single_candidate"])[0]
    page = site.get(f"/mesa/{m}").text
    assert 'id="audit-checks"' in page and "/auditoria#detail-single_candidate" in page
    clean_mesa = next(_mid(r) for r in rows if _mid(r) not in {x for s in planted.values() for x in s})
    assert 'id="audit-checks"' not in site.get(f"/mesa/{clean_mesa}").text
    assert site.get(f"/mesa/{m}.json").json()["audit"][0]["check_id"] == "single_candidate"
    assert 'href="/auditoria"' in site.get("/").text


@pytest.mark.parametrize("lang,title", [("es", "Auditoría de las actas archivadas"), ("en", "Audit of the archived actas")])
def test_html_report_is_self_contained(crafted, tmp_path, lang, title):
    bundle, _, planted = crafted
    out = tmp_path / "informe.html"
    res = CliRunner().invoke(cli, ["audit", str(bundle), "--html", str(out), "--lang", lang,
                                   "--pubkey", str(bundle / "minisign.pub")])
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    assert title in text and "<script" not in text and "src=" not in text and "<link" not in text
    assert text.count("<svg") == 2 + 2 + 3          # digits (EG, NM), fingerprints, histograms
    for mesas in planted.values():
        assert all(m in text for m in mesas)
    assert "6,408,844" in text or "6.408.844" in text
