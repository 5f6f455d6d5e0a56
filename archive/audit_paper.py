"""The audit's checks that only the paper allows, over the bundle's ``printed`` table.

The printed acta says things no QR and no sheet says: the voters counted by the machine and in
the notebook, the sum of its own party lines beside its válidos, the acta's UUID in the
council's systems, when it was printed. ``archive.printed_checks`` has the checks (over one
reading, or over all of them for the UUID); this runs them on the readings published in a
bundle, as rows of the same ``audit_checks`` / ``audit_check_mesas`` tables as every other
check (``audit_tables.write_audit``), so the CLI, the HTML report, /auditoria and the app show
them like the others. Only what OCR kept is checked: a figure is in ``printed`` only when its
digits and its words agree (two reads for the UUID), so a finding is what the paper prints.
"""
from __future__ import annotations

import json
import sqlite3

from . import printed_checks
from .audit import Check, mesa_key
from .printed import Count, Printed

_ONLY = ("Only photos whose printed acta was read by OCR (testigo read) are checked, and only the "
         "figures OCR kept (digits and words agreeing); a photo whose mesa neither its QR nor its "
         "printed code names is not listed. ")
_ONLY_ES = ("Solo se comprueban las fotos cuyo acta impresa se leyó por OCR (testigo read), y solo las "
            "cifras que el OCR conservó (cifras y letras coinciden); una foto cuya mesa no nombran ni su QR "
            "ni su código impreso no se lista. ")

# id -> (title en, title es, about en, about es, limits en, limits es)
CHECKS: dict[str, tuple[str, str, str, str, str, str]] = {
    "voters_machine_notebook": (
        "Machine and notebook count different voters",
        "La máquina y el cuaderno cuentan votantes distintos",
        "The printed acta gives the voters counted twice: by the voting machine and in the voters' "
        "notebook (signed by each voter). Here the two differ.",
        "El acta impresa da los votantes contados dos veces: por la máquina de votación y en el cuaderno "
        "de votación (que firma cada elector). Aquí difieren.",
        _ONLY + "A voter who signed and left without voting, or a notebook line the mesa's members "
        "miscounted, also makes them differ by one or two: the size of the difference matters.",
        _ONLY_ES + "Un elector que firmó y se fue sin votar, o una cuenta del cuaderno mal hecha por los "
        "miembros de mesa, también los hace diferir en uno o dos: importa el tamaño de la diferencia."),
    "validos_not_lines": (
        "Printed válidos differ from the sum of the printed lines",
        "Los válidos impresos no son la suma de las líneas impresas",
        "Every one of the 38 party lines was read, and their sum is not the válidos the same acta prints "
        "in its summary.",
        "Se leyeron las 38 líneas de partido, y su suma no es el total de válidos que la misma acta imprime "
        "en su resumen.",
        _ONLY + "Checked only when all 38 lines and the válidos were read; the machine prints both from one "
        "count, so a difference is rare and worth a look at the photo.",
        _ONLY_ES + "Solo se comprueba cuando se leyeron las 38 líneas y los válidos; la máquina imprime ambos de "
        "un mismo conteo, así que una diferencia es rara y merece mirar la foto."),
    "uuid_two_actas": (
        "One printed UUID on two different actas", "Un mismo UUID impreso en dos actas distintas",
        "The UUID printed under the acta code identifies the acta in the council's systems; here one UUID "
        "is printed on actas with different codes (two photos of the same acta rightly share it).",
        "El UUID impreso bajo el código del acta la identifica en los sistemas del consejo; aquí un mismo UUID "
        "aparece en actas con códigos distintos (dos fotos de una misma acta lo comparten con razón).",
        _ONLY + "The UUID and the code are kept only when two reads agree, so most photos are not "
        "compared; what the UUID is derived from is not public.",
        _ONLY_ES + "El UUID y el código se conservan solo cuando dos lecturas coinciden, así que la mayoría de "
        "las fotos no se comparan; de qué se deriva el UUID no es público."),
    "printed_before_close": (
        "Acta printed before the official closing time of the polls",
        "Acta impresa antes de la hora oficial de cierre",
        "The print time on the acta (the voting machine's clock, local time) is earlier than 18:00 on "
        "election day, the official closing time: the machine was closed and the acta printed early.",
        "La hora impresa en el acta (el reloj de la máquina de votación, hora local) es anterior a las 18:00 "
        "del día de la elección, la hora oficial de cierre: la máquina se cerró y el acta se imprimió antes.",
        _ONLY + "Polls officially closed at 18:00 but the council's rules (art. 308 of the regulations of the "
        "Ley Orgánica de Procesos Electorales) keep a mesa open while voters queue, so a late print time shows nothing (the real scans print 19:03 to 20:54); an early one "
        "can also come from a wrong machine clock, or a mesa closed early with no voter left in line. A "
        "reprinted copy prints its own, later time. It is a reason to look, not proof.",
        _ONLY_ES + "Las mesas cerraban oficialmente a las 18:00, pero las normas del consejo (art. 308 del "
        "Reglamento de la Ley Orgánica de Procesos Electorales) las mantienen abiertas mientras haya electores en cola, así que una hora tardía no muestra nada (los escaneos "
        "reales imprimen de 19:03 a 20:54); una temprana puede venir también de un reloj de máquina mal "
        "puesto, o de una mesa cerrada antes sin electores en cola. Una copia reimpresa lleva su propia "
        "hora, más tardía. Es un motivo para mirar, no una prueba."),
}


def _count(v) -> Count:
    return Count(value=v)


def reading_of_row(r: dict) -> Printed:
    """A Printed rebuilt from a bundle ``printed`` row (the figures kept; not the OCR's text)."""
    p = Printed()
    p.header.update({k: r.get(k) for k in p.header if k in r})
    p.voters = {"machine": _count(r.get("voters_machine")), "notebook": _count(r.get("voters_notebook"))}
    p.lines = [_count(v) for v in json.loads(r.get("lines") or "[]")]
    p.summary = {"validos": _count(r.get("validos")), "nulos": _count(r.get("nulos"))}
    return p


def photos(conn: sqlite3.Connection) -> list[tuple[dict, Printed, str, int | None]]:
    """(printed row, reading, mesa id, acta id) of every published printed reading whose mesa is
    known: the photo's own acta (QR or transcription), else the printed acta code."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'printed'").fetchone():
        return []
    cur = conn.execute(
        "SELECT p.*, (SELECT a.mesa_id FROM actas a WHERE a.image_sha256 = p.image_sha256 AND a.status != "
        "'duplicate' ORDER BY a.id LIMIT 1) AS acta_mesa, (SELECT a.id FROM actas a WHERE a.image_sha256 = "
        "p.image_sha256 AND a.status != 'duplicate' ORDER BY a.id LIMIT 1) AS acta_id FROM printed p "
        "ORDER BY p.image_sha256")
    cols = [d[0] for d in cur.description]
    out = []
    for values in cur:
        r = dict(zip(cols, values))
        mesa = r["acta_mesa"] or (f"{r['centro']}.{r['mesa']:02d}" if r["centro"] is not None else None)
        if mesa:
            out.append((r, reading_of_row(r), mesa, r["acta_id"]))
    return out


def run_checks(conn: sqlite3.Connection, election_date: str = "2024-07-28") -> list[Check]:
    """The paper's checks over the bundle's printed readings, in the order of ``CHECKS``."""
    checks = {cid: Check(cid) for cid in CHECKS}
    rows = photos(conn)
    for r, p, mesa, acta_id in rows:
        sha = r["image_sha256"]
        if f := printed_checks.voters_differ(p):
            checks["voters_machine_notebook"].add(mesa, acta_id, detail=f"machine {f.other}, notebook {f.printed} "
                                                  f"(photo {sha})")
        if f := printed_checks.validos_differ(p):
            checks["validos_not_lines"].add(mesa, acta_id, detail=f"válidos {f.printed}, lines {f.other} "
                                            f"(photo {sha})")
        if f := printed_checks.printed_before_close(p, election_date):
            checks["printed_before_close"].add(mesa, acta_id, detail=f"printed {f.printed} (photo {sha})")
    where = {r["image_sha256"]: (mesa, acta_id) for r, _, mesa, acta_id in rows}
    reused = printed_checks.uuid_reused((r["image_sha256"], p) for r, p, _, _ in rows)
    for n, (u, pairs) in enumerate(sorted(reused.items(), key=lambda kv: min(mesa_key(where[s][0])
                                                                              for s, _ in kv[1])), 1):
        for sha, code in pairs:
            checks["uuid_two_actas"].add(where[sha][0], where[sha][1], grp=n, detail=f"{u} on {code} (photo {sha})")
    for c in checks.values():
        c.rows.sort(key=lambda x: (x["grp"] or 0, mesa_key(x["mesa_id"]), x["acta_id"] or 0, x["detail"] or ""))
    return list(checks.values())
