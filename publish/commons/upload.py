"""Uploading a bundle's acta photos to a wiki, resumably and without duplicates, then checking
every file's SHA-1 there.

The wiki is the record of what was done: before each upload the photo's SHA-1 is looked up
(``list=allimages&aisha1=``). Found under its own name, it was uploaded by an earlier run
(``there``: an interrupted run resumes with nothing sent twice); found under another name, it is
a duplicate someone else uploaded (``duplicate``: skipped, as Commons refuses duplicates); its
name taken by another file is a ``name-taken`` conflict (skipped, listed). Uploads never ignore
the wiki's warnings. Afterwards the SHA-1 the wiki reports for every photo's file is compared
with the bundle's.
"""
from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from archive import election as election_mod
from archive.places import Places
from publish.internet_archive.bundle import read_bundle

from .errors import Sha1Mismatch, UploadRefused
from .page import PageStyle, categories, category_parents, file_name, wikitext
from .photos import ActaPhoto, PhotoReader, acta_photos
from .wiki import Wiki


@dataclass
class Outcome:
    photo: ActaPhoto
    name: str                  # the file's title, without File:
    status: str                # sent | there | duplicate | name-taken | planned | refused
    detail: str = ""
    sha1: str = ""
    target: str = ""           # for a duplicate: the wiki's file with the same content

    @property
    def wiki_name(self) -> str:
        return self.target or self.name


@dataclass
class CommonsResult:
    outcomes: list[Outcome] = field(default_factory=list)
    categories_created: list[str] = field(default_factory=list)
    checked: int = 0
    stopped_at_limit: bool = False

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


class CommonsProgress:
    """Hooks for showing progress; the default shows nothing."""

    def begin(self, total: int) -> None: ...
    def outcome(self, o: Outcome) -> None: ...
    def finish(self) -> None: ...
    def checking(self, files: int) -> None: ...


def _decide(wiki: Wiki | None, name: str, sha1: str) -> tuple[str, str]:
    """(status, detail) for a photo before any upload: there / duplicate / name-taken / to send."""
    if wiki is None:
        return "planned", ""
    same = wiki.files_with_sha1(sha1)
    if name.replace(" ", "_") in {n.replace(" ", "_") for n in same}:
        return "there", ""
    if same:
        return "duplicate", same[0]
    other = wiki.file_sha1(name)
    if other is not None:
        return "name-taken", f"File:{name} exists with another file (SHA-1 {other})"
    return "send", ""


def upload_photos(bundle_dir: str | os.PathLike, *, api: str, wiki: Wiki | None = None,
                  user: str | None = None, password: str | None = None, category: str | None = None,
                  licence: str | None = None, places: Places | None = None, dry_run: bool = False,
                  limit: int | None = None, progress: CommonsProgress | None = None,
                  on_style: Callable[[PageStyle], None] | None = None, maxlag: int = 5,
                  pause: float = 0.0, user_agent: str = "testigo") -> CommonsResult:
    """Upload every acta photo of the bundle at ``bundle_dir`` to the wiki at ``api``.

    ``limit``: upload at most this many new files (already present ones do not count).
    ``dry_run``: no login and no change; the wiki is still asked which photos it has, when it
    can be reached. Raises :class:`Sha1Mismatch` when a file on the wiki is not the bundle's.
    """
    progress = progress or CommonsProgress()
    bundle = read_bundle(bundle_dir)                 # a damaged bundle is never published
    t = bundle.datapackage.get("testigo") or {}
    election = election_mod.load(str(t.get("election") or election_mod.DEFAULT_ELECTION))
    style = PageStyle.from_election(election.meta, category=category, licence=licence)
    if on_style:
        on_style(style)
    photos = acta_photos(bundle.root)
    reader = PhotoReader(bundle.root)
    if wiki is None:
        wiki = Wiki(api, maxlag=maxlag, pause=pause, user_agent=user_agent)
    if not dry_run:
        wiki.login(user, password)
    result = CommonsResult()
    name_of = bundle.root.name
    progress.begin(len(photos))
    sent = 0
    try:
        for photo in photos:
            data = reader.read(photo)
            sha1 = hashlib.sha1(data).hexdigest()
            name = file_name(photo, style)
            status, detail = _decide(wiki, name, sha1)
            if status == "send":
                if dry_run:
                    status = "planned"
                elif limit is not None and sent >= limit:
                    result.stopped_at_limit = True
                    break
                else:
                    text = wikitext(photo, style, bundle_name=name_of, manifest_sha256=bundle.manifest_sha256,
                                    places=places)
                    answer = wiki.upload(io.BytesIO(data), name, text,
                                         f"testigo: acta of mesa {photo.mesa_id} from bundle {name_of}")
                    status, detail = _answer(answer, name)
                    sent += status == "sent"
            target = ""
            if status == "duplicate":
                target, detail = detail, f"the same file is already on the wiki as File:{detail}"
            o = Outcome(photo, name, status, detail, sha1, target)
            result.outcomes.append(o)
            progress.outcome(o)
    finally:
        progress.finish()
    if dry_run:
        return result
    _make_categories(wiki, result, style)
    progress.checking(sum(o.status in _CHECKED for o in result.outcomes))
    result.checked = _check(wiki, result)
    return result


def _answer(answer: dict, name: str) -> tuple[str, str]:
    if answer.get("result") == "Success":
        return "sent", ""
    warnings = answer.get("warnings") or {}
    if "duplicate" in warnings:
        dup = warnings["duplicate"]
        dup = dup[0] if isinstance(dup, list) and dup else dup
        return "duplicate", str(dup)
    if "exists" in warnings:
        return "name-taken", f"File:{name} already exists"
    if "duplicate-archive" in warnings:
        return "refused", f"a deleted file had the same content ({warnings['duplicate-archive']}); not uploaded again"
    raise UploadRefused(f"The wiki did not take File:{name} ({answer.get('result')}: {warnings or answer}).")


def _make_categories(wiki: Wiki, result: CommonsResult, style: PageStyle) -> None:
    """Create the category pages (estado in the election's, municipio in its estado's) that do
    not exist yet; existing ones are never edited."""
    parents: dict[str, str] = {}
    for o in result.outcomes:
        if o.status in ("sent", "there"):
            parents.update(category_parents(o.photo, style))
    wanted = {style.category: None, **parents}
    for cat, parent in wanted.items():
        text = (f"Photos of the tally sheets (actas) of the {style.election_title_en}, published by "
                "testigo with each acta's numbers and checksums.") if parent is None else f"[[Category:{parent}]]"
        if wiki.create_page(f"Category:{cat}", text, "testigo: category for acta photos"):
            result.categories_created.append(cat)


# A file under the photo's own name (a name with its SHA-256 in it) holding something else is
# this photo's file damaged or overwritten: it is checked too, and fails the check.
_CHECKED = ("sent", "there", "duplicate", "name-taken")


def _check(wiki: Wiki, result: CommonsResult) -> int:
    differences = []
    checked = 0
    for o in result.outcomes:
        if o.status not in _CHECKED:
            continue
        target = o.wiki_name
        got = wiki.file_sha1(target)
        checked += 1
        if got != o.sha1:
            differences.append(f"File:{target} (mesa {o.photo.mesa_id}): the wiki has SHA-1 "
                               f"{got or '(no file)'}, the bundle's photo {o.sha1}")
    if differences:
        raise Sha1Mismatch(differences)
    return checked


__all__ = ["CommonsProgress", "CommonsResult", "Outcome", "categories", "upload_photos"]
