"""The election definition: geography, mesas, candidates, ballot cards and payload grammar.

Loaded from ``datasets/<id>/`` so that a new election is new data, not new code.
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import datasets

from . import textfile
from .errors import DefinitionError, SheetUnreadable

DEFAULT_ELECTION = "ve-2024"


@dataclass(frozen=True)
class Mesa:
    centro: int
    mesa: int
    electores: int | None            # None: the registry file has no RE for it
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
class AuthorityCount:
    """What the electoral authority says the election had, with where that figure comes from.
    Coverage is stated against it ("24,532 of 30,026 mesas"); None fields are not known."""

    mesas: int | None
    centros: int | None
    electores: int | None
    source: str

    def to_dict(self) -> dict:
        return {"mesas": self.mesas, "centros": self.centros, "electores": self.electores,
                "source": self.source}


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
    # centre -> {"nombre": ..., "direccion": ...} where a registry file names it
    centre_names: dict[int, dict[str, str]] = field(default_factory=dict)

    @property
    def payload(self) -> dict:
        return self.meta["payload"]

    @property
    def registry_paths(self) -> list[Path]:
        """The registry's files (which mesas exist, where, and their electors where known)."""
        reg = self.meta["registry"]
        return [self.folder / f for f in reg.get("files") or [reg["file"]]]

    @property
    def registry_path(self) -> Path:
        return self.registry_paths[0]

    @property
    def authority_count(self) -> AuthorityCount | None:
        """The authority's published count of mesas, centres and electors (None: not known)."""
        c = self.meta["registry"].get("authority_count")
        if not c:
            return None
        return AuthorityCount(c.get("mesas"), c.get("centros"), c.get("electores"), c["source"])

    @property
    def valid_estados(self) -> set[int]:
        """Estado codes a centre code may name: the definition's list, else the registry's estados."""
        listed = (self.meta.get("centre_code") or {}).get("estados")
        return set(listed) if listed else set(self.estados)

    @property
    def bulletins(self) -> list[dict]:
        """The authority's announced results (``official_results.bulletins``), oldest first; [] if none."""
        return list((self.meta.get("official_results") or {}).get("bulletins") or [])

    @property
    def published_count(self) -> dict:
        """:attr:`authority_count` as a dict ({"mesas", "centros", "electores", "source"}, the unknown
        ones left out); {} where the definition records none (coverage is then stated against the
        registry's own rows)."""
        c = self.authority_count
        if c is None:
            return {}
        return {k: v for k, v in (("mesas", c.mesas), ("centros", c.centros), ("electores", c.electores),
                                  ("source", c.source)) if v is not None}

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
    """Open a CSV as people publish it (gzip or not, UTF-8 with or without BOM, else
    Windows-1252 / Latin-1), streamed."""
    return textfile.open_text(path, textfile.detect_encoding(path))[0]


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


REGISTRY_COLUMNS = ("COD_EDO", "EDO", "COD_MUN", "MUN", "COD_PAR", "PAR", "CENTRO", "MESA")
#: optional columns: registered electors; a centre's name and address (search finds a centre by name)
NAME_COLUMNS = {"NOMBRE_CENTRO": "nombre", "CENTRO_NOMBRE": "nombre", "NOMBRE": "nombre",
                "DIRECCION": "direccion", "DIRECCION_CENTRO": "direccion"}
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
    """Read the registry files: the mesas that exist, their place, electors where known (RE),
    centre names where given. A mesa named twice keeps its first row (electors filled in from
    a later file when the first lacks them)."""
    for path in election.registry_paths:
        try:
            f = open_text(path)
        except (OSError, SheetUnreadable) as e:
            raise DefinitionError(f"registry file {path} cannot be read: {e}") from None
        with f:
            reader = csv.DictReader(f)
            header = {(n or "").strip().upper(): n for n in reader.fieldnames or []}
            missing = [c for c in REGISTRY_COLUMNS if c not in header]
            if missing:
                raise DefinitionError(f"registry file {path.name} lacks the column(s) {', '.join(missing)}")
            col = lambda row, name: (row.get(header.get(name, name)) or "").strip()  # noqa: E731
            for row in reader:
                edo, mun, par = int(col(row, "COD_EDO")), int(col(row, "COD_MUN")), int(col(row, "COD_PAR"))
                re_ = col(row, "RE")
                m = Mesa(int(col(row, "CENTRO")), int(col(row, "MESA")), int(re_) if re_.isdigit() else None,
                         edo, mun, par)
                old = election.mesas.get((m.centro, m.mesa))
                if old is None or (old.electores is None and m.electores is not None):
                    election.mesas[(m.centro, m.mesa)] = m if old is None else Mesa(
                        old.centro, old.mesa, m.electores, old.cod_edo, old.cod_mun, old.cod_par)
                election.centros.setdefault(m.centro, Place(edo, mun, par))
                election.estados.setdefault(edo, col(row, "EDO"))
                election.municipios.setdefault((edo, mun), col(row, "MUN"))
                election.parroquias.setdefault((edo, mun, par), col(row, "PAR"))
                names = {key: col(row, c) for c, key in NAME_COLUMNS.items() if c in header and col(row, c)}
                if names:
                    election.centre_names.setdefault(m.centro, names)
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
