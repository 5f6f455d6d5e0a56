"""Actas: parse a QR payload or a transcribed row under the election's grammar, then validate.

A wrong text is worse than none, so parsing is strict and every failure has a stable code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .election import Election
from .errors import PayloadError, ValidationError


@dataclass(frozen=True)
class Acta:
    """One mesa's numbers from one source (a QR reading, a sheet row, a photo volunteers transcribed)."""

    centro: int
    mesa: int
    source_kind: str                      # "qr", "csv" or "transcribed-photo"
    votes: dict[str, int]                 # per candidate code
    counts: tuple[int, ...] | None = None  # per ballot card, QR only
    validos: int = 0
    nulos: int | None = None              # the QR's first trailing field (SOURCES.md); None if unknown
    payload: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def mesa_key(self) -> str:
        return f"{self.centro}.{self.mesa:02d}"

    def numbers(self) -> str:
        """Canonical text of the numbers, used to tell duplicates from conflicts."""
        return json.dumps({"counts": self.counts, "votes": self.votes, "validos": self.validos,
                           "nulos": self.nulos}, sort_keys=True)


def differences(a_votes: dict, a_validos: int, b_votes: dict, b_validos: int,
                sources: tuple[str, str] = ("qr", "csv"), a_nulos: int | None = None,
                b_nulos: int | None = None) -> dict:
    """Field-by-field differences between two readings of one mesa from different sources.

    ``{field: {source_a: x, source_b: y}}`` for each candidate (and válidos) that differs;
    empty when they agree. The one definition of "agree" for every cross-check (QR, sheet row,
    transcribed photo), in ingest and in the bundle. Nulos are compared where both readings
    state them.
    """
    sa, sb = sources
    diff = {k: {sa: a_votes.get(k), sb: b_votes.get(k)}
            for k in sorted(set(a_votes) | set(b_votes)) if a_votes.get(k) != b_votes.get(k)}
    if a_validos != b_validos:
        diff["validos"] = {sa: a_validos, sb: b_validos}
    if a_nulos is not None and b_nulos is not None and a_nulos != b_nulos:
        diff["nulos"] = {sa: a_nulos, sb: b_nulos}
    return diff


def _int_field(text: str, what: str, code: str) -> int:
    """A sheet cell: a whole number, surrounding spaces allowed (spreadsheets add them)."""
    t = text.strip()
    if t.startswith("-") and t[1:].isdigit():
        raise PayloadError("negative_count", f"{what} is negative ({t}); counts must be 0 or more")
    if not t.isascii() or not t.isdigit():
        raise PayloadError(code, f"{what} is not a whole number: {t[:20]!r}")
    return int(t)


def _qr_count(text: str, what: str) -> int:
    """A QR count: plain ASCII digits, no spaces, no sign, no leading zero (the voting machine
    prints none of those; a text that has them was misread, and a wrong text is worse than none)."""
    if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
        raise PayloadError("negative_count", f"{what} is negative ({text}); counts must be 0 or more")
    if not (text.isascii() and text.isdigit()):
        raise PayloadError("non_numeric_count", f"{what} is not a plain whole number: {text[:20]!r}")
    if len(text) > 1 and text[0] == "0":
        raise PayloadError("non_numeric_count", f"{what} has a leading zero ({text[:20]!r}); "
                           "the voting machine never prints one")
    return int(text)


def check_centre(centro_s: str, election: Election) -> int:
    """A centre code that can exist: 7 to 9 ASCII digits naming an estado of the election.
    Returns it as a number; raises PayloadError ``bad_header``."""
    lo, hi = election.payload["centro_digits"]
    if not (centro_s.isascii() and centro_s.isdigit() and lo <= len(centro_s) <= hi):
        raise PayloadError("bad_header", f"centre code {centro_s[:20]!r} should be {lo}-{hi} digits")
    centro = int(centro_s)
    fields = election.code_fields(centro)
    if fields is None or fields["estado"] not in election.valid_estados:
        raise PayloadError("bad_header", f"centre code {centro_s} names no estado of {election.id} "
                           f"(its first digits, {fields['estado'] if fields else '?'}, are not an estado code)")
    return centro


def parse_payload(text: str, election: Election) -> Acta:
    """Parse a QR text such as ``201301006.01.1.0001!140,7,...!0!0``.

    Raises PayloadError with a specific code; never guesses a field.
    """
    spec = election.payload
    if not isinstance(text, str) or not text:
        raise PayloadError("empty", "the QR text is empty")
    if len(text) > 2000:
        raise PayloadError("not_acta", f"the QR text is {len(text)} characters, far longer than an acta's")
    parts = text.strip().split("!")
    if len(parts) != 2 + spec["trailers"]:
        raise PayloadError("not_acta", "not an acta QR of this election: expected "
                           f"HEADER!COUNTS!T1!T2, got {len(parts)} '!'-separated parts in {text[:40]!r}")
    header = parts[0].split(".")
    if len(header) != 4:
        raise PayloadError("bad_header", f"header {parts[0][:40]!r} should be CENTRO.MESA.TAG.SERIAL")
    centro_s, mesa_s, tag, serial = header
    centro = check_centre(centro_s, election)
    lo, hi = spec["mesa_digits"]
    if not (mesa_s.isascii() and mesa_s.isdigit() and lo <= len(mesa_s) <= hi) or int(mesa_s) < 1:
        raise PayloadError("bad_header", f"mesa number {mesa_s[:20]!r} should be {lo}-{hi} digits, 1 or more")
    if not (tag.isascii() and tag.isdigit() and serial.isascii() and serial.isdigit()):
        raise PayloadError("bad_header", f"header {parts[0][:40]!r} has non-numeric fields")
    raw_counts = parts[1].split(",")
    if len(raw_counts) != spec["counts"]:
        raise PayloadError("wrong_count_number", f"the acta has {len(raw_counts)} counts; this election's "
                           f"ballot has {spec['counts']} cards")
    counts = tuple(_qr_count(c, f"count {i}") for i, c in enumerate(raw_counts, 1))
    trailers = tuple(_qr_count(t, f"trailing field {i}") for i, t in enumerate(parts[2:], 1))
    for i, c in enumerate(counts, 1):
        if c > spec["max_count"]:
            raise PayloadError("count_too_large", f"count {i} is {c}, more than any mesa has electors")
    if trailers and trailers[0] > spec["max_count"]:
        raise PayloadError("count_too_large", f"trailing field 1 is {trailers[0]}, more than any mesa has electors")
    votes = election.votes_by_candidate(counts)
    nulos = trailers[spec["nulos_trailer"] - 1] if spec.get("nulos_trailer") else None
    return Acta(centro, int(mesa_s), "qr", votes, counts, sum(counts), nulos, text.strip(),
                {"tag": tag, "serial": serial, "trailers": list(trailers)})


def parse_csv_row(row: dict, election: Election) -> Acta:
    """Parse one row of a transcribed per-mesa sheet (RESULTADOS_2024_CSV_V1.csv columns)."""
    try:
        centro = check_centre((row.get("CENTRO") or "").strip(), election)
        mesa = _int_field(row.get("MESA") or "", "MESA", "bad_header")
        if mesa < 1:
            raise PayloadError("bad_header", f"MESA is {mesa}; mesas are numbered from 1")
        votes = {c.code: _int_field(row.get(c.csv_column) or "", c.csv_column, "non_numeric_count")
                 for c in election.candidates}
        validos = _int_field(row.get("VOTOS_VALIDOS") or "", "VOTOS_VALIDOS", "non_numeric_count")
        nulos = _int_field(row.get("VOTOS_NULOS") or "", "VOTOS_NULOS", "non_numeric_count")
    except AttributeError:
        raise PayloadError("bad_row", "the row has fewer columns than the header")
    extra = {"url": row["URL"]} if row.get("URL") else {}
    return Acta(centro, mesa, "csv", votes, None, validos, nulos, None, extra)


OUTSIDE_REGISTRY = "outside_registry"
ELECTORS_UNKNOWN = "electors_unknown"


def validate(acta: Acta, election: Election, electores: int | None = None) -> tuple[str, ...]:
    """Check an acta against the election: sums, electors. Raises ValidationError.

    Returns its flags: ``outside_registry`` for an acta whose mesa the registry does not know
    (kept, counted apart from the registry totals: a sheet row, a QR or a transcription alike),
    ``electors_unknown`` when neither the registry nor the sheet row (``electores``, its RE) says
    how many electors the mesa has, so the electors check cannot be made.
    """
    mesa = election.mesa(acta.centro, acta.mesa)
    total = sum(acta.votes.values())
    if total != acta.validos:
        raise ValidationError("sum_mismatch", f"mesa {acta.mesa_key}: the candidates' votes add up to "
                              f"{total} but válidos is {acta.validos}")
    flags = [] if mesa is not None else [OUTSIDE_REGISTRY]
    known = mesa.electores if mesa is not None and mesa.electores is not None else electores
    if known is None:
        return (*flags, ELECTORS_UNKNOWN)
    cast = acta.validos + (acta.nulos or 0)
    if cast > known:
        raise ValidationError("over_electors", f"mesa {acta.mesa_key}: {cast} votes cast "
                              f"(válidos + nulos) but only {known} registered electors")
    return tuple(flags)


def fill_qr_nulos(db, election: Election) -> int:
    """Workdirs made before the QR's nulos were read: give their QR actas the nulos their own
    stored text states (and the canonical numbers that include them). Runs once per workdir
    (meta ``qr_nulos``), inside one transaction; returns how many actas were filled."""
    if not election.payload.get("nulos_trailer") or db.execute(
            "SELECT 1 FROM meta WHERE key = 'qr_nulos'").fetchone():
        return 0
    n = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        rows = db.execute("SELECT id, payload FROM actas WHERE source_kind = 'qr' AND nulos IS NULL "
                          "AND payload IS NOT NULL").fetchall()
        for acta_id, payload in rows:
            try:
                a = parse_payload(payload, election)
            except PayloadError:
                continue          # kept as it was: its text no longer parses (reported by build)
            db.execute("UPDATE actas SET nulos = ?, numbers = ? WHERE id = ?", (a.nulos, a.numbers(), acta_id))
            n += 1
        db.execute("INSERT OR REPLACE INTO meta VALUES ('qr_nulos', '1')")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return n
