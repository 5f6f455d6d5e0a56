"""Each acta's numbers re-derived from what they were read from, before a build signs them.

``state.db`` is a file on a volunteer's disk: a row edited by hand (EG +1,000, the QR text
untouched) or damaged would otherwise be published, signed and pass ``verify``. So a build takes
no stored number on trust: a QR reading is parsed again from its stored QR text, a sheet row is
read again from the stored sheet (``objects/``, checked against its sha256), a volunteers'
transcription is taken again from the value two volunteers agreed on; every number the bundle
publishes (centre, mesa, votes, cards, válidos, nulos) must be what that gives, else the build
stops and names the acta. An acta of another team without a QR text (a team's sheet row or
transcription, checked at relay time from its signed bundle) must at least agree with its own
canonical numbers.
"""
from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from pathlib import Path

from . import acta as acta_mod
from . import election as election_mod
from .errors import PayloadError, WorkdirInconsistent

_FIX = ("the workdir's state.db was edited or is damaged, and the build stops so that nothing "
        "unchecked is signed; restore state.db from a backup, or ingest the sources again into a fresh workdir")


class Sources:
    """Where each acta of a workdir came from, to read its numbers again (one per build snapshot)."""

    def __init__(self, db: sqlite3.Connection, objects: Path, election):
        self.db, self.objects, self.election = db, objects, election
        self.sheet_row = {r[0]: (r[1], r[2]) for r in db.execute(
            "SELECT acta_id, sha256, locator FROM inputs WHERE kind = 'sheet-row' AND acta_id IS NOT NULL")}
        self.agreed = {r[0]: r[1] for r in db.execute(
            "SELECT acta_id, value FROM transcription_decisions WHERE acta_id IS NOT NULL")}
        self._sheets: dict[str, dict[int, acta_mod.Acta | PayloadError]] = {}

    def check(self, a) -> None:
        """Raise WorkdirInconsistent naming the acta when its stored numbers are not what its
        source gives (``a``: a row of the workdir's actas table)."""
        what = f"acta {a['id']} (mesa {a['centro']}.{a['mesa']:02d}, {a['source_kind']})"
        if a["payload"]:
            try:
                derived = acta_mod.parse_payload(a["payload"], self.election)
            except PayloadError as e:
                raise WorkdirInconsistent(f"{what}: its stored QR text does not parse ({e}); {_FIX}") from None
            self._compare(what, a, _fields(derived), "its QR text")
        elif a["id"] in self.sheet_row:
            sha, locator = self.sheet_row[a["id"]]
            self._compare(what, a, _fields(self._sheet_acta(what, sha, locator)), f"its sheet row ({locator})")
        elif a["id"] in self.agreed:
            mesa_key, _, numbers = (self.agreed[a["id"]] or "").partition(" ")
            if mesa_key != f"{a['centro']}.{a['mesa']:02d}":
                raise WorkdirInconsistent(f"{what}: the volunteers agreed on mesa {mesa_key}; {_FIX}")
            self._compare(what, a, _numbers_fields(what, a["centro"], a["mesa"], numbers),
                          "the entry two volunteers agreed on")
        else:
            self._compare(what, a, _numbers_fields(what, a["centro"], a["mesa"], a["numbers"]),
                          "its canonical numbers")

    def _compare(self, what: str, a, want: dict, source: str) -> None:
        have = {"centro": a["centro"], "mesa": a["mesa"], "votes": _json(what, a["votes"]),
                "counts": _json(what, a["counts"]) if a["counts"] else None, "validos": a["validos"],
                "nulos": a["nulos"], "numbers": _json(what, a["numbers"])}
        for key, value in want.items():
            if have[key] == value:
                continue
            if isinstance(value, dict) and isinstance(have[key], dict):   # name the first field that differs
                k = next(k for k in sorted(set(value) | set(have[key])) if value.get(k) != have[key].get(k))
                key, value, stored = f"{key} {k}", value.get(k), have[key].get(k)
            else:
                stored = have[key]
            raise WorkdirInconsistent(f"{what}: its stored {key} is {_short(stored)}, but {source} gives "
                                      f"{_short(value)}; {_FIX}")

    def _sheet_acta(self, what: str, sha: str, locator: str) -> acta_mod.Acta:
        if sha not in self._sheets:
            self._sheets[sha] = self._read_sheet(what, sha)
        number = int(locator.rsplit("#row=", 1)[1]) if "#row=" in locator else -1
        got = self._sheets[sha].get(number)
        if got is None:
            raise WorkdirInconsistent(f"{what}: its sheet has no row {number} ({locator}); {_FIX}")
        if isinstance(got, PayloadError):
            raise WorkdirInconsistent(f"{what}: its sheet row ({locator}) does not parse ({got}); {_FIX}")
        return got

    def _read_sheet(self, what: str, sha: str) -> dict:
        """The rows of a stored sheet that made actas, parsed again (the sheet checked by its hash)."""
        wanted = {int(loc.rsplit("#row=", 1)[1]) for s, loc in self.sheet_row.values()
                  if s == sha and "#row=" in loc}
        path = self.objects / sha[:2] / sha
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
        except OSError as e:
            raise WorkdirInconsistent(f"{what}: its sheet {sha} cannot be read ({e}); {_FIX}") from None
        if digest.hexdigest() != sha:
            raise WorkdirInconsistent(f"{what}: the stored sheet {sha} is damaged (its bytes hash to "
                                      f"{digest.hexdigest()}); {_FIX}")
        out: dict = {}
        with election_mod.open_text(path) as f:
            for number, row in enumerate(csv.DictReader(f), 1):
                if number in wanted:
                    try:
                        out[number] = acta_mod.parse_csv_row(row, self.election)
                    except PayloadError as e:
                        out[number] = e
        return out


def _fields(a: acta_mod.Acta) -> dict:
    return {"centro": a.centro, "mesa": a.mesa, "votes": a.votes,
            "counts": list(a.counts) if a.counts is not None else None, "validos": a.validos,
            "nulos": a.nulos, "numbers": json.loads(a.numbers())}


def _numbers_fields(what: str, centro: int, mesa: int, numbers: str | None) -> dict:
    n = _json(what, numbers)
    if not isinstance(n, dict):
        raise WorkdirInconsistent(f"{what}: its numbers are not readable; {_FIX}")
    return {"centro": centro, "mesa": mesa, "votes": n.get("votes"), "counts": n.get("counts"),
            "validos": n.get("validos"), "nulos": n.get("nulos")}


def _json(what: str, text):
    try:
        return json.loads(text) if text is not None else None
    except (TypeError, ValueError):
        raise WorkdirInconsistent(f"{what}: a stored field is not valid JSON; {_FIX}") from None


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."
