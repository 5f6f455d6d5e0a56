"""Where a bundle is published: its Internet Archive items, Zenodo DOI, Commons category, magnet.

The publisher keeps this in a small JSON file *beside* the bundle (never inside it: the bundle's
bytes must not depend on where copies went), by default ``<bundle>.places.json`` next to the
bundle folder, e.g. ``out/bundle.places.json`` for ``out/bundle``::

    {
      "internet_archive": ["testigo-ve-2024-20240801"],
      "zenodo_doi": "10.5281/zenodo.1234567",
      "zenodo_concept_doi": "10.5281/zenodo.1234566",
      "commons_category": "Actas de escrutinio de la elección presidencial de Venezuela de 2024",
      "magnet": "magnet:?xt=urn:btih:..."
    }

Every key is optional. ``testigo zenodo`` writes the DOIs into it after publishing; ``testigo
build --places``, ``serve --places`` and ``mirror --places`` read it, so the bundle's README and
the site's downloads page list each place (the same file always gives the same README, so
bundles stay byte-identical); ``testigo zenodo`` and ``testigo commons`` read it for the
related identifiers and the file pages.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .errors import TestigoError

SUFFIX = ".places.json"
ARCHIVE_DETAILS_URL = "https://archive.org/details/"
COMMONS_CATEGORY_URL = "https://commons.wikimedia.org/wiki/Category:"
DOI_URL = "https://doi.org/"
_DOI = re.compile(r"^10\.\d{4,9}/\S+$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,99}$")


class PlacesError(TestigoError):
    """The places file is unreadable or holds a value that cannot be a place of publication."""


@dataclass(frozen=True)
class Places:
    internet_archive: tuple[str, ...] = ()
    zenodo_doi: str | None = None
    zenodo_concept_doi: str | None = None
    commons_category: str | None = None
    magnet: str | None = None
    extra: dict = field(default_factory=dict, compare=False)  # keys of a newer testigo, kept on save

    def __bool__(self) -> bool:
        return bool(self.internet_archive or self.zenodo_doi or self.zenodo_concept_doi
                    or self.commons_category or self.magnet)

    def links(self) -> list[tuple[str, str, str]]:
        """(kind, label, url) of every place, in a fixed order; the magnet's url is the magnet."""
        out = [("internet_archive", f"Internet Archive: {i}", ARCHIVE_DETAILS_URL + i)
               for i in self.internet_archive]
        if self.zenodo_doi:
            out.append(("zenodo", f"Zenodo, esta versión / this version: DOI {self.zenodo_doi}", DOI_URL + self.zenodo_doi))
        if self.zenodo_concept_doi:
            out.append(("zenodo_concept", f"Zenodo, todas las versiones / every version: DOI {self.zenodo_concept_doi}",
                        DOI_URL + self.zenodo_concept_doi))
        if self.commons_category:
            out.append(("commons", f"Wikimedia Commons: Category:{self.commons_category}",
                        COMMONS_CATEGORY_URL + self.commons_category.replace(" ", "_")))
        if self.magnet:
            out.append(("magnet", "BitTorrent (magnet)", self.magnet))
        return out

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "extra" and v}
        if "internet_archive" in d:
            d["internet_archive"] = list(d["internet_archive"])
        return {**self.extra, **d}


def default_path(bundle: str | os.PathLike) -> Path:
    """``<bundle>.places.json`` beside the bundle folder."""
    b = Path(bundle)
    return b.parent / f"{b.name}{SUFFIX}"


def _text(data: dict, key: str, path: Path) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PlacesError(f"{path}: {key!r} must be a text, not {type(value).__name__}.")
    return value.strip()


def parse(data, path: Path) -> Places:
    if not isinstance(data, dict):
        raise PlacesError(f"{path} must hold one JSON object (see `testigo zenodo --help`).")
    ia = data.get("internet_archive") or []
    if isinstance(ia, str):
        ia = [ia]
    if not isinstance(ia, list) or not all(isinstance(i, str) and _IDENTIFIER.match(i) for i in ia):
        raise PlacesError(f"{path}: 'internet_archive' must be a list of archive.org identifiers, "
                          f"e.g. [\"testigo-ve-2024-20240801\"]; it is {ia!r}.")
    places = Places(tuple(ia), _text(data, "zenodo_doi", path), _text(data, "zenodo_concept_doi", path),
                    _text(data, "commons_category", path), _text(data, "magnet", path),
                    {k: v for k, v in data.items() if k not in Places.__dataclass_fields__})
    for key in ("zenodo_doi", "zenodo_concept_doi"):
        value = getattr(places, key)
        if value and not _DOI.match(value):
            raise PlacesError(f"{path}: {key!r} {value!r} is not a DOI (10.NNNN/...).")
    if places.magnet and not places.magnet.startswith("magnet:?"):
        raise PlacesError(f"{path}: 'magnet' must be a magnet link (magnet:?xt=urn:btih:...).")
    if places.commons_category and places.commons_category.lower().startswith("category:"):
        places = replace(places, commons_category=places.commons_category.split(":", 1)[1].strip())
    return places


def load(path: str | os.PathLike | None, *, required: bool = True) -> Places:
    """The places in ``path``; an empty :class:`Places` when there is no file and ``required`` is
    false (the default file beside a bundle need not exist)."""
    if path is None:
        return Places()
    path = Path(path)
    if not path.is_file():
        if required:
            raise PlacesError(f"The places file {path} does not exist. Write it (see "
                              "README, 'Where the bundle is published') or leave the option out.")
        return Places()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlacesError(f"Could not read the places file {path} ({exc}). It must be JSON.") from exc
    return parse(data, path)


def save(path: str | os.PathLike, places: Places) -> None:
    """Write the file atomically (sorted keys: the same places give the same bytes)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(places.to_json(), ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)
