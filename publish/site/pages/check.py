"""Comprobar mi acta: compare what a citizen has (QR text, or mesa and numbers) with the archive."""
from __future__ import annotations

import urllib.parse

from datasette.database import QueryInterrupted

from archive import comparison
from archive.acta import parse_payload, validate
from archive.comparison import PAYLOAD_MESSAGES_EN, PAYLOAD_MESSAGES_ES
from archive.errors import PayloadError

from ... import vendor
from ..state import SiteState, state_of
from .common import as_json, clean_text, error_page, normal_mesa_id, render
from .queries import mesa_data

MAX_QR_CHARS = 4000          # anything longer is refused before parsing


def fields_of(st: SiteState) -> list[comparison.Field]:
    """The compared fields, from the bundle's candidates and cards tables."""
    return comparison.fields([(c["code"], c["name"]) for c in st.candidates],
                             [(k["position"], k["candidate"]) for k in st.cards])


def browser_spec(st: SiteState) -> dict | None:
    """What comprobar.js needs to check a QR read in the visitor's browser (None: no election)."""
    election = st.election()
    if election is None:
        return None
    spec = comparison.browser_spec(fields_of(st), election.payload, [k["candidate"] for k in st.cards])
    spec["payload"]["estados"] = sorted(election.valid_estados)     # acta.check_centre's rule
    spec["messages"] = {k: {"es": v, "en": PAYLOAD_MESSAGES_EN[k]} for k, v in PAYLOAD_MESSAGES_ES.items()}
    spec["wasm"] = vendor.static_url("zxing-wasm", "zxing_reader.wasm")
    spec["reader"] = vendor.static_url("zxing-wasm", "index.js")
    return spec


def _parse_numbers_form(st: SiteState, args) -> tuple[dict, list[str]]:
    yours, bad = {}, []
    for key in ["validos", "nulos"] + [c["code"] for c in st.candidates]:
        raw = (args.get(key) or "").strip()[:20]
        if raw == "":
            continue
        t = raw.replace(".", "").replace(",", "").replace(" ", "")
        if t.isascii() and t.isdigit() and len(t) <= 7:
            yours[key] = int(t)
        else:
            bad.append(key)
    return yours, bad


async def check_acta(datasette, args) -> dict:
    """Compare what a citizen has (QR text, or mesa code and numbers) with the archive."""
    st = state_of(datasette)
    await st.warm(datasette)
    res: dict = {"ok": False, "result": None, "mesa_id": None, "fields": [], "compared_with": None,
                 "other_matches": [], "input": None, "message_es": "", "message_en": "", "code": None}
    qr_raw = args.get("qr")
    mesa_raw = args.get("mesa")
    if qr_raw is not None and qr_raw.strip():
        if len(qr_raw) > MAX_QR_CHARS:
            res.update(result="invalid", code="too_long", message_es=PAYLOAD_MESSAGES_ES["too_long"],
                       message_en=f"The text is {len(qr_raw)} characters, far too long for an acta QR.")
            return res
        res["input"] = "qr"
        election = st.election()
        if election is None:
            res.update(result="unavailable", code="no_election",
                       message_es="La definición de la elección no está disponible en este servidor.",
                       message_en=f"The election definition is not available on this server: {st._election_error}")
            return res
        try:
            acta = parse_payload(qr_raw.strip(), election)
        except PayloadError as e:
            res.update(result="invalid", code=e.code,
                       message_es=PAYLOAD_MESSAGES_ES.get(e.code, "El texto no es un QR de acta válido."),
                       message_en=str(e))
            return res
        except Exception as e:  # parse_payload promises PayloadError; stay clean regardless
            res.update(result="invalid", code="unparseable", message_es="No se pudo leer ese texto.",
                       message_en=f"Could not read that text ({type(e).__name__}).")
            return res
        mesa_id = acta.mesa_key
        try:
            validate(acta, election)
        except PayloadError as e:
            if e.code != "unknown_mesa":   # reported below, from the bundle's own registry
                res["warning_code"], res["warning_en"] = e.code, str(e)
        yours = comparison.reading_numbers(acta)
        payload = acta.payload
    elif mesa_raw is not None and (mesa_raw.strip() or any(args.get(k) for k in ("validos", "nulos"))):
        res["input"] = "numbers"
        mesa_id = normal_mesa_id(urllib.parse.unquote(mesa_raw))
        if mesa_id is None:
            res.update(result="invalid", code="bad_mesa",
                       message_es="Escriba la mesa como CENTRO.MESA, por ejemplo 201301006.01.",
                       message_en="Write the mesa as CENTRO.MESA, for example 201301006.01.")
            return res
        yours, bad = _parse_numbers_form(st, args)
        if bad:
            res.update(result="invalid", code="bad_number", mesa_id=mesa_id,
                       message_es="Estos campos no son números enteros: " + ", ".join(bad) + ".",
                       message_en="These fields are not whole numbers: " + ", ".join(bad) + ".")
            return res
        if not yours:
            res.update(result="invalid", code="no_numbers", mesa_id=mesa_id,
                       message_es="Escriba al menos un número del acta (votos de un candidato, válidos o nulos).",
                       message_en="Enter at least one number from the acta (a candidate's votes, valid or null).")
            return res
        payload = None
    else:
        return res  # nothing asked: the form only
    res["mesa_id"] = mesa_id
    data = await mesa_data(datasette, mesa_id)
    if data is None and res["input"] == "qr":  # a valid acta QR of a mesa the registry lacks
        res.update(result="not_archived", code="outside_registry", outside_registry=True,
                   message_es=f"La mesa {mesa_id} está fuera del registro (la hoja por mesa publicada no la trae) "
                              "y todavía no tenemos su acta. Si tiene la foto, envíela: se conserva y se cuenta aparte.",
                   message_en=f"Mesa {mesa_id} is outside the registry (the published per-mesa sheet does not list "
                              "it) and we have no acta of it yet. If you have the photo, send it in: it is kept and "
                              "counted apart.")
        return res
    if data is None:
        res.update(result="unknown_mesa", code="unknown_mesa",
                   message_es=f"La mesa {mesa_id} no está en el registro de esta elección: revise el código del "
                              "centro y el número de mesa.",
                   message_en=f"Mesa {mesa_id} is not in this election's registry: check the centre code and "
                              "the mesa number.")
        return res
    res["ok"] = True
    res["outside_registry"] = bool(data["mesa"].get("outside_registry"))
    found = comparison.check_mesa(fields_of(st), yours, data, payload)
    res.update(found)
    if found["result"] == "not_archived":
        res.update(code="not_archived",
                   message_es=f"Todavía no tenemos ningún acta de la mesa {mesa_id}. Si tiene la foto, envíela.",
                   message_en=f"We have no acta of mesa {mesa_id} yet. If you have the photo, send it in.")
        return res
    rows = found["fields"]
    differ = [r for r in rows if not r["same"]]
    if not differ:
        res.update(code="match",
                   message_es=f"Coincide: los {len(rows)} campos comparados son iguales a los del acta archivada "
                              f"de la mesa {mesa_id}.",
                   message_en=f"Match: all {len(rows)} fields compared equal the archived acta of mesa {mesa_id}.")
    else:
        res.update(code="mismatch",
                   message_es=f"No coincide: {len(differ)} de {len(rows)} campos son distintos de los del acta "
                              f"archivada de la mesa {mesa_id}.",
                   message_en=f"Mismatch: {len(differ)} of {len(rows)} fields differ from the archived acta "
                              f"of mesa {mesa_id}.")
    if res["outside_registry"]:
        res["message_es"] += " Es una mesa fuera del registro: su acta se cuenta aparte."
        res["message_en"] += " It is a mesa outside the registry: its acta is counted apart."
    return res


async def comprobar(datasette, request):
    st = state_of(datasette)
    fmt = request.url_vars.get("fmt")
    try:
        res = await check_acta(datasette, request.args)
    except QueryInterrupted:
        return await error_page(datasette, request, 503, "El servidor está ocupado; inténtelo de nuevo.",
                                "The server is busy; try again.", fmt)
    if fmt:
        return as_json(st, res)
    qr_echo, _ = clean_text(request.args.get("qr"), 400)
    return await render(datasette, request, "testigo_comprobar.html", {
        "res": res, "qr": qr_echo, "spec": browser_spec(st), "form": {k: (request.args.get(k) or "")[:20]
                                            for k in ["mesa", "validos", "nulos"] + [c["code"] for c in st.candidates]}})
