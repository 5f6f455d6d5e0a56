"""Blur the mesa members' part of an acta photo (`testigo build --redact-members`).

Under the summary, the strip prints each member's and witness's name, ID number (cédula),
signature and fingerprint. A movement that must protect them publishes its photos with that
part unreadable: the band from the members' heading down to the QR is pixelated (blocks larger
than a printed letter) and then blurred. The header, the party lines, the summary and the QR
stay as they were, so the photo still shows the votes and still decodes.

Where the band lies comes from the strip's own proportions, the same on every real scan
(/work/shared/data/ve2024/real_scans: the members' heading at 57% of the height, the QR's top at
90.4%), and from the QR itself when it can be found in the bottom quarter. The copy is
re-encoded (it cannot be lossless); the bundle keeps the original's sha256 beside it
(images.original_sha256) and marks it (images.redacted), so anyone holding the original can
still match it.
"""
from __future__ import annotations

import io

from PIL import Image, ImageFilter, ImageOps
from pyzbar import pyzbar
from pyzbar.pyzbar import ZBarSymbol

from .image import open_image, orientation, upright

VERSION = "1"            # bump when the band or the blur changes: cached copies are redone
MEMBERS_TOP = 0.565      # share of the strip's height where the members' part begins
QR_TOP = 0.90            # where the QR begins when it cannot be found
BLOCK_SHARE = 1 / 36     # pixel blocks of this share of the width (16 px on a 200 dpi strip)


def members_band(im: Image.Image) -> tuple[int, int]:
    """(top, bottom) rows of the members' part of an upright strip."""
    w, h = im.size
    bottom = int(h * QR_TOP)
    start = int(h * 0.75)
    gray = ImageOps.grayscale(im.crop((0, start, w, h)))
    found = pyzbar.decode(gray, symbols=[ZBarSymbol.QRCODE])
    if found:
        qr_top = start + min(f.rect.top for f in found)
        if qr_top > h * MEMBERS_TOP:
            bottom = qr_top - max(2, h // 300)
    return int(h * MEMBERS_TOP), bottom


def redact_image(im: Image.Image) -> Image.Image:
    """The upright strip with its members' part pixelated and blurred."""
    im = im.copy()
    top, bottom = members_band(im)
    if bottom <= top:
        return im
    w = im.size[0]
    band = im.crop((0, top, w, bottom))
    block = max(4, int(w * BLOCK_SHARE))
    small = band.resize((max(1, w // block), max(1, (bottom - top) // block)), Image.BOX)
    band = small.resize(band.size, Image.NEAREST).filter(ImageFilter.GaussianBlur(block / 2))
    im.paste(band, (0, top))
    return im


def redact_members(data: bytes) -> bytes:
    """A published photo's bytes with the members' part unreadable: upright (EXIF orientation
    applied), no metadata, JPEG stays JPEG (quality 90) and PNG stays PNG."""
    im = open_image(data)
    fmt = im.format
    im = upright(im, orientation(im))
    out = redact_image(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    buf = io.BytesIO()
    if fmt == "PNG":
        out.save(buf, "PNG")
    else:
        out.save(buf, "JPEG", quality=90)
    return buf.getvalue()
