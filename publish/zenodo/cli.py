"""``testigo zenodo``: deposit a bundle on Zenodo, check every file's checksum, publish on request.

A standalone ``click`` command; the ``testigo`` group registers it. The work is in
:mod:`publish.zenodo`.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
from tqdm import tqdm

from archive import places as places_mod
from archive.errors import TestigoError
from publish import zenodo as zn
from publish.internet_archive.items import human_size

_HOW = {"new": "a new deposition (a new record, with its own concept DOI, once published)",
        "resume": "continuing this bundle's own draft (an earlier run made it)",
        "new-version": "a new version of the record's concept",
        "published": "already published; only checking it"}


class _Bars(zn.DepositProgress):
    """One bar for the bytes to send, one per file; a line per file where there is no terminal."""

    def __init__(self) -> None:
        self.total = self.current = None

    def _line(self, text: str) -> None:
        (tqdm.write if self.total is not None and not self.total.disable else click.echo)(text)

    def begin(self, plan):
        self.total = tqdm(total=plan.bytes_to_send, desc=f"{len(plan.to_send)} files", unit="B",
                          unit_scale=True, dynamic_ncols=True, disable=None, leave=True)

    def deleting(self, name):
        self._line(f"  delete {name} (not this bundle's, or its checksum differs)")

    def start_file(self, f):
        self.current = tqdm(total=f.size, desc=f"  {f.key}", unit="B", unit_scale=True,
                            dynamic_ncols=True, position=1, disable=None, leave=False)

    def advance(self, n):
        for bar in (self.current, self.total):
            if bar is not None:
                bar.update(n)

    def end_file(self, f):
        if self.current is not None:
            self.current.close()
            self.current = None
        self._line(f"  sent   {zn.zenodo_name(f.key)} ({human_size(f.size)}, md5 {f.md5}: Zenodo's matches)")

    def finish(self):
        for bar in (self.current, self.total):
            if bar is not None:
                bar.close()
        self.current = self.total = None

    def checking(self, files):
        click.echo(f"Checking Zenodo's size and MD5 of all {files} files...")


def _print_plan(plan: zn.DepositPlan, url: str, dry_run: bool) -> None:
    b = plan.bundle
    click.echo(f"Bundle: {b.root} ({len(b.files)} files, {human_size(b.total_size)})")
    dep = f"deposition {plan.deposition_id}" if plan.deposition_id else "a deposition to be made"
    parent = f" of record {plan.parent.get('id')}" if plan.parent else ""
    click.echo(f"Zenodo: {url}, {dep}: {_HOW[plan.how]}{parent}")
    if dry_run:
        click.echo("Metadata:")
        for key, value in plan.metadata.items():
            shown = str(value).replace("\n", " ")
            click.echo(f"    {key}: {shown[:97] + '...' if len(shown) > 100 else shown}")
        for entry in plan.to_delete:
            click.echo(f"    delete  {entry.get('filename')}")
        sending = {f.key for f in plan.to_send}
        for f in b.files:
            click.echo(f"    {'send' if f.key in sending else 'skip':<8}{human_size(f.size):>10}  "
                       f"{zn.zenodo_name(f.key)}")
    click.echo(f"To send: {len(plan.to_send)} file(s), {human_size(plan.bytes_to_send)}; already there "
               f"with the same MD5: {len(plan.already_there)}; to delete: {len(plan.to_delete)}.")


@click.command("zenodo")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--url", default=zn.ZENODO_URL, show_default=True, metavar="URL",
              help=f"The Zenodo to deposit on; {zn.SANDBOX_URL} to try first.")
@click.option("--community", metavar="C", default=None,
              help="Ask this Zenodo community (its identifier) to include the record.")
@click.option("--new-version-of", "new_version_of", metavar="ID", default=None,
              help="A new edition: make the deposit a new version of this published record (its "
                   "id, any version of the concept), so the concept DOI cites every edition.")
@click.option("--publish", is_flag=True,
              help="Publish the record (mint its DOI) once every file's checksum is confirmed. "
                   "Without it the deposit stays a draft you can review on Zenodo. A published "
                   "record's files can never be changed.")
@click.option("--creator", "creators", multiple=True, metavar="NAME",
              help="A creator of the record, e.g. 'Pérez, Ana' or an organisation (repeat for "
                   "several); default: the bundle's datapackage contributors, else 'testigo'.")
@click.option("--places", "places_file", type=click.Path(path_type=Path), default=None,
              help="The places file (JSON) saying where else the bundle is published, for the "
                   "related identifiers; default BUNDLE.places.json beside the bundle, if it "
                   "exists. After --publish the DOIs are written into it.")
@click.option("--dry-run", is_flag=True,
              help="Show the deposition, metadata and files; change nothing (no token needed).")
def zenodo(bundle: Path, url: str, community: str | None, new_version_of: str | None,
           publish: bool, creators: tuple[str, ...], places_file: Path | None, dry_run: bool) -> None:
    """Deposit the bundle directory BUNDLE on Zenodo and check every file's checksum there.

    \b
    First deposit:      testigo zenodo B                   (a draft; review it on Zenodo)
                        testigo zenodo B --publish         (then publish: the DOI is minted)
    A new edition:      testigo zenodo B2 --new-version-of ID --publish
    Interrupted?        Run the same command again: it finds this bundle's own draft (the bundle's
                        identity is in its notes) and sends only the files it lacks.

    Every file goes into the deposition's bucket and Zenodo's MD5 of it is compared with the
    bundle's at once; before publishing, the whole file list (size and MD5) is compared again.
    Any difference stops the command with CHECKSUM MISMATCH and nothing is published. Zenodo
    keeps no folders: the photo shards images/estado-*.zip are deposited as estado-*.zip (the
    record's description says how to put them back before `sha256sum -c`).

    The token comes from ZENODO_TOKEN (a personal access token with deposit:write and
    deposit:actions), never from the command line.
    """
    places_path = places_file or places_mod.default_path(bundle)
    places = places_mod.load(places_path, required=places_file is not None)
    if dry_run:
        click.echo("Dry run: nothing is changed on Zenodo.")
    try:
        result = zn.deposit_bundle(bundle, url=url, places=places, community=community,
                                   creators=list(creators), new_version_of=new_version_of,
                                   publish=publish, dry_run=dry_run, progress=_Bars(),
                                   on_plan=lambda plan: _print_plan(plan, url, dry_run))
    except TestigoError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("\nInterrupted. Run the same command again to continue in the same draft: files "
                   "already there are not sent again.", err=True)
        raise click.exceptions.Exit(130) from None
    if dry_run:
        return
    dep = result.deposition or {}
    n = len(result.plan.bundle.files)
    click.echo(f"OK: all {n} files in Zenodo deposition {dep.get('id')} match the bundle "
               f"({len(result.sent)} sent now, {len(result.plan.already_there)} already there).")
    if result.html_url:
        click.echo(f"  page:   {result.html_url}")
    if dep.get("submitted"):
        click.echo(f"  DOI:    {result.doi}  (https://doi.org/{result.doi})")
        if result.concept_doi:
            click.echo(f"  all versions: DOI {result.concept_doi}")
        updated = replace(places, zenodo_doi=result.doi or places.zenodo_doi,
                          zenodo_concept_doi=result.concept_doi or places.zenodo_concept_doi)
        if updated != places:
            places_mod.save(places_path, updated)
            click.echo(f"  written into {places_path} (for testigo build/serve/mirror --places)")
    else:
        click.echo("  It is a draft: review it on Zenodo, then run the same command with --publish.")
