"""`testigo transcribe`: a small local web app where volunteers type in unreadable acta photos.

Built on Datasette, which the project already serves the public site with: its plugin routes,
Jinja templates, signed cookies (``ds_actor``), CSRF protection of every POST form (asgi-csrf)
and uvicorn. No database is served: the pages read and write the workdir through
``archive.transcription`` (the rules live there), each worker thread on its own connection.

Who may use it: volunteers the coordinator invited (``--invite``: a personal link each, see
``archive.volunteers``) and, until the first invitation is made or with ``--room-code`` in a
trusted room, whoever has the workdir's access code (``clave``), printed with the URL when
the server starts and kept in the workdir (so a restarted server keeps everyone signed in;
``--new-code`` replaces it and signs everyone out). The coordinator's desk (``/coordinacion``)
has its own code (``--new-desk-code`` replaces it). The code guards every page and photo on
loopback too, so another local user or a web page in the same browser (DNS rebinding) cannot
read the photos. Wrong codes are throttled per address. Nothing but the app's own pages and
static files is served; responses carry a strict Content-Security-Policy and ``no-store``.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from archive import election as election_mod
from archive import transcription
from archive.transcription import Transcriptions
from archive.workdir import Workdir


PLUGIN_NAME = "testigo_transcribe"
CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"   # no 0/o, 1/l/i: read aloud and typed by people
META_CODE, META_SECRET, META_DESK = "transcribe_code", "transcribe_secret", "transcribe_desk_code"
SNAPSHOT_SECONDS = 1.0     # how old the queue a page hands photos from may be
LEASE_SECONDS = 600          # a photo shown to a volunteer is theirs for this long
MAX_FAILURES, FAILURE_WINDOW = 10, 600   # wrong access codes per address before a pause
# then one try per SLOW_SECONDS from that address: guessing a 12-character code stays hopeless,
# and a school behind one router is never locked out of the right code (a short pause at most)
SLOW_SECONDS = 5
MAX_BODY = 64 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


def new_code() -> str:
    chars = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))
    return f"{chars[:4]}-{chars[4:8]}-{chars[8:]}"


def normal_code(text: str | None) -> str:
    return "".join(ch for ch in (text or "").lower() if ch.isalnum())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def lan_warning(host: str, port: int, code: str) -> str | None:
    """What to tell the coordinator before sharing on a network (None on loopback)."""
    if is_loopback(host):
        return None
    return (f"ATENCIÓN / WARNING: sharing on the network ({host}:{port}).\n"
            f"  Anyone on this network who has the access code ({code}) can see the photos and enter numbers.\n"
            "  Give the code only to your volunteers, use a network you trust (not public wifi), and stop the\n"
            "  server (Ctrl+C) when done. The connection is plain HTTP: not encrypted.\n"
            f"  Cualquiera en esta red que tenga la clave ({code}) puede ver las fotos y escribir números.\n"
            "  Dé la clave solo a sus voluntarios, use una red de confianza (no una wifi pública) y detenga\n"
            "  el servidor (Ctrl+C) al terminar. La conexión es HTTP simple: no va cifrada.")


@dataclass
class TranscribeState:
    """What the pages share: the workdir, its access code, who holds which photo now."""

    workdir: Path
    election_id: str
    code: str
    secret: str
    desk_code: str = ""
    room_code: bool = True                         # does the shared access code let people in?
    held: dict = field(default_factory=dict)       # volunteer id -> (photo sha256, since)
    skipped: dict = field(default_factory=dict)    # volunteer id -> {photo sha256}
    failures: dict = field(default_factory=dict)   # client address -> [times of wrong codes]
    _snapshot: tuple = (0.0, None)                 # (when, the queue as read then)
    tried: dict = field(default_factory=dict)      # client address -> time of its last code typed
    _local: threading.local = field(default_factory=threading.local)

    @property
    def fingerprint(self) -> str:
        """Kept in the session cookie: a new access code signs everyone out."""
        return hmac.new(self.secret.encode(), self.code.encode(), hashlib.sha256).hexdigest()[:16]

    @property
    def invite_fingerprint(self) -> str:
        """Kept in an invited volunteer's cookie: a new access code does not sign them out."""
        return hmac.new(self.secret.encode(), b"invitation", hashlib.sha256).hexdigest()[:16]

    @property
    def desk_fingerprint(self) -> str:
        return hmac.new(self.secret.encode(), b"desk " + self.desk_code.encode(), hashlib.sha256).hexdigest()[:16]

    def code_ok(self, text: str | None) -> bool:
        return self.room_code and hmac.compare_digest(normal_code(text).encode(), normal_code(self.code).encode())

    def desk_code_ok(self, text: str | None) -> bool:
        return bool(self.desk_code) and hmac.compare_digest(normal_code(text).encode(),
                                                            normal_code(self.desk_code).encode())

    def queue(self) -> Transcriptions:
        """This thread's own connection to the workdir."""
        q = getattr(self._local, "queue", None)
        if q is None:
            q = self._local.queue = Transcriptions(self.workdir, self.election_id)
        return q

    def snapshot(self, q: Transcriptions) -> list:
        """The queue as read at most ``SNAPSHOT_SECONDS`` ago: what hands out photos and shows
        counts. Hundreds of volunteers then cost one read of the queue a second, not one per
        request; every save still checks the photo's state in its own transaction."""
        at, queue = self._snapshot
        if queue is None or time.monotonic() - at > SNAPSHOT_SECONDS:
            queue = transcription.photos(q.db)
            self._snapshot = (time.monotonic(), queue)
        return queue

    def fresh(self) -> None:
        self._snapshot = (0.0, None)

    async def run(self, fn, *args):
        """``fn(queue, *args)`` in a worker thread: SQLite waits never block the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(self.queue(), *args))

    @property
    def election(self):
        return election_mod.load(self.election_id)

    # who works on what
    def holders(self, volunteer_id: int) -> dict[str, int]:
        """{photo: how many other volunteers have it on screen now}."""
        now, out = time.monotonic(), {}
        for vid, (sha, since) in list(self.held.items()):
            if now - since > LEASE_SECONDS:
                del self.held[vid]
            elif vid != volunteer_id:
                out[sha] = out.get(sha, 0) + 1
        return out

    def throttled(self, client: str) -> bool:
        """Whether ``client`` must wait before trying a code: after MAX_FAILURES wrong codes in
        FAILURE_WINDOW, one try per SLOW_SECONDS (the right code is accepted on its turn)."""
        now = time.monotonic()
        recent = [t for t in self.failures.get(client, []) if now - t < FAILURE_WINDOW]
        self.failures[client] = recent
        if len(recent) < MAX_FAILURES:
            return False
        return now - self.tried.get(client, 0.0) < SLOW_SECONDS

    def attempted(self, client: str) -> None:
        self.tried[client] = time.monotonic()

    def failed(self, client: str) -> None:
        self.failures.setdefault(client, []).append(time.monotonic())


def prepare(workdir: str | Path, rotate_code: bool = False, room_code: bool = False,
            rotate_desk_code: bool = False) -> TranscribeState:
    """Open the workdir's transcription queue; make (or reuse) its access code, desk code and
    cookie secret. The access code lets people in only while nobody is invited, or with ``room_code``."""
    from archive import volunteers
    path = Path(workdir)
    with Workdir(path, create=False) as wd:
        election_id = wd.election_id or election_mod.DEFAULT_ELECTION
        code, secret, desk = wd.get_meta(META_CODE), wd.get_meta(META_SECRET), wd.get_meta(META_DESK)
        if code is None or rotate_code:
            code = new_code()
            wd.set_meta(META_CODE, code)
        if desk is None or rotate_desk_code:
            desk = new_code()
            wd.set_meta(META_DESK, desk)
        if secret is None:
            secret = secrets.token_hex(32)
            wd.set_meta(META_SECRET, secret)
        invited = volunteers.any_invitations(wd.db)
    election_mod.load(election_id)   # a broken definition fails here, not on the first page
    return TranscribeState(path.resolve(), election_id, code, secret, desk, room_code or not invited)
