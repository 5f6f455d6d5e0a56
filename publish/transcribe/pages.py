"""The pages of `testigo transcribe` and the Datasette hooks that serve them.

Every hook does nothing on a Datasette that :func:`publish.transcribe.server.make_datasette` did not
make (``datasette.testigo_transcribe``), so the public site's plugin and this one coexist.

  /                     sign in: access code (once per browser), name (private), public alias
  /invitacion/TOKEN     a volunteer's personal link: signs them in as that invitation
  /siguiente            the next photo for this volunteer (review first), or "nothing left"
  /foto/SHA256          the photo beside the form; POST saves an entry
  /foto/SHA256/imagen   the photo itself (EXIF/GPS removed), only to signed-in volunteers
  /estado[.json]        how far the queue is (counts only: nobody's numbers)
  /salir                sign out (POST)
  /coordinacion...      the coordinator's desk (publish.transcribe_desk), behind its own code
Independence: no page or answer ever shows the numbers of an entry, not even the volunteer's own.
"""
from __future__ import annotations

import re
import time

from datasette import hookimpl
from datasette.utils.asgi import Response

from archive.errors import TranscriptionError
from archive.transcription_form import SUMMARY, form_fields, groups

from ..site.pages.common import helpers
from . import desk as transcribe_desk
from .app import CSP, MAX_BODY, SLOW_SECONDS, TranscribeState
from .session import _client, _with_session, is_invited, render, session, state_of

SHA = r"(?P<sha>[0-9a-f]{64})"
_SERVED = re.compile(r"^/(|entrar|salir|siguiente|estado(\.json)?|foto/[0-9a-f]{64}(/imagen)?|assets/[\w./-]+"
                     r"|invitacion/[\w-]{1,100}|coordinacion(/foto/[0-9a-f]{64}(/imagen)?|/voluntario/\d+)?)$")
HECHO = {  # what became of the photo just saved: (es, en)
    "waiting": ("Guardado. Esa foto espera la entrada de otra persona.", "Saved. That photo now waits for someone "
                "else's entry."),
    "agreed": ("Guardado. Coincide con otra entrada: la foto ya es un acta.", "Saved. It agrees with another "
               "entry: the photo is now an acta."),
    "review": ("Guardado. No coincide con otra entrada: la foto pasa a revisión, otra persona decidirá.",
               "Saved. It differs from another entry: the photo goes to review; someone else will decide."),
    "illegible": ("Guardado. Otra persona tampoco pudo leerla: la foto queda apartada como ilegible.",
                  "Saved. Someone else could not read it either: the photo is set aside as illegible."),
    "unresolved": ("Guardado. Ninguna entrada coincide tras varias: la foto queda apartada para un coordinador.",
                   "Saved. No two entries agree after several: the photo is set aside for a coordinator."),
    "late": ("Guardado. La foto se decidió mientras usted escribía; su entrada se conserva.",
             "Saved. The photo was decided while you typed; your entry is kept."),
    "kept": ("Guardado. El archivo está ocupado en este momento: su entrada queda guardada y se registrará "
             "en cuanto se libere.", "Saved. The archive is busy right now: your entry is kept and will be "
             "recorded as soon as it is free."),
}


def _redirect(request, path: str, **params) -> Response:
    return Response.redirect(helpers(request)["link"](path, **params))


async def _sign_in_page(datasette, request, st, knows_code: bool, error: TranscriptionError | None = None,
                        values: dict | None = None, status: int = 200, invited: bool = False) -> Response:
    return await render(datasette, request, "testigo_transcribe_entrar.html",
                        {"needs_code": not knows_code, "error": error, "values": values or {}, "invited": invited,
                         "room_code": st.room_code}, status)


# --- pages -------------------------------------------------------------------------------------------

async def index(datasette, request):
    st = state_of(datasette)
    knows, vid = session(st, request)
    code = request.args.get("clave")
    if code is not None and not knows:
        if st.throttled(_client(request)):
            return await _too_many(datasette, request)
        st.attempted(_client(request))
        if st.code_ok(code):
            return _with_session(datasette, _redirect(request, "/"), st, None, request)
        st.failed(_client(request))
        return await _sign_in_page(datasette, request, st, False, _wrong_code(st), status=403)
    if knows and vid is not None and not is_invited(st, request):
        return _redirect(request, "/siguiente")
    return await _sign_in_page(datasette, request, st, knows, invited=knows and is_invited(st, request))


async def invitacion(datasette, request):
    """A personal link: the volunteer is that invitation from now on, whatever they type."""
    st = state_of(datasette)
    if st.throttled(_client(request)):
        return await _too_many(datasette, request)
    st.attempted(_client(request))
    try:
        volunteer = await st.run(lambda q: q.invited(request.url_vars["token"]))
    except TranscriptionError as e:     # revoked: it can do nothing more
        return await _sign_in_page(datasette, request, st, False, e, status=403)
    if volunteer is None:
        st.failed(_client(request))
        err = TranscriptionError("unknown_invitation", "this link is not an invitation of this team; check it "
                                 "or ask your coordinator", "Este enlace no es una invitación de este equipo: "
                                 "revíselo o consulte a quien coordina.")
        return await _sign_in_page(datasette, request, st, False, err, status=404)
    return _with_session(datasette, _redirect(request, "/"), st, volunteer.id, request, invited=True)


def _wrong_code(st: TranscribeState | None = None) -> TranscriptionError:
    if st is not None and not st.room_code:
        return TranscriptionError("invitation_only", "this team works by personal invitation: open the link your "
                                  "coordinator gave you", "Este equipo trabaja con invitaciones personales: abra "
                                  "el enlace que le dio quien coordina.", "clave")
    return TranscriptionError("wrong_code", "that is not this workdir's access code; ask your coordinator",
                              "Esa no es la clave de este equipo: pídasela a quien coordina.", "clave")


async def _too_many(datasette, request):
    err = TranscriptionError("throttled", f"too many wrong access codes from this network; wait {SLOW_SECONDS} "
                             "seconds and type the code again", f"Demasiadas claves equivocadas desde esta red: "
                             f"espere {SLOW_SECONDS} segundos y escriba la clave otra vez.")
    return await _sign_in_page(datasette, request, state_of(datasette), False, err, status=429)


async def entrar(datasette, request):
    st = state_of(datasette)
    if request.method != "POST":
        return _redirect(request, "/")
    form = await request.post_vars()
    knows, vid = session(st, request)
    if knows and vid is not None and is_invited(st, request):   # a name typed here changes nobody
        try:
            await st.run(lambda q: q.set_alias(vid, form.get("alias")))
        except TranscriptionError as e:
            return await _sign_in_page(datasette, request, st, True, e, form, 400, invited=True)
        return _redirect(request, "/siguiente")
    if not knows:
        if st.throttled(_client(request)):
            return await _too_many(datasette, request)
        st.attempted(_client(request))
        if not st.code_ok(form.get("clave")):
            st.failed(_client(request))
            return await _sign_in_page(datasette, request, st, False, _wrong_code(st), form, 403)
    try:
        volunteer = await st.run(lambda q: q.volunteer(form.get("nombre", ""), form.get("alias")))
    except TranscriptionError as e:
        return await _sign_in_page(datasette, request, st, True, e, form, 400)
    return _with_session(datasette, _redirect(request, "/siguiente"), st, volunteer.id, request)


async def salir(datasette, request):
    st = state_of(datasette)
    knows, vid = session(st, request)
    if request.method == "POST" and knows:
        st.held.pop(vid, None)
        return _with_session(datasette, _redirect(request, "/"), st, None, request)
    return _redirect(request, "/")


async def siguiente(datasette, request):
    st = state_of(datasette)
    knows, vid = session(st, request)
    if vid is None:
        return _redirect(request, "/")
    skip = st.skipped.setdefault(vid, set())
    if re.fullmatch(r"[0-9a-f]{64}", request.args.get("saltar") or ""):
        skip.add(request.args["saltar"])
    held = st.holders(vid)
    photo = await st.run(lambda q: q.next_photo(vid, skip, held, st.snapshot(q)))
    if photo is None and skip:   # everything left was skipped: offer those again
        skip.clear()
        photo = await st.run(lambda q: q.next_photo(vid, skip, held, st.snapshot(q)))
    hecho = request.args.get("hecho")
    if photo is None:
        status = await st.run(lambda q: q.status(vid, st.snapshot(q)))
        return await render(datasette, request, "testigo_transcribe_fin.html",
                            {"status": status, "hecho": HECHO.get(hecho)})
    return _redirect(request, f"/foto/{photo.sha256}", hecho=hecho if hecho in HECHO else None)


async def foto(datasette, request):
    st = state_of(datasette)
    knows, vid = session(st, request)
    if vid is None:
        return _redirect(request, "/")
    sha = request.url_vars["sha"]
    photo, entered, status, linked = await st.run(lambda q: (q.photo(sha, vid), sha in q.entered(vid),
                                                             q.status(vid, st.snapshot(q)), q.linked_mesa(sha)))
    if photo is None:
        return await render(datasette, request, "testigo_transcribe_fin.html",
                            {"status": status, "gone": True}, 404)
    values, error, code = {}, None, 200
    if request.method == "POST":
        form = await request.post_vars()
        fields = None if form.get("accion") == "ilegible" else form
        try:
            saved = await st.run(lambda q: q.save_or_keep(sha, vid, fields))   # never lost while busy
        except TranscriptionError as e:
            if e.code in ("already_entered", "not_in_queue"):
                return _redirect(request, "/siguiente")
            if e.code == "revoked":
                return _redirect(request, "/")
            values, error, code = form, e, 400
        else:
            st.held.pop(vid, None)
            if saved.state == "kept":      # not recorded yet: not offered to this volunteer again
                st.skipped.setdefault(vid, set()).add(sha)
            else:
                st.skipped.get(vid, set()).discard(sha)
            return _redirect(request, "/siguiente", hecho=saved.state)
    if entered or photo.decision:
        return _redirect(request, "/siguiente")
    st.held[vid] = (sha, time.monotonic())
    volunteer = await st.run(lambda q: q.volunteer_by_id(vid))
    hecho = HECHO.get(request.args.get("hecho")) if request.method == "GET" else None
    return await render(datasette, request, "testigo_transcribe_foto.html", {
        "photo": photo, "fields": form_fields(st.election), "values": values, "error": error,
        "focus": error.field if error and error.field else "centro", "status": status,
        "volunteer": volunteer, "hecho": hecho, "groups": groups(st.election), "summary": SUMMARY,
        "linked": linked}, code)


async def imagen(datasette, request):
    st = state_of(datasette)
    knows, vid = session(st, request)
    sha = request.url_vars["sha"]
    if vid is None:
        return Response.text("sign in first / entre primero", status=403)
    photo = await st.run(lambda q: q.photo(sha, vid))
    if photo is None:
        return Response.text("not a photo of the queue / no es una foto de la cola", status=404)
    data = await st.run(lambda q: q.image(sha))
    return Response(data, content_type=photo.media_type, headers={"Cache-Control": "private, no-store"})


async def estado(datasette, request):
    st = state_of(datasette)
    knows, vid = session(st, request)
    if not knows:
        return Response.json({"ok": False, "error": "sign in first"}, status=403)
    status = await st.run(lambda q: q.status(vid))
    if request.url_vars.get("fmt"):
        return Response.json({"ok": True, **status})
    return await render(datasette, request, "testigo_transcribe_fin.html", {"status": status, "only_status": True})


# --- hooks -------------------------------------------------------------------------------------------

@hookimpl
def register_routes(datasette):
    if state_of(datasette) is None:
        return []
    return [(r"^/$", index), (r"^/invitacion/(?P<token>[\w-]{1,100})$", invitacion), (r"^/entrar$", entrar), (r"^/salir$", salir), (r"^/siguiente$", siguiente),
            (rf"^/foto/{SHA}$", foto), (rf"^/foto/{SHA}/imagen$", imagen), (r"^/estado(?P<fmt>\.json)?$", estado)] + transcribe_desk.ROUTES


@hookimpl
def asgi_wrapper(datasette):
    if state_of(datasette) is None:
        return None

    def wrap(app):
        async def gate(scope, receive, send):
            """Only this app's pages; small bodies; strict headers on every answer."""
            if scope["type"] != "http":
                return await app(scope, receive, send)
            headers = dict(scope.get("headers") or [])
            if not _SERVED.match(scope["path"]):
                return await _plain(send, 404, b"not found / no existe")
            if int(headers.get(b"content-length", b"0") or 0) > MAX_BODY:
                return await _plain(send, 413, b"too large / demasiado grande")
            if b"content-length" not in headers and scope.get("method") not in ("GET", "HEAD"):
                # a chunked body: read at most MAX_BODY + 1 bytes of it, never the rest
                body, more = b"", True
                while more and len(body) <= MAX_BODY:
                    message = await receive()
                    if message["type"] != "http.request":
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                if len(body) > MAX_BODY:
                    return await _plain(send, 413, b"too large / demasiado grande")
                receive = _replay(body, receive)

            async def send_with_headers(message):
                if message["type"] == "http.response.start":
                    extra = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
                             (b"referrer-policy", b"no-referrer"), (b"x-content-type-options", b"nosniff")]
                    if not scope["path"].startswith("/assets/"):
                        extra.append((b"cache-control", b"no-store"))
                    kept = [(k, v) for k, v in message.get("headers", [])
                            if k.lower() not in {k for k, _ in extra}]
                    message = dict(message, headers=kept + extra)
                await send(message)
            await app(scope, receive, send_with_headers)
        return gate
    return wrap


def _replay(body: bytes, receive):
    """A ``receive`` that gives the body already read, then whatever the client sends next."""
    sent = False

    async def again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return again


async def _plain(send, status: int, body: bytes) -> None:
    # 413: the connection is closed after the answer, so the rest of a body is never read
    close = [(b"connection", b"close")] if status == 413 else []
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-security-policy", CSP.encode()),
                            *close]})
    await send({"type": "http.response.body", "body": body})
