"""Election definitions shipped as data: one folder per election (``ve-2024``).

More definitions can live outside the package: folders listed in $TESTIGO_DATASETS (separated
by ``os.pathsep``) are searched first, each holding ``<id>/election.json``.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ENV = "TESTIGO_DATASETS"


def path(election_id: str) -> Path:
    """Folder holding the definition of ``election_id``."""
    for d in os.environ.get(ENV, "").split(os.pathsep):
        if d and (Path(d) / election_id / "election.json").is_file():
            return Path(d) / election_id
    return ROOT / election_id
