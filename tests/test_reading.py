"""archive.reading: decode rendered actas exactly, refuse what is not an acta, explain failures."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter

from archive import acta, reading, render
from archive.render import KNOWN_PAYLOAD

SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "ve-2024" / "sample"
HEADER = "201301006.01.1.0001"
COUNTS = KNOWN_PAYLOAD.split("!")[1].split(",")


def _jpeg(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _page_without_qr(election) -> Image.Image:
    page = render.render_page(KNOWN_PAYLOAD, election)
    ImageDraw.Draw(page).rectangle((0, int(page.height * 0.85), page.width, page.height), fill=(250, 250, 246))
    return page


# --- rendered actas ---------------------------------------------------------------------------------

@pytest.mark.parametrize("level", ["clean", "mild", "moderate"])
def test_rendered_levels_decode_exactly(level, election):
    for seed in range(4):
        data = render.render_jpeg(KNOWN_PAYLOAD, seed=seed, level=level, election=election)
        r = reading.decode_bytes(data, election, f"{level}-{seed}.jpg")
        assert r.status == "ok", (level, seed, r)
        assert r.qr_text == KNOWN_PAYLOAD and r.code is None and r.reason is None
        assert r.decoder in ("pyzbar", "zxing") and r.step
        # the ingest path (open_image + decode on the loaded image) agrees
        assert reading.decode(reading.open_image(data), election).qr_text == KNOWN_PAYLOAD


def test_severe_level_is_exact_or_honestly_unreadable(election):
    outcomes = []
    for seed in range(12):
        data = render.render_jpeg(KNOWN_PAYLOAD, seed=seed, level="severe", election=election)
        r = reading.decode_bytes(data, election)
        assert r.status in ("ok", "unreadable"), r
        if r.status == "ok":
            assert r.qr_text == KNOWN_PAYLOAD
        else:
            assert r.qr_text is None and r.code in ("qr_damaged", "no_qr") and "retake" in r.reason
        outcomes.append(r.status)
    assert outcomes.count("ok") >= 6, outcomes   # 8 of 12 when written


def test_known_real_payload_folds_to_its_csv_row(election, csv_rows):
    data = render.render_jpeg(KNOWN_PAYLOAD, seed=1, level="clean", election=election)
    r = reading.decode_bytes(data, election)
    assert r.status == "ok" and r.qr_text == KNOWN_PAYLOAD
    a = r.acta
    assert (a.centro, a.mesa, a.validos) == (201301006, 1, 368)
    assert a.votes["EG"] == 167 and a.votes["NM"] == 188
    row = next(x for x in csv_rows if x["CENTRO"] == "201301006" and x["MESA"] == "1")
    assert a.votes == acta.parse_csv_row(row, election).votes
    acta.validate(a, election)


def test_png_alpha_16bit_and_big_photo_decode(election):
    page = render.render_page(KNOWN_PAYLOAD, election)
    rgba = page.convert("RGBA")
    assert reading.decode(rgba, election).qr_text == KNOWN_PAYLOAD
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    assert reading.decode_bytes(buf.getvalue(), election).qr_text == KNOWN_PAYLOAD
    gray = page.convert("L")  # a 16-bit grayscale PNG
    deep = Image.frombytes("I;16", gray.size, bytes(b for v in gray.tobytes() for b in (v, v)))
    buf = io.BytesIO()
    deep.save(buf, "PNG")
    assert reading.decode_bytes(buf.getvalue(), election).qr_text == KNOWN_PAYLOAD
    big = page.resize((page.width * 3, page.height * 3), Image.Resampling.BICUBIC)  # 12-ish Mpx photo
    r = reading.decode_bytes(_jpeg(big), election)
    assert r.status == "ok" and r.qr_text == KNOWN_PAYLOAD and r.step == "bottom"


def test_small_qr_in_big_photo_falls_back_to_full_resolution(election):
    page = render.render_page(KNOWN_PAYLOAD, election)
    small = page.resize((page.width * 45 // 100, page.height * 45 // 100), Image.Resampling.LANCZOS)
    photo = Image.new("RGB", (3000, 4000), (120, 100, 80))
    photo.paste(small, (1200, 1500))
    r = reading.decode_bytes(_jpeg(photo, 92), election)
    assert r.status == "ok" and r.qr_text == KNOWN_PAYLOAD
    assert r.step.startswith("full:"), r.step   # the reduced first view could not read it


def test_zxing_fallback_reads_when_pyzbar_cannot(election, monkeypatch):
    data = render.render_jpeg(KNOWN_PAYLOAD, seed=3, level="severe", election=election)
    r = reading.decode_bytes(data, election)
    assert r.status == "ok" and r.decoder == "zxing" and r.qr_text == KNOWN_PAYLOAD
    monkeypatch.setattr(reading, "_run_zxing", lambda img, binarizer: ([], 0))
    assert reading.decode_bytes(data, election).status == "unreadable"   # pyzbar alone fails here


def test_zxing_used_when_pyzbar_finds_nothing(election, monkeypatch):
    monkeypatch.setattr(reading, "_run_pyzbar", lambda img: [])
    data = render.render_jpeg(KNOWN_PAYLOAD, seed=0, level="mild", election=election)
    r = reading.decode_bytes(data, election)
    assert r.status == "ok" and r.decoder == "zxing" and r.qr_text == KNOWN_PAYLOAD


# --- not an acta ------------------------------------------------------------------------------------

def test_image_without_qr_is_unreadable_with_advice(election):
    r = reading.decode_bytes(_jpeg(_page_without_qr(election)), election)
    assert r.status == "unreadable" and r.qr_text is None and r.code == "no_qr"
    assert "retake" in r.reason and "QR" in r.reason


def test_dark_and_tiny_photos_say_why(election):
    dark = _page_without_qr(election).point(lambda v: v // 8)
    r = reading.decode(dark, election)
    assert (r.status, r.code) == ("unreadable", "too_dark") and "light" in r.reason
    tiny = _page_without_qr(election).resize((200, 415))
    r = reading.decode(tiny, election)
    assert (r.status, r.code) == ("unreadable", "too_small") and "200×415" in r.reason


def test_qr_from_another_system_is_invalid(election):
    url = "https://example.org/boleta?id=12345"
    img = render.render_acta(url, seed=0, degrade="mild", election=election)
    r = reading.decode(img, election)
    assert r.status == "invalid" and r.code == "not_acta"
    assert r.qr_text == url and "web link" in r.reason and "not the acta" in r.reason


def test_acta_qr_wins_over_another_qr_in_the_same_photo(election):
    page = render.render_page(KNOWN_PAYLOAD, election)
    other = render.qr_image("https://example.org/otro").convert("RGB")
    page.paste(other, (20, page.height - other.height - 10))
    r = reading.decode(page, election)
    assert r.status == "ok" and r.qr_text == KNOWN_PAYLOAD


def test_two_different_actas_in_one_photo(election):
    other = KNOWN_PAYLOAD.replace("201301006.01.", "201301006.02.", 1)
    canvas = Image.new("L", (1000, 500), 255)
    canvas.paste(render.qr_image(KNOWN_PAYLOAD), (20, 20))
    canvas.paste(render.qr_image(other), (520, 20))
    r = reading.decode(canvas, election)
    assert r.status == "invalid" and r.code == "several_actas" and r.qr_text is None


@pytest.mark.parametrize("payload, code", [
    (f"{HEADER}!{','.join(COUNTS[:37])}!0!0", "wrong_count_number"),
    (f"{HEADER}!{','.join(COUNTS + ['0'])}!0!0", "wrong_count_number"),
    (f"{HEADER}!{','.join(['-5'] + COUNTS[1:])}!0!0", "negative_count"),
    (f"{HEADER}!{','.join(['1a'] + COUNTS[1:])}!0!0", "non_numeric_count"),
    (f"{HEADER}!{','.join(COUNTS)}!0", "not_acta"),
])
def test_acta_like_qr_with_bad_counts_is_invalid(payload, code, election):
    with pytest.raises(acta.PayloadError):
        acta.parse_payload(payload, election)
    data = render.render_jpeg(payload, seed=0, level="clean", election=election)
    r = reading.decode_bytes(data, election)
    assert r.status == "invalid" and r.code == code, r
    assert r.qr_text == payload   # what the QR says, exactly, for the volunteer to see


# --- files --------------------------------------------------------------------------------------------

def test_decode_bytes_turns_refused_files_into_results(election):
    r = reading.decode_bytes(b"mesa 3: llegar temprano\n", election, "acta.jpg")
    assert r.status == "rejected" and r.code == "not_an_image" and "acta.jpg" in r.reason
    data = render.render_jpeg(KNOWN_PAYLOAD, seed=0, level="clean", election=election)
    r = reading.decode_bytes(data[: len(data) // 2], election)
    assert r.status == "rejected" and r.code == "truncated"


def test_reading_to_dict_is_json_ready(election):
    import json
    r = reading.decode_bytes(render.render_jpeg(KNOWN_PAYLOAD, seed=0, election=election), election)
    d = r.to_dict()
    assert set(d) == {"status", "qr_text", "reason", "code", "decoder", "step", "attempts"}
    assert json.loads(json.dumps(d))["qr_text"] == KNOWN_PAYLOAD


def test_shipped_sample_decodes_to_its_manifest(election):
    with open(SAMPLE / "MANIFEST.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 30
    for row in rows:
        r = reading.decode_bytes((SAMPLE / row["file"]).read_bytes(), election, row["file"])
        assert r.status == "ok" and r.qr_text == row["payload"], (row["file"], r)


def _tiny(page: Image.Image, scale: float, blur: float) -> bytes:
    """The page shrunk until its QR has ~2 px per module or fewer, blurred, in a wider photo."""
    small = page.convert("L").resize((int(page.width * scale), int(page.height * scale)),
                                     Image.Resampling.BOX).filter(ImageFilter.GaussianBlur(blur))
    canvas = Image.new("L", (int(small.width * 2.2), int(small.height * 1.3)), 200)
    canvas.paste(small, (int(small.width * 0.6), int(small.height * 0.15)))
    return _jpeg(canvas)


def test_tiny_qr_rung_reads_what_every_other_rung_misses(election):
    """A QR of ~1.8 px per module after blur: only the tiny-code rung (Lanczos x3, fine
    sharpening, zxing) reads it, and exactly; a smaller one stays unreadable, never wrong."""
    page = render.render_page(KNOWN_PAYLOAD, election)
    r = reading.decode_bytes(_tiny(page, 0.30, 0.8), election, "lejos.jpg")
    assert (r.status, r.qr_text) == ("ok", KNOWN_PAYLOAD)
    assert r.decoder == "zxing" and "tiny-x" in r.step        # every earlier rung missed it
    smaller = reading.decode_bytes(_tiny(page, 0.20, 0.6), election, "mas_lejos.jpg")
    assert smaller.status == "unreadable" and smaller.qr_text is None
