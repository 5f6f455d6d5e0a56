"""Volunteers as invitations, volunteers set aside, and the keyed hash that replaces them in open data.

A typed name proves nothing: one person who types two names would be two volunteers and could
make an acta alone. So once a coordinator invites people, a volunteer *is* an invitation: a
personal link with a random secret (only its sha256 is kept in ``state.db``), one row of
``volunteers`` per invitation, whatever name or alias is typed later. Two entries count as two
people only when they come from two invitations. A revoked invitation can do nothing more.

A volunteer is *set aside* (by the coordinator, or silently when their known-answer score falls,
see ``known_answers``): their entries stay in the workdir but count for nothing.

Open data names nobody: each volunteer is published as ``HMAC-SHA256(workdir secret, id)``
(the secret is ``meta.volunteer_hash_key``, made once per workdir and never published), so the
same volunteer has the same hash in every table and every bundle of that workdir, and a name
cannot be guessed back from it.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import TranscriptionError

META_HASH_KEY = "volunteer_hash_key"
NAME_LIMIT = 80
INVITE_LIMIT = 1000          # invitations one --invite may print
LINK_PATH = "/invitacion/"   # the app's page a link opens


@dataclass(frozen=True)
class Invitation:
    id: int                  # = the volunteer's id: what --revoke and the desk name
    name: str                # the coordinator's label for the person (private)
    token: str | None        # the link's secret: known only when just created
    created_at: str
    revoked_at: str | None = None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _name_key(token_sha: str) -> str:
    """The volunteers.name_key of an invitation: a newline is never in a typed name's key
    (names must be printable), so a typed name can never become an invitation's volunteer."""
    return f"\ninvitation {token_sha}"


def invite(db, name: str, count: int = 1) -> list[Invitation]:
    """``count`` personal invitations labelled ``name`` (numbered when several), in one transaction."""
    name = " ".join((name or "").split())
    if not (1 <= len(name) <= NAME_LIMIT and name.isprintable()):
        raise TranscriptionError("bad_name", f"an invitation needs a name of 1 to {NAME_LIMIT} characters",
                                 f"Una invitación necesita un nombre de 1 a {NAME_LIMIT} caracteres.")
    if not 1 <= count <= INVITE_LIMIT:
        raise TranscriptionError("bad_count", f"--count must be 1 to {INVITE_LIMIT}",
                                 f"--count debe ser de 1 a {INVITE_LIMIT}.")
    out = []
    db.execute("BEGIN IMMEDIATE")
    try:
        for i in range(1, count + 1):
            label = name if count == 1 else f"{name} {i}"
            token = secrets.token_urlsafe(18)
            sha, at = token_hash(token), now()
            vid = db.execute("INSERT INTO volunteers (name, name_key, alias, created_at) VALUES (?, ?, NULL, ?)",
                             (label, _name_key(sha), at)).lastrowid
            db.execute("INSERT INTO invitations (volunteer_id, token_sha256, created_at) VALUES (?, ?, ?)",
                       (vid, sha, at))
            out.append(Invitation(vid, label, token, at))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return out


def by_token(db, token: str | None) -> int | None:
    """The volunteer id of a live invitation link, or None for a link that is not one.

    Raises TranscriptionError ``revoked`` for a revoked one, so the volunteer is told to ask.
    """
    if not token or len(token) > 100:
        return None
    row = db.execute("SELECT volunteer_id, revoked_at FROM invitations WHERE token_sha256 = ?",
                     (token_hash(token),)).fetchone()
    if row is None:
        return None
    if row[1]:
        raise revoked_error()
    return row[0]


def revoked_error() -> TranscriptionError:
    return TranscriptionError("revoked", "this invitation was withdrawn by the coordinator; ask them",
                              "Esta invitación fue retirada por quien coordina: consulte con esa persona.")


def revoke(db, volunteer_id: int) -> Invitation:
    """Withdraw an invitation (idempotent). Its entries stay until the coordinator voids them."""
    inv = invitation(db, volunteer_id)
    if inv is None:
        raise TranscriptionError("unknown_invitation", f"there is no invitation {volunteer_id}; "
                                 "`testigo transcribe --workdir W --invitations` lists them",
                                 f"No existe la invitación {volunteer_id}.")
    if inv.revoked_at is None:
        db.execute("UPDATE invitations SET revoked_at = ? WHERE volunteer_id = ?", (now(), volunteer_id))
        inv = invitation(db, volunteer_id)
    return inv


def invitation(db, volunteer_id: int) -> Invitation | None:
    row = db.execute("SELECT i.volunteer_id, v.name, i.created_at, i.revoked_at FROM invitations i "
                     "JOIN volunteers v ON v.id = i.volunteer_id WHERE i.volunteer_id = ?", (volunteer_id,)).fetchone()
    return Invitation(row[0], row[1], None, row[2], row[3]) if row else None


def invitations(db) -> list[Invitation]:
    return [Invitation(r[0], r[1], None, r[2], r[3]) for r in db.execute(
        "SELECT i.volunteer_id, v.name, i.created_at, i.revoked_at FROM invitations i "
        "JOIN volunteers v ON v.id = i.volunteer_id ORDER BY i.volunteer_id")]


def any_invitations(db) -> bool:
    return db.execute("SELECT 1 FROM invitations LIMIT 1").fetchone() is not None


def is_revoked(db, volunteer_id: int) -> bool:
    return db.execute("SELECT 1 FROM invitations WHERE volunteer_id = ? AND revoked_at IS NOT NULL",
                      (volunteer_id,)).fetchone() is not None


def is_invited(db, volunteer_id: int) -> bool:
    return db.execute("SELECT 1 FROM invitations WHERE volunteer_id = ?", (volunteer_id,)).fetchone() is not None


def set_aside(db, volunteer_id: int, reason: str) -> None:
    db.execute("INSERT OR IGNORE INTO volunteers_set_aside (volunteer_id, reason, at) VALUES (?, ?, ?)",
               (volunteer_id, reason, now()))


def is_set_aside(db, volunteer_id: int) -> bool:
    return db.execute("SELECT 1 FROM volunteers_set_aside WHERE volunteer_id = ?",
                      (volunteer_id,)).fetchone() is not None


def link(base_url: str, token: str) -> str:
    """The personal link: the address the server will have (or the proxy's public URL) + the secret."""
    return base_url.rstrip("/") + LINK_PATH + token


def qr_text(url: str) -> str:
    """The link as a QR code drawn with text blocks, for a terminal or a printout (segno)."""
    import io

    import segno
    out = io.StringIO()
    segno.make(url, micro=False, error="m").terminal(out=out, compact=True, border=2)
    return out.getvalue()


# --- the keyed hash of open data ----------------------------------------------------------------------

def ensure_hash_key(db) -> str:
    """The workdir's secret for volunteer hashes, made on first need (a write: call outside reads)."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (META_HASH_KEY,)).fetchone()
    if row:
        return row[0]
    key = secrets.token_hex(32)
    db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (META_HASH_KEY, key))
    return db.execute("SELECT value FROM meta WHERE key = ?", (META_HASH_KEY,)).fetchone()[0]


def hash_key(db) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (META_HASH_KEY,)).fetchone()
    return row[0] if row else None


def public_hash(key: str, volunteer_id: int) -> str:
    """A volunteer's stable public name: the same in every table, never reversible to the name."""
    return "v" + hmac.new(key.encode(), f"volunteer {volunteer_id}".encode(), hashlib.sha256).hexdigest()[:20]
