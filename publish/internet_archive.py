"""Upload a signed bundle to an Internet Archive item, resumably, and check what arrived.

The real work is done by the ``internetarchive`` library (IA-S3 ``PUT`` requests and the metadata
read API); this module decides what to send and checks the result:

* :func:`read_bundle` reads the bundle directory and its ``SHA256SUMS``, hashes every file once
  (MD5 for the archive's check, SHA-1 for the post-upload comparison, SHA-256 to make sure the
  bundle itself is intact before anything is published).
* :func:`plan_upload` reads the item's file list and leaves out every file that is already there
  with the same MD5, so a re-run sends only what is missing or different.
* :func:`upload_bundle` sends the rest, each file with its ``Content-MD5`` so the archive refuses
  a copy damaged on the way, then :func:`verify_item` compares size, MD5 and SHA-1 of every file
  listed by the archive with the local bundle.

Credentials are never taken as arguments: the library reads them from its config file
(``ia configure``) or from ``IA_ACCESS_KEY_ID``/``IA_SECRET_ACCESS_KEY``.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests
from internetarchive import ArchiveSession, Item
from internetarchive.exceptions import AuthenticationError
from internetarchive.utils import InvalidIdentifierException, get_s3_xml_text, validate_s3_identifier

from archive import manifest
from archive.errors import TestigoError

ARCHIVE_DOWNLOAD_URL = "https://archive.org/download/"
ARCHIVE_DETAILS_URL = "https://archive.org/details/"
MANIFEST = manifest.MANIFEST  # SHA256SUMS
SIGNATURE = manifest.SIGNATURE  # SHA256SUMS.minisig
DATAPACKAGE = "datapackage.json"

SETUP_HELP = (
    "Set up your archive.org keys in one of two ways:\n"
    "  1. run `ia configure` once (it comes with testigo's `internetarchive` dependency) and log\n"
    "     in with your archive.org e-mail and password; the keys are saved in\n"
    "     ~/.config/internetarchive/ia.ini, or\n"
    "  2. export IA_ACCESS_KEY_ID=... and IA_SECRET_ACCESS_KEY=... with the keys shown at\n"
    "     https://archive.org/account/s3.php (log in first).\n"
    "Keys are never given on the command line."
)

# Licence names as Frictionless writes them -> the URL archive.org expects in `licenseurl`.
LICENSE_URLS = {
    "cc0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "cc-by-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "cc-by-sa-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "odbl-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
    "odc-by-1.0": "https://opendatacommons.org/licenses/by/1-0/",
    "pddl-1.0": "https://opendatacommons.org/licenses/pddl/1-0/",
}


# --- errors -------------------------------------------------------------------------------
class InternetArchiveError(TestigoError):
    """Anything that stops a bundle from reaching, or being confirmed on, the archive."""


class MissingCredentials(InternetArchiveError):
    """No archive.org S3 keys were found in the config file or the environment."""


class BundleError(InternetArchiveError):
    """The bundle directory is incomplete, damaged, or not a testigo bundle."""


class InvalidIdentifier(InternetArchiveError):
    """The item identifier is not one archive.org accepts."""


class ItemConflict(InternetArchiveError):
    """The identifier is already used by an item holding something other than this bundle."""


class ArchiveUnreachable(InternetArchiveError):
    """The item's metadata (file list) could not be read from archive.org."""


class UploadFailed(InternetArchiveError):
    """A file did not reach the archive; a re-run continues from there."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class VerificationFailed(InternetArchiveError):
    """The archive's copy differs from the local bundle; ``differences`` says how."""

    def __init__(self, identifier: str, differences: list[Difference]):
        lines = "\n".join(f"  {d}" for d in differences)
        advice = []
        if any(d.pending for d in differences):
            advice.append(
                "Files the archive has not listed yet are probably still being processed; check "
                f"again later with `testigo upload BUNDLE --identifier {identifier} --check-only`.")
        if any(not d.pending and d.problem != "extra" for d in differences):
            advice.append("Run the same upload command again: it resends every file that is "
                          "missing or differs, then checks again.")
        if any(d.problem == "extra" for d in differences):
            advice.append("Files that are not part of the bundle must be removed from the item "
                          "on archive.org (or upload the bundle under a new --identifier).")
        super().__init__(
            f"The archive item {identifier} does not match the bundle "
            f"({len(differences)} difference{'s' if len(differences) != 1 else ''}):\n"
            f"{lines}\n" + "\n".join(advice)
        )
        self.identifier = identifier
        self.differences = differences


# --- the bundle ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BundleFile:
    key: str  # path inside the bundle and the item, with '/' (e.g. images/estado-01-1.zip)
    path: Path
    size: int
    md5: str
    sha1: str
    sha256: str


@dataclass(frozen=True)
class Bundle:
    root: Path
    files: tuple[BundleFile, ...]  # in upload order: content first, SHA256SUMS and signature last
    datapackage: dict
    manifest_sha256: str

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def by_key(self) -> dict[str, BundleFile]:
        return {f.key: f for f in self.files}


def _hash_file(path: Path) -> tuple[int, str, str, str]:
    md5, sha1, sha256 = hashlib.md5(), hashlib.sha1(), hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            size += len(chunk)
            md5.update(chunk)
            sha1.update(chunk)
            sha256.update(chunk)
    return size, md5.hexdigest(), sha1.hexdigest(), sha256.hexdigest()


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")


def read_bundle(bundle_dir: str | os.PathLike) -> Bundle:
    """Read and hash a bundle; refuse one whose files do not match its ``SHA256SUMS``.

    The files sent are exactly those listed in ``SHA256SUMS`` plus ``SHA256SUMS`` itself and
    ``SHA256SUMS.minisig``. Which paths count as bundle content is decided by
    :mod:`archive.manifest` (the same rules as the bundle's own check): a file that is not listed,
    a symlink or a special file stops the upload, because nobody could verify it.
    """
    root = Path(bundle_dir)
    if not root.is_dir():
        raise BundleError(f"{root} is not a directory. Give the path of a bundle directory "
                          f"(the one holding {DATAPACKAGE} and {MANIFEST}).")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file() or manifest_path.is_symlink():
        raise BundleError(f"{root} has no {MANIFEST}: it is not a finished testigo bundle. "
                          "Build the bundle with testigo first.")
    listed, malformed = manifest.parse_manifest(manifest_path.read_bytes())
    if malformed:
        raise BundleError(f"{MANIFEST} is damaged ({'; '.join(malformed[:3])}). "
                          "Rebuild the bundle with testigo, or copy it again.")
    if DATAPACKAGE not in listed:
        raise BundleError(f"{MANIFEST} does not list {DATAPACKAGE}. Rebuild the bundle.")
    listing = manifest.list_files(root)
    unsafe = listing.symlinks + listing.special
    if unsafe:
        raise BundleError(f"{root} holds symlinks or special files, which a bundle may not "
                          f"contain: {_few(unsafe)}. Copy the bundle as plain files.")
    present = set(listing.files)
    unlisted = sorted(present - set(listed))
    if unlisted:
        raise BundleError(
            f"{len(unlisted)} file(s) in {root} are not listed in {MANIFEST} and could not be "
            f"verified by anyone: {_few(unlisted)}. Move them out of the bundle directory, or "
            "rebuild the bundle.")
    missing = sorted(set(listed) - present)
    if missing:
        raise BundleError(
            f"{len(missing)} file(s) listed in {MANIFEST} are missing from {root}: "
            f"{_few(missing)}. Copy the complete bundle, or rebuild it.")

    files: list[BundleFile] = []
    damaged: list[str] = []
    for key in sorted(listed):
        size, md5, sha1, sha256 = _hash_file(root / key)
        if sha256 != listed[key]:
            damaged.append(key)
        files.append(BundleFile(key, root / key, size, md5, sha1, sha256))
    if damaged:
        raise BundleError(
            f"{len(damaged)} file(s) do not match {MANIFEST}, so the bundle is damaged and must "
            f"not be published: {_few(damaged)}. "
            "Copy it again from the original, or rebuild it.")
    for key in (MANIFEST, SIGNATURE):
        if (root / key).is_file():
            size, md5, sha1, sha256 = _hash_file(root / key)
            files.append(BundleFile(key, root / key, size, md5, sha1, sha256))

    try:
        datapackage = json.loads((root / DATAPACKAGE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{DATAPACKAGE} is not valid JSON ({exc}). Rebuild the bundle.") from exc
    if not isinstance(datapackage, dict) or not isinstance(datapackage.get("testigo"), dict):
        raise BundleError(f"{DATAPACKAGE} has no 'testigo' section, so this is not a testigo "
                          "bundle. Rebuild it with testigo.")
    # The bundle's identity: the sha256 of SHA256SUMS (what the bundle builder reports as
    # manifest_sha256; datapackage.json cannot hold it, being listed in SHA256SUMS itself).
    manifest_sha256 = next(f.sha256 for f in files if f.key == MANIFEST)
    return Bundle(root, tuple(files), datapackage, manifest_sha256)


# --- item metadata ------------------------------------------------------------------------
def _license_url(licenses) -> str | None:
    for lic in licenses or []:
        if not isinstance(lic, dict):
            continue
        path = str(lic.get("path") or "")
        if path.startswith(("https://", "http://")):
            return path
        url = LICENSE_URLS.get(str(lic.get("name") or "").lower())
        if url:
            return url
    return None


def item_metadata(bundle: Bundle, collection: str | None = None) -> dict[str, str | list[str]]:
    """The archive item's metadata, taken from the bundle's ``datapackage.json``."""
    dp = bundle.datapackage
    t = dp.get("testigo") or {}
    contributors = [c for c in dp.get("contributors") or [] if isinstance(c, dict)]
    creators = [str(c.get("title")) for c in contributors
                if c.get("title") and c.get("role", "author") in ("author", "creator")]
    licenses = [x for x in dp.get("licenses") or [] if isinstance(x, dict)]
    md: dict[str, str | list[str]] = {
        "mediatype": "data",
        "title": str(dp.get("title") or dp.get("name") or bundle.root.name),
        "description": str(dp.get("description") or ""),
        "creator": creators if len(creators) > 1 else (creators[0] if creators else "testigo"),
        "date": str(t.get("date") or ""),
        "subject": ([str(k) for k in dp.get("keywords") or [] if k]
                    or [x for x in ("testigo", str(t.get("election") or ""), "actas") if x]),
        "language": str(t.get("language") or dp.get("language") or "spa"),
        "licenseurl": _license_url(licenses) or "",
        "rights": str(licenses[0].get("title") or licenses[0].get("name") or "") if licenses else "",
        "testigo_election": str(t.get("election") or ""),
        "testigo_public_key_fingerprint": str(t.get("public_key_fingerprint") or ""),
        "testigo_manifest_sha256": bundle.manifest_sha256,
    }
    if collection:
        md["collection"] = collection
    return {k: v for k, v in md.items() if v}


# --- identifiers and sessions -------------------------------------------------------------
def validate_identifier(identifier: str) -> str:
    try:
        validate_s3_identifier(identifier)
    except InvalidIdentifierException as exc:
        raise InvalidIdentifier(
            f"{identifier!r} cannot be an archive.org identifier: {exc} Use 5 to 80 letters, "
            "digits, '-' or '_', starting with a letter or digit, e.g. testigo-ve-2024-20240801."
        ) from exc
    return identifier


def internet_archive_web_seed(identifier: str) -> str:
    """The item's download URL, for the torrent's ``--web-seed``:
    ``https://archive.org/download/<identifier>/``.

    Caution for multi-file torrents: BitTorrent clients (BEP 19; checked with libtorrent 2.1)
    append the torrent's *name* and then the file's path to a web seed that ends in ``/``, so
    with this URL they ask for ``/download/<identifier>/<torrent name>/<path>``, which the archive
    does not have. What the archive serves is ``/download/<identifier>/<path>``: a torrent whose
    name is the identifier, with the web seed ``https://archive.org/download/``.
    """
    return f"{ARCHIVE_DOWNLOAD_URL}{validate_identifier(identifier)}/"


def make_session(config: Mapping | None = None) -> ArchiveSession:
    """An ``internetarchive`` session with the user's config file and environment.

    ``config`` is merged over them (the library's own ``general``/``s3`` sections); the command line
    passes nothing, so keys come from ``ia configure`` or ``IA_ACCESS_KEY_ID``/``IA_SECRET_ACCESS_KEY``.
    """
    try:
        return ArchiveSession(config=dict(config or {}))
    except ValueError as exc:  # only one of the two environment variables is set
        raise MissingCredentials(f"{exc}\n{SETUP_HELP}") from exc


def require_credentials(session: ArchiveSession) -> None:
    if not session.access_key or not session.secret_key:
        raise MissingCredentials(f"No archive.org upload keys were found.\n{SETUP_HELP}")


# --- reading the item ---------------------------------------------------------------------
def _fetch_item(session: ArchiveSession, identifier: str) -> dict:
    try:
        return session.get_metadata(identifier) or {}
    except (requests.RequestException, OSError, ValueError) as exc:
        raise ArchiveUnreachable(
            f"Could not read the file list of the archive item {identifier} "
            f"({_short_reason(exc)}). Check your "
            "internet connection and try again in a few minutes.") from exc


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


@dataclass
class UploadPlan:
    identifier: str
    bundle: Bundle
    metadata: dict[str, str | list[str]]
    to_send: list[BundleFile]
    already_there: list[BundleFile]
    replacing: dict[str, str]  # key -> md5 the item holds now, for files sent to replace it
    item_exists: bool
    remote_known: bool = True  # False when a dry run could not read the item

    @property
    def bytes_to_send(self) -> int:
        return sum(f.size for f in self.to_send)


def _check_same_bundle(bundle: Bundle, identifier: str, item_md: Mapping) -> None:
    meta = item_md.get("metadata") or {}
    remote_manifest = meta.get("testigo_manifest_sha256")
    if isinstance(remote_manifest, list):
        remote_manifest = remote_manifest[0] if remote_manifest else None
    if remote_manifest and remote_manifest != bundle.manifest_sha256:
        raise ItemConflict(
            f"The archive item {identifier} already holds a different testigo bundle (manifest "
            f"sha256 {str(remote_manifest)[:16]}..., this bundle's is "
            f"{bundle.manifest_sha256[:16]}...). One item holds exactly one bundle: choose a new "
            f"--identifier, e.g. {identifier}-v2.")
    if not remote_manifest:
        others = remote_originals(item_md, identifier)
        if others:
            raise ItemConflict(
                f"The identifier {identifier} is already used by an archive item that is not a "
                f"testigo bundle ({len(others)} file(s), e.g. {sorted(others)[0]}). Choose another "
                "--identifier.")


def plan_upload(bundle: Bundle, identifier: str, session: ArchiveSession,
                collection: str | None = None, item_md: Mapping | None = None) -> UploadPlan:
    """Decide which files to send: all those the item lacks or holds with another MD5."""
    validate_identifier(identifier)
    if item_md is None:
        item_md = _fetch_item(session, identifier)
    _check_same_bundle(bundle, identifier, item_md)
    remote = remote_originals(item_md, identifier, keep=bundle.by_key())
    to_send, there, replacing = [], [], {}
    for f in bundle.files:
        entry = remote.get(f.key)
        if entry and entry.get("md5") == f.md5 and str(entry.get("size", f.size)) == str(f.size):
            there.append(f)
        else:
            to_send.append(f)
            if entry:
                replacing[f.key] = str(entry.get("md5"))
    return UploadPlan(identifier, bundle, item_metadata(bundle, collection), to_send, there,
                      replacing, item_exists=bool(item_md))


# --- checking the item --------------------------------------------------------------------
@dataclass(frozen=True)
class Difference:
    key: str
    problem: str  # missing | size | md5 | sha1 | extra
    local: str | None = None
    remote: str | None = None
    pending: bool = False  # sent in this run and maybe not processed by the archive yet

    def __str__(self) -> str:
        if self.problem == "missing":
            why = (" (sent just now; the archive may still be processing it)" if self.pending
                   else "")
            return f"{self.key}: not in the archive item{why}"
        if self.problem == "extra":
            return f"{self.key}: in the archive item but not in the bundle"
        return (f"{self.key}: {self.problem} differs (bundle {self.local}, archive "
                f"{self.remote or 'none listed'})")


def compare_with_item(bundle: Bundle, item_md: Mapping, identifier: str,
                      pending: Iterable[str] = (),
                      previous_md5: Mapping[str, str] | None = None) -> list[Difference]:
    """Every difference between the local bundle and the item's listed files.

    A file sent in this run (``pending``) that is not listed yet, or is still listed with the
    MD5 of the copy it replaces (``previous_md5``), is marked pending: the archive lists a file
    only once it has processed it. Any other difference is final.
    """
    pending = set(pending)
    previous_md5 = previous_md5 or {}
    remote = remote_originals(item_md, identifier, keep=bundle.by_key())
    diffs: list[Difference] = []
    for f in bundle.files:
        entry = remote.pop(f.key, None)
        if entry is None:
            diffs.append(Difference(f.key, "missing", pending=f.key in pending))
            continue
        is_pending = (f.key in pending and f.key in previous_md5
                      and entry.get("md5") == previous_md5[f.key])
        if str(entry.get("size")) != str(f.size):
            diffs.append(Difference(f.key, "size", str(f.size), str(entry.get("size")),
                                    pending=is_pending))
        if entry.get("md5") != f.md5:
            diffs.append(Difference(f.key, "md5", f.md5, entry.get("md5"), pending=is_pending))
        if entry.get("sha1") != f.sha1:
            diffs.append(Difference(f.key, "sha1", f.sha1, entry.get("sha1"), pending=is_pending))
    diffs.extend(Difference(name, "extra") for name in sorted(remote))
    return diffs


def verify_item(bundle: Bundle, identifier: str, session: ArchiveSession, *,
                pending: Iterable[str] = (), previous_md5: Mapping[str, str] | None = None,
                wait: float = 0.0, poll_interval: float = 10.0,
                on_wait: Callable[[int, float], None] | None = None) -> list[Difference]:
    """Compare the item's file list (size, md5, sha1) with the bundle.

    Files sent in this run (``pending``) may take a while to be listed by the archive; while
    only those differ, the list is read again every ``poll_interval`` seconds for up to ``wait``
    seconds. Differences on other files are final at once.
    """
    pending = set(pending)
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        diffs = compare_with_item(bundle, _fetch_item(session, identifier), identifier,
                                  pending, previous_md5)
        unsettled = [d for d in diffs if d.pending]
        left = deadline - time.monotonic()
        if not unsettled or len(unsettled) != len(diffs) or left <= 0:
            return diffs
        if on_wait:
            on_wait(len({d.key for d in unsettled}), left)
        time.sleep(min(poll_interval, left))


# --- uploading ----------------------------------------------------------------------------
class UploadProgress:
    """Hooks for showing progress; the default shows nothing."""

    def begin(self, plan: UploadPlan) -> None: ...
    def start_file(self, f: BundleFile) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def end_file(self, f: BundleFile) -> None: ...
    def finish(self) -> None: ...
    def checking(self, files: int) -> None: ...
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
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        try:
            detail = get_s3_xml_text(exc.response.content)
        except Exception:  # noqa: BLE001 - the body is not always XML
            detail = exc.response.text[:200]
        if status == 400 and ("BadDigest" in exc.response.text or "MD5" in detail):
            return UploadFailed(f.key, (
                f"The archive received a damaged copy of {f.key} (its MD5 did not match what "
                f"was sent) and refused it: {detail}. This is usually a flaky connection. "
                f"{sent_so_far}{rerun}"))
        if status in (401, 403):
            return UploadFailed(f.key, (
                f"The archive refused {f.key} ({status}: {detail}). Check that your keys are "
                "right (`ia configure` again, or IA_ACCESS_KEY_ID/IA_SECRET_ACCESS_KEY), and "
                f"that the identifier {identifier} is not already an item of another account; if "
                "it is, choose another --identifier."))
        if status == 503:
            return UploadFailed(f.key, (
                f"The archive is overloaded and did not take {f.key} (503: {detail}). "
                f"{sent_so_far}Wait a while, then run the same command again."))
        return UploadFailed(f.key, (
            f"The archive refused {f.key} ({status}: {detail}). {sent_so_far}{rerun}"))
    return UploadFailed(f.key, (
        f"The connection broke while sending {f.key} to the archive ({_short_reason(exc)}). "
        f"{sent_so_far}{rerun}"))


def _short_reason(exc: BaseException) -> str:
    """The innermost cause of a network error, in one short line."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in exc.args if isinstance(a, BaseException)), None)
        if not isinstance(inner, BaseException):
            inner = exc.__cause__ or exc.__context__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


@dataclass
class UploadResult:
    plan: UploadPlan
    sent: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.differences


def send_files(plan: UploadPlan, session: ArchiveSession, *,
               progress: UploadProgress | None = None, timeout: float = 120,
               retries: int = 3, retries_sleep: int = 30, queue_derive: bool = False) -> list[str]:
    """PUT every file of the plan, each with its Content-MD5; stop at the first failure."""
    require_credentials(session)
    progress = progress or UploadProgress()
    item = Item(session, plan.identifier, {})
    size_hint = str(plan.bundle.total_size)
    sent: list[str] = []
    progress.begin(plan)
    try:
        for f in plan.to_send:
            progress.start_file(f)
            fh = open(f.path, "rb")
            try:
                item.upload_file(
                    _ProgressReader(fh, progress.advance),
                    key=f.key,
                    metadata=plan.metadata,
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
                raise MissingCredentials(f"{exc}\n{SETUP_HELP}") from exc
            except (requests.RequestException, OSError) as exc:
                raise _upload_error(exc, f, plan.identifier, len(sent), len(plan.to_send)) from exc
            finally:
                fh.close()
            sent.append(f.key)
            progress.end_file(f)
    finally:
        progress.finish()
    return sent


def upload_bundle(bundle_dir: str | os.PathLike, identifier: str, *,
                  collection: str | None = None, session: ArchiveSession | None = None,
                  dry_run: bool = False, check_only: bool = False,
                  progress: UploadProgress | None = None,
                  on_plan: Callable[[UploadPlan], None] | None = None, wait: float = 600.0,
                  poll_interval: float = 10.0, timeout: float = 120, retries: int = 3,
                  retries_sleep: int = 30) -> UploadResult:
    """Upload the bundle to the item ``identifier``, skipping what is already there, then check.

    ``dry_run`` reads the item (if it can) and returns the plan without sending anything and
    without needing keys. ``check_only`` sends nothing and only compares. ``on_plan`` is called
    with the plan before anything is sent. Raises :class:`VerificationFailed` when the archive's
    copy differs from the bundle, :class:`UploadFailed` when a file could not be sent.
    """
    progress = progress or UploadProgress()
    validate_identifier(identifier)
    session = session or make_session()
    if not (dry_run or check_only):
        require_credentials(session)  # before any work, so a missing key is said at once
    bundle = read_bundle(bundle_dir)
    if dry_run:
        try:
            item_md = _fetch_item(session, identifier)
        except ArchiveUnreachable:
            item_md, known = {}, False
        else:
            known = True
        plan = plan_upload(bundle, identifier, session, collection, item_md=item_md)
        plan.remote_known = known
        if on_plan:
            on_plan(plan)
        return UploadResult(plan)

    plan = plan_upload(bundle, identifier, session, collection)
    if on_plan:
        on_plan(plan)
    result = UploadResult(plan)
    if not check_only and plan.to_send:
        result.sent = send_files(plan, session, progress=progress, timeout=timeout,
                                 retries=retries, retries_sleep=retries_sleep)
    progress.checking(len(bundle.files))
    result.differences = verify_item(
        bundle, identifier, session, pending=result.sent, previous_md5=plan.replacing,
        wait=wait if result.sent else 0,
        poll_interval=poll_interval, on_wait=progress.waiting)
    result.checked = True
    if result.differences:
        raise VerificationFailed(identifier, result.differences)
    return result
