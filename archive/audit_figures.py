"""The audit's figures as SVG text, drawn once on the server (no script: they work in the static
mirror, offline and on paper). Used by the site's /auditoria pages and the HTML report.

Every figure takes the sparse histogram cells of ``audit_histograms`` and returns one ``<svg>``
element with a <title> and <desc> so a screen reader says what it shows.
"""
from __future__ import annotations

import math
from html import escape

#: Light to dark (ColorBrewer Blues, 8 classes): mesas per cell on a log scale.
SHADES = ("#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")
BAR = "#6b7b8c"
MARK = "#c0392b"      # whole percentages (Kobak et al.) and flags


def _svg(view: str, title: str, desc: str, body: str, cls: str) -> str:
    return (f'<svg class="{cls}" viewBox="{view}" role="img" xmlns="http://www.w3.org/2000/svg" '
            f'preserveAspectRatio="xMidYMid meet"><title>{escape(title)}</title><desc>{escape(desc)}</desc>'
            f'{body}</svg>')


def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def fingerprint(cells: list[tuple[int, int, int]], title: str, x_label: str, y_label: str, desc: str) -> str:
    """2D histogram: x = turnout %, y = share % (cells 0..99, one unit each), darker = more mesas."""
    top = max((n for _, _, n in cells), default=0)
    paths: dict[int, list[str]] = {}
    for x, y, n in cells:
        level = min(len(SHADES) - 1, int(len(SHADES) * math.log1p(n) / math.log1p(top))) if top > 1 else len(SHADES) - 1
        paths.setdefault(level, []).append(f"M{x} {99 - y}h1v1h-1z")
    body = ['<rect x="0" y="0" width="100" height="100" fill="#fff" stroke="#999" stroke-width="0.3"/>']
    for level in sorted(paths):
        body.append(f'<path fill="{SHADES[level]}" d="{"".join(paths[level])}"/>')
    for t in range(0, 101, 20):
        body.append(f'<path d="M{t} 100v1.5M-1.5 {100 - t}h1.5" stroke="#555" stroke-width="0.3"/>'
                    f'<text x="{t}" y="105" font-size="3.6" text-anchor="middle">{t}</text>'
                    f'<text x="-2.5" y="{101.2 - t}" font-size="3.6" text-anchor="end">{t}</text>')
    body.append(f'<text x="50" y="112" font-size="4" text-anchor="middle">{escape(x_label)}</text>'
                f'<text transform="translate(-10 50) rotate(-90)" font-size="4" text-anchor="middle">'
                f'{escape(y_label)}</text>')
    legend = "".join(f'<rect x="{103}" y="{92 - 6 * i}" width="4" height="5" fill="{c}"/>'
                     for i, c in enumerate(SHADES))
    body.append(legend + f'<text x="105" y="102" font-size="3" text-anchor="middle">1</text>'
                f'<text x="105" y="{48.5}" font-size="3" text-anchor="middle">{top}</text>')
    return _svg("-14 -2 124 117", title, desc, "".join(body), "t-fig t-fingerprint")


def histogram(bins: list[tuple[int, int]], title: str, x_label: str, desc: str) -> str:
    """1D histogram in 0.1 % bins (x 0..999); the bins of whole percentages (k.0 %) in red."""
    w, h = 200.0, 60.0
    top = max((n for _, n in bins), default=0) or 1
    plain, marked = [], []
    for x, n in bins:
        bh = h * n / top
        (marked if x % 10 == 0 else plain).append(f"M{_fmt(x * 0.2)} {_fmt(h - bh)}h0.2v{_fmt(bh)}h-0.2z")
    body = [f'<rect x="0" y="0" width="{w}" height="{h}" fill="#fff" stroke="#999" stroke-width="0.3"/>',
            f'<path fill="{BAR}" d="{"".join(plain)}"/>', f'<path fill="{MARK}" d="{"".join(marked)}"/>']
    for t in range(0, 101, 10):
        body.append(f'<path d="M{t * 2} {h}v1.5" stroke="#555" stroke-width="0.3"/>'
                    f'<text x="{t * 2}" y="{h + 5}" font-size="3.6" text-anchor="middle">{t}</text>')
    body.append(f'<text x="{w / 2}" y="{h + 11}" font-size="4" text-anchor="middle">{escape(x_label)}</text>'
                f'<text x="-1.5" y="4" font-size="3.6" text-anchor="end">{top}</text>'
                f'<text x="-1.5" y="{h}" font-size="3.6" text-anchor="end">0</text>')
    return _svg(f"-10 -2 {w + 14} {h + 15}", title, desc, "".join(body), "t-fig t-hist")


def digits(counts: list[int], title: str, desc: str, flagged: bool) -> str:
    """Bars of the last digits 0..9 as shares, with the 10 % a uniform digit would have."""
    n = sum(counts) or 1
    top = max(0.2, max(c / n for c in counts) if counts else 0)
    w, h = 100.0, 40.0
    body = [f'<rect x="0" y="0" width="{w}" height="{h}" fill="#fff" stroke="#999" stroke-width="0.3"/>']
    for d, c in enumerate(counts):
        bh = h * (c / n) / top
        fill = MARK if flagged and d in (0, 5) else BAR
        body.append(f'<rect x="{d * 10 + 1.5}" y="{_fmt(h - bh)}" width="7" height="{_fmt(bh)}" fill="{fill}"/>'
                    f'<text x="{d * 10 + 5}" y="{h + 5}" font-size="4" text-anchor="middle">{d}</text>')
    y10 = _fmt(h - h * 0.1 / top)
    body.append(f'<path d="M0 {y10}H{w}" stroke="#000" stroke-width="0.4" stroke-dasharray="2 1.5"/>'
                f'<text x="{w + 1}" y="{float(y10) + 1.3}" font-size="3.6">10%</text>')
    return _svg(f"-2 -2 {w + 12} {h + 9}", title, desc, "".join(body), "t-fig t-digits")
