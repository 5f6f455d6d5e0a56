"""Read the acta QR from a photo.

A ladder of cheap-to-expensive attempts: pyzbar on a reduced grayscale copy and on the strip
where the QR is printed (the bottom of the sheet), then full resolution, contrast, sharpening,
local thresholding and rotations, then zxing-cpp, which recovers some codes zbar cannot.
A decoded text only counts if it parses as this election's acta (``acta.parse_payload``):
a wrong text is worse than none, so a QR from something else keeps the ladder going.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import zxingcpp
from PIL import Image, ImageChops, ImageFilter, ImageOps, ImageStat
from pyzbar import pyzbar
from pyzbar.pyzbar import ZBarSymbol

from .acta import Acta, parse_payload
from .election import Election
from .errors import PayloadError, RejectedFile
from .image import open_image, orientation, upright

WORK_SIDE = 1000      # long side (px) of the first, cheap attempts; the QR keeps ~2.5 px/module
MID_SIDE = 2000       # long side cap for the enhancement steps on big photos
BOTTOM = 0.25         # the QR sits in the bottom ~11% of the sheet; more for margins and tilt
SMALL_PHOTO = 600     # below this long side a phone photo cannot hold a readable acta QR
DARK_MEAN = 45        # mean gray level under which we call a photo too dark
TINY_MAX_PIXELS = 12_000_000   # the tiny-code rung upscales at most to this many pixels (~0.5 s)


@dataclass
class Reading:
    """The outcome of reading one image.

    status: "ok" (qr_text parses as an acta), "invalid" (only QRs that are not this election's
    acta were found; code/reason come from the PayloadError), "unreadable" (no QR could be
    decoded), or "rejected" (decode_bytes only: the file is not an image we accept; code is
    the RejectedFile code).
    """

    status: str
    qr_text: str | None = None
    reason: str | None = None
    code: str | None = None
    decoder: str | None = None   # "pyzbar" or "zxing"
    step: str | None = None      # the ladder step that produced the text
    attempts: int = 0            # decoder calls made, a cost measure
    acta: Acta | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-ready fields (without the parsed acta)."""
        d = asdict(self)
        d.pop("acta")
        return d


# --- image views --------------------------------------------------------------------------------

def _gray(image: Image.Image) -> Image.Image:
    """8-bit grayscale, transparency flattened on white (the decoders read only "L")."""
    if image.mode == "L":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit PNGs
        if image.getextrema()[1] > 255:
            return image.point(lambda v: v / 256).convert("L")
        return image.point(lambda v: v).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        bg = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, image.convert("RGBA")).convert("L")
    return image.convert("L")


def _reduce(gray: Image.Image, side: int = WORK_SIDE) -> Image.Image:
    """A copy whose long side is between side and 2×side (box filter, cheap)."""
    k = max(gray.size) // side
    return gray.reduce(min(k, 8)) if k >= 2 else gray


class _Views:
    """Grayscale views of one photo: ``small`` (cheap, tried first), ``full`` (decoded only if
    needed) and ``mid`` (full reduced to at most MID_SIDE, for the costlier enhancements)."""

    def __init__(self, small: Image.Image, full: Callable[[], Image.Image] | Image.Image):
        self.small = small
        self._full = full
        self._mid: Image.Image | None = None

    @property
    def full(self) -> Image.Image:
        if callable(self._full):
            self._full = self._full()
        return self._full

    @property
    def reduced(self) -> bool:
        return callable(self._full) or self._full.size != self.small.size

    @property
    def mid(self) -> Image.Image:
        if self._mid is None:
            full = self.full
            k = -(-max(full.size) // MID_SIDE)
            self._mid = full.reduce(k) if k >= 2 else full
            if self._mid.size == self.small.size:
                self._mid = self.small
        return self._mid


def _strips(img: Image.Image, frac: float) -> list[tuple[str, Image.Image]]:
    """The strips where the QR should be: the sheet's bottom, then its other ends.

    A tall photo is probably upright (bottom) or upside down (top); a wide one was taken
    sideways, so the sheet's bottom is at the left or right.
    """
    w, h = img.size
    bottom = ("bottom", img.crop((0, int(h * (1 - frac)), w, h)))
    top = ("top", img.crop((0, 0, w, int(h * frac) + 1)))
    right = ("right", img.crop((int(w * (1 - frac)), 0, w, h)))
    left = ("left", img.crop((0, 0, int(w * frac) + 1, h)))
    return [bottom, top, right, left] if h >= w else [right, left, bottom, top]


def _local_threshold(img: Image.Image, radius: int, c: int = 8) -> Image.Image:
    """Black where a pixel is darker than its neighbourhood: survives uneven light and shadows."""
    mean = img.filter(ImageFilter.BoxBlur(radius))
    diff = ImageChops.subtract(img, mean, scale=1.0, offset=128)
    return diff.point([0 if v < 128 - c else 255 for v in range(256)])


def _upscale(img: Image.Image, k: int = 2) -> Image.Image:
    return img.resize((img.width * k, img.height * k), Image.Resampling.BICUBIC)


def _sharp_upscale(img: Image.Image, k: int) -> Image.Image:
    """Lanczos upscaling then a fine unsharp mask: gives a QR under ~2 px per module (after
    blur) module edges zxing can sample; bicubic with a wide mask smears them together."""
    up = img.resize((img.width * k, img.height * k), Image.Resampling.LANCZOS)
    return up.filter(ImageFilter.UnsharpMask(2, 200, 0))


def _rotate(img: Image.Image, angle: float) -> Image.Image:
    return img.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=255)


def _ladder(v: _Views) -> Iterator[tuple[str, str, Image.Image, object]]:
    """Every attempt, cheapest and likeliest first: (decoder, step name, grayscale image, binarizer).

    pyzbar on the plain views first (most photos stop here, in a few ms); then one zxing pass
    over the whole photo, which is cheap and reads blurred or skewed codes zbar misses; then
    pyzbar on enhanced crops and rotations; then zxing on upscaled crops. Step names say the
    view: no prefix for the reduced first view, "full:" full resolution, "mid:" in between.
    """
    local, hist = zxingcpp.Binarizer.LocalAverage, zxingcpp.Binarizer.GlobalHistogram
    small = v.small
    strips = _strips(small, BOTTOM)
    yield "pyzbar", *strips[0], None
    yield "pyzbar", "whole", small, None
    if max(small.size) < 1600:  # QR modules may be under ~3 px: upscaling helps zbar
        yield "pyzbar", f"{strips[0][0]}+x2", _upscale(ImageOps.autocontrast(strips[0][1], cutoff=1)), None
    for name, s in strips[1:]:
        yield "pyzbar", name, s, None
    if v.reduced:
        full = v.full
        yield "pyzbar", "full:" + strips[0][0], _strips(full, BOTTOM)[0][1], None
        yield "pyzbar", "full:whole", full, None
    full = v.full
    yield "zxing", ("full:" if v.reduced else "") + "whole", full, local
    if max(full.size) < 2000:
        yield "zxing", "whole+x2", _upscale(full), local

    big = v.mid
    label = "" if big is small else ("full:" if big is full else "mid:")
    few_pixels = max(big.size) < 1600
    regions = [*_strips(big, BOTTOM)[:2], ("whole", big)]
    for name, r in regions:
        ac = ImageOps.autocontrast(r, cutoff=1)
        yield "pyzbar", f"{label}{name}+autocontrast", ac, None
        if few_pixels:
            up = _upscale(ac)
            if name != strips[0][0] or big is not small:
                yield "pyzbar", f"{label}{name}+x2", up, None
            yield "pyzbar", f"{label}{name}+x2+sharpen", up.filter(ImageFilter.UnsharpMask(2, 150, 2)), None
        else:
            yield "pyzbar", f"{label}{name}+sharpen", ac.filter(ImageFilter.UnsharpMask(2, 150, 2)), None
        radius = max(8, min(r.size) // 20)
        yield "pyzbar", f"{label}{name}+threshold", _local_threshold(ac, radius), None
    name, region = regions[0]
    ac = ImageOps.autocontrast(region, cutoff=1)
    base = _upscale(ac) if few_pixels else ac
    for angle in (6, -6, 12, -12, 18, -18):
        yield "pyzbar", f"{label}{name}+rotate{angle}", _rotate(base, angle), None
    for t in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270):
        yield "pyzbar", f"{label}whole+rotate{90 * (t.value - 1)}", big.transpose(t), None

    for name, r in _strips(big, 0.3)[:2]:
        if few_pixels:
            yield "zxing", f"{label}{name}+x3", _upscale(r, 3), local
            yield "zxing", f"{label}{name}+x3+sharpen", _upscale(ImageOps.autocontrast(r, cutoff=1), 3).filter(
                ImageFilter.UnsharpMask(4, 200, 2)), local
        yield "zxing", f"{label}{name}+x2+histogram", _upscale(ImageOps.autocontrast(r, cutoff=1)), hist
    yield "zxing", f"{label}whole+histogram", big, hist
    yield "zxing", f"{label}whole+blur", ImageOps.autocontrast(big, cutoff=1).filter(ImageFilter.GaussianBlur(1)), local
    if max(big.size) < 1400:  # last resort for tiny, blurred codes: ~50 ms
        yield "zxing", f"{label}whole+x3+sharpen", _upscale(ImageOps.autocontrast(big, cutoff=1), 3).filter(
            ImageFilter.UnsharpMask(6, 250, 1)), local
    # the tiny-code rung: codes under ~2 px per module after blur (a QR far from the camera, a
    # thumbnail). Upscaled with Lanczos and sharpened finely, the QR's strip (then the whole photo,
    # at full resolution when it was reduced) gives zxing modules it can read; bounded in pixels.
    bottom = _strips(full, 0.3)[0]
    for name, r in ((("full:" if v.reduced else "") + bottom[0], bottom[1]),
                    (("full:" if v.reduced else "") + "whole", full)):
        for k in (3, 4):
            if r.width * r.height * k * k <= TINY_MAX_PIXELS:
                yield "zxing", f"{name}+tiny-x{k}", _sharp_upscale(r, k), local


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _run_pyzbar(img: Image.Image) -> list[str]:
    return [_text(s.data) for s in pyzbar.decode(img, symbols=[ZBarSymbol.QRCODE])]


def _run_zxing(img: Image.Image, binarizer) -> tuple[list[str], int]:
    """Texts of valid QRs, and how many QRs were seen but could not be decoded."""
    found = zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode, binarizer=binarizer,
                                   return_errors=True)
    ok = [_text(b.bytes) for b in found if b.valid]
    return ok, sum(1 for b in found if not b.valid)


def _decode_views(v: _Views, election: Election) -> Reading:
    invalid: list[tuple[str, PayloadError, str, str]] = []   # (text, error, decoder, step)
    seen_invalid: set[str] = set()
    damaged = 0
    attempts = 0

    def judge(texts: list[str], decoder: str, step: str) -> Reading | None:
        good: dict[str, Acta] = {}
        for t in texts:
            try:
                good.setdefault(t, parse_payload(t, election))
            except PayloadError as e:
                if t not in seen_invalid:
                    seen_invalid.add(t)
                    invalid.append((t, e, decoder, step))
        if len(good) > 1:
            return Reading("invalid", None, f"the photo shows {len(good)} different acta QR codes "
                           "(" + ", ".join(a.mesa_key for a in good.values()) + "); photograph one "
                           "acta per picture", "several_actas", decoder, step, attempts)
        if good:
            text, acta = next(iter(good.items()))
            return Reading("ok", text, None, None, decoder, step, attempts, acta)
        return None

    for decoder, step, img, binarizer in _ladder(v):
        attempts += 1
        if decoder == "pyzbar":
            texts = _run_pyzbar(img)
        else:
            texts, bad = _run_zxing(img, binarizer)
            damaged += bad
        r = judge(texts, decoder, step)
        if r:
            return r
    if invalid:
        text, e, decoder, step = invalid[0]
        return Reading("invalid", text, _invalid_reason(e, text), e.code, decoder, step, attempts)
    code, reason = _unreadable_reason(v, damaged)
    return Reading("unreadable", None, reason, code, None, None, attempts)


def _invalid_reason(e: PayloadError, text: str) -> str:
    if e.code == "not_acta":
        what = "a web link" if text.lower().startswith(("http://", "https://", "www.")) else "something else"
        return (f"the photo has a QR code, but it is {what}, not the acta's QR ({e}); photograph "
                "the QR printed at the bottom of the acta")
    return f"the acta's QR was read but its text is not valid: {e}"


def _unreadable_reason(v: _Views, damaged: int) -> tuple[str, str]:
    full = v.full
    if max(full.size) < SMALL_PHOTO:
        return "too_small", (f"no QR could be read and the photo is only {full.width}×{full.height} "
                             "pixels (a thumbnail or screenshot?); send the original photo, or "
                             "retake it closer with the whole sheet in frame")
    if ImageStat.Stat(v.small).mean[0] < DARK_MEAN:
        return "too_dark", ("no QR could be read and the photo is very dark; retake it in good "
                            "light (daylight or a lamp, no flash glare), whole sheet in frame")
    if damaged:
        return "qr_damaged", ("a QR code is visible but could not be read (blurred, folded, torn or "
                              "cut off); retake closer, with the sheet flat, in focus and in good "
                              "light, including the whole QR at the bottom of the acta")
    return "no_qr", ("no QR code could be read; retake the photo closer, in good light, with "
                     "the whole sheet in frame including the QR at the bottom, held steady")


def decode(image: Image.Image, election: Election) -> Reading:
    """Read the acta QR from a loaded image. Never raises for image content; see Reading.

    The pixels are first turned as the EXIF Orientation says (as a person sees the photo), so
    the ladder's "bottom strip first" guess holds and a mirrored capture reads; the ladder
    still tries the other rotations for photos whose tag is wrong or missing.
    """
    gray = upright(_gray(image), orientation(image))
    return _decode_views(_Views(_reduce(gray), gray), election)


def decode_bytes(data: bytes, election: Election, name: str = "") -> Reading:
    """open_image + decode, cheaper for big JPEGs: the first attempts use a reduced decode
    (``Image.draft``) and full resolution is decoded only if they fail.

    A file open_image refuses becomes ``Reading(status="rejected", code=<RejectedFile code>)``
    rather than an exception, so a batch prints one result per file.
    """
    try:
        im = open_image(data, name, draft=WORK_SIDE)
    except RejectedFile as e:
        return Reading("rejected", None, str(e), e.code)
    turn = orientation(im)   # decode upright, as in decode()
    gray = upright(_gray(im), turn)
    if im.format == "JPEG" and getattr(im, "decoderconfig", None) and im.decoderconfig[0] > 1:
        full = lambda: upright(_gray(open_image(data, name)), turn)  # noqa: E731 - only on fallback
        return _decode_views(_Views(_reduce(gray), full), election)
    return _decode_views(_Views(_reduce(gray), gray), election)
