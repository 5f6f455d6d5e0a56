"""Sheets: per-mesa results sheets as people publish them, streamed in short batches.

People publish sheets in UTF-8 (with or without a BOM), in Windows-1252 / Latin-1 (the citizens'
second sheet), with CRLF or LF, gzip-compressed or not, with or without the registered electors
(`RE`). A sheet is read as a stream (memory stays flat whatever its size) and ingested in batches
of ``BATCH_ROWS`` rows, each its own short write transaction: the transcription server and other
ingests wait at most one batch, and a killed ingest resumes after its last committed batch.
"""
from __future__ import annotations

import csv
import time
from typing import Iterator

from . import acta as acta_mod
from . import photolink
from .errors import PayloadError, SheetUnreadable
from .textfile import detect_encoding, open_text

#: Rows read ahead of a write (bounded: memory stays flat), and how long one write transaction may
#: last before it commits; after each commit the writer pauses a little longer than SQLite's
#: longest busy-handler sleep (100 ms), so a waiting writer always gets in: it waits at most about
#: one transaction (a second) rather than the whole sheet.
BATCH_ROWS = 5000
BATCH_SECONDS = 1.0
PAUSE_SECONDS = 0.11
REQUIRED_COLUMNS = ("CENTRO", "MESA", "VOTOS_VALIDOS", "VOTOS_NULOS")
ELECTORS_COLUMN = "RE"


def normalise_header(names: list[str]) -> list[str]:
    """Column names as testigo knows them: spaces, a stray BOM and case do not matter."""
    return [n.replace("\ufeff", "").strip().upper() for n in names]


def missing_columns(header: list[str], election) -> list[str]:
    needed = list(REQUIRED_COLUMNS) + [c.csv_column.upper() for c in election.candidates]
    return [c for c in needed if c not in header]


def records(reader) -> Iterator[tuple[list[str] | None, str | None]]:
    """Each record of a csv reader, or (None, the reason) for a record the csv module refuses
    (a NUL byte, a field over the size limit): one bad record never stops the sheet."""
    while True:
        try:
            yield next(reader), None
        except StopIteration:
            return
        except csv.Error as e:
            yield None, str(e)


def row_electors(row: dict) -> int | None:
    """The row's own registered electors, when the sheet has an RE column with a plain number."""
    text = (row.get(ELECTORS_COLUMN) or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


def ingest_sheet(ing, sheet, sha: str, size: int, progress=None) -> None:
    """Ingest one stored sheet into ``ing``'s workdir (an ``ingest.Ingester``), resuming after the
    last committed batch of an interrupted run. The sheet is marked done in ``sheets`` at the end."""
    db = ing.wd.db
    locator = str(sheet.path)
    path = ing.wd.object_path(sha)
    try:
        encoding = detect_encoding(path)
    except SheetUnreadable as e:
        _reject(ing, sheet, sha, size, e.code, str(e))
        return
    done = db.execute("SELECT rows_done FROM sheet_progress WHERE sha256 = ?", (sha,)).fetchone()
    rows_done = done[0] if done else 0
    text, base = open_text(path, encoding)
    with base:
        reader = csv.reader(text)
        try:
            header = normalise_header(next(reader))
        except (StopIteration, csv.Error, UnicodeDecodeError) as e:
            _reject(ing, sheet, sha, size, "unknown_sheet", f"{sheet.path.name} has no readable header line"
                    f"{f' ({e})' if str(e) else ''}; a per-mesa sheet starts with its column names")
            return
        missing = missing_columns(header, ing.election)
        if missing:
            _reject(ing, sheet, sha, size, "unknown_sheet",
                    f"{sheet.path.name} is not a per-mesa results sheet: it lacks the column(s) "
                    f"{', '.join(missing)} (its header: {', '.join(header)[:200]})")
            return
        if done is None:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT OR IGNORE INTO blobs (sha256, size, media_type) VALUES (?, ?, 'text/csv')",
                       (sha, size))
            db.execute("INSERT OR IGNORE INTO sheet_progress VALUES (?, ?, ?, ?, 0)",
                       (sha, locator, encoding, ",".join(header)))
            db.execute("COMMIT")
        ing.sheet_notes.append(f"{sheet.path.name}: read as {encoding}"
                               + ("" if ELECTORS_COLUMN in header else
                                  "; no RE column: electors are the registry's, unknown outside it")
                               + (f"; resumed after row {rows_done:,}" if rows_done else ""))
        n = 0
        batch: list[tuple[int, list | None, str | None]] = []
        for record, problem in records(reader):
            n += 1
            if n <= rows_done:
                continue
            batch.append((n, record, problem))
            if len(batch) >= BATCH_ROWS:
                _write_batch(ing, sheet, sha, header, batch)
                batch = []
                if progress is not None:
                    progress(base.tell())
                time.sleep(PAUSE_SECONDS)
        _write_batch(ing, sheet, sha, header, batch, finished=n)


def _reject(ing, sheet, sha: str, size: int, code: str, reason: str) -> None:
    db = ing.wd.db
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("INSERT OR IGNORE INTO blobs (sha256, size, media_type) VALUES (?, ?, 'text/csv')", (sha, size))
        if not db.execute("SELECT 1 FROM inputs WHERE locator = ? AND sha256 = ?", (str(sheet.path), sha)).fetchone():
            ing._input(sheet.source, str(sheet.path), sha, "rejected-file", code, reason, kind="file")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:      # SQLite may have rolled back already (disk full)
            db.execute("ROLLBACK")
        raise
    ing.sheet_notes.append(f"{sheet.path.name}: refused: {reason}")


def _write_batch(ing, sheet, sha: str, header: list[str], batch: list, finished: int | None = None) -> None:
    """The batch's rows in short write transactions (at most BATCH_SECONDS each), each recording
    how far the sheet has got; the last one of the sheet marks it done."""
    db = ing.wd.db
    i = 0
    while True:
        start = time.monotonic()
        db.execute("BEGIN IMMEDIATE")
        try:
            while i < len(batch) and (time.monotonic() - start < BATCH_SECONDS or i == 0):
                _write_row(ing, sheet, sha, header, *batch[i])
                i += 1
            if batch:
                db.execute("UPDATE sheet_progress SET rows_done = ? WHERE sha256 = ?", (batch[i - 1][0], sha))
            last = i >= len(batch)
            if last and finished is not None:
                db.execute("INSERT OR IGNORE INTO sheets VALUES (?, ?, ?)", (sha, str(sheet.path), finished))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already (disk full)
                db.execute("ROLLBACK")
            raise
        if last:
            return
        time.sleep(PAUSE_SECONDS)


def _write_row(ing, sheet, sha: str, header: list[str], n: int, record: list | None, problem: str | None) -> None:
    locator = f"{sheet.path}#row={n}"
    if problem is not None:
        ing._input(sheet.source, locator, sha, "invalid", "bad_row",
                   f"row {n}: the line cannot be read as CSV ({problem})", kind="sheet-row")
        return
    row = dict(zip(header, record))
    try:
        if len(record) < len(header):
            raise PayloadError("bad_row", f"the row has {len(record)} columns, the header {len(header)}")
        a = acta_mod.parse_csv_row(row, ing.election)
        flags = acta_mod.validate(a, ing.election, electores=row_electors(row))
    except PayloadError as e:
        ing._input(sheet.source, locator, sha, "invalid", e.code, f"row {n}: {e}", kind="sheet-row")
        return
    acta_id = ing._add_acta(a, sheet.source, locator, sha, image_sha=None, kind="sheet-row", flags=flags)
    photolink.link_row(ing.wd.db, acta_id, a.extra.get("url"))
