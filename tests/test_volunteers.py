"""Volunteers you can trust: invitations, revoking and voiding, known answers, the consensus
rule, the coordinator's decisions. Real workdirs (real SQLite), real unreadable photos and real
decoded ones (the known answers), as in test_transcription.py.
"""
from __future__ import annotations

import json

import pytest

from archive import consensus, known_answers, volunteers
from archive.errors import TranscriptionError
from archive.transcription import Transcriptions
from test_transcription import count, fields_of


@pytest.fixture
def queue(transcribe_workdir, copy_tree):
    t = Transcriptions(copy_tree(transcribe_workdir.path))
    known_answers.configure(t.db, share_=0)
    yield t
    t.close()


@pytest.fixture
def photo(transcribe_workdir):
    return lambda name: transcribe_workdir.photos[name]


def invite(q: Transcriptions, name: str, n: int = 1):
    return volunteers.invite(q.db, name, n)


def acta_of(q, sha):
    row = q.db.execute("SELECT id FROM actas WHERE image_sha256 = ? AND source_kind = 'transcribed-photo'",
                       (sha,)).fetchone()
    return row and row[0]


def test_an_invitation_is_one_volunteer_whatever_name_is_typed(queue, photo):
    sha, row = photo("t_new1.jpg")
    [ana] = invite(queue, "Ana")
    assert queue.db.execute("SELECT token_sha256 FROM invitations").fetchone()[0] == volunteers.token_hash(ana.token)
    assert ana.token not in json.dumps([list(r) for r in queue.db.execute("SELECT * FROM invitations")])
    v = queue.invited(ana.token)
    assert v.id == ana.id and queue.invited("not-a-link") is None
    queue.save(sha, v.id, fields_of(row))
    # the same link again, with a new alias: still the same volunteer, who cannot enter the photo twice
    again = queue.invited(ana.token)
    queue.set_alias(again.id, "anita")
    with pytest.raises(TranscriptionError) as e:
        queue.save(sha, again.id, fields_of(row))
    assert e.value.code == "already_entered"
    assert queue.photo(sha).state == "waiting" and acta_of(queue, sha) is None
    # a typed name that looks like an invitation's is a different volunteer, never the invitation
    typed = queue.volunteer("invitation " + volunteers.token_hash(ana.token))
    assert typed.id != ana.id
    # several at once, numbered
    many = invite(queue, "Escuela 5", 3)
    assert [i.name for i in many] == ["Escuela 5 1", "Escuela 5 2", "Escuela 5 3"]
    assert len({i.token for i in many}) == 3


def test_a_revoked_invitation_is_refused_and_its_voided_entries_requeue_photos(queue, photo):
    sha, row = photo("t_new2.jpg")
    other_sha, other_row = photo("t_new3.jpg")
    ana, beto, carla = invite(queue, "Ana"), invite(queue, "Beto"), invite(queue, "Carla")
    ana, beto, carla = ana[0], beto[0], carla[0]
    queue.save(sha, ana.id, fields_of(row))
    s = queue.save(sha, beto.id, fields_of(row))
    assert s.state == "agreed" and acta_of(queue, sha)
    queue.save(other_sha, beto.id, fields_of(other_row))          # waiting on beto alone
    assert queue.revoke(beto.id) == []                            # revoked, entries kept for now
    with pytest.raises(TranscriptionError) as e:
        queue.invited(beto.token)
    assert e.value.code == "revoked"
    with pytest.raises(TranscriptionError) as e:
        queue.save(photo("t_new4.jpg")[0], beto.id, fields_of(photo("t_new4.jpg")[1]))
    assert e.value.code == "revoked" and not queue.may_work(beto.id)
    assert acta_of(queue, sha)                                    # still an acta until voided
    reopened = queue.revoke(beto.id, void=True)
    assert reopened == [sha]
    assert acta_of(queue, sha) is None and queue.photo(sha).state == "waiting"
    assert count(queue, "SELECT count(*) FROM inputs WHERE sha256 = ? AND kind = 'transcription'", sha) == 0
    assert queue.photo(other_sha).state == "open"                 # beto's lone entry no longer counts
    assert count(queue, "SELECT count(*) FROM transcription_entries WHERE volunteer_id = ?", beto.id) == 2
    # the photo is back in the queue: a new volunteer's agreeing entry decides it again
    assert queue.next_photo(carla.id).sha256 == sha              # waiting for one more: offered first
    s = queue.save(sha, carla.id, fields_of(row))
    assert s.state == "agreed" and acta_of(queue, sha)
    loc = queue.db.execute("SELECT locator FROM inputs WHERE acta_id = ?", (s.acta_id,)).fetchone()[0]
    assert loc.endswith("#transcription")


def known_fields(q: Transcriptions, sha: str, wrong: bool) -> dict:
    """What a volunteer types on a known photo: its QR's 38 lines and summary, or with one vote
    moved from one line to another of the same candidate (the totals stay right: only a
    line-by-line comparison catches it)."""
    r = q.db.execute("SELECT centro, mesa, counts, validos, nulos FROM actas WHERE image_sha256 = ? "
                     "AND source_kind = 'qr'", (sha,)).fetchone()
    counts = json.loads(r[2])
    nulos = r[4] or 0
    f = {"centro": str(r[0]), "mesa": str(r[1]), "votos": str(r[3] + nulos), "validos": str(r[3]),
         "parciales": "0", "nulos": str(nulos), "vacios": "0", **{f"l_{i}": str(v) for i, v in enumerate(counts, 1)}}
    if wrong:
        big = max(range(13), key=lambda i: counts[i])        # Maduro's lines 1-13
        small = next(i for i in range(13) if i != big)
        f[f"l_{big + 1}"], f[f"l_{small + 1}"] = str(counts[big] - 1), str(counts[small] + 1)
    return f


def test_a_volunteer_failing_known_answers_is_silenced_and_their_acta_reopened(queue, photo):
    sha, row = photo("t_new5.jpg")
    [troll], [honest], [third] = invite(queue, "Troll"), invite(queue, "Honest"), invite(queue, "Third")
    queue.save(sha, troll.id, fields_of(row))
    assert queue.save(sha, honest.id, fields_of(row)).state == "agreed"
    known_answers.configure(queue.db, share_=1.0)               # every hand-out a known answer now
    queue_shas = {p.sha256 for p in __import__("archive.transcription", fromlist=["x"]).photos(queue.db)}
    for i in range(known_answers.MIN_JUDGED):
        p = queue.next_photo(troll.id)
        assert p.sha256 not in queue_shas and p.state == "open"   # looks like any new photo
        s = queue.save(p.sha256, troll.id, known_fields(queue, p.sha256, wrong=True))
        assert s.state == "waiting" and s.acta_id is None         # what any first entry hears
    assert known_answers.score(queue.db, troll.id) == (0, 3)
    assert volunteers.is_set_aside(queue.db, troll.id)
    assert acta_of(queue, sha) is None and queue.photo(sha).state == "waiting"   # reopened
    # the honest one answers right and stays
    for _ in range(known_answers.MIN_JUDGED):
        p = queue.next_photo(honest.id)
        queue.save(p.sha256, honest.id, known_fields(queue, p.sha256, wrong=False))
    assert known_answers.score(queue.db, honest.id) == (3, 3) and not volunteers.is_set_aside(queue.db, honest.id)
    # no known answer ever makes an acta
    assert count(queue, "SELECT count(*) FROM actas WHERE source_kind = 'transcribed-photo'") == 0
    # the silenced volunteer goes on typing; nothing they type counts, nothing tells them
    known_answers.configure(queue.db, share_=0)
    other, orow = photo("t_new6.jpg")
    s = queue.save(other, troll.id, fields_of(orow))
    assert s.state == "waiting" and queue.photo(other).state == "open"
    # an honest third entry re-decides the reopened photo
    assert queue.save(sha, third.id, fields_of(row)).state == "agreed" and acta_of(queue, sha)
    # a known photo nobody handed out cannot be entered for score
    unhanded = next(r[0] for r in queue.db.execute(known_answers._KNOWN)
                    if not known_answers.handed(queue.db, third.id, r[0]))
    with pytest.raises(TranscriptionError) as e:
        queue.save(unhanded, third.id, known_fields(queue, unhanded, wrong=False))
    assert e.value.code == "not_in_queue"


@pytest.mark.parametrize("rule,entries,state", [
    ("2of3", ["a", "a"], "waiting"), ("2of3", ["a", "a", "b"], "agreed"), ("2of3", ["a", "b", "c"], "review"),
    ("3of3", ["a", "a", "b"], "review"), ("3of3", ["a", "a", "a"], "agreed"), ("2of2", ["a", "a"], "agreed")])
def test_consensus_rule_as_a_setting(queue, photo, rule, entries, state):
    sha, row = photo("t_new1.jpg")
    consensus.set_rule(queue.db, rule)
    people = invite(queue, "Vol", len(entries))
    for who, value in zip(people, entries):
        s = queue.save(sha, who.id, fields_of(row, move={"a": 0, "b": 1, "c": 2}[value]))
    assert s.state == state and queue.photo(sha).state == state
    assert (acta_of(queue, sha) is not None) == (state == "agreed")
    if rule == "2of3" and len(entries) == 2:
        assert queue.photo(sha).needed == 1


def test_two_of_three_needs_three_entries(queue, photo):
    sha, row = photo("t_new2.jpg")
    consensus.set_rule(queue.db, "2of3")
    a, b, c = (i.id for i in invite(queue, "Vol", 3))
    assert queue.save(sha, a, fields_of(row)).state == "waiting"
    assert queue.save(sha, b, fields_of(row)).state == "waiting"        # two alike are not enough
    assert acta_of(queue, sha) is None and queue.status()["rule"] == "2of3"
    s = queue.save(sha, c, fields_of(row, move=1))
    assert (s.state, s.entries) == ("agreed", 3) and acta_of(queue, sha) == s.acta_id
    with pytest.raises(TranscriptionError):
        consensus.set_rule(queue.db, "1of1")


def test_hand_out_is_random_not_in_ingest_order(queue, photo):
    vids = [i.id for i in invite(queue, "Vol", 40)]
    firsts = {queue.next_photo(v).sha256 for v in vids}
    assert len(firsts) >= 3          # 8 open photos, 40 draws: the same one every time is ~8^-39


def test_the_desk_decides_an_unresolved_photo(queue, photo):
    sha, row = photo("t_new4.jpg")
    people = [i.id for i in invite(queue, "Vol", consensus.MAX_ENTRIES)]
    for i, v in enumerate(people):
        s = queue.save(sha, v, fields_of(row, move=i))
    assert s.state == "unresolved" and acta_of(queue, sha) is None
    entry = queue.db.execute("SELECT id FROM transcription_entries WHERE image_sha256 = ? AND volunteer_id = ?",
                             (sha, people[2])).fetchone()[0]
    queue._tx(consensus.log, queue.db, sha, "comment", "EG at the foot reads 2 less; entry 3 matches")
    assert queue._tx(consensus.accept, queue.db, sha, entry, queue._acta_of, "checked the photo") == "agreed"
    assert queue.photo(sha).state == "agreed"
    votes = json.loads(queue.db.execute("SELECT votes FROM actas WHERE id = ?", (acta_of(queue, sha),)).fetchone()[0])
    assert votes["EG"] == int(row["EG"]) - 2
    assert [c["action"] for c in consensus.comments(queue.db, sha)] == ["comment", "accept"]
    # reopen: no entry counts any more and the acta is withdrawn
    queue._tx(consensus.reopen, queue.db, sha, queue._acta_of, None)
    assert queue.photo(sha).state == "open" and acta_of(queue, sha) is None
    # not an acta: out of the queue, no acta, not "unread"
    queue._tx(consensus.close, queue.db, sha, "not_an_acta", "a page of the notebook")
    from archive import transcription
    assert queue.photo(sha).state == "not_an_acta" and sha not in transcription.unread(queue.db)
    assert queue.status()["not_an_acta"] == 1
