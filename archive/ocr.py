"""Tesseract on an acta strip: the words it prints, with where each one sits.

Tesseract is reached through pytesseract, which runs Debian's own ``tesseract`` binary (the
same one a person would run by hand, and the baseline of benchmarks/printed.py) with Debian's
Spanish model: nothing to compile, one engine on the machine. A strip costs one full pass over
the printed part (above the members' signatures) and at most two small batched passes for the
cells the first pass did not read cleanly (each batch is one call: crops stacked on one page).

Thermal paper is faint and its tables are boxed: the ruling lines glue themselves to digits
("|579" -> "875"). The page is cleaned first: long horizontal and vertical rules are painted
white (rows and columns almost all ink; Pillow only), then a 3x3 median takes JPEG speckle off the letters (11 to 35% more
number words read on the compressed scans), then the page is scaled so the text is
about twice the size of a 200 dpi scan, where Tesseract's Spanish model reads it best.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from PIL import Image, ImageFilter, ImageOps

from .errors import TestigoError

PRINTED_SHARE = 0.62     # the printed fields (header to summary) sit in the top ~55% of a strip
TARGET_WIDTH = 1256      # px the strip is scaled to: twice a 628 px wide (200 dpi) strip
INK = 170                # gray levels under this are ink (thermal print is gray, not black)
RULE_INK_SHARE = 0.8     # a row of a slice (a column of a band) this much ink is a ruling line
RULE_SLICES = 6          # vertical slices of the page judged apart (skewed scans)
RULE_BAND_SHARE = 0.19   # band height (share of width) that only a ruling line fills top to bottom
LANG = "spa"
HEADER_LANG = "eng"      # Debian's tesseract-ocr ships it: reads the UUID and the print time's digits best
DIGITS = "0123456789"
HEX = "0123456789abcdef-"


class OcrUnavailable(TestigoError):
    """Tesseract (or its Spanish model) is not installed."""


@dataclass
class Word:
    text: str
    left: int
    top: int
    right: int
    bottom: int
    conf: float = -1.0


@dataclass
class Line:
    """One printed line as Tesseract grouped it, words left to right (page coordinates)."""

    words: list[Word] = field(default_factory=list)
    block: int = 0
    par: int = 0

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def top(self) -> int:
        return min(w.top for w in self.words)

    @property
    def bottom(self) -> int:
        return max(w.bottom for w in self.words)

    @property
    def conf(self) -> float:
        """Tesseract's mean confidence over the line's words (0-100)."""
        return sum(w.conf for w in self.words) / len(self.words)

    @property
    def left(self) -> int:
        return min(w.left for w in self.words)

    @property
    def right(self) -> int:
        return max(w.right for w in self.words)


def _env() -> dict:
    """One thread per Tesseract: `testigo read` already runs one process per core."""
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}


def _pytesseract():
    import pytesseract
    return pytesseract


def available() -> bool:
    """Whether Tesseract and its Spanish model can be used here."""
    try:
        return {LANG, HEADER_LANG} <= set(_pytesseract().get_languages(config=""))
    except Exception:
        return False


def version() -> str:
    """Tesseract's version, recorded with every reading (a new engine may read differently)."""
    try:
        return str(_pytesseract().get_tesseract_version())
    except Exception as e:
        raise OcrUnavailable(f"Tesseract is not installed ({e}); install Debian's tesseract-ocr and "
                             "tesseract-ocr-spa and tesseract-ocr-eng (`make install`)") from None


def remove_rules(im: Image.Image) -> Image.Image:
    """The page with long ruling lines painted white (text untouched: no letter is that long).

    A rule is a row (or column) that is dark almost end to end, where even bold capitals leave
    gaps between letters. Rows are judged in vertical slices of the page, so that a rule on a
    slightly skewed scan (one that climbs a few pixels across the strip) is still one row of
    each slice; columns are judged over bands taller than any letter."""
    im = im.convert("L")
    w, h = im.size
    ink = im.point(lambda v: 0 if v < INK else 255)
    out = im.copy()
    limit = 255 * (1 - RULE_INK_SHARE)   # a mean of the 0/255 ink map under this: mostly ink
    step = max(1, w // RULE_SLICES)
    found: dict[int, int] = {}
    for x0 in range(0, w, step):
        x1 = min(w, x0 + step)
        if ink.crop((x0, 0, x1, h)).resize((1, 1), Image.BOX).getpixel((0, 0)) < 128:
            continue   # mostly ink: the scanner's dark background beside the strip, not paper
        rows = ink.crop((x0, 0, x1, h)).resize((1, h), Image.BOX).load()
        white_row = Image.new("L", (x1 - x0, 3), 255)
        for y in range(h):
            if rows[0, y] < limit:
                out.paste(white_row, (x0, max(0, y - 1)))
                found[y] = found.get(y, 0) + 1
    # a rule found in two slices is a table's rule: gone across the page (the slices at the
    # table's edges hold margin too), two rows either side for the skew
    white_rule = Image.new("L", (w, 5), 255)
    for y, n in found.items():
        if n >= 2:
            out.paste(white_rule, (0, max(0, y - 2)))
    band = max(8, int(w * RULE_BAND_SHARE))
    white_col = Image.new("L", (3, band), 255)
    for y0 in range(0, h, band // 2):
        cols = ink.crop((0, y0, w, min(h, y0 + band))).resize((w, 1), Image.BOX).load()
        for x in range(w):
            if cols[x, 0] < limit:
                out.paste(white_col, (max(0, x - 1), y0))
    return out


def _top(im: Image.Image) -> Image.Image:
    im = ImageOps.grayscale(im) if im.mode != "L" else im
    w, h = im.size
    return im.crop((0, 0, w, max(1, min(h, int(h * PRINTED_SHARE), int(w * 7)))))


def _scaled(im: Image.Image) -> Image.Image:
    return im.resize((TARGET_WIDTH, max(1, round(im.size[1] * TARGET_WIDTH / im.size[0]))), Image.LANCZOS)


def prepare(im: Image.Image) -> Image.Image:
    """The printed part of the strip, cleaned and scaled for Tesseract."""
    clean = remove_rules(_top(im)).filter(ImageFilter.MedianFilter(3))   # JPEG's speckle off the letters
    return _scaled(clean)


def light(im: Image.Image) -> Image.Image:
    """The same part as ``prepare``, same size, only scaled: a second rendering whose errors are
    not the cleaned page's (the median filter closes a thin 'c' into an 'o' now and then)."""
    return _scaled(_top(im))


def _data(im: Image.Image, config: str, lang: str = LANG) -> dict:
    pt = _pytesseract()
    try:
        return pt.image_to_data(im, lang=lang, config=config, output_type=pt.Output.DICT,
                                timeout=120)
    except pt.TesseractNotFoundError:
        raise OcrUnavailable("Tesseract is not installed; install Debian's tesseract-ocr and "
                             "tesseract-ocr-spa and tesseract-ocr-eng (`make install`)") from None
    except pt.TesseractError as e:
        raise OcrUnavailable(f"Tesseract failed ({e}); are tesseract-ocr-spa and tesseract-ocr-eng "
                             "installed?") from None


def lines_of(data: dict) -> list[Line]:
    """Tesseract's words grouped into lines, top to bottom."""
    groups: dict[tuple, Line] = {}
    for i, text in enumerate(data["text"]):
        text = (text or "").strip()
        if not text:
            continue
        key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        line = groups.setdefault(key, Line(block=key[0], par=key[1]))
        l, t = data["left"][i], data["top"][i]
        line.words.append(Word(text, l, t, l + data["width"][i], t + data["height"][i],
                               float(data["conf"][i])))
    out = [l for l in groups.values() if l.words]
    for l in out:
        l.words.sort(key=lambda w: w.left)
    return sorted(out, key=lambda l: (l.top, l.left))


def read_lines(page: Image.Image) -> list[Line]:
    """The first pass: every printed line of a prepared page."""
    return lines_of(_data(page, "--psm 4"))


def reread(page: Image.Image, boxes: list[tuple[int, int, int, int]], whitelist: str,
           scale: float = 1.0) -> list[str]:
    """The text of each box of ``page`` read again alone, with only ``whitelist`` characters.

    All boxes go in one Tesseract call: each crop is pasted on its own row of a white sheet,
    and the words found are given back to the crop whose row they sit in ("" when none)."""
    if not boxes:
        return []
    crops = [page.crop(b) for b in boxes]
    if scale != 1.0:
        crops = [c.resize((max(1, round(c.size[0] * scale)), max(1, round(c.size[1] * scale))), Image.LANCZOS)
                 for c in crops]
    return read_crops(crops, whitelist)


def read_crops(crops: list[Image.Image], whitelist: str | None = None, lang: str = LANG,
               sep: str | None = None) -> list[str]:
    """The text of each crop (one line each), all in one Tesseract call (``reread``'s sheet).

    ``whitelist`` None: the model's whole alphabet, so a glyph it is unsure of comes out as
    some other character (a read a fixed pattern then refuses) rather than the nearest allowed
    one. ``lang``: the model ('eng' reads the UUID's hex better than 'spa')."""
    if not crops:
        return []
    gap = max(c.size[1] for c in crops)
    width = max(c.size[0] for c in crops) + 2 * gap
    rows, y = [], gap
    for c in crops:
        rows.append((y, y + c.size[1]))
        y += c.size[1] + gap
    sheet = Image.new("L", (width, y), 255)
    for c, (top, _) in zip(crops, rows):
        sheet.paste(c, (gap, top))
    config = "--psm 6" + (f" -c tessedit_char_whitelist={whitelist}" if whitelist else "")
    data = _data(sheet, config, lang)
    texts: list[list[tuple[int, str]]] = [[] for _ in crops]
    for i, text in enumerate(data["text"]):
        text = (text or "").strip()
        if not text:
            continue
        mid = data["top"][i] + data["height"][i] / 2
        for k, (top, bottom) in enumerate(rows):
            if top - gap / 2 <= mid <= bottom + gap / 2:
                texts[k].append((data["left"][i], text))
                break
    if sep is None:
        sep = "" if whitelist in (DIGITS, HEX) else " "   # a number or a UUID is one token
    return [sep.join(t for _, t in sorted(words)) for words in texts]
