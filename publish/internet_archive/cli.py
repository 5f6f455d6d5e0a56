"""``testigo upload``: send a bundle to Internet Archive items and check what arrived.

A standalone ``click`` command; the ``testigo`` group registers it. All the work is in
:mod:`publish.internet_archive`.
"""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import click
from tqdm import tqdm

from archive.errors import TestigoError
from publish import internet_archive as ia

_size = ia.human_size


def _files(n: int) -> str:
    return f"{n} file{'s' if n != 1 else ''}"
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


class ByteSize(click.ParamType):
    """A number of bytes: 1000000, 500MB, 25GB, 1.5TB, 2GiB (KB/MB/GB/TB are powers of 1000)."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", str(value), re.IGNORECASE)
        if not m:
            self.fail(f"{value!r} is not a size (e.g. 100GB, 500MB, 2GiB or a number of bytes)", param, ctx)
        n = int(Decimal(m.group(1)) * _UNITS[(m.group(2) or "").upper()])
        if n < 1:
            self.fail("must be at least 1 byte", param, ctx)
        return n


class _Bars(ia.UploadProgress):
    """One bar for the whole upload (bytes), one for the file being sent. On a terminal only;
    elsewhere (logs, tests) a line per file is printed instead."""

    def __init__(self) -> None:
        self.total: tqdm | None = None
        self.current: tqdm | None = None

    def _line(self, line: str) -> None:
        if self.total is not None and not self.total.disable:
            tqdm.write(line)
        else:
            click.echo(line)

    def begin(self, plan: ia.UploadPlan) -> None:
        self.split = plan.split
        self.total = tqdm(total=plan.bytes_to_send, desc=f"{len(plan.to_send)} files",
                          unit="B", unit_scale=True, dynamic_ncols=True, position=0,
                          disable=None, leave=True)

    def begin_item(self, item: ia.ItemPlan) -> None:
        if self.split:
            self._line(f"Item {item.identifier}: sending {len(item.to_send)} file(s), "
                       f"{_size(item.bytes_to_send)}")

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
        self._line(f"  sent  {f.key} ({_size(f.size)}, md5 {f.md5})")

    def finish(self) -> None:
        for bar in (self.current, self.total):
            if bar is not None:
                bar.close()
        self.current = self.total = None

    def checking(self, files: int, items: int = 1) -> None:
        where = f" in {items} items" if items > 1 else ""
        click.echo(f"Checking the archive's copy of {files} files{where} (size, MD5, SHA-1)...")

    def waiting(self, files_pending: int, seconds_left: float) -> None:
        click.echo(f"Waiting for the archive to list {files_pending} file(s) just sent "
                   f"(up to {int(seconds_left)} s more)...")


def _item_state(item: ia.ItemPlan) -> str:
    if not item.remote_known:
        return "could not be read now; every file is listed as to be sent"
    if item.item_exists:
        return f"exists, holds {len(item.already_there)} of its {len(item.files)} files"
    return "does not exist yet; the first file sent creates it"


def _print_metadata(metadata: dict) -> None:
    for key, value in metadata.items():
        shown = "; ".join(value) if isinstance(value, list) else value
        shown = " / ".join(line.strip() for line in shown.splitlines() if line.strip())
        if len(shown) > 100:
            shown = shown[:97] + "..."
        click.echo(f"    {key}: {shown}")


def _print_plan(plan: ia.UploadPlan, dry_run: bool) -> None:
    b = plan.bundle
    click.echo(f"Bundle: {b.root} ({len(b.files)} files, {_size(b.total_size)})")
    click.echo(f"Limits: {plan.layout.limits}")
    if plan.split:
        click.echo(f"One item cannot hold this bundle: it is spread over {len(plan.items)} items "
                   f"(the top item {plan.identifier} and {len(plan.items) - 1} parts).")
    for item in [plan.top, *plan.items[:-1]]:   # the top item first, then the parts in order
        over = plan.over_limit(item)
        mark = f"  OVER THE LIMIT ({'; '.join(over)})" if over else ""
        role = {"top": " [top item]", "part": " [part]"}.get(item.role, "")
        click.echo(f"Item:   {ia.ARCHIVE_DETAILS_URL}{item.identifier}{role} "
                   f"({_files(len(item.files))}, {_size(item.bytes)}; {_item_state(item)}){mark}")
        if not dry_run:
            continue
        click.echo("  Metadata (applied when the item is created):")
        _print_metadata(item.metadata)
        click.echo("  Files:")
        to_send = {f.key for f in item.to_send}
        for f in item.files:
            action = ("replace" if f.key in item.replacing else "send") if f.key in to_send else "skip"
            click.echo(f"    {action:<8}{_size(f.size):>10}  {f.key}")
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
              help="Show every item with its files, sizes and metadata, marking any item over a "
                   "limit; send nothing (no keys needed).")
@click.option("--check-only", is_flag=True,
              help="Send nothing; only compare every item's files with the bundle.")
@click.option("--wait", type=click.FloatRange(min=0), default=600, show_default=True,
              metavar="SECONDS",
              help="How long to wait for the archive to list the files just sent before "
                   "checking them.")
@click.option("--max-files", type=click.IntRange(min=1), default=ia.DEFAULT_MAX_FILES,
              show_default=True, metavar="N",
              help=f"Most files testigo puts in one item: the archive's {ia.ARCHIVE_MAX_FILES:,} less "
                   f"room for the few files it adds itself.")
@click.option("--max-bytes", type=ByteSize(), default=ia.DEFAULT_MAX_BYTES, metavar="SIZE",
              help=f"Most bytes in one item, e.g. 25GB or 500MB [default: "
                   f"{_size(ia.DEFAULT_MAX_BYTES)}, the archive's limit].")
def upload(bundle: Path, identifier: str, collection: str | None, dry_run: bool,
           check_only: bool, wait: float, max_files: int, max_bytes: int) -> None:
    """Upload the bundle directory BUNDLE to the Internet Archive item ID, then check it.

    Files already in the item with the same MD5 are skipped, so an interrupted upload is
    finished by running the same command again. Every file is sent with its MD5, which the
    archive checks on arrival; afterwards the size, MD5 and SHA-1 the archive lists for every
    file are compared with the bundle, and any difference makes the command fail.

    \b
    One item holds the whole bundle when it fits within --max-files and --max-bytes (a bundle
    with zipped photos has a few dozen files). Otherwise it is spread over several items:
      ID-part-01, ID-part-02, ...  the bundle's files in SHA256SUMS order (sorted by path),
                                   each part as many whole files as fit within the limits;
      ID (the top item)            SHA256SUMS, SHA256SUMS.minisig, minisign.pub and
                                   testigo-items.json (which part holds which file); its
                                   metadata lists the parts. It is sent last.
    The same bundle and limits always give the same items. Re-runs and --check-only need the
    same --max-files/--max-bytes as the first upload (testigo says so if they differ).

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
            max_files=max_files, max_bytes=max_bytes,
            progress=_Bars(), on_plan=lambda plan: _print_plan(plan, dry_run), wait=wait)
    except TestigoError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("\nInterrupted. Run the same command again to continue: files already in "
                   "the archive are skipped.", err=True)
        raise click.exceptions.Exit(130) from None
    if dry_run:
        return
    plan = result.plan
    n = sum(len(i.files) for i in plan.items)
    if plan.split:
        click.echo(f"OK: all {n} files in the {len(plan.items)} archive items match the bundle"
                   f" ({len(result.sent)} sent now, {len(plan.already_there)} already there):")
        for item in [plan.top, *plan.items[:-1]]:
            click.echo(f"  {item.identifier}: {_files(len(item.files))} match  "
                       f"{ia.ARCHIVE_DETAILS_URL}{item.identifier}")
        click.echo("  torrent: a web seed cannot span several items; make it without --archive-item "
                   f"(testigo torrent {bundle})")
        return
    click.echo(f"OK: all {n} files in the archive item match the bundle"
               f" ({len(result.sent)} sent now, {len(plan.already_there)} already there).")
    click.echo(f"  page:     {ia.ARCHIVE_DETAILS_URL}{identifier}")
    click.echo(f"  download: {ia.internet_archive_web_seed(identifier)}")
    click.echo(f"  torrent with the item as web seed: testigo torrent {bundle} --archive-item {identifier}")
