"""The election definition: geography, mesas, candidates, ballot cards and payload grammar.

Loaded from ``datasets/<id>/`` so that a new election is new data, not new code.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import datasets

from .errors import DefinitionError

DEFAULT_ELECTION = "ve-2024"


@dataclass(frozen=True)
class Mesa:
    centro: int
    mesa: int
    electores: int
    cod_edo: int
    cod_mun: int
    cod_par: int


@dataclass(frozen=True)
class Place:
    """Where a centre is: codes as in the registry; None where they cannot be known."""

    cod_edo: int | None
    cod_mun: int | None
    cod_par: int | None


UNPLACED = Place(None, None, None)


@dataclass(frozen=True)
class Card:
    position: int
    candidate: str
    party: str | None
    owner_status: str


@dataclass(frozen=True)
class Candidate:
    code: str
    name: str
    csv_column: str
    cards: int


@dataclass
class Election:
    id: str
    folder: Path
    meta: dict
    candidates: list[Candidate]
    cards: list[Card]
    mesas: dict[tuple[int, int], Mesa]
    estados: dict[int, str] = field(default_factory=dict)
    municipios: dict[tuple[int, int], str] = field(default_factory=dict)
    parroquias: dict[tuple[int, int, int], str] = field(default_factory=dict)
    centros: dict[int, Place] = field(default_factory=dict)
    # (estado, municipio, the code's parroquia digits) -> the registry's parroquia code
    local_parroquias: dict[tuple[int, int, int], int] = field(default_factory=dict)

    @property
    def payload(self) -> dict:
        return self.meta["payload"]

    @property
    def registry_path(self) -> Path:
        return self.folder / self.meta["registry"]["file"]

    @property
    def bulletins(self) -> list[dict]:
        """The authority's announced results (``official_results.bulletins``), oldest first; [] if none."""
        return list((self.meta.get("official_results") or {}).get("bulletins") or [])

    @property
    def published_count(self) -> dict:
        """The authority's published count of mesas and electors ({"mesas", "electores", "source"},
        any may be missing), where the definition records one; {} otherwise (then coverage is
        stated against the registry's own rows)."""
        for where in (self.meta.get("published_count"), (self.meta.get("registry") or {}).get("published_count"),
                      (self.meta.get("authority") or {}).get("count")):
            if isinstance(where, dict) and where:
                return where
        return {}

    def mesa(self, centro: int, mesa: int) -> Mesa | None:
        return self.mesas.get((centro, mesa))

    def code_fields(self, centro: int) -> dict[str, int] | None:
        """The centre code split by the definition's ``centre_code`` rule (None: no rule or too long)."""
        rule = self.meta.get("centre_code")
        text = f"{centro:0{rule['width']}d}" if rule else ""
        if not rule or len(text) != rule["width"]:
            return None
        return {k: int(text[a:b]) for k, (a, b) in rule["fields"].items()}

    def place_from_code(self, centro: int) -> Place:
        """Place a centre from its code alone (estado/municipio/parroquia known to the registry)."""
        f = self.code_fields(centro)
        if f is None or f["estado"] not in self.estados:
            return UNPLACED
        edo, mun = f["estado"], f["municipio"]
        if (edo, mun) not in self.municipios:
            return Place(edo, None, None)
        if self.meta["centre_code"].get("parroquia_numbering") == "local":
            par = self.local_parroquias.get((edo, mun, f["parroquia"]))
        else:
            par = f["parroquia"] if (edo, mun, f["parroquia"]) in self.parroquias else None
        return Place(edo, mun, par)

    def place(self, centro: int) -> Place:
        """A registry centre's place, else what its code tells (see ``centre_code`` in election.json)."""
        return self.centros.get(centro) or self.place_from_code(centro)

    def votes_by_candidate(self, counts) -> dict[str, int]:
        """Fold per-card counts into per-candidate votes using the card table."""
        totals = {c.code: 0 for c in self.candidates}
        for card, n in zip(self.cards, counts):
            totals[card.candidate] += n
        return totals


def open_text(path: Path):
    """Open a CSV that may be gzip-compressed, dropping a UTF-8 BOM."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return io.StringIO(raw.decode("utf-8-sig"), newline="")


@lru_cache(maxsize=4)
def load(election_id: str = DEFAULT_ELECTION) -> Election:
    """Load (and cache) an election definition by id."""
    folder = datasets.path(election_id)
    meta_path = folder / "election.json"
    if not meta_path.exists():
        known = sorted(p.name for p in datasets.ROOT.iterdir() if (p / "election.json").exists())
        raise DefinitionError(f"No election definition {election_id!r}; known: {', '.join(known)}")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    candidates = [Candidate(c["code"], c["name"], c["csv_column"], c["cards"]) for c in meta["candidates"]]
    cards = [Card(c["position"], c["candidate"], c["party"], c["owner_status"]) for c in meta["cards"]]
    if len(cards) != meta["payload"]["counts"]:
        raise DefinitionError(f"{meta_path}: {len(cards)} cards but the payload has {meta['payload']['counts']} counts")
    codes = {c.code for c in candidates}
    for c in candidates:
        n = sum(1 for k in cards if k.candidate == c.code)
        if n != c.cards:
            raise DefinitionError(f"{meta_path}: candidate {c.code} should have {c.cards} cards, has {n}")
    if any(k.candidate not in codes for k in cards):
        raise DefinitionError(f"{meta_path}: a card names an unknown candidate")
    _check_bulletins(meta, meta_path, codes)
    election = Election(election_id, folder, meta, candidates, cards, {})
    _load_registry(election)
    return election


def _check_bulletins(meta: dict, meta_path: Path, codes: set[str]) -> None:
    """An announced figure is recorded as read, so its own sums must hold: a bulletin naming every
    candidate adds up to its valid votes, valid + null to votes cast (a typo shows up here)."""
    for b in (meta.get("official_results") or {}).get("bulletins") or []:
        votes, name = b.get("votes") or {}, b.get("id", "?")
        if set(votes) - codes:
            raise DefinitionError(f"{meta_path}: bulletin {name} names unknown candidates {sorted(set(votes) - codes)}")
        if not b.get("sources"):
            raise DefinitionError(f"{meta_path}: bulletin {name} has no sources; record where each figure comes from")
        if set(votes) == codes and b.get("validos") is not None and sum(votes.values()) != b["validos"]:
            raise DefinitionError(f"{meta_path}: bulletin {name}: the candidates add up to {sum(votes.values()):,}, "
                                  f"not its valid votes {b['validos']:,}")
        if None not in (b.get("validos"), b.get("nulos"), b.get("votantes")) and b["validos"] + b["nulos"] != b["votantes"]:
            raise DefinitionError(f"{meta_path}: bulletin {name}: valid + null votes are not its votes cast")


def _load_registry(election: Election) -> None:
    with open_text(election.registry_path) as f:
        for row in csv.DictReader(f):
            edo, mun, par = int(row["COD_EDO"]), int(row["COD_MUN"]), int(row["COD_PAR"])
            m = Mesa(int(row["CENTRO"]), int(row["MESA"]), int(row["RE"]), edo, mun, par)
            election.mesas[(m.centro, m.mesa)] = m
            election.centros[m.centro] = Place(edo, mun, par)
            election.estados[edo] = row["EDO"].strip()
            election.municipios[(edo, mun)] = row["MUN"].strip()
            election.parroquias[(edo, mun, par)] = row["PAR"].strip()
    _learn_local_parroquias(election)


def _learn_local_parroquias(election: Election) -> None:
    """Learn (estado, municipio, code digits) -> registry parroquia from the registry's centres.

    Only keys that agree with the registry on estado and municipio and map one-to-one are kept:
    an ambiguous key places no centre rather than a wrong one.
    """
    if (election.meta.get("centre_code") or {}).get("parroquia_numbering") != "local":
        return
    seen: dict[tuple[int, int, int], set[int]] = {}
    for centro, p in election.centros.items():
        f = election.code_fields(centro)
        if f and (f["estado"], f["municipio"]) == (p.cod_edo, p.cod_mun):
            seen.setdefault((p.cod_edo, p.cod_mun, f["parroquia"]), set()).add(p.cod_par)
    claims = Counter((key[0], key[1], par) for key, pars in seen.items() for par in pars)
    election.local_parroquias = {key: par for key, pars in seen.items() if len(pars) == 1
                                 for par in pars if claims[(key[0], key[1], par)] == 1}
