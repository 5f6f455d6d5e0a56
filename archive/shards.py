"""The bundle's photos in zip shards: writing them deterministically and reading photos back.

Why shards: the Internet Archive takes at most 10,000 files per item and asks that many small
files be zipped; a national bundle has 27,000+ photos. One zip per group of photos is also one
line in SHA256SUMS, one upload and one torrent entry instead of thousands. The shards are the
bundle's only copy of the photos: what is signed is what is served, uploaded, torrented and
verified (no second, loose layout).

Why stored (``ZIP_STORED``): JPEG and PNG are compressed already, so deflating gains nothing and
costs CPU; and a stored member is its exact bytes at a known offset, so a photo is read (or
served, or range-requested) straight from the shard without decompressing anything.

Why deterministic: the same photos give the same shard bytes (fixed 1980 timestamps, fixed
attributes, members sorted by name, no comments and no extra fields), so a rebuild compares
byte for byte with a published bundle.

Grouping: per estado, so an archivist can take one state's photos; within an estado the photos
follow (centro, mesa) order and an estado larger than ``max_members`` photos or ``max_bytes``
is split into balanced consecutive parts. Adding photos of one estado changes only that
estado's shards, so a new edition leaves the other shards (and their torrent pieces, archive
copies and mirrors) as they were. Shards are ``images/estado-EE-K.zip`` (EE = COD_EDO, K = part
1, 2, ...; EE = 00 holds photos of centres outside the registry whose code names no estado);
members are ``<sha256>.<ext>``, the sha256 of the member's own bytes.

Reading: :func:`open_images` indexes every shard once from its central directory (and each
member's local header, for the offset of its bytes); a photo is then one ``pread`` of a known
range, never a read of the whole zip.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .errors import TestigoError

SHARDS_DIR = "images"                 # inside the bundle
MAX_MEMBERS = 10_000                  # the Internet Archive's files-per-item limit: never above it
DEFAULT_MAX_MEMBERS = 2_000           # photos per shard
DEFAULT_MAX_BYTES = 1 << 30           # 1 GiB: one download a flaky connection can finish
ZIP_DATE = (1980, 1, 1, 0, 0, 0)      # the earliest date zip can store: no build time leaks in
MEMBER_MODE = 0o100644 << 16          # regular file, rw-r--r-- (Unix attributes)
CHUNK = 256 * 1024

MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
MEMBER_NAME = re.compile(r"^([0-9a-f]{64})\.(jpg|png)$")
SHARD_NAME = re.compile(r"^estado-(\d{2,})-(\d+)\.zip$")

# zip local file header (APPNOTE 4.3.7): fixed 30 bytes, then the name and the extra field
_LOCAL = struct.Struct(zipfile.structFileHeader)
_LOCAL_NAME_LEN, _LOCAL_EXTRA_LEN = 10, 11     # indexes of the two lengths in _LOCAL


class ShardError(TestigoError):
    """A shard cannot be written or read, or a photo is not where the bundle says."""


class ImageNotFound(ShardError):
    """No shard of the bundle holds the photo asked for."""


class DamagedImage(ShardError):
    """A photo's bytes do not hash to its name: the shard was altered or damaged."""


# --- planning -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShardPhoto:
    """One photo to place: its member name, size, group (COD_EDO, 0 = none) and order in it."""

    name: str
    size: int
    group: int
    order: tuple = ()


def shard_name(group: int, part: int) -> str:
    """Bundle-relative path of part ``part`` (1-based) of a group: ``images/estado-07-1.zip``."""
    return f"{SHARDS_DIR}/estado-{group:02d}-{part}.zip"


def check_limits(max_members: int, max_bytes: int) -> None:
    if not 1 <= max_members <= MAX_MEMBERS:
        raise ShardError(f"shard size {max_members}: use 1 to {MAX_MEMBERS:,} photos per shard "
                         "(the Internet Archive takes at most 10,000 files per item)")
    if max_bytes < 1:
        raise ShardError(f"maximum shard size {max_bytes} bytes: must be positive")


def _balanced(photos: list[ShardPhoto], max_members: int, max_bytes: int) -> list[list[ShardPhoto]]:
    """The fewest consecutive parts of (nearly) equal count within both limits."""
    n = len(photos)
    k = max(1, math.ceil(n / max_members), math.ceil(sum(p.size for p in photos) / max_bytes))
    while True:
        parts = [photos[i * n // k:(i + 1) * n // k] for i in range(k)]
        if k >= n or all(sum(p.size for p in part) <= max_bytes for part in parts):
            return parts
        k += 1   # a lone photo larger than max_bytes still gets a shard of its own


def plan_shards(photos: Iterable[ShardPhoto], max_members: int = DEFAULT_MAX_MEMBERS,
                max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, list[str]]:
    """{shard path: sorted member names}: per group, split into balanced parts (module docstring)."""
    check_limits(max_members, max_bytes)
    groups: dict[int, list[ShardPhoto]] = {}
    seen: set[str] = set()
    for p in photos:
        if not MEMBER_NAME.match(p.name):
            raise ShardError(f"{p.name!r} cannot be a shard member: members are <sha256>.jpg or .png")
        if p.name in seen:
            raise ShardError(f"photo {p.name} was given twice")
        seen.add(p.name)
        groups.setdefault(int(p.group), []).append(p)
    plan: dict[str, list[str]] = {}
    for group in sorted(groups):
        ordered = sorted(groups[group], key=lambda p: (p.order, p.name))
        for part, members in enumerate(_balanced(ordered, max_members, max_bytes), 1):
            plan[shard_name(group, part)] = sorted(p.name for p in members)
    return plan


# --- writing --------------------------------------------------------------------------------

def _local_extra(size: int) -> int:
    """Bytes of the extra field zipfile writes in a stored member's local header: a zip64 record
    (20 bytes) when the member might pass 4 GiB (zipfile's own test), else none."""
    return 20 if size * 1.05 > zipfile.ZIP64_LIMIT else 0


def member_offsets(members: Iterable[tuple[str, int]]) -> dict[str, int]:
    """{member name: offset of its bytes in the shard} for (name, size) pairs, as
    :func:`write_shard` lays them out (sorted by name, each after its local header), known
    before the shard is written. The images table records it, so a browser reads a photo with
    one HTTP range request and no zip library; :func:`write_shard`'s callers check it against
    the written file."""
    out, pos = {}, 0
    for name, size in sorted(members):
        pos += _LOCAL.size + len(name.encode("ascii")) + _local_extra(size)
        out[name] = pos
        pos += size
    return out


def _zipinfo(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3            # Unix, on every platform (the default depends on the OS)
    info.external_attr = MEMBER_MODE
    info.file_size = size
    return info


class _HashedFile:
    """A file opened for writing whose sha256 is taken from the bytes as they are written, so a
    shard is not read back to hash it. zipfile seeks back once per member, to rewrite that
    member's local header with its CRC; so bytes are held from the last such seek on and pass
    to the file (and the hash) only once nothing can rewrite them: at most one member is held."""

    def __init__(self, f):
        self.f, self.hash = f, hashlib.sha256()
        self.base = 0                    # offset of held[0]; everything before it is written
        self.held = bytearray()
        self.pos = 0

    def write(self, data) -> int:
        at, n = self.pos - self.base, len(data)
        if at == len(self.held):
            self.held += data
        elif at + n <= len(self.held):   # a member's local header rewritten in place
            self.held[at:at + n] = data
        else:
            raise ShardError("the zip writer rewrote bytes past the end of what it wrote")
        self.pos += n
        return n

    def seek(self, pos: int, whence: int = 0) -> int:
        end = self.base + len(self.held)
        pos = {0: pos, 1: self.pos + pos, 2: end + pos}[whence]
        if not self.base <= pos <= end:
            raise ShardError("the zip writer went back to bytes already written")
        self._release(pos)               # nothing before a seek target is rewritten again
        self.pos = pos
        return pos

    def _release(self, upto: int) -> None:
        if upto > self.base:
            with memoryview(self.held)[:upto - self.base] as final:
                self.hash.update(final)
                self.f.write(final)
            del self.held[:upto - self.base]
            self.base = upto

    def tell(self) -> int:
        return self.pos

    def seekable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def finish(self) -> str:
        """Write what is held; the sha256 of the whole file."""
        self._release(self.base + len(self.held))
        return self.hash.hexdigest()


def write_shard(path: str | os.PathLike, members: Iterable[tuple[str, str | os.PathLike]],
                check: Iterable[str] = ()) -> tuple[str, dict[str, str]]:
    """Write a stored, deterministic zip at ``path`` from (member name, source file) pairs.

    Members are written sorted by name whatever the order given; the file appears whole or
    not at all (written beside and renamed). Returns (sha256 of the file, {member: sha256 of its
    bytes} for the members named in ``check``), taken in the same pass as the writing.
    """
    path = Path(path)
    items = sorted((str(n), Path(src)) for n, src in members)
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise ShardError(f"{path.name}: a member name is given twice")
    if len(names) > MAX_MEMBERS:
        raise ShardError(f"{path.name}: {len(names):,} members, more than {MAX_MEMBERS:,}")
    check = set(check)
    member_hashes: dict[str, str] = {}
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            out = _HashedFile(f)
            with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                for name, src in items:
                    h = hashlib.sha256() if name in check else None
                    with open(src, "rb") as s:
                        size = os.fstat(s.fileno()).st_size
                        with zf.open(_zipinfo(name, size), "w") as d:
                            while chunk := s.read(CHUNK):
                                d.write(chunk)
                                if h is not None:
                                    h.update(chunk)
                    if h is not None:
                        member_hashes[name] = h.hexdigest()
            digest = out.finish()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest, member_hashes


# --- reading --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Member:
    """Where one photo's bytes are: ``size`` bytes from ``offset`` in the file ``path``."""

    name: str          # <sha256>.<ext>
    shard: str         # bundle-relative path of the zip, e.g. images/estado-01-1.zip
    path: Path         # the zip on this machine
    offset: int
    size: int

    @property
    def sha256(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.name.rsplit(".", 1)[1]]

    @property
    def locator(self) -> str:
        """``images/estado-01-1.zip!<sha256>.jpg``: the shard and the member, as issues name zips."""
        return f"{self.shard}!{self.name}"


def shard_paths(bundle_dir: str | os.PathLike) -> list[str]:
    """Bundle-relative paths of the zip files in ``images/``, sorted."""
    folder = Path(bundle_dir) / SHARDS_DIR
    if not folder.is_dir():
        return []
    return sorted(f"{SHARDS_DIR}/{p.name}" for p in folder.iterdir()
                  if p.name.endswith(".zip") and p.is_file() and not p.is_symlink())


def _index_shard(root: Path, rel: str) -> tuple[list[Member], list[str], list[str]]:
    """(members, names of unusable members, problems) of one shard, from its central directory."""
    path = root / rel
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        return [], [], [f"{rel}: cannot be read as a zip file ({e})"]
    members, unusable, problems = [], [], []
    with open(path, "rb", buffering=0) as f:
        end = os.fstat(f.fileno()).st_size
        for info in infos:
            name = info.filename
            where = f"{rel}!{name}"
            if not MEMBER_NAME.match(name):
                unusable.append(name)
                problems.append(f"{where}: not a photo member (members are named <sha256>.jpg or .png)")
                continue
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 or info.compress_size != info.file_size:
                unusable.append(name)
                problems.append(f"{where}: compressed or encrypted; shard members are stored as they are")
                continue
            encoded = name.encode("ascii")
            header = os.pread(f.fileno(), _LOCAL.size + len(encoded), info.header_offset)  # header + name
            if len(header) != _LOCAL.size + len(encoded) or header[:4] != zipfile.stringFileHeader:
                unusable.append(name)
                problems.append(f"{where}: its local header is damaged")
                continue
            fields = _LOCAL.unpack(header[:_LOCAL.size])
            name_len, extra_len = fields[_LOCAL_NAME_LEN], fields[_LOCAL_EXTRA_LEN]
            offset = info.header_offset + _LOCAL.size + name_len + extra_len
            if header[_LOCAL.size:] != encoded or name_len != len(encoded) or offset + info.file_size > end:
                unusable.append(name)
                problems.append(f"{where}: its local header does not match the zip's directory")
                continue
            members.append(Member(name, rel, path, offset, info.file_size))
    return members, unusable, problems


@dataclass
class ShardIndex:
    """Every photo of a bundle's shards, by name and by sha256 (see :func:`open_images`).

    ``problems`` lists what could not be indexed (unreadable shards, odd or compressed
    members, a name held twice); such members are left out, the rest stays readable.
    """

    root: Path
    shards: list[str]
    members: dict[str, Member] = field(default_factory=dict)      # by member name
    by_sha256: dict[str, Member] = field(default_factory=dict)
    unusable: dict[str, list[str]] = field(default_factory=dict)  # shard -> member names left out
    unreadable: set[str] = field(default_factory=set)             # shards that are not zip files
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[Member]:
        return iter(sorted(self.members.values(), key=lambda m: m.name))

    def __contains__(self, key: str) -> bool:
        return self.find(key) is not None

    def in_shard(self, shard: str) -> list[Member]:
        return sorted((m for m in self.members.values() if m.shard == shard), key=lambda m: m.offset)

    def find(self, key: str) -> Member | None:
        """The photo with this sha256 or member name (``<sha256>`` or ``<sha256>.jpg``), or None.

        A name whose extension differs from the member's is not found (the URL must be exact).
        """
        if "." in key:
            return self.members.get(key)
        return self.by_sha256.get(key)

    def get(self, key: str | Member) -> Member:
        m = key if isinstance(key, Member) else self.find(key)
        if m is None:
            raise ImageNotFound(f"no shard of {self.root} holds the photo {key}")
        return m

    def stream(self, key: str | Member, start: int = 0, end: int | None = None,
               chunk: int = CHUNK) -> Iterator[bytes]:
        """The photo's bytes ``[start, end)`` in chunks (range requests, streaming responses)."""
        m = self.get(key)
        end = m.size if end is None else min(end, m.size)
        with open(m.path, "rb", buffering=0) as f:
            pos = max(0, start)
            while pos < end:
                data = os.pread(f.fileno(), min(chunk, end - pos), m.offset + pos)
                if not data:
                    raise ShardError(f"{m.locator}: the shard ended early (truncated?)")
                yield data
                pos += len(data)

    def read(self, key: str | Member) -> bytes:
        """The photo's bytes, checked against its name; raises DamagedImage if they differ."""
        m = self.get(key)
        data = b"".join(self.stream(m))
        if hashlib.sha256(data).hexdigest() != m.sha256:
            raise DamagedImage(f"{m.locator}: the bytes do not hash to the name; the shard is damaged, "
                               "fetch the bundle again")
        return data


def open_images(bundle_dir: str | os.PathLike, shards: Iterable[str] | None = None) -> ShardIndex:
    """Index the photos of a bundle folder: ``shards`` (bundle-relative), default every
    ``images/*.zip``. Reads central directories and local headers only, never photo bytes."""
    root = Path(bundle_dir)
    rels = sorted(shards) if shards is not None else shard_paths(root)
    index = ShardIndex(root, rels)
    for rel in rels:
        members, unusable, problems = _index_shard(root, rel)
        index.problems += problems
        if problems and not members and not unusable:
            index.unreadable.add(rel)
        if unusable:
            index.unusable[rel] = unusable
        for m in members:
            other = index.members.get(m.name)
            if other is not None:
                index.problems.append(f"{m.locator}: the same photo is also in {other.shard}")
                continue
            index.members[m.name] = m
            index.by_sha256.setdefault(m.sha256, m)
    return index


def read_image(bundle_dir: str | os.PathLike, sha256: str) -> bytes:
    """One photo's bytes from a bundle folder, checked against its sha256. For many photos,
    :func:`open_images` once and ``read`` from the index instead (this indexes every shard)."""
    return open_images(bundle_dir).read(sha256)


def digest_shard(path: str | os.PathLike, members: Sequence[Member],
                 block_size: int = 1 << 20) -> tuple[str, dict[str, str]]:
    """(sha256 of the whole file, {member name: sha256 of its bytes}) in ONE read of the file.

    The build and ``verify`` need both: the file's hash for SHA256SUMS, the members' to check
    each photo against its name. Reading the shard once halves the disk work.
    """
    spans = sorted(members, key=lambda m: m.offset)
    hashers = {m.name: hashlib.sha256() for m in spans}
    whole = hashlib.sha256()
    buf = bytearray(block_size)
    view = memoryview(buf)
    pos, i = 0, 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            whole.update(view[:n])
            block_end = pos + n
            while i < len(spans) and spans[i].offset + spans[i].size <= pos:
                i += 1
            j = i
            while j < len(spans) and spans[j].offset < block_end:
                m = spans[j]
                lo, hi = max(m.offset, pos), min(m.offset + m.size, block_end)
                if hi > lo:
                    hashers[m.name].update(view[lo - pos:hi - pos])
                j += 1
            pos = block_end
    return whole.hexdigest(), {name: h.hexdigest() for name, h in hashers.items()}
