"""Running the volunteers' app: its Datasette (no database of its own shown) served by uvicorn."""
from __future__ import annotations

from pathlib import Path

from archive.errors import WorkdirError
from archive.transcription import Transcriptions

from ..site.app import STATIC, TEMPLATES
from .app import PLUGIN_NAME, TranscribeState, lan_warning, prepare


def register_plugin() -> None:
    from datasette.plugins import pm

    from . import pages
    if pm.get_plugin(PLUGIN_NAME) is None and not pm.is_registered(pages):
        pm.register(pages, name=PLUGIN_NAME)


def make_datasette(state: TranscribeState):
    """A Datasette that serves only the transcription pages of ``state``'s workdir."""
    from datasette.app import Datasette

    register_plugin()

    class TranscribeDatasette(Datasette):
        def __init__(self, *args, **kwargs):
            self.testigo_transcribe = state   # the hooks need it while Datasette builds its app
            super().__init__(*args, **kwargs)

    return TranscribeDatasette(
        [], secret=state.secret, template_dir=str(TEMPLATES), static_mounts=[("assets", str(STATIC))],
        settings={"default_allow_sql": False, "allow_download": False, "template_debug": False})


def serve(workdir: str | Path, host: str = "127.0.0.1", port: int = 8002, *, rotate_code: bool = False,
          room_code: bool = False, rotate_desk_code: bool = False, echo=print, warn=print,
          forwarded_allow_ips: str | None = None) -> None:
    """Serve the transcription app until interrupted; ``echo`` gets the URL with the access code.
    ``forwarded_allow_ips``: the reverse proxies whose X-Forwarded-For is believed (None: none, so a
    rotating header cannot dodge the per-address limit on access codes)."""
    from ..site.server import serve_app

    state = prepare(workdir, rotate_code, room_code, rotate_desk_code)
    q = Transcriptions(state.workdir, state.election_id)
    try:
        from archive import pending
        pending.replay(q)              # entries kept while the workdir was busy, recorded first
        status = q.status()
    finally:
        q.close()
    if status["photos"] == 0:
        raise WorkdirError(f"{workdir} has no photos waiting for transcription (none unreadable); "
                           "ingest the photos first with `testigo ingest`")
    warning = lan_warning(host, port, state.code)
    if warning:
        warn(warning)
    ds = make_datasette(state)
    echo(f"{status['photos']} photos to transcribe: {status['open'] + status['waiting'] + status['review']} open "
         f"({status['review']} in review), {status['agreed']} agreed; rule {status['rule']}. "
         + (f"Access code / clave: {state.code}" if state.room_code else
            "Invitations only (the shared access code is off; --room-code turns it on)."))

    def listening(url: str) -> None:
        if state.room_code:
            echo(f"Open / abra {url}?clave={state.code}   (Ctrl+C to stop)")
        else:
            echo(f"Serving / sirviendo {url}  (Ctrl+C to stop): volunteers open their personal invitation links, "
                 "cada voluntario abre su invitación")
        echo(f"Coordinator's desk / mesa de coordinación: {url}coordinacion?clave={state.desk_code}")
        if host in ("0.0.0.0", "::"):
            echo("  (volunteers use this machine's address on the network instead of "
                 f"{host}: see `hostname -I`)")
    serve_app(ds.app(), host, port, startup=ds.invoke_startup, echo=listening,
              forwarded_allow_ips=forwarded_allow_ips)
