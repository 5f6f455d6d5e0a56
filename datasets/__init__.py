"""Election definitions shipped as data: one folder per election (``ve-2024``)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def path(election_id: str) -> Path:
    """Folder holding the definition of ``election_id``."""
    return ROOT / election_id
