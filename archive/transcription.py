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
* two entries agree when they give the same mesa and the same numbers (``Acta.numbers``, the
  text ingest uses to tell a duplicate from a conflict). "Cannot be read" is a value too;
* the first value entered by two different volunteers wins: two agreeing entries decide; after
  two that differ the photo goes to review, where the next entry decides if it matches either;
  if all three differ the photo stays in review and each further entry is compared with all
  earlier ones, until ``MAX_ENTRIES`` entries without two alike set it aside as ``unresolved``.

Writes are short ``BEGIN IMMEDIATE`` transactions on the workdir's WAL database with
``synchronous=FULL``, so several volunteers (or several servers) can save at once, and an
entry that was saved survives a crash or ``kill -9``.
"""
from __future__ import annotations

import json
import re
import sqlite3
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

from . import acta as acta_mod
from . import image as image_mod
from . import pending
from .errors import TranscriptionError, ValidationError
from .ingest import Ingester
from .workdir import Workdir, busy_timeout

SOURCE_KIND = "transcribed-photo"
SOURCE = "testigo transcribe"      # inputs.source of the acta an agreement makes
ILLEGIBLE = "illegible"           # the value of a "cannot be read" entry
AGREE = 2                         # entries with the same value that decide a photo
MAX_ENTRIES = 5                   # entries without two alike after which a photo is set aside
# A photo waits for transcription when its QR gave nothing usable: no QR found, or a text
# that is not an acta of this election (readings.status).
QUEUE_READINGS = ("unreadable", "invalid")
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
    decision: str | None          # agreed / illegible / unresolved, or None while open

    @property
    def state(self) -> str:
        """open (no entry), waiting (one), review (entries that differ), or the decision."""
        if self.decision:
            return self.decision
        return "review" if self.entries >= AGREE else ("waiting" if self.entries else "open")

    @property
    def needed(self) -> int:
        """How many more entries could decide the photo (1 in review)."""
        return 0 if self.decision else max(1, AGREE - self.entries)


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


def value_of(a: acta_mod.Acta | None) -> str:
    """The canonical text entries are compared by: mesa and numbers, or ILLEGIBLE."""
    return ILLEGIBLE if a is None else f"{a.mesa_key} {a.numbers()}"


# --- parsing and checking an entry -----------------------------------------------------------------

def _number(fields: Mapping[str, str], name: str, es: str, en: str, digits: int) -> int:
    text = str(fields.get(name) or "").strip().replace(" ", "")
    if not text:
        raise TranscriptionError("missing_field", f"{en} is missing: type 0 if the box on the acta is empty",
                                 f"Falta {es}: escriba 0 si la casilla del acta está vacía.", name)
    if not (text.isascii() and text.isdigit()):
        raise TranscriptionError("not_a_number", f"{en}: {text[:20]!r} is not a whole number; type digits only",
                                 f"{es}: «{text[:20]}» no es un número entero; escriba solo cifras.", name)
    if len(text.lstrip("0")) > digits:
        raise TranscriptionError("too_large", f"{en}: {text[:20]} is far too large for a mesa; check the photo",
                                 f"{es}: {text[:20]} es demasiado grande para una mesa; revise la foto.", name)
    return int(text)


def form_fields(election) -> list[tuple[str, str, str, int]]:
    """The entry form's fields in the order the printed acta shows them: (name, es, en, max digits)."""
    spec = election.payload
    count = len(str(spec["max_count"]))
    return ([("centro", "el código del centro", "the centre code", spec["centro_digits"][1]),
             ("mesa", "el número de mesa", "the mesa number", spec["mesa_digits"][1])]
            + [(f"v_{c.code}", f"los votos de {c.name}", f"{c.name}'s votes", count) for c in election.candidates]
            + [("validos", "los votos válidos", "valid votes", count), ("nulos", "los votos nulos", "null votes", count)])


def parse_entry(fields: Mapping[str, str], election) -> acta_mod.Acta:
    """A volunteer's form as an Acta of source ``transcribed-photo``, checked by ``acta.validate``.

    A mesa outside the registry passes (flagged when it becomes an acta, see ``_make_acta``).

    Raises TranscriptionError naming the field to fix, with a message in Spanish and English.
    """
    n = {name: _number(fields, name, es, en, digits) for name, es, en, digits in form_fields(election)}
    lo, hi = election.payload["centro_digits"]   # the QR grammar's rule (acta.parse_payload)
    if not lo <= len(str(n["centro"])) <= hi:
        raise TranscriptionError("bad_centre", f"the centre code {n['centro']} should have {lo} to {hi} digits; "
                                 "copy it from the acta", f"El código del centro {n['centro']} debe tener de {lo} "
                                 f"a {hi} cifras: cópielo del acta.", "centro")
    a = acta_mod.Acta(n["centro"], n["mesa"], SOURCE_KIND, {c.code: n[f"v_{c.code}"] for c in election.candidates},
                      None, n["validos"], n["nulos"])
    try:
        acta_mod.validate(a, election)
    except ValidationError as e:
        raise _explain(e, a, election) from None
    return a


def _explain(e: ValidationError, a: acta_mod.Acta, election) -> TranscriptionError:
    """acta.validate's refusal, said so that the volunteer knows which number to look at."""
    if e.code == "sum_mismatch":
        total = sum(a.votes.values())
        return TranscriptionError(e.code, str(e), f"Los votos de los candidatos suman {total}, pero válidos dice "
                                  f"{a.validos}: compare cada número con la foto.", "validos")
    if e.code == "over_electors":
        m = election.mesa(a.centro, a.mesa)
        return TranscriptionError(e.code, str(e), f"Válidos + nulos = {a.validos + (a.nulos or 0)}, más que los "
                                  f"{m.electores if m else '?'} electores inscritos de la mesa {a.mesa_key}: "
                                  "revise válidos, nulos y la mesa.", "validos")
    return TranscriptionError(e.code, str(e), f"La entrada no cumple una regla de la elección ({e.code}): {e}",
                              "centro")


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

_QUEUE = f"""
WITH eligible AS (
    SELECT r.sha256, b.media_type, b.width, b.height, min(i.id) AS first_input
    FROM readings r JOIN blobs b ON b.sha256 = r.sha256
    JOIN inputs i ON i.sha256 = r.sha256 AND i.kind = 'image'
    WHERE r.status IN ({", ".join(f"'{s}'" for s in QUEUE_READINGS)}) AND b.media_type LIKE 'image/%'
    GROUP BY r.sha256),
counts AS (SELECT image_sha256, count(*) AS n FROM transcription_entries WHERE after_decision = 0
           GROUP BY image_sha256)
SELECT e.sha256, e.media_type, e.width, e.height, e.first_input, coalesce(c.n, 0) AS entries,
       coalesce(d.decision, CASE WHEN EXISTS (SELECT 1 FROM actas a WHERE a.image_sha256 = e.sha256)
                                 THEN 'agreed' END) AS decision
FROM eligible e LEFT JOIN counts c ON c.image_sha256 = e.sha256
LEFT JOIN transcription_decisions d ON d.image_sha256 = e.sha256
"""
# A photo with an acta but no decision here was transcribed elsewhere: a team bundle brought it
# unread, then a newer bundle of that team brought the acta its volunteers agreed on. Decided.
_PRIORITY = {"review": 0, "waiting": 1, "open": 2}


def photos(db) -> list[Photo]:
    """Every photo of the transcription queue, decided or not, in ingest order."""
    return sorted((Photo(*r) for r in db.execute(_QUEUE)), key=lambda p: p.first_input)


def unread(db) -> list[str]:
    """The sha256 of the queue's photos without an agreed transcription: photos that gave no
    acta yet."""
    return [p.sha256 for p in photos(db) if p.decision != "agreed"]


def awaiting(db) -> int:
    """How many photos of the queue have no agreed transcription."""
    return len(unread(db))


def published(db) -> list[dict]:
    """What the bundle publishes per agreed photo: its acta (workdir id), entries, public aliases."""
    out = []
    for sha, acta_id, entries in db.execute(
            "SELECT image_sha256, acta_id, entries FROM transcription_decisions "
            "WHERE decision = 'agreed' AND acta_id IS NOT NULL ORDER BY acta_id").fetchall():
        aliases = [r[0] for r in db.execute(
            "SELECT DISTINCT v.alias FROM transcription_entries e JOIN volunteers v ON v.id = e.volunteer_id "
            "WHERE e.image_sha256 = ? AND e.after_decision = 0 AND v.alias IS NOT NULL ORDER BY v.alias", (sha,))]
        out.append({"acta_id": acta_id, "entries": entries,
                    "transcribers": json.dumps(aliases, ensure_ascii=False) if aliases else None})
    return out


class Transcriptions:
    """The transcription queue of one workdir: volunteers, entries, decisions."""

    def __init__(self, workdir: Workdir | str, election_id: str | None = None):
        self.wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir, create=False)
        self.db = self.wd.db
        self.db.execute("PRAGMA synchronous=FULL")   # a saved entry survives even a power cut
        self.ingester = Ingester(self.wd, election_id)
        self.election = self.ingester.election

    def close(self) -> None:
        self.wd.close()

    # volunteers
    def volunteer(self, name: str, alias: str | None = None) -> Volunteer:
        """Sign a volunteer in by name (created on first use); the alias given replaces the old one."""
        name, alias = check_volunteer(name, alias)
        key = name_key(name)
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT id FROM volunteers WHERE name_key = ?", (key,)).fetchone()
            if row is None:
                vid = db.execute("INSERT INTO volunteers (name, name_key, alias, created_at) VALUES (?, ?, ?, ?)",
                                 (name, key, alias, now())).lastrowid
            else:
                vid = row[0]
                db.execute("UPDATE volunteers SET alias = ? WHERE id = ?", (alias, vid))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return Volunteer(vid, alias)

    def volunteer_by_id(self, vid: int) -> Volunteer | None:
        row = self.db.execute("SELECT id, alias FROM volunteers WHERE id = ?", (vid,)).fetchone()
        return Volunteer(row[0], row[1]) if row else None

    # the queue
    def photo(self, sha: str) -> Photo | None:
        return next((p for p in photos(self.db) if p.sha256 == sha), None)

    def entered(self, volunteer_id: int) -> set[str]:
        return {r[0] for r in self.db.execute(
            "SELECT image_sha256 FROM transcription_entries WHERE volunteer_id = ?", (volunteer_id,))}

    def next_photo(self, volunteer_id: int, skip: set[str] = frozenset(),
                   held: Mapping[str, int] | None = None) -> Photo | None:
        """The photo this volunteer should do next: review first, then a second entry, then new.

        Never one they entered or ``skip``; photos that ``held`` (others working on it now)
        already cover are left for later, unless nothing else is left.
        """
        mine = self.entered(volunteer_id)
        todo = sorted((p for p in photos(self.db) if p.decision is None and p.sha256 not in mine
                       and p.sha256 not in skip), key=lambda p: (_PRIORITY[p.state], p.first_input))
        held = held or {}
        return next((p for p in todo if held.get(p.sha256, 0) < p.needed), todo[0] if todo else None)

    def image(self, sha: str) -> bytes:
        """The photo's bytes for a volunteer's screen: the original without EXIF/GPS (only its
        Orientation kept, so it shows upright)."""
        return image_mod.strip_metadata(self.wd.object_path(sha).read_bytes())

    def status(self, volunteer_id: int | None = None) -> dict:
        states = Counter(p.state for p in photos(self.db))
        out = {"photos": sum(states.values()), **{s: states.get(s, 0) for s in
               ("open", "waiting", "review", "agreed", "illegible", "unresolved")},
               "entries": self.db.execute("SELECT count(*) FROM transcription_entries").fetchone()[0],
               "volunteers": self.db.execute("SELECT count(DISTINCT volunteer_id) FROM transcription_entries")
                             .fetchone()[0]}
        if volunteer_id is not None:
            out["yours"] = self.db.execute("SELECT count(*) FROM transcription_entries WHERE volunteer_id = ?",
                                           (volunteer_id,)).fetchone()[0]
        return out

    # entries
    def save(self, sha: str, volunteer_id: int, fields: Mapping[str, str] | None) -> Saved:
        """Keep one volunteer's entry for a photo (``fields=None``: "cannot be read") and decide.

        Raises TranscriptionError when the entry breaks a rule (nothing is saved then), the photo
        is not in the queue, or this volunteer already entered it.
        """
        a = None if fields is None else parse_entry(fields, self.election)
        value = value_of(a)
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            saved = self._save(sha, volunteer_id, a, value)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return saved

    def save_or_keep(self, sha: str, volunteer_id: int, fields: Mapping[str, str] | None,
                     wait: float | None = None) -> Saved:
        """:meth:`save`, retried while another writer holds the workdir; still busy after ``wait``
        seconds, the entry is kept on disk (``archive.pending``) and recorded by a later save:
        state ``kept``. Entries kept earlier are recorded first. A rule broken is raised at once."""
        if fields is not None:
            parse_entry(fields, self.election)       # a typing mistake is said now, not kept
        wait = pending.SAVE_WAIT if wait is None else wait
        deadline = time.monotonic() + wait
        self.db.execute(f"PRAGMA busy_timeout = {int(max(0.1, min(wait, 2.0)) * 1000)}")
        try:
            while True:
                try:
                    pending.replay(self)
                    return self.save(sha, volunteer_id, fields)
                except sqlite3.OperationalError as e:
                    if not pending.busy(e):
                        raise
                    if time.monotonic() >= deadline:
                        pending.keep(self.wd.path, sha, volunteer_id, fields)
                        return Saved(None, "kept", 0)
                    time.sleep(0.2)
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout() * 1000)}")

    def _save(self, sha: str, volunteer_id: int, a: acta_mod.Acta | None, value: str) -> Saved:
        db = self.db
        photo = self.photo(sha)
        if photo is None:
            raise TranscriptionError("not_in_queue", "this photo is not waiting for transcription",
                                     "Esta foto no está en la cola de transcripción.")
        if db.execute("SELECT 1 FROM transcription_entries WHERE image_sha256 = ? AND volunteer_id = ?",
                      (sha, volunteer_id)).fetchone():
            raise TranscriptionError("already_entered", "you already transcribed this photo; an entry counts "
                                     "only when another volunteer makes it", "Usted ya transcribió esta foto: "
                                     "para que cuente, otra persona debe hacer la segunda entrada.")
        late = photo.decision is not None
        entry_id = db.execute(
            "INSERT INTO transcription_entries (image_sha256, volunteer_id, entered_at, illegible, centro, mesa, "
            "votes, validos, nulos, value, after_decision) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (sha, volunteer_id, now(), int(a is None), a and a.centro, a and a.mesa,
             json.dumps(a.votes) if a else None, a and a.validos, a and a.nulos, value, int(late))).lastrowid
        if late:   # kept (nothing typed is lost) but the decision stands
            return Saved(entry_id, "late", photo.entries)
        values = [r[0] for r in db.execute("SELECT value FROM transcription_entries WHERE image_sha256 = ? "
                                           "AND after_decision = 0 ORDER BY id", (sha,))]
        entries = len(values)
        if values.count(value) >= AGREE:
            decision = ILLEGIBLE if a is None else "agreed"
            acta_id = None if a is None else self._make_acta(a, sha)
        elif entries >= MAX_ENTRIES:
            decision, acta_id = "unresolved", None
        else:
            return Saved(entry_id, "review" if entries >= AGREE else "waiting", entries)
        db.execute("INSERT INTO transcription_decisions (image_sha256, decision, value, entries, acta_id, "
                   "decided_at) VALUES (?, ?, ?, ?, ?, ?)",
                   (sha, decision, None if decision == "unresolved" else value, entries, acta_id, now()))
        return Saved(entry_id, decision, entries, acta_id)

    def _make_acta(self, a: acta_mod.Acta, sha: str) -> int:
        """The agreed numbers become an acta through ingest's own machinery (classified against
        other readings of the mesa: duplicate or conflict like any other; flagged
        ``outside_registry`` like a QR reading when the registry lacks the mesa)."""
        locator = self.db.execute("SELECT locator FROM inputs WHERE sha256 = ? AND kind = 'image' ORDER BY id "
                                  "LIMIT 1", (sha,)).fetchone()[0]
        return self.ingester._add_acta(a, SOURCE, f"{locator}#transcription", sha, image_sha=sha,
                                       kind="transcription", flags=acta_mod.validate(a, self.election))

