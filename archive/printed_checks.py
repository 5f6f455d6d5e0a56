"""What the printed acta is for, beyond reading it: checks against other sources and the paper.

- ``crosscheck``: the printed reading of a photo against the QR of the same photo and the sheet
  row of the same mesa, like any two sources: each disagreement names its field.
- ``machine_reading``: for a photo whose QR cannot be read, a complete printed reading (all 38
  lines and the summary read and adding up) is offered to volunteers to confirm or correct; it
  never makes an acta alone (archive/transcription.py decides, on volunteers' entries).
- the audit's checks that only the paper allows (machine vs notebook voters, válidos vs the sum
  of the lines, one UUID on two actas, an acta printed before the polls closed), as functions
  over readings that archive/audit.py (or anyone) can call. Each returns findings, never raises.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from .election import Election
from .printed import Printed, layout


@dataclass(frozen=True)
class Finding:
    """One disagreement: which field, what the paper says, what the other source says."""

    field: str
    printed: object
    other: object
    source: str          # qr / sheet / registry / paper / printed (another photo)

    @property
    def code(self) -> str:
        """Stable issue code: printed_<field> (printed_line_14, printed_validos, ...)."""
        return f"printed_{self.field}"

    def reason(self) -> str:
        return (f"the printed acta says {self.field} = {self.printed}, the {self.source} says {self.other}")


def mesa_of(p: Printed) -> tuple[int, int] | None:
    """(centro, mesa) from the printed acta code, when read."""
    code = p.header.get("acta_code")
    return (int(code[:9]), int(code[10:12])) if code else None


def crosscheck(p: Printed, qr: dict | None = None, sheet: dict | None = None,
               election: Election | None = None) -> list[Finding]:
    """Fields where the paper and another source disagree (fields not read are not compared).

    ``qr``/``sheet``: rows of the workdir's actas table (centro, mesa, counts, votes, validos,
    nulos as stored: JSON text or values). ``election``: for the registry's electors."""
    out: list[Finding] = []
    where = mesa_of(p)
    summary = p.summary_values()
    if qr is not None:
        if where and where != (qr["centro"], qr["mesa"]):
            out.append(Finding("acta_code", f"{where[0]}.{where[1]:02d}", f"{qr['centro']}.{qr['mesa']:02d}", "qr"))
        counts = _json(qr.get("counts"))
        for i, (v, c) in enumerate(zip(p.line_values(), counts or ()), 1):
            if v is not None and v != c:
                out.append(Finding(f"line_{i}", v, c, "qr"))
        out += _totals(p, summary, qr, "qr")
    if sheet is not None:
        out += _totals(p, summary, sheet, "sheet")
        votes = _json(sheet.get("votes")) or {}
        for cand, printed_votes in candidate_votes(p).items():
            if printed_votes is not None and cand in votes and votes[cand] != printed_votes:
                out.append(Finding(f"votes_{cand}", printed_votes, votes[cand], "sheet"))
    if election is not None and where and p.header.get("electors") is not None:
        m = election.mesa(*where)
        if m is not None and m.electores != p.header["electors"]:
            out.append(Finding("electors", p.header["electors"], m.electores, "registry"))
    return out


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _totals(p: Printed, summary: dict, other: dict, source: str) -> list[Finding]:
    out = []
    for key in ("validos", "nulos"):
        if summary.get(key) is not None and other.get(key) is not None and summary[key] != other[key]:
            out.append(Finding(key, summary[key], other[key], source))
    return out


def candidate_votes(p: Printed, election_id: str = "ve-2024") -> dict[str, int | None]:
    """Each candidate's votes, summed over their party lines; None when any of them is unread.

    The acta prints no per-candidate total: this is the sum a volunteer would otherwise do in
    their head."""
    from .election import load
    cards = load(election_id).cards
    out: dict[str, int | None] = {}
    for card, v in zip(cards, p.line_values()):
        prev = out.get(card.candidate, 0)
        out[card.candidate] = None if prev is None or v is None else prev + v
    return out


def machine_reading(p: Printed, election_id: str = "ve-2024") -> dict | None:
    """What volunteers are shown to confirm, for a photo whose QR cannot be read: the printed
    acta's code, 38 lines, per-candidate sums and summary, when the reading is complete (every
    line and summary figure read, válidos = the sum of the lines). None otherwise: a partial
    reading is typed by people as if there were none. Never an acta by itself."""
    if not p.complete or mesa_of(p) is None:
        return None
    centro, mesa = mesa_of(p)
    return {"acta_code": p.header["acta_code"], "centro": centro, "mesa": mesa,
            "lines": p.line_values(), "votes": candidate_votes(p, election_id),
            "summary": p.summary_values(), "engine": p.engine}


# --- the audit's checks that only the paper allows ------------------------------------------------

def voters_differ(p: Printed) -> Finding | None:
    """The voting machine and the voters' notebook counted different numbers of voters."""
    a, b = p.voters.get("machine"), p.voters.get("notebook")
    if a and b and a.value is not None and b.value is not None and a.value != b.value:
        return Finding("voters_notebook", b.value, a.value, "paper")
    return None


def validos_differ(p: Printed) -> Finding | None:
    """The summary's válidos is not the sum of the party lines (all lines read)."""
    values = p.line_values()
    validos = p.summary_values().get("validos")
    if values and all(v is not None for v in values) and validos is not None and sum(values) != validos:
        return Finding("validos", validos, sum(values), "paper")
    return None


def printed_before_close(p: Printed, election_date: str = "2024-07-28", election_id: str = "ve-2024") -> Finding | None:
    """The acta was printed on election day before the polls' official closing time."""
    at = p.header.get("printed_at")
    close = layout(election_id).get("polls_close")
    if not at or not close:
        return None
    closing = datetime.fromisoformat(f"{election_date}T{close}")
    printed = datetime.fromisoformat(at)
    if printed < closing:
        return Finding("printed_at", at, closing.isoformat(), "paper")
    return None


def uuid_reused(readings) -> dict[str, list[tuple]]:
    """UUIDs printed on two different actas: {uuid: [(photo sha256, acta code), ...]}.

    ``readings``: (sha256, Printed) pairs. Two photos of the same acta share a UUID rightly;
    one UUID on two different acta codes is what an auditor wants to see."""
    seen: dict[str, dict[str, str]] = {}
    for sha, p in readings:
        u, code = p.header.get("uuid"), p.header.get("acta_code")
        if u and code:
            seen.setdefault(u, {}).setdefault(code, sha)
    return {u: sorted((sha, code) for code, sha in codes.items()) for u, codes in sorted(seen.items())
            if len(codes) > 1}


def paper_findings(p: Printed, election_date: str = "2024-07-28") -> list[Finding]:
    """Every check of one acta that only its paper allows."""
    return [f for f in (voters_differ(p), validos_differ(p), printed_before_close(p, election_date)) if f]
