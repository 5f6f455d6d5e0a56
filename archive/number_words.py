"""Spanish number words, as the acta prints them: each digit spelled ("Cero, Cinco, Siete, Nueve").

The printed acta repeats every count in words, one word per digit, so that a person (or an OCR)
reads each number twice by two independent routes. This module turns such words back into a
number. OCR of thermal paper drops or swaps a letter now and then ("Tero", "Sels", "Lino"): a word
at most two edits (one for short words) from a digit name, and nearer to it than to any other,
is taken as that digit; anything else is no number at all.
A number from words is only worth taking when it agrees with the digits printed beside it: that
agreement is the caller's check (``agree``), never skipped.
"""
from __future__ import annotations

import re
import unicodedata

DIGITS = ("cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve")
WORD_OF = dict(zip(range(10), DIGITS))
MAX_EDITS = 2          # letters an OCR may get wrong in one digit word ("Lino")
_MIN_FUZZY_LEN = 3     # words shorter than this must match exactly ("un" is not "uno")


def fold(word: str) -> str:
    """Lower case, accents and anything that is not a letter removed ("Cero," -> "cero")."""
    word = unicodedata.normalize("NFKD", word)
    return "".join(c for c in word.lower() if "a" <= c <= "z")


def _distance(a: str, b: str) -> int:
    """Levenshtein distance (the words are short: a small table is enough)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def digit_of(word: str) -> int | None:
    """The digit a word names, tolerating one OCR slip when only one digit name is that close."""
    w = fold(word)
    if not w:
        return None
    if w in DIGITS:
        return DIGITS.index(w)
    if len(w) < _MIN_FUZZY_LEN:
        return None
    # the nearest name, if near enough and nearer than any other (the names are >= 3 edits apart)
    dist = sorted((_distance(w, name), d) for d, name in enumerate(DIGITS))
    (best, digit), (second, _) = dist[0], dist[1]
    edits = 1 if len(w) < 4 else MAX_EDITS
    return digit if best <= edits and second > best else None


def split_words(text: str) -> list[str]:
    """The words of a "Letras" cell: commas, spaces and OCR's stray marks separate them."""
    return [w for w in re.split(r"[\s,.;:]+", text) if fold(w)]


def parse(text: str, width: int | None = 4) -> int | None:
    """The number spelled digit by digit in ``text``, or None when any word is not a digit name
    or (with ``width``) the count of words is not ``width`` (the acta prints four)."""
    words = split_words(text)
    if not words or (width is not None and len(words) != width):
        return None
    digits = [digit_of(w) for w in words]
    if any(d is None for d in digits):
        return None
    return int("".join(str(d) for d in digits))


def spell(number: int, width: int = 4) -> str:
    """The acta's spelling of ``number`` ("Cero, Cinco, Siete, Nueve" for 579)."""
    if number < 0 or len(str(number)) > width:
        raise ValueError(f"{number} does not fit in {width} digit words")
    return ", ".join(WORD_OF[int(c)].capitalize() for c in str(number).zfill(width))


def parse_digits(text: str) -> int | None:
    """The number in a "NRO." cell: digits only (OCR's "o" for 0 is not guessed), else None."""
    t = text.strip().strip("|[]{}()—-_.,'\"")
    return int(t) if re.fullmatch(r"\d{1,4}", t) else None


def agree(digits_text: str, words_text: str) -> int | None:
    """The number when the printed digits and the printed words say the same; None otherwise."""
    a, b = parse_digits(digits_text), parse(words_text)
    return a if a is not None and a == b else None
