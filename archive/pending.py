"""Volunteers' entries kept on disk while the workdir is busy, recorded as soon as it is free.

Another writer (a sheet being ingested, a team bundle taken in, a build's snapshot) can hold
the workdir longer than a volunteer should wait. A save then retries for a few seconds, and if
the workdir is still busy the entry is written (fsync'd) to ``pending-entries/`` in the workdir
and the volunteer goes on; every later save, and every start of ``testigo transcribe``, records
the kept entries first. An entry the rules refuse when it is finally recorded (the volunteer had
entered that photo already, the photo left the queue) is moved to ``pending-entries/refused/``
with the reason: nothing typed is ever lost.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Mapping

from .errors import TranscriptionError

DIR = "pending-entries"
SAVE_WAIT = 10.0        # seconds a save retries before the entry is kept on disk


def busy(e: BaseException) -> bool:
    """Whether ``e`` is another writer holding the workdir (try again later), not a real failure."""
    return isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e))


def keep(workdir: Path, sha: str, volunteer_id: int, fields: Mapping[str, str] | None) -> Path:
    """Write one entry durably to ``pending-entries/`` (temp file, fsync, rename)."""
    folder = Path(workdir) / DIR
    folder.mkdir(exist_ok=True)
    name = f"{time.time_ns():020d}-{volunteer_id}-{sha[:16]}-{uuid.uuid4().hex[:8]}.json"
    data = json.dumps({"sha256": sha, "volunteer_id": volunteer_id, "kept_at": time.time(),
                       "fields": None if fields is None else {k: str(v) for k, v in fields.items()}},
                      ensure_ascii=False, sort_keys=True).encode()
    tmp = folder / (name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / name)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)             # the new name survives a power cut too
    finally:
        os.close(fd)
    return folder / name


def waiting(workdir: Path) -> list[Path]:
    """The kept entries not recorded yet, oldest first."""
    folder = Path(workdir) / DIR
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def replay(queue) -> int:
    """Record the kept entries through ``queue.save`` (an ``archive.transcription.Transcriptions``),
    oldest first; stop at the first that finds the workdir still busy. Returns how many were
    recorded or set aside as refused."""
    done = 0
    for path in waiting(queue.wd.path):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            queue.save(entry["sha256"], int(entry["volunteer_id"]), entry["fields"])
        except TranscriptionError as e:        # the rules refuse it now: set aside with the reason
            refused = path.parent / "refused"
            refused.mkdir(exist_ok=True)
            path.with_suffix(".reason.txt").write_text(f"{e.code}: {e}\n", encoding="utf-8")
            os.replace(path.with_suffix(".reason.txt"), refused / (path.stem + ".reason.txt"))
            os.replace(path, refused / path.name)
        except sqlite3.OperationalError as e:
            if busy(e):
                break
            raise
        except (ValueError, KeyError, TypeError):   # unreadable: set aside, never deleted
            (path.parent / "refused").mkdir(exist_ok=True)
            os.replace(path, path.parent / "refused" / path.name)
        else:
            path.unlink()
        done += 1
    return done


def save_or_keep(queue, sha: str, volunteer_id: int, fields: Mapping[str, str] | None,
                 wait: float | None = None):
    """``queue.save``, retried while another writer holds the workdir; still busy after ``wait``
    seconds, the entry is kept on disk and None returned. Entries kept earlier are recorded
    first. A rule broken is raised at once."""
    from .workdir import busy_timeout
    wait = SAVE_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    queue.db.execute(f"PRAGMA busy_timeout = {int(max(0.1, min(wait, 2.0)) * 1000)}")
    try:
        while True:
            try:
                replay(queue)
                return queue.save(sha, volunteer_id, fields)
            except sqlite3.OperationalError as e:
                if not busy(e):
                    raise
                if time.monotonic() >= deadline:
                    keep(queue.wd.path, sha, volunteer_id, fields)
                    return None
                time.sleep(0.2)
    finally:
        queue.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout() * 1000)}")
