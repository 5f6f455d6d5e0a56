"""The archive's commands (ingest, decode, render-sample): thin click wrappers over its library.

The `testigo` group that gathers every command lives in publish/cli.py, which sees both layers;
these commands are plain click commands it imports by name. ``progress_bar`` is the CLIs' shared
progress bar."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import election as election_mod

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def progress_bar(label: str):
    """A ``progress_factory`` for the libraries: (n, label=None) -> a click progress bar with an
    ETA on stderr; a library names its stages with ``label``, else this one is shown."""
    def factory(n: int, label: str | None = None):
        return click.progressbar(length=n, label=label or default, file=sys.stderr, show_pos=True, show_eta=True)
    default = label
    return factory


@click.command(context_settings=CONTEXT)
@click.argument("sources", nargs=-1, type=click.Path(exists=True))
@click.option("--workdir", "-w", required=True, type=click.Path(file_okay=False),
              help="Folder that keeps the originals (by sha256) and the state database.")
@click.option("--files-from", type=click.Path(allow_dash=True),
              help="Also ingest the paths listed in this file (one per line; '-' for stdin).")
@click.option("--election", default=None, help="Election definition under datasets/ "
              f"(default: the workdir's, or {election_mod.DEFAULT_ELECTION}).")
@click.option("--jobs", "-j", default=os.cpu_count() or 1, show_default="all cores",
              help="Decode with this many processes.")
@click.option("--trust", "trust_file", type=click.Path(exists=True, dir_okay=False),
              help="Take in other teams' signed bundles named as SOURCE: KEYS lists the teams' "
                   "minisign public keys, one 'LABEL  KEY' line each ('#' comments).")
@click.option("--dry-run", is_flag=True, help="With team bundles: check them and show what each "
              "would give (accepted, duplicates, conflicts, refused) without writing anything.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--read", "read_printed", is_flag=True, help="Then read the printed acta of every new "
              "photo by OCR, as `testigo read` does (Tesseract; slower than decoding).")
def ingest(sources, workdir, files_from, election, jobs, trust_file, dry_run, as_json, read_printed):
    """Ingest acta photos (folders, JPEG/PNG files, zips), transcribed sheets (.csv) and
    other teams' signed bundles (with --trust).

    Every input is stored once by content hash and gets exactly one outcome: decoded,
    transcribed, unreadable, invalid, duplicate, conflict or rejected-file, with a reason.
    Safe to interrupt and to run again: finished inputs are skipped.

    \b
    A team bundle (a folder made by `testigo build`) is taken in only when its signature is
    by a key in KEYS and every checksum holds; otherwise it is refused whole, with the reason.
    Its actas keep their provenance (team label, key id, bundle hash). Example:
      testigo ingest bundles/bolivar bundles/zulia --workdir W --trust equipos.keys --dry-run
    """
    from . import relay, trust
    from .ingest import ingest as run, read_file_list
    from .workdir import OUTCOMES, Workdir

    sources = list(sources) + (read_file_list(files_from) if files_from else [])
    if not sources:
        raise click.UsageError("name at least one folder, file, zip or .csv (or --files-from)")
    bundles = [s for s in sources if relay.is_bundle(s)]
    sources = [s for s in sources if s not in bundles]
    if bundles and not trust_file:
        raise click.UsageError(f"{bundles[0]} is a testigo bundle: to take in another team's bundle, "
                               "name the keys you trust with --trust KEYS (README: for coordinators)")
    if trust_file and not bundles:
        raise click.UsageError("--trust is for team bundles, and no SOURCE is a testigo bundle folder")
    if dry_run and sources:
        raise click.UsageError(f"--dry-run previews team bundles only; {sources[0]} is not one")
    keys = trust.load_keys(trust_file) if bundles else None   # a bad KEYS file fails before any work
    out: dict = {}
    if sources:
        summary = run(sources, workdir, election, jobs=jobs, progress_factory=progress_bar("ingesting"))
        with Workdir(workdir, create=False) as wd:
            totals = wd.outcome_counts()
            outside = wd.db.execute("SELECT count(*) FROM inputs WHERE code = 'outside_registry'").fetchone()[0]
        out = {"new": dict(summary.new), "skipped": summary.skipped, "workdir": totals, "sheets": summary.notes,
               "outside_registry": outside}
        if not as_json:
            for note in summary.notes:
                click.echo(f"sheet {note}")
            click.echo(f"{summary.total()} new inputs, {summary.skipped} already ingested (skipped)")
            for outcome in OUTCOMES:
                if summary.new.get(outcome) or totals.get(outcome):
                    click.echo(f"  {outcome:14} {summary.new.get(outcome, 0):>7} new  "
                               f"{totals.get(outcome, 0):>7} in workdir")
            if outside:
                click.echo(f"  {outside:,} accepted input(s) in the workdir name a mesa outside the registry: "
                           "kept, flagged outside_registry, counted apart from the registry totals")
            if any(summary.new.get(k) for k in ("unreadable", "invalid", "rejected-file", "conflict")):
                click.echo(f"Reasons: sqlite3 {Path(workdir) / 'state.db'} "
                           "\"select outcome, code, reason, locator from inputs where outcome not in "
                           "('decoded','transcribed')\"")
    if read_printed and sources:
        from .printed_store import read_workdir
        done = read_workdir(workdir, jobs, None if as_json else progress_bar("reading printed actas"))
        out["printed"] = {"read": done.read, "failed": done.failed}
        if not as_json:
            click.echo(f"printed actas: {done.read} read by OCR, {done.failed} could not be read")
    reports = relay.ingest_bundles(bundles, workdir, keys, dry_run=dry_run, election=election,
                                   progress_factory=None if as_json else
                                   progress_bar("checking and taking in a team bundle")) if bundles else []
    if as_json:
        click.echo(json.dumps({**out, **({"teams": [r.to_dict() for r in reports]} if bundles else {})}))
    else:
        for r in reports:
            click.echo("\n".join(relay.report_lines(r)))
    if any(not r.ok for r in reports):
        sys.exit(1)


@click.command(context_settings=CONTEXT)
@click.option("--workdir", "-w", required=True, type=click.Path(file_okay=False, exists=True),
              help="The workdir whose stored photos to read.")
@click.option("--jobs", "-j", default=os.cpu_count() or 1, show_default="all cores",
              help="Read with this many processes (one Tesseract each).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def read(workdir, jobs, as_json):
    """Read what each stored photo's acta prints (OCR): header, voters, party lines, summary.

    \b
    Reads every photo of the workdir not read yet (by content: the same bytes are read once;
    safe to interrupt and run again). A count is kept only when its digits and its number in
    words agree; anything else is recorded as unread, never guessed. `testigo build` publishes
    the readings (table printed) and their disagreements with the QR, the sheet and the
    registry (issues, codes printed_*). Needs Debian's tesseract-ocr, tesseract-ocr-spa and
    tesseract-ocr-eng.
    """
    from .printed_store import read_workdir

    done = read_workdir(workdir, jobs, None if as_json else progress_bar("reading printed actas"))
    if as_json:
        click.echo(json.dumps({"read": done.read, "failed": done.failed, "already_read": done.skipped}))
    else:
        click.echo(f"{done.read} photo(s) read, {done.failed} could not be read, "
                   f"{done.skipped} read before (skipped)")


@click.command(context_settings=CONTEXT)
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (the default output too).")
@click.option("--election", default=election_mod.DEFAULT_ELECTION, show_default=True)
def decode(images, as_json, election):
    """Read the acta QR in each IMAGE and print one JSON line per file.

    Fields: file, status (ok / unreadable / invalid), qr_text (exact text or null), reason.
    A text is only accepted when it parses under the election's grammar. Exit code 0
    when every image decoded, 2 otherwise.
    """
    from . import reading

    defn = election_mod.load(election)
    failed = 0
    for path in images:
        r = reading.decode_bytes(Path(path).read_bytes(), defn, path)
        out = {"file": path, **r.to_dict()}
        if r.status == "rejected":  # not a usable image: reported as invalid, with the refusal's code
            out["status"] = "invalid"
        failed += out["status"] != "ok"
        click.echo(json.dumps(out, ensure_ascii=False))
    sys.exit(2 if failed else 0)


@click.command("render-sample", context_settings=CONTEXT)
@click.argument("out", type=click.Path(file_okay=False))
@click.option("-n", "count", default=40, show_default=True, help="How many pages to render.")
@click.option("--seed", default=2024, show_default=True, help="Same seed, same images.")
@click.option("--levels", default="clean,mild,moderate,severe", show_default=True,
              help="Comma-separated degradation levels to cycle through.")
@click.option("--election", default=election_mod.DEFAULT_ELECTION, show_default=True)
def render_sample(out, count, seed, levels, election):
    """Render acta-like pages (NOT original photos) from real CSV rows, for demos and tests.

    Writes JPEGs across degradation levels and a MANIFEST.csv with each file's true payload.
    The shipped sample is `render-sample datasets/ve-2024/sample -n 40 --seed 2024
    --levels mild,moderate,moderate`.
    """
    from .render import LEVELS, render_sample as run

    chosen = tuple(l.strip() for l in levels.split(",") if l.strip())
    unknown = [l for l in chosen if l not in LEVELS]
    if unknown or not chosen:
        raise click.BadParameter(f"unknown level(s) {', '.join(unknown)}; choose from "
                                 f"{', '.join(LEVELS)}", param_hint="--levels")
    run(Path(out), count, election_mod.load(election), seed, levels=chosen)
    click.echo(f"rendered {count} sample pages into {out}")
