"""`transcribe`: the volunteers' transcription app as a click command (registered in `testigo`)."""
from __future__ import annotations

import json

import click

from archive.errors import TranscriptionError

from ..site.cli import server_errors


@click.command("transcribe")
@click.option("--workdir", "-w", required=True, type=click.Path(exists=True, file_okay=False),
              help="The workdir whose unreadable photos volunteers will type in.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default serves this computer only; give this computer's "
                   "network address (or 0.0.0.0) to let volunteers on the same network join.")
@click.option("--port", "-p", default=8002, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port; the URL printed tells which).")
@click.option("--new-code", is_flag=True,
              help="Replace the workdir's access code (signs every volunteer out).")
@click.option("--status", "status_only", is_flag=True,
              help="Print how far the transcription is and exit (no server).")
@click.option("--json", "as_json", is_flag=True, help="With --status: print JSON.")
@click.option("--invite", metavar="NAME",
              help="Create personal invitations for NAME (a link and a QR code each, for the address the "
                   "server will have: --host/--port or --public-url), print them and exit.")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="With --invite: how many invitations (numbered NAME 1, NAME 2, ...).")
@click.option("--no-qr", is_flag=True, help="With --invite: print the links without QR codes.")
@click.option("--revoke", "revoke_id", type=int, metavar="ID",
              help="Revoke invitation ID (the number --invite printed) and exit: its link does nothing more.")
@click.option("--void", is_flag=True,
              help="With --revoke: void its entries too; the photos they helped decide go back to the queue.")
@click.option("--invitations", "list_invitations", is_flag=True, help="List the invitations and exit.")
@click.option("--public-url", metavar="URL",
              help="The address volunteers use when the server is behind a proxy (e.g. https://actas.example.org); "
                   "invitation links carry it instead of http://HOST:PORT.")
@click.option("--room-code", is_flag=True,
              help="Let the shared access code in too once invitations exist (a trusted room); off by default.")
@click.option("--new-desk-code", is_flag=True, help="Replace the coordinator's desk code.")
@click.option("--consensus", type=click.Choice(["2of2", "2of3", "3of3"]),
              help="The consensus rule, kept in the workdir: agreeing entries needed of entries needed "
                   "(default 2of2).")
@click.option("--known-share", type=click.FloatRange(0, 1),
              help="Share of hand-outs that are photos with known numbers, scoring volunteers (default 0.1).")
@click.option("--known-threshold", type=click.FloatRange(0, 1),
              help="Known-answer score under which a volunteer is silently set aside (default 0.7).")
@click.option("--forwarded-allow-ips", "--proxy", "forwarded_allow_ips", metavar="IPS",
              help="Behind a reverse proxy: its address(es), comma-separated (e.g. 127.0.0.1), whose "
                   "X-Forwarded-For names the volunteer. Without it the header is ignored, so the "
                   "limit on wrong access codes per address cannot be dodged by forging it.")
def transcribe(workdir, host, port, new_code, status_only, as_json, invite, count, no_qr, revoke_id, void,
               list_invitations, public_url, room_code, new_desk_code, consensus, known_share, known_threshold,
               forwarded_allow_ips):
    """Serve a local web page where volunteers type in the photos whose QR could not be read.

    \b
    Each photo (QR unreadable, or not an acta) is shown beside a form with the mesa and the
    numbers printed on the acta: votes per candidate, válidos, nulos. It becomes an acta
    (source transcribed-photo) when two volunteers, under different names and without seeing
    each other's numbers, type the same; if they differ it goes to review, where the next entry
    that matches one of them decides. Every entry is kept in the workdir (state.db): who,
    when, what. Names stay private; only a public alias the volunteer chose is published.
    \b
    Open the URL printed (it carries the access code). Safe with several volunteers at once,
    and with a restart: saved entries are never lost. `testigo build` then publishes the
    agreed actas with their photos.
    
    To trust volunteers you do not know, invite each one (--invite NAME [--count N]): a
    personal link and QR code per person; two entries then count as two people only when
    they come from two invitations, and the shared code stops working (--room-code keeps it).
    --revoke ID [--void] withdraws one. A share of photos have known numbers (--known-share);
    whoever fails them is set aside without being told. The coordinator's desk
    (/coordinacion, its own code printed at start) decides what volunteers could not.
    """
    from archive import consensus as consensus_mod
    from archive import known_answers
    from archive.transcription import Transcriptions

    from .server import serve

    with server_errors(host, port):
        if consensus or known_share is not None or known_threshold is not None:
            q = Transcriptions(workdir)
            try:
                if consensus:
                    q._tx(consensus_mod.set_rule, q.db, consensus)
                known_answers.configure(q.db, known_share, known_threshold)
            finally:
                q.close()
        if invite or revoke_id is not None or list_invitations:
            _invitations(workdir, invite, count, not no_qr, revoke_id, void, list_invitations,
                         public_url or f"http://{'[' + host + ']' if ':' in host else host}:{port}")
            return
        if status_only:
            q = Transcriptions(workdir)
            try:
                status = q.status()
            finally:
                q.close()
            if as_json:
                click.echo(json.dumps(status))
            else:
                for k, v in status.items():
                    click.echo(f"  {k:12} {v:>7}")
            return
        serve(workdir, host, port, rotate_code=new_code, room_code=room_code, rotate_desk_code=new_desk_code,
              echo=click.echo, warn=lambda text: click.secho(text, fg="yellow", err=True),
              forwarded_allow_ips=forwarded_allow_ips)


def _invitations(workdir, name, count, qr, revoke_id, void, listing, base_url) -> None:
    """--invite / --revoke / --invitations: print and exit (no server)."""
    from archive import volunteers
    from archive.transcription import Transcriptions

    q = Transcriptions(workdir)
    try:
        if revoke_id is not None:
            reopened = q.revoke(revoke_id, void=void)
            inv = volunteers.invitation(q.db, revoke_id)
            click.echo(f"Invitation {inv.id} ({inv.name}) revoked / invitación revocada"
                       + (f"; its entries voided, {len(reopened)} photo(s) back in the queue" if void else
                          "; its entries still count (add --void to void them)"))
        if name:
            if base_url.startswith("http://0.0.0.0") or base_url.startswith("http://[::]"):
                click.secho("WARNING: links need an address volunteers can reach: give --host with this "
                            "computer's network address (see `hostname -I`) or --public-url", fg="yellow", err=True)
            for inv in volunteers.invite(q.db, name, count):
                url = volunteers.link(base_url, inv.token)
                click.echo(f"#{inv.id}  {inv.name}\n  {url}")
                if qr:
                    click.echo(volunteers.qr_text(url))
            click.echo("Each link is personal: give it only to that person. The links are not kept; "
                       "`--revoke ID` withdraws one. / Cada enlace es personal.")
        if listing:
            for inv in volunteers.invitations(q.db):
                click.echo(f"#{inv.id:<5} {inv.name:30} {inv.created_at}  "
                           + (f"revoked {inv.revoked_at}" if inv.revoked_at else "active"))
    except TranscriptionError as e:
        raise click.ClickException(str(e))
    finally:
        q.close()


if __name__ == "__main__":
    transcribe()
