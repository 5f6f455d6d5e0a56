"""What "my acta matches the archived one" means: the fields compared and the rule, in one place.

A citizen's acta (a QR read from their photo, or numbers they type) is compared with the
archived acta of the same mesa, field by field. Three places make that comparison and all use
these definitions: the site's /comprobar form (server side), /comprobar in the visitor's browser
(the page embeds :func:`browser_spec`; publish/static/comprobar.js applies the same rule to
``/mesa/<id>.json``), and ``testigo check``. The archived side is always the mesa as the site
publishes it at ``/mesa/<id>.json`` (the site's mesa query), so a bundle, a live site
and a static mirror are compared the same way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .acta import Acta


@dataclass(frozen=True)
class Field:
    key: str    # "validos", "nulos", a candidate code, or "card:<position>"
    es: str
    en: str


def fields(candidates, cards) -> list[Field]:
    """The compared fields, in display order.

    ``candidates``: [(code, name)]; ``cards``: [(position, candidate code)], as in the bundle's
    candidates and cards tables (or the election definition).
    """
    out = [Field("validos", "Votos válidos", "Valid votes"), Field("nulos", "Votos nulos", "Null votes")]
    out += [Field(code, name, name) for code, name in candidates]
    out += [Field(f"card:{pos}", f"Tarjeta {pos} ({cand})", f"Card {pos} ({cand})") for pos, cand in cards]
    return out


def reading_numbers(acta: Acta) -> dict:
    """The numbers of a parsed QR (or transcribed) acta, keyed like :func:`fields`."""
    nums = {"validos": acta.validos, **acta.votes}
    if acta.nulos is not None:
        nums["nulos"] = acta.nulos
    nums.update({f"card:{i}": c for i, c in enumerate(acta.counts or (), 1)})
    return nums


def archived_numbers(a: dict) -> dict:
    """The numbers of one archived acta as ``/mesa/<id>.json`` gives it (an item of ``actas``)."""
    nums = {"validos": a.get("validos")}
    if a.get("nulos") is not None:
        nums["nulos"] = a["nulos"]
    nums.update({k: v for k, v in (a.get("votes") or {}).items() if v is not None})
    if a.get("cards"):
        nums.update({f"card:{i}": v for i, v in enumerate(a["cards"], 1) if v is not None})
    return nums


def compare(field_list: list[Field], yours: dict, archived: dict) -> list[dict]:
    """Field-by-field rows ``{field, es, en, yours, archived, same}``.

    Only the fields the citizen has are compared; a per-card count or nulos that the archived
    acta does not state (a transcribed sheet has no cards, the QR has no nulos) is skipped
    rather than called different.
    """
    out = []
    for f in field_list:
        if f.key not in yours:
            continue
        a = archived.get(f.key)
        if a is None and f.key.startswith(("card:", "nulos")):
            continue
        out.append({"field": f.key, "es": f.es, "en": f.en, "yours": yours[f.key], "archived": a,
                    "same": yours[f.key] == a})
    return out


def check_mesa(field_list: list[Field], yours: dict, mesa: dict | None, payload: str | None = None) -> dict:
    """Compare a citizen's numbers with a mesa as ``/mesa/<id>.json`` gives it (None: not in the registry).

    Returns ``{result, fields, compared_with, other_matches, identical_payload, image_url}``;
    result is ``match``, ``mismatch``, ``not_archived`` (a registry mesa with no acta yet) or
    ``unknown_mesa``. The reference is the counted acta, else the first one; image_url is the
    archived photo to show beside the citizen's (the reference's, else the first acta's that has
    one: a counted sheet row has no photo).
    """
    res = {"result": None, "fields": [], "compared_with": None, "other_matches": [], "identical_payload": False,
           "image_url": None}
    if mesa is None:
        return dict(res, result="unknown_mesa")
    actas = mesa.get("actas") or []
    if not actas:
        return dict(res, result="not_archived")
    ref = next((a for a in actas if a["id"] == mesa.get("counted_acta")), None) or actas[0]
    rows = compare(field_list, yours, archived_numbers(ref))
    res["fields"] = rows
    res["compared_with"] = {k: ref.get(k) for k in ("id", "source", "status", "counted", "image_url")}
    res["other_matches"] = [a["id"] for a in actas if a["id"] != ref["id"]
                            and all(r["same"] for r in compare(field_list, yours, archived_numbers(a)))]
    res["identical_payload"] = bool(payload) and any(a.get("payload") == payload for a in actas)
    res["image_url"] = next((a["image_url"] for a in [ref, *actas] if a.get("image_url")), None)
    res["result"] = "match" if all(r["same"] for r in rows) else "mismatch"
    return res


def browser_spec(field_list: list[Field], payload_spec: dict, card_candidates: list[str]) -> dict:
    """What the browser needs to parse a QR text and compare it exactly as :func:`check_mesa` does.

    ``payload_spec``: the election's payload grammar (election.json ``payload``);
    ``card_candidates``: the candidate code of each ballot card, in payload order.
    """
    keep = ("counts", "trailers", "centro_digits", "mesa_digits", "max_count", "nulos_trailer")
    return {"fields": [asdict(f) for f in field_list], "payload": {k: payload_spec.get(k) for k in keep},
            "cards": list(card_candidates)}


# What a visitor reads when a QR text is not an acta of this election (the site and comprobar.js).
PAYLOAD_MESSAGES_ES = {
    "empty": "El texto está vacío: pegue el texto del código QR del acta.",
    "not_acta": "Ese texto no parece el QR de un acta de esta elección. Debe tener la forma "
                "CENTRO.MESA.N.SERIE!38 números separados por comas!N!N.",
    "bad_header": "El encabezado del QR (CENTRO.MESA.N.SERIE) no es válido.",
    "wrong_count_number": "El acta debe traer exactamente un número por tarjeta de la boleta.",
    "non_numeric_count": "Uno de los valores no es un número entero.",
    "negative_count": "Uno de los números es negativo.",
    "count_too_large": "Uno de los números es mayor que los electores de cualquier mesa.",
    "too_long": "El texto es demasiado largo para ser el QR de un acta.",
}
#: Short English forms for the browser (the server's English messages are the PayloadError's own).
PAYLOAD_MESSAGES_EN = {
    "empty": "The QR text is empty.",
    "not_acta": "That QR is not an acta QR of this election (CENTRE.MESA.N.SERIAL!38 comma-separated numbers!N!N).",
    "bad_header": "The QR header (CENTRE.MESA.N.SERIAL) is not valid.",
    "wrong_count_number": "The acta must have exactly one number per ballot card.",
    "non_numeric_count": "One of the values is not a whole number.",
    "negative_count": "One of the numbers is negative.",
    "count_too_large": "One of the numbers is larger than any mesa's electors.",
    "too_long": "The text is far too long for an acta QR.",
}
