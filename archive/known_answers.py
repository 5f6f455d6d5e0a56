"""Known answers: photos whose numbers the archive already knows, handed out to score volunteers.

A share of the photos a volunteer gets (``meta.transcribe_known_share``, 1 in 10 by default) is a
photo whose QR was decoded (an acta of source ``qr`` with status ``ok``: no conflicting
reading). Nothing is hidden or cropped and the page is the same as for any photo, so the
volunteer cannot tell. Their entry is compared with the QR's mesa, its 38 counts line by line,
válidos and nulos (the QR's first trailing field) and never makes an acta. A volunteer whose score (right / known entries)
falls below ``meta.transcribe_known_threshold`` (0.7) after at least ``MIN_JUDGED`` known
entries is set aside without being told (see ``Transcriptions._judge``).

An entry on a known photo counts only if that photo was handed to that volunteer
(``known_handouts``): typing numbers for any decoded photo one finds scores nothing.
"""
from __future__ import annotations

import json
import secrets

from . import acta as acta_mod

META_SHARE, META_THRESHOLD = "transcribe_known_share", "transcribe_known_threshold"
DEFAULT_SHARE, DEFAULT_THRESHOLD = 0.1, 0.7
MIN_JUDGED = 3                # known entries before a score can set a volunteer aside
_rng = secrets.SystemRandom()


def _meta(db, key: str, default: float) -> float:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    try:
        return float(row[0]) if row else default
    except ValueError:
        return default


def share(db) -> float:
    return _meta(db, META_SHARE, DEFAULT_SHARE)


def threshold(db) -> float:
    return _meta(db, META_THRESHOLD, DEFAULT_THRESHOLD)


def configure(db, share_: float | None = None, threshold_: float | None = None) -> None:
    for key, value in ((META_SHARE, share_), (META_THRESHOLD, threshold_)):
        if value is not None:
            if not 0 <= value <= 1:
                raise ValueError(f"{key} must be between 0 and 1")
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, repr(float(value))))


_KNOWN = ("SELECT a.image_sha256 FROM actas a JOIN readings r ON r.sha256 = a.image_sha256 AND r.status = 'ok' "
          "WHERE a.source_kind = 'qr' AND a.status = 'ok' AND a.image_sha256 IS NOT NULL")


def draw(db, volunteer_id: int, skip=frozenset()) -> str | None:
    """With probability ``share``: a known photo this volunteer has not been given, at random
    (read only; ``hand`` records it). None otherwise, or when none is left."""
    if _rng.random() >= share(db):
        return None
    done = {r[0] for r in db.execute("SELECT image_sha256 FROM known_handouts WHERE volunteer_id = ?",
                                     (volunteer_id,))}
    left = [r[0] for r in db.execute(_KNOWN) if r[0] not in done and r[0] not in skip]
    return _rng.choice(left) if left else None


def hand(db, volunteer_id: int, sha: str) -> None:
    """Record that a known photo was given to this volunteer: only then does their entry score."""
    db.execute("INSERT OR IGNORE INTO known_handouts (volunteer_id, image_sha256, at) VALUES (?, ?, "
               "strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'))", (volunteer_id, sha))


def handed(db, volunteer_id: int, sha: str) -> bool:
    return db.execute("SELECT 1 FROM known_handouts WHERE volunteer_id = ? AND image_sha256 = ?",
                      (volunteer_id, sha)).fetchone() is not None


def comparable(a: acta_mod.Acta | None, nulos: bool = True) -> str:
    """What a known answer is checked on: the mesa, the 38 party lines one by one, válidos and (when
    the QR states them, ``nulos``) nulos; or 'illegible'. An entry typed before the paper form
    (no lines) is checked on the candidates' votes, as it was then."""
    if a is None:
        return "illegible"
    if a.counts is None:
        return f"{a.mesa_key} {json.dumps(a.votes, sort_keys=True)} {a.validos}"
    return f"{a.mesa_key} lines {json.dumps(list(a.counts))} {a.validos}" + (f" nulos {a.nulos}" if nulos else "")


def known(db, sha: str) -> acta_mod.Acta | None:
    """The QR acta of a known photo (its 38 counts, válidos, nulos when the QR states them)."""
    row = db.execute("SELECT centro, mesa, votes, counts, validos, nulos FROM actas WHERE image_sha256 = ? "
                     "AND source_kind = 'qr' AND status = 'ok' ORDER BY id LIMIT 1", (sha,)).fetchone()
    if row is None:
        return None
    counts = tuple(json.loads(row[3])) if row[3] else None
    return acta_mod.Acta(row[0], row[1], "qr", json.loads(row[2]), counts, row[4], row[5])


def expected(db, sha: str) -> str | None:
    qr = known(db, sha)
    return None if qr is None else comparable(qr, nulos=qr.nulos is not None)


def record(db, entry_id: int, sha: str, a: acta_mod.Acta | None) -> bool | None:
    """Score an entry on a known photo, line by line; None when the photo is not a known one after all."""
    qr = known(db, sha)
    if qr is None:
        return None
    with_nulos = qr.nulos is not None
    if a is not None and a.counts is None:        # an entry of the old form: candidates' votes
        qr = acta_mod.Acta(qr.centro, qr.mesa, "qr", qr.votes, None, qr.validos, qr.nulos)
    want = comparable(qr, with_nulos)
    right = comparable(a, with_nulos) == want
    db.execute("INSERT INTO known_answer_entries (entry_id, expected, correct) VALUES (?, ?, ?)",
               (entry_id, want, int(right)))
    return right


def score(db, volunteer_id: int) -> tuple[int, int]:
    """(right, known entries) of a volunteer."""
    row = db.execute("SELECT coalesce(sum(k.correct), 0), count(*) FROM known_answer_entries k "
                     "JOIN transcription_entries e ON e.id = k.entry_id WHERE e.volunteer_id = ?",
                     (volunteer_id,)).fetchone()
    return row[0], row[1]


def failing(db, volunteer_id: int) -> bool:
    right, total = score(db, volunteer_id)
    return total >= MIN_JUDGED and right / total < threshold(db)
