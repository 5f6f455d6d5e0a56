"""The standard election-forensics views and tests over the counted actas, per mesa.

- the "election fingerprint" (Klimek, Yegorov, Hanel & Thurner, PNAS 2012): a 2D histogram of
  turnout against a candidate's share, one point per mesa;
- histograms of turnout and of each main candidate's share in 0.1 % bins, where spikes at whole
  percentages betray figures written to hit a target (Kobak, Shpilkin & Pshenichnikov, AoAS 2016);
- last digits of each main candidate's per-mesa counts (χ² against uniform, counts ≥ 10 only)
  and the share of counts ending in 0 or 5 (binomial test against 1 in 5), national and per estado.

p-values come from ``scipy.stats``. They are rounded (6 significant digits) so the bundle's
bytes do not depend on the last bit of a floating-point library. A flag is a reason to look,
never a proof: see ``NOTES`` for what each can and cannot show.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from scipy import stats

#: A test flags below this p-value. Some hundred tests are run (two per candidate, per scope),
#: so 0.001 keeps the chance of any flag on honest figures near one in ten.
ALPHA = 0.001
#: Last digits are read only on counts of at least this (a count under 10 is its own last digit).
DIGIT_MIN_COUNT = 10
#: A digit test needs at least this many counts in its scope (else no p-value).
DIGIT_MIN_N = 50
#: A main candidate has at least this share of the archived valid votes.
MAIN_SHARE = 0.05

# id -> (title en, title es, what en, what es, limits en, limits es)
NOTES: dict[str, tuple[str, str, str, str, str, str]] = {
    "fingerprint": (
        "Election fingerprint: turnout against the candidate's share",
        "Huella electoral: participación contra la proporción del candidato",
        "Each mesa is a point at its turnout (votes cast / electors) and the candidate's share of its valid "
        "votes; the darker a cell, the more mesas. Honest elections give one or a few round blobs "
        "(Klimek et al., PNAS 2012).",
        "Cada mesa es un punto en su participación (votos / electores) y la proporción del candidato en sus "
        "votos válidos; cuanto más oscura la celda, más mesas. Las elecciones limpias dan una o pocas "
        "manchas redondas (Klimek et al., PNAS 2012).",
        "A smear towards 100 % turnout and 100 % share is what ballot stuffing looks like, but real "
        "places (small, homogeneous communities) can put mesas there too. It shows a pattern, not which "
        "acta is false.",
        "Una estela hacia 100 % de participación y 100 % de proporción es el aspecto del relleno de urnas, "
        "pero lugares reales (comunidades pequeñas y homogéneas) también ponen mesas allí. Muestra un "
        "patrón, no cuál acta es falsa."),
    "turnout": (
        "Turnout per mesa (0.1 % bins)", "Participación por mesa (intervalos de 0,1 %)",
        "How many mesas had each turnout; whole percentages are marked. Figures written by hand to reach "
        "a target pile up on whole percentages (Kobak, Shpilkin & Pshenichnikov, AoAS 2016).",
        "Cuántas mesas tuvieron cada participación; los porcentajes enteros están marcados. Las cifras "
        "escritas a mano para alcanzar una meta se amontonan en porcentajes enteros (Kobak, Shpilkin y "
        "Pshenichnikov, AoAS 2016).",
        "Small mesas make whole percentages more likely by arithmetic alone (e.g. 1 vote in 100 electors); "
        "compare a spike with its neighbours, not with zero.",
        "Las mesas pequeñas hacen más probables los porcentajes enteros por pura aritmética (p. ej. 1 voto "
        "en 100 electores); compare un pico con sus vecinos, no con cero."),
    "share": (
        "Candidate's share per mesa (0.1 % bins)", "Proporción del candidato por mesa (intervalos de 0,1 %)",
        "How many mesas gave the candidate each share of their valid votes; whole percentages are marked.",
        "Cuántas mesas dieron al candidato cada proporción de sus votos válidos; los porcentajes enteros "
        "están marcados.",
        "As for turnout: small mesas make whole percentages common; look for spikes above the neighbours.",
        "Como en la participación: las mesas pequeñas hacen comunes los porcentajes enteros; busque picos "
        "por encima de los vecinos."),
    "last_digit": (
        "Last digit of each count (χ² against uniform)", "Último dígito de cada conteo (χ² contra uniforme)",
        f"For counts of at least {DIGIT_MIN_COUNT} votes the last digit is nearly uniform (each about 10 %). "
        f"Invented numbers rarely are. Flag: p < {ALPHA}.",
        f"En conteos de al menos {DIGIT_MIN_COUNT} votos el último dígito es casi uniforme (cada uno cerca "
        f"del 10 %). Los números inventados rara vez lo son. Marca: p < {ALPHA}.",
        "A flag says the digits are unlikely to be uniform by chance, not that anyone invented them; a "
        "reading error repeated by one source (a misread digit) can do the same. With few counts the test "
        "sees little.",
        "Una marca dice que es improbable que los dígitos sean uniformes por azar, no que alguien los "
        "inventara; un error de lectura repetido por una fuente (un dígito mal leído) puede causar lo "
        "mismo. Con pocos conteos, la prueba ve poco."),
    "round_digits": (
        "Counts ending in 0 or 5", "Conteos que terminan en 0 o 5",
        f"People who make numbers up favour 0 and 5. Expected share: 20 %; the binomial test asks whether "
        f"the observed share is higher. Flag: p < {ALPHA}.",
        f"Quien inventa números prefiere el 0 y el 5. Proporción esperada: 20 %; la prueba binomial "
        f"pregunta si la observada es mayor. Marca: p < {ALPHA}.",
        "Rounded counts are a reason to look at the actas of that place, not proof that they were "
        "rounded on purpose.",
        "Los conteos redondeados son un motivo para mirar las actas de ese lugar, no prueba de que se "
        "redondearan a propósito."),
}


@dataclass(frozen=True)
class Mesa:
    """A counted acta of the registry, as the tests see it."""

    cod_edo: int
    electores: int
    validos: int
    nulos: int
    votes: tuple[int, ...]


def counted_mesas(readings) -> list[Mesa]:
    """The counted actas of the registry (one per mesa, ``audit.readings``' rows), in acta order."""
    return [Mesa(r.cod_edo, r.electores or 0, r.validos, r.nulos or 0, tuple(r.votes))
            for r in readings if r.counted == 1]


def main_candidates(mesas: list[Mesa], codes: list[str]) -> list[str]:
    """Candidates with at least ``MAIN_SHARE`` of the archived valid votes, most voted first."""
    totals = [sum(m.votes[i] for m in mesas) for i in range(len(codes))]
    whole = sum(totals) or 1
    ranked = sorted(range(len(codes)), key=lambda i: (-totals[i], i))
    return [codes[i] for i in ranked if totals[i] / whole >= MAIN_SHARE]


def _scopes(mesas: list[Mesa]) -> list[tuple[str, list[Mesa]]]:
    by_edo: dict[int, list[Mesa]] = defaultdict(list)
    for m in mesas:
        by_edo[m.cod_edo].append(m)
    return [("national", mesas), *((f"estado:{e}", by_edo[e]) for e in sorted(by_edo))]


def _round(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


def digit_tests(mesas: list[Mesa], codes: list[str], main: list[str]) -> list[dict]:
    """last_digit and round_digits per main candidate, national then per estado."""
    out = []
    for scope, group in _scopes(mesas):
        for code in main:
            i = codes.index(code)
            counts = [m.votes[i] for m in group if m.votes[i] >= DIGIT_MIN_COUNT]
            digits = Counter(n % 10 for n in counts)
            observed = [digits.get(d, 0) for d in range(10)]
            n = len(counts)
            chi = p_chi = share = p_round = None
            if n >= DIGIT_MIN_N:
                res = stats.chisquare(observed)
                chi, p_chi = _round(float(res.statistic)), _round(float(res.pvalue))
                k = observed[0] + observed[5]
                share = _round(k / n)
                p_round = _round(float(stats.binomtest(k, n, 0.2, alternative="greater").pvalue))
            detail = ",".join(map(str, observed))
            out.append({"test_id": "last_digit", "scope": scope, "candidate": code, "n": n, "statistic": chi,
                        "p_value": p_chi, "flag": int(p_chi is not None and p_chi < ALPHA), "detail": detail})
            out.append({"test_id": "round_digits", "scope": scope, "candidate": code, "n": n, "statistic": share,
                        "p_value": p_round, "flag": int(p_round is not None and p_round < ALPHA),
                        "detail": detail})
    return out


def histograms(mesas: list[Mesa], codes: list[str], main: list[str]) -> list[dict]:
    """Sparse histogram cells {view, scope, x, y, mesas}: 'turnout' and 'share:C' in permille bins
    (x 0..999, 100 % in the last), 'fingerprint:C' in percent bins (x turnout, y share, 0..99).
    Integer arithmetic only: the same actas always give the same cells."""
    idx = [(c, codes.index(c)) for c in main]
    cells: dict[str, Counter] = defaultdict(Counter)
    for m in mesas:
        keys = []
        cast = m.validos + m.nulos
        if m.electores > 0:
            keys.append(("turnout", min(999, cast * 1000 // m.electores), 0))
        if m.validos > 0:
            for c, i in idx:
                keys.append((f"share:{c}", min(999, m.votes[i] * 1000 // m.validos), 0))
                if m.electores > 0:
                    keys.append((f"fingerprint:{c}", min(99, cast * 100 // m.electores),
                                 min(99, m.votes[i] * 100 // m.validos)))
        cells["national"].update(keys)
        cells[f"estado:{m.cod_edo}"].update(keys)
    return [{"view": view, "scope": scope, "x": x, "y": y, "mesas": n}
            for scope, _ in _scopes(mesas) for (view, x, y), n in sorted(cells[scope].items())]
