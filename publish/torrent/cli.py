"""`testigo torrent`, `testigo seed`, `testigo fetch`: thin click layer over publish.torrent.

Library errors (TestigoError) become one ``Error: ...`` line and exit code 1, so these commands
behave the same inside the ``testigo`` group and on their own.
"""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import click

from archive.errors import TestigoError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# publish.torrent.DEFAULT_LISTEN, spelled out so that `testigo --help` does not load libtorrent
DEFAULT_LISTEN = "0.0.0.0:6881,[::]:6881"


def _err(msg: str) -> None:
    click.echo(msg, err=True)


class _Line:
    """A status line: redrawn in place on a terminal, printed every ``every`` seconds otherwise."""

    def __init__(self, every: float):
        self.tty = sys.stderr.isatty()
        self.every = every
        self.last = 0.0
        self.width = 0

    def show(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if not force and now - self.last < 0.1:
                return
            self.last = now
            pad = max(0, self.width - len(text))
            click.echo("\r" + text + " " * pad, nl=False, err=True)
            self.width = len(text)
        elif force or now - self.last >= self.every:
            _err(text)
            self.last = now

    def done(self) -> None:
        if self.tty and self.width:
            click.echo("", err=True)
            self.width = 0


class _PieceBars:
    """A progress bar with an ETA for each torrent being hashed (``make_torrents``' progress)."""

    def __init__(self):
        self.kind, self.bar = None, None

    def update(self, kind: str, done: int, total: int) -> None:
        if kind != self.kind:
            from archive.cli import progress_bar
            self.close()
            self.kind, self.bar = kind, progress_bar(f"hashing pieces ({kind} torrent)")(total)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


@contextlib.contextmanager
def _library_errors(line: _Line):
    """A library error ends the status line and becomes ``Error: ...`` with exit code 1."""
    try:
        yield
    except TestigoError as e:
        line.done()
        raise click.ClickException(str(e)) from None


def _info_hashes(info) -> str:
    """``v1 <hex> v2 <hex>``, each part only when the torrent has that hash."""
    return " ".join(f"{k} {h}" for k, h in (("v1", info.info_hash_v1), ("v2", info.info_hash_v2)) if h)


def _discovery(no_dht: bool, no_lsd: bool, no_port_mapping: bool, no_utp: bool) -> dict:
    return dict(dht=not no_dht, lsd=not no_lsd, upnp=not no_port_mapping, natpmp=not no_port_mapping, utp=not no_utp)


_discovery_options = [
    click.option("--no-dht", is_flag=True, help="Do not use the DHT (trackerless peer discovery)."),
    click.option("--no-lsd", is_flag=True, help="Do not use Local Service Discovery (LAN multicast)."),
    click.option("--no-port-mapping", is_flag=True, help="Do not ask the router to forward the port (UPnP, NAT-PMP)."),
    click.option("--no-utp", is_flag=True, help="TCP only. uTP yields to other traffic on home lines; TCP is "
                                                "much faster between servers and on a LAN."),
]


def _with(options):
    def deco(f):
        for o in reversed(options):
            f = o(f)
        return f
    return deco


@click.command(context_settings=CONTEXT)
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the hybrid torrent. Default: BUNDLE.torrent beside the bundle folder. "
                   "The v1 companion goes next to it as NAME.v1.torrent.")
@click.option("--web-seed", "web_seeds", multiple=True, metavar="URL",
              help="HTTP(S) mirror of the bundle (BEP 19 web seed); repeatable. Clients fetch "
                   "URL/NAME/<file> (NAME: the torrent's name), so URL must hold a folder named NAME. "
                   "For an Internet Archive item, whose files sit at archive.org/download/ITEM/<file>: "
                   "--name ITEM --web-seed https://archive.org/download/")
@click.option("--tracker", "trackers", multiple=True, metavar="URL",
              help="Announce URL (http://, https:// or udp://); repeatable, tried in the order given. "
                   "Optional: without trackers peers are found through the DHT and the web seeds.")
@click.option("--v1-only", is_flag=True, help="Write only the v1 torrent (no hybrid).")
@click.option("--hybrid-only", is_flag=True, help="Write only the hybrid v1+v2 torrent (no v1 companion).")
@click.option("--name", help="Torrent name (the top folder downloaders get). Default: the bundle folder's name.")
@click.option("--archive-item", metavar="ID",
              help="The Internet Archive item holding this bundle (`testigo upload B --identifier ID`): "
                   "names the torrent ID and adds the item as a web seed, so downloads work even with "
                   "no peer online. Same as --name ID --web-seed https://archive.org/download/. Refused "
                   "when the upload is spread over several items (ID-part-01, ...): one web seed URL "
                   "cannot serve files kept in several items.")
def torrent(bundle, out, web_seeds, trackers, v1_only, hybrid_only, name, archive_item):
    """Make the .torrent files of a signed BUNDLE and print their magnet links.

    \b
    Two torrents of the same files are written, both reproducible (same bundle, same bytes):
      NAME.torrent     hybrid BitTorrent v1+v2 (BEP 52): per-file SHA-256 roots; for current
                       clients (qBittorrent, Deluge, Transmission >= 4, libtorrent-based ones)
      NAME.v1.torrent  plain v1, no padding files: for older clients such as the Transmission
                       3.00 and aria2 1.36 in Debian 12, which cannot use hybrid torrents
    Publish both. stdout gets one magnet link per torrent (hybrid first); `testigo seed`
    serves both at once.
    """
    from . import metainfo as T

    if v1_only and hybrid_only:
        raise click.UsageError("--v1-only and --hybrid-only exclude each other")
    if archive_item:
        from ..internet_archive import torrent_web_seed, validate_identifier
        try:
            archive_item = validate_identifier(archive_item)
        except TestigoError as e:
            raise click.BadParameter(str(e), param_hint="--archive-item") from None
        if name and name != archive_item:
            raise click.UsageError("--archive-item names the torrent after the item; drop --name "
                                   "or give the same value")
        with _library_errors(_Line(every=10.0)):    # refuses a bundle spread over several items
            seed, note = torrent_web_seed(bundle, archive_item)
        if note:
            _err(note)
        # clients fetch WEBSEED/NAME/<file>; the archive serves download/ITEM/<file>
        name, web_seeds = archive_item, (*web_seeds, seed)
    kinds = ("v1",) if v1_only else ("hybrid",) if hybrid_only else T.KINDS
    line = _Line(every=10.0)
    with _library_errors(line), _PieceBars() as bars:
        t0 = time.monotonic()
        infos = T.make_torrents(bundle, out, web_seeds, trackers, kinds=kinds, name=name, progress=bars.update)
        for info in infos:
            _err(f"wrote {info.path} ({'hybrid v1+v2' if info.kind == 'hybrid' else 'v1 only'}, "
                 f"{len(info.files)} files, {info.piece_length // 1024} KiB pieces) info-hash {_info_hashes(info)}")
            click.echo(info.magnet)
        _err(f"{infos[-1].total_size / 1048576:.1f} MiB in {name or bundle.resolve().name}, "
             f"hashed in {time.monotonic() - t0:.1f}s")


@click.command(context_settings=CONTEXT)
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--torrent", "torrents", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Torrent file to serve; repeatable. Default: BUNDLE.torrent and BUNDLE.v1.torrent "
                   "beside the bundle folder (as written by `testigo torrent`).")
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT[,...]",
              help="Addresses and port to accept peers on, comma-separated ([ADDR]:PORT for IPv6; port 0 "
                   "picks a free one; if the port is taken the next free one is used and shown). Open "
                   "the port in the firewall so that others can connect.")
@_with(_discovery_options)
@click.option("--peer", "peers", multiple=True, metavar="HOST:PORT",
              help="Also connect out to this peer (e.g. a mirror); repeatable.")
@click.option("--duration", type=float, metavar="SECONDS", help="Stop after this long (default: until Ctrl-C).")
def seed(bundle, torrents, listen, no_dht, no_lsd, no_port_mapping, no_utp, peers, duration):
    """Share BUNDLE over BitTorrent until Ctrl-C.

    First every file is checked against the torrent(s), piece by piece: a bundle that does not
    match (a damaged or edited file) is refused, with the bad files named, and nothing is
    shared. The bundle is only ever read. A status line shows peers, upload rate and ratio.
    """
    from .seeder import Seeder

    line = _Line(every=30.0)
    with _library_errors(line):
        seeder = Seeder(bundle, list(torrents) or None, listen, peers=peers,
                        **_discovery(no_dht, no_lsd, no_port_mapping, no_utp))
        _err(f"checking {bundle} against {', '.join(p.name for p in seeder.torrent_paths)}...")
        with seeder:
            for info in seeder.infos:
                _err(f"  {info.path.name}: {info.kind}, {len(info.files)} files OK, info-hash {_info_hashes(info)}")
            summary = seeder.run(max_seconds=duration, on_status=lambda st: line.show(st.line()),
                                 on_start=lambda: _err(f"seeding on port {seeder.port} (Ctrl-C to stop)"))
        line.done()
        _err(f"stopped{' (interrupted)' if summary.interrupted else ''}: sent {summary.uploaded / 1048576:.1f} MiB "
             f"in {summary.seconds:.0f}s, up to {summary.max_peers} peer(s) at once")


@click.command(context_settings=CONTEXT)
@click.argument("source", metavar="MAGNET_OR_TORRENT")
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to download into; the bundle lands in OUT/NAME/ (a partial download there is resumed).")
@click.option("--peer", "peers", multiple=True, metavar="HOST:PORT",
              help="Connect to this peer directly (e.g. a known seeder); repeatable.")
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT[,...]",
              help="Addresses and port for incoming peers, comma-separated.")
@_with(_discovery_options)
@click.option("--timeout", type=float, metavar="SECONDS", help="Give up after this long (default: never).")
@click.option("--pubkey", metavar="KEY",
              help="The publisher's public key (file or base64), obtained independently, to check the "
                   "signature against. Without it only the key inside the bundle is used.")
def fetch(source, out_dir, peers, listen, no_dht, no_lsd, no_port_mapping, no_utp, timeout, pubkey):
    """Download a bundle from a magnet link or .torrent file, then verify it.

    After the download the bundle is checked like `testigo verify` does (signature, every
    checksum, no missing or extra file, the database). Exit status 1 if it does not verify:
    do not use or re-share such a copy. Prints the bundle's path on success.
    """
    from .fetch import fetch as run_fetch
    from .metainfo import FetchVerifyError

    line = _Line(every=5.0)
    with _library_errors(line):
        try:
            result = run_fetch(source, out_dir, peers, listen=listen, timeout=timeout, pubkey=pubkey,
                               on_progress=lambda p: line.show(p.line(), force=p.state == "done"),
                               **_discovery(no_dht, no_lsd, no_port_mapping, no_utp))
        except FetchVerifyError as e:
            line.done()
            _err(f"{e.path}: does NOT verify:")
            for p in e.problems:
                _err(f"  - {p}")
            raise click.ClickException(f"the downloaded bundle at {e.path} failed verification; do not use or re-share it") from None
    line.done()
    for w in getattr(result.report, "warnings", []) or []:
        _err(w)
    _err(f"downloaded {result.downloaded / 1048576:.1f} MiB in {result.seconds:.1f}s; bundle verified")
    click.echo(str(result.path))
