"""archive.image: what is accepted, what is refused (with which code), and lossless stripping."""
from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from archive import image
from archive.errors import RejectedFile


def _photo(mode: str = "RGB", size=(320, 240)) -> Image.Image:
    """A small image with real detail (gradients + shapes), so JPEG coding is non-trivial."""
    im = Image.linear_gradient("L").resize(size).convert("RGB")
    px = Image.radial_gradient("L").resize(size)
    im = Image.merge("RGB", (im.split()[0], px, im.split()[0].transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    return im.convert(mode)


def _jpeg(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def _png(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **kw)
    return buf.getvalue()


def _gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "TestPhone Inc."
    exif[0x0110] = "Model 7"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (10.0, 29.0, 51.0)
    gps[3], gps[4] = "W", (66.0, 54.0, 12.0)
    return exif


def _pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.mode, im.size, im.tobytes()


def _rejected(data: bytes, name: str = "photo.jpg") -> RejectedFile:
    with pytest.raises(RejectedFile) as e:
        image.open_image(data, name)
    return e.value


# --- open_image: accepted -------------------------------------------------------------------------

def test_jpeg_and_png_open_fully_loaded():
    for data, fmt in ((_jpeg(_photo()), "JPEG"), (_png(_photo()), "PNG")):
        im = image.open_image(data, "x")
        assert im.format == fmt and im.size == (320, 240)
        assert im.getpixel((0, 0)) is not None and len(im.tobytes()) == 320 * 240 * 3


def test_detection_is_by_content_not_extension():
    # a PNG named .jpg opens as PNG; a JPEG named .png as JPEG
    assert image.open_image(_png(_photo()), "foto.jpg").format == "PNG"
    assert image.open_image(_jpeg(_photo()), "foto.png").format == "JPEG"


def test_draft_decodes_big_jpeg_reduced_in_gray():
    data = _jpeg(_photo(size=(2400, 3200)))
    im = image.open_image(data, draft=1000)
    # 1/2 is the largest libjpeg scale keeping the long side >= 1000 (1/4 would give 800)
    assert im.mode == "L" and im.size == (1200, 1600)
    assert image.open_image(data).size == (2400, 3200)


# --- open_image: refused ----------------------------------------------------------------------------

def test_empty_file():
    e = _rejected(b"")
    assert e.code == "empty" and "empty" in str(e)


def test_text_file_named_jpg():
    e = _rejected(b"mesa 3: llegar temprano\nfirmar el acta\n", "acta.jpg")
    assert e.code == "not_an_image"
    assert "acta.jpg" in str(e) and "text" in str(e) and "mesa 3" in str(e)


@pytest.mark.parametrize("data, says", [
    (b"<!DOCTYPE html><html><body>404</body></html>", "web page"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 30, "archive"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video"),
    (bytes(range(256)) * 4, "not an image"),
])
def test_other_files_say_what_they_look_like(data, says):
    e = _rejected(data)
    assert e.code == "not_an_image" and says in str(e)


def test_gif_and_webp_are_unsupported_with_advice():
    for fmt in ("GIF", "WEBP"):
        buf = io.BytesIO()
        _photo().save(buf, fmt)
        e = _rejected(buf.getvalue())
        assert e.code == "unsupported_format"
        assert ("GIF" if fmt == "GIF" else "WebP") in str(e) and "JPEG" in str(e)


def test_heic_is_unsupported_with_iphone_advice():
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 100
    e = _rejected(heic, "IMG_0001.HEIC")
    assert e.code == "unsupported_format" and "HEIC" in str(e) and "JPEG" in str(e)


def test_truncated_jpeg():
    data = _jpeg(_photo())
    e = _rejected(data[: len(data) * 2 // 3])
    assert e.code == "truncated" and "truncated" in str(e)


def test_jpeg_with_broken_header():
    e = _rejected(b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * 5)
    assert e.code == "truncated"


def test_truncated_png():
    data = _png(_photo())
    e = _rejected(data[: len(data) // 2], "x.png")
    assert e.code == "truncated"


def _png_bomb(width: int, height: int) -> bytes:
    """A 1-bit PNG of width×height white pixels: tiny on disk, huge in memory."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return image.PNG_MAGIC + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [10_000, 15_000])  # 100 Mpx: Pillow warns; 225 Mpx: Pillow errors
def test_png_bomb_is_too_large(side):
    assert side * side > Image.MAX_IMAGE_PIXELS
    data = _png_bomb(side, side)
    assert len(data) < 100_000
    e = _rejected(data, "bomb.png")
    assert e.code == "too_large" and f"{side}×{side}" in str(e)


def test_jpeg_header_claiming_huge_size_is_too_large():
    data = bytearray(_jpeg(Image.new("L", (8, 8))))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 30_000, 30_000)
    e = _rejected(bytes(data))
    assert e.code == "too_large" and "30000×30000" in str(e)


def test_pixel_limit_is_pillows(monkeypatch):
    data = _jpeg(_photo())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 320 * 240 - 1)
    assert _rejected(data).code == "too_large"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 320 * 240)
    assert image.open_image(data).size == (320, 240)


def test_bomb_warning_rejected_even_when_warnings_are_ignored(monkeypatch):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _rejected(_png_bomb(10_000, 10_000)).code == "too_large"


# --- strip_metadata ---------------------------------------------------------------------------------

def test_jpeg_exif_gps_comment_xmp_removed_pixels_identical():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    original = _jpeg(_photo(), exif=_gps_exif(), comment=b"shot by volunteer 17",
                     xmp=b"<x:xmpmeta>GPSLatitude 10.49</x:xmpmeta>", icc_profile=icc)
    with Image.open(io.BytesIO(original)) as im:   # the fixture really has what we strip
        assert im.getexif().get_ifd(0x8825) and im.info.get("comment")
    stripped = image.strip_metadata(original)
    assert len(stripped) < len(original)
    for secret in (b"Exif\x00\x00", b"TestPhone", b"Model 7", b"volunteer", b"GPSLatitude", b"xmpmeta"):
        assert secret not in stripped, secret
    with Image.open(io.BytesIO(stripped)) as im:
        assert not im.getexif() and not im.getexif().get_ifd(0x8825)
        assert "comment" not in im.info and "xmp" not in im.info
        assert im.info.get("icc_profile") == icc           # colour profile kept
        assert im.info.get("jfif")                           # JFIF header kept
    assert _pixels(stripped) == _pixels(original)


def test_jpeg_strip_is_deterministic_and_idempotent():
    original = _jpeg(_photo(), exif=_gps_exif())
    once = image.strip_metadata(original)
    assert image.strip_metadata(original) == once
    assert image.strip_metadata(once) == once


def test_progressive_jpeg_keeps_every_scan():
    original = _jpeg(_photo(), exif=_gps_exif(), progressive=True)
    stripped = image.strip_metadata(original)
    assert b"TestPhone" not in stripped
    assert stripped.count(b"\xff\xda") == original.count(b"\xff\xda") > 1
    assert _pixels(stripped) == _pixels(original)


def test_cmyk_jpeg_keeps_adobe_segment_so_pixels_match():
    original = _jpeg(_photo("CMYK"), exif=_gps_exif())
    stripped = image.strip_metadata(original)
    assert b"Adobe" in stripped and b"TestPhone" not in stripped
    assert _pixels(stripped) == _pixels(original)


def test_data_after_jpeg_end_is_dropped():
    # phones append previews, depth maps or a video after the image; those carry their own EXIF
    original = _jpeg(_photo()) + b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00TestPhone GPS"
    stripped = image.strip_metadata(original)
    assert stripped.endswith(b"\xff\xd9") and b"TestPhone" not in stripped
    assert _pixels(stripped) == _pixels(original)


def test_png_text_exif_time_chunks_removed_pixels_identical():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "shot by volunteer 17, Caracas")
    info.add_text("GPS", "10.4975,-66.9033", zip=True)
    info.add_itxt("Description", "Caracas, mesa 3")
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 7, 28, 19, 45, 0))
    im = _photo().convert("P", palette=Image.Palette.ADAPTIVE)
    original = _png(im, pnginfo=info, exif=_gps_exif(), transparency=0)
    for kind in (b"tEXt", b"zTXt", b"iTXt", b"tIME", b"eXIf"):
        assert kind in original, kind
    stripped = image.strip_metadata(original)
    for kind in (b"tEXt", b"zTXt", b"iTXt", b"tIME", b"eXIf", b"volunteer", b"TestPhone"):
        assert kind not in stripped, kind
    assert b"tRNS" in stripped and b"PLTE" in stripped      # needed to draw the same pixels
    with Image.open(io.BytesIO(stripped)) as out:
        assert not out.text and not out.getexif()
        assert out.info.get("transparency") == 0
    assert _pixels(stripped) == _pixels(original)
    assert image.strip_metadata(original) == stripped


def test_strip_refuses_what_it_cannot_vouch_for():
    data = _jpeg(_photo())
    with pytest.raises(RejectedFile) as e:
        image.strip_metadata(data[:-200])
    assert e.value.code == "truncated"
    with pytest.raises(RejectedFile) as e:
        image.strip_metadata(b"hello")
    assert e.value.code == "not_an_image"
    with pytest.raises(RejectedFile) as e:
        image.strip_metadata(_png(_photo())[:-30])
    assert e.value.code == "truncated"
