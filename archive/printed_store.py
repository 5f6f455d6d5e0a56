"""Printed readings kept in the workdir: one per photo content, read once, on every core.

Like decoding, reading the printed acta is keyed by the photo's sha256 (the same bytes are never
read twice, whatever their file name), each reading is written as soon as it is made (an
interrupted `testigo read` resumes where it stopped), and the engine that read it is recorded.
``bundle_rows`` gives the bundle's ``printed`` table; ``COLUMNS`` is its schema.
"""
from __future__ import annotations

import json
import os
import sqlite3
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from . import ocr
from .errors import RejectedFile, TestigoError
from .printed import Printed, read_printed
from .progress import progress
from .workdir import Workdir

# the bundle's `printed` table (archive/database.py builds it from these)
COLUMNS: dict[str, type] = {
    "image_sha256": str, "acta_code": str, "centro": int, "mesa": int, "uuid": str, "printed_at": str,
    "estado": str, "municipio": str, "parroquia": str, "centre_name": str, "centre_address": str,
    "electors": int, "voters_machine": int, "voters_notebook": int,
    "votos": int, "validos": int, "parciales": int, "nulos": int, "vacios": int,
    "opciones_validas": int, "opciones_nulas": int, "opciones_vacias": int,
    "lines": str, "lines_read": int, "complete": int, "engine": str}
DESCRIPTION = ("What each published photo's acta prints above its QR, read by OCR (Tesseract): header, "
               "voters, the 38 party lines and the summary. A count is only given when its digits and its "
               "number in words agree; NULL = not read (never guessed). Not a source of votes: the QR and "
               "the sheets are; disagreements with them are in issues (codes printed_*).")
COLUMN_DESCRIPTIONS = {
    "image_sha256": "The published photo (images.sha256).",
    "acta_code": "Acta code as printed ('CENTRO.MESA.1.0001'); kept only when the centre code printed "
                 "under the address agrees.",
    "centro": "Centre code from the printed acta code.", "mesa": "Mesa from the printed acta code.",
    "uuid": "The acta's UUID in the council's systems (version 4), kept only when at least three of six "
            "reads give it and at most one another.",
    "printed_at": "When the acta was printed (local time, ISO 8601; the voting machine's clock), kept only "
                  "when the reads of its line agree.",
    "estado": "Estado as printed, kept only when the registry names the acta's centre's estado so.",
    "municipio": "Municipio as printed (kept only as the registry names it).",
    "parroquia": "Parroquia as printed (kept only as the registry names it).",
    "centre_name": "The centre's name as printed (searchable: the site finds a centre by a word of it).",
    "centre_address": "The centre's address as printed.",
    "electors": "The mesa's registered electors as printed, kept only when two reads agree.",
    "voters_machine": "Voters counted by the voting machine.", "voters_notebook": "Voters in the voters' notebook.",
    "votos": "Summary: votos.", "validos": "Summary: votos válidos.", "parciales": "Summary: votos parciales.",
    "nulos": "Summary: votos nulos.", "vacios": "Summary: votos vacíos.",
    "opciones_validas": "Summary: opciones válidas.", "opciones_nulas": "Summary: opciones nulas.",
    "opciones_vacias": "Summary: opciones vacías.",
    "lines": "JSON list of the 38 party lines' votes in card order (cards.position); null where unread.",
    "lines_read": "How many of the 38 party lines were read (digits and words agreeing).",
    "complete": "1 when every party line and summary figure was read and válidos equals their sum.",
    "engine": "The OCR engine and model that read it."}


class ReadError(TestigoError):
    """A photo could not be read by OCR (not an image, or the engine failed)."""


@dataclass
class ReadSummary:
    read: int = 0
    failed: int = 0
    skipped: int = 0


def stored(db: sqlite3.Connection, sha256: str) -> Printed | None:
    """The printed reading kept for a photo, or None when it has not been read (or failed)."""
    row = db.execute("SELECT reading FROM printed_readings WHERE sha256 = ? AND status = 'ok'",
                     (sha256,)).fetchone()
    return Printed.from_dict(json.loads(row[0])) if row else None


def all_stored(db: sqlite3.Connection):
    """(sha256, Printed) of every photo read, in sha256 order."""
    for sha, text in db.execute("SELECT sha256, reading FROM printed_readings WHERE status = 'ok' "
                                "ORDER BY sha256"):
        yield sha, Printed.from_dict(json.loads(text))


def pending(db: sqlite3.Connection) -> list[str]:
    """Stored photos not read yet (by content), in sha256 order."""
    return [r[0] for r in db.execute(
        "SELECT sha256 FROM blobs WHERE media_type LIKE 'image/%' AND sha256 NOT IN "
        "(SELECT sha256 FROM printed_readings) ORDER BY sha256")]


def _read_job(args: tuple[str, str]) -> tuple[str, str, str | None, str | None]:
    """Runs in a worker: read one stored photo. Returns (sha256, status, reading JSON, error)."""
    sha, path = args
    try:
        with open(path, "rb") as f:
            reading = read_printed(f.read(), sha)
        return sha, "ok", json.dumps(reading.to_dict(), ensure_ascii=False, sort_keys=True), None
    except (RejectedFile, ocr.OcrUnavailable) as e:
        return sha, "failed", None, str(e)


def read_workdir(workdir, jobs: int | None = None, progress_factory=None) -> ReadSummary:
    """Read the printed acta of every stored photo not read yet (`testigo read`)."""
    if not ocr.available():
        raise ocr.OcrUnavailable("Tesseract with its Spanish and English models is not installed: install "
                                 "Debian's tesseract-ocr, tesseract-ocr-spa and tesseract-ocr-eng (`make install`)")
    own = not isinstance(workdir, Workdir)
    wd = Workdir(workdir, create=False) if own else workdir
    try:
        todo = pending(wd.db)
        summary = ReadSummary(skipped=wd.db.execute("SELECT count(*) FROM printed_readings").fetchone()[0])
        jobs = max(1, jobs or os.cpu_count() or 1)
        args = [(sha, str(wd.object_path(sha))) for sha in todo]
        with progress(progress_factory, len(args), "reading printed actas") as bar:
            if jobs == 1 or len(args) < 2:
                results = map(_read_job, args)
                for result in results:
                    _record(wd, result, summary)
                    bar.update(1)
            else:
                with ProcessPoolExecutor(jobs) as pool:
                    for fut in as_completed([pool.submit(_read_job, a) for a in args]):
                        _record(wd, fut.result(), summary)
                        bar.update(1)
        return summary
    finally:
        if own:
            wd.close()


def _record(wd: Workdir, result, summary: ReadSummary) -> None:
    sha, status, reading, error = result
    engine = json.loads(reading)["engine"] if reading else None
    wd.db.execute("INSERT OR REPLACE INTO printed_readings (sha256, status, engine, reading, error) "
                  "VALUES (?, ?, ?, ?, ?)", (sha, status, engine, reading, error))
    if status == "ok":
        summary.read += 1
    else:
        summary.failed += 1


def row(image_sha256: str, p: Printed) -> dict:
    """The bundle's `printed` row of a reading."""
    h = p.header
    code = h.get("acta_code")
    centro, mesa = (int(code[:9]), int(code[10:12])) if code else (None, None)
    lines = p.line_values()
    s = p.summary_values()
    return {"image_sha256": image_sha256, "acta_code": code, "centro": centro, "mesa": mesa,
            "uuid": h.get("uuid"), "printed_at": h.get("printed_at"), "estado": h.get("estado"),
            "municipio": h.get("municipio"), "parroquia": h.get("parroquia"),
            "centre_name": h.get("centre_name"), "centre_address": h.get("centre_address"),
            "electors": h.get("electors"),
            "voters_machine": p.voters["machine"].value if "machine" in p.voters else None,
            "voters_notebook": p.voters["notebook"].value if "notebook" in p.voters else None,
            **{k: s.get(k) for k in ("votos", "validos", "parciales", "nulos", "vacios",
                                     "opciones_validas", "opciones_nulas", "opciones_vacias")},
            "lines": json.dumps(lines), "lines_read": sum(v is not None for v in lines),
            "complete": int(p.complete), "engine": p.engine}


def bundle_rows(db: sqlite3.Connection, by_original: dict[str, dict]) -> list[dict]:
    """`printed` rows of the published photos (by their published sha256, in that order)."""
    rows = [row(by_original[sha]["sha256"], p) for sha, p in all_stored(db) if sha in by_original]
    return sorted(rows, key=lambda r: r["image_sha256"])


def _photo_actas(db: sqlite3.Connection, sha: str) -> list[sqlite3.Row]:
    return db.execute("SELECT * FROM actas WHERE image_sha256 = ? AND status != 'duplicate' ORDER BY id",
                      (sha,)).fetchall()


def finding_rows(db: sqlite3.Connection, by_original: dict[str, dict], election):
    """Disagreements of each published photo's printed acta with its QR, the sheet row of its
    mesa and the registry: dicts (sha256, locator, acta_id, code, reason), in photo order."""
    from .printed_checks import crosscheck, mesa_of
    for sha, p in all_stored(db):
        if sha not in by_original:
            continue
        actas = _photo_actas(db, sha)
        qr = next((dict(a) for a in actas if a["source_kind"] == "qr"), None)
        where = (qr["centro"], qr["mesa"]) if qr else mesa_of(p)
        sheet = None
        if where:
            s = db.execute("SELECT * FROM actas WHERE centro = ? AND mesa = ? AND source_kind = 'csv' "
                           "AND status != 'duplicate' ORDER BY id LIMIT 1", where).fetchone()
            sheet = dict(s) if s else None
        locator = db.execute("SELECT locator FROM inputs WHERE sha256 = ? ORDER BY id LIMIT 1", (sha,)).fetchone()
        for f in crosscheck(p, qr, sheet, election):
            yield {"sha256": sha, "locator": locator[0] if locator else sha,
                   "acta_id": (qr or sheet or {}).get("id"), "code": f.code, "reason": f.reason()}


def outside_electors(db: sqlite3.Connection, election) -> dict[tuple[int, int], int]:
    """Electors printed on the actas of mesas outside the registry: {(centro, mesa): electors}.

    Taken only where the photo's own acta (QR or transcription) names the mesa the paper prints,
    and where every photo of that mesa prints the same number."""
    from .printed_checks import mesa_of
    seen: dict[tuple[int, int], set[int]] = {}
    for sha, p in all_stored(db):
        where, electors = mesa_of(p), p.header.get("electors")
        if where is None or electors is None or election.mesa(*where) is not None:
            continue
        if any((a["centro"], a["mesa"]) == where for a in _photo_actas(db, sha)):
            seen.setdefault(where, set()).add(electors)
    return {k: next(iter(v)) for k, v in sorted(seen.items()) if len(v) == 1}


def machine_reading_for(db: sqlite3.Connection, sha256: str) -> dict | None:
    """The machine reading of a stored photo for volunteers to confirm (``printed_checks.
    machine_reading``: complete readings only), or None. For the transcription app."""
    from .printed_checks import machine_reading
    p = stored(db, sha256)
    return machine_reading(p) if p is not None else None
