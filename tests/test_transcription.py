"""Transcription by volunteers: the agreement and review rules, on real workdirs (real SQLite).

The photos are real unreadable ones (acta pages whose QR was painted over, decoded by the real
decoder in the ``transcribe_workdir`` fixture); a volunteer's entry is what the page shows.
"""
from __future__ import annotations

import json
import multiprocessing
import random
import sqlite3

import pytest

from archive import known_answers, transcription, volunteers
from archive.errors import TranscriptionError
from archive.transcription import Transcriptions


def lines_of(row: dict, move: int = 0) -> list[int]:
    """The 38 party lines of the acta of sheet ``row``: each candidate's votes spread over their lines
    (the sheet has totals only), ``move`` votes from EG's first line to NM's first."""
    from archive import election
    e = election.load()
    column = {c.code: c.csv_column for c in e.candidates}
    mine = [[k for k in e.cards if k.candidate == card.candidate] for card in e.cards]
    out = []
    for card, same in zip(e.cards, mine):
        n, i, total = len(same), same.index(card), int(row[column[card.candidate]])
        out.append(total // n + (1 if i < total % n else 0))
    if move:
        eg_first = min(k.position for k in e.cards if k.candidate == "EG") - 1
        nm_first = min(k.position for k in e.cards if k.candidate == "NM") - 1
        out[eg_first] -= move
        out[nm_first] += move
    return out


def fields_of(row: dict, move: int = 0, **changes) -> dict:
    """The paper form as a volunteer fills it from the acta of ``row``: code, 38 lines, summary
    (``move`` votes EG -> NM)."""
    validos, nulos = int(row["VOTOS_VALIDOS"]), int(row["VOTOS_NULOS"])
    f = {"centro": row["CENTRO"], "mesa": str(int(row["MESA"])), "votos": str(validos + nulos),
         "validos": str(validos), "parciales": "0", "nulos": str(nulos), "vacios": "0"}
    f.update({f"l_{i}": str(v) for i, v in enumerate(lines_of(row, move), 1)})
    f.update(changes)
    return f


@pytest.fixture
def queue(transcribe_workdir, copy_tree):
    t = Transcriptions(copy_tree(transcribe_workdir.path))
    known_answers.configure(t.db, share_=0)    # the rules of agreement alone: no known answers here
    yield t
    t.close()


@pytest.fixture
def photo(transcribe_workdir):
    return lambda name: transcribe_workdir.photos[name]


def count(t: Transcriptions, sql: str, *args) -> int:
    return t.db.execute(sql, args).fetchone()[0]


def test_queue_is_the_unreadable_and_invalid_photos(queue, transcribe_workdir, photo_workdir):
    shas = {p.sha256 for p in transcription.photos(queue.db)}
    assert shas == {sha for sha, _ in transcribe_workdir.photos.values()}
    decoded = {photo_workdir.facts["photos"][n] for n in ("agree.jpg", "qr_only.png", "dup_a.jpg")}
    assert not shas & decoded
    assert queue.photo(transcribe_workdir.photos["t_invalid.png"][0]).state == "open"
    reading = count(queue, "SELECT count(*) FROM readings WHERE sha256 = ? AND status = 'invalid'",
                    transcribe_workdir.photos["t_invalid.png"][0])
    assert reading == 1   # really decoded as a QR that is not an acta
    assert queue.status()["open"] == len(shas) and transcription.awaiting(queue.db) == len(shas)


def test_two_agreeing_entries_make_an_acta(queue, photo):
    sha, row = photo("t_new1.jpg")
    ana = queue.volunteer("Ana Pérez", "ana-caracas")
    beto = queue.volunteer("Beto Ruiz")
    first = queue.save(sha, ana.id, fields_of(row))
    assert (first.state, first.acta_id) == ("waiting", None)
    assert count(queue, "SELECT count(*) FROM actas WHERE image_sha256 = ?", sha) == 0
    second = queue.save(sha, beto.id, fields_of(row))
    assert second.state == "agreed" and second.entries == 2
    a = dict(queue.db.execute("SELECT * FROM actas WHERE id = ?", (second.acta_id,)).fetchone())
    assert (a["source_kind"], a["image_sha256"], a["status"]) == ("transcribed-photo", sha, "ok")
    assert (a["centro"], a["mesa"]) == (int(row["CENTRO"]), int(row["MESA"]))
    assert json.loads(a["votes"])["EG"] == int(row["EG"]) and a["validos"] == int(row["VOTOS_VALIDOS"])
    assert a["nulos"] == int(row["VOTOS_NULOS"])
    inp = queue.db.execute("SELECT * FROM inputs WHERE acta_id = ?", (a["id"],)).fetchone()
    assert (inp["kind"], inp["outcome"], inp["source"]) == ("transcription", "transcribed", transcription.SOURCE)
    assert inp["locator"].endswith("t_new1.jpg#transcription")
    # the original unreadable input stays as it was: the QR really was unreadable
    assert count(queue, "SELECT count(*) FROM inputs WHERE sha256 = ? AND outcome = 'unreadable'", sha) == 1
    assert queue.photo(sha).state == "agreed"
    carla = queue.volunteer("Carla")
    assert all(p.sha256 != sha for p in [queue.next_photo(carla.id)])
    key = queue.db.execute("SELECT value FROM meta WHERE key = 'volunteer_hash_key'").fetchone()[0]
    hashes = json.dumps(sorted(volunteers.public_hash(key, v.id) for v in (ana, beto)))
    assert transcription.published(queue.db) == [{"acta_id": a["id"], "entries": 2,
                                                   "transcribers": '["ana-caracas"]', "volunteers": hashes}]


def test_one_person_one_volunteer(queue, photo):
    sha, row = photo("t_new2.jpg")
    ana = queue.volunteer("Ana Pérez")
    assert queue.volunteer("  ana   perez ", "anita").id == ana.id      # same person, new alias
    assert queue.volunteer_by_id(ana.id).alias == "anita"
    queue.save(sha, ana.id, fields_of(row))
    with pytest.raises(TranscriptionError) as e:
        queue.save(sha, ana.id, fields_of(row))
    assert e.value.code == "already_entered"
    assert count(queue, "SELECT count(*) FROM transcription_entries") == 1
    assert queue.photo(sha).state == "waiting"
    with pytest.raises(TranscriptionError) as e:
        queue.volunteer("Ana Pérez", "ANA PEREZ")
    assert e.value.code == "alias_is_name" and e.value.field == "alias"
    with pytest.raises(TranscriptionError):
        queue.volunteer("x")


@pytest.mark.parametrize("third_agrees_with", ["first", "second"])
def test_disagreement_goes_to_review_and_a_third_entry_decides(queue, photo, third_agrees_with):
    sha, row = photo("t_new3.jpg")
    ana, beto, carla = (queue.volunteer(n) for n in ("Ana", "Beto", "Carla"))
    queue.save(sha, ana.id, fields_of(row))
    s = queue.save(sha, beto.id, fields_of(row, move=1))
    assert s.state == "review" and queue.photo(sha).state == "review" and queue.photo(sha).needed == 1
    # review comes first for anyone who has not entered it; never for those who did
    assert queue.next_photo(carla.id).sha256 == sha
    assert queue.next_photo(ana.id).sha256 != sha and queue.next_photo(beto.id).sha256 != sha
    move = 0 if third_agrees_with == "first" else 1
    s = queue.save(sha, carla.id, fields_of(row, move=move))
    assert (s.state, s.entries) == ("agreed", 3)
    votes = json.loads(queue.db.execute("SELECT votes FROM actas WHERE id = ?", (s.acta_id,)).fetchone()[0])
    assert votes["EG"] == int(row["EG"]) - move
    assert count(queue, "SELECT count(*) FROM transcription_entries WHERE image_sha256 = ?", sha) == 3


def test_all_three_differ_then_more_entries_until_two_agree_or_unresolved(queue, photo):
    sha, row = photo("t_new4.jpg")
    people = [queue.volunteer(f"Voluntario {i}") for i in range(7)]
    states = [queue.save(sha, people[i].id, fields_of(row, move=i)).state for i in range(3)]
    assert states == ["waiting", "review", "review"]
    s = queue.save(sha, people[3].id, fields_of(row, move=1))      # matches the second entry
    assert (s.state, s.entries) == ("agreed", 4)
    sha2, row2 = photo("t_new5.jpg")
    states = [queue.save(sha2, people[i].id, fields_of(row2, move=i)).state for i in range(transcription.MAX_ENTRIES)]
    assert states == ["waiting", "review", "review", "review", "unresolved"]
    assert count(queue, "SELECT count(*) FROM actas WHERE image_sha256 = ?", sha2) == 0
    assert queue.photo(sha2).decision == "unresolved" and queue.next_photo(people[6].id).sha256 != sha2
    # an entry that arrives after the decision is kept, and changes nothing
    late = queue.save(sha2, people[6].id, fields_of(row2))
    assert late.state == "late"
    assert count(queue, "SELECT after_decision FROM transcription_entries WHERE id = ?", late.entry_id) == 1
    assert queue.photo(sha2).entries == transcription.MAX_ENTRIES


def test_cannot_be_read_is_a_value_too(queue, photo):
    sha, row = photo("t_new6.jpg")
    ana, beto, carla = (queue.volunteer(n) for n in ("Ana", "Beto", "Carla"))
    assert queue.save(sha, ana.id, None).state == "waiting"
    assert queue.save(sha, beto.id, fields_of(row)).state == "review"
    assert queue.save(sha, carla.id, None).state == "illegible"
    assert count(queue, "SELECT count(*) FROM actas WHERE image_sha256 = ?", sha) == 0
    assert transcription.awaiting(queue.db) == len(transcription.photos(queue.db))   # still no acta


@pytest.mark.parametrize("change, code, field, es", [
    ({"validos": "1"}, "sum_mismatch", "validos", "suman"),
    ({"centro": "201301"}, "bad_centre", "centro", "de 7 a 9 cifras"),   # the QR grammar's rule
    ({"centro": "990101001"}, "bad_centre", "centro", "código de su estado"),   # no estado 99
    ({"mesa": "0"}, "bad_mesa", "mesa", "1 o más"),
    ({"nulos": "99999"}, "over_electors", "validos", "electores inscritos"),
    ({"l_14": ""}, "missing_field", "l_14", "escriba 0"),
    ({"l_36": "1O5"}, "not_a_number", "l_36", "solo cifras"),
    ({"votos": "1"}, "votos_mismatch", "votos", "Votos"),
    ({"vacios": ""}, "missing_field", "vacios", "escriba 0"),
    ({"centro": "240111020.02.1.0001", "mesa": "1"}, "code_mismatch", "mesa", "dice mesa 02"),
    ({"mesa": "-1"}, "not_a_number", "mesa", "solo cifras"),
    ({"nulos": "123456789"}, "too_large", "nulos", "demasiado grande"),
])
def test_an_entry_that_breaks_a_rule_is_refused_and_not_saved(queue, photo, change, code, field, es):
    sha, row = photo("t_new1.jpg")
    ana = queue.volunteer("Ana")
    with pytest.raises(TranscriptionError) as e:
        queue.save(sha, ana.id, fields_of(row, **change))
    assert (e.value.code, e.value.field) == (code, field) and es in e.value.es
    assert count(queue, "SELECT count(*) FROM transcription_entries") == 0


def test_a_mesa_outside_the_registry_is_kept_flagged_and_counted_apart(transcribe_workdir, copy_tree, tmp_path):
    """As for a QR reading (issue 9): accepted, flagged outside_registry, in the separate line only."""
    from archive import acta as acta_mod
    from archive.bundle import build_bundle
    from archive.database import mesa_id
    path = copy_tree(transcribe_workdir.path)
    before = build_bundle(copy_tree(transcribe_workdir.path), tmp_path / "B0")
    t = Transcriptions(path)
    ana, beto = t.volunteer("Ana"), t.volunteer("Beto")
    p = transcribe_workdir.photos
    # a mesa number the registry lacks at a registry centre; a centre code whose municipio (99) is unknown
    cases = {"t_new3.jpg": {"mesa": "99"}, "t_new4.jpg": {"centro": "249901001", "mesa": "1"}}
    made = {}
    for name, change in cases.items():
        sha, row = p[name]
        assert t.save(sha, ana.id, fields_of(row, **change)).state == "waiting"
        s = t.save(sha, beto.id, fields_of(row, **change))
        assert s.state == "agreed" and s.acta_id
        inp = t.db.execute("SELECT outcome, code, reason FROM inputs WHERE acta_id = ?", (s.acta_id,)).fetchone()
        assert (inp["outcome"], inp["code"]) == ("transcribed", acta_mod.OUTSIDE_REGISTRY)
        assert "not in the ve-2024 registry" in inp["reason"]
        made[name] = mesa_id(int(change.get("centro", row["CENTRO"])), int(change["mesa"]))
    t.close()
    out = tmp_path / "B"
    report = build_bundle(path, out)
    db = sqlite3.connect(out / "ve-2024.db")
    db.row_factory = sqlite3.Row
    for name, mid in made.items():
        (a,) = db.execute("SELECT * FROM actas WHERE mesa_id = ?", (mid,)).fetchall()
        assert (a["source"], a["status"], a["outside_registry"], a["counted"], a["counted_outside"]) == \
            ("transcribed-photo", "ok", 1, 0, 1), name
        m = db.execute("SELECT * FROM mesas WHERE id = ?", (mid,)).fetchone()
        assert (m["outside_registry"], m["electores"]) == (1, None)
        shard = db.execute("SELECT shard FROM images WHERE sha256 = ?", (a["image_sha256"],)).fetchone()[0]
        c = db.execute("SELECT * FROM centros WHERE centro = ?", (m["centro"],)).fetchone()
        if name == "t_new3.jpg":   # a registry centre: placed, its photo in its estado's shard
            assert c["outside_registry"] == 0 and shard == f"images/estado-{c['cod_edo']:02d}-1.zip"
        else:                      # placed by its estado only, like a QR of such a centre
            assert (c["outside_registry"], c["cod_edo"], c["estado"]) == (1, 24, "EDO. LA GUAIRA")
            assert shard == "images/estado-24-1.zip"
    # the registry totals are those of the bundle without them; the separate line holds them exactly
    assert report.totals == before.totals and report.mesas_counted == before.mesas_counted
    line = {r["candidate"]: r["votes"] for r in db.execute("SELECT * FROM outside_registry_totals")}
    assert line == report.totals_outside_registry
    assert line["EG"] == sum(int(p[n][1]["EG"]) for n in cases) and line["NM"] == sum(int(p[n][1]["NM"]) for n in cases)
    assert report.outside_registry == {"mesas": 2, "actas": 2, "counted": 2, "centros_unplaced": 0}
    counts = json.loads((out / "datapackage.json").read_text())["testigo"]["counts"]
    assert counts["photos_awaiting_transcription"] == len(p) - 2


def test_a_photo_outside_the_queue_is_refused(queue, photo_workdir):
    ana = queue.volunteer("Ana")
    decoded = photo_workdir.facts["photos"]["agree.jpg"]
    with pytest.raises(TranscriptionError) as e:
        queue.save(decoded, ana.id, {})
    assert e.value.code in ("not_in_queue", "missing_field")
    with pytest.raises(TranscriptionError) as e:
        queue.save(decoded, ana.id, None)
    assert e.value.code == "not_in_queue"


def test_served_photo_has_no_exif(queue, photo):
    from PIL import Image
    import io
    sha, _ = photo("t_new1.jpg")
    original = queue.wd.object_path(sha).read_bytes()
    assert b"Exif" in original[:200]
    shown = queue.image(sha)
    assert b"Exif" not in shown and b"TestPhone" not in shown
    assert Image.open(io.BytesIO(shown)).tobytes() == Image.open(io.BytesIO(original)).tobytes()


# --- several people at once -----------------------------------------------------------------------

def _volunteer_process(path: str, name: str, work: list, barrier) -> None:
    """One volunteer in their own process: the entries in ``work`` in a shuffled order."""
    t = Transcriptions(path)
    v = t.volunteer(name)
    random.Random(name).shuffle(work)
    barrier.wait()
    for sha, fields in work:
        t.save(sha, v.id, fields)
    t.close()


def test_concurrent_volunteers_lose_no_entry_and_decide_each_photo_once(transcribe_workdir, copy_tree):
    path = copy_tree(transcribe_workdir.path)
    targets = [(sha, row) for name, (sha, row) in sorted(transcribe_workdir.photos.items()) if row]
    people = 5
    work = {f"Persona {i}": [(sha, fields_of(row, move=1 if (i == 1 and k % 2) else 0))
                             for k, (sha, row) in enumerate(targets)] for i in range(people)}
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(people)
    procs = [ctx.Process(target=_volunteer_process, args=(str(path), n, w, barrier)) for n, w in work.items()]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * people
    db = sqlite3.connect(path / "state.db")
    assert db.execute("SELECT count(*) FROM transcription_entries").fetchone()[0] == people * len(targets)
    decisions = dict(db.execute("SELECT image_sha256, decision FROM transcription_decisions").fetchall())
    assert decisions == {sha: "agreed" for sha, _ in targets}
    per_photo = db.execute("SELECT image_sha256, count(*) FROM actas WHERE source_kind = 'transcribed-photo' "
                           "GROUP BY image_sha256").fetchall()
    assert dict(per_photo) == {sha: 1 for sha, _ in targets}    # one acta per photo, never two
    for sha, row in targets:   # whoever raced, the true numbers won (four of five typed them)
        votes = json.loads(db.execute("SELECT votes FROM actas WHERE image_sha256 = ?", (sha,)).fetchone()[0])
        assert votes["EG"] == int(row["EG"])
    late = db.execute("SELECT count(*) FROM transcription_entries WHERE after_decision = 1").fetchone()[0]
    counted = db.execute("SELECT sum(entries) FROM transcription_decisions").fetchone()[0]
    assert late + counted == people * len(targets)


# --- into the bundle ------------------------------------------------------------------------------

def test_bundle_publishes_agreed_actas_with_photo_entries_and_aliases_only(transcribe_workdir, copy_tree, tmp_path,
                                                                        signing_key):
    from archive.bundle import build_bundle
    from conftest import KEY_PASSWORD, bundle_image, sha256
    from archive.verify import verify_bundle
    path = copy_tree(transcribe_workdir.path)
    t = Transcriptions(path)
    ana, beto, carla = t.volunteer("Ana Pérez Secreta", "ana-caracas"), t.volunteer("Beto Secreto"), \
        t.volunteer("Carla Secreta", "carla")
    p = transcribe_workdir.photos
    plan = {"t_slice.jpg": [(ana, 0), (beto, 0)],             # mesa with a sheet row: agrees with it
            "t_qr.jpg": [(ana, 1), (beto, 1)],                # both misread the same way: disagrees with the QR
            "t_new1.jpg": [(ana, 0), (beto, 2), (carla, 0)],  # review, decided by the third
            "t_new2.jpg": [(beto, 0)]}                        # one entry: not an acta yet
    for name, entries in plan.items():
        sha, row = p[name]
        for who, move in entries:
            t.save(sha, who.id, fields_of(row, move=move))
    t.close()
    out = tmp_path / "B"
    report = build_bundle(path, out, key=signing_key.secret, password=KEY_PASSWORD)
    db = sqlite3.connect(out / "ve-2024.db")
    db.row_factory = sqlite3.Row

    def actas(name):
        row = p[name][1]
        mid = f"{int(row['CENTRO'])}.{int(row['MESA']):02d}"
        return {r["source"]: dict(r) for r in db.execute("SELECT * FROM actas WHERE mesa_id = ?", (mid,))}

    s = actas("t_slice.jpg")
    assert (s["csv"]["counted"], s["transcribed-photo"]["counted"]) == (1, 0)
    assert s["transcribed-photo"]["crosscheck"] == s["csv"]["crosscheck"] == "agree"
    q = actas("t_qr.jpg")
    assert (q["qr"]["counted"], q["transcribed-photo"]["counted"]) == (1, 0)
    eg = int(p["t_qr.jpg"][1]["EG"])
    assert json.loads(q["transcribed-photo"]["crosscheck_diff"])["EG"] == {"transcribed-photo": eg - 1, "qr": eg}
    assert json.loads(q["qr"]["crosscheck_diff"])["EG"] == {"qr": eg, "transcribed-photo": eg - 1}
    (n1,) = actas("t_new1.jpg").values()
    assert (n1["source"], n1["counted"], n1["nulos"]) == ("transcribed-photo", 1, int(p["t_new1.jpg"][1]["VOTOS_NULOS"]))
    assert actas("t_new2.jpg") == {}
    # the photo is published like any acta photo, keeping the original's sha256
    img = db.execute("SELECT * FROM images WHERE sha256 = ?", (n1["image_sha256"],)).fetchone()
    assert img["original_sha256"] == p["t_new1.jpg"][0] and sha256(bundle_image(out, img)) == img["sha256"]
    got = {r["acta_id"]: (r["entries"], r["transcribers"]) for r in db.execute("SELECT * FROM transcriptions")}
    assert got == {s["transcribed-photo"]["id"]: (2, '["ana-caracas"]'), q["transcribed-photo"]["id"]: (2, '["ana-caracas"]'),
                   n1["id"]: (3, '["ana-caracas", "carla"]')}
    # every entry behind those actas, the volunteer as a keyed hash, the same in both tables
    ents = [dict(r) for r in db.execute("SELECT * FROM transcription_entries ORDER BY id")]
    assert len(ents) == 7               # 2 + 2 + 3: t_new2's lone entry made no acta, so it is not published
    wd = sqlite3.connect(path / "state.db")
    key = wd.execute("SELECT value FROM meta WHERE key = 'volunteer_hash_key'").fetchone()[0]
    wd.close()
    h = {v.id: volunteers.public_hash(key, v.id) for v in (ana, beto, carla)}
    assert {e["volunteer"] for e in ents} == set(h.values()) and len(set(h.values())) == 3
    by_acta: dict = {}
    for e in ents:
        by_acta.setdefault(e["acta_id"], set()).add(e["volunteer"])
    for r in db.execute("SELECT acta_id, volunteers FROM transcriptions"):
        assert set(json.loads(r["volunteers"])) == by_acta[r["acta_id"]]
    assert by_acta[n1["id"]] == set(h.values()) and by_acta[q["transcribed-photo"]["id"]] == {h[ana.id], h[beto.id]}
    assert sorted(e["agrees"] for e in ents if e["acta_id"] == n1["id"]) == [0, 1, 1]
    assert key not in json.dumps(ents)
    queue_size = len(transcribe_workdir.photos)
    dp = json.loads((out / "datapackage.json").read_text())
    assert dp["testigo"]["counts"]["photos_awaiting_transcription"] == queue_size - 3
    assert "transcriptions" in {r["name"] for r in dp["resources"]}
    # names never leave the workdir
    for f in out.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"Secret" not in data and "Pérez".encode() not in data, f
    assert verify_bundle(out, pubkey=signing_key.public).ok
    # the same workdir builds the same bytes
    build_bundle(path, tmp_path / "B2", key=signing_key.secret, password=KEY_PASSWORD)
    assert (tmp_path / "B2" / "SHA256SUMS").read_bytes() == (out / "SHA256SUMS").read_bytes()
    assert report.totals  # built and counted
    # the mesa page (a real server) shows the source and the number of entries, and the photo
    import httpx
    from publish.site import server as site_mod
    server, url = site_mod.start_in_subprocess(out)
    try:
        c = httpx.Client(base_url=url.rstrip("/"), timeout=30)
        mid = n1["mesa_id"]
        page = c.get(f"/mesa/{mid}.json").json()
        (a,) = page["actas"]
        assert a["transcription"] == {"entries": 3, "transcribers": ["ana-caracas", "carla"]}
        assert a["image_url"] == "/" + img["path"] and page["counted_acta"] == a["id"]
        html = c.get(f"/mesa/{mid}").text
        assert "Foto transcrita por voluntarios" in html and "pasó por revisión" in html
        assert 'class="t-entries">3<' in html and "ana-caracas, carla" in html
        html = c.get(f"/mesa/{q['qr']['mesa_id']}?lang=en").text
        assert "Does not agree with the photo transcribed by volunteers" in html   # the QR acta's flag
        assert c.get("/" + img["path"]).status_code == 200
    finally:
        server.terminate()
        server.wait(10)
