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
    nulos: int | None = None              # not in the QR payload as far as is established
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
                sources: tuple[str, str] = ("qr", "csv")) -> dict:
    """Field-by-field differences between two readings of one mesa from different sources.

    ``{field: {source_a: x, source_b: y}}`` for each candidate (and válidos) that differs;
    empty when they agree. The one definition of "agree" for every cross-check (QR, sheet row,
    transcribed photo), in ingest and in the bundle.
    """
    sa, sb = sources
    diff = {k: {sa: a_votes.get(k), sb: b_votes.get(k)}
            for k in sorted(set(a_votes) | set(b_votes)) if a_votes.get(k) != b_votes.get(k)}
    if a_validos != b_validos:
        diff["validos"] = {sa: a_validos, sb: b_validos}
    return diff


def _int_field(text: str, what: str, code: str) -> int:
    t = text.strip()
    if t.startswith("-") and t[1:].isdigit():
        raise PayloadError("negative_count", f"{what} is negative ({t}); counts must be 0 or more")
    if not t.isascii() or not t.isdigit():
        raise PayloadError(code, f"{what} is not a whole number: {t[:20]!r}")
    return int(t)


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
    lo, hi = spec["centro_digits"]
    if not (centro_s.isascii() and centro_s.isdigit() and lo <= len(centro_s) <= hi):
        raise PayloadError("bad_header", f"centre code {centro_s[:20]!r} should be {lo}-{hi} digits")
    lo, hi = spec["mesa_digits"]
    if not (mesa_s.isascii() and mesa_s.isdigit() and lo <= len(mesa_s) <= hi):
        raise PayloadError("bad_header", f"mesa number {mesa_s[:20]!r} should be {lo}-{hi} digits")
    if not (tag.isascii() and tag.isdigit() and serial.isascii() and serial.isdigit()):
        raise PayloadError("bad_header", f"header {parts[0][:40]!r} has non-numeric fields")
    raw_counts = parts[1].split(",")
    if len(raw_counts) != spec["counts"]:
        raise PayloadError("wrong_count_number", f"the acta has {len(raw_counts)} counts; this election's "
                           f"ballot has {spec['counts']} cards")
    counts = tuple(_int_field(c, f"count {i}", "non_numeric_count") for i, c in enumerate(raw_counts, 1))
    trailers = tuple(_int_field(t, f"trailing field {i}", "non_numeric_count")
                     for i, t in enumerate(parts[2:], 1))
    for i, c in enumerate(counts, 1):
        if c > spec["max_count"]:
            raise PayloadError("count_too_large", f"count {i} is {c}, more than any mesa has electors")
    votes = election.votes_by_candidate(counts)
    return Acta(int(centro_s), int(mesa_s), "qr", votes, counts, sum(counts), None, text.strip(),
                {"tag": tag, "serial": serial, "trailers": list(trailers)})


def parse_csv_row(row: dict, election: Election) -> Acta:
    """Parse one row of a transcribed per-mesa sheet (RESULTADOS_2024_CSV_V1.csv columns)."""
    try:
        centro = _int_field(row.get("CENTRO") or "", "CENTRO", "bad_header")
        mesa = _int_field(row.get("MESA") or "", "MESA", "bad_header")
        votes = {c.code: _int_field(row.get(c.csv_column) or "", c.csv_column, "non_numeric_count")
                 for c in election.candidates}
        validos = _int_field(row.get("VOTOS_VALIDOS") or "", "VOTOS_VALIDOS", "non_numeric_count")
        nulos = _int_field(row.get("VOTOS_NULOS") or "", "VOTOS_NULOS", "non_numeric_count")
    except AttributeError:
        raise PayloadError("bad_row", "the row has fewer columns than the header")
    extra = {"url": row["URL"]} if row.get("URL") else {}
    return Acta(centro, mesa, "csv", votes, None, validos, nulos, None, extra)


#: Sources that must name a registry mesa: a sheet row has no photo behind it, so a mesa the
#: registry does not know is more likely a typo than an acta.
REGISTRY_ONLY_SOURCES = ("csv",)
OUTSIDE_REGISTRY = "outside_registry"


def validate(acta: Acta, election: Election) -> tuple[str, ...]:
    """Check an acta against the election: sums, electors, registry. Raises ValidationError.

    Returns its flags: ``("outside_registry",)`` for an acta read from a photo whose mesa the
    registry does not know. It is kept (grammar and sums still hold; the electors check cannot
    be made) and counted apart from the registry totals; a sheet row of such a mesa is refused
    as ``unknown_mesa``.
    """
    mesa = election.mesa(acta.centro, acta.mesa)
    if mesa is None and acta.source_kind in REGISTRY_ONLY_SOURCES:
        raise ValidationError("unknown_mesa", f"mesa {acta.mesa_key} is not in the {election.id} "
                              "registry; check the centre code and mesa number")
    total = sum(acta.votes.values())
    if total != acta.validos:
        raise ValidationError("sum_mismatch", f"mesa {acta.mesa_key}: the candidates' votes add up to "
                              f"{total} but válidos is {acta.validos}")
    if mesa is None:
        return (OUTSIDE_REGISTRY,)
    cast = acta.validos + (acta.nulos or 0)
    if cast > mesa.electores:
        raise ValidationError("over_electors", f"mesa {acta.mesa_key}: {cast} votes cast "
                              f"(válidos + nulos) but only {mesa.electores} registered electors")
    return ()
