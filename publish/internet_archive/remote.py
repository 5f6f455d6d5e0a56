"""What the archive holds: whose items these are, and how every item's files compare with the
bundle (size, MD5 and SHA-1 as the archive lists them).

The archive lists a file only once it has processed it, so a file sent moments ago may be missing
or still listed with the old copy's MD5: such differences are *pending*, anything else is final.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from internetarchive import ArchiveSession

from . import client
from .bundle import Bundle, BundleFile
from .errors import Difference, ItemConflict
from .items import LISTING, ItemLayout


def _is_archive_generated(entry: Mapping, identifier: str) -> bool:
    name = str(entry.get("name") or "")
    return (entry.get("source", "original") != "original"
            or entry.get("format") == "Metadata"
            or name.startswith(f"{identifier}_")
            or name == "__ia_thumb.jpg")


def remote_originals(item_md: Mapping, identifier: str, keep: Iterable[str] = ()) -> dict[str, dict]:
    """The item's files by name: bundle files (``keep``) and uploaded originals, not the
    archive's own (``<id>_meta.xml``, ``<id>_files.xml``, derivatives, thumbnails)."""
    keep = set(keep)
    out = {}
    for entry in item_md.get("files") or []:
        name = str(entry.get("name") or "")
        if name in keep or not _is_archive_generated(entry, identifier):
            out[name] = dict(entry)
    return out


# --- whose item is it ---------------------------------------------------------------------
def check_same_bundle(bundle: Bundle, identifier: str, item_md: Mapping, top: str | None = None) -> None:
    """Refuse an item that holds another bundle, or something that is not a testigo bundle.
    ``top``: the --identifier given, when ``identifier`` is one of its parts."""
    top = top or identifier
    remote_manifest = client.metadata_value(item_md, "testigo_manifest_sha256")
    if remote_manifest and remote_manifest != bundle.manifest_sha256:
        raise ItemConflict(
            f"The archive item {identifier} already holds a different testigo bundle (manifest "
            f"sha256 {str(remote_manifest)[:16]}..., this bundle's is "
            f"{bundle.manifest_sha256[:16]}...). One item holds exactly one bundle: choose a new "
            f"--identifier, e.g. {top}-v2.")
    if not remote_manifest:
        others = remote_originals(item_md, identifier)
        if others:
            raise ItemConflict(
                f"The identifier {identifier} is already used by an archive item that is not a "
                f"testigo bundle ({len(others)} file(s), e.g. {sorted(others)[0]}). Choose another "
                "--identifier.")


def check_layout(layout: ItemLayout, bundle: Bundle, item_mds: Mapping[str, Mapping]) -> None:
    """Refuse to go on when items already hold this bundle spread another way than ``layout``
    (uploaded with other ``--max-files``/``--max-bytes``): sending would leave files in two items."""
    names = set(bundle.by_key()) | {LISTING}
    misplaced: list[str] = []
    for item in layout.items:
        md = item_mds.get(item.identifier) or {}
        expected = set(item.keys) | ({LISTING} if layout.split and item.role == "top" else set())
        there = set(remote_originals(md, item.identifier, keep=names)) & names
        for key in sorted(there - expected):
            where = layout.item_of(key).identifier if key in bundle.by_key() else "no item"
            misplaced.append(f"{item.identifier} holds {key}, which this upload puts in {where}")
        if item.role in ("single", "top") and md:
            recorded = client.metadata_list(md, "testigo_parts")
            planned = [p.identifier for p in layout.parts]
            if recorded and recorded != planned:
                misplaced.append(f"{item.identifier} lists the parts {', '.join(recorded)}, this upload "
                                 f"makes {', '.join(planned) or 'none (one item)'}")
    if not misplaced:
        return
    recorded_limits = next((
        (client.metadata_value(md, "testigo_max_files"), client.metadata_value(md, "testigo_max_bytes"))
        for md in item_mds.values() if client.metadata_value(md, "testigo_max_files")), None)
    if recorded_limits:
        how = (f"That upload was made with --max-files {recorded_limits[0]} --max-bytes "
               f"{recorded_limits[1]}: run the command again with those.")
    else:
        how = (f"{layout.identifier} holds the whole bundle in one item: run the command again "
               "without --max-files/--max-bytes (the archive's limits).")
    raise ItemConflict(
        f"This bundle is already on the archive, spread over items another way than these limits "
        f"({layout.limits}) give:\n  " + "\n  ".join(misplaced[:10])
        + (f"\n  ... and {len(misplaced) - 10} more" if len(misplaced) > 10 else "") + f"\n{how}")


# --- comparing ------------------------------------------------------------------------------
def compare_with_item(files: Sequence[BundleFile], item_md: Mapping, identifier: str,
                      pending: Iterable[str] = (),
                      previous_md5: Mapping[str, str] | None = None) -> list[Difference]:
    """Every difference between ``files`` (what the item must hold) and the item's listed files.

    A file sent in this run (``pending``) that is not listed yet, or is still listed with the
    MD5 of the copy it replaces (``previous_md5``), is marked pending: the archive lists a file
    only once it has processed it. Any other difference is final.
    """
    pending = set(pending)
    previous_md5 = previous_md5 or {}
    remote = remote_originals(item_md, identifier, keep={f.key for f in files})
    diffs: list[Difference] = []
    for f in files:
        entry = remote.pop(f.key, None)
        if entry is None:
            diffs.append(Difference(f.key, "missing", pending=f.key in pending, item=identifier))
            continue
        is_pending = (f.key in pending and f.key in previous_md5
                      and entry.get("md5") == previous_md5[f.key])
        for problem, local, there in (("size", str(f.size), str(entry.get("size"))),
                                      ("md5", f.md5, entry.get("md5")),
                                      ("sha1", f.sha1, entry.get("sha1"))):
            if there != local:
                diffs.append(Difference(f.key, problem, local, there, pending=is_pending,
                                        item=identifier))
    diffs.extend(Difference(name, "extra", item=identifier) for name in sorted(remote))
    return diffs


def verify_items(expected: Mapping[str, Sequence[BundleFile]], session: ArchiveSession, *,
                 pending: Iterable[str] = (), previous_md5: Mapping[str, str] | None = None,
                 wait: float = 0.0, poll_interval: float = 10.0,
                 on_wait: Callable[[int, float], None] | None = None) -> list[Difference]:
    """Compare every item's file list (size, md5, sha1) with what it must hold.

    ``expected``: {identifier: files}. Files sent in this run (``pending``) may take a while to
    be listed by the archive; while only those differ, the items are read again every
    ``poll_interval`` seconds for up to ``wait`` seconds. Other differences are final at once.
    """
    pending = set(pending)
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        diffs = [d for identifier, files in expected.items()
                 for d in compare_with_item(files, client.fetch_item(session, identifier),
                                            identifier, pending, previous_md5)]
        unsettled = [d for d in diffs if d.pending]
        left = deadline - time.monotonic()
        if not unsettled or len(unsettled) != len(diffs) or left <= 0:
            return diffs
        if on_wait:
            on_wait(len({(d.item, d.key) for d in unsettled}), left)
        time.sleep(min(poll_interval, left))
