"""Output folders written beside themselves and swapped in whole; child processes that die with
their parent. What a killed run leaves is cleaned by the next one.

``build`` and ``mirror`` write into a hidden ``.OUT.<purpose>-PID`` beside OUT and swap it in
at the end. A ``kill -9`` used to leave that folder (bundle-sized: GBs nationally) for ever, and
a crash between the two renames of the swap left no OUT at all. Now the swap is one atomic
exchange where the kernel offers it (Linux ``renameat2(RENAME_EXCHANGE)``), else two renames that
the next run repairs; and every run first sweeps the leftovers of runs whose process is dead,
putting a previous OUT back if a crash left it hidden.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import threading
import time
from pathlib import Path

from .workdir import pid_alive

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (both stay present throughout). False where the system cannot."""
    libc = _libc()
    fn = getattr(libc, "renameat2", None) if libc is not None else None
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):    # EINVAL, ENOSYS, EOPNOTSUPP: this file system or kernel cannot
        return False
    raise OSError(err, os.strerror(err), str(a))


def leftovers(out: Path) -> list[tuple[Path, str, int]]:
    """(path, purpose, pid) of the hidden folders runs left beside ``out``."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.([a-z]+)-(\d+)$")
    found = []
    if out.parent.is_dir():
        for p in out.parent.iterdir():
            m = pattern.match(p.name)
            if m:
                found.append((p, m.group(1), int(m.group(2))))
    return sorted(found)


def sweep(out: Path) -> list[str]:
    """Remove what dead runs left beside ``out``; if a crash in a swap left no ``out``, put the
    previous one back first. A live run's folders are left alone. Returns what was done, in words."""
    done = []
    dead = [(p, purpose, pid) for p, purpose, pid in leftovers(out) if pid != os.getpid() and not pid_alive(pid)]
    if not os.path.lexists(out):
        old = [p for p, purpose, _ in dead if purpose == "old"]
        if old:
            os.rename(old[-1], out)
            done.append(f"put back {out} (a run was killed while replacing it)")
    for p, purpose, pid in dead:
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed {p.name}, left by a killed run (process {pid})")
    return done


def swap_into_place(staging: Path, out: Path) -> None:
    """Replace ``out`` by the finished ``staging`` folder: never a moment without ``out`` where the
    system allows it, and a stale file can never survive."""
    if not os.path.lexists(out):
        os.rename(staging, out)
        return
    if exchange(staging, out):
        shutil.rmtree(staging)          # now the previous folder
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.rename(out, old)                 # a crash here: the next run's sweep puts ``old`` back
    os.rename(staging, out)
    shutil.rmtree(old)


@contextlib.contextmanager
def staged_folder(out: Path, purpose: str):
    """A fresh hidden folder beside ``out`` to write into (``.OUT.<purpose>-PID``): when the block
    ends normally it replaces ``out`` whole; on any failure it is deleted and ``out`` is untouched.
    What killed runs left beside ``out`` is swept first."""
    sweep(out)
    staging = out.with_name(f".{out.name}.{purpose}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_into_place(staging, out)


def exit_with_parent(parent_pid: int) -> None:
    """In a worker process (a pool's initializer): exit as soon as the process that started it is
    gone, even killed with -9, rather than be left blocked or rendering for nobody."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()
