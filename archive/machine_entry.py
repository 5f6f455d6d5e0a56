"""The machine reading of the printed acta as one non-human transcription entry.

For a photo whose QR cannot be read, ``testigo read`` may have read the whole printed acta: all
38 party lines and the summary, each count's digits agreeing with its words, válidos equal to
the lines' sum (``printed_store.machine_reading_for``). Such a reading is entered in the
transcription queue as the entry of one special volunteer, the machine (alias ``testigo-ocr``),
made through the same form parser as a person's entry, so it is compared on every field.

It is never enough alone: every consensus rule needs at least two entries from two different
volunteers, and the machine is one. Under ``2of2`` a volunteer's independent entry that equals
it decides the photo; one that differs sends the photo to review, where the next person
decides. Volunteers are never shown it (no prefilled box, no number after saving): blind double
entry is stronger than "confirm what the machine says". A partial reading enters nothing.
"""
from __future__ import annotations

from .errors import TranscriptionError
from .printed_store import machine_reading_for
from .transcription_form import machine_fields, parse_entry

NAME_KEY = "\x01machine-reading"    # no typed name has it: names must be printable (check_volunteer)
NAME = "testigo read (machine reading of the printed acta)"
ALIAS = "testigo-ocr"


def volunteer(db) -> int:
    """The machine's volunteer id (made on first use)."""
    row = db.execute("SELECT id FROM volunteers WHERE name_key = ?", (NAME_KEY,)).fetchone()
    if row is not None:
        return row[0]
    return db.execute("INSERT INTO volunteers (name, name_key, alias, created_at) VALUES (?, ?, ?, "
                      "strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'))", (NAME, NAME_KEY, ALIAS)).lastrowid


def is_machine(db, volunteer_id: int) -> bool:
    row = db.execute("SELECT name_key FROM volunteers WHERE id = ?", (volunteer_id,)).fetchone()
    return row is not None and row[0] == NAME_KEY


def reading(db, sha: str, election):
    """The Acta the machine reading of a photo says, or None (no complete reading, or one the
    election's rules refuse: then people type it as if there were none)."""
    found = machine_reading_for(db, sha)
    if not found:
        return None
    try:
        return parse_entry(machine_fields(found), election)
    except (TranscriptionError, KeyError, TypeError):
        return None


def due(db, sha: str) -> bool:
    """Whether the machine has not entered this photo yet."""
    return db.execute("SELECT 1 FROM transcription_entries e JOIN volunteers v ON v.id = e.volunteer_id "
                      "WHERE e.image_sha256 = ? AND v.name_key = ?", (sha, NAME_KEY)).fetchone() is None


def pending_photos(db, shas) -> list[str]:
    """Of these undecided queue photos, those with a stored printed reading the machine has not entered."""
    read = {r[0] for r in db.execute("SELECT sha256 FROM printed_readings WHERE status = 'ok'")}
    return [s for s in shas if s in read and due(db, s)]
