"""`testigo build`, `testigo keygen`, `testigo verify`: thin click commands over bundle/signing.

Standalone commands; the main group registers them (``cli.add_command(build)`` ...).
Passwords are read from TESTIGO_KEY_PASSWORD or asked for at a prompt, never taken as an
option: a command-line argument ends up in shell history and in ``ps`` for everyone to see.
"""
from __future__ import annotations

import functools
import os
import sys

import click

from . import signing
from .cli import progress_bar
from .shards import DEFAULT_MAX_MEMBERS, MAX_MEMBERS
from .errors import TestigoError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _errors_to_click(f):
    """Report library errors as one clean line with exit status 1, also outside the main group."""
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except TestigoError as e:
            raise click.ClickException(str(e)) from None
    return wrapper


def _password_for(key: str) -> str | None:
    """The password of an encrypted key: env var, else a hidden prompt (None if not needed)."""
    if not signing.secret_key_is_encrypted(key):
        return None
    if os.environ.get(signing.PASSWORD_ENV) is not None:
        return os.environ[signing.PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise click.ClickException(f"{signing.key_paths(key)[0]} is encrypted and there is no terminal to "
                                   f"ask for its password: set {signing.PASSWORD_ENV}")
    return click.prompt(f"Password for {signing.key_paths(key)[0]}", hide_input=True, err=True)


@click.command(context_settings=CONTEXT)
@click.option("--workdir", "-w", required=True, type=click.Path(exists=True, file_okay=False),
              help="The workdir made by `testigo ingest`.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=True),
              help="Bundle folder to write: new, empty, or a previous bundle (replaced whole).")
@click.option("--key", "-k", type=click.Path(),
              help="Secret key to sign with (K or K.key from `testigo keygen K`). "
                   f"Its password: ${signing.PASSWORD_ENV} or a prompt.")
@click.option("--pubkey", type=click.Path(),
              help="Instead of signing: embed this public key, to rebuild a published bundle and "
                   "compare its SHA256SUMS byte for byte.")
@click.option("--name", help="Bundle name, used for the database file (default: the election id, "
                             "e.g. ve-2024 -> ve-2024.db).")
@click.option("--shard-size", type=click.IntRange(1, MAX_MEMBERS), default=DEFAULT_MAX_MEMBERS,
              show_default=True, metavar="N",
              help="Most photos per zip shard (shards also stay under 1 GiB). A rebuild meant to "
                   "compare with a published bundle must use the same value (its datapackage.json "
                   "says which).")
@click.option("--unread-photos", is_flag=True,
              help="Also publish the photos nobody could read yet (the transcription queue), for a "
                   "bundle sent to the team that merges it: its `testigo ingest --trust` takes them in "
                   "(with this workdir's reading) and queues them for `testigo transcribe`. Off by default: a photo "
                   "nobody could read may not be an acta at all (a face, a house), so look at them "
                   "before a public bundle carries them.")
@click.option("--redact-members", is_flag=True,
              help="Blur the mesa members' part of every published photo (their names, ID numbers, "
                   "signatures and fingerprints, printed under the summary): for a movement that must "
                   "protect them. The votes, summary and QR stay readable; images.original_sha256 keeps "
                   "the original's hash and images.redacted marks the copy. Off by default (README: "
                   "privacy).")
@click.option("--places", type=click.Path(exists=True, dir_okay=False),
              help="A places file (JSON: internet_archive, zenodo_concept_doi, commons_category, ...) "
                   "naming where the bundle is or will be published; the bundle's README lists them "
                   "and datapackage.json records them. Only what is known before the build can be "
                   "there: the Internet Archive identifier you will use, the Zenodo concept DOI, the "
                   "Commons category (see README, 'Where the bundle is published').")
@_errors_to_click
def build(workdir, out, key, pubkey, name, shard_size, unread_photos, places, redact_members):
    """Build the public bundle from a workdir: SQLite, metadata-free photos, SHA256SUMS, signature.

    \b
    The photos go into zip shards, images/estado-EE-K.zip (one or more per estado, stored, not
    recompressed, each member named <sha256>.jpg|.png): unzip -l / unzip -p read them.
    Reproducible: the same workdir and key give byte-identical files. Never decodes an
    image (readings are cached in the workdir); stripped photos are cached there too.
    Example:
      testigo keygen keys/testigo
      testigo build --workdir W --out B --key keys/testigo
      testigo verify B --pubkey keys/testigo.pub
    """
    from . import places as places_mod
    from .bundle import build_bundle

    if key and pubkey:
        raise click.UsageError("use --key to sign, or --pubkey to rebuild for comparison, not both")
    password = _password_for(key) if key else None
    report = build_bundle(workdir, out, key=key, name=name, password=password, public_key=pubkey,
                          progress_factory=progress_bar("publishing photos (strip metadata, zip into shards)"),
                          shard_size=shard_size, unread_photos=unread_photos,
                          places=places_mod.load(places) if places else None,
                          redact_members=redact_members)
    click.echo(f"bundle {report.name} written to {report.path}: {report.files} files, "
               f"{report.bytes / 1e6:.1f} MB")
    click.echo(f"  actas {report.actas:,}  counted mesas {report.mesas_counted:,}  photos {report.images:,} "
               f"({report.images_stripped:,} newly stripped) in {report.shards} shard(s)  "
               f"issues {report.issues:,}")
    click.echo("  totals: " + "  ".join(f"{k} {v:,}" for k, v in report.totals.items()))
    out = report.outside_registry
    if out.get("actas"):
        click.echo(f"  actas outside the registry (counted apart): {out['actas']:,} readings of "
                   f"{out['mesas']:,} mesas, {out['counted']:,} counted; totals: "
                   + "  ".join(f"{k} {v:,}" for k, v in report.totals_outside_registry.items()))
    for w in report.warnings:
        click.secho(f"  warning: {w}", fg="yellow", err=True)
    if report.signed:
        click.echo(f"  signed with key {report.key_id}; check with: testigo verify {report.path} "
                   f"--pubkey {signing.key_paths(key)[1]}")
    else:
        click.secho("  NOT signed (no --key): `testigo verify` will report it", fg="yellow", err=True)


@click.command(context_settings=CONTEXT)
@click.argument("path", type=click.Path())
@click.option("--no-password", is_flag=True,
              help="Write the secret key unencrypted. Only for demos and throw-away keys.")
@click.option("--force", is_flag=True, help="Overwrite an existing key pair (the old key is lost).")
@_errors_to_click
def keygen(path, no_password, force):
    """Create a minisign key pair: PATH.key (secret) and PATH.pub (public).

    The secret key is encrypted with a password (scrypt, as `minisign -G`), read from
    $TESTIGO_KEY_PASSWORD or asked for twice. Publish PATH.pub through channels other than
    the bundle itself (website, social media), so readers can check who signed a bundle.
    """
    if no_password:
        password = None
    elif os.environ.get(signing.PASSWORD_ENV):
        password = os.environ[signing.PASSWORD_ENV]
    elif sys.stdin.isatty():
        password = click.prompt("Password for the new key", hide_input=True, confirmation_prompt=True,
                                err=True)
    else:
        raise click.ClickException(f"no terminal to ask for a password: set {signing.PASSWORD_ENV}, "
                                   "or use --no-password for a throw-away demo key")
    files = signing.keygen(path, password, unencrypted=no_password, force=force)
    click.echo(f"key {files.key_id}: secret {files.secret} ({'encrypted' if password else 'NOT encrypted'}), "
               f"public {files.public}")
    click.echo("Keep the secret key private and backed up; publish the .pub file widely.")


@click.command(context_settings=CONTEXT)
@click.argument("bundle", type=click.Path())
@click.option("--pubkey", "-p", help="The publisher's public key (.pub file or base64), obtained "
                                     "independently of the bundle. Strongly recommended.")
@click.option("--quiet", "-q", is_flag=True, help="Print only problems.")
@_errors_to_click
def verify(bundle, pubkey, quiet):
    """Check a bundle: signature, every checksum, missing/extra files, SQLite integrity, photos.

    Each photo shard is read once: its checksum, and every member's sha256 against its name
    and its row in the images table (a damaged, missing or extra photo is named exactly).

    Exit status 0 when everything holds, 1 with the list of what failed. Without --pubkey only
    the key shipped inside the bundle is used (integrity, not authorship), with a warning.
    """
    from .verify import verify_bundle

    report = verify_bundle(bundle, pubkey, progress_factory=None if quiet else
                           progress_bar("checking sha256 of every file"))
    for w in report.warnings:
        click.secho(w, fg="yellow", err=True)
    if report.ok:
        if not quiet:
            click.secho(f"OK: {bundle}: {report.files_checked} files match SHA256SUMS, signature by key "
                        f"{report.key_id} verified, database intact, {report.photos} photos in "
                        f"{report.shards} shards match their names", fg="green")
            if report.trusted_comment:
                click.echo(f"trusted comment: {report.trusted_comment}")
        return
    click.secho(f"FAILED: {bundle}: {len(report.problems)} problem(s):", fg="red", err=True)
    for p in report.problems:
        click.echo(f"  - {p}", err=True)
    sys.exit(1)
