"""The header fields the acta prints once, read until they are sure: UUID, print time, places.

A count on the strip is printed twice (digits and words) and the acta code twice (the code and
the centre code); the UUID, the print time and the place names are printed once. Each is taken
only when several independent reads say the same thing, and only in the shape the paper gives
it: the UUID is 8-4-4-4-12 lowercase hex of version 4 (the council's are), the time a
``dd/mm/yyyy hh:mm:ss AM|PM``, a place one of the registry's names for the acta's centre.

The reads of one field are its line(s) cropped from two renderings of the strip (the page as
cleaned for the first pass, and the same page only scaled) at three sizes, all in one
Tesseract call with the English model, unconstrained: a glyph the model is unsure of comes out
as a character the pattern refuses (``¢``, ``O``, ``S``) rather than the nearest hex digit a
whitelist would force. Reads that do not fit the pattern are dropped; of the rest, at least
three must give the value and at most one another (each UUID line on its own). Measured on the
20 real scans (tests/test_printed_truth.py): no wrong UUID or time kept, where two agreeing
reads were not enough (a 'd' read '4' twice in six; with the Spanish model or a hex
whitelist, at every size).
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from datetime import date, datetime, timedelta

from PIL import Image

from . import ocr

PRINT_TIME = re.compile(r"(\d{2}/\d{2}/\d{4})\s+(\d{1,2}:\d{2}:\d{2})\s*([AP])\.?\s*M")
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
UUID_LINES = (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"), re.compile(r"[0-9a-f]{12}"))
DATE = re.compile(r"\d{2}/\d{2}/\d{4}")
TITLE = re.compile(r"escrut|Acta\s*d", re.I)
SCALES = (0.75, 1.0, 1.5)
LEAST = 3            # reads that must give the value ...
DISSENT = 1          # ... and reads that may give another (of 6 or 7)
LEFT = 0.33          # the logo and its rule sit left of this share of the width
ROW_INK = 120        # gray under this is ink when finding the text rows of the UUID
ROW_MIN = 8          # a text row is at least this many px high (page scale)
_STRAY = re.compile(r"[|\[\]'‘’ ]")   # the rule beside a line, and spaces, are not the UUID


def printed_at(text: str) -> str | None:
    """ISO local time from a read of the print-time line, or None."""
    m = PRINT_TIME.search(text)
    if not m:
        return None
    try:
        t = datetime.strptime(f"{m.group(1)} {m.group(2)} {m.group(3)}M", "%d/%m/%Y %I:%M:%S %p")
    except ValueError:
        return None
    return t.isoformat()


def agreed(values, least: int = LEAST, dissent: int = DISSENT) -> str | None:
    """The value ``least`` reads or more gave, when at most ``dissent`` reads gave another one
    (reads that gave nothing, None, are not counted either way)."""
    got = Counter(v for v in values if v is not None)
    if not got:
        return None
    value, n = got.most_common(1)[0]
    return value if n >= least and sum(got.values()) - n <= dissent else None


def rows(im: Image.Image, box: tuple[int, int, int, int]) -> list[tuple[int, int]]:
    """The text rows (top, bottom) inside ``box``: runs of pixel rows that hold ink."""
    x0, y0, x1, y1 = box
    if x1 - x0 < 8 or y1 - y0 < ROW_MIN:
        return []
    ink = im.crop(box).point(lambda v: 255 if v < ROW_INK else 0)
    profile = ink.resize((1, ink.height), Image.BOX)
    out, start = [], None
    for y in range(ink.height + 1):
        on = y < ink.height and profile.getpixel((0, y)) > 8
        if on and start is None:
            start = y
        elif not on and start is not None:
            if y - start >= ROW_MIN:
                out.append((y0 + start, y0 + y))
            start = None
    return out


def _variants(renderings, box) -> list[Image.Image]:
    out = []
    for im in renderings:
        crop = im.crop(box)
        for s in SCALES:
            out.append(crop if s == 1.0 else crop.resize(
                (max(1, round(crop.width * s)), max(1, round(crop.height * s))), Image.LANCZOS))
    return out


def uuid(page: Image.Image, light: Image.Image, lines: list[ocr.Line]) -> str | None:
    """The UUID printed on the two lines above the print time, when every read agrees."""
    title = next((l for l in lines if TITLE.search(l.text)), None)
    when = next((l for l in lines if title is not None and l.top > title.bottom and DATE.search(l.text)), None)
    if title is None or when is None:
        return None
    x0, x1 = int(page.width * LEFT), min(page.width, when.right + 12)
    found = rows(light, (x0, title.bottom + 2, x1, when.top - 2))
    if len(found) < 3:          # the code, then the UUID's two lines
        return None
    boxes = [(x0, max(0, t - 6), x1, b + 6) for t, b in found[-2:]]
    first, second = (_variants((page, light), b) for b in boxes)
    texts = [_STRAY.sub("", t) for t in ocr.read_crops(first + second, None, ocr.HEADER_LANG, sep="")]
    n = len(first)
    parts = [agreed(t if shape.fullmatch(t) else None for t in half)
             for shape, half in zip(UUID_LINES, (texts[:n], texts[n:]))]
    return parts[0] + parts[1] if parts[0] and parts[1] else None


def print_time(page: Image.Image, light: Image.Image, lines: list[ocr.Line], first: str | None,
               election_date: str | None = None) -> str | None:
    """The print time, when the first pass and the rereads of its line agree (``agreed``).

    A read dated neither election day nor the next (actas printed after midnight) is a misread
    date ('26/07' for '28/07') and is not counted."""
    line = next((l for l in lines if PRINT_TIME.search(l.text) or DATE.search(l.text)), None)
    if line is None:
        return None
    pad = max(4, (line.bottom - line.top) // 3)
    box = (max(0, line.left - 2 * pad), max(0, line.top - pad), min(page.width, line.right + 2 * pad),
           line.bottom + pad)
    texts = ocr.read_crops(_variants((page, light), box), None, ocr.HEADER_LANG, sep=" ")
    reads = [first, *(printed_at(t) for t in texts)]
    if election_date:
        day = date.fromisoformat(election_date)
        days = {day.isoformat(), (day + timedelta(days=1)).isoformat()}
        reads = [r if r and r[:10] in days else None for r in reads]
    return agreed(reads)


# --- places: one of the registry's names ------------------------------------------------------

def fold(text: str) -> tuple[str, ...]:
    """A place name's words, upper case, accents and punctuation off ("MP.FRANCISCO" = "MP. FRANCISCO")."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c)).upper()
    return tuple(re.sub(r"[^A-Z0-9]+", " ", text).split())


def place(key: str, value: str | None, centro: int | None, election) -> str | None:
    """``value`` as printed when the registry names the acta's place so (word for word, accents
    and punctuation aside), else None: a misread letter ("LA GUAJIRA") or a name cut at a line
    break ("MP. BOLIVARIANO" of "MP. BOLIVARIANO LIBERTADOR") is no name. A centre outside the
    registry is checked against every name the registry has for that level."""
    if not value or election is None:
        return None
    names = {"estado": election.estados, "municipio": election.municipios, "parroquia": election.parroquias}[key]
    where = election.centros.get(centro) if centro is not None else None
    if where is not None:
        k = {"estado": where.cod_edo, "municipio": (where.cod_edo, where.cod_mun),
             "parroquia": (where.cod_edo, where.cod_mun, where.cod_par)}[key]
        wanted = {fold(names.get(k, ""))}
    else:
        wanted = {fold(n) for n in names.values()}
    return value if fold(value) in wanted else None
