"""Everything that stops a bundle's photos from reaching, or being confirmed on, a MediaWiki."""
from __future__ import annotations

from archive.errors import TestigoError


class CommonsError(TestigoError):
    """Anything that stops the photos from reaching, or being confirmed on, the wiki."""


class MissingBotPassword(CommonsError):
    """No bot user name or bot password in the environment."""


class WikiUnreachable(CommonsError):
    """The wiki's API could not be reached, or answered something that is not its API."""


class UploadRefused(CommonsError):
    """The wiki refused an upload or an edit (permissions, a blocked account, a bad title...)."""


class Sha1Mismatch(CommonsError):
    """A file on the wiki has another SHA-1 than the photo in the bundle."""

    def __init__(self, differences: list[str]):
        n = len(differences)
        lines = "\n".join(f"  {d}" for d in differences[:50])
        more = f"\n  ... and {n - 50} more" if n > 50 else ""
        super().__init__(
            f"SHA-1 MISMATCH: {n} file(s) on the wiki are not the bundle's photos:\n{lines}{more}\n"
            "Look at those file pages: a file overwritten by someone else must be reverted to the "
            "bundle's version (the file page's history); then run the same command again to check.")
        self.differences = differences
