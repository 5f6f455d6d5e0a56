"""Check acta photos against an archive: a bundle on disk or a public site (or its static mirror).

Each photo's QR is read with the project's own decoder (:mod:`archive.reading`) and its numbers
compared with the archived acta of that mesa by :func:`archive.comparison.check_mesa`, the same
rule /comprobar applies. The archived side is always the mesa's ``/mesa/<id>.json``: from a bundle
it is answered in-process by the site's own code (no server, nothing listening), from a URL it is
fetched over HTTP, so a bundle, a site and a mirror are compared the same way.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from archive import comparison, reading
from archive.election import Election
from archive.errors import TestigoError

STATUSES = ("match", "mismatch", "not_in_archive", "unreadable")


class CheckError(TestigoError):
    """The archive to check against cannot be read (no such bundle, site unreachable, bad answer)."""


@dataclass
class PhotoCheck:
    """The outcome for one photo.

    status: ``match``, ``mismatch``, ``not_in_archive`` (code ``outside_registry``: a mesa the
    registry lacks, not archived either; ``not_archived``: no acta of that mesa yet) or ``unreadable`` (code and reason from
    the decoder: no QR read, not an acta's QR, not an image).
    """

    file: str
    status: str
    mesa_id: str | None = None
    code: str | None = None
    reason: str | None = None
    qr_text: str | None = None
    differences: list[dict] = field(default_factory=list)   # the fields that differ
    compared: int = 0                                        # how many fields were compared
    compared_with: dict | None = None                        # the archived acta (id, source, ...)

    def to_dict(self) -> dict:
        return asdict(self)


class BundleArchive:
    """A bundle folder, read through the site's own pages in-process (Datasette's internal client)."""

    def __init__(self, bundle_dir: str | Path):
        from ..site.app import check_database
        from ..site.server import InProcessClient, make_datasette
        ds = make_datasette(bundle_dir, response_cache_mb=0)
        check_database(ds.testigo_site.bundle)
        self.name = str(bundle_dir)
        self.client = InProcessClient(ds)

    def mesa(self, mesa_id: str) -> dict | None:
        r = self.client.get(f"/mesa/{mesa_id}.json")
        return _mesa_answer(r.status_code, r.text, f"{self.name} /mesa/{mesa_id}.json")

    def close(self) -> None:
        self.client.close()


class SiteArchive:
    """A testigo site or its static mirror, by URL: ``<url>/mesa/<id>.json``."""

    def __init__(self, url: str, timeout: float = 30):
        import requests
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "testigo-check"
        self.timeout = timeout

    def mesa(self, mesa_id: str) -> dict | None:
        import requests
        where = f"{self.url}/mesa/{mesa_id}.json"
        try:
            r = self.session.get(where, timeout=self.timeout)
        except requests.RequestException as e:
            raise CheckError(f"could not reach {where}: {e}; check the address and your connection")
        return _mesa_answer(r.status_code, r.text, where)

    def close(self) -> None:
        self.session.close()


def _mesa_answer(status: int, text: str, where: str) -> dict | None:
    """The mesa JSON, None for a 404 (not in the registry), CheckError for anything else."""
    if status == 404:
        return None
    if status != 200:
        raise CheckError(f"{where} answered HTTP {status}; is this a testigo site or bundle?")
    try:
        data = json.loads(text)
    except ValueError:
        raise CheckError(f"{where} did not answer JSON; is this a testigo site or bundle?")
    if not isinstance(data, dict) or "actas" not in data:
        raise CheckError(f"{where} is not a testigo mesa answer (no 'actas')")
    return data


def open_archive(bundle: str | Path | None = None, site: str | None = None, pubkey=None):
    """A BundleArchive or SiteArchive (exactly one of ``bundle`` / ``site``). A bundle's database is
    opened only once its signature (``pubkey``, else the key shipped inside), its checksum and
    its schema hold (``archive.verify.check_before_opening``): a crafted bundle is never run."""
    if (bundle is None) == (site is None):
        raise CheckError("name the archive to check against: a bundle folder or a site URL (one of them)")
    if bundle is not None:
        if not Path(bundle).is_dir():
            raise CheckError(f"{bundle}: no such bundle folder")
        from archive.verify import check_before_opening
        problems = check_before_opening(bundle, pubkey)
        if problems:
            if len(problems) == 1 and "holds no .db file" in problems[0]:
                raise CheckError(problems[0])
            raise CheckError(f"{bundle} is refused, its database was not opened: {'; '.join(problems[:3])}; "
                             "get the bundle again from its publisher and check it with `testigo verify`")
        return BundleArchive(bundle)
    if not site.startswith(("http://", "https://")):
        raise CheckError(f"{site}: give the site as a URL, e.g. https://example.org")
    return SiteArchive(site)


def check_photo(data: bytes, name: str, archive, election: Election) -> PhotoCheck:
    """Read one photo's QR and compare it with the archived acta of its mesa."""
    r = reading.decode_bytes(data, election, name)
    if r.status != "ok":
        return PhotoCheck(name, "unreadable", code=r.code or r.status, reason=r.reason, qr_text=r.qr_text)
    acta = r.acta
    fields = comparison.fields([(c.code, c.name) for c in election.candidates],
                               [(k.position, k.candidate) for k in election.cards])
    mesa = archive.mesa(acta.mesa_key)
    found = comparison.check_mesa(fields, comparison.reading_numbers(acta), mesa, acta.payload)
    out = PhotoCheck(name, found["result"], acta.mesa_key, qr_text=r.qr_text, compared=len(found["fields"]),
                     compared_with=found["compared_with"])
    if found["result"] in ("unknown_mesa", "not_archived"):
        # a valid acta QR of a mesa the archive lacks names a mesa outside the registry (issue 9)
        out.status = "not_in_archive"
        out.code = "outside_registry" if found["result"] == "unknown_mesa" else "not_archived"
        out.reason = (f"mesa {acta.mesa_key} is outside the registry (the published per-mesa sheet does not "
                      "list it) and the archive has no acta of it yet; send the photo in: it is kept and "
                      "counted apart" if out.code == "outside_registry"
                      else f"the archive has no acta of mesa {acta.mesa_key} yet")
    elif mesa and (mesa.get("mesa") or {}).get("outside_registry"):
        out.reason = f"mesa {acta.mesa_key} is outside the registry: its acta is counted apart"
    out.differences = [{k: row[k] for k in ("field", "en", "yours", "archived")}
                       for row in found["fields"] if not row["same"]]
    return out


def check_photos(paths: Iterable[str | Path], archive, election: Election) -> Iterator[PhotoCheck]:
    """:func:`check_photo` for each file, in order (a file that cannot be read is ``unreadable``)."""
    for p in paths:
        try:
            data = Path(p).read_bytes()
        except OSError as e:
            yield PhotoCheck(str(p), "unreadable", code="unreadable_file", reason=f"cannot read the file: {e}")
            continue
        yield check_photo(data, str(p), archive, election)
