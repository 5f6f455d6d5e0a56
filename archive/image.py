"""Safe image handling: accept only JPEG and PNG by content, load them fully, strip metadata.

Volunteers send whatever their phone or chat app produced, so every refusal is a RejectedFile
with a stable ``code`` and a message that says what the file looks like and what to do.
The published copy of a photo must not leak where or on which phone it was taken (EXIF GPS,
maker notes, XMP), yet its pixels must stay exactly those that were read, so stripping works
on segments/chunks and never re-encodes.

Upright photos: phones store many photos sideways and say so in the EXIF Orientation tag. The
published copy keeps that one tag (a fresh EXIF block holding only Orientation, nothing copied
from the original) rather than rotating the pixels. Rotating would mean re-encoding a JPEG
(generation loss, and bytes that depend on the encoder's version, which breaks byte-identical
rebuilds) or lossless jpegtran transforms that only work on whole MCU blocks; the stored pixels
would no longer be those the QR was read from. Keeping the tag shows the photo upright wherever
it is shown: every browser honours it for <img> and for the image opened directly (CSS
``image-orientation: from-image`` is the default since 2020: Chromium 81, Firefox 77, Safari
13.1), and the site, the mirror and Datasette's links all serve these same bytes to a browser;
image viewers do too, and Pillow users call ``ImageOps.exif_transpose`` (the bundle README says
so). ``images.orientation`` records the tag and ``images.width/height`` are as displayed.
Decoding (``reading``) turns the pixels upright before reading, and its ladder still tries the
other rotations, so it works whichever way the pixels are stored.
"""
from __future__ import annotations

import io
import re
import struct
import warnings

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from .errors import RejectedFile

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_EXPORT = "export or save it as JPEG (or PNG) and send that file"

# ISO-BMFF brands (bytes 8..12 after "ftyp") → what a volunteer would call the file.
_FTYP_IMAGE = {b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC", b"heis": "HEIC",
               b"hevc": "HEIC", b"hevx": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF",
               b"avif": "AVIF", b"avis": "AVIF", b"crx ": "Canon CR3 raw"}


def sniff(data: bytes) -> str:
    """Name the format of ``data`` from its first bytes ("JPEG", "PNG", "GIF", "text", ...)."""
    head = data[:64]
    if head.startswith(JPEG_MAGIC):
        return "JPEG"
    if head.startswith(PNG_MAGIC):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _FTYP_IMAGE:
            return _FTYP_IMAGE[brand]
        return "video"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:2] == b"BM":
        return "BMP"
    if head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or head[:4] == b"\xff\x4f\xff\x51":
        return "JPEG 2000"
    if head[:2] == b"\xff\x0a" or head[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "JPEG XL"
    if head[:4] == b"8BPS":
        return "Photoshop PSD"
    if head[:4] == b"\x00\x00\x01\x00":
        return "ICO"
    if head[:4] == b"%PDF":
        return "PDF"
    if head[:4] == b"PK\x03\x04":
        return "ZIP"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"Rar!" or head[:6] == b"7z\xbc\xaf\x27\x1c":
        return "archive"
    text = _as_text(data[:1024])
    if text is not None:
        low = text.lstrip().lower()
        if low.startswith(("<!doctype html", "<html")) or "<html" in low[:300]:
            return "HTML"
        if "<svg" in low[:300]:
            return "SVG"
        return "text"
    return "unknown"


def _as_text(chunk: bytes) -> str | None:
    """The chunk as text if it looks like text (UTF-8, mostly printable), else None."""
    if b"\x00" in chunk:
        return None
    try:
        s = chunk.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(chunk) - 4:  # not just a character cut at the end of the chunk
            return None
        s = chunk[:e.start].decode("utf-8")
    if not s:
        return None
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in s)
    return s if printable / len(s) > 0.95 else None


_RAW_IMAGE_FORMATS = {"GIF", "WebP", "HEIC", "HEIF", "AVIF", "Canon CR3 raw", "TIFF", "BMP",
                      "JPEG 2000", "JPEG XL", "Photoshop PSD", "ICO", "SVG"}


def _named(name: str) -> str:
    return f"{name}: " if name else ""


def _reject_kind(data: bytes, name: str) -> RejectedFile:
    """The RejectedFile for data that is not JPEG/PNG, saying what it looks like."""
    kind = sniff(data)
    n = _named(name)
    if kind in ("HEIC", "HEIF"):
        return RejectedFile("unsupported_format", f"{n}this is a {kind} photo (the iPhone's default "
                            f"format), which testigo does not read; {_EXPORT} (on iPhone: Settings > "
                            "Camera > Formats > Most Compatible, or share the photo by mail/WhatsApp)")
    if kind in _RAW_IMAGE_FORMATS:
        return RejectedFile("unsupported_format", f"{n}this is a {kind} image, which testigo does "
                            f"not read; {_EXPORT}")
    if kind == "HTML":
        return RejectedFile("not_an_image", f"{n}this is a web page (HTML), not a photo; a link or "
                            "error page was probably saved instead of the picture: open it in a "
                            "browser and save the image itself (a JPEG file)")
    if kind == "PDF":
        return RejectedFile("not_an_image", f"{n}this is a PDF document, not a photo; send the "
                            "original photo, or export the page as JPEG")
    if kind == "video":
        return RejectedFile("not_an_image", f"{n}this is a video, not a photo; take a still photo "
                            "of the acta and send that JPEG")
    if kind in ("ZIP", "gzip", "archive"):
        return RejectedFile("not_an_image", f"{n}this is a compressed archive ({kind}), not a photo; "
                            "unpack it and send the JPEG photos inside")
    if kind == "text":
        start = _as_text(data[:1024]) or ""
        start = " ".join(start.split())[:40]
        return RejectedFile("not_an_image", f"{n}this file contains plain text (it starts with "
                            f"{start!r}), not an image; send the photo itself, the JPEG file "
                            "the camera made")
    return RejectedFile("not_an_image", f"{n}this is not an image testigo recognises (it starts "
                        f"with bytes {data[:8].hex(' ')}); send the original JPEG photo")


def open_image(data: bytes, name: str = "", *, draft: int | None = None) -> Image.Image:
    """Open JPEG or PNG ``data`` (detected by content, never by extension) and load every pixel.

    Loading fully is what finds truncated files and bounds memory before anything else runs.
    ``draft=N`` lets a JPEG decode in grayscale at 1/2, 1/4 or 1/8 scale, keeping the long side
    at least N pixels: this is how ``reading.decode_bytes`` stays cheap. The whole file is still
    read, so truncation is still found.
    Raises RejectedFile with code empty, not_an_image, unsupported_format, too_large or truncated.
    """
    n = _named(name)
    if not data:
        raise RejectedFile("empty", f"{n}the file is empty (0 bytes); the upload or copy did not "
                           "finish, send it again")
    if data.startswith(JPEG_MAGIC):
        fmt = "JPEG"
    elif data.startswith(PNG_MAGIC):
        fmt = "PNG"
    else:
        raise _reject_kind(data, name)
    limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=[fmt])
            w, h = im.size
            if limit is not None and w * h > limit:  # also when a caller silenced the warning
                raise Image.DecompressionBombWarning(f"{w}x{h}")
            if draft and fmt == "JPEG":
                side = max(w, h)
                im.draft("L", (max(1, w * draft // side), max(1, h * draft // side)))
            im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            w, h = _header_size(data, fmt)
            raise RejectedFile("too_large", f"{n}the {fmt} says it is {w}×{h} pixels "
                               f"({w * h / 1e6:.0f} megapixels), more than the {(limit or 0) / 1e6:.0f} "
                               "megapixels testigo opens (a huge or malicious file); send the "
                               "photo as the camera took it") from None
        except (UnidentifiedImageError, SyntaxError, OSError, ValueError, EOFError, struct.error) as e:
            raise RejectedFile("truncated", f"{n}the {fmt} file is truncated or damaged ({e}); the "
                               "upload or copy probably stopped early: send the original file "
                               "again") from None
    return im


def _header_size(data: bytes, fmt: str) -> tuple[int, int]:
    """Width and height from the file header without decoding (for the too_large message)."""
    if fmt == "PNG" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    try:
        for marker, start, end in _jpeg_segments(data, stop_at_sos=True):
            if marker in _SOF_MARKERS and end - start >= 9:
                h, w = struct.unpack(">HH", data[start + 5:start + 9])
                return w, h
    except ValueError:
        pass
    return 0, 0


# --- metadata -----------------------------------------------------------------------------

_SCAN_END = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_segments(data: bytes, *, stop_at_sos: bool = False):
    """Yield (marker, start, end) for each piece of a JPEG from SOI to EOI: ``data[start:end]``
    is the piece verbatim (offsets, not copies: a scan is most of the file).

    A scan (SOS) piece carries its entropy-coded data up to the next real marker. Bytes after
    EOI (phones append previews, depth maps or a whole video there) are not yielded.
    Raises ValueError when the stream ends before EOI or a segment is malformed.
    """
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG (no SOI marker)")
    yield 0xD8, 0, 2
    i, n = 2, len(data)
    while True:
        start = i
        if i >= n or data[i] != 0xFF:
            raise ValueError(f"expected a marker at byte {i}")
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            raise ValueError("stream ends inside a marker")
        marker = data[i]
        i += 1
        if marker == 0xD9:
            yield marker, start, i
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            yield marker, start, i
            continue
        if i + 2 > n:
            raise ValueError("stream ends inside a segment length")
        (length,) = struct.unpack(">H", data[i:i + 2])
        if length < 2 or i + length > n:
            raise ValueError(f"segment {marker:#04x} at byte {start} runs past the end")
        i += length
        if marker == 0xDA:
            if stop_at_sos:
                return
            # entropy-coded data: ends at 0xFF followed by a real marker (not a stuffed 0x00, a
            # restart marker or a fill byte); one C-level search instead of a Python step per 0xFF
            end = _SCAN_END.search(data, i)
            if end is None:
                raise ValueError("stream ends inside the image data (no EOI)")
            i = end.start()
        yield marker, start, i


def _keep_jpeg_segment(marker: int, seg: bytes) -> bool:
    """Keep everything needed to decode the same pixels, drop anything that describes the photo.
    ``seg`` may be the segment's first bytes only (the longest signature checked is 16)."""
    body = seg[4:] if len(seg) >= 4 else b""
    if marker == 0xE0:                      # APP0: JFIF header only (JFXX carries a thumbnail)
        return body.startswith(b"JFIF\x00")
    if marker == 0xE2:                      # APP2: ICC profile only (MPF indexes extra images)
        return body.startswith(b"ICC_PROFILE\x00")
    if marker == 0xEE:                      # APP14 Adobe: tells the decoder the colour transform,
        return body.startswith(b"Adobe")   # dropping it would change CMYK/RGB-coded pixels
    if 0xE1 <= marker <= 0xEF:              # EXIF, XMP, maker notes, IPTC, ...
        return False
    if marker == 0xFE:                      # COM
        return False
    return True


# Ancillary PNG chunks that change how pixels are interpreted; everything else ancillary
# (tEXt, zTXt, iTXt, eXIf, tIME, private chunks, APNG frames) is dropped.
_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP",
             b"sBIT", b"pHYs", b"cICP", b"mDCV", b"cLLI"}


def _png_chunks(data: bytes):
    """Yield (type, raw chunk bytes) from a PNG up to IEND. Raises ValueError when malformed."""
    i, n = len(PNG_MAGIC), len(data)
    while True:
        if i + 8 > n:
            raise ValueError("PNG ends before IEND")
        length, ctype = struct.unpack(">I4s", data[i:i + 8])
        end = i + 12 + length
        if end > n:
            raise ValueError(f"PNG chunk {ctype!r} runs past the end")
        yield ctype, data[i:end]
        i = end
        if ctype == b"IEND":
            return


# Bump when strip_metadata's output changes: the bundle's cache of published copies is keyed on it.
# 1: the EXIF Orientation tag is kept (upright photos).
STRIP_VERSION = 1

ORIENTATION_TAG = 0x0112
#: EXIF Orientation -> the transpose that makes the stored pixels display upright (EXIF 2.32, 4.6.4).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
           6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def orientation(source) -> int:
    """The EXIF Orientation (1-8) of an image (bytes, a path or an opened Image); 1 if none or invalid.

    Opening reads only the header, so this is cheap on a file.
    """
    try:
        if isinstance(source, Image.Image):
            value = source.getexif().get(ORIENTATION_TAG)
        else:
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
                value = im.getexif().get(ORIENTATION_TAG)
    except Exception:  # a damaged EXIF block must not stop anything: the photo is then as stored
        return 1
    return value if isinstance(value, int) and value in UPRIGHT else 1


def upright(im: Image.Image, value: int) -> Image.Image:
    """The image as a viewer shows it for EXIF Orientation ``value``."""
    return im.transpose(UPRIGHT[value]) if value in UPRIGHT else im


def _orientation_exif(value: int) -> bytes:
    """An EXIF block ("Exif\\0\\0" + TIFF) holding only the Orientation tag."""
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = value
    return exif.tobytes()


def strip_metadata(data: bytes) -> bytes:
    """The copy to publish (see :func:`strip_metadata_oriented`)."""
    return strip_metadata_oriented(data)[0]


def strip_metadata_oriented(data: bytes) -> tuple[bytes, int]:
    """The copy to publish: same encoded pixels, no EXIF/GPS/XMP/maker notes/comments/text.

    JPEG: segment filter (keeps APP0 JFIF, APP2 ICC, APP14 Adobe, tables, scans; drops other
    APPn, COM and anything after EOI). PNG: chunk filter (keeps critical and colour chunks).
    A photo stored sideways gets back an EXIF block with the Orientation tag alone (APP1 after
    SOI/JFIF; PNG eXIf after IHDR), so it displays upright (see the module docstring).
    Nothing is re-encoded, so decoded pixels are identical and output is deterministic.
    Returns (the copy, its EXIF Orientation: 1 when upright as stored).
    Raises RejectedFile for anything that is not a complete JPEG or PNG.
    """
    turn = orientation(data) if data.startswith((JPEG_MAGIC, PNG_MAGIC)) else 1
    exif = _orientation_exif(turn) if turn != 1 else None
    if data.startswith(JPEG_MAGIC):
        try:
            spans = [(start, end) for marker, start, end in _jpeg_segments(data)
                     if _keep_jpeg_segment(marker, data[start:start + 16])]
        except ValueError as e:
            raise RejectedFile("truncated", f"the JPEG file is truncated or damaged ({e}); send the "
                               "original file again") from None
        if not exif and spans[-1][1] == len(data) and all(a[1] == b[0] for a, b in zip(spans, spans[1:])):
            return data, turn     # nothing to drop (most forwarded photos): no copy at all
        view = memoryview(data)
        kept = [view[start:end] for start, end in spans]
        if exif:
            at = 2 if data[spans[1][0]:spans[1][0] + 2] == b"\xff\xe0" and \
                data[spans[1][0] + 4:spans[1][0] + 9] == b"JFIF\x00" else 1
            kept.insert(at, b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif)
        return b"".join(kept), turn
    if data.startswith(PNG_MAGIC):
        try:
            kept = [raw for ctype, raw in _png_chunks(data) if ctype in _PNG_KEEP]
            if exif:
                chunk = io.BytesIO()
                PngImagePlugin.putchunk(chunk, b"eXIf", exif[len(b"Exif\x00\x00"):])
                kept.insert(1, chunk.getvalue())
            return PNG_MAGIC + b"".join(kept), turn
        except ValueError as e:
            raise RejectedFile("truncated", f"the PNG file is truncated or damaged ({e}); send the "
                               "original file again") from None
    if not data:
        raise RejectedFile("empty", "the file is empty (0 bytes)")
    raise _reject_kind(data, "")
