"""The election definition: geography, mesas, candidates, ballot cards and payload grammar.

Loaded from ``datasets/<id>/`` so that a new election is new data, not new code.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
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

    @property
    def payload(self) -> dict:
        return self.meta["payload"]

    @property
    def registry_path(self) -> Path:
        return self.folder / self.meta["registry"]["file"]

    def mesa(self, centro: int, mesa: int) -> Mesa | None:
        return self.mesas.get((centro, mesa))

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
    election = Election(election_id, folder, meta, candidates, cards, {})
    _load_registry(election)
    return election


def _load_registry(election: Election) -> None:
    with open_text(election.registry_path) as f:
        for row in csv.DictReader(f):
            edo, mun, par = int(row["COD_EDO"]), int(row["COD_MUN"]), int(row["COD_PAR"])
            m = Mesa(int(row["CENTRO"]), int(row["MESA"]), int(row["RE"]), edo, mun, par)
            election.mesas[(m.centro, m.mesa)] = m
            election.estados[edo] = row["EDO"].strip()
            election.municipios[(edo, mun)] = row["MUN"].strip()
            election.parroquias[(edo, mun, par)] = row["PAR"].strip()
