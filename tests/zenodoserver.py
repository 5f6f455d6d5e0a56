"""A local server that speaks the parts of Zenodo's deposit REST API testigo uses.

The real client code (``publish.zenodo.client``, on ``requests``) is pointed at it with
``--url http://127.0.0.1:PORT``; nothing leaves the machine.

What it speaks, as Zenodo documents it (``/api`` prefix):

* ``GET /deposit/depositions`` (the token owner's, newest first), ``POST /deposit/depositions``
  (201, a new deposition with a new concept record id, a bucket link and a pre-reserved DOI).
* ``GET``/``PUT /deposit/depositions/<id>`` (``{"metadata": {...}}``, validated: ``upload_type``,
  ``title``, ``creators`` with names, ``description``, a known ``license``; 400 with ``errors``
  otherwise; a published deposition is not editable: 400).
* ``GET /deposit/depositions/<id>/files``; ``DELETE /deposit/depositions/<id>/files/<file id>``.
* ``PUT /files/<bucket>/<name>``: the body is the file; 201 with ``checksum: md5:<hex>`` and
  ``size`` of what was stored; a published record's bucket is locked (403).
* ``POST .../actions/publish`` (202; DOI ``10.5072/zenodo.<id>``, concept DOI
  ``10.5072/zenodo.<concept id>``; refused without files or with an unchanged new version) and
  ``.../actions/newversion`` (201: the record, with ``links.latest_draft`` to a new draft that
  holds the previous version's metadata and files; the open draft if there is one).
* Auth: ``Authorization: Bearer <token>`` or ``?access_token=``; 401 without it, and another
  user's deposition is 403.

Faults on demand (one-shot per file name): ``corrupt_on`` stores a damaged copy and answers its
real checksum (as a silent server-side corruption would); ``drop_on`` resets the connection while
the body arrives; ``misreport_on`` stores the file right but lists another checksum afterwards.
Everything that arrives is recorded in ``requests`` as (method, path, status).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
import socket
import struct
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

from loopback import LoopbackServer

LICENSES = {"cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "odbl-1.0", "odc-by-1.0", "pddl-1.0"}


@dataclass
class StoredFile:
    id: str
    name: str
    data: bytes
    listed_md5: str | None = None  # a wrong checksum to list (misreport_on)

    def entry(self, base: str, bucket: str) -> dict:
        return {"id": self.id, "filename": self.name, "filesize": len(self.data),
                "checksum": self.listed_md5 or hashlib.md5(self.data).hexdigest(),
                "links": {"self": f"{base}/api/deposit/depositions/files/{self.id}",
                          "download": f"{base}/api/files/{bucket}/{self.name}"}}


@dataclass
class Deposition:
    id: int
    concept: int
    owner: str
    bucket: str
    metadata: dict = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    submitted: bool = False
    doi: str | None = None
    parent: int | None = None   # the version this draft was made from


class FakeZenodo(LoopbackServer):
    """The fake Zenodo's state, its fault switches and the log of what arrived."""

    def __init__(self, tokens: dict[str, str] | None = None):
        self.tokens = tokens or {"TESTTOKEN": "alice"}
        self.depositions: dict[int, Deposition] = {}
        self.buckets: dict[str, int] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.corrupt_on: set[str] = set()
        self.drop_on: set[str] = set()
        self.misreport_on: set[str] = set()
        self.lock = threading.Lock()
        self._ids = itertools.count(1001)

    def handler(self):
        fake = self

        class Handler(_Handler):
            zenodo = fake

        return Handler

    # --- what the tests look at ------------------------------------------------------------
    def puts(self) -> list[str]:
        """The file names of every accepted bucket PUT, in order."""
        return [unquote(p.rsplit("/", 1)[-1]) for m, p, s in self.requests
                if m == "PUT" and p.startswith("/api/files/") and s == 201]

    def versions(self, concept: int) -> list[Deposition]:
        return sorted((d for d in self.depositions.values() if d.concept == concept), key=lambda d: d.id)

    # --- the API -------------------------------------------------------------------------
    def _json(self, dep: Deposition) -> dict:
        base = self.url
        api = f"{base}/api/deposit/depositions/{dep.id}"
        prereserved = f"10.5072/zenodo.{dep.id}"
        drafts = [d for d in self.versions(dep.concept) if not d.submitted]
        published = [d for d in self.versions(dep.concept) if d.submitted]
        links = {"self": api, "html": f"{base}/deposit/{dep.id}", "files": f"{api}/files",
                 "publish": f"{api}/actions/publish", "newversion": f"{api}/actions/newversion"}
        if not dep.submitted:
            links["bucket"] = f"{base}/api/files/{dep.bucket}"
        else:
            links["record"] = f"{base}/api/records/{dep.id}"
            links["html"] = f"{base}/records/{dep.id}"
        if drafts:
            links["latest_draft"] = f"{base}/api/deposit/depositions/{drafts[-1].id}"
        if published:
            links["latest"] = f"{base}/api/records/{published[-1].id}"
        out = {"id": dep.id, "record_id": dep.id, "conceptrecid": str(dep.concept),
               "owner": dep.owner, "submitted": dep.submitted,
               "state": "done" if dep.submitted else "unsubmitted",
               "title": dep.metadata.get("title", ""),
               "metadata": {**dep.metadata, "prereserve_doi": {"doi": prereserved, "recid": dep.id}},
               "files": [f.entry(base, dep.bucket) for f in dep.files.values()], "links": links}
        if dep.submitted:
            out["doi"] = dep.doi
            out["doi_url"] = f"https://doi.org/{dep.doi}"
            out["conceptdoi"] = f"10.5072/zenodo.{dep.concept}"
            out["metadata"]["doi"] = dep.doi
        return out

    def _new(self, owner: str, concept: int | None = None, parent: Deposition | None = None) -> Deposition:
        did = next(self._ids)
        bucket = str(uuid.uuid4())
        dep = Deposition(did, concept or next(self._ids), owner, bucket)
        if parent is not None:
            dep.metadata = {k: v for k, v in parent.metadata.items() if k != "doi"}
            dep.files = {n: StoredFile(str(uuid.uuid4()), n, f.data) for n, f in parent.files.items()}
            dep.parent = parent.id
        self.depositions[did] = dep
        self.buckets[bucket] = did
        return dep

    @staticmethod
    def _validate(md) -> list[dict]:
        errors = []
        if not isinstance(md, dict):
            return [{"field": "metadata", "message": "Not a valid object."}]
        for key in ("upload_type", "title", "description"):
            if not str(md.get(key) or "").strip():
                errors.append({"field": f"metadata.{key}", "message": "Field may not be blank."})
        creators = md.get("creators")
        if not isinstance(creators, list) or not creators or not all(
                isinstance(c, dict) and str(c.get("name") or "").strip() for c in creators):
            errors.append({"field": "metadata.creators", "message": "Each creator needs a name."})
        if md.get("license") is not None and md.get("license") not in LICENSES:
            errors.append({"field": "metadata.license", "message": f"Unknown license {md.get('license')!r}."})
        for rel in md.get("related_identifiers") or []:
            if not isinstance(rel, dict) or not rel.get("identifier") or not rel.get("relation"):
                errors.append({"field": "metadata.related_identifiers", "message": "Bad identifier."})
            elif not re.match(r"^(https?://|urn:[a-z0-9-]+:|10\.\d+/)", str(rel["identifier"])):
                errors.append({"field": "metadata.related_identifiers",
                               "message": f"Not a valid persistent identifier: {rel['identifier']}"})
        if md.get("publication_date"):
            try:
                date.fromisoformat(str(md["publication_date"]))
            except ValueError:
                errors.append({"field": "metadata.publication_date", "message": "Not a valid date."})
        return errors

    def handle(self, method: str, path: str, query: dict, owner: str | None, body: bytes):
        """(status, JSON answer) for one request; ``owner`` None means no valid token."""
        if owner is None:
            return 401, {"status": 401, "message": "The server could not verify that you are "
                                                   "authorized to access the URL requested."}
        m = re.fullmatch(r"/api/files/([^/]+)/(.+)", path)
        if m:
            return self._bucket(method, m.group(1), unquote(m.group(2)), owner, body)
        if path.rstrip("/") == "/api/deposit/depositions":
            if method == "GET":
                mine = [d for d in self.depositions.values() if d.owner == owner]
                mine.sort(key=lambda d: d.id, reverse=True)
                size = int((query.get("size") or ["10"])[0])
                return 200, [self._json(d) for d in mine[:size]]
            if method == "POST":
                try:
                    data = json.loads(body or b"{}")
                except ValueError:
                    return 400, {"status": 400, "message": "Invalid JSON."}
                dep = self._new(owner)
                if data.get("metadata"):
                    dep.metadata = dict(data["metadata"])
                return 201, self._json(dep)
        m = re.fullmatch(r"/api/deposit/depositions/(\d+)(/.*)?", path)
        if not m:
            return 404, {"status": 404, "message": "The requested URL was not found on the server."}
        dep = self.depositions.get(int(m.group(1)))
        if dep is None:
            return 404, {"status": 404, "message": "PID does not exist."}
        if dep.owner != owner:
            return 403, {"status": 403, "message": "You don't have the permission to access the "
                                                   "requested resource."}
        rest = m.group(2) or ""
        if rest == "" and method == "GET":
            return 200, self._json(dep)
        if rest == "" and method == "PUT":
            if dep.submitted:
                return 400, {"status": 400, "message": "The deposition is published; use the edit "
                                                       "action first."}
            try:
                md = json.loads(body or b"{}").get("metadata")
            except (ValueError, AttributeError):
                return 400, {"status": 400, "message": "Invalid JSON."}
            errors = self._validate(md)
            if errors:
                return 400, {"status": 400, "message": "Validation error.", "errors": errors}
            dep.metadata = dict(md)
            return 200, self._json(dep)
        if rest == "/files" and method == "GET":
            return 200, [f.entry(self.url, dep.bucket) for f in dep.files.values()]
        fm = re.fullmatch(r"/files/([^/]+)", rest)
        if fm and method == "DELETE":
            if dep.submitted:
                return 403, {"status": 403, "message": "The record's files are locked."}
            for name, f in list(dep.files.items()):
                if f.id == fm.group(1):
                    del dep.files[name]
                    return 204, None
            return 404, {"status": 404, "message": "File does not exist."}
        if rest == "/actions/publish" and method == "POST":
            if dep.submitted:
                return 400, {"status": 400, "message": "The deposition is already published."}
            errors = self._validate(dep.metadata)
            if not dep.files:
                errors.append({"field": "files", "message": "Missing uploaded files."})
            if dep.parent is not None:
                prev = self.depositions[dep.parent]
                if {n: f.data for n, f in prev.files.items()} == {n: f.data for n, f in dep.files.items()}:
                    errors.append({"field": "files", "message": "The files are the same as the "
                                                                "previous version's."})
            if errors:
                return 400, {"status": 400, "message": "Validation error.", "errors": errors}
            dep.submitted = True
            dep.doi = f"10.5072/zenodo.{dep.id}"
            return 202, self._json(dep)
        if rest == "/actions/newversion" and method == "POST":
            if not dep.submitted:
                return 400, {"status": 400, "message": "Only a published record can get a new version."}
            drafts = [d for d in self.versions(dep.concept) if not d.submitted]
            if not drafts:
                latest = [d for d in self.versions(dep.concept) if d.submitted][-1]
                self._new(owner, dep.concept, latest)
            return 201, self._json(dep)
        return 405, {"status": 405, "message": "The method is not allowed for the requested URL."}

    def _bucket(self, method: str, bucket: str, name: str, owner: str, body: bytes):
        did = self.buckets.get(bucket)
        dep = self.depositions.get(did) if did is not None else None
        if dep is None:
            return 404, {"status": 404, "message": "Bucket does not exist."}
        if dep.owner != owner:
            return 403, {"status": 403, "message": "Not your bucket."}
        if dep.submitted:
            return 403, {"status": 403, "message": "Bucket is locked (the record is published)."}
        if method == "PUT":
            data = body
            if name in self.corrupt_on:
                self.corrupt_on.discard(name)
                data = bytes([body[0] ^ 0x55]) + body[1:] if body else b"\x55"
            stored = StoredFile(str(uuid.uuid4()), name, data)
            if name in self.misreport_on:
                self.misreport_on.discard(name)
                stored.listed_md5 = hashlib.md5(b"not " + data).hexdigest()
            dep.files[name] = stored
            return 201, {"key": name, "size": len(data), "checksum": "md5:" + hashlib.md5(data).hexdigest(),
                         "mimetype": "application/octet-stream", "version_id": str(uuid.uuid4()),
                         "links": {"self": f"{self.url}/api/files/{bucket}/{name}"}}
        if method == "DELETE":
            if dep.files.pop(name, None) is None:
                return 404, {"status": 404, "message": "Object does not exist."}
            return 204, None
        return 405, {"status": 405, "message": "Method not allowed."}


class _Handler(BaseHTTPRequestHandler):
    zenodo: FakeZenodo
    protocol_version = "HTTP/1.1"
    timeout = 15

    def log_message(self, format, *args):  # noqa: A002 - keep the test output quiet
        pass

    def _owner(self, query: dict) -> str | None:
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.startswith("Bearer ") else (query.get("access_token") or [""])[0]
        return self.zenodo.tokens.get(token)

    def _serve(self):
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        name = unquote(parts.path.rsplit("/", 1)[-1])
        if self.command == "PUT" and parts.path.startswith("/api/files/"):
            with self.zenodo.lock:
                drop = name in self.zenodo.drop_on
                self.zenodo.drop_on.discard(name)
            if drop:
                self.rfile.read(max(1, length // 2))
                with self.zenodo.lock:
                    self.zenodo.requests.append((self.command, parts.path, 0))
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return
        body = self.rfile.read(length) if length else b""
        with self.zenodo.lock:
            status, payload = self.zenodo.handle(self.command, parts.path, query, self._owner(query), body)
            self.zenodo.requests.append((self.command, parts.path, status))
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815
