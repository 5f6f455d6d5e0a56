"""The `testigo` command line: one group over every room's commands.

It lives here, above both layers, so that archive/ never names publish's modules: each command
is a plain click command in its room's cli.py (archive.cli, archive.bundle_cli,
publish.<room>.cli), listed by name in ``LAZY_COMMANDS``. Every failure (a library's
``TestigoError``, a full disk, a locked, damaged or read-only workdir) becomes one clear line and
exit code 1 (``archive.errors.one_line``); the traceback only with ``testigo --debug``.
"""
from __future__ import annotations

import os
import sys

import click

from archive.cli import CONTEXT
from archive.errors import one_line


# Every command lives beside the library it drives (a room's cli.py) and is imported only when
# used, so that `testigo ingest` does not pay for importing Datasette or libtorrent. A new
# command is one line here.
LAZY_COMMANDS = {
    "ingest": "archive.cli:ingest",
    "read": "archive.cli:read",
    "decode": "archive.cli:decode",
    "render-sample": "archive.cli:render_sample",
    "build": "archive.bundle_cli:build",
    "keygen": "archive.bundle_cli:keygen",
    "verify": "archive.bundle_cli:verify",
    "serve": "publish.site.cli:serve",
    "torrent": "publish.torrent.cli:torrent",
    "seed": "publish.torrent.cli:seed",
    "fetch": "publish.torrent.cli:fetch",
    "upload": "publish.internet_archive.cli:upload",
    "zenodo": "publish.zenodo.cli:zenodo",
    "commons": "publish.commons.cli:commons",
    "mirror": "publish.mirror.cli:mirror",
    "check": "publish.check.cli:check",
    "audit": "archive.audit_cli:audit",
    "transcribe": "publish.transcribe.cli:transcribe",
    "demo": "publish.demo:demo",
}


class Group(click.Group):
    """Lazy subcommands; library errors become one clear line and exit code 1, not a traceback."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS:
            import importlib
            module, attr = LAZY_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:     # disk full, a locked or damaged workdir...: one line, no traceback
            if ctx.params.get("debug") or os.environ.get("TESTIGO_DEBUG"):
                raise
            click.secho(f"error: {one_line(e)}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(package_name="testigo")
@click.option("--debug", is_flag=True, help="On a failure, show the full traceback (for a bug report) "
                                            "instead of one line (also: TESTIGO_DEBUG=1).")
def cli(debug):
    """testigo: keep citizen-collected election tally sheets (actas) safe and public.

    \b
    The path of the data:
      ingest  photos, zips and transcribed sheets -> a workdir (decoded, validated)
      read    what each photo's acta prints, by OCR (centre names, electors, party lines)
      build   workdir -> signed, reproducible bundle (SQLite + images + SHA256SUMS)
      verify  check a bundle's signature, checksums and database
      serve   the bundle as a public Datasette site
      mirror  the site as static files anyone can host
      torrent / seed / fetch / upload   share the bundle
      zenodo  deposit the bundle on Zenodo (a DOI); commons  its photos on Wikimedia Commons
      check   does my photo of an acta match the archive (a bundle or a site)?
      transcribe  volunteers type in the photos whose QR could not be read
      audit   does the archive hold together (checks, forensic tests, official results)?
    Run `testigo demo` to see it all on the bundled sample.
    """
