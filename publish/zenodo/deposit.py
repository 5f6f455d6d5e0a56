"""Depositing a bundle on Zenodo, resumably: find or make the draft, send what it lacks, check
every file's checksum as Zenodo reports it, publish on request.

Which draft: a re-run finds its own (the bundle's identity is in the deposition's ``notes``), so
an interrupted deposit continues in the same draft and never makes a second one. Otherwise a new
edition (``new_version_of``) becomes a new version of that record's concept (Zenodo copies the
previous version's files into the draft: those the new bundle has unchanged stay, the others are
deleted), and a first deposit makes a new deposition. A file is sent only when the draft lacks it
or holds it with another size or MD5; Zenodo's answer to each file (``md5:...``) is compared at
once, and the whole listing again before anything is published.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from archive.places import Places
from publish.internet_archive.bundle import Bundle, BundleFile, read_bundle

from .client import ZenodoClient, token_from_environment
from .errors import ChecksumMismatch, DepositionConflict, MissingToken, ZenodoRefused
from .metadata import bundle_identity, deposition_metadata, file_names, zenodo_name


@dataclass
class DepositPlan:
    bundle: Bundle
    how: str                      # new | resume | new-version | published
    deposition: dict | None       # the draft (or record) to use; None for a new one (dry run)
    metadata: dict
    to_send: list[BundleFile]
    to_delete: list[dict]         # Zenodo file entries to remove (other bundle's, or damaged)
    already_there: list[BundleFile]
    parent: dict | None = None    # the record a new version is made of

    @property
    def bytes_to_send(self) -> int:
        return sum(f.size for f in self.to_send)

    @property
    def deposition_id(self):
        return (self.deposition or {}).get("id")


@dataclass
class DepositResult:
    plan: DepositPlan
    deposition: dict | None = None
    sent: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    published: bool = False

    @property
    def doi(self) -> str | None:
        d = self.deposition or {}
        return d.get("doi") or None

    @property
    def concept_doi(self) -> str | None:
        return (self.deposition or {}).get("conceptdoi") or None

    @property
    def html_url(self) -> str | None:
        return ((self.deposition or {}).get("links") or {}).get("html")


class DepositProgress:
    """Hooks for showing progress; the default shows nothing."""

    def begin(self, plan: DepositPlan) -> None: ...
    def deleting(self, name: str) -> None: ...
    def start_file(self, f: BundleFile) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def end_file(self, f: BundleFile) -> None: ...
    def finish(self) -> None: ...
    def checking(self, files: int) -> None: ...


def _md5(entry: dict) -> str:
    return str(entry.get("checksum") or "").removeprefix("md5:").lower()


def _size(entry: dict) -> int | None:
    for k in ("filesize", "size"):
        if entry.get(k) is not None:
            return int(entry[k])
    return None


def find_own(client: ZenodoClient, bundle: Bundle) -> dict | None:
    """This bundle's deposition, if an earlier run made one: its open draft first, else the
    published record."""
    mine = [d for d in client.list_depositions() if bundle_identity(d) == bundle.manifest_sha256]
    drafts = [d for d in mine if not d.get("submitted")]
    return (drafts or mine or [None])[0]


def compare(bundle: Bundle, remote: list[dict]) -> list[str]:
    """Every way the deposition's files differ from the bundle, one line each."""
    names = {zenodo_name(f.key): f for f in bundle.files}
    seen: set[str] = set()
    out = []
    for entry in remote:
        name = str(entry.get("filename") or entry.get("key") or "")
        seen.add(name)
        f = names.get(name)
        if f is None:
            out.append(f"{name}: on Zenodo but not in the bundle")
            continue
        size = _size(entry)
        if size is not None and size != f.size:
            out.append(f"{name}: Zenodo has {size:,} bytes, the bundle {f.size:,}")
        if _md5(entry) != f.md5:
            out.append(f"{name}: Zenodo reports md5 {_md5(entry) or '(none)'}, the bundle's is {f.md5}")
    out += [f"{n}: missing on Zenodo" for n in names if n not in seen]
    return out


def _file_plan(bundle: Bundle, remote: list[dict]):
    names = {zenodo_name(f.key): f for f in bundle.files}
    to_delete, there = [], set()
    for entry in remote:
        name = str(entry.get("filename") or "")
        f = names.get(name)
        if f is not None and _md5(entry) == f.md5 and _size(entry) in (None, f.size):
            there.add(name)
        else:
            to_delete.append(entry)
    to_send = [f for n, f in names.items() if n not in there]
    already = [f for n, f in names.items() if n in there]
    return to_send, to_delete, already


def plan_deposit(bundle: Bundle, client: ZenodoClient | None, *, metadata: dict,
                 new_version_of=None, dry_run: bool = False) -> DepositPlan:
    """Find (or, unless ``dry_run``, make) the draft, and decide which files to send and delete."""
    parent = None
    own = find_own(client, bundle) if client is not None else None
    if own is not None and own.get("submitted"):
        return DepositPlan(bundle, "published", own, metadata, [], [], list(bundle.files))
    if own is not None:
        how, draft = "resume", own
    elif new_version_of is not None:
        parent = client.get(new_version_of) if client is not None else None
        if parent is not None and not parent.get("submitted"):
            raise DepositionConflict(
                f"Zenodo deposition {new_version_of} is an unpublished draft, so it has no versions "
                "yet. Publish it first, or leave out --new-version-of to make a new record.")
        how, draft = "new-version", None
        if not dry_run:
            draft = client.new_version(new_version_of)
            other = bundle_identity(draft)
            if other not in (None, bundle.manifest_sha256, bundle_identity(parent or {})):
                raise DepositionConflict(
                    f"Record {new_version_of} already has an unpublished new version draft "
                    f"({draft.get('id')}) holding another bundle (sha256 of SHA256SUMS {other}). "
                    "Publish or discard that draft on Zenodo first.")
    else:
        how, draft = "new", None if dry_run else client.create()
    remote = (draft or {}).get("files")
    if draft is not None and remote is None:
        remote = client.files(draft["id"])
    if remote is None and parent is not None:   # a dry run shows what the new version would copy
        remote = parent.get("files") or []
    to_send, to_delete, already = _file_plan(bundle, remote or [])
    return DepositPlan(bundle, how, draft, metadata, to_send, to_delete, already, parent)


def send_files(plan: DepositPlan, client: ZenodoClient, progress: DepositProgress) -> tuple[list[str], list[str]]:
    """Delete what must go, then PUT each missing file into the bucket; compare Zenodo's MD5 of
    each file with the bundle's as soon as it answers."""
    dep = plan.deposition
    deleted, sent = [], []
    for entry in plan.to_delete:
        name = str(entry.get("filename") or "")
        progress.deleting(name)
        client.delete_file(dep["id"], entry["id"], name)
        deleted.append(name)
    if plan.to_send:
        bucket = (dep.get("links") or {}).get("bucket")
        if not bucket:
            raise ZenodoRefused(f"Deposition {dep['id']} has no bucket link, so files cannot be "
                                "sent to it (is it published? then use --new-version-of).")
        for f in plan.to_send:
            progress.start_file(f)
            with f.open() as fh:
                answer = client.put_file(bucket, zenodo_name(f.key), fh, f.size, progress.advance)
            got_md5, got_size = _md5(answer), _size(answer)
            if got_md5 != f.md5 or got_size not in (None, f.size):
                raise ChecksumMismatch(dep["id"], [
                    f"{zenodo_name(f.key)}: sent {f.size:,} bytes with md5 {f.md5}; Zenodo stored "
                    f"{got_size if got_size is not None else '?'} bytes with md5 {got_md5 or '(none)'}"])
            sent.append(zenodo_name(f.key))
            progress.end_file(f)
    return sent, deleted


def deposit_bundle(bundle_dir: str | os.PathLike, *, url: str, client: ZenodoClient | None = None,
                   places: Places | None = None, community: str | None = None,
                   creators: list[str] | None = None, new_version_of=None, publish: bool = False,
                   dry_run: bool = False, progress: DepositProgress | None = None,
                   on_plan: Callable[[DepositPlan], None] | None = None,
                   today: str | None = None) -> DepositResult:
    """Deposit the bundle at ``bundle_dir`` on the Zenodo at ``url`` (see the module docstring).

    Raises :class:`ChecksumMismatch` when a file Zenodo holds differs from the bundle (nothing is
    published then). ``dry_run`` reads Zenodo when a token is set, changes nothing and needs none.
    """
    progress = progress or DepositProgress()
    bundle = read_bundle(bundle_dir)
    file_names(bundle)                                       # collisions and limits, before any request
    if client is None:
        try:
            token = token_from_environment()
        except MissingToken:
            if not dry_run:
                raise
            token = None
        client = ZenodoClient(url, token) if token else None
    today = today or dt.datetime.now(dt.timezone.utc).date().isoformat()
    metadata = deposition_metadata(bundle, places, community=community, creators=creators,
                                   publication_date=today)
    plan = plan_deposit(bundle, client, metadata=metadata, new_version_of=new_version_of,
                        dry_run=dry_run)
    if on_plan:
        on_plan(plan)
    result = DepositResult(plan, plan.deposition)
    if dry_run:
        return result
    dep_id = plan.deposition["id"]
    if plan.how != "published":
        draft_date = (plan.deposition.get("metadata") or {}).get("publication_date")
        if plan.how == "resume" and draft_date:
            metadata = {**metadata, "publication_date": draft_date}
        client.update_metadata(dep_id, metadata)
        progress.begin(plan)
        try:
            result.sent, result.deleted = send_files(plan, client, progress)
        finally:
            progress.finish()
    progress.checking(len(bundle.files))
    differences = compare(bundle, client.files(dep_id))
    if differences:
        raise ChecksumMismatch(dep_id, differences)
    if publish and plan.how != "published":
        client.publish(dep_id)
        result.published = True
        differences = compare(bundle, client.files(dep_id))   # the record as published
        if differences:
            raise ChecksumMismatch(dep_id, differences)
    result.deposition = client.get(dep_id)
    return result
