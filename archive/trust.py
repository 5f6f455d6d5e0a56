"""Trusted team keys: the KEYS file of ``testigo ingest BUNDLE --trust KEYS``.

A coordinator takes in another team's bundle only when it is signed by a key they chose to
trust, and names that team by a label of their own. The file is plain text so it can be read,
diffed and sent around like any other note::

    # testigo trusted keys: LABEL  KEY   (one team per line; '#' starts a comment)
    # KEY: the team's minisign public key in base64 (the second line of its .pub file,
    # what `minisign -P` shows), or the path of that .pub file (relative to this file).
    bolivar    RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3
    caracas    keys/caracas.pub

Labels are one word (letters, digits, '.', '_', '-'); they are what the site and the bundle
show as the team's name. A key id is derived from the key itself, so comparing it with the
team over a second channel (a call, in person) is what makes the key trustworthy.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import minisign

from . import signing
from .errors import TestigoError

_LABEL = re.compile(r"^\w[\w.-]{0,63}$")


class TrustError(TestigoError):
    """The KEYS file cannot be read or is malformed (each message names the line)."""


@dataclass(frozen=True)
class TrustedKey:
    label: str
    key_id: str
    public_key: minisign.PublicKey

    @property
    def base64(self) -> str:
        return signing.public_key_base64(self.public_key)


def load_keys(path: str | os.PathLike) -> list[TrustedKey]:
    """Read a KEYS file (see the module docstring). Raises TrustError naming the bad line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise TrustError(f"cannot read the trusted keys file {path}: {e}") from None
    keys: list[TrustedKey] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        where = f"{path}, line {number}"
        if len(parts) != 2:
            raise TrustError(f"{where}: expected 'LABEL  KEY' (two fields), got {len(parts)}: {line[:80]!r}")
        label, key = parts
        if not _LABEL.match(label):
            raise TrustError(f"{where}: label {label!r} must be one word of letters, digits, '.', '_' or '-'")
        candidate = path.parent / key
        try:
            pk = signing.load_public_key(candidate if candidate.is_file() else key)
        except signing.SigningError:
            raise TrustError(f"{where}: {key[:60]!r} is neither a minisign public key in base64 nor "
                             "a .pub file; copy the second line of the team's .pub file") from None
        kid = signing.key_id(pk)
        for k in keys:
            if k.label == label:
                raise TrustError(f"{where}: label {label!r} is used twice; give each team its own label")
            if k.key_id == kid:
                raise TrustError(f"{where}: key {kid} is already trusted as {k.label!r}; one key, one label")
        keys.append(TrustedKey(label, kid, pk))
    if not keys:
        raise TrustError(f"{path} names no key: add one 'LABEL  KEY' line per team you trust")
    return keys


def find(keys: list[TrustedKey], key_id: str) -> TrustedKey | None:
    return next((k for k in keys if k.key_id == key_id), None)
