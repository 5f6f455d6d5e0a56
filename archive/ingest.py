"""Ingest: folders, zips, file lists and transcribed sheets into a workdir.

Every input gets exactly one outcome row; originals are stored by sha256; each input is
committed in its own transaction, so a killed run resumes and a re-run changes nothing.
"""
from __future__ import annotations

import errno
import json
import os
import stat
import sys
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator

from . import acta as acta_mod
from . import election as election_mod
from . import photolink
from . import sheet as sheet_mod
from .errors import PayloadError, RejectedFile, TestigoError
from .progress import PROGRESS_MIN, progress
from .staging import exit_with_parent
from .workdir import Workdir, sha256_bytes

MAX_FILE_BYTES = 64 * 1024 * 1024
SHEET_SUFFIXES = (".csv", ".csv.gz")


@dataclass
class Item:
    """One image input: where it came from and how to get its bytes."""

    source: str
    locator: str
    read: Callable[[], bytes]
    problem: RejectedFile | None = None   # known bad before reading (unsafe zip path...)


@dataclass
class Sheet:
    source: str
    path: Path


@dataclass
class IngestSummary:
    new: Counter
    skipped: int
    notes: list[str] = field(default_factory=list)   # per sheet: how it was read, or why refused

    def total(self) -> int:
        return sum(self.new.values())


def is_sheet(path: Path) -> bool:
    return path.name.lower().endswith(SHEET_SUFFIXES)


_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def not_regular(path: Path, follow: bool) -> RejectedFile | None:
    """Why ``path`` is not a plain file to read (None: it is one). ``follow``: a link the user
    named on the command line is followed to its target; links found in a folder never are
    (a link to /dev/zero named .jpg, or one a zip left when it was unzipped)."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError as e:
        return RejectedFile("unreadable_file", f"could not read the file: {e}")
    if stat.S_ISREG(st.st_mode):
        return None
    what = _kind(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        try:
            what += f" to {os.readlink(path)}"
        except OSError:
            pass
    return RejectedFile("not_regular_file", f"{path.name} is {what}, not a photo file; links and special "
                        "files are never read (copy the photo itself into the folder)")


def _read_file(path: Path, follow: bool = False) -> Callable[[], bytes]:
    """Read a plain file, at most MAX_FILE_BYTES + 1 bytes of it, whatever its size claims: the
    descriptor is checked again after opening (a file swapped for a pipe meanwhile is refused)."""
    def read() -> bytes:
        problem = not_regular(path, follow)
        if problem is not None:
            raise problem
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
        try:
            fd = os.open(path, flags)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise RejectedFile("not_regular_file", f"{path.name} became a symbolic link while being read; "
                                   "links are never read") from None
            raise
        with open(fd, "rb", closefd=True) as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise RejectedFile("not_regular_file", f"{path.name} is {_kind(st.st_mode)}, not a photo file")
            data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES or st.st_size > MAX_FILE_BYTES:
            size = max(len(data), st.st_size)
            raise RejectedFile("too_large", f"{path.name} is {size // 2**20} MB or more; actas photos are "
                               f"under {MAX_FILE_BYTES // 2**20} MB; is this really an acta?")
        return data
    return read


def _member_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return zf.read(info)
        except Exception as e:  # zipfile raises BadZipFile, zlib.error, EOFError, NotImplementedError...
            raise RejectedFile("bad_zip", f"{info.filename!r} in {path.name} cannot be read ({e}); "
                               "the zip is damaged: re-create it from the original photos") from None
    return read


def _zip_items(source: str, path: Path, follow: bool = False) -> Iterator[Item]:
    def rejected(code: str, message: str) -> Item:
        return Item(source, str(path), _read_file(path, follow), RejectedFile(code, message))
    try:
        zf = zipfile.ZipFile(path)
        infos = sorted((i for i in zf.infolist() if not i.is_dir()), key=lambda i: i.filename)
    except (zipfile.BadZipFile, OSError) as e:
        yield rejected("bad_zip", f"{path.name} is not a readable zip file ({e}); re-create the zip")
        return
    if not infos:
        yield rejected("empty_zip", f"{path.name} contains no files")
        return
    for info in infos:
        name = info.filename
        locator = f"{path}!{name}"
        parts = PurePosixPath(name.replace("\\", "/")).parts
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_IFMT(mode) and not stat.S_ISREG(mode):   # a Unix file type
            # kept in memory (a link's target text), never extracted nor followed
            yield Item(source, locator, _member_reader(zf, info, path),
                       RejectedFile("not_regular_file", f"zip member {name!r} is {_kind(mode)}, not a photo "
                                    "file; unzipped, it would point elsewhere: it was kept, never followed"))
            continue
        if info.file_size > MAX_FILE_BYTES:
            yield Item(source, locator, lambda name=name: name.encode(),  # not read: only its name is kept
                       RejectedFile("too_large", f"zip member {name!r} is {info.file_size // 2**20} MB "
                                    "uncompressed; not an acta photo"))
            continue
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            # read in memory (never extracted), so the stored original and its hash are the content's
            yield Item(source, locator, _member_reader(zf, info, path),
                       RejectedFile("unsafe_path", f"zip member {name!r} has an unsafe path "
                                    "(absolute or with '..'); it was kept in the workdir, never extracted nor decoded"))
            continue
        if name.lower().endswith(".zip"):
            yield Item(source, locator, _member_reader(zf, info, path),
                       RejectedFile("nested_archive", f"{name!r} is a zip inside a zip; unzip it "
                                    "and ingest the folder"))
            continue
        yield Item(source, locator, _member_reader(zf, info, path))


def expand_sources(sources: Iterable[str]) -> tuple[list[Item], list[Sheet]]:
    """Turn command-line sources into image items and sheets, in a stable order."""
    items: list[Item] = []
    sheets: list[Sheet] = []

    def add_file(source: str, p: Path, follow: bool = False) -> None:
        problem = not_regular(p, follow)
        if problem is not None:           # never opened: a pipe would hang, a device never ends
            items.append(Item(source, str(p), lambda: b"", problem))
        elif is_sheet(p):
            sheets.append(Sheet(source, p))
        elif p.suffix.lower() == ".zip":
            items.extend(_zip_items(source, p, follow))
        else:
            items.append(Item(source, str(p), _read_file(p, follow)))

    for source in sources:
        p = Path(source)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(dirs):          # a link to a folder is not walked: say so
                    if os.path.islink(os.path.join(root, name)):
                        add_file(source, Path(root) / name)
                for name in sorted(files):
                    add_file(source, Path(root) / name)
        elif os.path.lexists(p):
            add_file(source, p, follow=True)
        else:
            raise TestigoError(f"{source}: no such file or folder")
    return items, sheets


def read_file_list(path: str) -> list[str]:
    """A file list: one path per line; blank lines and '#' comments ignored."""
    text = Path(path).read_text(encoding="utf-8") if path != "-" else sys.stdin.read()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _decode_job(args: tuple[bytes, str, str]) -> dict:
    """Runs in a worker process: check + decode one image. Returns plain data."""
    data, name, election_id = args
    import io

    from PIL import Image

    from . import reading
    r = reading.decode_bytes(data, election_mod.load(election_id), name)
    if r.status == "rejected":
        return r.to_dict()
    with Image.open(io.BytesIO(data)) as im:  # header only: the pixels were checked above
        media_type, (width, height) = Image.MIME[im.format], im.size
    return {**r.to_dict(), "media_type": media_type, "width": width, "height": height}


class Ingester:
    """Runs ingest against one workdir; ``progress`` gets called once per input."""

    def __init__(self, workdir: Workdir, election_id: str | None = None, jobs: int = 1):
        self.wd = workdir
        self.election_id = election_id or workdir.election_id or election_mod.DEFAULT_ELECTION
        if workdir.election_id is None:
            workdir.set_meta("election", self.election_id)
        self.election = election_mod.load(self.election_id)
        acta_mod.fill_qr_nulos(workdir.db, self.election)
        self.jobs = max(1, jobs)
        self.skipped = 0
        self.sheet_notes: list[str] = []
        # inputs of this run are those with a higher id: their outcomes (which a later reading
        # of the same mesa may turn into "conflict") are read back rather than counted
        self.last_id_before = workdir.db.execute("SELECT coalesce(max(id), 0) FROM inputs").fetchone()[0]
        self.mine: set[int] = set()   # inputs this run recorded (another ingest may record others meanwhile)

    @property
    def new(self) -> Counter:
        rows = self.wd.db.execute("SELECT id, outcome FROM inputs WHERE id > ?", (self.last_id_before,))
        return Counter(outcome for i, outcome in rows if i in self.mine)

    # ---- images -------------------------------------------------------------
    def ingest_items(self, items: list[Item], progress: Callable[[int], None] = lambda n: None,
                     batch: int = 32) -> None:
        """Decode in the pool while the chunk before is stored and recorded (in order): the
        workers never wait for the fsyncs and transactions of this process."""
        pool = (ProcessPoolExecutor(self.jobs, initializer=exit_with_parent, initargs=(os.getpid(),))
                if self.jobs > 1 and len(items) > 1 else None)
        try:
            pending = None
            for start in range(0, len(items) + batch, batch):
                started = self._start_chunk(items[start:start + batch], pool) if start < len(items) else None
                if pending is not None:
                    self._finish_chunk(*pending)
                    progress(len(pending[0]))
                pending = started
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)

    def _start_chunk(self, chunk: list[Item], pool) -> tuple[list, list, dict]:
        """Read and hash a chunk; send what has not been decoded before (by content) to the pool."""
        db = self.wd.db
        prepared = []
        for item in chunk:
            try:
                data = item.read()
                problem = item.problem
            except RejectedFile as e:
                data, problem = b"", e
            except OSError as e:
                data, problem = b"", RejectedFile("unreadable_file", f"could not read the file: {e}")
            sha = sha256_bytes(data)
            if self._seen(item, sha):
                self.skipped += 1
                continue
            prepared.append((item, data, sha, problem))
        # decode what has not been decoded before (by content), once per content
        todo = {}
        for item, data, sha, problem in prepared:
            if problem is None and sha not in todo and not db.execute(
                    "SELECT 1 FROM readings WHERE sha256 = ?", (sha,)).fetchone():
                todo[sha] = (data, item.locator, self.election_id)
        if pool and len(todo) > 1:
            decoding = {sha: pool.submit(_decode_job, job) for sha, job in todo.items()}
        else:
            decoding = {sha: _decode_job(job) for sha, job in todo.items()}
        return chunk, prepared, decoding

    def _finish_chunk(self, chunk: list[Item], prepared: list, decoding: dict) -> None:
        """Store and record a chunk's inputs in order, once their decoding is done."""
        for item, data, sha, problem in prepared:
            fresh = decoding.get(sha)
            if fresh is not None and not isinstance(fresh, dict):
                fresh = fresh.result()
            if self._seen(item, sha):       # the same file named twice in this run
                self.skipped += 1
                continue
            self.wd.store(data, sha)
            self._record_image(item, data, sha, problem, fresh)

    def _seen(self, item: Item, sha: str) -> bool:
        return self.wd.db.execute("SELECT 1 FROM inputs WHERE locator = ? AND sha256 = ?",
                                  (item.locator, sha)).fetchone() is not None

    def _record_image(self, item: Item, data: bytes, sha: str, problem, fresh: dict | None) -> None:
        db = self.wd.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if self._seen(item, sha):     # another ingest of the same input recorded it meanwhile
                self.skipped += 1
            else:
                self.classify_image(item, len(data), sha, problem, fresh)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:    # SQLite rolled back already on a full disk: keep its error
                db.execute("ROLLBACK")
            raise

    def classify_image(self, item: Item, size: int, sha: str, problem: RejectedFile | None,
                       fresh: dict | None) -> None:
        """Record what a stored photo gave (its reading ``fresh``, as a decoding worker returns
        it, or the one already recorded for its content): an acta, a duplicate, or an input with its reason.
        Inside the caller's transaction (a team bundle's photos are taken in the bundle's own)."""
        db = self.wd.db
        if problem is not None:
            db.execute("INSERT OR IGNORE INTO blobs (sha256, size) VALUES (?, ?)", (sha, size))
            self._input(item.source, item.locator, sha, "rejected-file", problem.code, str(problem))
            return
        if fresh is not None:
            db.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?, ?)",
                       (sha, size, fresh.get("media_type"), fresh.get("width"), fresh.get("height")))
            db.execute("INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (sha, fresh["status"], fresh.get("qr_text"), fresh.get("code"),
                        fresh.get("reason"), fresh.get("decoder"), fresh.get("step")))
        r = db.execute("SELECT * FROM readings WHERE sha256 = ?", (sha,)).fetchone()
        if r["status"] != "rejected":
            photolink.link_photo(db, item.locator, sha)
        earlier = db.execute("SELECT locator, acta_id FROM inputs WHERE sha256 = ? AND kind = 'image' "
                             "ORDER BY id LIMIT 1", (sha,)).fetchone()
        if earlier is not None and earlier["acta_id"] is not None:
            self._input(item.source, item.locator, sha, "duplicate", "same_file",
                        f"the same file was already ingested as {earlier['locator']}", earlier["acta_id"])
        elif r["status"] == "rejected":
            self._input(item.source, item.locator, sha, "rejected-file", r["code"], r["reason"])
        elif r["status"] != "ok":
            self._input(item.source, item.locator, sha, r["status"], r["code"], r["reason"])
        else:
            try:
                a = acta_mod.parse_payload(r["qr_text"], self.election)
                flags = acta_mod.validate(a, self.election)
            except PayloadError as e:
                self._input(item.source, item.locator, sha, "invalid", e.code, str(e))
            else:
                self._add_acta(a, item.source, item.locator, sha, image_sha=sha, flags=flags)

    def _input(self, source: str, locator: str, sha: str, outcome: str, code: str | None,
               reason: str | None, acta_id: int | None = None, kind: str = "image") -> None:
        self.mine.add(self.wd.db.execute(
            "INSERT INTO inputs (source, locator, sha256, kind, outcome, code, reason, acta_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (source, locator, sha, kind, outcome, code, reason, acta_id)).lastrowid)

    def _add_acta(self, a: acta_mod.Acta, source: str, locator: str, sha: str, image_sha: str | None,
                  kind: str = "image", flags: tuple[str, ...] = ()) -> int:
        """Insert an accepted reading; classify it against earlier readings of the same mesa. Returns its id."""
        db = self.wd.db
        numbers = a.numbers()
        same_mesa = db.execute("SELECT id, numbers, status FROM actas WHERE centro = ? AND mesa = ? AND "
                               "source_kind = ? ORDER BY id", (a.centro, a.mesa, a.source_kind)).fetchall()
        status, dup_of, code, reason = "ok", None, None, None
        if acta_mod.OUTSIDE_REGISTRY in flags:  # accepted, but say so: the bundle counts it apart
            code = acta_mod.OUTSIDE_REGISTRY
            reason = (f"mesa {a.mesa_key} is not in the {self.election.id} registry: the acta is kept, "
                      "flagged outside_registry and counted in the separate line 'actas outside the "
                      "registry', not in the registry totals")
        if acta_mod.ELECTORS_UNKNOWN in flags:
            code = code or acta_mod.ELECTORS_UNKNOWN
            reason = ((reason + "; ") if reason else f"mesa {a.mesa_key}: ") + (
                "its registered electors are unknown (not in the registry, no RE in the row), so the "
                "electors check (válidos + nulos at most the electors) could not be made")
        outcome = "decoded" if a.source_kind == "qr" else "transcribed"
        match = next((r for r in same_mesa if r["numbers"] == numbers), None)
        if match is not None:
            status, dup_of, outcome = "duplicate", match["id"], "duplicate"
            code, reason = "same_numbers", f"mesa {a.mesa_key} was already read with the same numbers"
        elif same_mesa:
            status, outcome = "conflict", "conflict"
            code = "different_numbers"
            reason = (f"mesa {a.mesa_key} was already read with different numbers; "
                      "all readings are kept and flagged for review")
        cur = db.execute(
            "INSERT INTO actas (centro, mesa, source_kind, image_sha256, payload, counts, votes, validos, "
            "nulos, numbers, status, duplicate_of, extra) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (a.centro, a.mesa, a.source_kind, image_sha, a.payload,
             json.dumps(list(a.counts)) if a.counts is not None else None, json.dumps(a.votes),
             a.validos, a.nulos, numbers, status, dup_of, json.dumps(a.extra, sort_keys=True)))
        acta_id = cur.lastrowid
        if status == "conflict":
            # flag the earlier first readings too; their duplicates keep pointing at them
            for r in same_mesa:
                if r["status"] != "ok":
                    continue
                db.execute("UPDATE actas SET status = 'conflict' WHERE id = ?", (r["id"],))
                db.execute("UPDATE inputs SET outcome = 'conflict', code = 'different_numbers', reason = ? "
                           "WHERE acta_id = ? AND outcome IN ('decoded', 'transcribed')",
                           (f"mesa {a.mesa_key} was later read with different numbers in {locator}; "
                            "all readings are kept and flagged for review", r["id"]))
        self._input(source, locator, sha, outcome, code, reason, acta_id, kind)
        return acta_id

    # ---- sheets -------------------------------------------------------------
    def ingest_sheet(self, sheet: Sheet, progress_factory=None) -> None:
        """Ingest a per-mesa results sheet: stored by content, then streamed in short batches
        (see archive/sheet.py); a finished sheet is skipped, an interrupted one resumes."""
        db = self.wd.db
        sha, size = self.wd.store_file(sheet.path)
        if db.execute("SELECT 1 FROM sheets WHERE sha256 = ?", (sha,)).fetchone() or db.execute(
                "SELECT 1 FROM inputs WHERE sha256 = ? AND locator = ?", (sha, str(sheet.path))).fetchone():
            self.skipped += 1
            return
        with progress(progress_factory, size if size >= PROGRESS_MIN else 0,
                      label=f"sheet {sheet.path.name}") as bar:
            seen = [0]

            def advance(pos: int) -> None:
                bar.update(pos - seen[0])
                seen[0] = pos
            sheet_mod.ingest_sheet(self, sheet, sha, size, advance)


def ingest(sources: Iterable[str], workdir: str | os.PathLike, election_id: str | None = None,
           jobs: int = 1, progress_factory=None) -> IngestSummary:
    """Ingest every source into ``workdir``. Returns what was new and what was skipped."""
    items, sheets = expand_sources(sources)
    with Workdir(workdir, election=election_id) as wd:
        ing = Ingester(wd, election_id, jobs)
        for sheet in sheets:
            ing.ingest_sheet(sheet, progress_factory)
        if progress_factory is not None and items:
            with progress_factory(len(items)) as bar:
                ing.ingest_items(items, bar.update)
        else:
            ing.ingest_items(items)
        return IngestSummary(ing.new, ing.skipped, ing.sheet_notes)


def crosschecks(wd: Workdir) -> list[dict]:
    """Compare each QR reading with the transcribed sheet row of the same mesa."""
    rows = wd.db.execute(
        "SELECT q.id AS qr_id, c.id AS csv_id, q.centro, q.mesa, q.votes AS qv, c.votes AS cv, "
        "q.validos AS qval, c.validos AS cval, q.nulos AS qnul, c.nulos AS cnul FROM actas q JOIN actas c ON c.centro = q.centro AND "
        "c.mesa = q.mesa AND c.source_kind = 'csv' AND c.status != 'duplicate' "
        "WHERE q.source_kind = 'qr' ORDER BY q.id, c.id").fetchall()
    out = []
    for r in rows:
        diff = acta_mod.differences(json.loads(r["qv"]), r["qval"], json.loads(r["cv"]), r["cval"],
                                    a_nulos=r["qnul"], b_nulos=r["cnul"])
        out.append({"qr_acta": r["qr_id"], "csv_acta": r["csv_id"], "centro": r["centro"], "mesa": r["mesa"],
                    "result": "disagree" if diff else "agree", "differences": diff})
    return out
