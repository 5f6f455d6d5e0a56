"""The site's errors: the bottom of the room, importing nothing of it."""
from archive.errors import TestigoError


class SiteError(TestigoError):
    """The folder is not a bundle the site can serve."""
