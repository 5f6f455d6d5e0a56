"""The transcription form: what the printed acta shows, in its order, and how an entry is read.

The acta prints its code (``040202001.01.1.0001``: centre, mesa, then a tag and serial that are
the same on every acta), then one line per party under each candidate (sigla, party code, votes
in digits and in words) and **no per-candidate total**, then a summary (votos, válidos,
parciales, nulos, vacíos; then "opciones" válidas, nulas and vacías, which on a one-choice
ballot repeat válidos, nulos and vacíos and are not asked). The volunteer types exactly that:
centre code and mesa, the 38 party lines, the five "votos" figures. Each candidate's votes are
computed from their lines with the election's card table (``Election.votes_by_candidate``, the
same fold a QR's counts go through), never typed.

Entries agree only when every typed field is equal (``value_of``): the mesa, the 38 lines and
the summary. Entries saved before this form (candidate totals only: no ``typed`` column value)
still load (``entry_acta``); such an entry never equals a new one, so a photo with one old
entry needs two new entries that agree (or the coordinator's desk) to be decided.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Mapping

from . import acta as acta_mod
from .errors import PayloadError, TranscriptionError, ValidationError
from .printed import layout

SOURCE_KIND = "transcribed-photo"
ILLEGIBLE = "illegible"
#: the summary figures asked, in the order the acta prints them: (field, es label, en label)
SUMMARY = (("votos", "Votos", "Votes"), ("validos", "Votos válidos", "Valid votes"),
           ("parciales", "Votos parciales", "Partial votes"), ("nulos", "Votos nulos", "Null votes"),
           ("vacios", "Votos vacíos", "Blank votes"))
EXTRA = ("votos", "parciales", "vacios")    # summary figures kept in Acta.extra (válidos, nulos are columns)


@dataclass(frozen=True)
class Line:
    """One party line of the printed acta: the box ``l_<position>`` of the form."""

    position: int
    sigla: str
    code: int            # the party's code printed beside the sigla
    candidate: str

    @property
    def name(self) -> str:
        return f"l_{self.position}"


def lines(election) -> list[Line]:
    """The 38 party lines in printed order (the QR's order), with sigla, party code and candidate."""
    printed = layout(election.id)["lines"]
    return [Line(p["position"], p["sigla"], p["code"], card.candidate) for p, card in zip(printed, election.cards)]


def groups(election) -> list[tuple[object, list[Line]]]:
    """(candidate, their lines) in the acta's order: what the page shows under each name."""
    by: dict[str, list[Line]] = {}
    for line in lines(election):          # the paper's order, not the candidates' ballot order
        by.setdefault(line.candidate, []).append(line)
    names = {c.code: c for c in election.candidates}
    return [(names[code], group) for code, group in by.items()]


def form_fields(election) -> list[tuple[str, str, str, int]]:
    """Every box of the form in the order the printed acta shows them: (name, es, en, max digits)."""
    spec = election.payload
    count = len(str(spec["max_count"]))
    names = {c.code: c.name for c in election.candidates}
    return ([("centro", "el código del centro", "the centre code", spec["centro_digits"][1]),
             ("mesa", "el número de mesa", "the mesa number", spec["mesa_digits"][1])]
            + [(ln.name, f"la línea {ln.sigla} ({ln.code}) de {names[ln.candidate]}",
                f"{names[ln.candidate]}'s line {ln.sigla} ({ln.code})", count) for ln in lines(election)]
            + [(k, f"«{es}» del resumen", f"the summary's '{es}'", count) for k, es, _ in SUMMARY])


def desk_fields(election) -> list[tuple[str, str, str, int]]:
    """The coordinator's rows: the form's boxes, then each candidate's computed total (``v_<code>``,
    also what entries made before the paper form typed)."""
    return form_fields(election) + [(f"v_{c.code}", f"total de {c.name} (calculado)", f"{c.name}'s total (computed)",
                                     0) for c in election.candidates]


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


def _split_code(fields: Mapping[str, str]) -> Mapping[str, str]:
    """The whole printed code typed in the centre box (``040202001.01.1.0001``): centre and mesa."""
    code = str(fields.get("centro") or "").strip()
    if "." not in code:
        return fields
    centro, mesa = (code.split(".") + [""])[:2]
    typed = str(fields.get("mesa") or "").strip()
    if typed and mesa and typed.lstrip("0") != mesa.lstrip("0"):
        raise TranscriptionError("code_mismatch", f"the code {code[:25]} says mesa {mesa}, the mesa box says {typed}",
                                 f"El código {code[:25]} dice mesa {mesa}, pero la casilla de mesa dice {typed}: "
                                 "revise ambas.", "mesa")
    return {**fields, "centro": centro, "mesa": typed or mesa}


def parse_entry(fields: Mapping[str, str], election) -> acta_mod.Acta:
    """A volunteer's form as an Acta of source ``transcribed-photo``: ``counts`` the 38 lines,
    ``votes`` computed from them, válidos and nulos, votos/parciales/vacíos in ``extra``; checked
    by ``acta.validate`` (a mesa outside the registry passes, flagged when it becomes an acta).

    Raises TranscriptionError naming the box to look at, in Spanish and English.
    """
    fields = _split_code(fields)
    n = {name: _number(fields, name, es, en, digits) for name, es, en, digits in form_fields(election)}
    lo, hi = election.payload["centro_digits"]   # the QR grammar's rule (acta.check_centre)
    try:
        acta_mod.check_centre(str(n["centro"]), election)
    except PayloadError:
        raise TranscriptionError("bad_centre", f"the centre code {n['centro']} should have {lo} to {hi} digits "
                                 "and begin with its estado's code; copy it from the acta",
                                 f"El código del centro {n['centro']} debe tener de {lo} a {hi} cifras y empezar "
                                 "por el código de su estado: cópielo del acta.", "centro") from None
    if n["mesa"] < 1:
        raise TranscriptionError("bad_mesa", "the mesa number is 1 or more; copy it from the acta",
                                 "El número de mesa es 1 o más: cópielo del acta.", "mesa")
    counts = tuple(n[ln.name] for ln in lines(election))
    a = acta_mod.Acta(n["centro"], n["mesa"], SOURCE_KIND, election.votes_by_candidate(counts), counts,
                      n["validos"], n["nulos"], extra={k: n[k] for k in EXTRA})
    try:
        acta_mod.validate(a, election)
    except ValidationError as e:
        raise explain(e, a, election) from None
    cast = a.validos + a.nulos + n["vacios"]
    if n["parciales"] == 0 and n["votos"] != cast:   # what partial votes add is not known: not checked then
        raise TranscriptionError("votos_mismatch", f"válidos + nulos + vacíos = {cast} but votos is {n['votos']}",
                                 f"Válidos + nulos + vacíos suman {cast}, pero «Votos» dice {n['votos']}: revise "
                                 "esas cuatro casillas del resumen.", "votos")
    return a


def explain(e: ValidationError, a: acta_mod.Acta, election) -> TranscriptionError:
    """acta.validate's refusal, said so that the volunteer knows which box to look at."""
    if e.code == "sum_mismatch":
        total = sum(a.votes.values())
        return TranscriptionError(e.code, f"the party lines add up to {total} but válidos says {a.validos}: "
                                  "compare each line with the photo", f"Las líneas de los partidos suman {total}, "
                                  f"pero «Votos válidos» dice {a.validos}: compare cada línea con la foto.", "validos")
    if e.code == "over_electors":
        m = election.mesa(a.centro, a.mesa)
        return TranscriptionError(e.code, str(e), f"Válidos + nulos = {a.validos + (a.nulos or 0)}, más que los "
                                  f"{m.electores if m else '?'} electores inscritos de la mesa {a.mesa_key}: "
                                  "revise válidos, nulos y la mesa.", "validos")
    return TranscriptionError(e.code, str(e), f"La entrada no cumple una regla de la elección ({e.code}): {e}",
                              "centro")


def value_of(a: acta_mod.Acta | None) -> str:
    """The canonical text entries are compared by: every field typed (mesa, lines, summary), or ILLEGIBLE."""
    if a is None:
        return ILLEGIBLE
    summary = {k: a.extra[k] for k in EXTRA if k in a.extra}
    if not summary:
        return f"{a.mesa_key} {a.numbers()}"
    # one JSON after the mesa, as archive.recheck reads it back: the numbers, and the summary beside
    return f"{a.mesa_key} {json.dumps({**json.loads(a.numbers()), 'summary': summary}, sort_keys=True)}"


def typed_of(a: acta_mod.Acta | None) -> str | None:
    """What the entry keeps beyond the candidate totals (column ``typed``): the lines and summary."""
    if a is None or a.counts is None:
        return None
    return json.dumps({"lines": list(a.counts), "summary": {k: a.extra.get(k) for k in EXTRA}}, sort_keys=True)


def entry_acta(row) -> acta_mod.Acta:
    """The Acta a stored entry says (centro, mesa, votes, validos, nulos, typed). An entry saved
    before the paper form has no ``typed``: its candidate totals, without lines."""
    typed = json.loads(row["typed"]) if "typed" in row.keys() and row["typed"] else None
    counts = tuple(typed["lines"]) if typed else None
    extra = {k: v for k, v in (typed or {}).get("summary", {}).items() if v is not None}
    return acta_mod.Acta(row["centro"], row["mesa"], SOURCE_KIND, json.loads(row["votes"]), counts,
                         row["validos"], row["nulos"], extra=extra)


def entry_values(row) -> dict:
    """An entry's boxes by form name (for the desk): lines and summary when typed, and candidate totals."""
    a = entry_acta(row)
    values = {"centro": a.centro, "mesa": a.mesa, "validos": a.validos, "nulos": a.nulos, **a.extra,
              **{f"v_{c}": v for c, v in a.votes.items()}}
    values.update({f"l_{i}": v for i, v in enumerate(a.counts or (), 1)})
    return values


def machine_fields(reading: Mapping) -> dict[str, str]:
    """A machine reading (``printed_checks.machine_reading``) as the form a volunteer fills."""
    out = {"centro": str(reading["centro"]), "mesa": str(reading["mesa"])}
    out.update({f"l_{i}": str(v) for i, v in enumerate(reading["lines"], 1)})
    out.update({k: str(reading["summary"].get(k)) for k, _, _ in SUMMARY if reading["summary"].get(k) is not None})
    return out


def ensure_schema(db) -> None:
    """Workdirs made before the paper form lack ``transcription_entries.typed``: add it (NULL = old shape)."""
    if "typed" not in {r[1] for r in db.execute("PRAGMA table_info(transcription_entries)")}:
        try:
            db.execute("ALTER TABLE transcription_entries ADD COLUMN typed TEXT")
        except sqlite3.OperationalError as e:    # another server added it a moment ago
            if "duplicate column" not in str(e):
                raise
