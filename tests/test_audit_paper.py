"""The audit's checks that only the paper allows (issue 25), on crafted bundles.

Photos of real sheet rows (Amazonas) are ingested with their QR, and their printed readings are
planted in the workdir as `testigo read` would leave them: one mesa per check differs (machine ≠
notebook voters, válidos ≠ the sum of the lines, one UUID on two actas, a print time before the
polls closed; and a photo without QR, whose mesa only its printed code names, printed early too).
Each check must list exactly the planted mesas, the same readings made consistent must list none,
plain SQL over the `printed` table must find the same mesas, and the CLI, the HTML report and
/auditoria must show them like every other check.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from html import escape
from pathlib import Path

import pytest
from click.testing import CliRunner

from archive import audit, audit_paper
from archive import election as election_mod
from archive import number_words as nw
from archive.bundle import build_bundle
from archive.printed import Count, Printed
from archive.workdir import Workdir
from conftest import KEY_PASSWORD, make_photo, payload_for_row
from publish.cli import cli
from test_audit import _audit_json, _db, _mid, _write_csv

ESTADO = "22"
PAPER = list(audit_paper.CHECKS)


def _reading(payload: str, **change) -> Printed:
    """What the strip of ``payload``'s acta prints, read in full (as `testigo read` keeps it)."""
    code, counts, _, _ = payload.split("!")
    lines = [int(c) for c in counts.split(",")]
    validos = sum(lines)

    def c(v):
        return Count(str(v), nw.spell(v), v)
    p = Printed()
    p.header.update(acta_code=code, uuid=change.get("uuid", str(_uuid(code))),
                    printed_at=change.get("printed_at", "2024-07-28T19:41:07"), electors=None)
    p.lines = [c(v) for v in lines]
    voters = validos + 3
    p.voters = {"machine": c(voters), "notebook": c(change.get("notebook", voters))}
    p.summary = {k: c(v) for k, v in dict(votos=validos, validos=change.get("validos", validos), parciales=0,
                                           nulos=0, vacios=0, opciones_validas=validos, opciones_nulas=0,
                                           opciones_vacias=0).items()}
    p.engine = "planted"
    return p


def _uuid(code: str) -> str:
    h = hashlib.sha256(code.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _build(tmp: Path, rows: list[dict], photos: dict[str, tuple[str, str | None, dict]], stub_ingest,
           signing_key) -> Path:
    """A bundle of ``rows`` plus ``photos`` {name: (acta payload, QR payload or None, changes)}."""
    inbox = tmp / "inbox"
    inbox.mkdir(parents=True)
    _write_csv(inbox / "sheet.csv", rows)
    plan, readings = {}, {}
    for n, (name, (payload, qr, change)) in enumerate(sorted(photos.items()), 1):
        data = make_photo(payload, seed=n)
        (inbox / name).write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        plan[sha] = qr
        readings[sha] = _reading(payload, **change)
    stub_ingest([inbox], tmp / "wd", plan)
    with Workdir(tmp / "wd", create=False) as wd:
        for sha, p in readings.items():
            wd.db.execute("INSERT INTO printed_readings (sha256, status, engine, reading, error) VALUES "
                          "(?, 'ok', 'planted', ?, NULL)", (sha, json.dumps(p.to_dict(), sort_keys=True)))
        wd.db.commit()
    out = tmp / "B"
    build_bundle(tmp / "wd", out, key=signing_key.secret, password=KEY_PASSWORD, unread_photos=True)
    return out


def _photos(rows: list[dict], planted: bool) -> tuple[dict, dict[str, set[str]]]:
    """The photos and, per check, the mesas planted (none when ``planted`` is False)."""
    big = [r for r in rows if int(r["VOTOS_VALIDOS"]) >= 30]
    voters, validos, uuid_a, uuid_b, early, no_qr, twice, plain = big[:8]
    same_uuid = "0f2c1044-bc55-46c0-ac48-dab0ab51fbe3"

    def ch(**kw):
        return kw if planted else {}
    photos = {
        "voters.jpg": (payload_for_row(voters), payload_for_row(voters), ch(notebook=int(voters["VOTOS_VALIDOS"]) + 5)),
        "validos.jpg": (payload_for_row(validos), payload_for_row(validos), ch(validos=int(validos["VOTOS_VALIDOS"]) + 1)),
        "uuid_a.jpg": (payload_for_row(uuid_a), payload_for_row(uuid_a), ch(uuid=same_uuid)),
        "uuid_b.jpg": (payload_for_row(uuid_b), payload_for_row(uuid_b), ch(uuid=same_uuid)),
        "early.jpg": (payload_for_row(early), payload_for_row(early), ch(printed_at="2024-07-28T17:42:10")),
        # no QR: the mesa is named by the printed acta code only
        "no_qr.jpg": (payload_for_row(no_qr), None, ch(printed_at="2024-07-28T09:05:00")),
        # two photos of one acta share its UUID rightly: never listed
        "twice_1.jpg": (payload_for_row(twice), payload_for_row(twice), {"uuid": _uuid("twice")}),
        "twice_2.jpg": (payload_for_row(twice), payload_for_row(twice), {"uuid": _uuid("twice")}),
        "plain.jpg": (payload_for_row(plain), payload_for_row(plain), {}),
    }
    want = {"voters_machine_notebook": {_mid(voters)}, "validos_not_lines": {_mid(validos)},
            "uuid_two_actas": {_mid(uuid_a), _mid(uuid_b)}, "printed_before_close": {_mid(early), _mid(no_qr)}}
    return photos, (want if planted else {k: set() for k in want})


@pytest.fixture(scope="module")
def rows(csv_rows):
    return [r for r in csv_rows if r["COD_EDO"] == ESTADO]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory, rows, stub_ingest, signing_key):
    photos, want = _photos(rows, planted=True)
    return _build(tmp_path_factory.mktemp("paper"), rows, photos, stub_ingest, signing_key), want


@pytest.fixture(scope="module")
def clean(tmp_path_factory, rows, stub_ingest, signing_key):
    photos, _ = _photos(rows, planted=False)
    return _build(tmp_path_factory.mktemp("paper_clean"), rows, photos, stub_ingest, signing_key)


def test_each_paper_check_lists_exactly_the_planted_mesas(crafted):
    bundle, want = crafted
    got = {c["id"]: c for c in _audit_json(bundle)["checks"]}
    assert list(got) == [*audit.CHECKS, *PAPER]
    for cid in PAPER:
        assert set(got[cid]["mesas"]) == want[cid], cid
        assert got[cid]["count"] == len(want[cid])
    # the printed readings agree with the sheet everywhere else: no other check fires
    assert all(got[cid]["count"] == 0 for cid in audit.CHECKS), {c: got[c]["mesas"] for c in audit.CHECKS}
    conn = _db(bundle)
    assert conn.execute("SELECT count(*) FROM printed").fetchone()[0] == 9
    groups = conn.execute("SELECT DISTINCT grp, detail LIKE '0f2c1044-%' FROM audit_check_mesas "
                          "WHERE check_id = 'uuid_two_actas'").fetchall()
    assert groups == [(1, 1)]
    early = dict(conn.execute("SELECT mesa_id, acta_id FROM audit_check_mesas WHERE check_id = 'printed_before_close'"))
    no_qr = next(m for m in want["printed_before_close"] if early[m] is None)     # named by its paper only
    assert conn.execute("SELECT count(*) FROM actas WHERE mesa_id = ? AND source = 'qr'", (no_qr,)).fetchone()[0] == 0


def test_consistent_readings_list_nothing(clean):
    got = _audit_json(clean)
    assert [c["id"] for c in got["checks"]] == [*audit.CHECKS, *PAPER]
    assert all(c["count"] == 0 and c["mesas"] == [] for c in got["checks"]), got["checks"]
    assert _db(clean).execute("SELECT count(*) FROM printed").fetchone()[0] == 9


def _sql_recompute(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """The paper's checks again, with plain SQL over the bundle's printed table."""
    mesa = ("COALESCE((SELECT a.mesa_id FROM actas a WHERE a.image_sha256 = p.image_sha256 AND a.status != "
            "'duplicate' ORDER BY a.id LIMIT 1), p.centro || '.' || printf('%02d', p.mesa))")
    one = lambda sql: sorted({r[0] for r in conn.execute(sql)}, key=audit.mesa_key)  # noqa: E731
    return {
        "voters_machine_notebook": one(f"SELECT {mesa} FROM printed p WHERE voters_machine != voters_notebook"),
        "validos_not_lines": one(f"SELECT {mesa} FROM printed p WHERE lines_read = 38 AND validos != "
                                 "(SELECT sum(value) FROM json_each(p.lines))"),
        "uuid_two_actas": one(f"SELECT {mesa} FROM printed p WHERE uuid IN (SELECT uuid FROM printed "
                              "GROUP BY uuid HAVING count(DISTINCT acta_code) > 1)"),
        "printed_before_close": one(f"SELECT {mesa} FROM printed p WHERE printed_at < '2024-07-28T18:00:00'"),
    }


@pytest.mark.parametrize("which", ["crafted", "clean"])
def test_cli_agrees_with_sql_over_the_printed_table(which, crafted, clean):
    bundle = crafted[0] if which == "crafted" else clean
    checks = {c["id"]: c["mesas"] for c in _audit_json(bundle)["checks"]}
    want = _sql_recompute(_db(bundle))
    assert {k: checks[k] for k in PAPER} == want
    assert any(want.values()) == (which == "crafted")


def test_notes_say_what_the_paper_cannot_show(crafted):
    conn = _db(crafted[0])
    notes = {r[0]: r[1:] for r in conn.execute("SELECT id, title_es, about_en, limits_en, limits_es FROM audit_notes "
                                               "WHERE id IN (%s)" % ",".join("?" * len(PAPER)), PAPER)}
    assert set(notes) == set(PAPER)
    assert all(all(notes[c]) for c in PAPER)
    _, _, limits_en, limits_es = notes["printed_before_close"]
    assert "18:00" in limits_en and "queue" in limits_en and "en cola" in limits_es
    order = [r[0] for r in conn.execute("SELECT check_id FROM audit_checks ORDER BY sort_order")]
    assert order == [*audit.CHECKS, *PAPER]


def test_text_and_html_report_show_them(crafted, tmp_path):
    bundle, want = crafted
    res = CliRunner().invoke(cli, ["audit", str(bundle), "--pubkey", str(bundle / "minisign.pub")])
    assert res.exit_code == 0, res.output
    for cid in PAPER:
        line = next(l for l in res.output.splitlines() if l.strip().startswith(cid))
        assert all(m in line for m in want[cid]) and f" {len(want[cid])}  " in line, line
    out = tmp_path / "r.html"
    res = CliRunner().invoke(cli, ["audit", str(bundle), "--html", str(out), "--lang", "es",
                                   "--pubkey", str(bundle / "minisign.pub")])
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    for cid, (_, title_es, *_rest) in audit_paper.CHECKS.items():
        assert escape(title_es) in text, cid
        assert all(m in text for m in want[cid])
    assert "art. 308 del Reglamento" in text


@pytest.fixture(scope="module")
def site(crafted):
    from publish.site import server as site_mod
    client = site_mod.InProcessClient(site_mod.make_datasette(crafted[0]))
    yield client
    client.close()


def test_site_shows_them_and_its_json_is_the_cli_json(site, crafted):
    bundle, want = crafted
    page = site.get("/auditoria.json").json()
    cli_json = _audit_json(bundle)
    for key in ("bundle", "checks", "tests", "coverage", "official"):
        assert page[key] == cli_json[key], key
    es, en = site.get("/auditoria"), site.get("/auditoria?lang=en")
    assert es.status_code == en.status_code == 200
    for cid, (title_en, title_es, *_rest) in audit_paper.CHECKS.items():
        assert escape(title_es) in es.text and escape(title_en) in en.text, cid
        for m in want[cid]:
            assert f'href="/mesa/{m}"' in es.text, (cid, m)
    m = sorted(want["voters_machine_notebook"])[0]
    assert "/auditoria#detail-voters_machine_notebook" in site.get(f"/mesa/{m}").text
    edo = site.get(f"/auditoria/estado/{ESTADO}.json").json()
    assert {c["id"]: set(c["mesas"]) for c in edo["checks"] if c["id"] in PAPER} == want


def test_same_inputs_same_bytes(crafted, tmp_path, rows, stub_ingest, signing_key):
    photos, _ = _photos(rows, planted=True)
    again = _build(tmp_path, rows, photos, stub_ingest, signing_key)
    assert (again / "SHA256SUMS").read_bytes() == (crafted[0] / "SHA256SUMS").read_bytes()


def test_election_date_is_the_definitions():
    assert election_mod.load().meta["date"] == "2024-07-28"
