"""Who is on the other end of a request to `testigo transcribe`: the signed session cookie.

One cookie (Datasette's signed ``ds_actor``) says which volunteer this browser is (by the shared
access code, ``k``, or by an invitation, ``i``) and, kept apart, whether it signed in to the
coordinator's desk (``d``). Shared by the volunteers' pages and the desk's.
"""
from __future__ import annotations

from datasette.utils.asgi import Response

from ..site.pages.common import helpers
from .app import TranscribeState


def state_of(datasette) -> TranscribeState | None:
    return getattr(datasette, "testigo_transcribe", None)


def session(st: TranscribeState, request) -> tuple[bool, int | None]:
    """(may enter, volunteer id or None) from the signed ``ds_actor`` cookie: an invitation
    that is not revoked, or the access code while it lets people in."""
    actor = request.actor
    if not isinstance(actor, dict):
        return False, None
    vid = actor.get("v")
    if actor.get("i") == st.invite_fingerprint and isinstance(vid, int):
        # a read of one row; WAL readers never wait for writers
        return (True, vid) if st.queue().may_work(vid) else (False, None)
    if actor.get("k") != st.fingerprint or not st.room_code:
        return False, None
    return True, vid if isinstance(vid, int) else None


def _with_session(datasette, response: Response, st: TranscribeState, volunteer_id: int | None,
                  request=None, invited: bool = False, desk: bool | None = None) -> Response:
    """The cookie: volunteer (by code or invitation) and, kept apart, the desk's sign-in."""
    old = request.actor if request is not None and isinstance(request.actor, dict) else {}
    actor = {"i": st.invite_fingerprint} if invited else {"k": st.fingerprint}
    if volunteer_id:
        actor["v"] = volunteer_id
    keep_desk = old.get("d") if desk is None else (st.desk_fingerprint if desk else None)
    if keep_desk:
        actor["d"] = keep_desk
    # Secure over HTTPS (behind a proxy, as its X-Forwarded-Proto says when --proxy trusts it), so
    # the cookie is never sent back over plain HTTP; on a LAN over HTTP there is no HTTPS to ask for
    secure = request is not None and request.scheme == "https"
    response.set_cookie("ds_actor", datasette.sign({"a": actor}, "actor"), httponly=True, samesite="strict",
                        secure=secure)
    return response


def is_invited(st: TranscribeState, request) -> bool:
    actor = request.actor
    return isinstance(actor, dict) and actor.get("i") == st.invite_fingerprint


def _client(request) -> str:
    client = request.scope.get("client")
    return client[0] if client else "?"


async def render(datasette, request, template: str, context: dict, status: int = 200) -> Response:
    h = helpers(request)
    body = await datasette.render_template([template], {**h, **context}, request=request)
    return Response.html(body, status=status, headers={"Content-Language": h["lang"]})
