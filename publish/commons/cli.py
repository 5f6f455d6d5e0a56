"""``testigo commons``: upload a bundle's acta photos to Wikimedia Commons (or another MediaWiki).

A standalone ``click`` command; the ``testigo`` group registers it. The work is in
:mod:`publish.commons`.
"""
from __future__ import annotations

from pathlib import Path

import click
from tqdm import tqdm

from archive import places as places_mod
from archive.errors import TestigoError
from publish import commons as cm

_SAID = {"sent": "uploaded", "there": "already there", "duplicate": "DUPLICATE, skipped",
         "name-taken": "NAME TAKEN, skipped", "planned": "would upload", "refused": "REFUSED, skipped"}


class _Bar(cm.CommonsProgress):
    def __init__(self, verbose: bool):
        self.bar = None
        self.verbose = verbose

    def begin(self, total):
        self.bar = tqdm(total=total, desc="photos", unit="photo", dynamic_ncols=True, disable=None)

    def outcome(self, o):
        if self.bar is not None:
            self.bar.update(1)
        if self.verbose or o.status not in ("there",):
            line = f"  {_SAID.get(o.status, o.status):<20} File:{o.name}" + (f"  ({o.detail})" if o.detail else "")
            (tqdm.write if self.bar is not None and not self.bar.disable else click.echo)(line)

    def finish(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def checking(self, files):
        click.echo(f"Checking the wiki's SHA-1 of {files} file(s)...")


@click.command("commons")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--api", default=cm.COMMONS_API, show_default=True, metavar="URL",
              help="The wiki's api.php (Commons, or a test wiki).")
@click.option("--user", metavar="U", default=None,
              help=f"The bot password's user name, 'Name@botname' (default: ${cm.USER_VARIABLE}). The "
                   f"password itself only comes from ${cm.PASSWORD_VARIABLE}.")
@click.option("--category", metavar="C", default=None,
              help="The top category (default: the election definition's); the estado and "
                   "municipio categories are made under it.")
@click.option("--licence", "licence", metavar="TEMPLATE", default=None,
              help="The licence template for every file page, e.g. Cc-zero (default: the election "
                   "definition's, see datasets/ve-2024/README.md).")
@click.option("--places", "places_file", type=click.Path(path_type=Path), default=None,
              help="The places file naming where else the bundle is published (Internet Archive "
                   "items, magnet...), quoted on every file page; default BUNDLE.places.json beside "
                   "the bundle, if it exists.")
@click.option("--dry-run", is_flag=True,
              help="Log in to nothing and change nothing; show what would be uploaded (the wiki is "
                   "still asked which photos it already has).")
@click.option("--limit", type=click.IntRange(min=0), default=None, metavar="N",
              help="Upload at most N new files this run (e.g. a first trial batch).")
@click.option("--maxlag", type=click.IntRange(min=1), default=5, show_default=True, metavar="S",
              help="Wait whenever the wiki's database replicas lag more than S seconds (Wikimedia "
                   "asks bots for 5).")
@click.option("--pause", type=click.FloatRange(min=0), default=1.0, show_default=True, metavar="S",
              help="Seconds to wait after each upload or page created (a bot's edit rate).")
@click.option("--verbose", "-v", is_flag=True, help="Also list the photos already on the wiki.")
def commons(bundle: Path, api: str, user: str | None, category: str | None, licence: str | None,
            places_file: Path | None, dry_run: bool, limit: int | None, maxlag: int, pause: float,
            verbose: bool) -> None:
    """Upload every acta photo of the bundle BUNDLE to Wikimedia Commons, then check each SHA-1.

    \b
    Each photo gets a file page saying which mesa, centre and place its acta is of, the acta's
    numbers, the SHA-256 of the photo and of the original, the bundle it comes from (and where
    else that is published), a licence template and a category per estado and per municipio.
    Before each upload the wiki is asked for a file with the photo's SHA-1:
      under the photo's own name   already uploaded by an earlier run: skipped (so an
                                   interrupted run resumes and nothing is uploaded twice);
      under another name           a duplicate (Commons refuses those): skipped, listed.
    Afterwards the SHA-1 the wiki reports for every file is compared with the bundle's photo;
    any difference fails the command (SHA-1 MISMATCH).

    Log in with a bot password (Special:BotPasswords): ${COMMONS_BOT_USER} (or --user) and
    ${COMMONS_BOT_PASSWORD}, never the password on the command line. Uploading thousands of
    files to Commons needs an approved bot task first (see README).
    """
    places = places_mod.load(places_file or places_mod.default_path(bundle), required=places_file is not None)
    try:
        password = None
        if not dry_run:
            user, password = cm.credentials(user)
        else:
            click.echo("Dry run: nothing is uploaded or edited.")
        from importlib.metadata import version
        agent = f"testigo/{version('testigo')} ({user or 'dry run'}) mwclient"
        result = cm.upload_photos(bundle, api=api, user=user, password=password, category=category,
                                  licence=licence, places=places, dry_run=dry_run, limit=limit,
                                  progress=_Bar(verbose or dry_run), maxlag=maxlag, pause=pause,
                                  user_agent=agent,
                                  on_style=lambda s: click.echo(f"Category: {s.category}; licence: "
                                                                f"{s.licence.replace(chr(10), ' ')}"))
    except TestigoError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("\nInterrupted. Run the same command again: photos already on the wiki are "
                   "found by their SHA-1 and not uploaded twice.", err=True)
        raise click.exceptions.Exit(130) from None
    counts = ", ".join(f"{result.count(s)} {_SAID[s].lower()}" for s in _SAID if result.count(s))
    click.echo(f"{len(result.outcomes)} photo(s): {counts or 'nothing to do'}.")
    if result.stopped_at_limit:
        click.echo(f"Stopped at --limit {limit}: run again to upload the rest.")
    if result.categories_created:
        click.echo(f"Categories created: {', '.join(result.categories_created)}")
    if not dry_run:
        click.echo(f"OK: the wiki's SHA-1 of all {result.checked} file(s) match the bundle's photos.")
