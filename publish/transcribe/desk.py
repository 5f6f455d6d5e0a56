"""The coordinator's desk of `testigo transcribe`, behind its own code (``/coordinacion?clave=...``).

  /coordinacion                    progress per hour and what remains, the review queue, the
                                   volunteers (entries, agreement, known-answer score); POST
                                   changes the consensus rule
  /coordinacion/foto/SHA256        the photo beside every entry, differences highlighted, the
                                   comments; POST: comment, accept an entry, not an acta, reopen,
                                   set aside
  /coordinacion/foto/SHA256/imagen the photo (EXIF removed)
  /coordinacion/voluntario/ID      POST: revoke an invitation, void its entries, set aside

The rules are in ``archive.consensus`` and ``archive.desk``; this module only reads forms and
renders. Volunteers' numbers are shown here, and only here: the desk is not for volunteers.
"""
from __future__ import annotations

from datasette.utils.asgi import Response

from archive import consensus, desk, volunteers
from archive.errors import TranscriptionError
from archive.transcription_form import desk_fields

from .session import _client, _with_session, render, session

ACTIONS = ("comentar", "aceptar", "no_acta", "reabrir", "apartar")


def _state(datasette):
    return getattr(datasette, "testigo_transcribe", None)


def _signed_in(st, request) -> bool:
    actor = request.actor
    return bool(st.desk_code) and isinstance(actor, dict) and actor.get("d") == st.desk_fingerprint


async def _gate(datasette, request):
    """None when signed in to the desk, else the answer to give (sign-in page, or refusal)."""
    st = _state(datasette)
    if _signed_in(st, request):
        return None
    code = request.args.get("clave")
    if code is not None:
        if st.throttled(_client(request)):
            return await render(datasette, request, "testigo_transcribe_desk.html",
                                {"needs_code": True, "throttled": True}, 429)
        if st.desk_code_ok(code):
            _, vid = session(st, request)
            return _with_session(datasette, Response.redirect(request.path), st, vid, request,
                                 invited=bool(isinstance(request.actor, dict) and request.actor.get("i")), desk=True)
        st.failed(_client(request))
    return await render(datasette, request, "testigo_transcribe_desk.html",
                        {"needs_code": True, "wrong": code is not None}, 403 if code is not None else 200)


async def overview(datasette, request):
    st = _state(datasette)
    refused = await _gate(datasette, request)
    if refused is not None:
        return refused
    error = None
    if request.method == "POST":
        form = await request.post_vars()
        try:
            await st.run(lambda q: q._tx(consensus.set_rule, q.db, form.get("regla", "")))
        except TranscriptionError as e:
            error = e
        else:
            return Response.redirect(request.path)

    def read(q):
        return {"queue": desk.review_queue(q.db), "volunteers": desk.volunteers(q.db),
                "progress": desk.progress(q.db), "status": q.status()}
    ctx = await st.run(read)
    return await render(datasette, request, "testigo_transcribe_desk.html",
                        {**ctx, "rules": list(consensus.RULES), "error": error}, 400 if error else 200)


async def foto(datasette, request):
    st = _state(datasette)
    refused = await _gate(datasette, request)
    if refused is not None:
        return refused
    sha = request.url_vars["sha"]
    fields = desk_fields(st.election)
    error = None
    if request.method == "POST":
        form = await request.post_vars()
        action, comment = form.get("accion"), form.get("comentario")
        try:
            await st.run(lambda q: q._tx(_act, q, sha, action, comment, form.get("entrada")))
        except TranscriptionError as e:
            error = e
        else:
            return Response.redirect(request.path)

    def read(q):
        return {"photo": q.photo(sha), "entries": desk.entries(q.db, sha, [f[0] for f in fields]),
                "decision": desk.decision(q.db, sha), "comments": consensus.comments(q.db, sha)}
    ctx = await st.run(read)
    if ctx["photo"] is None:
        return Response.text("not a photo of the queue / no es una foto de la cola", status=404)
    return await render(datasette, request, "testigo_transcribe_desk_foto.html",
                        {**ctx, "fields": fields, "error": error}, 400 if error else 200)


def _act(q, sha: str, action: str | None, comment: str | None, entry: str | None) -> None:
    db = q.db
    if action == "comentar":
        if not (comment or "").strip():
            raise TranscriptionError("empty_comment", "write the comment first", "Escriba el comentario primero.")
        consensus.log(db, sha, "comment", comment)
    elif action == "aceptar":
        if not (entry or "").isdigit():
            raise TranscriptionError("unknown_entry", "choose the entry to accept", "Elija la entrada a aceptar.")
        consensus.accept(db, sha, int(entry), q._acta_of, comment)
    elif action == "no_acta":
        consensus.close(db, sha, "not_an_acta", comment)
    elif action == "apartar":
        consensus.close(db, sha, "set_aside", comment)
    elif action == "reabrir":
        consensus.reopen(db, sha, q._acta_of, comment)
    else:
        raise TranscriptionError("unknown_action", "unknown decision", "Decisión desconocida.")


async def imagen(datasette, request):
    st = _state(datasette)
    if not _signed_in(st, request):
        return Response.text("desk code first / clave de coordinación primero", status=403)
    sha = request.url_vars["sha"]
    photo = await st.run(lambda q: q.photo(sha))
    if photo is None:
        return Response.text("not a photo of the queue / no es una foto de la cola", status=404)
    data = await st.run(lambda q: q.image(sha))
    return Response(data, content_type=photo.media_type, headers={"Cache-Control": "private, no-store"})


async def voluntario(datasette, request):
    st = _state(datasette)
    if not _signed_in(st, request) or request.method != "POST":
        return Response.redirect("/coordinacion")
    vid = int(request.url_vars["vid"])
    form = await request.post_vars()
    action = form.get("accion")
    invited = await st.run(lambda q: volunteers.is_invited(q.db, vid))
    if action == "revocar" and invited:
        await st.run(lambda q: q.revoke(vid, void=False))
    elif action == "anular" and invited:
        await st.run(lambda q: q.revoke(vid, void=True))
    elif action in ("apartar", "anular"):
        await st.run(lambda q: q.set_aside(vid, "set aside by the coordinator"))
    return Response.redirect("/coordinacion#voluntarios")


ROUTES = [(r"^/coordinacion$", overview), (r"^/coordinacion/foto/(?P<sha>[0-9a-f]{64})$", foto),
          (r"^/coordinacion/foto/(?P<sha>[0-9a-f]{64})/imagen$", imagen),
          (r"^/coordinacion/voluntario/(?P<vid>\d+)$", voluntario)]
