"""`testigo demo`: the whole job on the bundled sample, from photos to the served site."""
from __future__ import annotations

from pathlib import Path

import click

from archive import election as election_mod
from archive.cli import CONTEXT, progress_bar


@click.command(context_settings=CONTEXT)
@click.option("--dir", "base", default="testigo-demo", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo keeps its workdir, key and bundle.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to serve on.")
@click.option("--port", default=8001, show_default=True, help="Port to serve on.")
@click.option("--serve/--no-serve", default=True, show_default=True, help="Serve the bundle at the end.")
@click.option("--election", default=election_mod.DEFAULT_ELECTION, show_default=True)
def demo(base, host, port, serve, election):
    """Run the whole job on the bundled sample: ingest, build, sign, verify, torrent, serve.

    \b
    Sample: the published per-mesa CSV (24,532 mesas) and the acta-like renderings in
    datasets/<election>/sample/ (renderings from real rows, not original photos).
    The signing key is a throw-away demo key without a password (BASE/demo-key.key).
    Running it again reuses the workdir (nothing is decoded twice) and rebuilds the bundle.
    """
    from archive.bundle import build_bundle
    from archive.ingest import ingest as run_ingest
    from archive.signing import keygen
    from archive.verify import verify_bundle

    defn = election_mod.load(election)
    base = Path(base)
    work, bundle, key = base / "work", base / "bundle", base / "demo-key"
    sample = sorted(p for p in (defn.folder / "sample").glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    sources = [str(defn.registry_path)] + [str(p) for p in sample]
    click.echo(f"1/5 ingest: {defn.registry_path.name} and {len(sample)} sample pages -> {work}")
    summary = run_ingest(sources, work, election, progress_factory=progress_bar("    decoding"))
    new = ", ".join(f"{k} {v}" for k, v in sorted(summary.new.items())) or "nothing"
    click.echo(f"    new: {new}; already ingested: {summary.skipped}")
    if not Path(f"{key}.key").exists():
        keygen(key, unencrypted=True)
    click.echo(f"2/5 build: signed bundle -> {bundle} (demo key {key}.key, no password)")
    report = build_bundle(work, bundle, key=key)
    click.echo(f"    {report.files} files, {report.bytes / 2**20:.1f} MiB; {report.actas} actas, "
               f"{report.mesas_counted} mesas counted, {report.images} images, {report.issues} issues")
    for w in report.warnings:
        click.secho(f"    warning: {w}", fg="yellow")
    click.echo("3/5 verify")
    check = verify_bundle(bundle, pubkey=f"{key}.pub")
    for w in check.warnings:
        click.secho(f"    warning: {w}", fg="yellow")
    if not check.ok:
        for problem in check.problems:
            click.secho(f"    FAILED: {problem}", fg="red")
        raise click.exceptions.Exit(1)
    click.echo(f"    ok: signature, checksums and database of {bundle} verified")
    from .torrent.metainfo import make_torrents

    click.echo("4/5 torrent: hybrid v1+v2 and v1-only torrents beside the bundle")
    for t in make_torrents(bundle):
        click.echo(f"    {t.path}\n    {t.magnet}")
    if not serve:
        return
    from .site.server import serve as run_server

    click.echo(f"5/5 serve: Datasette over {bundle} (Ctrl-C to stop)")
    run_server(bundle, host=host, port=port, echo=click.echo)
