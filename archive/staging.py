"""Write an output folder whole or not at all: staged beside it, then swapped into place."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path


@contextlib.contextmanager
def staged_folder(out: Path, purpose: str):
    """A fresh hidden folder beside ``out`` to write into (``.OUT.<purpose>-PID``): when the block
    ends normally it replaces ``out`` whole; on any failure it is deleted and ``out`` is untouched."""
    staging = out.with_name(f".{out.name}.{purpose}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_into_place(staging, out)


def _swap_into_place(staging: Path, out: Path) -> None:
    """Replace ``out`` by the finished ``staging`` folder; a stale file can never survive."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
        os.rename(staging, out)
        shutil.rmtree(old)
    else:
        os.rename(staging, out)
