"""Talking to archive.org through the ``internetarchive`` library: identifiers, sessions and
keys, and reading an item's metadata (its file list).

Credentials are never taken as arguments: the library reads them from its config file
(``ia configure``) or from ``IA_ACCESS_KEY_ID``/``IA_SECRET_ACCESS_KEY``.
"""
from __future__ import annotations

from collections.abc import Mapping

import requests
from internetarchive import ArchiveSession
from internetarchive.utils import InvalidIdentifierException, validate_s3_identifier

from .errors import ArchiveUnreachable, InvalidIdentifier, MissingCredentials

ARCHIVE_DOWNLOAD_URL = "https://archive.org/download/"
ARCHIVE_DETAILS_URL = "https://archive.org/details/"

SETUP_HELP = (
    "Set up your archive.org keys in one of two ways:\n"
    "  1. run `ia configure` once (it comes with testigo's `internetarchive` dependency) and log\n"
    "     in with your archive.org e-mail and password; the keys are saved in\n"
    "     ~/.config/internetarchive/ia.ini, or\n"
    "  2. export IA_ACCESS_KEY_ID=... and IA_SECRET_ACCESS_KEY=... with the keys shown at\n"
    "     https://archive.org/account/s3.php (log in first).\n"
    "Keys are never given on the command line."
)


def validate_identifier(identifier: str) -> str:
    try:
        validate_s3_identifier(identifier)
    except InvalidIdentifierException as exc:
        raise InvalidIdentifier(
            f"{identifier!r} cannot be an archive.org identifier: {exc} Use 5 to 80 letters, "
            "digits, '-' or '_', starting with a letter or digit, e.g. testigo-ve-2024-20240801."
        ) from exc
    return identifier


def internet_archive_web_seed(identifier: str) -> str:
    """The item's download URL, for the torrent's ``--web-seed``:
    ``https://archive.org/download/<identifier>/``.

    Caution for multi-file torrents: BitTorrent clients (BEP 19; checked with libtorrent 2.1)
    append the torrent's *name* and then the file's path to a web seed that ends in ``/``, so
    with this URL they ask for ``/download/<identifier>/<torrent name>/<path>``, which the archive
    does not have. What the archive serves is ``/download/<identifier>/<path>``: a torrent whose
    name is the identifier, with the web seed ``https://archive.org/download/``.
    """
    return f"{ARCHIVE_DOWNLOAD_URL}{validate_identifier(identifier)}/"


def make_session(config: Mapping | None = None) -> ArchiveSession:
    """An ``internetarchive`` session with the user's config file and environment.

    ``config`` is merged over them (the library's own ``general``/``s3`` sections); the command line
    passes nothing, so keys come from ``ia configure`` or ``IA_ACCESS_KEY_ID``/``IA_SECRET_ACCESS_KEY``.
    """
    try:
        return ArchiveSession(config=dict(config or {}))
    except ValueError as exc:  # only one of the two environment variables is set
        raise MissingCredentials(f"{exc}\n{SETUP_HELP}") from exc


def require_credentials(session: ArchiveSession) -> None:
    if not session.access_key or not session.secret_key:
        raise MissingCredentials(f"No archive.org upload keys were found.\n{SETUP_HELP}")


def fetch_item(session: ArchiveSession, identifier: str, timeout: float | None = None) -> dict:
    """The item's metadata API answer (``metadata``, ``files``), or ``{}`` if there is no item."""
    try:
        return session.get_metadata(identifier, request_kwargs={"timeout": timeout or 12}) or {}
    except (requests.RequestException, OSError, ValueError) as exc:
        raise ArchiveUnreachable(
            f"Could not read the file list of the archive item {identifier} "
            f"({short_reason(exc)}). Check your "
            "internet connection and try again in a few minutes.") from exc


def metadata_value(item_md: Mapping, field: str) -> str | None:
    """One metadata field of an item as a single string (the archive may answer a list)."""
    value = (item_md.get("metadata") or {}).get(field)
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


def metadata_list(item_md: Mapping, field: str) -> list[str]:
    """One metadata field of an item as a list of strings (a single value is a list of one)."""
    value = (item_md.get("metadata") or {}).get(field)
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def short_reason(exc: BaseException) -> str:
    """The innermost cause of a network error, in one short line."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in exc.args if isinstance(a, BaseException)), None)
        if not isinstance(inner, BaseException):
            inner = exc.__cause__ or exc.__context__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
