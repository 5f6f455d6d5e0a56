"""archive.render: payloads from real rows fold back exactly; renders are deterministic."""
from __future__ import annotations

import csv
import random
import re
from pathlib import Path

import PIL
import pytest
from PIL import ImageStat

from archive import acta, render
from archive.render import KNOWN_PAYLOAD

SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "ve-2024" / "sample"
SAMPLE_SEED, SAMPLE_N = 2024, 40   # as stated in the sample's README.md
SAMPLE_LEVELS = ("mild", "moderate", "moderate")


def test_payload_for_row_folds_back_to_the_csv_numbers(election, csv_rows):
    rng = random.Random(5)
    rows = random.Random(1).sample(csv_rows, 400)
    split_seen = False
    for row in rows:
        p = render.payload_for_row(row, election, rng)
        a = acta.parse_payload(p, election)
        # the first trailing field is the row's nulos, as on real actas (issue 20)
        assert p.startswith(f"{int(row['CENTRO'])}.{int(row['MESA']):02d}.1.0001!")
        assert p.endswith(f"!{int(row['VOTOS_NULOS'])}!0")
        assert a.votes == {c.code: int(row[c.csv_column]) for c in election.candidates}
        assert a.validos == int(row["VOTOS_VALIDOS"]) and a.nulos == int(row["VOTOS_NULOS"])
        acta.validate(a, election)
        nm_cards = [n for n, card in zip(a.counts, election.cards) if card.candidate == "NM"]
        split_seen |= sum(1 for n in nm_cards if n) > 1
    assert split_seen   # votes really are spread over a candidate's cards, not all on one


def test_payload_for_row_is_deterministic(csv_rows, election):
    row = csv_rows[1234]
    a = render.payload_for_row(row, election, random.Random(9))
    assert render.payload_for_row(row, election, random.Random(9)) == a
    assert render.payload_for_row(row, election, random.Random(10)) != a


@pytest.mark.parametrize("level", list(render.LEVELS))
def test_render_is_deterministic(level, election):
    a = render.render_jpeg(KNOWN_PAYLOAD, seed=11, level=level, election=election)
    assert render.render_jpeg(KNOWN_PAYLOAD, seed=11, level=level, election=election) == a
    assert a[:3] == b"\xff\xd8\xff"
    img = render.render_acta(KNOWN_PAYLOAD, seed=11, degrade=level, election=election)
    assert render.render_acta(KNOWN_PAYLOAD, seed=11, degrade=level, election=election).tobytes() == img.tobytes()
    if level != "clean":
        assert render.render_jpeg(KNOWN_PAYLOAD, seed=12, level=level, election=election) != a


def test_degrade_does_what_the_level_says(election):
    page = render.render_page(KNOWN_PAYLOAD, election)
    assert render.degrade(page, "clean", 0).size == page.size
    small = render.degrade(page, {"scale": 0.5}, 0)
    assert small.size == (page.width // 2, round(page.height / 2))
    dark = render.degrade(page, {"dark": 0.8}, 0)
    assert ImageStat.Stat(dark.convert("L")).mean[0] < 0.5 * ImageStat.Stat(page.convert("L")).mean[0]
    with pytest.raises(ValueError):
        render.degrade(page, "blurry", 0)


def test_page_has_the_qr_at_the_bottom(election):
    page = render.render_page(KNOWN_PAYLOAD, election)
    assert page.height > page.width
    qr = render.qr_image(KNOWN_PAYLOAD)
    bottom = page.crop((0, int(page.height * 0.89), page.width, page.height))
    from pyzbar import pyzbar
    assert [s.data.decode() for s in pyzbar.decode(bottom)] == [KNOWN_PAYLOAD]
    assert qr.height <= page.height * 0.11


def test_render_sample_writes_images_and_manifest(tmp_path, election):
    rows = render.render_sample(tmp_path / "a", 14, election, seed=3, levels=("clean", "moderate"))
    files = sorted(p.name for p in (tmp_path / "a").glob("*.jpg"))
    assert len(rows) == 14 and len(files) == 14
    with open(tmp_path / "a" / "MANIFEST.csv", newline="", encoding="utf-8") as f:
        manifest = list(csv.DictReader(f))
    assert [m["file"] for m in manifest] == [r["file"] for r in rows]
    assert set(manifest[0]) == set(render.MANIFEST_FIELDS)
    for m in manifest:
        assert re.fullmatch(rf"{m['centro']}_{int(m['mesa']):02d}_{m['level']}(_\d+)?\.jpg", m["file"])
        a = acta.parse_payload(m["payload"], election)
        assert (a.centro, a.mesa) == (int(m["centro"]), int(m["mesa"]))
    known = [m for m in manifest if m["payload"] == KNOWN_PAYLOAD]
    assert len(known) == 3 and {m["payload_kind"] for m in known} == {"published"}
    payloads = [m["payload"] for m in manifest]
    assert any(payloads.count(p) == 2 for p in payloads)        # a mesa photographed twice
    render.render_sample(tmp_path / "b", 14, election, seed=3, levels=("clean", "moderate"))
    for name in files + ["MANIFEST.csv"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_rows_of_the_sample_are_real(election, csv_rows):
    with open(SAMPLE / "MANIFEST.csv", newline="", encoding="utf-8") as f:
        manifest = list(csv.DictReader(f))
    by_line = {r["_line"]: r for r in csv_rows}
    for m in manifest:
        row = by_line[int(m["source_line"])]
        assert (row["CENTRO"], row["MESA"]) == (m["centro"], m["mesa"])
        a = acta.parse_payload(m["payload"], election)
        assert a.votes == acta.parse_csv_row(row, election).votes


def test_shipped_sample_is_small_documented_and_reproducible(tmp_path, election):
    files = sorted(SAMPLE.iterdir())
    assert sum(p.stat().st_size for p in files) <= 5_000_000
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    assert "not original photos" in readme and f"seed {SAMPLE_SEED}" in readme
    command = f"testigo render-sample datasets/ve-2024/sample -n {SAMPLE_N} --seed {SAMPLE_SEED} " \
              f"--levels {','.join(SAMPLE_LEVELS)}"
    assert command in readme
    assert "RESULTADOS_2024_CSV_V1.csv" in readme
    with open(SAMPLE / "MANIFEST.csv", newline="", encoding="utf-8") as f:
        manifest = list(csv.DictReader(f))
    assert len(manifest) == SAMPLE_N == len([p for p in files if p.suffix == ".jpg"])
    assert {m["level"] for m in manifest} == set(SAMPLE_LEVELS)
    assert any(m["payload"] == KNOWN_PAYLOAD for m in manifest)
    # the manifest depends on Python's random only: it must always come out the same
    fresh = render.render_sample(tmp_path, SAMPLE_N, election, SAMPLE_SEED, levels=SAMPLE_LEVELS)
    assert [(m["file"], m["payload"], m["level"]) for m in fresh] == \
           [(m["file"], m["payload"], m["level"]) for m in manifest]
    # the pixels depend on Pillow (fonts, resampling, libjpeg): compare under the version used
    made_with = re.search(r"Pillow (\S+)", readme).group(1)
    if PIL.__version__ != made_with:
        pytest.skip(f"sample rendered with Pillow {made_with}, this is {PIL.__version__}")
    for m in manifest:
        assert (tmp_path / m["file"]).read_bytes() == (SAMPLE / m["file"]).read_bytes(), m["file"]
