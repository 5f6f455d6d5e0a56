"""When entries decide a photo, and how a decision is undone: the consensus rule, voiding, reopening.

The rule is a setting of the workdir (``meta.transcribe_consensus``):

* ``2of2`` (the default): the first two entries that agree decide; entries that differ send the
  photo to review, where the next entry decides if it matches one of them;
* ``2of3``: three entries are always needed, and two of them must agree;
* ``3of3``: three entries, all alike.

A photo without agreement after ``max_entries`` entries is set aside as ``unresolved`` for the
coordinator. Only *live* entries count: made before the decision and not voided (an entry is
voided when its volunteer is set aside or their invitation voided, or when the coordinator
reopens the photo). Voiding an entry that helped decide a photo reopens it: its decision is
removed, the acta it made is withdrawn (deleted: the entries are the record, and the bundle
numbers actas afresh), and the remaining entries are counted again under the rule.
The coordinator's decisions (accept one entry, "not an acta", set aside, reopen) and comments
are kept in ``transcription_reviews``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from .errors import TranscriptionError

META_RULE = "transcribe_consensus"
ILLEGIBLE = "illegible"
MAX_ENTRIES = 5
# A photo waits for transcription when its QR gave nothing usable: no QR found, or a text
# that is not an acta of this election (readings.status).
QUEUE_READINGS = ("unreadable", "invalid")
LIVE = "after_decision = 0 AND id NOT IN (SELECT entry_id FROM voided_entries)"
#: decisions only the coordinator makes
DESK_DECISIONS = ("not_an_acta", "set_aside")


@dataclass(frozen=True)
class Rule:
    need: int        # entries with the same value that decide
    of: int          # entries needed before anything is decided

    @property
    def name(self) -> str:
        return f"{self.need}of{self.of}"

    @property
    def max_entries(self) -> int:
        return max(MAX_ENTRIES, self.of + 2)

    def verdict(self, values: list[str]) -> str | None:
        """The value these entries decide, or None (not enough, or no agreement yet)."""
        if len(values) < self.of:
            return None
        value, n = Counter(values).most_common(1)[0]
        if n < self.need:
            return None
        tied = [v for v, c in Counter(values).items() if c == n]
        return value if len(tied) == 1 else next(v for v in values if v in tied)   # the first one typed


RULES = {r.name: r for r in (Rule(2, 2), Rule(2, 3), Rule(3, 3))}
DEFAULT = RULES["2of2"]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def rule(db) -> Rule:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (META_RULE,)).fetchone()
    return RULES.get(row[0], DEFAULT) if row else DEFAULT


def set_rule(db, name: str) -> Rule:
    """Change the rule. Photos already decided stay decided; open ones follow the new rule."""
    if name not in RULES:
        raise TranscriptionError("bad_rule", f"the consensus rule is one of {', '.join(RULES)}",
                                 f"La regla de consenso es una de {', '.join(RULES)}.")
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (META_RULE, name))
    return RULES[name]


def live_entries(db, sha: str) -> list[tuple[int, str]]:
    return [(r[0], r[1]) for r in db.execute(
        f"SELECT id, value FROM transcription_entries WHERE image_sha256 = ? AND {LIVE} ORDER BY id", (sha,))]


MakeActa = Callable[[int], int]   # entry id -> acta id (the agreed numbers become an acta)


def decide(db, sha: str, make_acta: MakeActa) -> tuple[str, int, int | None]:
    """Apply the rule to a photo's live entries: (state, entries, acta id). Writes the decision."""
    r = rule(db)
    entries = live_entries(db, sha)
    values = [v for _, v in entries]
    value = r.verdict(values)
    if value is not None:
        decision = ILLEGIBLE if value == ILLEGIBLE else "agreed"
        entry = next(i for i, v in entries if v == value)
        acta_id = None if value == ILLEGIBLE else make_acta(entry)
    elif len(values) >= r.max_entries:
        decision, acta_id = "unresolved", None
    else:
        return ("review" if len(values) >= r.of else ("waiting" if values else "open")), len(values), None
    _write(db, sha, decision, None if decision == "unresolved" else value, len(values), acta_id)
    return decision, len(values), acta_id


def _write(db, sha, decision, value, entries, acta_id) -> None:
    db.execute("INSERT INTO transcription_decisions (image_sha256, decision, value, entries, acta_id, decided_at) "
               "VALUES (?, ?, ?, ?, ?, ?)", (sha, decision, value, entries, acta_id, now()))


# --- undoing -----------------------------------------------------------------------------------------

def withdraw_acta(db, acta_id: int) -> None:
    """Remove an acta an agreement made. A later reading of the same mesa that was its duplicate
    takes its place; conflict flags it set on other readings stay (they still deserve a look)."""
    row = db.execute("SELECT status FROM actas WHERE id = ?", (acta_id,)).fetchone()
    if row is None:
        return
    dups = [r[0] for r in db.execute("SELECT id FROM actas WHERE duplicate_of = ? ORDER BY id", (acta_id,))]
    db.execute("UPDATE transcription_decisions SET acta_id = NULL WHERE acta_id = ?", (acta_id,))
    if dups:
        heir = dups[0]
        db.execute("UPDATE actas SET status = ?, duplicate_of = NULL WHERE id = ?", (row[0], heir))
        db.execute("UPDATE actas SET duplicate_of = ? WHERE duplicate_of = ?", (heir, acta_id))
        db.execute("UPDATE inputs SET outcome = 'transcribed', code = NULL, reason = NULL WHERE acta_id = ? "
                   "AND outcome = 'duplicate'", (heir,))
        db.execute("UPDATE inputs SET acta_id = ? WHERE acta_id = ? AND outcome IN ('duplicate', 'conflict') "
                   "AND kind != 'transcription'", (heir, acta_id))
    db.execute("DELETE FROM inputs WHERE acta_id = ? AND kind = 'transcription'", (acta_id,))
    db.execute("UPDATE inputs SET acta_id = NULL WHERE acta_id = ?", (acta_id,))
    db.execute("DELETE FROM actas WHERE id = ?", (acta_id,))


def undecide(db, sha: str) -> bool:
    """Remove a photo's decision (and its acta); late entries count again. False if it had none."""
    row = db.execute("SELECT acta_id FROM transcription_decisions WHERE image_sha256 = ?", (sha,)).fetchone()
    if row is None:
        return False
    db.execute("DELETE FROM transcription_decisions WHERE image_sha256 = ?", (sha,))
    if row[0] is not None:
        withdraw_acta(db, row[0])
    db.execute("UPDATE transcription_entries SET after_decision = 0 WHERE image_sha256 = ?", (sha,))
    return True


def void_entries(db, entry_ids: list[int], reason: str, make_acta: MakeActa) -> list[str]:
    """Void entries; every photo they were live on is reopened and counted again. Returns those photos."""
    photos = sorted({r[0] for r in db.execute(
        f"SELECT DISTINCT image_sha256 FROM transcription_entries WHERE {LIVE} AND id IN "
        f"(SELECT value FROM json_each(?))", (_json(entry_ids),))})
    at = now()
    db.executemany("INSERT OR IGNORE INTO voided_entries (entry_id, reason, at) VALUES (?, ?, ?)",
                   [(i, reason, at) for i in entry_ids])
    reopened = []
    for sha in photos:
        decided = db.execute("SELECT decision FROM transcription_decisions WHERE image_sha256 = ?",
                             (sha,)).fetchone()
        if decided and decided[0] in DESK_DECISIONS:
            continue   # the coordinator's decision stands
        if decided:
            undecide(db, sha)
            reopened.append(sha)
        if _in_queue(db, sha):
            decide(db, sha, make_acta)
    return reopened


def _json(ids: list[int]) -> str:
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


def _in_queue(db, sha: str) -> bool:
    """Is this a photo of the queue (not a known-answer photo, whose entries decide nothing)?"""
    marks = ", ".join("?" * len(QUEUE_READINGS))
    return db.execute(f"SELECT 1 FROM readings WHERE sha256 = ? AND status IN ({marks})",
                      (sha, *QUEUE_READINGS)).fetchone() is not None


def void_volunteer(db, volunteer_id: int, reason: str, make_acta: MakeActa) -> list[str]:
    """Void every live entry of a volunteer (revoked invitation, set aside): their photos go back."""
    ids = [r[0] for r in db.execute(f"SELECT id FROM transcription_entries WHERE volunteer_id = ? AND {LIVE}",
                                    (volunteer_id,))]
    return void_entries(db, ids, reason, make_acta)


# --- the coordinator's desk ---------------------------------------------------------------------------

def log(db, sha: str, action: str, comment: str | None = None, entry_id: int | None = None) -> None:
    comment = (comment or "").strip()[:2000] or None
    db.execute("INSERT INTO transcription_reviews (image_sha256, at, action, entry_id, comment) VALUES (?,?,?,?,?)",
               (sha, now(), action, entry_id, comment))


def accept(db, sha: str, entry_id: int, make_acta: MakeActa, comment: str | None = None) -> str:
    """The coordinator takes one entry as the photo's reading, replacing any decision."""
    row = db.execute("SELECT value FROM transcription_entries WHERE id = ? AND image_sha256 = ?",
                     (entry_id, sha)).fetchone()
    if row is None:
        raise TranscriptionError("unknown_entry", "that entry is not one of this photo's",
                                 "Esa entrada no es de esta foto.")
    undecide(db, sha)
    n = len(live_entries(db, sha))
    if row[0] == ILLEGIBLE:
        _write(db, sha, ILLEGIBLE, ILLEGIBLE, n, None)
    else:
        _write(db, sha, "agreed", row[0], n, make_acta(entry_id))
    log(db, sha, "accept", comment, entry_id)
    return "agreed" if row[0] != ILLEGIBLE else ILLEGIBLE


def close(db, sha: str, decision: str, comment: str | None = None) -> None:
    """"Not an acta" or "set aside": the photo leaves the queue with no acta."""
    assert decision in DESK_DECISIONS
    undecide(db, sha)
    _write(db, sha, decision, None, len(live_entries(db, sha)), None)
    log(db, sha, decision, comment)


def reopen(db, sha: str, make_acta: MakeActa, comment: str | None = None) -> None:
    """Back to the queue with no entries counting: the photo is typed afresh by others."""
    undecide(db, sha)
    ids = [i for i, _ in live_entries(db, sha)]
    void_entries(db, ids, "reopened by the coordinator", make_acta)
    log(db, sha, "reopen", comment)


def comments(db, sha: str) -> list[dict]:
    return [dict(r) for r in db.execute("SELECT at, action, entry_id, comment FROM transcription_reviews "
                                        "WHERE image_sha256 = ? ORDER BY id", (sha,))]
