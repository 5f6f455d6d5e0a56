"""Acta-like sample pages rendered from real CSV rows, and photo-like degradations of them.

The public acta photos are several GB, so tests and benchmarks draw pages that look enough
like an acta (title, centre and mesa, the votes of each ballot card, the QR at the bottom of
the sheet) and then damage them the way phone photos are damaged. Everything is a function
of the seed, so the same seed gives the same bytes.
"""
from __future__ import annotations

import csv
import io
import math
import random
import unicodedata
from functools import lru_cache
from pathlib import Path

import segno
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from .election import Election, open_text

# The one QR payload published with its photo (Strvm/vnzla-libre README; see SOURCES.md).
KNOWN_PAYLOAD = ("201301006.01.1.0001!140,7,10,8,1,7,1,0,2,3,0,1,8,1,0,1,0,3,1,1,0,1,0,0,0,0,0,0,"
                 "1,2,0,0,0,5,7,155,1,1!0!0")
KNOWN_CENTRO, KNOWN_MESA = 201301006, 1

PAGE_WIDTH = 1000
QR_MODULE = 5  # pixels per QR module on the clean page

# Each value is the strongest setting of the level; a photo draws each setting uniformly
# between half of it and all of it. orient: chance that the photo is stored sideways/upside down.
LEVELS: dict[str, dict] = {
    "clean":    dict(rotate=0.0, perspective=0.0, blur=0.0, noise=0.0, dark=0.0, shade=0.0,
                     jpeg=90, scale=1.0, margin=0.0, orient=0.0),
    "mild":     dict(rotate=3.0, perspective=0.02, blur=0.7, noise=4.0, dark=0.15, shade=0.15,
                     jpeg=80, scale=0.85, margin=0.04, orient=0.0),
    "moderate": dict(rotate=8.0, perspective=0.05, blur=1.1, noise=8.0, dark=0.4, shade=0.3,
                     jpeg=65, scale=0.65, margin=0.06, orient=0.25),
    "severe":   dict(rotate=15.0, perspective=0.09, blur=1.5, noise=14.0, dark=0.6, shade=0.45,
                     jpeg=45, scale=0.55, margin=0.08, orient=0.5),
}


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    # Pillow's bundled font, not a system one: renders depend only on the Pillow version.
    return ImageFont.load_default(size=size)


def _ascii(text: str) -> str:
    """Text the bundled font can draw (it has ASCII only): accents dropped, dashes plain."""
    text = text.replace("—", "-").replace("–", "-")
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if ord(ch) < 128)


def qr_image(payload: str, module: int = QR_MODULE) -> Image.Image:
    """The payload's QR (segno, smallest version, default error level) with a 4-module margin."""
    qr = segno.make(payload, micro=False)
    rows = [bytes(0 if v else 255 for v in row) for row in qr.matrix_iter(scale=1, border=4)]
    side = len(rows)
    img = Image.frombytes("L", (side, side), b"".join(rows))
    return img.resize((side * module, side * module), Image.Resampling.NEAREST)


def _loose_fields(payload: str) -> tuple[str, str, list[str]]:
    """Centre, mesa and counts as printed, without validating (bad payloads are rendered too)."""
    head, _, rest = payload.partition("!")
    parts = head.split(".")
    centro = parts[0] if parts else "?"
    mesa = parts[1] if len(parts) > 1 else "?"
    counts = rest.split("!")[0].split(",") if rest else []
    return centro, mesa, counts


def render_page(payload: str, election: Election | None = None) -> Image.Image:
    """The clean acta-like page (RGB) for ``payload``; the QR sits in the bottom ~11% of it."""
    centro, mesa, counts = _loose_fields(payload)
    names = {c.code: c.name for c in election.candidates} if election else {}
    cards = election.cards if election else []
    qr = qr_image(payload)
    row_h, top = 26, 40
    n_rows = max(len(counts), 1)
    totals = _totals(counts, election)
    height = top + 210 + 36 + n_rows * row_h + 40 + len(totals) * row_h + 60 + 170
    qr_band = max(qr.height + 20, int(height * 0.11))
    height += qr_band
    page = Image.new("RGB", (PAGE_WIDTH, height), (250, 250, 246))
    d = _AsciiDraw(page)
    f_title, f_text, f_small = _font(30), _font(22), _font(19)
    y = top
    for line, f in (("REPÚBLICA BOLIVARIANA DE VENEZUELA", f_text),
                    ("CONSEJO NACIONAL ELECTORAL", f_text),
                    ("ELECCIÓN PRESIDENCIAL — 28 DE JULIO DE 2024", f_text),
                    ("ACTA DE ESCRUTINIO", f_title)):
        w = d.textlength(line, font=f)
        d.text(((PAGE_WIDTH - w) / 2, y), line, fill=(20, 20, 20), font=f)
        y += 40
    place = _place(centro, mesa, election)
    d.text((50, y + 5), place, fill=(20, 20, 20), font=f_small)
    d.text((50, y + 35), f"CENTRO: {centro}     MESA: {mesa}", fill=(20, 20, 20), font=f_text)
    y += 90
    d.line((40, y, PAGE_WIDTH - 40, y), fill=(30, 30, 30), width=2)
    d.text((50, y + 6), "TARJETA", fill=(20, 20, 20), font=f_small)
    d.text((180, y + 6), "CANDIDATO", fill=(20, 20, 20), font=f_small)
    d.text((PAGE_WIDTH - 170, y + 6), "VOTOS", fill=(20, 20, 20), font=f_small)
    y += 36
    for i, value in enumerate(counts):
        card = cards[i] if i < len(cards) and len(counts) == len(cards) else None
        name = names.get(card.candidate, "") if card else "—"
        if i % 2 == 0:
            d.rectangle((40, y, PAGE_WIDTH - 40, y + row_h - 1), fill=(236, 236, 230))
        d.text((70, y + 2), f"{i + 1:2d}", fill=(20, 20, 20), font=f_small)
        d.text((180, y + 2), name.upper(), fill=(20, 20, 20), font=f_small)
        d.text((PAGE_WIDTH - 160, y + 2), value.strip()[:10], fill=(20, 20, 20), font=f_small)
        y += row_h
    y += 20
    d.line((40, y, PAGE_WIDTH - 40, y), fill=(30, 30, 30), width=2)
    y += 20
    for label, value in totals:
        d.text((70, y), label, fill=(20, 20, 20), font=f_small)
        d.text((PAGE_WIDTH - 160, y), value, fill=(20, 20, 20), font=f_small)
        y += row_h
    y += 60
    for x0 in (60, 380, 700):
        d.line((x0, y + 90, x0 + 240, y + 90), fill=(40, 40, 40), width=1)
        d.text((x0 + 60, y + 96), "FIRMA", fill=(60, 60, 60), font=f_small)
    qx = (PAGE_WIDTH - qr.width) // 2
    qy = height - qr_band + (qr_band - qr.height) // 2
    page.paste(qr.convert("RGB"), (qx, qy))
    return page


class _AsciiDraw(ImageDraw.ImageDraw):
    """ImageDraw that passes every string through _ascii first."""

    def text(self, xy, text, *args, **kw):
        return super().text(xy, _ascii(text), *args, **kw)

    def textlength(self, text, *args, **kw):
        return super().textlength(_ascii(text), *args, **kw)


def _totals(counts: list[str], election: Election | None) -> list[tuple[str, str]]:
    """Per-candidate totals as printed under the card table (only when the counts fold)."""
    if election is None or len(counts) != len(election.cards):
        return [("TOTAL", "—")]
    try:
        votes = election.votes_by_candidate([int(c) for c in counts])
    except ValueError:
        return [("TOTAL", "—")]
    rows = [(c.name.upper(), str(votes[c.code])) for c in election.candidates]
    rows.append(("VOTOS VÁLIDOS", str(sum(votes.values()))))
    return rows


def _place(centro: str, mesa: str, election: Election | None) -> str:
    try:
        m = election.mesa(int(centro), int(mesa)) if election else None
    except ValueError:
        m = None
    if m is None:
        return "ESTADO: —   MUNICIPIO: —   PARROQUIA: —"
    return (f"{election.estados.get(m.cod_edo, '')} / {election.municipios.get((m.cod_edo, m.cod_mun), '')}"
            f" / {election.parroquias.get((m.cod_edo, m.cod_mun, m.cod_par), '')}   ELECTORES: {m.electores}")


def render_acta(payload: str, *, seed: int, degrade: str | dict | None = None,
                election: Election | None = None) -> Image.Image:
    """An acta-like page for ``payload``, photographed with ``degrade`` (a level name or params).

    ``degrade=None`` returns the clean page (seed unused). The payload is drawn as given, even
    when it is not a valid acta, so tests can render bad QRs. Same arguments → same pixels.
    """
    if election is None:
        from .election import load
        election = load()
    page = render_page(payload, election)
    if degrade is None:
        return page
    return _degrade(page, degrade, seed)


def _params(level: str | dict) -> dict:
    if isinstance(level, str):
        if level not in LEVELS:
            raise ValueError(f"unknown degradation level {level!r}; known: {', '.join(LEVELS)}")
        return dict(LEVELS[level])
    p = dict(LEVELS["clean"])
    p.update(level)
    return p


def _homography(src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> list[float]:
    """Coefficients for Image.transform(PERSPECTIVE) mapping output points dst to input src."""
    a, b = [], []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y]); b.append(u)
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y]); b.append(v)
    n = 8
    m = [row + [rhs] for row, rhs in zip(a, b)]
    for col in range(n):  # Gauss-Jordan with partial pivoting
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[piv] = m[piv], m[col]
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col])]
    return [m[i][n] / m[i][i] for i in range(n)]


def _noise(size: tuple[int, int], sigma: float, rng: random.Random) -> Image.Image:
    """Zero-centred (offset 128) noise of standard deviation ~sigma, from rng only."""
    w, h = size
    n1 = Image.frombytes("L", size, rng.randbytes(w * h))
    n2 = Image.frombytes("L", size, rng.randbytes(w * h))
    tri = ImageChops.add(n1, n2, scale=2.0)  # triangular, std ≈ 52
    k = sigma / 52.0
    return tri.point([max(0, min(255, round(128 + (v - 128) * k))) for v in range(256)])


def _degrade_pixels(page: Image.Image, params: dict, rng: random.Random) -> Image.Image:
    """Everything a phone photo does to the page except JPEG compression."""
    def amount(key: str) -> float:
        top = float(params.get(key) or 0)
        return rng.uniform(top / 2, top) if top else 0.0

    page = page.convert("RGB")
    w, h = page.size
    margin = amount("margin")
    mx, my = int(w * margin), int(w * margin)
    cw, ch = w + 2 * mx, h + 2 * my
    angle = math.radians(amount("rotate") * rng.choice((-1, 1)))
    persp = amount("perspective")
    if margin or angle or persp:
        bg_tone = rng.randint(60, 140)
        canvas = Image.new("RGB", (cw, ch), (bg_tone, int(bg_tone * 0.85), int(bg_tone * 0.7)))
        cx, cy = cw / 2, ch / 2
        src = [(0, 0), (w, 0), (w, h), (0, h)]
        dst = []
        for x, y in src:
            x, y = x + mx - cx, y + my - cy
            x, y = x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle)
            dst.append((x + cx + rng.uniform(-persp, persp) * w, y + cy + rng.uniform(-persp, persp) * w))
        # shrink so the whole sheet stays in frame, as a volunteer would frame it
        xs, ys = [p[0] for p in dst], [p[1] for p in dst]
        fit = min(1.0, cw / (max(xs) - min(xs) + 2), ch / (max(ys) - min(ys) + 2))
        ox, oy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
        dst = [((x - ox) * fit + cx, (y - oy) * fit + cy) for x, y in dst]
        coeffs = _homography(src, dst)
        warped = page.transform((cw, ch), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
        mask = Image.new("L", (w, h), 255).transform((cw, ch), Image.Transform.PERSPECTIVE, coeffs,
                                                     Image.Resampling.BILINEAR)
        canvas.paste(warped, (0, 0), mask)
        img = canvas
    else:
        img = page
    dark = amount("dark")
    shade = amount("shade")
    if dark or shade:
        # a light falling off in a random direction; crop inside the rotated square so no
        # black corners appear
        grad = Image.linear_gradient("L").rotate(rng.uniform(0, 360), Image.Resampling.BILINEAR)
        grad = grad.crop((38, 38, 218, 218)).resize(img.size, Image.Resampling.BILINEAR)
        top_level = 1.0 - dark
        lo = max(0, round(255 * top_level * (1 - shade)))
        hi = round(255 * top_level)
        light = grad.point([lo + (hi - lo) * v // 255 for v in range(256)])
        tint = (1.0, 0.95, 0.85) if dark > 0.2 else (1.0, 1.0, 1.0)  # indoor light is warm
        bands = [ImageChops.multiply(b, light.point([round(v * t) for v in range(256)]))
                 for b, t in zip(img.split(), tint)]
        img = Image.merge("RGB", bands)
    blur = amount("blur")
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    scale = float(params.get("scale") or 1.0)
    if scale != 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BILINEAR, reducing_gap=2.0)
    sigma = amount("noise")
    if sigma:
        noise = Image.merge("RGB", [_noise(img.size, sigma, rng) for _ in range(3)])
        img = ImageChops.add(img, noise, scale=1.0, offset=-128)
    if params.get("orient") and rng.random() < float(params["orient"]):
        img = img.transpose(rng.choice((Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                                        Image.Transpose.ROTATE_270)))
    if dark > 0.35:
        img = ImageEnhance.Contrast(img).enhance(0.8)
    return img


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    """JPEG bytes with fixed settings (no EXIF, no optimisation randomness): deterministic."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=int(quality), subsampling=2, optimize=True)
    return buf.getvalue()


def degrade(image: Image.Image, level: str | dict, seed: int) -> Image.Image:
    """A photo-like copy of ``image``: rotation, perspective, light, blur, downscale, noise, JPEG.

    ``level`` is one of LEVELS ("clean", "mild", "moderate", "severe") or a dict overriding
    some of their keys. Deterministic for a given seed.
    """
    params = _params(level)
    img = _degrade_pixels(image, params, random.Random(seed))
    out = Image.open(io.BytesIO(encode_jpeg(img, params["jpeg"])))
    out.load()
    return out


_degrade = degrade  # render_acta's keyword argument is also called ``degrade``


def render_jpeg(payload: str, *, seed: int, level: str | dict = "clean",
                election: Election | None = None) -> bytes:
    """The JPEG file a volunteer's phone might produce for ``payload`` at ``level`` (compressed once)."""
    if election is None:
        from .election import load
        election = load()
    params = _params(level)
    img = _degrade_pixels(render_page(payload, election), params, random.Random(seed))
    return encode_jpeg(img, params["jpeg"])


# --- payloads from real rows -----------------------------------------------------------------

# The card that carries most of a candidate's votes: NM's card 1 and EG's card 36 as in the
# published payload; for the others, their first card (an assumption, used only for renders).
_MAIN_CARD = {"NM": 1, "EG": 36}


def split_votes(total: int, positions: list[int], main: int, rng: random.Random) -> dict[int, int]:
    """Spread ``total`` votes over card positions, most on ``main``; the parts add up to total."""
    if len(positions) == 1:
        return {positions[0]: total}
    weights = [rng.uniform(0.5, 0.9) if p == main else rng.random() ** 2 * 0.1 for p in positions]
    out = dict.fromkeys(positions, 0)
    for p in rng.choices(positions, weights=weights, k=total):
        out[p] += 1
    return out


def payload_for_row(row: dict, election: Election, rng: random.Random) -> str:
    """A QR payload for a real CSV row: each candidate's votes split over its cards.

    The split is synthetic (the CSV has only per-candidate totals) but folding the 38 counts
    back with the election's card table gives exactly the row's numbers.
    """
    counts = [0] * len(election.cards)
    for cand in election.candidates:
        positions = [c.position for c in election.cards if c.candidate == cand.code]
        total = int(row[cand.csv_column])
        main = _MAIN_CARD.get(cand.code, positions[0])
        for pos, n in split_votes(total, positions, main, rng).items():
            counts[pos - 1] = n
    return (f"{int(row['CENTRO'])}.{int(row['MESA']):02d}.1.0001!" + ",".join(map(str, counts))
            + trailers_for_row(row, election))


def trailers_for_row(row: dict, election: Election) -> str:
    """The QR's trailing fields for a sheet row: its nulos where the grammar puts them, else 0."""
    trailers = [0] * election.payload["trailers"]
    if election.payload.get("nulos_trailer"):
        trailers[election.payload["nulos_trailer"] - 1] = int(row.get("VOTOS_NULOS") or 0)
    return "".join(f"!{t}" for t in trailers)


def read_rows(election: Election) -> list[dict]:
    """All rows of the election's per-mesa CSV, each with its ``_line`` number (header = 1)."""
    with open_text(election.registry_path) as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        r["_line"] = i + 2
    return rows


MANIFEST_FIELDS = ["file", "payload", "level", "centro", "mesa", "source_line", "image_seed",
                   "payload_kind"]


def render_sample(out_dir, n: int, election: Election, seed: int,
                  levels=("clean", "mild", "moderate", "severe")) -> list[dict]:
    """Write ``n`` JPEGs ``<centro>_<mesa>_<level>.jpg`` from real CSV rows plus MANIFEST.csv.

    Includes the known published payload (centre 201301006, mesa 1) three times, as it was
    found three times in the wild, and about one mesa in ten photographed twice, so duplicate
    handling has something to find. Returns the manifest rows.
    """
    levels = list(levels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = read_rows(election)
    known_row = next(r for r in rows if int(r["CENTRO"]) == KNOWN_CENTRO and int(r["MESA"]) == KNOWN_MESA)
    jobs: list[tuple[dict, str, str]] = []  # (row, payload, kind)
    for _ in range(min(3, n)):
        jobs.append((known_row, KNOWN_PAYLOAD, "published"))
    n_twice = max(0, (n - len(jobs)) // 10)
    n_single = n - len(jobs) - 2 * n_twice
    picked = rng.sample([r for r in rows if r is not known_row], max(0, n_single + n_twice))
    for i, r in enumerate(picked):
        p = payload_for_row(r, election, rng)
        jobs.append((r, p, "synthetic_split"))
        if i < n_twice:
            jobs.append((r, p, "synthetic_split"))
    manifest, used = [], set()
    for i, (row, payload, kind) in enumerate(jobs[:n]):
        level = levels[i % len(levels)]
        image_seed = seed * 100003 + i
        base = f"{int(row['CENTRO'])}_{int(row['MESA']):02d}_{level}"
        name, k = f"{base}.jpg", 2
        while name in used:
            name, k = f"{base}_{k}.jpg", k + 1
        used.add(name)
        (out / name).write_bytes(render_jpeg(payload, seed=image_seed, level=level, election=election))
        manifest.append({"file": name, "payload": payload, "level": level,
                         "centro": int(row["CENTRO"]), "mesa": int(row["MESA"]),
                         "source_line": row["_line"], "image_seed": image_seed,
                         "payload_kind": kind})
    with open(out / "MANIFEST.csv", "w", newline="", encoding="utf-8") as f:
        wr = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        wr.writeheader()
        wr.writerows(manifest)
    return manifest
