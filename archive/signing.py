"""Minisign keys and signatures (Ed25519), compatible with the `minisign` command.

A bundle is signed so that a copy found anywhere (a torrent, a mirror, a USB stick) can be
traced to its publisher. We use minisign's formats unchanged, so checking a bundle needs only
the stock `minisign -Vm SHA256SUMS -p minisign.pub`, never testigo.

Secret keys: ``<base>.key``; scrypt-encrypted with the password (minisign's own default cost)
unless the caller explicitly asks for an unencrypted key (``unencrypted=True`` /
``testigo keygen --no-password``), which is meant for demos and throw-away test keys only.
Passwords come from the argument, else the TESTIGO_KEY_PASSWORD environment variable; the CLI
prompts. Never from a command-line argument (it would end up in shell history and ``ps``).

Signatures: Ed25519 is deterministic, and the trusted comment we write has no timestamp, so
signing the same SHA256SUMS with the same key gives the same bytes (bundles are reproducible).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import minisign

from .errors import TestigoError

PASSWORD_ENV = "TESTIGO_KEY_PASSWORD"
SECRET_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
SIG_SUFFIX = ".minisig"
# Fixed untrusted comment: the untrusted line is not covered by the signature, so verification
# pins it to this exact text (plus canonical encoding) to reject any byte change in the file.
SIGNATURE_UNTRUSTED_COMMENT = "signature from testigo (minisign format)"

# minisign -G defaults (libsodium "sensitive"): ~1 GiB, a few seconds per use. Slow on purpose.
SENSITIVE = (33_554_432, 1_073_741_824)
# py-minisign defaults (libsodium "interactive"): for tests and throw-away keys.
INTERACTIVE = (minisign.OPSLIMIT, minisign.MEMLIMIT)


class SigningError(TestigoError):
    """A key cannot be created, read or used."""


class KeyPasswordError(SigningError):
    """The secret key is encrypted and no password, or a wrong one, was given."""


class SignatureInvalid(SigningError):
    """A signature does not verify (wrong key, altered file, altered signature)."""


@dataclass(frozen=True)
class KeyFiles:
    secret: Path
    public: Path
    key_id: str


def key_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(secret, public) for a key base path; ``K``, ``K.key`` and ``K.pub`` all name key K."""
    p = Path(path)
    if p.suffix in (SECRET_SUFFIX, PUBLIC_SUFFIX):
        p = p.with_suffix("")
    return p.with_name(p.name + SECRET_SUFFIX), p.with_name(p.name + PUBLIC_SUFFIX)


def _format_key_id(raw: bytes) -> str:
    """A raw 8-byte key id as `minisign` shows it (hex of the little-endian number, upper case)."""
    return format(int.from_bytes(raw, "little"), "X")


def key_id(pk: minisign.PublicKey | minisign.SecretKey) -> str:
    """The key id as `minisign` shows it."""
    if isinstance(pk, minisign.SecretKey):
        pk = pk.get_public_key()
    return _format_key_id(pk._keynum_pk.key_id)


def public_key_bytes(pk: minisign.PublicKey) -> bytes:
    """The public key file exactly as `minisign -G` writes it."""
    return (f"untrusted comment: minisign public key {key_id(pk)}\n".encode()
            + pk.to_base64() + b"\n")


def public_key_base64(pk: minisign.PublicKey) -> str:
    """The one-line form for `minisign -P` and for READMEs."""
    return pk.to_base64().decode("ascii")


def keygen(path: str | os.PathLike, password: str | None = None, *, unencrypted: bool = False,
           force: bool = False, limits: tuple[int, int] | None = None) -> KeyFiles:
    """Create a key pair: ``<path>.key`` (secret, mode 0600) and ``<path>.pub``.

    The secret key is scrypt-encrypted with ``password``; pass ``unencrypted=True`` (and no
    password) to write it in the clear, for demos only. Existing keys are never overwritten
    unless ``force``: losing a signing key means a bundle's publisher can no longer be proved.
    ``limits`` = scrypt (opslimit, memlimit); default SENSITIVE, as `minisign -G`.
    """
    secret_path, public_path = key_paths(path)
    if password is not None and unencrypted:
        raise SigningError("give a password or ask for an unencrypted key, not both")
    if password is None and not unencrypted:
        raise KeyPasswordError("a signing key needs a password (set TESTIGO_KEY_PASSWORD or answer "
                               "the prompt); for a throw-away demo key ask for an unencrypted one "
                               "explicitly (--no-password)")
    if password == "":
        raise KeyPasswordError("the password is empty; choose a real one or use --no-password")
    if not force:
        for p in (secret_path, public_path):
            if p.exists():
                raise SigningError(f"{p} already exists; refusing to overwrite a key (move it away "
                                   "first, or use --force if you really mean to replace it)")
    secret_path.parent.mkdir(parents=True, exist_ok=True)
    kp = minisign.KeyPair.generate()
    sk, pk = kp.secret_key, kp.public_key
    if password is not None:
        opslimit, memlimit = limits or SENSITIVE
        sk.encrypt(password, opslimit=opslimit, memlimit=memlimit)
    data = bytes(sk) + b"\n"
    tmp = secret_path.with_name(secret_path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, secret_path)
    public_path.write_bytes(public_key_bytes(pk))
    kid = key_id(pk)
    sk.wipe()
    return KeyFiles(secret_path, public_path, kid)


def secret_key_is_encrypted(path: str | os.PathLike) -> bool:
    """Whether the secret key needs a password (so a CLI knows whether to prompt)."""
    return _read_secret(key_paths(path)[0]).is_encrypted()


def _read_secret(secret_path: Path) -> minisign.SecretKey:
    try:
        return minisign.SecretKey.from_file(secret_path)
    except FileNotFoundError:
        raise SigningError(f"no secret key at {secret_path}; create one with `testigo keygen "
                           f"{secret_path.with_suffix('')}`") from None
    except minisign.Error as e:
        raise SigningError(f"{secret_path} is not a minisign secret key ({e})") from None


def load_secret_key(path: str | os.PathLike, password: str | None = None) -> minisign.SecretKey:
    """Read and, when encrypted, decrypt a secret key (password: argument, else the env var)."""
    secret_path = key_paths(path)[0]
    sk = _read_secret(secret_path)
    if sk.is_encrypted():
        password = password if password is not None else os.environ.get(PASSWORD_ENV)
        if password is None:
            raise KeyPasswordError(f"{secret_path} is encrypted: set {PASSWORD_ENV} or run "
                                   "interactively to be asked for the password")
        try:
            sk.decrypt(password)
        except minisign.Error:
            raise KeyPasswordError(f"wrong password for {secret_path}") from None
    return sk


def load_public_key(source: str | os.PathLike | minisign.PublicKey) -> minisign.PublicKey:
    """A public key from a .pub file, a key base path (K → K.pub), or a base64 key string."""
    if isinstance(source, minisign.PublicKey):
        return source
    p = Path(source)
    c = p if p.suffix == PUBLIC_SUFFIX or p.is_file() else key_paths(p)[1]
    if c.is_file():
        try:
            return minisign.PublicKey.from_bytes(c.read_bytes())
        except minisign.Error as e:
            raise SigningError(f"{c} is not a minisign public key ({e})") from None
    text = str(source).strip()
    try:
        return minisign.PublicKey.from_base64(text)
    except minisign.Error:
        raise SigningError(f"{source}: no such public key file, and not a base64 minisign key") from None


def trusted_comment(name: str, election: str) -> str:
    """What the signature vouches for besides the bytes; no timestamp, so builds reproduce."""
    return f"file:SHA256SUMS\tbundle:{name}\telection:{election}\tsigned-by:testigo"


def sign_file(sk: minisign.SecretKey, path: str | os.PathLike, comment: str) -> Path:
    """Write ``<path>.minisig`` (prehashed Ed25519, minisign's default format). Returns its path."""
    path = Path(path)
    sig = sk.sign(path.read_bytes(), prehash=True, untrusted_comment=SIGNATURE_UNTRUSTED_COMMENT,
                  trusted_comment=comment)
    out = path.with_name(path.name + SIG_SUFFIX)
    out.write_bytes(bytes(sig) + b"\n")
    return out


def read_signature(sig_path: str | os.PathLike) -> tuple[minisign.Signature, bytes]:
    """A .minisig file, parsed, and its bytes (read once). Raises SignatureInvalid."""
    sig_path = Path(sig_path)
    try:
        raw = sig_path.read_bytes()
    except FileNotFoundError:
        raise SignatureInvalid(f"{sig_path.name} is missing: the bundle is not signed") from None
    try:
        return minisign.Signature.from_bytes(raw), raw
    except minisign.Error as e:
        raise SignatureInvalid(f"{sig_path.name} is not a minisign signature ({e})") from None


def signature_key_id(sig: minisign.Signature) -> str:
    """The id of the key that made a signature (to pick a trusted key before verifying)."""
    return _format_key_id(sig._key_id)


def verify_file(pk: minisign.PublicKey, path: str | os.PathLike,
                sig_path: str | os.PathLike | None = None) -> str:
    """Verify ``path`` against its .minisig with ``pk``; return the trusted comment.

    Stricter than minisign on the one part minisign does not protect: the signature file must be
    byte-for-byte the canonical encoding with testigo's untrusted comment, so that no byte of it
    can change unnoticed. Raises SignatureInvalid with the reason.
    """
    return verify_file_bytes(pk, path, sig_path)[0]


def verify_file_bytes(pk: minisign.PublicKey, path: str | os.PathLike,
                      sig_path: str | os.PathLike | None = None) -> tuple[str, bytes]:
    """:func:`verify_file`, returning (trusted comment, the bytes verified): what a caller goes on
    to read is then exactly what the signature covers, not a second read of the file."""
    path = Path(path)
    sig_path = Path(sig_path) if sig_path else path.with_name(path.name + SIG_SUFFIX)
    sig, raw = read_signature(sig_path)
    if sig._key_id != pk._keynum_pk.key_id:
        raise SignatureInvalid(f"{sig_path.name} was made by key {_format_key_id(sig._key_id)}, "
                               f"not by key {key_id(pk)}")
    data = path.read_bytes()
    try:
        pk.verify(data, sig)
    except minisign.Error as e:
        raise SignatureInvalid(f"{sig_path.name} does not verify {path.name} with key "
                               f"{key_id(pk)} ({e}): the file or the signature was altered") from None
    if sig.untrusted_comment != SIGNATURE_UNTRUSTED_COMMENT or raw != bytes(sig) + b"\n":
        raise SignatureInvalid(f"{sig_path.name} verifies but is not byte-for-byte what testigo "
                               "writes (its unsigned comment line or its encoding was changed)")
    return sig.trusted_comment, data
