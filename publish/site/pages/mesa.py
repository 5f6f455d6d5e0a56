"""One mesa: its acta photo(s), numbers, participation, cross-check and flags."""
from __future__ import annotations

import urllib.parse

from datasette.utils.asgi import Response

from ..state import state_of
from .common import as_json, bars, error_page, helpers, normal_mesa_id, render
from .queries import mesa_data


async def mesa_redirect(datasette, request):
    mesa_id = normal_mesa_id(request.args.get("id"))
    if mesa_id is None:
        return await error_page(datasette, request, 400,
                                "Escriba la mesa como CENTRO.MESA, por ejemplo 201301006.01.",
                                "Write the mesa as CENTRO.MESA, for example 201301006.01.")
    return Response.redirect(helpers(request)["link"](f"/mesa/{mesa_id}"))


async def mesa_page(datasette, request):
    st = state_of(datasette)
    await st.warm(datasette)
    fmt = request.url_vars.get("fmt")
    raw = urllib.parse.unquote(request.url_vars.get("id") or "")
    mesa_id = normal_mesa_id(raw)
    if mesa_id is None:
        return await error_page(datasette, request, 404,
                                "Ese código de mesa no es válido; escríbalo como CENTRO.MESA, por ejemplo 201301006.01.",
                                "That is not a valid mesa code; write it as CENTRO.MESA, e.g. 201301006.01.", fmt)
    if mesa_id != raw and not fmt:
        return Response.redirect(helpers(request)["link"](f"/mesa/{mesa_id}"))
    data = await mesa_data(datasette, mesa_id)
    if data is None:
        return await error_page(datasette, request, 404, f"La mesa {mesa_id} no está en el registro de esta elección "
                                "ni tiene un acta archivada.",
                                f"Mesa {mesa_id} is not in this election's registry and has no archived acta.", fmt)
    if fmt:
        return as_json(st, dict(data, ok=True))
    counted = next((a for a in data["actas"] if a["id"] == data["counted_acta"]), None)
    chart = bars(st, {k: v for k, v in counted["votes"].items() if v is not None}) if counted else []
    return await render(datasette, request, "testigo_mesa.html", dict(data, counted=counted, chart=chart))
