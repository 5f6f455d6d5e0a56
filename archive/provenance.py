"""Provenance: where each acta came from, this workdir's own inputs or a team's signed bundle.

The workdir keeps it (tables ``team_bundles``, ``team_actas``, ``team_images``, written by
``archive.relay``). This module reads it and turns it into the bundle's ``team_bundles``
table and the ``actas.team_bundle_id`` / ``actas.provenance`` columns, deterministically (ids
from content, never from the order bundles were ingested), so a merged bundle rebuilds to
the same bytes. A team bundle that itself carried other teams' bundles passes them on: an
acta keeps naming the team that brought it first ("bolivar via estado").
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

OWN = "own"   # actas.provenance of this workdir's own inputs (team_bundle_id NULL)


@dataclass
class Provenance:
    """The workdir's provenance records, read in the same transaction as its actas."""

    bundles: dict[int, dict] = field(default_factory=dict)   # team_bundles rows by workdir id
    of_acta: dict[int, int] = field(default_factory=dict)    # workdir acta id -> team_bundles id
    originals: dict[str, str] = field(default_factory=dict)  # stored team photo -> original sha256

    def original_of(self, sha256: str) -> str:
        """The sha256 of a photo as first received (by whichever team took it from a phone)."""
        return self.originals.get(sha256, sha256)

    def chain(self, team_bundle_id: int | None) -> list[dict]:
        """The team bundles an acta passed through, origin first, the one ingested here last."""
        out, seen = [], set()
        while team_bundle_id in self.bundles and team_bundle_id not in seen:  # a damaged via ends the walk
            seen.add(team_bundle_id)
            row = self.bundles[team_bundle_id]
            out.append(row)
            team_bundle_id = row["via"]
        return out

    def text(self, team_bundle_id: int | None) -> str:
        return describe([r["label"] for r in self.chain(team_bundle_id)])


def describe(labels: list[str]) -> str:
    """'own', or the teams origin first: 'bolivar via estado'."""
    return " via ".join(labels) if labels else OWN


def read(db: sqlite3.Connection) -> Provenance:
    """Read the provenance tables (call inside the caller's read transaction)."""
    p = Provenance()
    for r in db.execute("SELECT id, via, label, key_id, public_key, bundle_hash, name FROM team_bundles"):
        p.bundles[r[0]] = {"id": r[0], "via": r[1], "label": r[2], "key_id": r[3], "public_key": r[4],
                           "bundle_hash": r[5], "name": r[6]}
    p.of_acta = {r[0]: r[1] for r in db.execute(
        "SELECT acta_id, team_bundle_id FROM team_actas WHERE acta_id IS NOT NULL")}
    p.originals = {r[0]: r[1] for r in db.execute("SELECT sha256, original_sha256 FROM team_images")}
    return p


def bundle_ids(prov: Provenance) -> dict[int, int]:
    """{workdir team_bundles id: bundle id}. Ids follow the chain of bundle hashes from the bundle
    ingested here down to the origin, so they depend on content only."""
    def path(wid: int) -> tuple[str, ...]:
        return tuple(r["bundle_hash"] for r in reversed(prov.chain(wid)))
    ordered = sorted(prov.bundles, key=lambda wid: (path(wid), wid))
    return {wid: n for n, wid in enumerate(ordered, 1)}


def team_rows(prov: Provenance, ids: dict[int, int]) -> list[dict]:
    """The bundle's ``team_bundles`` rows (``ids`` from :func:`bundle_ids`). Each acta row gets
    ``team_bundle_id = ids.get(prov.of_acta.get(workdir acta id))`` and ``provenance =
    prov.text(that)`` (the build does it acta by acta)."""
    return [{"id": ids[wid], "label": b["label"], "key_id": b["key_id"], "public_key": b["public_key"],
             "bundle_hash": b["bundle_hash"], "name": b["name"], "via": ids.get(b["via"]),
             "provenance": prov.text(wid)}
            for wid, b in sorted(((w, prov.bundles[w]) for w in prov.bundles), key=lambda wb: ids[wb[0]])]


def summary(team_rows: list[dict], brought: dict[int, int]) -> list[dict]:
    """Contributing bundles for the README and datapackage.json, with how many actas each brought
    (``brought``: {team_bundles id: actas})."""
    return [{"id": r["id"], "team": r["provenance"], "label": r["label"], "key_id": r["key_id"],
             "public_key": r["public_key"], "bundle_hash": r["bundle_hash"], "via": r["via"],
             "actas": brought.get(r["id"], 0)}
            for r in team_rows]
