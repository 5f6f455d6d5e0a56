"""A deposition's metadata, from the bundle's ``datapackage.json`` and where else it is published.

Zenodo has no folders, so each bundle file gets a flat name (``images/estado-01-1.zip`` becomes
``estado-01-1.zip``); the description says how to put the shards back under ``images/`` before
``sha256sum -c SHA256SUMS``. The bundle's identity (the SHA-256 of its ``SHA256SUMS``) goes in
``notes``, which is how a re-run finds its own draft again.
"""
from __future__ import annotations

import html
import re

from archive.places import ARCHIVE_DETAILS_URL, Places
from publish.internet_archive.bundle import Bundle

from .errors import DepositionConflict

MAX_FILES = 100                 # Zenodo's limit of files per record
MAX_BYTES = 50 * 10**9          # and of bytes per record
IDENTITY = "testigo bundle: sha256 of SHA256SUMS = "
_BTIH = re.compile(r"xt=urn:btih:([0-9A-Za-z]+)")


def zenodo_name(key: str) -> str:
    """The file's name on Zenodo: its path's last part (Zenodo keeps no folders)."""
    return key.rsplit("/", 1)[-1]


def file_names(bundle: Bundle) -> dict[str, str]:
    """Zenodo name -> bundle key, refusing a bundle whose flat names collide or that is over
    Zenodo's limits."""
    names: dict[str, str] = {}
    for f in bundle.files:
        name = zenodo_name(f.key)
        if name in names:
            raise DepositionConflict(f"Two bundle files would have the same name {name!r} on Zenodo "
                                     f"({names[name]} and {f.key}), which keeps no folders.")
        names[name] = f.key
    if len(names) > MAX_FILES:
        raise DepositionConflict(f"The bundle has {len(names)} files; a Zenodo record takes at most "
                                 f"{MAX_FILES}. Rebuild with a larger --shard-size.")
    if bundle.total_size > MAX_BYTES:
        raise DepositionConflict(f"The bundle has {bundle.total_size:,} bytes; a Zenodo record takes "
                                 f"at most {MAX_BYTES:,}. Publish the photos elsewhere (testigo upload).")
    return names


def _license_id(datapackage: dict) -> str:
    for lic in datapackage.get("licenses") or []:
        if isinstance(lic, dict) and lic.get("name"):
            return str(lic["name"]).lower()   # Zenodo's licence ids are SPDX ids in lower case
    return "cc0-1.0"


def _creators(datapackage: dict, creators: list[str] | None) -> list[dict]:
    names = list(creators or [])
    if not names:
        names = [str(c.get("title")) for c in datapackage.get("contributors") or []
                 if isinstance(c, dict) and c.get("title")
                 and c.get("role", "author") in ("author", "creator")]
    return [{"name": n} for n in (names or ["testigo"])]


def _pattern(folder: str, keys: list[str]) -> str:
    """The shell words that name a folder's files once flattened (``estado-*.zip`` for the shards)."""
    names = sorted(zenodo_name(k) for k in keys if k.startswith(folder + "/"))
    if len(names) > 1 and all(n.startswith("estado-") and n.endswith(".zip") for n in names):
        return "estado-*.zip"
    return " ".join(names)


def _description(bundle: Bundle, places: Places) -> str:
    dp = bundle.datapackage
    t = dp.get("testigo") or {}
    shards = [f.key for f in bundle.files if "/" in f.key]
    folders = sorted({k.rsplit("/", 1)[0] for k in shards})
    esc = html.escape
    parts = [f"<p>{esc(str(dp.get('description') or ''))}</p>"]
    counts = t.get("counts") or {}
    if counts:
        parts.append(f"<p>{counts.get('actas', 0):,} actas, {counts.get('mesas_counted', 0):,} counted "
                     f"mesas of {counts.get('mesas_registry', 0):,} in the registry, "
                     f"{counts.get('images', 0):,} published photos.</p>")
    verify = "<code>sha256sum -c SHA256SUMS</code>"
    if folders:
        moves = "; ".join(f"<code>mkdir -p {esc(d)} &amp;&amp; mv {esc(_pattern(d, shards))} {esc(d)}/</code>"
                          for d in folders)
        parts.append(f"<p><b>Verify.</b> Zenodo keeps no folders: after downloading every file, put the "
                     f"photo shards back where SHA256SUMS lists them ({moves}), then run {verify} and "
                     "<code>minisign -Vm SHA256SUMS -p KEY.pub</code> with the publisher's key obtained "
                     "from another channel (or <code>testigo verify . --pubkey KEY.pub</code>).</p>")
    else:
        parts.append(f"<p><b>Verify.</b> {verify}, then <code>minisign -Vm SHA256SUMS -p KEY.pub</code> "
                     "with the publisher's key obtained from another channel.</p>")
    if t.get("public_key_fingerprint"):
        parts.append(f"<p>Signed with the minisign key {esc(str(t['public_key_fingerprint']))}.</p>")
    links = [(label, url) for kind, label, url in places.links() if not kind.startswith("zenodo")]
    if links:
        items = "".join(f"<li>{esc(label)}: <a href=\"{esc(url, quote=True)}\">{esc(url)}</a></li>"
                        for label, url in links)
        parts.append(f"<p>The same bundle is also published at:</p><ul>{items}</ul>")
    return "\n".join(parts)


def related_identifiers(places: Places) -> list[dict]:
    """The Internet Archive items (URLs) and the torrent (its info-hash as a URN): the same files."""
    out = [{"identifier": ARCHIVE_DETAILS_URL + i, "relation": "isIdenticalTo", "scheme": "url",
            "resource_type": "dataset"} for i in places.internet_archive]
    if places.magnet:
        m = _BTIH.search(places.magnet)
        if m:
            out.append({"identifier": f"urn:btih:{m.group(1).lower()}", "relation": "isIdenticalTo",
                        "scheme": "urn", "resource_type": "dataset"})
    return out


def deposition_metadata(bundle: Bundle, places: Places | None = None, *, community: str | None = None,
                        creators: list[str] | None = None, publication_date: str | None = None) -> dict:
    """The metadata Zenodo's deposit API takes (``PUT deposit/depositions/<id>``)."""
    places = places or Places()
    dp = bundle.datapackage
    t = dp.get("testigo") or {}
    keywords = [str(k) for k in dp.get("keywords") or [] if k] or [
        x for x in ("testigo", "actas", "Venezuela", str(t.get("election") or ""), "elections") if x]
    md: dict = {
        "upload_type": "dataset",
        "title": str(dp.get("title") or dp.get("name") or bundle.root.name),
        "description": _description(bundle, places),
        "creators": _creators(dp, creators),
        "access_right": "open",
        "license": _license_id(dp),
        "keywords": keywords,
        "version": bundle.manifest_sha256[:12],
        "notes": IDENTITY + bundle.manifest_sha256,
        "language": "spa",
    }
    related = related_identifiers(places)
    if related:
        md["related_identifiers"] = related
    if community:
        md["communities"] = [{"identifier": community}]
    if publication_date:
        md["publication_date"] = publication_date
    return md


def bundle_identity(deposition: dict) -> str | None:
    """The SHA-256 of the SHA256SUMS a deposition was made for, from its notes."""
    notes = str((deposition.get("metadata") or {}).get("notes") or "")
    m = re.search(re.escape(IDENTITY) + r"([0-9a-f]{64})", notes)
    return m.group(1) if m else None
