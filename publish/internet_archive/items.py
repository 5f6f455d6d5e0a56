"""Which archive.org item holds which bundle file: one item when the bundle fits, else a top item
and parts, within the archive's limits.

The archive asks that an item hold no more than 10,000 files and 100 GB (the ``internetarchive``
library's "Item Limitations"). A bundle whose photos are zipped in shards has only tens of files,
so one item holds it; a larger one is spread over several items with a shared prefix:

* ``ID-part-01``, ``ID-part-02``, ... take the bundle's files in ``SHA256SUMS`` order (sorted by
  path), each part as many whole files as fit within the limits; a file is never cut.
* ``ID`` (the top item) holds ``SHA256SUMS``, its signature, the public key and
  ``testigo-items.json``, which says which item holds which file. So the top item alone proves
  what every part must contain; its metadata lists the parts.

The same bundle and limits always give the same items and the same ``testigo-items.json``.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from archive.bundle import PUBLIC_KEY

from . import client
from .bundle import MANIFEST, SIGNATURE, Bundle, BundleFile, list_bundle
from .errors import ArchiveUnreachable, InvalidIdentifier, ItemLimitError, MissingCredentials, SplitUpload

ARCHIVE_MAX_FILES = 10_000          # the archive's "no more than 10,000 files" per item
ARCHIVE_MAX_BYTES = 100 * 10**9     # and "not over 100GB" (decimal GB, below 100 GiB)
# Files the archive adds to every item itself (<id>_meta.xml, <id>_files.xml, <id>_meta.sqlite,
# <id>_archive.torrent, __ia_thumb.jpg): the default leaves room for them.
ARCHIVE_OWN_FILES = 5
DEFAULT_MAX_FILES = ARCHIVE_MAX_FILES - ARCHIVE_OWN_FILES
DEFAULT_MAX_BYTES = ARCHIVE_MAX_BYTES
LISTING = "testigo-items.json"       # in the top item of a split upload; not a bundle file
LISTING_FORMAT = "testigo-items/1"
TOP_KEYS = (PUBLIC_KEY, MANIFEST, SIGNATURE)   # what the top item holds of the bundle
PART_INFIX = "-part-"
SPLIT_RULE = (f"The top item ID holds {MANIFEST}, {SIGNATURE}, {PUBLIC_KEY} and {LISTING}; the "
              f"parts ID{PART_INFIX}01, ID{PART_INFIX}02, ... take the other files in {MANIFEST} "
              "order (sorted by path), each part as many whole files as fit within the limits.")


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


@dataclass(frozen=True)
class ItemLimits:
    """The most files and bytes testigo puts in one item."""

    max_files: int = DEFAULT_MAX_FILES
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self):
        if self.max_files < 1 or self.max_bytes < 1:
            raise ItemLimitError(f"Item limits must be positive (got --max-files {self.max_files}, "
                                 f"--max-bytes {self.max_bytes}).")

    def over(self, files: int, nbytes: int) -> list[str]:
        """Why an item of ``files`` files and ``nbytes`` bytes breaks the limits ([] if it does not)."""
        out = []
        if files > self.max_files:
            out.append(f"{files} files > {self.max_files}")
        if nbytes > self.max_bytes:
            out.append(f"{human_size(nbytes)} > {human_size(self.max_bytes)}")
        return out

    def __str__(self) -> str:
        return f"at most {self.max_files:,} files and {human_size(self.max_bytes)} per item"


@dataclass(frozen=True)
class PlannedItem:
    identifier: str
    role: str                 # "single" (the whole bundle), "top" or "part"
    number: int               # 1, 2, ... for parts; 0 otherwise
    keys: tuple[str, ...]     # the bundle files it holds, in upload order (not the listing)
    bytes: int                # of those files


@dataclass(frozen=True)
class ItemLayout:
    identifier: str
    limits: ItemLimits
    items: tuple[PlannedItem, ...]   # upload order: the parts, then the top item

    @property
    def split(self) -> bool:
        return len(self.items) > 1

    @property
    def top(self) -> PlannedItem:
        return self.items[-1]

    @property
    def parts(self) -> tuple[PlannedItem, ...]:
        return tuple(i for i in self.items if i.role == "part")

    def item_of(self, key: str) -> PlannedItem:
        if key == LISTING and self.split:
            return self.top
        return next(i for i in self.items if key in i.keys)


def part_identifier(identifier: str, number: int, count: int) -> str:
    return f"{identifier}{PART_INFIX}{number:0{max(2, len(str(count)))}d}"


def plan_items(identifier: str, files: Sequence[tuple[str, int]],
               limits: ItemLimits | None = None) -> ItemLayout:
    """Spread ``files`` ((key, size) in upload order) over items; see the module docstring."""
    client.validate_identifier(identifier)
    limits = limits or ItemLimits()
    total = sum(size for _, size in files)
    if not limits.over(len(files), total):
        return ItemLayout(identifier, limits,
                          (PlannedItem(identifier, "single", 0, tuple(k for k, _ in files), total),))
    too_big = [(k, s) for k, s in files if s > limits.max_bytes]
    if too_big:
        key, size = too_big[0]
        raise ItemLimitError(
            f"{key} is {human_size(size)}, more than one archive item may hold "
            f"({human_size(limits.max_bytes)}), and a file is never cut across items. "
            + ("Rebuild the bundle with smaller photo shards (`testigo build --shard-size N`)"
               if key.endswith(".zip") else "Raise --max-bytes")
            + f" (the archive's own limit is {human_size(ARCHIVE_MAX_BYTES)} per item).")
    top = [(k, s) for k, s in files if k in TOP_KEYS]
    top_files, top_bytes = len(top) + 1, sum(s for _, s in top)   # + the listing
    if limits.over(top_files, top_bytes):
        raise ItemLimitError(
            f"The top item of a split upload holds {top_files} files ({', '.join(k for k, _ in top)}, "
            f"{LISTING}); the limits ({limits}) leave no room for them. Use --max-files "
            f"{top_files} or more.")
    parts: list[list[tuple[str, int]]] = []
    filled = 0
    for key, size in files:
        if key in TOP_KEYS:
            continue
        if not parts or limits.over(len(parts[-1]) + 1, filled + size):
            parts.append([])
            filled = 0
        parts[-1].append((key, size))
        filled += size
    items = []
    for n, part in enumerate(parts, 1):
        part_id = part_identifier(identifier, n, len(parts))
        try:
            client.validate_identifier(part_id)
        except InvalidIdentifier as exc:
            raise InvalidIdentifier(
                f"The bundle needs {len(parts)} parts, named {part_id} and so on, which is not a "
                f"valid identifier ({exc}). Choose a shorter --identifier.") from exc
        items.append(PlannedItem(part_id, "part", n, tuple(k for k, _ in part), sum(s for _, s in part)))
    items.append(PlannedItem(identifier, "top", 0, tuple(k for k, _ in top), top_bytes))
    return ItemLayout(identifier, limits, tuple(items))


def listing_file(layout: ItemLayout, bundle: Bundle) -> BundleFile:
    """The top item's ``testigo-items.json``: every item, and which bundle files each holds.

    Deterministic (same bundle and limits, same bytes). It is not signed itself: it names for each
    file the sha256 that the signed ``SHA256SUMS`` gives, so anyone can check it against that.
    """
    files = bundle.by_key()
    entries = []
    for item in (layout.top, *layout.parts):
        entries.append({
            "identifier": item.identifier,
            "role": item.role,
            "url": f"{client.ARCHIVE_DETAILS_URL}{item.identifier}",
            "files": len(item.keys) + (item.role == "top"),
            "bytes": item.bytes,
            "contents": [{"path": k, "bytes": files[k].size, "sha256": files[k].sha256}
                         for k in item.keys],
        })
    doc = {
        "format": LISTING_FORMAT,
        "identifier": layout.identifier,
        "manifest_sha256": bundle.manifest_sha256,
        "about": (f"This testigo bundle is spread over {len(layout.items)} archive.org items, "
                  f"because one item holds {layout.limits}. {MANIFEST} (signed in {SIGNATURE}, "
                  f"public key {PUBLIC_KEY}) gives the SHA-256 of every file; this file says which "
                  "item holds it. To use the bundle, download every item into one folder, remove "
                  f"{LISTING} and the archive's own files, and run `testigo verify`."),
        "rule": SPLIT_RULE.replace("ID", layout.identifier),
        "limits": {"max_files": layout.limits.max_files, "max_bytes": layout.limits.max_bytes},
        "items": entries,
    }
    data = (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    if layout.limits.over(1, layout.top.bytes + len(data)):
        raise ItemLimitError(f"The top item ({', '.join(layout.top.keys)}, {LISTING}) would be "
                             f"{human_size(layout.top.bytes + len(data))}, over --max-bytes.")
    return BundleFile.from_bytes(LISTING, data)


def split_message(layout: ItemLayout) -> str:
    names = [layout.identifier] + [p.identifier for p in layout.parts]
    shown = ", ".join(names) if len(names) <= 4 else f"{names[0]}, {names[1]} ... {names[-1]}"
    return f"{len(names)} archive.org items ({shown})"


def torrent_web_seed(bundle_dir, identifier: str, session=None,
                     timeout: float = 10) -> tuple[str, str | None]:
    """The BEP 19 web seed of a torrent named ``identifier`` for the bundle uploaded to that item,
    and a note to show (or None).

    A web seed is one URL under which a client fetches every file (``<url><name>/<path>``), so it
    works only when one item holds the whole bundle. Raises :class:`SplitUpload` when the bundle
    would be split at the archive's limits, or when the item on archive.org says it was split
    (it was uploaded with smaller ``--max-files``/``--max-bytes``). If archive.org cannot be read,
    the local answer stands and the note says so.
    """
    client.validate_identifier(identifier)
    layout = plan_items(identifier, list_bundle(bundle_dir).sizes())
    parts = [p.identifier for p in layout.parts]
    if not parts:
        try:
            session = session or client.make_session()
            parts = client.metadata_list(client.fetch_item(session, identifier, timeout), "testigo_parts")
        except (ArchiveUnreachable, MissingCredentials) as exc:
            return client.ARCHIVE_DOWNLOAD_URL, (
                f"note: could not read the archive item {identifier} to check that it holds the whole "
                f"bundle ({client.short_reason(exc)}); the web seed assumes it does.")
        if parts:
            layout = ItemLayout(identifier, layout.limits, tuple(
                PlannedItem(p, "part", n, (), 0) for n, p in enumerate(parts, 1)) + (layout.top,))
    if parts:
        raise SplitUpload(
            f"This bundle is spread over {split_message(layout)}, but a torrent's web seed is one "
            "URL under which clients fetch every file (<seed>/<torrent name>/<path>, BEP 19): no "
            "URL serves files kept in several items. Make the torrent without --archive-item: "
            "peers, and any --web-seed mirror that holds the whole bundle, still work. The "
            f"items' files stay downloadable from archive.org ({LISTING} in {identifier} says "
            "which item holds which file).")
    return client.ARCHIVE_DOWNLOAD_URL, None
