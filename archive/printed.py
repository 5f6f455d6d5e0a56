"""What the acta prints above its QR, read by OCR: header, voters, the 38 party lines, the summary.

The strip is designed to be checked by people, and it says every count twice: in digits and in
words ("13  Cero, Cero, Uno, Tres"). A count is taken only when both say the same number; a
line whose two prints disagree (or cannot be read) is recorded as unread, never guessed. The
acta code is printed twice too (the code, and the centre code under the address); the electors
are read twice at two scales and kept only when both reads agree; the UUID, the print time and
the place names, printed once, are read until sure (``archive/printed_header.py``).

``read_printed(data)`` gives a :class:`Printed`; ``Printed.to_dict()`` is what the workdir keeps
and the bundle publishes. Cross-checks against the QR and the sheet live in
``archive/printed_checks.py``.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path

import datasets
from PIL import Image

from . import number_words as nw
from . import ocr, printed_header
from .election import load as load_election
from .errors import DefinitionError
from .image import open_image, orientation, upright

ACTA_CODE = re.compile(r"(\d{9})\.(\d{2})\.(\d)\.(\d{4})")
PRINT_TIME = printed_header.PRINT_TIME
ELECTORS = re.compile(r"(\d[\d.]*)\s*Electore", re.I)
HEADER_FIELDS = ("acta_code", "uuid", "printed_at", "estado", "municipio", "parroquia",
                 "centre_name", "centre_address", "centre_code", "electors")
NAME_CONF = 70             # Tesseract's mean confidence under which a printed name is not kept
LABEL_MATCH = 0.75         # how like a summary label a row's label must be
SIGLA_MATCH = 0.5          # how like the printed sigla a line's first words must be ("PY" for PV)


@lru_cache(maxsize=None)
def layout(election_id: str = "ve-2024") -> dict:
    """The printed acta's layout of an election (datasets/<id>/acta_print.json)."""
    path = Path(datasets.__file__).parent / election_id / "acta_print.json"
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class Count:
    """One printed count: its digits and words as read, and the number when they agree."""

    digits: str = ""
    words: str = ""
    value: int | None = None

    @property
    def read(self) -> bool:
        return self.value is not None


@dataclass
class Printed:
    """A reading of the printed acta. Fields not read are None; ``lines`` has one Count per card."""

    header: dict = field(default_factory=lambda: dict.fromkeys(HEADER_FIELDS))
    voters: dict = field(default_factory=dict)      # machine / notebook -> Count
    lines: list = field(default_factory=list)       # 38 Counts, in card order
    summary: dict = field(default_factory=dict)     # votos, validos, ... -> Count
    engine: str = ""

    def line_values(self) -> list[int | None]:
        return [c.value for c in self.lines]

    def summary_values(self) -> dict[str, int | None]:
        return {k: c.value for k, c in self.summary.items()}

    @property
    def complete(self) -> bool:
        """Every party line and every summary figure read, and they add up (válidos = the sum)."""
        values = self.line_values()
        summary = self.summary_values()
        return (bool(values) and all(v is not None for v in values)
                and bool(summary) and all(v is not None for v in summary.values())
                and sum(values) == summary.get("validos"))

    def to_dict(self) -> dict:
        return {"header": self.header,
                "voters": {k: asdict(c) for k, c in self.voters.items()},
                "lines": [asdict(c) for c in self.lines],
                "summary": {k: asdict(c) for k, c in self.summary.items()},
                "engine": self.engine}

    @classmethod
    def from_dict(cls, d: dict) -> "Printed":
        return cls(header={**dict.fromkeys(HEADER_FIELDS), **d.get("header", {})},
                   voters={k: Count(**v) for k, v in d.get("voters", {}).items()},
                   lines=[Count(**v) for v in d.get("lines", [])],
                   summary={k: Count(**v) for k, v in d.get("summary", {}).items()},
                   engine=d.get("engine", ""))


# --- finding the count in a line --------------------------------------------------------------

def _words_run(line: ocr.Line) -> int | None:
    """Index of the first of the trailing words that spell a number (3 or 4 digit names)."""
    words = line.words
    k = len(words)
    while k > 0 and nw.digit_of(words[k - 1].text) is not None and len(words) - k < 4:
        k -= 1
    return k if len(words) - k >= 3 else None


@dataclass
class _Row:
    """A line that prints a count: label words, the digits cell, the words cell."""

    line: ocr.Line
    label: list[str]
    digits: str
    words: str
    digits_box: tuple[int, int, int, int]
    words_box: tuple[int, int, int, int]


def _row(line: ocr.Line, page_width: int) -> _Row | None:
    k = _words_run(line)
    if k is None or k == 0:
        return None
    words = line.words
    first = words[k]
    digits_word = words[k - 1]
    before = words[k - 2].right if k >= 2 else int(page_width * 0.4)
    pad = max(4, (line.bottom - line.top) // 3)
    digits_box = (max(before + 2, digits_word.left - 3 * pad), max(0, line.top - pad),
                  first.left - 2, line.bottom + pad)
    if digits_box[2] - digits_box[0] < 4:
        digits_box = (digits_word.left - pad, max(0, line.top - pad), digits_word.right + pad, line.bottom + pad)
    words_box = (first.left - pad, max(0, line.top - pad), min(page_width, line.right + pad), line.bottom + pad)
    return _Row(line, [w.text for w in words[:k - 1]], digits_word.text,
                " ".join(w.text for w in words[k:]), digits_box, words_box)


# --- header -------------------------------------------------------------------------------------

def _after(text: str, label: str) -> str | None:
    m = re.match(rf"\W*{label}\w*\s+(.+)", text, re.I)
    return m.group(1).strip() if m else None


PLACE_PREFIX = {"estado": "EDO.", "municipio": "MP.", "parroquia": "PQ."}


def _place(key: str, text: str) -> str:
    """A place name with the council's fixed prefix spelled as printed ("PO." / "PQ:" -> "PQ.").

    Only the prefix is mended: it is the same on every acta; the name itself is kept as read."""
    text = _clean(text)
    prefix = PLACE_PREFIX[key]
    m = re.match(r"([A-Z]{2,3})\s*[.:,;]?\s+(.+)", text)
    if m and key != "estado" and SequenceMatcher(None, m.group(1), prefix[:-1]).ratio() >= 0.5:
        return f"{prefix} {m.group(2)}"
    if key == "estado" and text.upper().startswith(("EDO", "ED0")):
        rest = re.sub(r"^[A-Z0]{3}[.:,;]?\s*", "", text)
        return f"{prefix} {rest}"
    return text


_printed_at = printed_header.printed_at


def _header(lines: list[ocr.Line], header: dict) -> dict:
    """Header fields from the lines above the voters' table; returns where things were found."""
    where: dict = {}
    parroquia_at = centre_code_at = None
    for i, line in enumerate(lines):
        text = line.text
        if header["acta_code"] is None and (m := ACTA_CODE.search(text.replace(" ", ""))):
            header["acta_code"] = m.group(0)
            where["acta_code"] = i
        if header["printed_at"] is None and (p := _printed_at(text)):
            header["printed_at"] = p
            where["printed_at"] = i
        for key, label in (("estado", "Estado"), ("municipio", "Municipio"), ("parroquia", "Parroquia")):
            if header[key] is None and (v := _after(text, label)):
                header[key] = _place(key, v) if line.conf >= NAME_CONF else None
                if key == "parroquia":
                    parroquia_at = i
        if parroquia_at is not None and i > parroquia_at and re.fullmatch(r"\W*\d{9}\W*", text):
            header["centre_code"] = re.sub(r"\D", "", text)
            centre_code_at = i
        if (m := ELECTORS.search(text)) and header["electors"] is None:
            digits = m.group(1).replace(".", "")
            header["electors"] = int(digits) if digits.isdigit() else None
            if centre_code_at is None and parroquia_at is not None:
                centre_code_at = i
            break
    if parroquia_at is not None and centre_code_at is not None and centre_code_at > parroquia_at + 1:
        name, address = _split_centre(lines[parroquia_at + 1:centre_code_at])
        header["centre_name"], header["centre_address"] = name, address
    return where


def _split_centre(lines: list[ocr.Line]) -> tuple[str | None, str | None]:
    """The centre's name and address: two paragraphs, told apart by the wider gap between them."""
    if not lines:
        return None, None
    if min(l.conf for l in lines) < NAME_CONF:
        return None, None     # a cut or smudged strip: no name is better than a wrong one
    gaps = [b.top - a.bottom for a, b in zip(lines, lines[1:])]
    if not gaps:
        return _clean(lines[0].text), None
    widest = max(range(len(gaps)), key=lambda i: gaps[i])
    others = sorted(g for i, g in enumerate(gaps) if i != widest)
    typical = others[len(others) // 2] if others else 0
    if gaps[widest] < typical * 1.35 + 4:
        return _clean(" ".join(l.text for l in lines)), None
    name = " ".join(l.text for l in lines[:widest + 1])
    address = " ".join(l.text for l in lines[widest + 1:])
    return _clean(name), _clean(address)


def _clean(text: str) -> str:
    """OCR's stray marks at the ends of a printed name dropped; inner punctuation kept."""
    return re.sub(r"\s+", " ", text).strip(" |[]{}¡!_—-'\"")


# --- the tables ----------------------------------------------------------------------------------

def _sigla_score(label: list[str], sigla: str) -> float:
    text = re.sub(r"[^A-Z ]", "", " ".join(label).upper()).strip()
    if not text:
        return 0.0
    return SequenceMatcher(None, text, sigla).ratio()


def _party_score(r: _Row, card: dict) -> float:
    """How surely a row is a card's line: its printed party code equal (2), its sigla alike (<= 1)."""
    code = r.label[-1] if r.label else ""
    s = 0.0
    if code.strip("—-|.").isdigit() and re.sub(r"\D", "", code) == str(card["code"]):
        s += 2.0
    ratio = _sigla_score(r.label[:-1] if len(r.label) > 1 else r.label, card["sigla"])
    return s + (ratio if ratio >= SIGLA_MATCH else 0.0)


def _label_score(r: _Row, label: str) -> float:
    """How alike a row's printed label and a summary label are (0 below LABEL_MATCH)."""
    ratio = SequenceMatcher(None, nw.fold(" ".join(r.label)), nw.fold(label)).ratio()
    return ratio if ratio >= LABEL_MATCH else 0.0


def _assign_party_rows(rows: list[_Row], cards: list[dict]) -> dict[int, _Row]:
    return _assign(rows, cards, _party_score)


def _assign(rows: list, slots: list, score) -> dict[int, "_Row"]:
    """Each row to its slot (index), in order, only where the row says which slot it is.

    An alignment (like a diff) of the rows read against the slots printed (the 38 party lines,
    the 8 summary lines) that keeps their order and maximises the evidence (``score``): a
    missed or extra line shifts nothing, and a row like two labels goes to the one in order."""
    n, m = len(rows), len(slots)
    sc = [[score(r, c) for c in slots] for r in rows]
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            take = sc[i][j] + best[i + 1][j + 1] if sc[i][j] > 0 else -1.0
            best[i][j] = max(take, best[i + 1][j], best[i][j + 1])
    out, i, j = {}, 0, 0
    while i < n and j < m:
        if sc[i][j] > 0 and best[i][j] == sc[i][j] + best[i + 1][j + 1]:
            out[j] = rows[i]
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return out


def _voters_key(label: list[str]) -> str | None:
    text = nw.fold(" ".join(label))
    if "maquina" in text or "quina" in text:
        return "machine"
    if "cuaderno" in text or "uaderno" in text:
        return "notebook"
    return None


# --- the whole reading ---------------------------------------------------------------------------

def parse(lines: list[ocr.Line], page_width: int, election_id: str = "ve-2024") -> tuple[Printed, dict]:
    """A Printed from the OCR's lines (first pass only), plus the rows that hold counts (for rereads)."""
    lay = layout(election_id)
    p = Printed()
    _header(lines, p.header)
    rows = [(i, r) for i, line in enumerate(lines) if (r := _row(line, page_width))]
    table_start = next((i for i, l in enumerate(lines)
                        if re.search(r"Sigla|C[oó]digo|NICOLAS|MADURO", l.text, re.I)), None)
    summary_start = next((i for i, l in enumerate(lines) if re.search(r"Resumen", l.text, re.I)), None)
    voters, party, summary_rows = {}, [], []
    for i, r in rows:
        if table_start is not None and i < table_start:
            if (k := _voters_key(r.label)) and k not in voters:
                voters[k] = r
        elif summary_start is not None and i > summary_start:
            summary_rows.append(r)
        elif table_start is not None:
            party.append(r)
    by_card = _assign_party_rows(party, lay["lines"])
    keys = list(lay["summary"])
    summary = {keys[j]: r for j, r in _assign(summary_rows, [lay["summary"][k] for k in keys], _label_score).items()}
    found = {("voters", k): r for k, r in voters.items()}
    found.update({("summary", k): r for k, r in summary.items()})
    found.update({("line", j): r for j, r in by_card.items()})
    p.voters = {k: Count() for k in lay["voters"]}
    p.summary = {k: Count() for k in lay["summary"]}
    p.lines = [Count() for _ in lay["lines"]]
    for (kind, k), r in found.items():
        _slot(p, kind, k).__dict__.update(digits=r.digits, words=r.words, value=nw.agree(r.digits, r.words))
    return p, found


def _slot(p: Printed, kind: str, k) -> Count:
    return {"voters": p.voters, "summary": p.summary}[kind][k] if kind != "line" else p.lines[k]


def _twice(page, box, whitelist: str) -> str | None:
    """The text of ``box`` read at two scales: kept only when both reads say the same."""
    reads = [ocr.reread(page, [box], whitelist, scale=s)[0] for s in (1.0, 1.5)]
    return reads[0] if reads[0] and reads[0] == reads[1] else None


def _electors(page, lines) -> int | None:
    """The electors printed under the centre code, read twice (digits only) to be kept."""
    line = next((l for l in lines if ELECTORS.search(l.text)), None)
    if line is None:
        return None
    words = [w for w in line.words if re.search(r"\d", w.text)]
    if not words:
        return None
    pad = max(4, (line.bottom - line.top) // 3)
    box = (min(w.left for w in words) - 2 * pad, line.top - pad, max(w.right for w in words) + pad, line.bottom + pad)
    text = _twice(page, box, ocr.DIGITS)
    return int(text) if text and text.isdigit() and len(text) <= 4 else None


def read_image(im, election_id: str = "ve-2024") -> Printed:
    """Read an opened strip: one full OCR pass, then rereads of the cells that did not agree."""
    page = ocr.prepare(im)
    lines = ocr.read_lines(page)
    p, found = parse(lines, page.size[0], election_id)
    # the centre code printed under the address is the acta code's first 9 digits: the two
    # prints must agree, else neither is taken
    code, centre = p.header["acta_code"], p.header["centre_code"]
    if code and centre and code[:9] != centre:
        p.header["acta_code"] = p.header["centre_code"] = None
    misses = [(key, r) for key, r in found.items() if _slot(p, *key).value is None]
    if misses:
        digit_reads = ocr.reread(page, [r.digits_box for _, r in misses], ocr.DIGITS)
        for (key, r), digits in zip(misses, digit_reads):
            slot = _slot(p, *key)
            value = nw.agree(digits, r.words)
            if value is not None:
                slot.digits, slot.value = digits, value
    light = ocr.light(im)
    _reread_boxed(page, light, [(key, r) for key, r in misses if _slot(p, *key).value is None], p)
    p.header["uuid"] = printed_header.uuid(page, light, lines)
    election = _election(election_id)
    p.header["printed_at"] = printed_header.print_time(page, light, lines, p.header["printed_at"],
                                                       election.meta.get("date") if election else None)
    _places(p.header, election)
    if p.header["electors"] is not None and _electors(page, lines) != p.header["electors"]:
        p.header["electors"] = None   # one print only: the first read must be confirmed
    p.engine = f"tesseract {ocr.version()} {ocr.LANG}"
    return p


BOXED_SCALES = ((0, 1.0), (0, 2.0), (1, 2.0))   # (page or light rendering, scale) of a boxed cell


def _reread_boxed(page, light, misses, p: Printed) -> None:
    """The digits of a count whose words read but whose digits did not, read once more from the
    boxed cell at other renderings (the tables' 0 comes out 'o', '|' or '[e]' from its box):
    the count is kept when one of them says what the words say, as for any count."""
    if not misses:
        return
    crops = []
    for _, r in misses:
        for which, scale in BOXED_SCALES:
            c = (page, light)[which].crop(r.digits_box)
            crops.append(c if scale == 1.0 else c.resize((round(c.width * scale), round(c.height * scale)),
                                                          Image.LANCZOS))
    reads = ocr.read_crops(crops, ocr.DIGITS)
    k = len(BOXED_SCALES)
    for i, (key, r) in enumerate(misses):
        for digits in reads[i * k:(i + 1) * k]:
            value = nw.agree(digits, r.words)
            if value is not None:
                slot = _slot(p, *key)
                slot.digits, slot.value = digits, value
                break


def _election(election_id: str):
    try:
        return load_election(election_id)
    except DefinitionError:
        return None


def _places(header: dict, election) -> None:
    """Estado, municipio and parroquia kept only as the registry names the acta's centre."""
    code = header.get("acta_code") or header.get("centre_code")
    centro = int(code[:9]) if code else None
    for key in ("estado", "municipio", "parroquia"):
        header[key] = printed_header.place(key, header[key], centro, election)


def read_printed(data: bytes, name: str = "", election_id: str = "ve-2024") -> Printed:
    """Read the printed acta in a photo's bytes (JPEG/PNG)."""
    im = open_image(data, name)
    return read_image(upright(im, orientation(im)), election_id)
