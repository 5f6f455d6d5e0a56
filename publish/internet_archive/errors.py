"""Everything that stops a bundle from reaching, or being confirmed on, the Internet Archive."""
from __future__ import annotations

from dataclasses import dataclass

from archive.errors import TestigoError


@dataclass(frozen=True)
class Difference:
    key: str
    problem: str  # missing | size | md5 | sha1 | extra
    local: str | None = None
    remote: str | None = None
    pending: bool = False  # sent in this run and maybe not processed by the archive yet
    item: str = ""         # the archive item it was found in

    def __str__(self) -> str:
        if self.problem == "missing":
            why = (" (sent just now; the archive may still be processing it)" if self.pending
                   else "")
            return f"{self.key}: not in the archive item{why}"
        if self.problem == "extra":
            return f"{self.key}: in the archive item but not in the bundle"
        return (f"{self.key}: {self.problem} differs (bundle {self.local}, archive "
                f"{self.remote or 'none listed'})")


class InternetArchiveError(TestigoError):
    """Anything that stops a bundle from reaching, or being confirmed on, the archive."""


class MissingCredentials(InternetArchiveError):
    """No archive.org S3 keys were found in the config file or the environment."""


class BundleError(InternetArchiveError):
    """The bundle directory is incomplete, damaged, or not a testigo bundle."""


class InvalidIdentifier(InternetArchiveError):
    """The item identifier is not one archive.org accepts."""


class ItemLimitError(InternetArchiveError):
    """The bundle cannot be spread over items within the limits (a file alone is too large,
    or the limits are too small for the top item)."""


class ItemConflict(InternetArchiveError):
    """The identifier is already used by an item holding something other than this bundle, or
    this bundle spread over items another way (other ``--max-files``/``--max-bytes``)."""


class SplitUpload(InternetArchiveError):
    """The bundle is (or would be) spread over several items, so no single web seed serves it."""


class ArchiveUnreachable(InternetArchiveError):
    """The item's metadata (file list) could not be read from archive.org."""


class UploadFailed(InternetArchiveError):
    """A file did not reach the archive; a re-run continues from there."""

    def __init__(self, key: str, message: str, identifier: str | None = None):
        super().__init__(message)
        self.key = key
        self.identifier = identifier


class VerificationFailed(InternetArchiveError):
    """The archive's copy differs from the local bundle; ``differences`` says how, item by item."""

    def __init__(self, identifier: str, differences: list[Difference]):
        items = list(dict.fromkeys(d.item or identifier for d in differences))
        n = len(differences)
        count = f"{n} difference{'s' if n != 1 else ''}"
        if items == [identifier]:
            head = f"The archive item {identifier} does not match the bundle ({count}):"
            lines = [f"  {d}" for d in differences]
        else:
            head = (f"The archive items of {identifier} do not match the bundle ({count} in "
                    f"{len(items)} item{'s' if len(items) != 1 else ''}):")
            lines = []
            for item in items:
                lines.append(f"  {item}:")
                lines += [f"    {d}" for d in differences if (d.item or identifier) == item]
        advice = []
        if any(d.pending for d in differences):
            advice.append(
                "Files the archive has not listed yet are probably still being processed; check "
                f"again later with `testigo upload BUNDLE --identifier {identifier} --check-only` "
                "(with the same --max-files/--max-bytes as the upload, if you gave any).")
        if any(not d.pending and d.problem != "extra" for d in differences):
            advice.append("Run the same upload command again: it resends every file that is "
                          "missing or differs, then checks again.")
        if any(d.problem == "extra" for d in differences):
            advice.append("Files that are not part of the bundle must be removed from the item "
                          "on archive.org (or upload the bundle under a new --identifier).")
        super().__init__("\n".join([head, *lines, *advice]))
        self.identifier = identifier
        self.differences = differences
