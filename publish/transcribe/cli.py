"""`transcribe`: the volunteers' transcription app as a click command (registered in `testigo`)."""
from __future__ import annotations

import json

import click

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
@click.option("--forwarded-allow-ips", "--proxy", "forwarded_allow_ips", metavar="IPS",
              help="Behind a reverse proxy: its address(es), comma-separated (e.g. 127.0.0.1), whose "
                   "X-Forwarded-For names the volunteer. Without it the header is ignored, so the "
                   "limit on wrong access codes per address cannot be dodged by forging it.")
def transcribe(workdir, host, port, new_code, status_only, as_json, forwarded_allow_ips):
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
    """
    from archive.transcription import Transcriptions

    from .server import serve

    with server_errors(host, port):
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
        serve(workdir, host, port, rotate_code=new_code, echo=click.echo,
              warn=lambda text: click.secho(text, fg="yellow", err=True), forwarded_allow_ips=forwarded_allow_ips)


if __name__ == "__main__":
    transcribe()
