"""Photos linked to sheet rows by file name.

On the citizens' site each sheet row's ``URL`` names its acta photo; a photo saved from there
keeps that name. So a photo whose file name is the basename of a row's URL is linked to the row:
the row's acta carries it (published with it), and the volunteers who transcribe it see the
row's mesa, even when its QR cannot be read. Inside the caller's write transaction.
"""
from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

_NAME = re.compile(r"^[^/\\]{1,200}\.(?:jpe?g|png)$", re.IGNORECASE)


def url_name(url: str | None) -> str | None:
    """The file name a row's URL gives its photo (None: no URL, or not a photo's)."""
    if not url:
        return None
    name = unquote(urlsplit(url.strip()).path.rsplit("/", 1)[-1])
    return name if _NAME.match(name) else None


def photo_name(locator: str) -> str | None:
    """A photo input's own file name (without folders or zip), as the site named it."""
    name = re.split(r"[/\\!]", locator)[-1]
    return name if _NAME.match(name) else None


def link_row(db, acta_id: int, url: str | None) -> None:
    """Remember a sheet row's photo name; link a photo of that name already ingested."""
    name = url_name(url)
    if name is None:
        return
    db.execute("INSERT OR IGNORE INTO sheet_urls VALUES (?, ?)", (name, acta_id))
    photo = db.execute("SELECT sha256 FROM photo_names WHERE name = ? ORDER BY sha256 LIMIT 1", (name,)).fetchone()
    if photo is not None:
        db.execute("UPDATE actas SET image_sha256 = ? WHERE id = ? AND image_sha256 IS NULL", (photo[0], acta_id))


def link_photo(db, locator: str, sha: str) -> None:
    """Remember a stored photo's name; link the sheet rows whose URL names it."""
    name = photo_name(locator)
    if name is None:
        return
    db.execute("INSERT OR IGNORE INTO photo_names VALUES (?, ?)", (name, sha))
    db.execute("UPDATE actas SET image_sha256 = ? WHERE image_sha256 IS NULL AND source_kind = 'csv' AND id IN "
               "(SELECT acta_id FROM sheet_urls WHERE name = ?)", (sha, name))


def linked_mesa(db, sha: str) -> tuple[int, int] | None:
    """The mesa of the sheet row a photo is linked to (None: none)."""
    r = db.execute("SELECT centro, mesa FROM actas WHERE image_sha256 = ? AND source_kind = 'csv' "
                   "ORDER BY id LIMIT 1", (sha,)).fetchone()
    return (r[0], r[1]) if r else None
