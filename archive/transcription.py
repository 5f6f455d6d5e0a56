"""Transcription by volunteers: photos whose QR no decoder could read, typed in by people.

About 4 % of real acta photos have a QR nobody's decoder reads, yet their printed numbers are
legible to a person. One person's typing proves little, so a photo becomes an acta only when
two entries made independently, under different volunteer names, agree (double-entry data
capture); the agreed numbers then go through the same validation and the same ingest machinery
(``Ingester._add_acta``) as a QR reading, as an acta of source ``transcribed-photo``.

The rules, for one photo (all entries are kept, with who and when):

* an entry is accepted only when it passes the election's rules (``acta.validate``), so a typo
  that breaks a sum is caught while the volunteer still has the photo in front of them. As for
  a QR reading, a mesa the registry does not know is kept: the acta is flagged
  ``outside_registry`` and counted apart (a centre code must still have a QR's 7 to 9 digits);
* the form follows the paper (``archive.transcription_form``): the acta code, the 38 party lines,
  the summary; each candidate's votes are computed from their lines, never typed. Two entries
  agree when every field typed is equal (mesa, lines, summary). "Cannot be read" is a value too;
* a complete machine reading of the printed acta (``testigo read``) is one non-human entry
  (``archive.machine_entry``): it can agree with a person's entry, never decide alone;
* with the default rule (``2of2``) the first value entered by two different volunteers wins: two
  agreeing entries decide; after two that differ the photo goes to review, where the next entry
  decides if it matches either; if all three differ the photo stays in review and each further
  entry is compared with all earlier ones, until ``MAX_ENTRIES`` entries without two alike set
  it aside as ``unresolved``. ``2of3`` and ``3of3`` are settings (``archive.consensus``);
* "different volunteers" means different invitations once the coordinator invites people
  (``archive.volunteers``): one link is one volunteer whatever name is typed, and one
  volunteer makes at most one entry per photo;
* photos are handed out at random (review first), and a share of them are photos whose numbers
  are known, which score the volunteer (``archive.known_answers``); a volunteer set aside, or
  whose invitation was voided, has their entries voided and the photos they decided reopened.

Writes are short ``BEGIN IMMEDIATE`` transactions on the workdir's WAL database with
``synchronous=FULL``, so several volunteers (or several servers) can save at once, and an
entry that was saved survives a crash or ``kill -9``.
"""
from __future__ import annotations

import json
import re
import secrets
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

from . import acta as acta_mod
from . import consensus, known_answers, machine_entry
from . import image as image_mod
from . import pending
from . import photolink
from . import volunteers as volunteers_mod
from .errors import TranscriptionError
from .ingest import Ingester
from .transcription_form import SOURCE_KIND, ensure_schema, entry_acta, form_fields, parse_entry, typed_of, value_of
from .workdir import Workdir

__all__ = ["SOURCE_KIND", "form_fields", "parse_entry", "value_of", "Transcriptions"]

SOURCE = "testigo transcribe"      # inputs.source of the acta an agreement makes
ILLEGIBLE = consensus.ILLEGIBLE   # the value of a "cannot be read" entry
AGREE = 2                         # entries with the same value that decide a photo (2of2)
MAX_ENTRIES = consensus.MAX_ENTRIES   # entries without agreement after which a photo is set aside
QUEUE_READINGS = consensus.QUEUE_READINGS
NAME_LIMIT, ALIAS_LIMIT = 80, 40
_ALIAS = re.compile(r"^[\w][\w .\-]*$")


@dataclass(frozen=True)
class Volunteer:
    id: int
    alias: str | None


@dataclass(frozen=True)
class Photo:
    """A photo in (or decided by) the transcription queue."""

    sha256: str
    media_type: str
    width: int | None
    height: int | None
    first_input: int
    entries: int                  # entries made before any decision
    decision: str | None          # agreed / illegible / unresolved / not_an_acta / set_aside, or None
    of: int = AGREE               # entries the consensus rule needs before anything is decided

    @property
    def state(self) -> str:
        """open (no entry), waiting (fewer than the rule needs), review (enough, no agreement), or the decision."""
        if self.decision:
            return self.decision
        return "review" if self.entries >= self.of else ("waiting" if self.entries else "open")

    @property
    def needed(self) -> int:
        """How many more entries could decide the photo (1 in review)."""
        return 0 if self.decision else max(1, self.of - self.entries)


@dataclass(frozen=True)
class Saved:
    entry_id: int | None          # None: kept on disk while the workdir was busy (archive.pending)
    state: str                    # waiting / review / agreed / illegible / unresolved / late / kept
    entries: int
    acta_id: int | None = None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def name_key(name: str) -> str:
    """One person, one volunteer: case, accents and spacing do not make a new name."""
    folded = unicodedata.normalize("NFKD", name)
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(folded.casefold().split())


def check_volunteer(name: str, alias: str | None) -> tuple[str, str | None]:
    """Clean a volunteer's name and optional public alias, or say what to change."""
    name = " ".join((name or "").split())
    alias = " ".join((alias or "").split()) or None
    if len(name_key(name)) < 2 or len(name) > NAME_LIMIT or not name.isprintable():
        raise TranscriptionError("bad_name", f"write your name (2 to {NAME_LIMIT} characters)",
                                 f"Escriba su nombre (de 2 a {NAME_LIMIT} caracteres).", "nombre")
    if alias is not None:
        if not (2 <= len(alias) <= ALIAS_LIMIT and _ALIAS.match(alias)):
            raise TranscriptionError("bad_alias", f"a public alias has 2 to {ALIAS_LIMIT} letters, digits, "
                                     "spaces, '.', '-' or '_'", f"El alias público lleva de 2 a {ALIAS_LIMIT} "
                                     "letras, cifras, espacios, «.», «-» o «_».", "alias")
        if name_key(alias) == name_key(name):
            raise TranscriptionError("alias_is_name", "the public alias is published: do not use your name",
                                     "El alias se publica: no use su nombre.", "alias")
    return name, alias


# --- the workdir side ------------------------------------------------------------------------------

_QUEUE = """
WITH eligible AS (
    SELECT r.sha256, b.media_type, b.width, b.height, min(i.id) AS first_input
    FROM readings r JOIN blobs b ON b.sha256 = r.sha256
    JOIN inputs i ON i.sha256 = r.sha256 AND i.kind = 'image'
    WHERE r.status IN ({readings}) AND b.media_type LIKE 'image/%' {one_photo}
    GROUP BY r.sha256),
counts AS (SELECT image_sha256, count(*) AS n FROM transcription_entries WHERE {live} {one_entry}
           GROUP BY image_sha256)
SELECT e.sha256, e.media_type, e.width, e.height, e.first_input, coalesce(c.n, 0) AS entries,
       coalesce(d.decision, CASE WHEN EXISTS (SELECT 1 FROM actas a WHERE a.image_sha256 = e.sha256
                                                   AND a.source_kind != 'csv')
                                 THEN 'agreed' END) AS decision
FROM eligible e LEFT JOIN counts c ON c.image_sha256 = e.sha256
LEFT JOIN transcription_decisions d ON d.image_sha256 = e.sha256
"""
# A photo with an acta but no decision here was transcribed elsewhere: a team bundle brought it
# unread, then a newer bundle of that team brought the acta its volunteers agreed on. Decided.
_SQL = {one: _QUEUE.format(readings=", ".join(f"'{s}'" for s in QUEUE_READINGS), live=consensus.LIVE,
                           one_photo="AND r.sha256 = :sha" if one else "",
                           one_entry="AND image_sha256 = :sha" if one else "") for one in (False, True)}
_PRIORITY = {"review": 0, "waiting": 1, "open": 2}
_rng = secrets.SystemRandom()


def photos(db) -> list[Photo]:
    """Every photo of the transcription queue, decided or not, in ingest order."""
    of = consensus.rule(db).of
    return sorted((Photo(*r, of=of) for r in db.execute(_SQL[False])), key=lambda p: p.first_input)


def queued(db, sha: str) -> Photo | None:
    """One photo of the queue (what ``photos`` says of it, without reading them all)."""
    row = db.execute(_SQL[True], {"sha": sha}).fetchone()
    return Photo(*row, of=consensus.rule(db).of) if row else None


def unread(db) -> list[str]:
    """The sha256 of the queue's photos without an agreed transcription: photos that gave no
    acta yet (but not those the coordinator marked as no acta at all)."""
    return [p.sha256 for p in photos(db) if p.decision not in ("agreed", "not_an_acta")]


def awaiting(db) -> int:
    """How many photos of the queue have no agreed transcription."""
    return len(unread(db))


def published(db) -> list[dict]:
    """What the bundle publishes per agreed photo: its acta (workdir id), entries, public aliases,
    and the volunteers behind its live entries as keyed hashes (``volunteers.public_hash``)."""
    key = volunteers_mod.hash_key(db)
    out = []
    for sha, acta_id, entries in db.execute(
            "SELECT image_sha256, acta_id, entries FROM transcription_decisions "
            "WHERE decision = 'agreed' AND acta_id IS NOT NULL ORDER BY acta_id").fetchall():
        aliases = [r[0] for r in db.execute(
            "SELECT DISTINCT v.alias FROM volunteers v WHERE v.alias IS NOT NULL AND v.id IN (SELECT volunteer_id "
            f"FROM transcription_entries WHERE image_sha256 = ? AND {consensus.LIVE}) ORDER BY v.alias", (sha,))]
        who = sorted({volunteers_mod.public_hash(key, r[0]) for r in db.execute(
            f"SELECT volunteer_id FROM transcription_entries WHERE image_sha256 = ? AND {consensus.LIVE}", (sha,))}
            ) if key else []
        out.append({"acta_id": acta_id, "entries": entries,
                    "transcribers": json.dumps(aliases, ensure_ascii=False) if aliases else None,
                    "volunteers": json.dumps(who) if who else None})
    return out


def published_entries(db) -> list[dict]:
    """Every entry of every photo that became an acta, the volunteer as a keyed hash (never a name),
    with whether it counted (live) and whether it matched the agreed value: others can study
    each volunteer's consistency without knowing who they are."""
    key = volunteers_mod.hash_key(db)
    if key is None:
        return []
    voided = {r[0] for r in db.execute("SELECT entry_id FROM voided_entries")}
    out = []
    for r in db.execute(
            "SELECT e.id, d.acta_id, e.volunteer_id, e.entered_at, e.illegible, e.centro, e.mesa, e.votes, "
            "e.validos, e.nulos, e.value = d.value AS agrees, e.after_decision FROM transcription_entries e "
            "JOIN transcription_decisions d ON d.image_sha256 = e.image_sha256 "
            "WHERE d.decision = 'agreed' AND d.acta_id IS NOT NULL ORDER BY d.acta_id, e.id"):
        out.append({"acta_id": r[1], "volunteer": volunteers_mod.public_hash(key, r[2]), "entered_at": r[3],
                    "illegible": r[4], "centro": r[5], "mesa": r[6], "votes": r[7], "validos": r[8],
                    "nulos": r[9], "agrees": r[10], "counted": int(not r[11] and r[0] not in voided)})
    return out


class Transcriptions:
    """The transcription queue of one workdir: volunteers, entries, decisions."""

    def __init__(self, workdir: Workdir | str, election_id: str | None = None):
        self.wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir, create=False)
        self.db = self.wd.db
        self.db.execute("PRAGMA synchronous=FULL")   # a saved entry survives even a power cut
        self.ingester = Ingester(self.wd, election_id)
        self.election = self.ingester.election
        if volunteers_mod.hash_key(self.db) is None:
            volunteers_mod.ensure_hash_key(self.db)
        ensure_schema(self.db)
        self.machine_entries()

    def close(self) -> None:
        self.wd.close()

    def _tx(self, fn, *args):
        """``fn(*args)`` in one short write transaction."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(*args)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return out

    # volunteers
    def volunteer(self, name: str, alias: str | None = None) -> Volunteer:
        """Sign a volunteer in by name (created on first use); the alias given replaces the old one."""
        name, alias = check_volunteer(name, alias)
        key = name_key(name)

        def upsert():
            row = self.db.execute("SELECT id FROM volunteers WHERE name_key = ?", (key,)).fetchone()
            if row is None:
                return self.db.execute("INSERT INTO volunteers (name, name_key, alias, created_at) VALUES "
                                       "(?, ?, ?, ?)", (name, key, alias, now())).lastrowid
            self.db.execute("UPDATE volunteers SET alias = ? WHERE id = ?", (alias, row[0]))
            return row[0]
        return Volunteer(self._tx(upsert), alias)

    def invited(self, token: str | None) -> Volunteer | None:
        """The volunteer of an invitation link (None: not a link; TranscriptionError: revoked)."""
        vid = volunteers_mod.by_token(self.db, token)
        return None if vid is None else self.volunteer_by_id(vid)

    def set_alias(self, volunteer_id: int, alias: str | None) -> Volunteer:
        """An invited volunteer's public alias (their name is the coordinator's label, never typed)."""
        alias = " ".join((alias or "").split()) or None
        if alias is not None:
            check_volunteer("invitation", alias)
        self._tx(lambda: self.db.execute("UPDATE volunteers SET alias = ? WHERE id = ?", (alias, volunteer_id)))
        return Volunteer(volunteer_id, alias)

    def volunteer_by_id(self, vid: int) -> Volunteer | None:
        row = self.db.execute("SELECT id, alias FROM volunteers WHERE id = ?", (vid,)).fetchone()
        return Volunteer(row[0], row[1]) if row else None

    def may_work(self, vid: int) -> bool:
        """False for a revoked invitation: it can do nothing more."""
        return not volunteers_mod.is_revoked(self.db, vid)

    def revoke(self, vid: int, void: bool = False) -> list[str]:
        """Revoke an invitation; with ``void`` its entries too (the photos they decided reopen)."""
        def run():
            volunteers_mod.revoke(self.db, vid)
            return consensus.void_volunteer(self.db, vid, "invitation revoked and voided", self._acta_of) if void else []
        return self._tx(run)

    def set_aside(self, vid: int, reason: str) -> list[str]:
        """Set a volunteer aside (their entries voided, the photos they decided reopened)."""
        def run():
            volunteers_mod.set_aside(self.db, vid, reason)
            return consensus.void_volunteer(self.db, vid, f"volunteer set aside: {reason}", self._acta_of)
        return self._tx(run)

    # the queue
    def photo(self, sha: str, volunteer_id: int | None = None) -> Photo | None:
        """A photo of the queue, or a known-answer photo handed to ``volunteer_id`` (shown alike)."""
        p = queued(self.db, sha)
        if p is None and volunteer_id is not None and known_answers.handed(self.db, volunteer_id, sha):
            row = self.db.execute("SELECT media_type, width, height FROM blobs WHERE sha256 = ?", (sha,)).fetchone()
            p = Photo(sha, row[0], row[1], row[2], 0, 0, None, consensus.rule(self.db).of)
        return p

    def linked_mesa(self, sha: str) -> tuple[int, int] | None:
        """The (centre, mesa) a sheet row's URL names this photo as (archive.photolink), or None."""
        return photolink.linked_mesa(self.db, sha)

    def entered(self, volunteer_id: int) -> set[str]:
        return {r[0] for r in self.db.execute(
            "SELECT image_sha256 FROM transcription_entries WHERE volunteer_id = ?", (volunteer_id,))}

    def next_photo(self, volunteer_id: int, skip: set[str] = frozenset(),
                   held: Mapping[str, int] | None = None, queue: list[Photo] | None = None) -> Photo | None:
        """The photo this volunteer should do next: review first, then more entries, then new, at
        random within each (nobody can predict, or arrange, which photo a volunteer gets); now
        and then a known-answer photo instead.

        Never one they entered or ``skip``; photos that ``held`` (others working on it now)
        already cover are left for later, unless nothing else is left. ``queue``: ``photos()``
        read a moment ago (a busy server reads it once a second, not once a request; a photo
        decided meanwhile is caught when the entry is saved).
        """
        mine = self.entered(volunteer_id)
        known = known_answers.draw(self.db, volunteer_id, mine | set(skip))
        if known is not None:   # a write only in that case: most hand-outs take no lock
            self._tx(known_answers.hand, self.db, volunteer_id, known)
            return self.photo(known, volunteer_id)
        todo = [p for p in (photos(self.db) if queue is None else queue) if p.decision is None and p.sha256 not in mine and p.sha256 not in skip]
        _rng.shuffle(todo)
        todo.sort(key=lambda p: _PRIORITY[p.state])
        held = held or {}
        for p in ([p for p in todo if held.get(p.sha256, 0) < p.needed]
                  + [p for p in todo if held.get(p.sha256, 0) >= p.needed]):
            if queue is not None:       # read a moment ago: is it still open?
                p = queued(self.db, p.sha256)
                if p is None or p.decision:
                    continue
            return p
        return None

    def image(self, sha: str) -> bytes:
        """The photo's bytes for a volunteer's screen: the original without EXIF/GPS (only its
        Orientation kept, so it shows upright)."""
        return image_mod.strip_metadata(self.wd.object_path(sha).read_bytes())

    def status(self, volunteer_id: int | None = None, queue: list[Photo] | None = None) -> dict:
        """How far the queue is (``queue``: ``photos()`` read a moment ago, as for ``next_photo``)."""
        states = Counter(p.state for p in (photos(self.db) if queue is None else queue))
        out = {"photos": sum(states.values()), **{s: states.get(s, 0) for s in
               ("open", "waiting", "review", "agreed", "illegible", "unresolved", "not_an_acta", "set_aside")},
               "entries": self.db.execute("SELECT count(*) FROM transcription_entries").fetchone()[0],
               "volunteers": self.db.execute("SELECT count(DISTINCT volunteer_id) FROM transcription_entries")
                             .fetchone()[0], "rule": consensus.rule(self.db).name}
        if volunteer_id is not None:
            out["yours"] = self.db.execute("SELECT count(*) FROM transcription_entries WHERE volunteer_id = ?",
                                           (volunteer_id,)).fetchone()[0]
        return out

    # entries
    def save(self, sha: str, volunteer_id: int, fields: Mapping[str, str] | None) -> Saved:
        """Keep one volunteer's entry for a photo (``fields=None``: "cannot be read") and decide.

        Raises TranscriptionError when the entry breaks a rule (nothing is saved then), the photo
        is not in the queue, this volunteer already entered it, or their invitation was revoked.
        """
        a = None if fields is None else parse_entry(fields, self.election)
        return self._tx(self._save, sha, volunteer_id, a, value_of(a))

    def save_or_keep(self, sha: str, volunteer_id: int, fields: Mapping[str, str] | None,
                     wait: float | None = None) -> Saved:
        """:meth:`save`, retried while another writer holds the workdir; still busy after ``wait``
        seconds, the entry is kept on disk and recorded by a later save (``archive.pending``)."""
        if fields is not None:
            parse_entry(fields, self.election)       # a typing mistake is said now, not kept
        saved = pending.save_or_keep(self, sha, volunteer_id, fields, wait)
        return Saved(None, "kept", 0) if saved is None else saved

    def _save(self, sha: str, volunteer_id: int, a: acta_mod.Acta | None, value: str) -> Saved:
        db = self.db
        if volunteers_mod.is_revoked(db, volunteer_id):
            raise volunteers_mod.revoked_error()
        photo = self.photo(sha, volunteer_id)
        if photo is None:
            raise TranscriptionError("not_in_queue", "this photo is not waiting for transcription",
                                     "Esta foto no está en la cola de transcripción.")
        if db.execute("SELECT 1 FROM transcription_entries WHERE image_sha256 = ? AND volunteer_id = ?",
                      (sha, volunteer_id)).fetchone():
            raise TranscriptionError("already_entered", "you already transcribed this photo; an entry counts "
                                     "only when another volunteer makes it", "Usted ya transcribió esta foto: "
                                     "para que cuente, otra persona debe hacer la segunda entrada.")
        late = photo.decision is not None
        if not late and queued(db, sha) is not None and machine_entry.due(db, sha):   # read since the last sweep
            late = self._machine_entry(sha) not in (None, "open", "waiting", "review")
        entry_id = self._insert(sha, volunteer_id, a, value, late)
        if known_answers.record(db, entry_id, sha, a) is not None:   # a known answer: scores, decides nothing
            self._judge(volunteer_id)
            return Saved(entry_id, "waiting", 1)       # what any first entry hears: nothing gives it away
        if late:   # kept (nothing typed is lost) but the decision stands
            return Saved(entry_id, "late", photo.entries)
        if volunteers_mod.is_set_aside(db, volunteer_id):   # kept, voided, and nothing said
            db.execute("INSERT INTO voided_entries (entry_id, reason, at) VALUES (?, 'volunteer set aside', ?)",
                       (entry_id, now()))
            return Saved(entry_id, "review" if photo.entries + 1 >= photo.of else "waiting", photo.entries + 1)
        state, entries, acta_id = consensus.decide(db, sha, self._acta_of)
        return Saved(entry_id, state, entries, acta_id)

    def _judge(self, volunteer_id: int) -> None:
        """A volunteer whose known-answer score fell below the threshold is set aside, silently."""
        if known_answers.failing(self.db, volunteer_id) and not volunteers_mod.is_set_aside(self.db, volunteer_id):
            right, total = known_answers.score(self.db, volunteer_id)
            volunteers_mod.set_aside(self.db, volunteer_id, f"known answers {right}/{total}")
            consensus.void_volunteer(self.db, volunteer_id, "volunteer set aside: known answers", self._acta_of)

    def _acta_of(self, entry_id: int) -> int:
        """The acta an agreed entry makes (consensus calls this when entries decide a photo)."""
        r = self.db.execute("SELECT * FROM transcription_entries WHERE id = ?", (entry_id,)).fetchone()
        return self._make_acta(entry_acta(r), r["image_sha256"])

    def _insert(self, sha: str, volunteer_id: int, a: acta_mod.Acta | None, value: str, late: bool) -> int:
        return self.db.execute(
            "INSERT INTO transcription_entries (image_sha256, volunteer_id, entered_at, illegible, centro, mesa, "
            "votes, validos, nulos, value, after_decision, typed) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (sha, volunteer_id, now(), int(a is None), a and a.centro, a and a.mesa, json.dumps(a.votes) if a else None,
             a and a.validos, a and a.nulos, value, int(late), typed_of(a))).lastrowid

    # the machine reading (archive.machine_entry): one non-human entry, never enough alone
    def _machine_entry(self, sha: str) -> str | None:
        """Enter a photo's complete printed reading as the machine's entry; the photo's state after
        it, or None when there is no usable reading. Runs inside a write transaction."""
        a = machine_entry.reading(self.db, sha, self.election)
        if a is None:
            return None
        self._insert(sha, machine_entry.volunteer(self.db), a, value_of(a), False)
        return consensus.decide(self.db, sha, self._acta_of)[0]

    def machine_entries(self) -> int:
        """Enter the machine reading of every undecided queue photo read since the last sweep."""
        todo = machine_entry.pending_photos(self.db, [p.sha256 for p in photos(self.db) if p.decision is None])
        try:
            return sum(self._tx(self._machine_entry, sha) is not None for sha in todo)
        except Exception as e:    # another writer holds the workdir: the next save on each photo enters it
            if pending.busy(e):
                return 0
            raise

    def _make_acta(self, a: acta_mod.Acta, sha: str) -> int:
        """The agreed numbers become an acta through ingest's own machinery (classified against
        other readings of the mesa: duplicate or conflict like any other; flagged
        ``outside_registry`` like a QR reading when the registry lacks the mesa). A photo
        reopened and agreed again gets a new locator (inputs are unique by locator)."""
        db = self.db
        locator = db.execute("SELECT locator FROM inputs WHERE sha256 = ? AND kind = 'image' ORDER BY id "
                             "LIMIT 1", (sha,)).fetchone()[0]
        where, n = f"{locator}#transcription", 1
        while db.execute("SELECT 1 FROM inputs WHERE locator = ? AND sha256 = ?", (where, sha)).fetchone():
            n += 1
            where = f"{locator}#transcription-{n}"
        return self.ingester._add_acta(a, SOURCE, where, sha, image_sha=sha,
                                       kind="transcription", flags=acta_mod.validate(a, self.election))
