"""``testigo check``: does my photo of an acta match the archive? A thin layer over
:mod:`publish.check.acta`."""
from __future__ import annotations

import json
import sys
from collections import Counter

import click

from archive import election as election_mod

from .acta import STATUSES, check_photos, open_archive

LABELS = {"match": "match", "mismatch": "MISMATCH", "not_in_archive": "not in archive", "unreadable": "unreadable"}


def _line(c) -> str:
    where = f"mesa {c.mesa_id}" if c.mesa_id else "mesa ?"
    text = f"{c.file}\t{where}\t{LABELS[c.status]}"
    if c.status == "match":
        text += f" ({c.compared} fields, archived acta #{c.compared_with['id']})"
    elif c.status == "mismatch":
        text += f" (archived acta #{c.compared_with['id']}): " + "; ".join(
            f"{d['en']}: photo {d['yours']}, archive {d['archived']}" for d in c.differences)
    else:
        text += f" [{c.code}]: {c.reason}"
    return text


@click.command("check")
@click.argument("photos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--bundle", "-b", type=click.Path(exists=True, file_okay=False),
              help="Check against this bundle folder (read in-process; nothing is served).")
@click.option("--site", "-s", metavar="URL",
              help="Check against a testigo site or its static mirror, e.g. https://actas.example.org "
                   "(only each mesa's /mesa/<id>.json is fetched; photos are never sent).")
@click.option("--pubkey", "-p", help="With --bundle: the publisher's public key (.pub file or base64); "
                                     "without it the key shipped inside the bundle is used.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per photo, one per line.")
@click.option("--election", default=election_mod.DEFAULT_ELECTION, show_default=True)
def check(photos, bundle, site, pubkey, as_json, election):
    """Check acta PHOTOS against the archive: is the acta you photographed the one archived?

    Reads each photo's QR with testigo's own decoder and compares its numbers, field by field,
    with the archived acta of that mesa (the same comparison as the site's /comprobar page).
    Prints per photo: mesa, match / MISMATCH / not in archive / unreadable, and the fields that
    differ. Exit code 0 only when every photo matches, 2 when any does not, 1 on errors.
    A --bundle is opened only once its signature, its database's checksum and schema hold.
    """
    defn = election_mod.load(election)
    archive = open_archive(bundle, site, pubkey)
    seen: Counter = Counter()
    try:
        for c in check_photos(photos, archive, defn):
            seen[c.status] += 1
            click.echo(json.dumps(c.to_dict(), ensure_ascii=False) if as_json else _line(c))
    finally:
        archive.close()
    if not as_json:
        click.echo(f"{sum(seen.values())} photos: " + ", ".join(f"{seen[s]} {LABELS[s].lower()}" for s in STATUSES),
                   err=True)
    sys.exit(0 if seen["match"] == sum(seen.values()) else 2)
