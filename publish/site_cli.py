"""`serve`: the public site as a standalone click command (registered in `testigo` by the CLI)."""
from __future__ import annotations

import sys
from contextlib import contextmanager

import click

from .site import DEFAULT_CACHE_TTL


@contextmanager
def server_errors(host: str, port: int):
    """A server command's failures as one red line and exit code 1 (no traceback)."""
    from archive.errors import TestigoError

    try:
        yield
    except TestigoError as e:
        click.secho(f"error: {e}", fg="red", err=True)
        sys.exit(1)
    except OSError as e:  # port in use, permission denied
        click.secho(f"error: cannot listen on {host}:{port}: {e.strerror or e}", fg="red", err=True)
        sys.exit(1)


@click.command("serve")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 to accept connections from other machines).")
@click.option("--port", "-p", default=8001, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port; the URL printed tells which).")
@click.option("--torrent", type=click.Path(exists=True, dir_okay=False),
              help="The bundle's .torrent, offered with its magnet link "
                   "(default: BUNDLE.torrent beside the folder, when it exists).")
@click.option("--cache-ttl", default=DEFAULT_CACHE_TTL, show_default=True, type=click.IntRange(0),
              help="Cache-Control max-age in seconds for pages, JSON and downloads "
                   "(photos and static files, named by their hash, get a year).")
@click.option("--no-sql", is_flag=True, help="Do not let visitors run their own SQL queries.")
def serve(bundle, host, port, torrent, cache_ttl, no_sql):
    """Serve a bundle as a public, read-only website (Datasette, immutable mode).

    Spanish first (?lang=en for English): find a centre, open a mesa with its acta photo,
    totals with charts, check-my-acta, and the downloads with how to verify them.
    """
    from .site import serve as run

    with server_errors(host, port):
        run(bundle, host, port, torrent=torrent, cache_ttl=cache_ttl, allow_sql=not no_sql,
            echo=lambda url: click.echo(f"Serving {bundle} at {url}  (Ctrl+C to stop)"))


if __name__ == "__main__":
    serve()
