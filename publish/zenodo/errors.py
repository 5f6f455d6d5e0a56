"""Everything that stops a bundle from reaching, or being confirmed on, Zenodo."""
from __future__ import annotations

from archive.errors import TestigoError


class ZenodoError(TestigoError):
    """Anything that stops a bundle from reaching, or being confirmed on, Zenodo."""


class MissingToken(ZenodoError):
    """No Zenodo personal access token in the environment."""


class ZenodoUnreachable(ZenodoError):
    """The connection to Zenodo broke or timed out."""


class ZenodoRefused(ZenodoError):
    """Zenodo answered a request with an error (bad token, validation error, locked record...)."""

    def __init__(self, message: str, status: int | None = None, errors: list | None = None):
        super().__init__(message)
        self.status = status
        self.errors = errors or []


class DepositionConflict(ZenodoError):
    """The deposition named, or found, cannot take this bundle (not ours, another bundle,
    a published record that is not this bundle, too many files or bytes)."""


class ChecksumMismatch(ZenodoError):
    """Zenodo holds a file whose size or MD5 is not the bundle's: never publish such a record."""

    def __init__(self, deposition_id, differences: list[str]):
        n = len(differences)
        lines = "\n".join(f"  {d}" for d in differences)
        super().__init__(
            f"CHECKSUM MISMATCH: Zenodo deposition {deposition_id} does not hold the bundle as it is "
            f"here ({n} difference{'s' if n != 1 else ''}):\n{lines}\n"
            "Nothing was published. Run the same command again: it deletes every file whose "
            "checksum differs from the draft and sends it again, then checks again. If it keeps "
            "failing, the copy here may be damaged: run `testigo verify` on the bundle.")
        self.deposition_id = deposition_id
        self.differences = differences
