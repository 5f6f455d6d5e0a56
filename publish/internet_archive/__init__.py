"""Upload a signed bundle to the Internet Archive, within its item limits, and check what arrived.

The real work is done by the ``internetarchive`` library (IA-S3 ``PUT`` requests and the metadata
read API); this package decides what to send where and checks the result:

* :mod:`.bundle` reads the bundle directory and its ``SHA256SUMS`` and hashes every file once
  (MD5 for the archive's check, SHA-1 for the post-upload comparison, SHA-256 to make sure the
  bundle itself is intact before anything is published).
* :mod:`.items` decides which item holds which file: one item when the bundle fits the archive's
  limits (10,000 files, 100 GB), else a top item ``ID`` and parts ``ID-part-01``, ...
* :mod:`.metadata` gives each item its metadata from ``datapackage.json``.
* :mod:`.upload` plans (skipping files already there with the same MD5, so a re-run resumes),
  sends each file with its ``Content-MD5``, then checks every item.
* :mod:`.remote` reads the items and compares size, MD5 and SHA-1 of every file with the bundle.
* :mod:`.client` holds identifiers, sessions and keys (never taken as arguments: ``ia configure``
  or ``IA_ACCESS_KEY_ID``/``IA_SECRET_ACCESS_KEY``).
* :mod:`.cli` is ``testigo upload``.

May import: ``archive`` (manifests, the bundle's names). Errors live at the bottom
(:mod:`.errors` imports nothing of the package).
"""
from __future__ import annotations

from .bundle import DATAPACKAGE, MANIFEST, SIGNATURE, Bundle, BundleFile, list_bundle, read_bundle
from .client import (ARCHIVE_DETAILS_URL, ARCHIVE_DOWNLOAD_URL, SETUP_HELP, fetch_item,
                     internet_archive_web_seed, make_session, require_credentials, validate_identifier)
from .errors import (ArchiveUnreachable, BundleError, InternetArchiveError, InvalidIdentifier, ItemConflict,
                     ItemLimitError, MissingCredentials, SplitUpload, UploadFailed, VerificationFailed)
from .items import (ARCHIVE_MAX_BYTES, ARCHIVE_MAX_FILES, DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, LISTING,
                    SPLIT_RULE, ItemLayout, ItemLimits, PlannedItem, human_size, listing_file, plan_items,
                    torrent_web_seed)
from .metadata import LICENSE_URLS, item_metadata
from .remote import Difference, compare_with_item, remote_originals, verify_items
from .upload import (ItemPlan, UploadPlan, UploadProgress, UploadResult, plan_upload, send_files,
                     upload_bundle)

__all__ = [
    "ARCHIVE_DETAILS_URL", "ARCHIVE_DOWNLOAD_URL", "ARCHIVE_MAX_BYTES", "ARCHIVE_MAX_FILES", "DATAPACKAGE",
    "DEFAULT_MAX_BYTES", "DEFAULT_MAX_FILES", "LICENSE_URLS", "LISTING", "MANIFEST", "SETUP_HELP",
    "SIGNATURE", "SPLIT_RULE", "ArchiveUnreachable", "Bundle", "BundleError", "BundleFile", "Difference",
    "InternetArchiveError", "InvalidIdentifier", "ItemConflict", "ItemLayout", "ItemLimitError",
    "ItemLimits", "ItemPlan", "MissingCredentials", "PlannedItem", "SplitUpload", "UploadFailed",
    "UploadPlan", "UploadProgress", "UploadResult", "VerificationFailed", "compare_with_item",
    "fetch_item", "human_size", "internet_archive_web_seed", "item_metadata", "list_bundle",
    "listing_file", "make_session", "plan_items", "plan_upload", "read_bundle", "remote_originals",
    "require_credentials", "send_files", "torrent_web_seed", "upload_bundle", "validate_identifier",
    "verify_items",
]
