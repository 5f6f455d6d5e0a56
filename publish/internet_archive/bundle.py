"""The bundle as the archive gets it: which files are sent (those listed in ``SHA256SUMS``, then
``SHA256SUMS`` and its signature), in which order, with the MD5, SHA-1 and SHA-256 of each.

Which paths count as bundle content is decided by :mod:`archive.manifest` (the same rules as the
bundle's own check): a file that is not listed, a symlink or a special file stops the upload,
because nobody could verify it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from archive import manifest

from .errors import BundleError

MANIFEST = manifest.MANIFEST  # SHA256SUMS
SIGNATURE = manifest.SIGNATURE  # SHA256SUMS.minisig
DATAPACKAGE = "datapackage.json"


@dataclass(frozen=True)
class BundleFile:
    key: str  # path inside the bundle and the item, with '/' (e.g. images/estado-01-1.zip)
    path: Path | None
    size: int
    md5: str
    sha1: str
    sha256: str
    data: bytes | None = None  # a file made for the upload (the split's listing), not on disk

    def open(self):
        """The file's bytes as a binary file object (``name`` set, as the client expects)."""
        if self.data is None:
            return open(self.path, "rb")
        fh = io.BytesIO(self.data)
        fh.name = self.key
        return fh

    @classmethod
    def from_bytes(cls, key: str, data: bytes) -> "BundleFile":
        return cls(key, None, len(data), hashlib.md5(data).hexdigest(),
                   hashlib.sha1(data).hexdigest(), hashlib.sha256(data).hexdigest(), data)


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


@dataclass(frozen=True)
class BundleListing:
    """What a bundle directory holds, checked for shape but not hashed."""

    root: Path
    listed: dict[str, str]  # SHA256SUMS: path -> sha256
    keys: tuple[str, ...]   # upload order: listed paths sorted, then SHA256SUMS and its signature

    def sizes(self) -> list[tuple[str, int]]:
        return [(k, (self.root / k).stat().st_size) for k in self.keys]


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


def few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")


def list_bundle(bundle_dir: str | os.PathLike) -> BundleListing:
    """The files to send, refusing a directory whose files are not exactly those of ``SHA256SUMS``."""
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
                          f"contain: {few(unsafe)}. Copy the bundle as plain files.")
    present = set(listing.files)
    unlisted = sorted(present - set(listed))
    if unlisted:
        raise BundleError(
            f"{len(unlisted)} file(s) in {root} are not listed in {MANIFEST} and could not be "
            f"verified by anyone: {few(unlisted)}. Move them out of the bundle directory, or "
            "rebuild the bundle.")
    missing = sorted(set(listed) - present)
    if missing:
        raise BundleError(
            f"{len(missing)} file(s) listed in {MANIFEST} are missing from {root}: "
            f"{few(missing)}. Copy the complete bundle, or rebuild it.")
    signed = [k for k in (MANIFEST, SIGNATURE) if (root / k).is_file()]
    return BundleListing(root, listed, (*sorted(listed), *signed))


def read_bundle(bundle_dir: str | os.PathLike) -> Bundle:
    """Read and hash a bundle (see :func:`list_bundle`); refuse one whose files do not match
    its ``SHA256SUMS``, since a damaged bundle must not be published."""
    listing = list_bundle(bundle_dir)
    root = listing.root
    files: list[BundleFile] = []
    damaged: list[str] = []
    for key in listing.keys:
        size, md5, sha1, sha256 = _hash_file(root / key)
        if key in listing.listed and sha256 != listing.listed[key]:
            damaged.append(key)
        files.append(BundleFile(key, root / key, size, md5, sha1, sha256))
    if damaged:
        raise BundleError(
            f"{len(damaged)} file(s) do not match {MANIFEST}, so the bundle is damaged and must "
            f"not be published: {few(damaged)}. "
            "Copy it again from the original, or rebuild it.")

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
