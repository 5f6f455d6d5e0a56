"""The bundle's SQLite database: its schema (tables, totals, descriptions) and its writing.

Deterministic by construction: a fixed page size, rows inserted in the order given, indexes
named from their columns, and the file written through ``VACUUM INTO`` so that the same rows
always give the same bytes. The totals (``VIEWS``) are aggregated once here and stored as
indexed tables: the bundle never changes, so no visitor should pay for the aggregation.
"""
from __future__ import annotations

import itertools
import operator
import os
import sqlite3
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import sqlite_utils

from . import mesa_pages, printed_store
from .errors import WorkdirInconsistent

# 16 KiB: the browser app reads one page per HTTP range request; the whole schema is then page 1 and
# b-trees a level shallower (a mesa or totals page: 8-15 requests; 13-23 at 4 KiB; benchmarks/app.py).
PAGE_SIZE = 16384

# --- schema --------------------------------------------------------------------------------------

# One rule per mesa: which acta counts (sheet row > QR > volunteers' transcription), and where it
# counts: the registry totals, or the separate line for mesas outside the registry (issue 9).
COUNTING_RULE = {
    "en": ("Per mesa, the counted acta is the transcribed sheet row (source 'csv', status 'ok') when "
           "there is one, otherwise the QR reading with status 'ok'. A mesa with neither a sheet row nor "
           "any QR reading is counted from the photo transcribed by volunteers (source "
           "'transcribed-photo': two independent entries that agree) with status 'ok': machine-read "
           "numbers always come first, and a transcription never settles a conflict between QR readings; "
           "it is cross-checked with the other sources like any acta. Duplicates (same numbers read "
           "again) are never counted twice. A mesa whose QR readings conflict (different numbers) is "
           "not counted unless a sheet row exists; all conflicting readings are kept and flagged. "
           "Totals (the totals_* tables, computed at build time) add up the counted actas only, all of "
           "mesas in the registry (the published per-mesa CSV). An acta from a photo (its QR or its "
           "transcription) whose mesa is not in the registry is kept with outside_registry = 1: its "
           "grammar and sums are checked; the electors check cannot be made (a sheet row of such a mesa "
           "is refused as unknown_mesa). It is never 'counted' nor in the totals_* tables, which stay "
           "equal to the registry's: the same rule picks one acta per such mesa (counted_outside = 1) "
           "for the separate line 'actas outside the registry' (table outside_registry_totals). Its mesa "
           "and centre rows carry outside_registry = 1 with electores NULL; the centre's estado, "
           "municipio and parroquia come from its code (EEMMPPCCC) where the registry knows them, else NULL. "
           "Actas taken in from other teams' signed bundles (see team_bundles and actas.provenance) follow the same rule as this archive's "
           "own: the same mesa from two teams with the same numbers is a duplicate (both rows kept, each "
           "with its provenance); with different numbers it is a conflict naming both teams, and neither "
           "team is preferred."),
    "es": ("Por mesa, el acta contada es la fila transcrita de la hoja (origen 'csv', estado 'ok') si "
           "existe; si no, la lectura del QR con estado 'ok'. Una mesa sin fila de la hoja ni lectura "
           "alguna del QR se cuenta con la foto transcrita por voluntarios (origen 'transcribed-photo': "
           "dos entradas independientes que coinciden) con estado 'ok': los números leídos por máquina "
           "van siempre primero, y una transcripción nunca resuelve un conflicto entre lecturas del QR; "
           "se coteja con los otros orígenes como cualquier acta. Los duplicados (los mismos números "
           "leídos otra vez) nunca se cuentan dos veces. Una mesa cuyas lecturas del QR están en "
           "conflicto (números distintos) no se cuenta salvo que exista una fila de la hoja; todas las "
           "lecturas en conflicto se conservan y se marcan. Los totales (tablas totals_*, calculadas al "
           "construir el paquete) suman solo las actas contadas, todas de mesas del registro (la hoja por "
           "mesa publicada). Un acta de una foto (su QR o su transcripción) cuya mesa no está en el "
           "registro se conserva con outside_registry = 1: se comprueban su gramática y sus sumas; la de "
           "electores no se puede hacer (una fila de la hoja de una mesa así se rechaza como "
           "unknown_mesa). Nunca es 'contada' ni entra en las tablas totals_*, que siguen iguales a las "
           "del registro: la misma regla elige un acta por mesa así (counted_outside = 1) para la línea "
           "aparte 'actas fuera del registro' (tabla outside_registry_totals). Sus filas de mesa y centro "
           "llevan outside_registry = 1 y electores NULL; el estado, municipio y parroquia del centro "
           "salen de su código (EEMMPPCCC) donde el registro los conoce; si no, quedan NULL. "
           "Las actas recibidas de paquetes firmados de otros equipos (ver team_bundles y "
           "actas.provenance) siguen la misma regla que las propias: la misma mesa de dos equipos con los "
           "mismos números es un duplicado (se conservan ambas filas, cada una con su procedencia); con "
           "números distintos es un conflicto que nombra a ambos equipos, y no se prefiere a ninguno."),
}

TABLE_DESCRIPTIONS = {
    "estados": "States (estados) of the registry.",
    "municipios": "Municipalities; id is 'EDO.MUN' from the registry's integer codes.",
    "parroquias": "Parishes; id is 'EDO.MUN.PAR' from the registry's integer codes.",
    "centros": "Voting centres (codes only: names as actas print them are in printed); searchable by code and place. "
               "Centres outside the registry that an acta named carry outside_registry = 1.",
    "mesas": "Every mesa (voting table) of the registry, counted or not, and every mesa outside it that an "
             "acta named (outside_registry = 1).",
    "candidates": "Presidential candidates, in ballot order of the election definition.",
    "cards": "The 38 ballot cards in the QR payload's order and the candidate each one belongs to.",
    "images": "Published acta photos: metadata (EXIF/GPS) stripped losslessly, named by their own sha256, "
              "kept in the bundle's zip shards (column shard).",
    "team_bundles": "Other teams' signed bundles whose actas this bundle took in (relay), with their keys.",
    "actas": "Every accepted reading of a mesa: QR readings of photos, transcribed sheet rows, and photos "
             "transcribed by volunteers.",
    "votes": "Votes per ballot card: the QR payload's 38 counts, or the 38 party lines volunteers typed from the printed acta.",
    "acta_votes": "Votes per candidate, for every acta.",
    "issues": "Every input that did not become a counted-or-countable reading, with the reason; printed_* codes: disagreements.",
    "transcriptions": "Actas transcribed from a photo by volunteers: how many entries it took, and the "
                      "public aliases of those who chose one (never names).",
    "transcription_entries": "Every entry volunteers made for the photos that became actas, the volunteer "
                             "replaced by a keyed hash (the same in every table; names cannot be guessed back).",
    "totals_nacional": "National totals per candidate over counted actas (computed at build time).",
    "totals_estado": "Totals per state and candidate over counted actas (computed at build time).",
    "totals_municipio": "Totals per municipality and candidate over counted actas (computed at build time).",
    "totals_parroquia": "Totals per parish and candidate over counted actas (computed at build time).",
    "totals_centro": "Totals per centre and candidate over counted actas (computed at build time).",
    **{t: spec[1] for t, spec in mesa_pages.APP_TABLES.items()},
    "outside_registry_totals": "The separate line 'actas outside the registry': votes per candidate over "
                               "the actas counted for mesas the registry does not know (counted_outside; "
                               "computed at build time).",
}

_GEO = {"cod_edo": "State code (COD_EDO).", "estado": "State name.", "municipio": "Municipality name.",
        "parroquia": "Parish name.", "municipio_id": "Municipality id 'EDO.MUN'.",
        "parroquia_id": "Parish id 'EDO.MUN.PAR'.", "centro": "Centre code (integer, as in the QR header).",
        "codigo": "Centre code as text, for search."}
_TOT = {"candidate": "Candidate code.", "name": "Candidate name.",
        "votes": "Sum of the candidate's votes over counted actas."}

COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "estados": {"cod_edo": _GEO["cod_edo"], "nombre": "State name as in the registry."},
    "municipios": {"id": _GEO["municipio_id"], "cod_edo": _GEO["cod_edo"],
                   "cod_mun": "Municipality code within the state (COD_MUN).",
                   "nombre": "Municipality name as in the registry."},
    "parroquias": {"id": _GEO["parroquia_id"], "municipio_id": _GEO["municipio_id"],
                   "cod_edo": _GEO["cod_edo"], "cod_par": "Parish code (COD_PAR).",
                   "nombre": "Parish name as in the registry."},
    "centros": {"centro": _GEO["centro"], "codigo": _GEO["codigo"], "parroquia_id": _GEO["parroquia_id"],
                "municipio_id": _GEO["municipio_id"], "cod_edo": _GEO["cod_edo"], "estado": _GEO["estado"],
                "municipio": _GEO["municipio"], "parroquia": _GEO["parroquia"],
                "mesas": "Number of mesas of the centre in the registry.",
                "electores": "Registered electors of the centre (sum of its mesas); NULL outside the registry.",
                "outside_registry": "1 for a centre the registry does not know (an acta named it); its "
                                    "place comes from its code where possible, else NULL."},
    "mesas": {"id": "Mesa id 'CENTRO.MM' (mesa number with two digits).", "centro": _GEO["centro"],
              "mesa": "Mesa number within the centre.",
              "electores": "Registered electors (RE); NULL outside the registry (unknown).",
              "outside_registry": "1 for a mesa the registry does not know (an acta named it), else 0."},
    "candidates": {"code": "Candidate code (column name in the published CSV).", "name": "Full name.",
                   "cards": "How many ballot cards the candidate has.",
                   "sort_order": "Order in the election definition (1 = first)."},
    "cards": {"position": "1-based position of the card's count in the QR payload.",
              "candidate": "Candidate the card's votes go to.",
              "party": "Party of the card; NULL where it is not established by any source.",
              "owner_status": "'established' (matched to CSV rows) or 'community' (as assigned by a "
                              "community decoder, not confirmed)."},
    "images": {"sha256": "sha256 of the published (metadata-stripped) file; also its file name.",
               "original_sha256": "sha256 of the file as received, before stripping.",
               "path": "images/<sha256>.<ext>: the photo's address on the site (/images/...) and where it "
                       "lands when the shards are unzipped into images/.",
               "shard": "The zip file of the bundle that holds the photo, as member <sha256>.<ext> "
                        "(stored, not recompressed): e.g. unzip -p <shard> <sha256>.jpg.",
               "media_type": "image/jpeg or image/png.",
               "size": "Size of the published file in bytes.",
               "width": "Width in pixels as displayed (after the EXIF orientation).",
               "height": "Height in pixels as displayed (after the EXIF orientation).",
               "orientation": "EXIF Orientation (1-8) kept in the published file so viewers show the "
                              "photo upright; 1 = the stored pixels are upright.",
               "offset": "Where the photo's bytes start in its shard (stored, so its `size` bytes from there "
                         "are the file): one HTTP range request `bytes=offset-(offset+size-1)` on the shard "
                         "reads the photo, with no zip library (the browser app, testigo mirror --app).",

               "redacted": "1: the mesa members' names, IDs and signatures were blurred (build --redact-members)."},
    "actas": {"id": "Acta id, assigned in the order (centro, mesa, source, image sha256, payload); "
                    "stable for the same inputs.",
              "mesa_id": "The mesa this acta is about.",
              "source": "'qr' (read from the QR of a photo), 'csv' (a transcribed sheet row) or "
                        "'transcribed-photo' (a photo whose QR could not be read, typed in by two volunteers "
                        "whose independent entries agree).",
              "image_sha256": "The published photo the acta was read or transcribed from (NULL for csv).",
              "payload": "The QR text, verbatim (NULL for csv).",
              "validos": "Valid votes (sum of all candidates).",
              "nulos": "Null votes; for a QR reading, the payload's first trailing field (established on real scans, see the election definition).",
              "status": "'ok', 'duplicate' (same numbers as an earlier reading of the same source) or "
                        "'conflict' (readings of the same source disagree).",
              "duplicate_of": "For duplicates: the acta first read with these numbers.",
              "counted": "1 when this acta is the one counted for its mesa (see the counting rule).",
              "crosscheck": "Compared with the mesa's actas of the other sources (QR, sheet row, "
                            "transcribed photo): 'agree', 'disagree', or NULL when there is nothing to compare with.",
              "crosscheck_diff": "JSON {field: {source: n, other_source: m}} of the differences (e.g. "
                                 "{\"EG\": {\"qr\": 5, \"csv\": 6}}), against the first counterpart that "
                                 "differs (NULL when they agree).",
              "outside_registry": "1 when the acta's mesa is not in the registry (never counted in the "
                                  "registry totals; see the counting rule), else 0.",
              "counted_outside": "1 when this acta is the one counted for its outside-registry mesa in "
                                 "the separate line 'actas outside the registry'.",
              "team_bundle_id": "The team bundle this acta came from; NULL for the publisher's own inputs.",
              "provenance": "Where the acta came from, in words: 'own' (the publisher's own inputs) or "
                            "the team labels, origin first ('bolivar via estado')."},
    "team_bundles": {"id": "Id, ordered by the chain of bundle hashes (stable for the same inputs).",
                     "label": "The team's name, as the coordinator who trusted its key labelled it.",
                     "key_id": "Id of the minisign key that signed the team's bundle.",
                     "public_key": "That public key (base64, as `minisign -P` takes it).",
                     "bundle_hash": "sha256 of the team bundle's SHA256SUMS (identifies the exact bundle).",
                     "name": "The team bundle's name (its database file without .db).",
                     "via": "The team bundle that carried this one; NULL when taken in directly.",
                     "provenance": "The chain in words, origin first ('bolivar via estado')."},
    "votes": {"acta_id": "The QR acta.", "position": "Ballot card (position in the payload).",
              "votes": "Votes of that card."},
    "acta_votes": {"acta_id": "The acta.", "candidate": "Candidate code.", "votes": "Votes of the candidate."},
    "issues": {"id": "Issue id (sorted by file, then content hash).",
               "outcome": "unreadable, invalid, duplicate, conflict, rejected-file or disagree (printed acta).",
               "code": "Short stable code of the reason (e.g. unknown_mesa, same_file).",
               "reason": "What was wrong, in words (local folder names removed).",
               "file": "File name, 'archive.zip!member', 'sheet.csv#row=N' or, for a team bundle's acta, "
                       "'team-bundle:LABEL:HASH!acta=N'; never a volunteer's local path.",
               "original_sha256": "sha256 of the input file (for sheet rows: of the sheet; for a team "
                                  "bundle's actas: of its SHA256SUMS).",
               "acta_id": "The acta this input duplicates or conflicts with, when there is one."},
    "transcriptions": {"acta_id": "The acta of source 'transcribed-photo'.",
                       "entries": "Independent entries volunteers made for the photo before it was decided: "
                                  "2 when the first two agreed, more when it went to review.",
                       "transcribers": "JSON list of the public aliases of the volunteers who entered it, for "
                                       "those who chose one; NULL when none did. Names are never published.",
                       "volunteers": "JSON list of the keyed hashes of the volunteers whose entries counted "
                                     "(as in transcription_entries.volunteer)."},
    "transcription_entries": {
        "id": "Entry number in this bundle.", "acta_id": "The acta the photo became.",
        "volunteer": "The volunteer as HMAC-SHA256 of the workdir's secret and their id: the same volunteer "
                     "has the same hash in every row and table of this workdir's bundles; never a name.",
        "entered_at": "When the entry was saved (UTC, ISO 8601).",
        "illegible": "1: the volunteer said the photo cannot be read (no numbers).",
        "centro": "Centre code typed.", "mesa": "Mesa number typed.",
        "votes": "JSON {candidate: votes} typed.", "validos": "Valid votes typed.", "nulos": "Null votes typed.",
        "agrees": "1 when the entry is the agreed reading (mesa and numbers), 0 when it differs.",
        "counted": "1 when the entry counted toward the decision; 0 when it came after it or was voided "
                   "(its volunteer set aside or invitation voided, or the photo reopened)."},
    **{t: dict(spec[2]) for t, spec in mesa_pages.APP_TABLES.items()},
    "totals_nacional": dict(_TOT),
    "outside_registry_totals": {**_TOT, "votes": "Sum of the candidate's votes over actas counted outside "
                                                 "the registry (counted_outside)."},
    "totals_estado": {"cod_edo": _GEO["cod_edo"], "estado": _GEO["estado"], **_TOT},
    "totals_municipio": {"municipio_id": _GEO["municipio_id"], "cod_edo": _GEO["cod_edo"],
                         "estado": _GEO["estado"], "municipio": _GEO["municipio"], **_TOT},
    "totals_parroquia": {"parroquia_id": _GEO["parroquia_id"], "municipio_id": _GEO["municipio_id"],
                         "cod_edo": _GEO["cod_edo"], "estado": _GEO["estado"],
                         "municipio": _GEO["municipio"], "parroquia": _GEO["parroquia"], **_TOT},
    "totals_centro": {"centro": _GEO["centro"], "codigo": _GEO["codigo"], "parroquia_id": _GEO["parroquia_id"],
                      "estado": _GEO["estado"], "municipio": _GEO["municipio"],
                      "parroquia": _GEO["parroquia"], **_TOT},
}
TABLE_DESCRIPTIONS["printed"], COLUMN_DESCRIPTIONS["printed"] = printed_store.DESCRIPTION, printed_store.COLUMN_DESCRIPTIONS


@dataclass(frozen=True)
class TableSpec:
    columns: dict[str, type]
    pk: str | tuple[str, ...]
    foreign_keys: tuple[tuple[str, str, str], ...] = ()
    not_null: tuple[str, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()


# Creation order = dependency order. Indexes: every FK column that Datasette or the totals join on.
TABLES: dict[str, TableSpec] = {
    "estados": TableSpec({"cod_edo": int, "nombre": str}, "cod_edo", not_null=("nombre",)),
    "municipios": TableSpec({"id": str, "cod_edo": int, "cod_mun": int, "nombre": str}, "id",
                            (("cod_edo", "estados", "cod_edo"),), ("cod_edo", "cod_mun", "nombre"),
                            (("cod_edo",),)),
    "parroquias": TableSpec({"id": str, "municipio_id": str, "cod_edo": int, "cod_par": int, "nombre": str},
                            "id", (("municipio_id", "municipios", "id"), ("cod_edo", "estados", "cod_edo")),
                            ("municipio_id", "cod_edo", "cod_par", "nombre"),
                            (("municipio_id",), ("cod_edo",))),
    "centros": TableSpec({"centro": int, "codigo": str, "parroquia_id": str, "municipio_id": str,
                          "cod_edo": int, "estado": str, "municipio": str, "parroquia": str,
                          "mesas": int, "electores": int, "outside_registry": int}, "centro",
                         (("parroquia_id", "parroquias", "id"), ("municipio_id", "municipios", "id"),
                          ("cod_edo", "estados", "cod_edo")),
                         ("codigo", "mesas"),  # place and electores are NULL outside the registry
                         (("parroquia_id",), ("municipio_id",), ("cod_edo",), ("codigo",))),
    "mesas": TableSpec({"id": str, "centro": int, "mesa": int, "electores": int, "outside_registry": int}, "id",
                       (("centro", "centros", "centro"),), ("centro", "mesa"),
                       (("centro", "mesa"), ("outside_registry",))),
    "candidates": TableSpec({"code": str, "name": str, "cards": int, "sort_order": int}, "code",
                            not_null=("name", "cards", "sort_order")),
    "cards": TableSpec({"position": int, "candidate": str, "party": str, "owner_status": str}, "position",
                       (("candidate", "candidates", "code"),), ("candidate", "owner_status"),
                       (("candidate",),)),
    "images": TableSpec({"sha256": str, "original_sha256": str, "path": str, "shard": str, "media_type": str,
                         "size": int, "width": int, "height": int, "orientation": int, "offset": int, "redacted": int}, "sha256",
                        not_null=("original_sha256", "path", "shard", "media_type", "size", "offset"),
                        indexes=(("shard",),), unique=(("original_sha256",),)),
    "team_bundles": TableSpec({"id": int, "label": str, "key_id": str, "public_key": str, "bundle_hash": str,
                               "name": str, "via": int, "provenance": str}, "id",
                              (("via", "team_bundles", "id"),), ("label", "key_id", "bundle_hash", "provenance"),
                              (("via",), ("key_id",))),
    "actas": TableSpec({"id": int, "mesa_id": str, "source": str, "image_sha256": str, "payload": str,
                        "validos": int, "nulos": int, "status": str, "duplicate_of": int,
                        "counted": int, "crosscheck": str, "crosscheck_diff": str,
                        "outside_registry": int, "counted_outside": int,
                        "team_bundle_id": int, "provenance": str}, "id",
                       (("mesa_id", "mesas", "id"), ("image_sha256", "images", "sha256"),
                        ("duplicate_of", "actas", "id"), ("team_bundle_id", "team_bundles", "id")),
                       ("mesa_id", "source", "validos", "status", "counted", "outside_registry", "counted_outside",
                        "provenance"),
                       (("mesa_id",), ("image_sha256",), ("duplicate_of",), ("counted",), ("status",),
                        ("crosscheck",), ("outside_registry",), ("counted_outside",), ("team_bundle_id",),
                        ("source",))),
    "votes": TableSpec({"acta_id": int, "position": int, "votes": int}, ("acta_id", "position"),
                       (("acta_id", "actas", "id"), ("position", "cards", "position")),
                       ("votes",), (("position",),)),
    "acta_votes": TableSpec({"acta_id": int, "candidate": str, "votes": int}, ("acta_id", "candidate"),
                            (("acta_id", "actas", "id"), ("candidate", "candidates", "code")),
                            ("votes",), (("candidate",),)),
    "issues": TableSpec({"id": int, "outcome": str, "code": str, "reason": str, "file": str,
                         "original_sha256": str, "acta_id": int}, "id",
                        (("acta_id", "actas", "id"),), ("outcome", "file", "original_sha256"),
                        (("outcome",), ("code",), ("original_sha256",), ("acta_id",))),
    "transcriptions": TableSpec({"acta_id": int, "entries": int, "transcribers": str, "volunteers": str},
                                "acta_id", (("acta_id", "actas", "id"),), ("entries",)),
    "transcription_entries": TableSpec(
        {"id": int, "acta_id": int, "volunteer": str, "entered_at": str, "illegible": int, "centro": int,
         "mesa": int, "votes": str, "validos": int, "nulos": int, "agrees": int, "counted": int}, "id",
        (("acta_id", "actas", "id"),), ("acta_id", "volunteer", "entered_at", "illegible", "agrees", "counted"),
        (("acta_id",), ("volunteer",))),
}
TABLES["printed"] = TableSpec(printed_store.COLUMNS, "image_sha256", (("image_sha256", "images", "sha256"),), ("lines_read", "complete"), (("centro", "mesa"), ("uuid",)))  # noqa: E501

_COUNTED = ("FROM actas a JOIN acta_votes v ON v.acta_id = a.id JOIN candidates c ON c.code = v.candidate "
            "JOIN mesas m ON m.id = a.mesa_id JOIN centros ce ON ce.centro = m.centro WHERE a.counted = 1")
# The totals: {name: (columns, SELECT)}. Each is written at build time as a TABLE of that name and
# those columns, filled from the SELECT in its ORDER BY (so the same rows give the same bytes),
# with the indexes of ``totals_indexes``. Add an entry to get another totals table the same way.
VIEWS: dict[str, tuple[dict[str, type], str]] = {
    "totals_nacional": ({"candidate": str, "name": str, "votes": int},
                        "SELECT c.code AS candidate, c.name AS name, SUM(v.votes) AS votes "
                        "FROM actas a JOIN acta_votes v ON v.acta_id = a.id "
                        "JOIN candidates c ON c.code = v.candidate WHERE a.counted = 1 "
                        "GROUP BY c.code ORDER BY c.sort_order"),
    "totals_estado": ({"cod_edo": int, "estado": str, "candidate": str, "name": str, "votes": int},
                      "SELECT ce.cod_edo AS cod_edo, ce.estado AS estado, c.code AS candidate, c.name AS name, "
                      f"SUM(v.votes) AS votes {_COUNTED} GROUP BY ce.cod_edo, ce.estado, c.code "
                      "ORDER BY ce.cod_edo, c.sort_order"),
    "totals_municipio": ({"municipio_id": str, "cod_edo": int, "estado": str, "municipio": str,
                          "candidate": str, "name": str, "votes": int},
                         "SELECT ce.municipio_id AS municipio_id, ce.cod_edo AS cod_edo, ce.estado AS estado, "
                         "ce.municipio AS municipio, c.code AS candidate, c.name AS name, SUM(v.votes) AS votes "
                         f"{_COUNTED} GROUP BY ce.municipio_id, ce.cod_edo, ce.estado, ce.municipio, c.code "
                         "ORDER BY ce.municipio_id, c.sort_order"),
    "totals_parroquia": ({"parroquia_id": str, "municipio_id": str, "cod_edo": int, "estado": str,
                          "municipio": str, "parroquia": str, "candidate": str, "name": str, "votes": int},
                         "SELECT ce.parroquia_id AS parroquia_id, ce.municipio_id AS municipio_id, "
                         "ce.cod_edo AS cod_edo, ce.estado AS estado, ce.municipio AS municipio, "
                         "ce.parroquia AS parroquia, c.code AS candidate, c.name AS name, SUM(v.votes) AS votes "
                         f"{_COUNTED} GROUP BY ce.parroquia_id, ce.municipio_id, ce.cod_edo, ce.estado, "
                         "ce.municipio, ce.parroquia, c.code ORDER BY ce.parroquia_id, c.sort_order"),
    "totals_centro": ({"centro": int, "codigo": str, "parroquia_id": str, "estado": str, "municipio": str,
                       "parroquia": str, "candidate": str, "name": str, "votes": int},
                      "SELECT ce.centro AS centro, ce.codigo AS codigo, ce.parroquia_id AS parroquia_id, "
                      "ce.estado AS estado, ce.municipio AS municipio, ce.parroquia AS parroquia, "
                      "c.code AS candidate, c.name AS name, SUM(v.votes) AS votes "
                      f"{_COUNTED} GROUP BY ce.centro, ce.codigo, ce.parroquia_id, ce.estado, ce.municipio, "
                      "ce.parroquia, c.code ORDER BY ce.centro, c.sort_order"),
    # every candidate, 0 when no acta is counted outside the registry: the line is always there
    "outside_registry_totals": ({"candidate": str, "name": str, "votes": int},
                                "SELECT c.code AS candidate, c.name AS name, COALESCE(SUM(o.votes), 0) AS votes "
                                "FROM candidates c LEFT JOIN (SELECT v.candidate, v.votes FROM actas a "
                                "JOIN acta_votes v ON v.acta_id = a.id WHERE a.counted_outside = 1) o "
                                "ON o.candidate = c.code GROUP BY c.code ORDER BY c.sort_order"),
}
FTS_COLUMNS = {"centros": ("codigo", "estado", "municipio", "parroquia"), "printed": ("centre_name", "centre_address")}

# --- ids -----------------------------------------------------------------------------------------

def mesa_id(centro: int, mesa: int) -> str:
    return f"{centro}.{mesa:02d}"


def municipio_id(edo: int, mun: int) -> str:
    return f"{edo}.{mun}"


def parroquia_id(edo: int, mun: int, par: int) -> str:
    return f"{edo}.{mun}.{par}"


# --- database --------------------------------------------------------------------------------------

ROWS_PER_BATCH = 2_000   # rows of a source table held at once while its derived tables are filled


def _insert(conn: sqlite3.Connection, name: str, rows: Iterable[dict]) -> None:
    cols = list(TABLES[name].columns)
    # itemgetter: C speed for rows that have every column (nearly all); of one name it is no tuple
    whole = operator.itemgetter(*cols) if len(cols) > 1 else lambda r: (r[cols[0]],)

    def values(r: dict) -> tuple:
        try:
            return whole(r)
        except KeyError:                  # a column the row leaves out is NULL
            return tuple(r.get(c) for c in cols)

    conn.executemany(f"INSERT INTO [{name}] ({', '.join(f'[{c}]' for c in cols)}) "
                     f"VALUES ({', '.join('?' * len(cols))})", map(values, rows))


def write_database(path: Path, tables: dict[str, Iterable[dict]],
                   derived: dict[str, tuple[str, Callable[[dict], Iterable[dict]]]] | None = None,
                   after: Callable[[sqlite3.Connection], None] | None = None) -> None:
    """Write the SQLite file at ``path`` (temp file + VACUUM INTO + rename: never half-written).

    ``tables``: rows per table, lists or generators (streamed: a national bundle has millions of
    vote rows, never all in memory). ``derived``: {table: (source table, rows_of(source row))}
    for tables made from another's rows (the votes of each acta), filled in the same pass over
    the source, a batch at a time, so an expensive source generator runs once. ``after(conn)``
    adds tables computed from the finished ones (the audit), before the file is written.
    """
    derived = derived or {}
    building = path.with_name(path.name + ".building")
    final_tmp = path.with_name(path.name + ".tmp")
    for p in (building, final_tmp):
        p.unlink(missing_ok=True)
    conn = sqlite3.connect(building)
    try:
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode = OFF")  # a scratch file: thrown away on failure
        conn.execute("PRAGMA synchronous = OFF")
        db = sqlite_utils.Database(conn, execute_plugins=False)
        for name in TABLES:
            if name in derived:
                continue                       # created and filled with its source
            children = {d: rows_of for d, (source, rows_of) in derived.items() if source == name}
            for t in (name, *children):
                db[t].create(TABLES[t].columns, pk=TABLES[t].pk, foreign_keys=list(TABLES[t].foreign_keys),
                             not_null=set(TABLES[t].not_null))
            if not children:
                _insert(conn, name, tables[name])     # sqlite3 takes the generator as it comes
            else:
                rows = iter(tables[name])
                while batch := list(itertools.islice(rows, ROWS_PER_BATCH)):
                    _insert(conn, name, batch)
                    for d, rows_of in children.items():
                        _insert(conn, d, (child for r in batch for child in rows_of(r)))
            for t in (name, *children):
                for idx in TABLES[t].indexes:
                    db[t].create_index(list(idx), index_name=f"idx_{t}_{'_'.join(idx)}")
                for idx in TABLES[t].unique:
                    db[t].create_index(list(idx), index_name=f"uq_{t}_{'_'.join(idx)}", unique=True)
        for name, (columns, sql) in VIEWS.items():
            materialize(conn, name, columns, sql)
        if after is not None:
            after(conn)
        mesa_pages.write(conn)   # after the audit: a mesa's page names the checks that list it
        for name, cols in FTS_COLUMNS.items():
            db[name].enable_fts(list(cols), fts_version="FTS5")
        conn.commit()
        bad = conn.execute("PRAGMA foreign_key_check").fetchall()
        if bad:
            raise WorkdirInconsistent(f"the bundle database would break {len(bad)} foreign keys, e.g. {bad[:3]}")
        conn.execute("ANALYZE")
        conn.commit()
        conn.execute("VACUUM INTO ?", (str(final_tmp),))
    finally:
        conn.close()
        building.unlink(missing_ok=True)
    os.replace(final_tmp, path)


# Columns of totals tables that only label a key beside them (municipio beside municipio_id, ...):
# not indexed, since scanning a whole totals table for them takes milliseconds. ``estado`` is
# indexed: the site's Datasette pages facet the totals by it on every visit.
LABEL_COLUMNS = frozenset({"name", "codigo", "municipio", "parroquia"})


def totals_indexes(columns: dict[str, type]) -> list[tuple[str, ...]]:
    """The indexes of a totals table: each key column alone (the site looks areas up by their
    key, Datasette filters and sorts by them), (candidate, votes) for one candidate's areas
    ranked by votes (it also serves filters and facets by candidate)."""
    ranked = ("candidate", "votes") if {"candidate", "votes"} <= set(columns) else ()
    out = [(c,) for c in columns if c not in LABEL_COLUMNS and c != "candidate"]
    if ranked:
        out.append(ranked)
    elif "candidate" in columns:
        out.append(("candidate",))
    return out


def materialize(conn: sqlite3.Connection, name: str, columns: dict[str, type], sql: str) -> None:
    """Write the rows of ``sql`` as the indexed table ``name``, rowids in the SELECT's order."""
    got = [d[0] for d in conn.execute(f"SELECT * FROM ({sql}) LIMIT 0").description]
    if got != list(columns):
        raise ValueError(f"totals {name}: the SELECT gives columns {got}, the schema declares "
                         f"{list(columns)}; make them the same, in the same order")
    db = sqlite_utils.Database(conn, execute_plugins=False)
    db[name].create(columns)
    conn.execute(f"INSERT INTO [{name}] ({', '.join(f'[{c}]' for c in columns)}) {sql}")
    for idx in totals_indexes(columns):
        db[name].create_index(list(idx), index_name=f"idx_{name}_{'_'.join(idx)}")


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open without ever writing next to the file (no -journal/-wal appears in a bundle)."""
    uri = "file:" + urllib.request.pathname2url(str(Path(path).resolve())) + "?mode=ro&immutable=1"
    return sqlite3.connect(uri, uri=True)

