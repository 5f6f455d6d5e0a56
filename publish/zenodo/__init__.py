"""Deposit a signed bundle on Zenodo (a DOI, versioned editions, long-term custody) and check it.

Owns: Zenodo's deposit REST API as testigo uses it (``requests``, no Zenodo library: the API is
a handful of JSON calls), the deposition's metadata, the resumable deposit and its checksum
check. May import: ``archive`` (errors, places), ``publish.internet_archive`` for what the
archives share (reading and hashing the bundle, ``short_reason``), ``requests``. Nothing in
``publish`` imports it but its ``cli``.

* :mod:`.client` speaks the API (depositions, bucket uploads, new versions, publish); the token
  comes from ``ZENODO_TOKEN`` only.
* :mod:`.metadata` makes the deposition's metadata from ``datapackage.json`` and the places file.
* :mod:`.deposit` finds or makes the draft, sends what it lacks and checks every MD5.
* :mod:`.cli` is ``testigo zenodo``.
"""
from __future__ import annotations

from .client import SANDBOX_URL, SETUP_HELP, ZENODO_URL, ZenodoClient, token_from_environment
from .deposit import (DepositPlan, DepositProgress, DepositResult, compare, deposit_bundle, find_own,
                      plan_deposit)
from .errors import (ChecksumMismatch, DepositionConflict, MissingToken, ZenodoError, ZenodoRefused,
                     ZenodoUnreachable)
from .metadata import IDENTITY, MAX_BYTES, MAX_FILES, bundle_identity, deposition_metadata, zenodo_name

__all__ = [
    "IDENTITY", "MAX_BYTES", "MAX_FILES", "SANDBOX_URL", "SETUP_HELP", "ZENODO_URL", "ChecksumMismatch",
    "DepositPlan", "DepositProgress", "DepositResult", "DepositionConflict", "MissingToken", "ZenodoClient",
    "ZenodoError", "ZenodoRefused", "ZenodoUnreachable", "bundle_identity", "compare", "deposit_bundle",
    "deposition_metadata", "find_own", "plan_deposit", "token_from_environment", "zenodo_name",
]
