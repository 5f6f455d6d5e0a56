"""Upload a bundle's acta photos to Wikimedia Commons (or any MediaWiki), each with a file page a
reader understands, and check every file's SHA-1 there.

Owns: the photos' file names, file pages, licence and categories (from the election definition's
``commons`` block), the resumable, duplicate-free upload and its SHA-1 check. May import:
``archive`` (election, shards, places, errors), ``publish.internet_archive`` for what the
archives share (reading and checking the bundle, ``short_reason``), ``mwclient``. Nothing in
``publish`` imports it but its ``cli``.

* :mod:`.photos` reads the acta photos and what is known of each from the bundle's database.
* :mod:`.page` makes each file's name, page text and categories.
* :mod:`.wiki` speaks the wiki's API through mwclient (maxlag, rate limits, bot password login).
* :mod:`.upload` decides per photo (there, duplicate, name taken, send), uploads, checks SHA-1s.
* :mod:`.cli` is ``testigo commons``.
"""
from __future__ import annotations

from .errors import CommonsError, MissingBotPassword, Sha1Mismatch, UploadRefused, WikiUnreachable
from .page import PageStyle, categories, file_name, wikitext
from .photos import ActaPhoto, PhotoReader, acta_photos
from .upload import CommonsProgress, CommonsResult, Outcome, upload_photos
from .wiki import COMMONS_API, PASSWORD_VARIABLE, SETUP_HELP, USER_VARIABLE, Wiki, credentials

__all__ = [
    "COMMONS_API", "PASSWORD_VARIABLE", "SETUP_HELP", "USER_VARIABLE", "ActaPhoto", "CommonsError",
    "CommonsProgress", "CommonsResult", "MissingBotPassword", "Outcome", "PageStyle", "PhotoReader",
    "Sha1Mismatch", "UploadRefused", "Wiki", "WikiUnreachable", "acta_photos", "categories",
    "credentials", "file_name", "upload_photos", "wikitext",
]
