"""``testigo upload``: send a bundle to an Internet Archive item and check what arrived.

A standalone ``click`` command; the ``testigo`` group registers it. All the work is in
:mod:`publish.internet_archive`.
"""
from __future__ import annotations

from pathlib import Path

import click
from tqdm import tqdm

from archive.errors import TestigoError
from publish import internet_archive as ia


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


class _Bars(ia.UploadProgress):
    """One bar for the whole upload (bytes), one for the file being sent. On a terminal only;
    elsewhere (logs, tests) a line per file is printed instead."""

    def __init__(self) -> None:
        self.total: tqdm | None = None
        self.current: tqdm | None = None

    def begin(self, plan: ia.UploadPlan) -> None:
        self.total = tqdm(total=plan.bytes_to_send, desc=f"{len(plan.to_send)} files",
                          unit="B", unit_scale=True, dynamic_ncols=True, position=0,
                          disable=None, leave=True)

    def start_file(self, f: ia.BundleFile) -> None:
        self.current = tqdm(total=f.size, desc=f"  {f.key}", unit="B", unit_scale=True,
                            dynamic_ncols=True, position=1, disable=None, leave=False)

    def advance(self, nbytes: int) -> None:
        for bar in (self.current, self.total):
            if bar is not None:
                bar.update(nbytes)

    def end_file(self, f: ia.BundleFile) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
        line = f"  sent  {f.key} ({_size(f.size)}, md5 {f.md5})"
        if self.total is not None and not self.total.disable:
            tqdm.write(line)
        else:
            click.echo(line)

    def finish(self) -> None:
        for bar in (self.current, self.total):
            if bar is not None:
                bar.close()
        self.current = self.total = None

    def checking(self, files: int) -> None:
        click.echo(f"Checking the archive's copy of {files} files (size, MD5, SHA-1)...")

    def waiting(self, files_pending: int, seconds_left: float) -> None:
        click.echo(f"Waiting for the archive to list {files_pending} file(s) just sent "
                   f"(up to {int(seconds_left)} s more)...")


def _print_plan(plan: ia.UploadPlan, dry_run: bool) -> None:
    b = plan.bundle
    where = f"{ia.ARCHIVE_DETAILS_URL}{plan.identifier}"
    if not plan.remote_known:
        state = "could not be read now; every file is listed as to be sent"
    elif plan.item_exists:
        state = f"exists, holds {len(plan.already_there)} of the bundle's {len(b.files)} files"
    else:
        state = "does not exist yet; the first file sent creates it"
    click.echo(f"Bundle: {b.root} ({len(b.files)} files, {_size(b.total_size)})")
    click.echo(f"Item:   {where} ({state})")
    if dry_run:
        click.echo("Item metadata (applied when the item is created):")
        for key, value in plan.metadata.items():
            shown = "; ".join(value) if isinstance(value, list) else value
            shown = " / ".join(line.strip() for line in shown.splitlines() if line.strip())
            if len(shown) > 100:
                shown = shown[:97] + "..."
            click.echo(f"  {key}: {shown}")
        click.echo("Files:")
        to_send = {f.key for f in plan.to_send}
        for f in b.files:
            if f.key in to_send:
                action = "replace" if f.key in plan.replacing else "send"
            else:
                action = "skip"
            click.echo(f"  {action:<8}{_size(f.size):>10}  {f.key}")
    click.echo(f"To send: {len(plan.to_send)} file(s), {_size(plan.bytes_to_send)}; "
               f"already in the archive with the same MD5: {len(plan.already_there)}.")


@click.command("upload")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--identifier", required=True, metavar="ID",
              help="The archive.org item identifier, e.g. testigo-ve-2024-20240801. "
                   "Fixed forever once the item exists.")
@click.option("--collection", metavar="C", default=None,
              help="Put a new item in this archive.org collection (you must be allowed to "
                   "upload to it). Without it the archive puts the item in its default community "
                   "collection.")
@click.option("--dry-run", is_flag=True,
              help="Show the files, sizes and metadata that would be sent; send nothing.")
@click.option("--check-only", is_flag=True,
              help="Send nothing; only compare the item's files with the bundle.")
@click.option("--wait", type=click.FloatRange(min=0), default=600, show_default=True,
              metavar="SECONDS",
              help="How long to wait for the archive to list the files just sent before "
                   "checking them.")
def upload(bundle: Path, identifier: str, collection: str | None, dry_run: bool,
           check_only: bool, wait: float) -> None:
    """Upload the bundle directory BUNDLE to the Internet Archive item ID, then check it.

    Files already in the item with the same MD5 are skipped, so an interrupted upload is
    finished by running the same command again. Every file is sent with its MD5, which the
    archive checks on arrival; afterwards the size, MD5 and SHA-1 the archive lists for every
    file are compared with the bundle, and any difference makes the command fail.

    Keys come from `ia configure` or IA_ACCESS_KEY_ID / IA_SECRET_ACCESS_KEY, never from the
    command line.
    """
    if dry_run and check_only:
        raise click.UsageError("Use either --dry-run or --check-only, not both.")
    if dry_run:
        click.echo("Dry run: nothing is sent to the Internet Archive.")
    try:
        result = ia.upload_bundle(
            bundle, identifier, collection=collection, dry_run=dry_run, check_only=check_only,
            progress=_Bars(), on_plan=lambda plan: _print_plan(plan, dry_run), wait=wait)
    except TestigoError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("\nInterrupted. Run the same command again to continue: files already in "
                   "the archive are skipped.", err=True)
        raise click.exceptions.Exit(130) from None
    if dry_run:
        return
    n = len(result.plan.bundle.files)
    click.echo(f"OK: all {n} files in the archive item match the bundle"
               f" ({len(result.sent)} sent now, {len(result.plan.already_there)} already there).")
    click.echo(f"  page:     {ia.ARCHIVE_DETAILS_URL}{identifier}")
    click.echo(f"  download: {ia.internet_archive_web_seed(identifier)}")
    click.echo(f"  torrent with the item as web seed: testigo torrent {bundle} --archive-item {identifier}")
