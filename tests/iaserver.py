"""A local stand-in for the parts of the Internet Archive that the ``internetarchive`` client uses.

The real client is pointed at it as an HTTP proxy (``HTTP_PROXY``/``HTTPS_PROXY`` set to this
server, and the session built with ``{'general': {'secure': False}}``), so the client's own request
code runs unchanged and every request it makes arrives here with its absolute URL
(``PUT http://s3.us.archive.org/<id>/<key>``, ``GET http://archive.org/metadata/<id>``). Nothing
leaves the machine: ``https://`` would arrive here as ``CONNECT``, which is refused, and any
host other than the archive's is answered with 502 and recorded.

What it speaks:

* IA-S3 ``PUT /<identifier>/<key>`` with ``Authorization: LOW <access>:<secret>``, the
  ``x-archive-*`` headers (``auto-make-bucket``, ``queue-derive``, ``size-hint``,
  ``metaNN-<field>`` with ``--`` for ``_`` and ``uri(...)`` for quoted values) and
  ``Content-MD5`` (hex, as the client sends it, or base64), checked against the body:
  a mismatch is answered ``400 BadDigest`` and nothing is stored, as the archive does.
  Item metadata comes from the headers of the PUT that creates the item; later PUTs to an
  existing item leave it unchanged.
* ``GET /metadata/<identifier>``: ``{}`` for an unknown item, else the item with ``metadata`` and
  ``files`` (``name``, ``source``, ``size`` as a string, ``md5``, ``sha1``, ``crc32``, ``mtime``,
  ``format``), including the archive's own ``<id>_meta.xml`` and ``<id>_files.xml``.
* ``GET s3.us.archive.org/?check_limit=1`` (the client's overload probe): ``over_limit: 0``.

Faults on demand (each one-shot per key, so the next run succeeds):

* ``drop_on``: the connection is reset while the body of that key is arriving; nothing stored.
* ``corrupt_on``: the upload is accepted (200) but a damaged copy is stored, so the listing
  shows another md5/sha1 (as a silent server-side corruption would).
* ``tamper_on``: one byte of the body is changed as it arrives, so the Content-MD5 check fails.
* ``slowdown_on``: that key is answered ``503 SlowDown`` once (the client then asks
  ``?check_limit=1`` and, if it has retries left, sends the file again).
* ``listing_lag``: newly stored files appear in ``/metadata`` only after that many more reads
  (the real archive lists a file once its archive task has run).

Everything that arrives is recorded in ``requests`` (method, host, path, headers, body digest).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

from loopback import LoopbackServer

ARCHIVE_HOSTS = {"archive.org", "s3.us.archive.org"}
_META_HEADER = re.compile(r"^x-archive-meta(\d+)?-(.+)$", re.IGNORECASE)


@dataclass
class Recorded:
    method: str
    host: str
    path: str
    query: str
    headers: dict[str, str]
    status: int = 0
    body_md5: str | None = None
    body_size: int = 0
    dropped: bool = False

    @property
    def key(self) -> str | None:
        """For an S3 PUT: the file's key inside the item."""
        if self.host != "s3.us.archive.org":
            return None
        parts = self.path.lstrip("/").split("/", 1)
        return unquote(parts[1]) if len(parts) == 2 else None

    @property
    def identifier(self) -> str | None:
        return unquote(self.path.lstrip("/").split("/", 1)[0]) or None

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


@dataclass
class StoredFile:
    name: str
    data: bytes
    mtime: int
    visible_after: int  # listing reads of the item still needed before it is listed

    def entry(self) -> dict:
        return {
            "name": self.name,
            "source": "original",
            "mtime": str(self.mtime),
            "size": str(len(self.data)),
            "md5": hashlib.md5(self.data).hexdigest(),
            "crc32": f"{zlib.crc32(self.data):08x}",
            "sha1": hashlib.sha1(self.data).hexdigest(),
            "format": _format_of(self.name),
        }


@dataclass
class FakeItem:
    identifier: str
    owner: str
    metadata: dict
    files: dict[str, StoredFile] = field(default_factory=dict)
    created: int = field(default_factory=lambda: int(time.time()))
    reads: int = 0


def _format_of(name: str) -> str:
    low = name.lower()
    for ext, fmt in ((".jpg", "JPEG"), (".jpeg", "JPEG"), (".json", "JSON"), (".md", "Text"),
                     (".db", "SQLite"), (".xml", "Metadata"), (".pub", "Unknown")):
        if low.endswith(ext):
            return fmt
    return "Unknown"


def _decode_meta_value(value: str) -> str:
    if value.startswith("uri(") and value.endswith(")"):
        return unquote(value[4:-1])
    return value


def _md5_from_header(value: str) -> str | None:
    """Content-MD5 as hex: the client sends hex; S3 proper sends base64 of the digest."""
    value = value.strip()
    if re.fullmatch(r"[0-9a-fA-F]{32}", value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


def _s3_error(code: str, message: str, resource: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{resource}</Resource><RequestId>fake</RequestId></Error>"
    ).encode()


class FakeArchive(LoopbackServer):
    """The fake archive's state, its fault switches and the log of what arrived."""

    def __init__(self, access: str = "TESTACCESS", secret: str = "TESTSECRET"):
        self.credentials = {access: secret}
        self.items: dict[str, FakeItem] = {}
        self.requests: list[Recorded] = []
        self.drop_on: set[str] = set()
        self.corrupt_on: set[str] = set()
        self.tamper_on: set[str] = set()
        self.slowdown_on: set[str] = set()
        self.listing_lag = 0
        self.lock = threading.Lock()

    def handler(self):
        archive = self

        class Handler(_Handler):
            fake = archive

        return Handler

    # --- what the tests look at ----------------------------------------------------------
    def puts(self, identifier: str | None = None) -> list[Recorded]:
        """Every PUT that arrived (dropped or rejected ones included)."""
        return [r for r in self.requests if r.method == "PUT"
                and (identifier is None or r.identifier == identifier)]

    def stored_puts(self, identifier: str | None = None) -> list[Recorded]:
        """PUTs that the archive accepted (status 200)."""
        return [r for r in self.puts(identifier) if r.status == 200]

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()

    def stored(self, identifier: str, key: str) -> bytes:
        return self.items[identifier].files[key].data

    def add_file(self, identifier: str, key: str, data: bytes, *, owner: str = "TESTACCESS",
                 metadata: dict | None = None) -> None:
        """Put a file into an item directly (as if uploaded earlier)."""
        with self.lock:
            item = self.items.get(identifier)
            if item is None:
                item = self.items[identifier] = FakeItem(identifier, owner,
                                                         dict(metadata or {}, identifier=identifier))
            item.files[key] = StoredFile(key, data, int(time.time()), 0)

    # --- the archive's answers -----------------------------------------------------------
    def metadata_response(self, identifier: str) -> dict:
        with self.lock:
            item = self.items.get(identifier)
            if item is None:
                return {}
            item.reads += 1
            listed = []
            for f in item.files.values():
                if f.visible_after > 0:
                    f.visible_after -= 1
                    continue
                listed.append(f.entry())
            meta_xml = json.dumps(item.metadata, sort_keys=True).encode()
            files_xml = json.dumps(sorted(e["name"] for e in listed)).encode()
            for name, blob in ((f"{identifier}_meta.xml", meta_xml),
                               (f"{identifier}_files.xml", files_xml)):
                entry = StoredFile(name, blob, item.created, 0).entry()
                entry["format"] = "Metadata"
                listed.append(entry)
            return {
                "created": item.created,
                "d1": "ia800000.us.archive.org",
                "dir": f"/0/items/{identifier}",
                "files": listed,
                "files_count": len(listed),
                "item_last_updated": int(time.time()),
                "item_size": sum(int(e["size"]) for e in listed),
                "metadata": dict(item.metadata),
                "server": "ia800000.us.archive.org",
                "uniq": 1,
                "workable_servers": ["ia800000.us.archive.org"],
            }

    def receive_put(self, rec: Recorded, identifier: str, key: str, body: bytes,
                    headers: dict[str, str]) -> tuple[int, bytes]:
        resource = f"/{identifier}/{key}"
        auth = rec.header("Authorization") or ""
        m = re.fullmatch(r"LOW ([^:]+):(.+)", auth)
        if not m or self.credentials.get(m.group(1)) != m.group(2):
            return 403, _s3_error("AccessDenied", "Access Denied (bad or missing LOW keys).",
                                  resource)
        access = m.group(1)
        with self.lock:
            slow = key in self.slowdown_on
            self.slowdown_on.discard(key)
        if slow:
            return 503, _s3_error("SlowDown", "Please reduce your request rate.", resource)
        if not key:
            return 400, _s3_error("InvalidRequest", "No file name in the request.", resource)
        with self.lock:
            if key in self.tamper_on:
                self.tamper_on.discard(key)
                body = bytes([body[0] ^ 0xFF]) + body[1:] if body else b"\x00"
            md5_header = rec.header("Content-MD5")
            actual_md5 = hashlib.md5(body).hexdigest()
            rec.body_md5 = actual_md5
            rec.body_size = len(body)
            if md5_header is not None:
                expected = _md5_from_header(md5_header)
                if expected is None:
                    return 400, _s3_error("InvalidDigest",
                                          "The Content-MD5 you specified was invalid.", resource)
                if expected != actual_md5:
                    return 400, _s3_error(
                        "BadDigest",
                        "The Content-MD5 you specified did not match what we received.",
                        resource)
            item = self.items.get(identifier)
            if item is None:
                if rec.header("x-archive-auto-make-bucket") != "1":
                    return 404, _s3_error("NoSuchBucket", "The specified bucket does not exist.",
                                          resource)
                item = self.items[identifier] = FakeItem(
                    identifier, access, self._metadata_from_headers(identifier, headers))
            elif item.owner != access:
                return 403, _s3_error("AccessDenied",
                                      "You do not have permission to upload to this item.",
                                      resource)
            data = body
            if key in self.corrupt_on:
                self.corrupt_on.discard(key)
                data = (bytes([body[0] ^ 0x55]) + body[1:]) if body else b"\x55"
            item.files[key] = StoredFile(key, data, int(time.time()), self.listing_lag)
        return 200, b""

    @staticmethod
    def _metadata_from_headers(identifier: str, headers: dict[str, str]) -> dict:
        fields: dict[str, dict[int, str]] = {}
        for name, value in headers.items():
            m = _META_HEADER.match(name)
            if not m:
                continue
            field_name = m.group(2).lower().replace("--", "_")
            index = int(m.group(1) or 0)
            fields.setdefault(field_name, {})[index] = _decode_meta_value(value)
        metadata: dict = {"identifier": identifier}
        for name, indexed in fields.items():
            values = [indexed[i] for i in sorted(indexed)]
            metadata[name] = values[0] if len(values) == 1 else values
        return metadata


class _Handler(BaseHTTPRequestHandler):
    fake: FakeArchive
    protocol_version = "HTTP/1.1"
    timeout = 15  # seconds a client may stay silent before the socket is closed

    def log_message(self, format, *args):  # noqa: A002 - keep the test output quiet
        pass

    def _record(self) -> tuple[Recorded, str, str]:
        if self.path.startswith(("http://", "https://")):
            parts = urlsplit(self.path)
            host, path, query = parts.hostname or "", parts.path, parts.query
        else:
            host = (self.headers.get("Host") or "").split(":")[0]
            path, _, query = self.path.partition("?")
        rec = Recorded(self.command, host, path, query, dict(self.headers.items()))
        with self.fake.lock:
            self.fake.requests.append(rec)
        return rec, host, path

    def _send(self, rec: Recorded, status: int, body: bytes, ctype: str) -> None:
        rec.status = status
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _drain_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_CONNECT(self):  # noqa: N802 - a TLS tunnel would leave the machine: refuse it
        rec, _, _ = self._record()
        self._send(rec, 405, b"no tunnels here\n", "text/plain")

    def do_GET(self):  # noqa: N802
        rec, host, path = self._record()
        if host not in ARCHIVE_HOSTS:
            return self._send(rec, 502, b"only the archive's hosts are served here\n",
                              "text/plain")
        if host == "s3.us.archive.org" and path in ("", "/"):
            qs = parse_qs(rec.query)
            if "check_limit" in qs:
                body = {"bucket": (qs.get("bucket") or [None])[0],
                        "accesskey": (qs.get("accesskey") or [None])[0],
                        "over_limit": 0, "detail": {}}
                return self._send(rec, 200, json.dumps(body).encode(), "application/json")
        m = re.fullmatch(r"/metadata/([^/]+)/?", path)
        if host == "archive.org" and m:
            payload = self.fake.metadata_response(unquote(m.group(1)))
            return self._send(rec, 200, json.dumps(payload).encode(), "application/json")
        self._send(rec, 404, b"not part of the fake archive\n", "text/plain")

    def do_PUT(self):  # noqa: N802
        rec, host, path = self._record()
        if host != "s3.us.archive.org":
            self._drain_body()
            return self._send(rec, 502, b"uploads go to s3.us.archive.org\n", "text/plain")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._send(rec, 411, _s3_error("MissingContentLength",
                                                  "Chunked uploads are not supported.", path),
                              "application/xml")
        if self.headers.get("Content-Length") is None:
            return self._send(rec, 411, _s3_error("MissingContentLength",
                                                  "You must provide the Content-Length.", path),
                              "application/xml")
        parts = path.lstrip("/").split("/", 1)
        identifier = unquote(parts[0])
        key = unquote(parts[1]) if len(parts) == 2 else ""
        length = int(self.headers["Content-Length"])
        with self.fake.lock:
            drop = key in self.fake.drop_on
            self.fake.drop_on.discard(key)
        if drop:
            # Take part of the body, then reset the connection, as a network failure would.
            self.rfile.read(min(length, max(1, length // 2)))
            rec.dropped = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        status, payload = self.fake.receive_put(rec, identifier, key, body,
                                                dict(self.headers.items()))
        self._send(rec, status, payload, "application/xml" if payload else "text/plain")

    def _unsupported(self):
        rec, _, _ = self._record()
        self._drain_body()
        self._send(rec, 405, b"method not served by the fake archive\n", "text/plain")

    do_POST = do_DELETE = do_HEAD = do_PATCH = _unsupported  # noqa: N815
