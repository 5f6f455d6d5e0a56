"""The archive items' metadata, taken from the bundle's ``datapackage.json``.

Every item of a bundle carries the bundle's identity (``testigo_manifest_sha256``, the key
fingerprint), so a re-run recognises its own items and refuses anybody else's. In a split upload
the top item lists its parts (``testigo_parts``) and each part names its top item
(``testigo_part_of``); both record the limits the split was made with.
"""
from __future__ import annotations

from .bundle import Bundle
from .client import ARCHIVE_DETAILS_URL
from .items import LISTING, ItemLayout, PlannedItem, human_size

# Licence names as Frictionless writes them -> the URL archive.org expects in `licenseurl`.
LICENSE_URLS = {
    "cc0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "cc-by-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "cc-by-sa-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "odbl-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
    "odc-by-1.0": "https://opendatacommons.org/licenses/by/1-0/",
    "pddl-1.0": "https://opendatacommons.org/licenses/pddl/1-0/",
}


def _license_url(licenses) -> str | None:
    for lic in licenses or []:
        if not isinstance(lic, dict):
            continue
        path = str(lic.get("path") or "")
        if path.startswith(("https://", "http://")):
            return path
        url = LICENSE_URLS.get(str(lic.get("name") or "").lower())
        if url:
            return url
    return None


def item_metadata(bundle: Bundle, collection: str | None = None, layout: ItemLayout | None = None,
                  item: PlannedItem | None = None) -> dict[str, str | list[str]]:
    """The metadata of one item: the whole bundle's, or (``layout`` split) the top item's or a part's."""
    dp = bundle.datapackage
    t = dp.get("testigo") or {}
    contributors = [c for c in dp.get("contributors") or [] if isinstance(c, dict)]
    creators = [str(c.get("title")) for c in contributors
                if c.get("title") and c.get("role", "author") in ("author", "creator")]
    licenses = [x for x in dp.get("licenses") or [] if isinstance(x, dict)]
    md: dict[str, str | list[str]] = {
        "mediatype": "data",
        "title": str(dp.get("title") or dp.get("name") or bundle.root.name),
        "description": str(dp.get("description") or ""),
        "creator": creators if len(creators) > 1 else (creators[0] if creators else "testigo"),
        "date": str(t.get("date") or ""),
        "subject": ([str(k) for k in dp.get("keywords") or [] if k]
                    or [x for x in ("testigo", str(t.get("election") or ""), "actas") if x]),
        "language": str(t.get("language") or dp.get("language") or "spa"),
        "licenseurl": _license_url(licenses) or "",
        "rights": str(licenses[0].get("title") or licenses[0].get("name") or "") if licenses else "",
        "testigo_election": str(t.get("election") or ""),
        "testigo_public_key_fingerprint": str(t.get("public_key_fingerprint") or ""),
        "testigo_manifest_sha256": bundle.manifest_sha256,
    }
    if collection:
        md["collection"] = collection
    if layout is not None and layout.split:
        md.update(_split_metadata(layout, item or layout.top, str(md["title"]), str(md["description"])))
    return {k: v for k, v in md.items() if v}


def _split_metadata(layout: ItemLayout, item: PlannedItem, title: str,
                    description: str) -> dict[str, str | list[str]]:
    parts = layout.parts
    top_url = f"{ARCHIVE_DETAILS_URL}{layout.identifier}"
    md: dict[str, str | list[str]] = {"testigo_max_files": str(layout.limits.max_files),
                                      "testigo_max_bytes": str(layout.limits.max_bytes)}
    if item.role == "top":
        md["testigo_parts"] = [p.identifier for p in parts]
        md["description"] = (
            f"{description}\n\nThis bundle is larger than one archive.org item may be, so its files "
            f"are spread over this item and {len(parts)} parts: "
            + ", ".join(f"{ARCHIVE_DETAILS_URL}{p.identifier}" for p in parts)
            + f". This item holds the signed SHA256SUMS (the SHA-256 of every file), its signature, "
            f"the public key and {LISTING}, which says which part holds which file.").strip()
    else:
        md["title"] = f"{title} (part {item.number} of {len(parts)})"
        md["testigo_part_of"] = layout.identifier
        md["testigo_part"] = str(item.number)
        md["description"] = (
            f"Part {item.number} of {len(parts)} of the testigo bundle {top_url}, which lists every "
            f"part ({LISTING}) and holds the signed SHA256SUMS that proves each file. This part holds "
            f"{len(item.keys)} file(s), {human_size(item.bytes)}.\n\n{description}").strip()
    return md
