"""Where an input came from, and what of that the bundle may say.

A locator names an input in the workdir: a path, ``zip!member`` or ``sheet.csv#row=N``. Its
folders and zip names are private (a messenger's chat export is a zip named after the contact
who sent the photos), so the bundle publishes only the file's own name and scrubs the rest from
every reason text.
"""
from __future__ import annotations

import re
from typing import Iterable

_ZIP_LOCATOR = re.compile(r"^(.*?\.zip)!(.*)$", re.IGNORECASE | re.DOTALL)
_ROW_LOCATOR = re.compile(r"^(.*)#row=(\d+)$", re.DOTALL)


def _basename(path: str) -> str:
    return re.split(r"[\\/]", path)[-1]


def _split_locator(locator: str) -> tuple[str, str]:
    """(private part, public name): ('/home/ana/', 'x.jpg'), ('/home/ana/', 'hoja.csv#row=7'),
    ('/home/ana/WhatsApp Chat with Ana.zip!fotos/', 'b.jpg'): a zip's name and its folders are
    private too (a messenger's chat export is a zip named after the contact who sent the photos)."""
    m = _ZIP_LOCATOR.match(locator)
    if m:
        member = m.group(2)
        cut = len(locator) - len(_basename(member))
        return locator[:cut], locator[cut:]
    m = _ROW_LOCATOR.match(locator)
    path, end = (m.group(1), m.end()) if m else (locator, len(locator))
    cut = len(path) - len(_basename(path))
    return locator[:cut], locator[cut:end]


def public_file_name(locator: str) -> str:
    """A locator without the volunteer's folders or zips: 'x.jpg', 'b.jpg', 'hoja.csv#row=7'."""
    return _split_locator(locator)[1]


def local_prefixes(locators: Iterable[str]) -> list[str]:
    """Private prefixes ('/home/ana/fotos/', 'lote.zip!a/') of every locator, longest first, to
    scrub from texts."""
    prefixes = {_split_locator(loc)[0] for loc in locators} - {""}
    return sorted(prefixes, key=lambda p: (-len(p), p))


def scrub(text: str | None, prefixes: list[str]) -> str | None:
    """Remove local folder and zip names from a reason text (ingest quotes earlier inputs' locators)."""
    if not text or not ("/" in text or "\\" in text or "!" in text):
        return text
    for p in prefixes:
        if p in text:
            text = text.replace(p, "")
    return text


def natural_key(text: str) -> str:
    """A string that sorts (code point or UTF-8 byte order, as SQLite does) like people sort file
    names: numbers by value ('foto 9' before 'foto 10'). Text runs end with NUL, so a shorter run
    sorts first; a number is its digit count (5 digits) then its digits."""
    out = []
    for k, t in enumerate(re.split(r"(\d+)", text)):
        if k % 2:
            d = str(int(t))
            out.append(f"{len(d):05d}{d}")
        else:
            out.append(t + "\0")
    return "".join(out)
