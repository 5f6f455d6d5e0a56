"""Talking to Zenodo's deposit REST API with ``requests``: depositions, their bucket, actions.

The endpoints (under ``<url>/api``): ``GET/POST deposit/depositions``, ``GET/PUT
deposit/depositions/<id>``, ``DELETE deposit/depositions/<id>/files/<file id>``, ``POST
deposit/depositions/<id>/actions/{publish,newversion}``, and the bucket link a deposition
carries (``PUT <bucket>/<name>`` with the file as the body). The token is never an argument
of the command line: it comes from ``ZENODO_TOKEN`` (or ``ZENODO_ACCESS_TOKEN``).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import requests

from publish.internet_archive.client import short_reason

from .errors import MissingToken, ZenodoRefused, ZenodoUnreachable

ZENODO_URL = "https://zenodo.org"
SANDBOX_URL = "https://sandbox.zenodo.org"
TOKEN_VARIABLES = ("ZENODO_TOKEN", "ZENODO_ACCESS_TOKEN")

SETUP_HELP = (
    "Make a personal access token on Zenodo (log in, then Applications > Personal access tokens >\n"
    "New token, with the scopes deposit:write and deposit:actions) and put it in the environment:\n"
    "  export ZENODO_TOKEN=...\n"
    "For a trial, use the sandbox (--url https://sandbox.zenodo.org) with a token made there.\n"
    "The token is never given on the command line.")


def token_from_environment(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    for name in TOKEN_VARIABLES:
        if env.get(name, "").strip():
            return env[name].strip()
    raise MissingToken(f"No Zenodo token was found in {' or '.join(TOKEN_VARIABLES)}.\n{SETUP_HELP}")


class _Reader:
    """A file object that reports each block read while ``requests`` streams it."""

    def __init__(self, fh, on_read: Callable[[int], None], size: int):
        self._fh, self._on_read, self.len = fh, on_read, size

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        if data:
            self._on_read(len(data))
        return data


class ZenodoClient:
    """One Zenodo (or sandbox, or test server) with one token."""

    def __init__(self, url: str = ZENODO_URL, token: str | None = None, *, timeout: float = 120,
                 session: requests.Session | None = None):
        self.url = url.rstrip("/")
        self.api = self.url + "/api"
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}" if token else ""
        self.session.headers["Accept"] = "application/json"

    # --- plumbing ------------------------------------------------------------------------
    def _call(self, method: str, url: str, what: str, *, expect=(200, 201, 202, 204), **kw):
        if not url.startswith(("http://", "https://")):
            url = self.api + url
        try:
            r = self.session.request(method, url, timeout=self.timeout, **kw)
        except (requests.RequestException, OSError) as exc:
            raise ZenodoUnreachable(
                f"The connection to {self.url} broke while {what} ({short_reason(exc)}). Check "
                "your connection and run the same command again: it continues where it "
                "stopped.") from exc
        if r.status_code not in expect:
            raise self._refusal(r, what)
        if r.status_code == 204 or not r.content:
            return {}
        try:
            return r.json()
        except ValueError as exc:
            raise ZenodoRefused(f"{self.url} answered {what} with something that is not JSON "
                                f"({r.status_code}): is --url a Zenodo?", r.status_code) from exc

    def _refusal(self, r: requests.Response, what: str) -> ZenodoRefused:
        try:
            body = r.json()
        except ValueError:
            body = {}
        message = str(body.get("message") or r.reason or "") if isinstance(body, dict) else ""
        errors = body.get("errors") if isinstance(body, dict) else None
        errors = errors if isinstance(errors, list) else []
        details = "; ".join(f"{e.get('field', '?')}: {e.get('message') or e.get('messages')}"
                            for e in errors if isinstance(e, dict))
        text = f"Zenodo refused {what} ({r.status_code}: {message}{' — ' + details if details else ''})."
        if r.status_code in (401, 403):
            text += (" Check the token in ZENODO_TOKEN (made on this same Zenodo, with the scopes "
                     "deposit:write and deposit:actions) and that the deposition is yours.")
        elif r.status_code == 429 or r.status_code >= 500:
            text += " Zenodo is busy: wait a few minutes, then run the same command again."
        return ZenodoRefused(text, r.status_code, errors)

    # --- depositions ---------------------------------------------------------------------
    def list_depositions(self, size: int = 100) -> list[dict]:
        """The token owner's depositions, newest first (drafts and published)."""
        out = self._call("GET", "/deposit/depositions", "listing your depositions",
                         params={"size": size, "sort": "mostrecent"})
        return out if isinstance(out, list) else []

    def get(self, deposition_id) -> dict:
        return self._call("GET", f"/deposit/depositions/{deposition_id}",
                          f"reading deposition {deposition_id}")

    def create(self) -> dict:
        return self._call("POST", "/deposit/depositions", "creating a deposition", json={})

    def update_metadata(self, deposition_id, metadata: dict) -> dict:
        return self._call("PUT", f"/deposit/depositions/{deposition_id}",
                          f"the metadata of deposition {deposition_id}", json={"metadata": metadata})

    def new_version(self, deposition_id) -> dict:
        """A new version draft of the record ``deposition_id``'s concept (the existing one, if a
        draft is open); returns the draft."""
        answer = self._call("POST", f"/deposit/depositions/{deposition_id}/actions/newversion",
                            f"a new version of record {deposition_id}")
        draft_url = (answer.get("links") or {}).get("latest_draft")
        if not draft_url:
            raise ZenodoRefused(f"Zenodo made no new version draft of {deposition_id} "
                                "(its answer has no latest_draft link).")
        return self._call("GET", draft_url, "reading the new version draft")

    def publish(self, deposition_id) -> dict:
        return self._call("POST", f"/deposit/depositions/{deposition_id}/actions/publish",
                          f"publishing deposition {deposition_id}")

    # --- files ---------------------------------------------------------------------------
    def files(self, deposition_id) -> list[dict]:
        return self._call("GET", f"/deposit/depositions/{deposition_id}/files",
                          f"listing the files of deposition {deposition_id}") or []

    def delete_file(self, deposition_id, file_id: str, name: str) -> None:
        self._call("DELETE", f"/deposit/depositions/{deposition_id}/files/{file_id}",
                   f"deleting {name} from deposition {deposition_id}")

    def put_file(self, bucket_url: str, name: str, fh, size: int,
                 on_read: Callable[[int], None] = lambda n: None) -> dict:
        """Stream one file into the deposition's bucket; returns Zenodo's answer (its
        ``checksum`` is ``md5:<hex>`` of what it stored)."""
        return self._call("PUT", f"{bucket_url.rstrip('/')}/{requests.utils.quote(name)}",
                          f"sending {name}", data=_Reader(fh, on_read, size),
                          headers={"Content-Type": "application/octet-stream",
                                   "Content-Length": str(size)})
