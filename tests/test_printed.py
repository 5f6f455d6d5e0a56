"""The printed acta read by OCR, on real scans: header fields as the strip shows them, party
lines that agree with the QR (never a wrong one), and a line whose digits and words disagree
left unread.

Three real scans are kept in tests/data/real_scans_ocr/ (source and MIT licence there); the 20
of /work/shared/data/ve2024/real_scans/ are used too when that folder is present.
"""
from __future__ import annotations

import csv
import io
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from archive import number_words as nw
from archive import ocr, printed

DATA = Path(__file__).parent / "data" / "real_scans_ocr"
SHARED = Path(os.environ.get("TESTIGO_REAL_SCANS", "/work/shared/data/ve2024/real_scans"))

needs_tesseract = pytest.mark.skipif(not ocr.available(), reason="tesseract-ocr with tesseract-ocr-spa not installed (make install)")

# What each strip prints, transcribed by a person from the image.
SHOWN = {
    "784821_007643_0134Acta0133.jpg": {
        "acta_code": "240111020.01.1.0001", "uuid": "e9c5f03a-2a0d-4546-b2e5-458bb5d54fd1",
        "printed_at": "2024-07-28T20:24:06", "estado": "EDO. LA GUAIRA", "municipio": "MP. VARGAS",
        "parroquia": "PQ. CARLOS SOUBLETTE", "centre_name": "ESCUELA NACIONAL 1136-3424 NUCLEO 370",
        "centre_address": "SECTOR LA PEDRERA IZQUIERDA CARRETERA PRINCIPAL PEDRERA 2. DERECHA VEREDA "
                          "CASAS. FRENTE CAMINO QUEBRADA CURUCUTI CALLE PRINCIPAL LA PEDRERA DIAGONAL AL "
                          "PUENTE VÍA TROPICANA CASA",
        "centre_code": "240111020", "electors": 891, "voters": (579, 579)},
    "784821_705855_0163Acta0162.jpg": {
        "acta_code": "240111026.02.1.0001", "uuid": "0f2c1044-bc55-46c0-ac48-dab0ab51fbe3",
        "printed_at": "2024-07-28T20:54:18", "estado": "EDO. LA GUAIRA", "municipio": "MP. VARGAS",
        "parroquia": "PQ. CARLOS SOUBLETTE", "centre_name": "DESARROLLO URBANISTICO MARE ABAJO",
        "centre_address": "URBANIZACION CALLE REAL DE MARE - EDO. VARGAS FRENTE AVENIDA PRINCIPAL LA "
                          "PLAYA. IZQUIERDA VEREDA VIVIENDAS. DERECHA SENDERO RIO FRENTE A LA PLAYA "
                          "ENTRE MARE ABAJO Y PLAYA VERDE EDIFICIO",
        "centre_code": "240111026", "electors": 582, "voters": (411, 411)},
    "017911_018022_0093Acta0093.jpg": {
        "acta_code": "040202001.01.1.0001", "uuid": "8017da8c-a868-461a-8602-89cec2a61a8b",
        "printed_at": "2024-07-28T19:03:30", "estado": "EDO. ARAGUA", "municipio": "MP. SANTIAGO MARIÑO",
        "parroquia": "PQ. SAMAN DE GUERE", "centre_name": "ESCUELA BASICA ROSA AMELIA FLORES",
        "centre_address": "SECTOR 19 DE ABRIL IZQUIERDA AVENIDA INTERCOMUNAL. DERECHA CALLE PARAMACONI. "
                          "FRENTE CALLE GONZALITO FRENTE AL ESTADIUM DEL BARRIO 19 DE ABRIL EDIFICIO",
        "centre_code": "040202001", "electors": 881, "voters": (483, 483)},
}
# fields the clean 200 dpi strip must give (not just "unread"): the header fields
MUST_READ = ("acta_code", "printed_at", "estado", "municipio", "parroquia", "centre_name",
             "centre_code", "electors")


def truth(folder: Path) -> dict[str, list[int]]:
    """file -> the QR's 38 counts and nulos, from the scans' truth.csv."""
    out = {}
    with open(folder / "truth.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["qr_text"]:
                _, counts, n1, _ = row["qr_text"].split("!")
                out[row["file"]] = [int(c) for c in counts.split(",")] + [int(n1)]
    return out


def _read(path: str) -> dict:
    return printed.read_printed(Path(path).read_bytes(), Path(path).name).to_dict()


@pytest.fixture(scope="module")
def readings():
    if not ocr.available():
        pytest.skip("tesseract-ocr with tesseract-ocr-spa not installed (make install)")
    names = sorted(SHOWN)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return {n: printed.Printed.from_dict(d) for n, d in zip(names, pool.map(_read, [str(DATA / n) for n in names]))}


# --- number words ------------------------------------------------------------------------------

def test_number_words_read_the_actas_spelling():
    assert nw.parse("Cero, Cinco, Siete, Nueve") == 579
    assert nw.parse("Cero, Cero, Uno, Tres") == 13
    assert nw.parse("Cero, Cero, Cero, Cero") == 0
    assert nw.spell(579) == "Cero, Cinco, Siete, Nueve"
    for n in (0, 7, 13, 334, 1017, 9999):
        assert nw.parse(nw.spell(n)) == n
    # OCR slips of one or two letters, when only one digit name is that near
    assert nw.parse("Tero, Coro, Uno, Trey") == 13
    # words that name no digit, or the wrong count of words, are no number
    assert nw.parse("Cero, Cero, Lino, Tres") is None      # uno and cinco are both two edits away
    assert nw.parse("Cero, Uno, Tres") is None
    assert nw.parse("") is None


def test_digits_and_words_must_agree():
    assert nw.agree("13", "Cero, Cero, Uno, Tres") == 13
    assert nw.agree("41017 413", "Cero, Cero, Uno, Tres") is None
    assert nw.agree("18", "Cero, Cero, Uno, Tres") is None
    assert nw.agree("o", "Cero, Cero, Cero, Cero") is None    # an "o" is not guessed as 0
    assert nw.agree("", "Cero, Cero, Cero, Cero") is None


# --- real scans ---------------------------------------------------------------------------------

def _norm_address(text: str) -> str:
    """Addresses compared word for word: OCR may drop a full stop, never a word."""
    return " ".join(re.sub(r"[.,]", " ", text).split())


@needs_tesseract
def test_header_fields_are_what_the_strip_shows(readings):
    for name, shown in SHOWN.items():
        header = readings[name].header
        for key, expected in shown.items():
            if key == "voters":
                got = (readings[name].voters["machine"].value, readings[name].voters["notebook"].value)
                assert all(g is None or g == e for g, e in zip(got, expected)), (name, key, got)
                continue
            value = header[key]
            if key == "centre_address" and value is not None:
                value, expected = _norm_address(value), _norm_address(expected)
            assert value is None or value == expected, (name, key, value, expected)
    clean = readings["784821_007643_0134Acta0133.jpg"]
    for key in MUST_READ + ("centre_address",):
        assert clean.header[key] is not None, key
    assert clean.voters["machine"].value == 579 or clean.voters["notebook"].value == 579
    read = sum(v is not None for r in readings.values() for k, v in r.header.items() if k in MUST_READ)
    assert read >= 0.8 * len(MUST_READ) * len(readings), read


@needs_tesseract
def test_party_lines_agree_with_the_qr(readings):
    qr = truth(DATA)
    total = 0
    for name, reading in readings.items():
        counts = qr[name][:38]
        assert len(reading.lines) == 38
        for card, (line, true) in enumerate(zip(reading.lines, counts), 1):
            assert line.value is None or line.value == true, (name, card, line)
        total += sum(line.value is not None for line in reading.lines)
        validos = reading.summary["validos"].value
        assert validos is None or validos == sum(counts), (name, validos)
        nulos = reading.summary["nulos"].value
        assert nulos is None or nulos == qr[name][38], (name, nulos)
    assert total >= 0.85 * 38 * len(readings), total   # most lines read, none wrong


@needs_tesseract
def test_a_line_whose_digits_and_words_disagree_is_unread(tmp_path):
    """MSV's line prints 13 in digits; the words of PODEMOS's line (2) are pasted over its words."""
    im = Image.open(DATA / "784821_007643_0134Acta0133.jpg")
    crafted = im.copy()
    crafted.paste(im.crop((355, 1650, 580, 1677)), (355, 1608))
    buf = io.BytesIO()
    crafted.save(buf, "JPEG", quality=95)
    reading = printed.read_printed(buf.getvalue(), "crafted.jpg")
    msv = reading.lines[4]
    assert msv.value is None, msv
    assert nw.parse(msv.words) == 2 or msv.words == ""     # the words as printed, not guessed
    podemos = reading.lines[5]
    assert podemos.value in (None, 2)
    assert sum(line.value is not None for line in reading.lines) >= 30


@needs_tesseract
@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "truth.csv").exists(), reason="the 20 real scans of /work/shared are not here")
def test_every_real_scan_no_wrong_line():
    qr = truth(SHARED)
    names = sorted(qr)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = dict(zip(names, pool.map(_read, [str(SHARED / n) for n in names])))
    read = 0
    for name, d in results.items():
        r = printed.Printed.from_dict(d)
        for card, (line, true) in enumerate(zip(r.lines, qr[name]), 1):
            assert line.value is None or line.value == true, (name, card, line)
        read += sum(line.value is not None for line in r.lines)
        code = r.header["acta_code"]
        assert code is None or code.split(".")[0] == qr_code(name), (name, code)
    assert read >= 0.8 * 38 * len(results)


def qr_code(name: str) -> str:
    with open(SHARED / "truth.csv", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["file"] == name)
    return row["qr_text"].split(".")[0]
