"""`serve`: the public site as a standalone click command (registered in `testigo` by the CLI)."""
from __future__ import annotations

import sys
from contextlib import contextmanager

import click

from .connections import PER_ADDRESS, REQUEST_DEADLINE_S
from .gate import DATA_CONCURRENCY
from .app import DEFAULT_CACHE_TTL


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
@click.option("--places", type=click.Path(exists=True, dir_okay=False),
              help="The places file (JSON) naming where else the bundle is published (Internet "
                   "Archive items, Zenodo DOI, Commons category, magnet), listed on the downloads "
                   "page (default: BUNDLE.places.json beside the folder, when it exists).")
@click.option("--cache-ttl", default=DEFAULT_CACHE_TTL, show_default=True, type=click.IntRange(0),
              help="Cache-Control max-age in seconds for pages, JSON and downloads "
                   "(photos and static files, named by their hash, get a year).")
@click.option("--allow-sql", is_flag=True,
              help="Let visitors run their own SQL (off by default: a public site's SQL is the easiest "
                   "way to starve it). For a private instance; the database is downloadable for anyone "
                   "who wants all of Datasette on their own machine.")
@click.option("--response-cache-mb", default=64, show_default=True, type=click.IntRange(0),
              help="Memory for answers kept to serve again (0: compute every request).")
@click.option("--data-concurrency", default=DATA_CONCURRENCY, show_default=True, type=click.IntRange(1),
              help="How many of Datasette's own pages (tables, facets, CSV) are computed at once; "
                   "more wait a few seconds or get 503 with Retry-After. The site's own pages "
                   "(home, buscar, mesa, totales...) never wait for these.")
@click.option("--request-timeout", default=REQUEST_DEADLINE_S, show_default=True, type=click.FloatRange(min=0.1),
              metavar="SECONDS",
              help="Seconds a client has to send a request's line and headers, from connecting or from "
                   "its last answer; then its connection is closed (clients that connect and send nothing, or "
                   "trickle a header now and then, would otherwise hold connections for ever).")
@click.option("--max-per-address", default=PER_ADDRESS, show_default=True, type=click.IntRange(0), metavar="N",
              help="Connections one address may hold open at once; more are closed at once (0: no cap). "
                   "127.0.0.1 and ::1, where a reverse proxy on this machine connects from, are never "
                   "capped.")
def serve(bundle, host, port, torrent, places, cache_ttl, allow_sql, response_cache_mb, data_concurrency,
          request_timeout, max_per_address):
    """Serve a bundle as a public, read-only website (Datasette, immutable mode).

    Spanish first (?lang=en for English): find a centre, open a mesa with its acta photo,
    totals with charts, check-my-acta, and the downloads with how to verify them.
    """
    from .connections import ConnectionGuard
    from .server import serve as run

    with server_errors(host, port):
        run(bundle, host, port, torrent=torrent, places=places, cache_ttl=cache_ttl, allow_sql=allow_sql,
            response_cache_mb=response_cache_mb, data_concurrency=data_concurrency,
            guard=ConnectionGuard(request_timeout, max_per_address),
            echo=lambda url: click.echo(f"Serving {bundle} at {url}  (Ctrl+C to stop)"))


if __name__ == "__main__":
    serve()
