"""The `testigo` command line: a thin layer over the archive and publish libraries."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import election as election_mod
from .errors import RejectedFile, TestigoError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Group(click.Group):
    """Turn library errors into one clear line and exit code 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TestigoError as e:
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(package_name="testigo")
def cli():
    """testigo: keep citizen-collected election tally sheets (actas) safe and public.

    \b
    The path of the data:
      ingest  photos, zips and transcribed sheets -> a workdir (decoded, validated)
      build   workdir -> signed, reproducible bundle (SQLite + images + SHA256SUMS)
      verify  check a bundle's signature, checksums and database
      serve   the bundle as a public Datasette site
      torrent / seed / fetch / upload   share the bundle
    Run `testigo demo` to see it all on the bundled sample.
    """


@cli.command()
@click.argument("sources", nargs=-1, type=click.Path(exists=True))
@click.option("--workdir", "-w", required=True, type=click.Path(file_okay=False),
              help="Folder that keeps the originals (by sha256) and the state database.")
@click.option("--files-from", type=click.Path(allow_dash=True),
              help="Also ingest the paths listed in this file (one per line; '-' for stdin).")
@click.option("--election", default=None, help="Election definition under datasets/ "
              f"(default: the workdir's, or {election_mod.DEFAULT_ELECTION}).")
@click.option("--jobs", "-j", default=1, show_default=True, help="Decode with this many processes.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def ingest(sources, workdir, files_from, election, jobs, as_json):
    """Ingest acta photos (folders, JPEG/PNG files, zips) and transcribed sheets (.csv).

    Every input is stored once by content hash and gets exactly one outcome: decoded,
    transcribed, unreadable, invalid, duplicate, conflict or rejected-file, with a reason.
    Safe to interrupt and to run again: finished inputs are skipped.
    """
    from .ingest import ingest as run, read_file_list
    from .workdir import Workdir

    sources = list(sources) + (read_file_list(files_from) if files_from else [])
    if not sources:
        raise click.UsageError("name at least one folder, file, zip or .csv (or --files-from)")
    bar = lambda n: click.progressbar(length=n, label="ingesting", file=sys.stderr,
                                      show_pos=True, show_eta=True)
    summary = run(sources, workdir, election, jobs=jobs, progress_factory=bar)
    with Workdir(workdir, create=False) as wd:
        totals = wd.outcome_counts()
    if as_json:
        click.echo(json.dumps({"new": dict(summary.new), "skipped": summary.skipped, "workdir": totals}))
        return
    click.echo(f"{summary.total()} new inputs, {summary.skipped} already ingested (skipped)")
    for outcome in ("decoded", "transcribed", "duplicate", "conflict", "unreadable", "invalid", "rejected-file"):
        if summary.new.get(outcome) or totals.get(outcome):
            click.echo(f"  {outcome:14} {summary.new.get(outcome, 0):>7} new  {totals.get(outcome, 0):>7} in workdir")
    if any(summary.new.get(k) for k in ("unreadable", "invalid", "rejected-file", "conflict")):
        click.echo(f"Reasons: sqlite3 {Path(workdir) / 'state.db'} "
                   "\"select outcome, code, reason, locator from inputs where outcome not in "
                   "('decoded','transcribed')\"")


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (the default output too).")
@click.option("--election", default=election_mod.DEFAULT_ELECTION, show_default=True)
def decode(images, as_json, election):
    """Read the acta QR in each IMAGE and print one JSON line per file.

    Fields: file, status (ok / unreadable / invalid), qr_text (exact text or null), reason.
    A text is only accepted when it parses under the election's grammar. Exit code 0
    when every image decoded, 2 otherwise.
    """
    from . import image, reading

    defn = election_mod.load(election)
    failed = 0
    for path in images:
        try:
            r = reading.decode(image.open_image(Path(path).read_bytes(), path), defn)
            out = {"file": path, "status": r.status, "qr_text": r.qr_text, "reason": r.reason,
                   "code": r.code, "decoder": r.decoder, "step": r.step}
        except RejectedFile as e:
            out = {"file": path, "status": "invalid", "qr_text": None, "reason": str(e), "code": e.code}
        failed += out["status"] != "ok"
        click.echo(json.dumps(out, ensure_ascii=False))
    sys.exit(2 if failed else 0)


@cli.command("render-sample")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("-n", "count", default=40, show_default=True, help="How many pages to render.")
@click.option("--seed", default=2024, show_default=True, help="Same seed, same images.")
@click.option("--election", default=election_mod.DEFAULT_ELECTION, show_default=True)
def render_sample(out, count, seed, election):
    """Render acta-like pages (NOT original photos) from real CSV rows, for demos and tests.

    Writes JPEGs across degradation levels and a MANIFEST.csv with each file's true payload.
    """
    from .render import render_sample as run

    run(Path(out), count, election_mod.load(election), seed)
    click.echo(f"rendered {count} sample pages into {out}")


def main():
    cli()
