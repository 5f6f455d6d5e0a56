"""A photo's file name and file page on the wiki: what a reader needs to understand and trust it.

The page says, in Spanish and English, which mesa, centre and place the acta is of, its numbers,
the SHA-256 of the file and of the photo as received, the bundle it comes from (and where else
that bundle is published), the licence and its reasoning, and puts the file in a category per
estado and per municipio. Names, licence and categories come from the election definition
(``"commons"`` in ``datasets/<election>/election.json``), which options may override.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from archive.places import Places

from .photos import ActaPhoto

_UNSAFE = re.compile(r"[#<>\[\]|{}:/\\]")


@dataclass(frozen=True)
class PageStyle:
    """The wiki-facing choices for one election (the definition's ``commons`` block)."""

    category: str
    licence: str
    licence_note: str = ""
    estado_category: str = "{category} in {estado}"
    municipio_category: str = "{category} in {municipio}, {estado}"
    unplaced_category: str = "{category} outside the registry"
    file_name: str = "Acta mesa {mesa} {sha256_short}.{ext}"
    election_title: str = ""
    election_title_en: str = ""
    date: str = ""
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_election(cls, meta: dict, *, category: str | None = None,
                      licence: str | None = None) -> "PageStyle":
        c = dict(meta.get("commons") or {})
        lic = licence or c.get("licence") or "{{Cc-zero}}"
        if not lic.lstrip().startswith("{{"):
            lic = "{{" + lic.strip() + "}}"
        return cls(category=category or c.get("category") or f"testigo {meta.get('id', '')}".strip(),
                   licence=lic, licence_note="" if licence else str(c.get("licence_note") or ""),
                   estado_category=c.get("estado_category", cls.estado_category),
                   municipio_category=c.get("municipio_category", cls.municipio_category),
                   unplaced_category=c.get("unplaced_category", cls.unplaced_category),
                   file_name=c.get("file_name", cls.file_name),
                   election_title=str(meta.get("title") or ""),
                   election_title_en=str(meta.get("title_en") or ""), date=str(meta.get("date") or ""))


def _clean(text: str) -> str:
    """A text usable in a page title: no characters MediaWiki forbids, single spaces."""
    return re.sub(r"\s+", " ", _UNSAFE.sub("-", text)).strip(" .-")


def place_names(photo: ActaPhoto) -> dict[str, str]:
    return {"estado": _clean(photo.estado or ""), "municipio": _clean(photo.municipio or ""),
            "parroquia": _clean(photo.parroquia or "")}


def file_name(photo: ActaPhoto, style: PageStyle) -> str:
    """The file's title without the ``File:`` prefix; the same photo always gets the same name."""
    name = style.file_name.format(mesa=photo.mesa_id, sha256=photo.sha256, sha256_short=photo.sha256[:12],
                                  ext=photo.ext, centro=photo.centro)
    return _clean(name)


def categories(photo: ActaPhoto, style: PageStyle) -> list[str]:
    """The file's categories (without ``Category:``): the estado's and the municipio's."""
    p = place_names(photo)
    if not p["estado"]:
        return [_clean(style.unplaced_category.format(category=style.category))]
    out = [_clean(style.estado_category.format(category=style.category, **p))]
    if p["municipio"]:
        out.append(_clean(style.municipio_category.format(category=style.category, **p)))
    return out


def category_parents(photo: ActaPhoto, style: PageStyle) -> dict[str, str]:
    """Each category of the photo -> its parent (municipio -> estado -> the election's)."""
    cats = categories(photo, style)
    parents = {cats[0]: style.category}
    if len(cats) > 1:
        parents[cats[1]] = cats[0]
    return parents


def _numbers(photo: ActaPhoto) -> str:
    blocks = []
    for r in photo.readings:
        state = {"ok": "", "duplicate": " — lectura duplicada / duplicate reading",
                 "conflict": " — EN CONFLICTO con otra lectura / IN CONFLICT with another reading"}.get(r.status, "")
        counted = "contada / counted" if r.counted else "no contada / not counted"
        rows = "".join(f"\n|-\n| {name} ({code}) || {votes:,}" for code, name, votes in r.votes)
        extra = ""
        if r.validos is not None:
            extra += f"\n|-\n! Válidos / Valid || {r.validos:,}"
        if r.nulos is not None:
            extra += f"\n|-\n! Nulos / Null || {r.nulos:,}"
        who = f"; {r.provenance}" if r.provenance and r.provenance != "own" else ""
        blocks.append(f"Lectura / reading {r.acta_id} ({r.source}{who}; {counted}){state}:\n"
                      "{| class=\"wikitable\"\n! Candidato / Candidate !! Votos / Votes" + rows + extra + "\n|}")
    return "\n\n".join(blocks)


def wikitext(photo: ActaPhoto, style: PageStyle, *, bundle_name: str, manifest_sha256: str,
             places: Places | None = None) -> str:
    """The whole file page."""
    places = places or Places()
    p = place_names(photo)
    where_es = ", ".join(x for x in (p["parroquia"], p["municipio"], p["estado"]) if x) or \
        "centro fuera del registro, sin lugar conocido"
    where_en = ", ".join(x for x in (p["parroquia"], p["municipio"], p["estado"]) if x) or \
        "a centre outside the registry, place unknown"
    outside_es = " La mesa no está en el registro publicado (se cuenta aparte)." if photo.outside_registry else ""
    outside_en = " The mesa is not in the published registry (counted apart)." if photo.outside_registry else ""
    also = "".join(f"\n* {label}: {url}" for _kind, label, url in places.links())
    note = f"\n\n{style.licence_note}" if style.licence_note else ""
    cats = "\n".join(f"[[Category:{c}]]" for c in categories(photo, style))
    return f"""== Descripción / Description ==
{{{{Information
|description={{{{es|1=Acta de escrutinio de la mesa {photo.mesa} del centro {photo.centro} ({where_es}), {style.election_title}. Foto enviada por un ciudadano voluntario y verificada por testigo (código QR leído y validado).{outside_es}}}}}
{{{{en|1=Tally sheet (acta) of mesa {photo.mesa} of voting centre {photo.centro} ({where_en}), {style.election_title_en}. Photo sent by a citizen volunteer and verified by testigo (QR code read and validated).{outside_en}}}}}
|date={style.date}
|source=testigo bundle <code>{bundle_name}</code> (SHA-256 of its SHA256SUMS: <code>{manifest_sha256}</code>), file <code>{photo.path}</code> in <code>{photo.shard}</code>{also}
|author=Acta: Consejo Nacional Electoral (printed by the mesa's voting machine). Photo: a citizen volunteer (anonymous).
}}}}

== Mesa {photo.mesa_id} ==
* Mesa: {photo.mesa_id} (centro {photo.centro}, mesa {photo.mesa})
* Lugar / Place: {where_es}
* SHA-256 de este archivo / of this file: <code>{photo.sha256}</code>
* SHA-256 de la foto recibida (antes de quitar los metadatos) / of the photo as received (before its metadata was removed): <code>{photo.original_sha256}</code>

{_numbers(photo)}

== Licencia / Licence ==
{style.licence}{note}

{cats}
"""
