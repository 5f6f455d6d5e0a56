"""The printed header, voters and summary of every real scan against what a person reads on it.

tests/data/printed_truth/truth.json holds, for the 20 real scans of
/work/shared/data/ve2024/real_scans (source and licence there and in that folder), the acta
code, UUID, print time, places, centre name and code, electors, voters (machine, notebook) and
the eight summary figures, transcribed from the images. Every field the reader gives must equal
it (a field not read is fine, a wrong one never is), and each field must be read at least as
often as measured when this was written (floors a scan or two under it). Without the shared
folder, the three scans copied into tests/data/real_scans_ocr are read.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from archive import ocr, printed

HERE = Path(__file__).parent / "data"
TRUTH = json.loads((HERE / "printed_truth" / "truth.json").read_text(encoding="utf-8"))["scans"]
SHARED = Path(os.environ.get("TESTIGO_REAL_SCANS", "/work/shared/data/ve2024/real_scans"))
LOCAL = HERE / "real_scans_ocr"
HEADER = ("acta_code", "uuid", "printed_at", "estado", "municipio", "parroquia", "centre_name", "centre_code",
          "electors")
SUMMARY = ("votos", "validos", "parciales", "nulos", "vacios", "opciones_validas", "opciones_nulas",
           "opciones_vacias")
# fields read of the 20 scans (measured: acta_code 13, uuid 5, printed_at 18, estado 17, municipio 19,
# parroquia 19, centre_name 19, centre_code 20, electors 11; voters 19 of 40; summary 81 of 160)
FLOORS = {"acta_code": 12, "uuid": 4, "printed_at": 17, "estado": 16, "municipio": 18, "parroquia": 18,
          "centre_name": 18, "centre_code": 19, "electors": 10, "voters": 17, "summary": 75}

pytestmark = pytest.mark.skipif(not ocr.available(), reason="tesseract-ocr with its spa and eng models not installed")


def _scans() -> dict[str, Path]:
    if all((SHARED / n).exists() for n in TRUTH):
        return {n: SHARED / n for n in sorted(TRUTH)}
    return {n: LOCAL / n for n in sorted(TRUTH) if (LOCAL / n).exists()}


def _read(path: str) -> dict:
    return printed.read_printed(Path(path).read_bytes(), Path(path).name).to_dict()


@pytest.fixture(scope="module")
def readings() -> dict[str, dict]:
    scans = _scans()
    assert len(scans) >= 3
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(zip(scans, pool.map(_read, [str(p) for p in scans.values()])))


def _fields(d: dict) -> dict:
    out = {k: d["header"][k] for k in HEADER}
    out.update({f"voters_{k}": c["value"] for k, c in d["voters"].items()})
    out.update({k: c["value"] for k, c in d["summary"].items()})
    return out


def _truth(name: str) -> dict:
    t = TRUTH[name]
    out = {k: t[k] for k in HEADER}
    out.update({f"voters_{k}": v for k, v in t["voters"].items()})
    out.update(t["summary"])
    return out


def test_the_truth_file_holds_together():
    """The transcription agrees with itself (votos = válidos + nulos, a version 4 UUID, the centre
    code is the acta code's), so a slip in it would show."""
    import re
    assert len(TRUTH) == 20
    for name, t in TRUTH.items():
        s = t["summary"]
        assert s["votos"] == s["validos"] + s["nulos"] == t["voters"]["machine"], name
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", t["uuid"]), name
        assert t["acta_code"][:9] == t["centre_code"], name
    assert all((LOCAL / n).exists() for n in ("784821_007643_0134Acta0133.jpg", "784821_705855_0163Acta0162.jpg",
                                              "017911_018022_0093Acta0093.jpg"))


def test_no_field_read_is_wrong(readings):
    wrong = [(name, k, got, want) for name, d in readings.items()
             for k, want in _truth(name).items() if (got := _fields(d).get(k)) is not None and got != want]
    assert wrong == []


def test_each_field_is_read_as_often_as_measured(readings):
    if len(readings) < len(TRUTH):
        pytest.skip("the floors are for the 20 scans of /work/shared/data/ve2024/real_scans")
    read = {k: sum(d["header"][k] is not None for d in readings.values()) for k in HEADER}
    read["voters"] = sum(c["value"] is not None for d in readings.values() for c in d["voters"].values())
    read["summary"] = sum(c["value"] is not None for d in readings.values() for c in d["summary"].values())
    low = {k: (read[k], floor) for k, floor in FLOORS.items() if read[k] < floor}
    assert low == {}, low
