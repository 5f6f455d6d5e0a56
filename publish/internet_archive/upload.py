"""Sending a bundle to its archive items, resumably, then checking every item.

:func:`plan_upload` reads each item's file list and leaves out every file already there with the
same MD5, so a re-run sends only what is missing or different, item after item.
:func:`send_files` sends the rest (parts first, the top item last), each file with its
``Content-MD5`` so the archive refuses a copy damaged on the way; :func:`upload_bundle` then
compares size, MD5 and SHA-1 of every file listed by every item with the local bundle.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from internetarchive import ArchiveSession, Item
from internetarchive.exceptions import AuthenticationError
from internetarchive.utils import get_s3_xml_text

from . import client
from .bundle import MANIFEST, SIGNATURE, Bundle, BundleFile, read_bundle
from .errors import ArchiveUnreachable, MissingCredentials, UploadFailed, VerificationFailed
from .items import DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, ItemLayout, ItemLimits, listing_file, plan_items
from .metadata import item_metadata
from .remote import Difference, check_layout, check_same_bundle, remote_originals, verify_items


@dataclass
class ItemPlan:
    """One archive item: what it must hold, and what of it must still be sent."""

    identifier: str
    role: str  # single | top | part
    files: tuple[BundleFile, ...]
    metadata: dict[str, str | list[str]]
    to_send: list[BundleFile]
    already_there: list[BundleFile]
    replacing: dict[str, str]  # key -> md5 the item holds now, for files sent to replace it
    item_exists: bool
    remote_known: bool = True  # False when a dry run could not read the item

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def bytes_to_send(self) -> int:
        return sum(f.size for f in self.to_send)


@dataclass
class UploadPlan:
    identifier: str
    bundle: Bundle
    layout: ItemLayout
    items: list[ItemPlan]  # in upload order: the parts, then the top item (or the one item)

    @property
    def split(self) -> bool:
        return self.layout.split

    @property
    def top(self) -> ItemPlan:
        return self.items[-1]

    @property
    def metadata(self) -> dict[str, str | list[str]]:
        return self.top.metadata

    @property
    def to_send(self) -> list[BundleFile]:
        return [f for i in self.items for f in i.to_send]

    @property
    def already_there(self) -> list[BundleFile]:
        return [f for i in self.items for f in i.already_there]

    @property
    def replacing(self) -> dict[str, str]:
        return {k: v for i in self.items for k, v in i.replacing.items()}

    @property
    def bytes_to_send(self) -> int:
        return sum(i.bytes_to_send for i in self.items)

    @property
    def item_exists(self) -> bool:
        return self.top.item_exists

    @property
    def remote_known(self) -> bool:
        return all(i.remote_known for i in self.items)

    def over_limit(self, item: ItemPlan) -> list[str]:
        return self.layout.limits.over(len(item.files), item.bytes)

    def expected(self) -> dict[str, tuple[BundleFile, ...]]:
        return {i.identifier: i.files for i in self.items}


def plan_upload(bundle: Bundle, identifier: str, session: ArchiveSession,
                collection: str | None = None, limits: ItemLimits | None = None, *,
                unreadable_ok: bool = False) -> UploadPlan:
    """Spread the bundle over items and decide which files to send: all those an item lacks or
    holds with another MD5. Refuses items holding something else, or this bundle split otherwise.
    ``unreadable_ok`` (dry runs): an item that cannot be read counts as empty."""
    layout = plan_items(identifier, [(f.key, f.size) for f in bundle.files], limits)
    by_key = bundle.by_key()
    listing = listing_file(layout, bundle) if layout.split else None
    item_mds: dict[str, dict] = {}
    known: dict[str, bool] = {}
    for item in layout.items:
        try:
            item_mds[item.identifier], known[item.identifier] = client.fetch_item(session, item.identifier), True
        except ArchiveUnreachable:
            if not unreadable_ok:
                raise
            item_mds[item.identifier], known[item.identifier] = {}, False
        check_same_bundle(bundle, item.identifier, item_mds[item.identifier], identifier)
    check_layout(layout, bundle, item_mds)
    plans = []
    for item in layout.items:
        files = tuple(by_key[k] for k in item.keys)
        if listing is not None and item.role == "top":  # before SHA256SUMS and its signature
            signed = tuple(f for f in files if f.key in (MANIFEST, SIGNATURE))
            files = (*(f for f in files if f not in signed), listing, *signed)
        md = item_mds[item.identifier]
        remote = remote_originals(md, item.identifier, keep={f.key for f in files})
        to_send, there, replacing = [], [], {}
        for f in files:
            entry = remote.get(f.key)
            if entry and entry.get("md5") == f.md5 and str(entry.get("size", f.size)) == str(f.size):
                there.append(f)
            else:
                to_send.append(f)
                if entry:
                    replacing[f.key] = str(entry.get("md5"))
        plans.append(ItemPlan(item.identifier, item.role, files,
                              item_metadata(bundle, collection, layout, item), to_send, there,
                              replacing, item_exists=bool(md), remote_known=known[item.identifier]))
    return UploadPlan(identifier, bundle, layout, plans)


# --- sending --------------------------------------------------------------------------------
class UploadProgress:
    """Hooks for showing progress; the default shows nothing."""

    def begin(self, plan: UploadPlan) -> None: ...
    def begin_item(self, item: ItemPlan) -> None: ...
    def start_file(self, f: BundleFile) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def end_file(self, f: BundleFile) -> None: ...
    def finish(self) -> None: ...
    def checking(self, files: int, items: int = 1) -> None: ...
    def waiting(self, files_pending: int, seconds_left: float) -> None: ...


class _ProgressReader:
    """A binary file that reports each block read while the request body is sent."""

    mode = "rb"

    def __init__(self, fh, on_read: Callable[[int], None]):
        self._fh = fh
        self._on_read = on_read
        self.name = fh.name

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        if data:
            self._on_read(len(data))
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def fileno(self) -> int:
        return self._fh.fileno()

    def close(self) -> None:
        self._fh.close()


def _upload_error(exc: Exception, f: BundleFile, identifier: str, done: int, total: int) -> UploadFailed:
    sent_so_far = (f"{done} of {total} file(s) were sent before this one and will not be sent "
                   "again. ")
    rerun = "Run the same command again to continue where it stopped."
    where = f"{f.key} (item {identifier})"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        try:
            detail = get_s3_xml_text(exc.response.content)
        except Exception:  # noqa: BLE001 - the body is not always XML
            detail = exc.response.text[:200]
        if status == 400 and ("BadDigest" in exc.response.text or "MD5" in detail):
            message = (f"The archive received a damaged copy of {where} (its MD5 did not match "
                       f"what was sent) and refused it: {detail}. This is usually a flaky "
                       f"connection. {sent_so_far}{rerun}")
        elif status in (401, 403):
            message = (f"The archive refused {where} ({status}: {detail}). Check that your keys "
                       "are right (`ia configure` again, or IA_ACCESS_KEY_ID/IA_SECRET_ACCESS_KEY), "
                       f"and that the identifier {identifier} is not already an item of another "
                       "account; if it is, choose another --identifier.")
        elif status == 503:
            message = (f"The archive is overloaded and did not take {where} (503: {detail}). "
                       f"{sent_so_far}Wait a while, then run the same command again.")
        else:
            message = f"The archive refused {where} ({status}: {detail}). {sent_so_far}{rerun}"
    else:
        message = (f"The connection broke while sending {where} to the archive "
                   f"({client.short_reason(exc)}). {sent_so_far}{rerun}")
    return UploadFailed(f.key, message, identifier)


def send_files(plan: UploadPlan, session: ArchiveSession, *,
               progress: UploadProgress | None = None, timeout: float = 120,
               retries: int = 3, retries_sleep: int = 30, queue_derive: bool = False) -> list[str]:
    """PUT every file of the plan, item by item, each with its Content-MD5; stop at the first
    failure. Returns the keys sent."""
    client.require_credentials(session)
    progress = progress or UploadProgress()
    total = len(plan.to_send)
    sent: list[str] = []
    progress.begin(plan)
    try:
        for item_plan in plan.items:
            if not item_plan.to_send:
                continue
            progress.begin_item(item_plan)
            item = Item(session, item_plan.identifier, {})
            size_hint = str(item_plan.bytes)
            for f in item_plan.to_send:
                progress.start_file(f)
                fh = f.open()
                try:
                    item.upload_file(
                        _ProgressReader(fh, progress.advance),
                        key=f.key,
                        metadata=item_plan.metadata,
                        # The same hex Content-MD5 the library's ``verify=True`` would compute,
                        # taken from our one pass over the file: the archive refuses a copy whose
                        # MD5 differs, so a damaged transfer is never stored.
                        headers={"Content-MD5": f.md5, "x-archive-size-hint": size_hint},
                        queue_derive=queue_derive,
                        retries=retries,
                        retries_sleep=retries_sleep,
                        request_kwargs={"timeout": timeout},
                    )
                except AuthenticationError as exc:
                    raise MissingCredentials(f"{exc}\n{client.SETUP_HELP}") from exc
                except (requests.RequestException, OSError) as exc:
                    raise _upload_error(exc, f, item_plan.identifier, len(sent), total) from exc
                finally:
                    fh.close()
                sent.append(f.key)
                progress.end_file(f)
    finally:
        progress.finish()
    return sent


@dataclass
class UploadResult:
    plan: UploadPlan
    sent: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.differences


def upload_bundle(bundle_dir: str | os.PathLike, identifier: str, *,
                  collection: str | None = None, session: ArchiveSession | None = None,
                  dry_run: bool = False, check_only: bool = False,
                  max_files: int = DEFAULT_MAX_FILES, max_bytes: int = DEFAULT_MAX_BYTES,
                  progress: UploadProgress | None = None,
                  on_plan: Callable[[UploadPlan], None] | None = None, wait: float = 600.0,
                  poll_interval: float = 10.0, timeout: float = 120, retries: int = 3,
                  retries_sleep: int = 30) -> UploadResult:
    """Upload the bundle to the item ``identifier`` (or, when one item cannot hold it within
    ``max_files``/``max_bytes``, to ``identifier`` and its parts), skipping what is already
    there, then check every item.

    ``dry_run`` reads the items (if it can) and returns the plan without sending anything and
    without needing keys. ``check_only`` sends nothing and only compares. ``on_plan`` is called
    with the plan before anything is sent. Raises :class:`VerificationFailed` when the archive's
    copy differs from the bundle, :class:`UploadFailed` when a file could not be sent.
    """
    progress = progress or UploadProgress()
    client.validate_identifier(identifier)
    limits = ItemLimits(max_files, max_bytes)
    session = session or client.make_session()
    if not (dry_run or check_only):
        client.require_credentials(session)  # before any work, so a missing key is said at once
    bundle = read_bundle(bundle_dir)
    plan = plan_upload(bundle, identifier, session, collection, limits, unreadable_ok=dry_run)
    if on_plan:
        on_plan(plan)
    result = UploadResult(plan)
    if dry_run:
        return result
    if not check_only and plan.to_send:
        result.sent = send_files(plan, session, progress=progress, timeout=timeout,
                                 retries=retries, retries_sleep=retries_sleep)
    progress.checking(sum(len(i.files) for i in plan.items), len(plan.items))
    result.differences = verify_items(
        plan.expected(), session, pending=result.sent, previous_md5=plan.replacing,
        wait=wait if result.sent else 0, poll_interval=poll_interval, on_wait=progress.waiting)
    result.checked = True
    if result.differences:
        raise VerificationFailed(identifier, result.differences)
    return result
