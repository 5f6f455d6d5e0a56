"""`testigo mirror`: the public site as static files (a thin click command over publish.mirror)."""
from __future__ import annotations

import click

from archive import signing
from archive.bundle_cli import _errors_to_click, _password_for
from archive.cli import CONTEXT, progress_bar


@click.command("mirror", context_settings=CONTEXT)
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(),
              help="Folder to write: new, empty, or a previous mirror (replaced whole).")
@click.option("--key", "-k", type=click.Path(),
              help="Secret key to sign the mirror's SHA256SUMS with (K or K.key from `testigo keygen K`). "
                   f"Its password: ${signing.PASSWORD_ENV} or a prompt.")
@click.option("--torrent", type=click.Path(exists=True, dir_okay=False),
              help="The bundle's .torrent, offered on the downloads page (default: BUNDLE.torrent beside it).")
@click.option("--places", type=click.Path(exists=True, dir_okay=False),
              help="The places file naming where else the bundle is published, listed on the downloads "
                   "page (default: BUNDLE.places.json beside it, when it exists).")
@click.option("--jobs", "-j", type=click.IntRange(1), default=None, show_default="one per core",
              help="Processes rendering pages.")
@click.option("--app", is_flag=True,
              help="Write the site as a browser app instead: about 20 files that read the bundle over HTTP range "
                   "requests (index.html#/mesa/ID), with the bundle's files beside them (hard links) unless "
                   "--data-url is given. Takes seconds at national size. See deploy/README.md.")
@click.option("--data-url", "data_urls", multiple=True, metavar="URL",
              help="With --app: where the app reads the bundle's files (the folder holding SHA256SUMS), e.g. "
                   "https://archive.org/download/ITEM/. Repeat it: tried in order, a host without Range or CORS "
                   "is skipped with a plain message. Default: DIR itself.")
@_errors_to_click
def mirror(bundle, out, key, torrent, places, jobs, app, data_urls):
    """Write the public site of BUNDLE as static files anyone can host.

    \b
    Every page (home, each mesa and centre, totals at every level, downloads, check-my-acta)
    in Spanish and in English (/en/...), their JSON at the same paths as on the site, search
    in the browser, the photos and the downloads, with a SHA256SUMS (signed with --key).
    Serve it from any static host, at the root of a domain or port, or locally:
      testigo mirror B --out site --key keys/testigo
      cd site && python3 -m http.server 8080
    Visitors check a copy with: sha256sum -c SHA256SUMS; minisign -Vm SHA256SUMS -p minisign.pub
    The same bundle always gives the same bytes.

    \b
    With --app: the site as a browser app that reads the bundle where it lies (any static host
    that answers Range requests; data on another host with CORS through --data-url):
      testigo mirror B --out site --app
      testigo mirror B --out site --app --data-url https://archive.org/download/ITEM/
    """
    if data_urls and not app:
        raise click.UsageError("--data-url goes with --app")
    if app:
        from ..app.writer import write_app
        report = write_app(bundle, out, data_urls)
        where = (f"{report.bundle_files} bundle files beside it ({report.linked} hard links)" if report.bundle_files
                 else "the bundle read from " + ", ".join(report.data_urls))
        click.echo(f"app written to {report.path}: {report.app_files} files ({report.bytes / 1e6:.1f} MB), {where}")
        click.echo(f"  bundle: sha256 of SHA256SUMS {report.manifest_sha256}")
        click.echo("  serve it with a server that answers Range requests (nginx, caddy; not python3 -m http.server):")
        click.echo(f"  e.g. cd {report.path} && caddy file-server --listen 127.0.0.1:8080, then open /index.html")
        return
    from .static import make_mirror

    password = _password_for(key) if key else None
    report = make_mirror(bundle, out, key=key, password=password, torrent=torrent, jobs=jobs, places=places,
                         progress_factory=progress_bar("rendering pages"))
    click.echo(f"mirror written to {report.path}: {report.pages:,} pages, {report.json:,} JSON files, "
               f"{report.images:,} photos, {report.files:,} other files, {report.bytes / 1e6:.1f} MB")
    if report.signed:
        click.echo(f"  SHA256SUMS signed with key {report.key_id} (its minisign.pub is in the mirror)")
    for w in report.warnings:
        click.secho(f"  warning: {w}", fg="yellow", err=True)
    click.echo(f"  try it: cd {report.path} && python3 -m http.server 8080")
