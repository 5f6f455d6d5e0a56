"""The bundle's README.md and LICENSE: what it is, how it was collected, how to verify (es/en)."""
from __future__ import annotations

from . import mesa_pages
from .audit_tables import AUDIT_TABLES
from .database import COUNTING_RULE, TABLE_DESCRIPTIONS, TABLES, VIEWS
from .shards import DEFAULT_MAX_MEMBERS


LICENSE_TEXT = """\
This dataset (the SQLite database, datapackage.json, README.md and the published photos of
public tally sheets in the zip files in images/) is dedicated to the public domain under the
Creative Commons CC0 1.0 Universal dedication. To the extent possible under law, the
contributors have waived all copyright and related or neighboring rights to it. You can copy,
modify, distribute and use it, even for commercial purposes, all without asking permission.

Este conjunto de datos (la base SQLite, datapackage.json, README.md y las fotos publicadas de
actas públicas en los zip de images/) se dedica al dominio público con CC0 1.0 Universal. En
la medida en que la ley lo permita, quienes contribuyeron renuncian a todos los derechos de
autor y derechos conexos sobre él.

SPDX-License-Identifier: CC0-1.0
Full legal code / texto legal completo: https://creativecommons.org/publicdomain/zero/1.0/legalcode
"""


def readme_text(name: str, election, db_file: str, info: dict) -> str:
    meta = election.meta
    c = info["counts"]
    outside = info.get("totals_outside_registry") or {}
    totals = "\n".join(f"| {cand.code} | {cand.name} | {info['totals'].get(cand.code, 0):,} | "
                       f"{outside.get(cand.code, 0):,} |" for cand in election.candidates)
    o = c.get("outside_registry") or {}
    tables = "\n".join([*(f"| `{t}` | {TABLE_DESCRIPTIONS[t]} |" for t in [*TABLES, *VIEWS, *mesa_pages.APP_TABLES]),
                        *(f"| `{t}` | {spec[2]} |" for t, spec in AUDIT_TABLES.items())])
    if info["key_id"]:
        key = (f"Key id / Id de la clave: `{info['key_id']}`\n\n```\n{info['public_key_file'].rstrip()}\n```\n")
        sig_es = "La firma `SHA256SUMS.minisig` (Ed25519, formato minisign) cubre `SHA256SUMS`."
        sig_en = "The signature `SHA256SUMS.minisig` (Ed25519, minisign format) covers `SHA256SUMS`."
    else:
        key = "**This bundle is NOT signed. / Este paquete NO está firmado.**\n"
        sig_es = sig_en = "(unsigned / sin firma)"
    shard_size = info["shards"]["max_members"]
    rebuild = (f" --shard-size {shard_size}" if shard_size != DEFAULT_MAX_MEMBERS else "") + (
        " --unread-photos" if info.get("unread_photos") else "") + (
        " --places PLACES.json" if info.get("places") else "") + (
        " --redact-members" if info.get("redact_members") else "")   # testigo.places of datapackage.json
    unread = ("publicadas en este bundle / published in this bundle" if info.get("unread_photos")
              else "no publicadas / not published")
    return f"""# {meta.get('title')} — testigo `{name}`

*{meta.get('title_en')}*

Datos verificados por mesa a partir de fotos de las actas de escrutinio tomadas por ciudadanos,
y de hojas transcritas. / Per-mesa results verified from citizens' photos of the tally sheets
(actas) and from transcribed sheets.

| | |
|---|---|
| Actas (lecturas aceptadas / accepted readings) | {c['actas']:,} |
| Mesas contadas / counted mesas (registro / registry) | {c['mesas_counted']:,} / {c['mesas_registry']:,} |
| Fotos publicadas / published photos | {c['images']:,} |
| Incidencias / issues | {c['issues']:,} |
| Fotos por transcribir / photos awaiting transcription | {c.get('photos_awaiting_transcription', 0):,} ({unread}) |
| Actas fuera del registro / outside the registry (mesas, contadas aparte / counted apart) | {o.get('actas', 0):,} ({o.get('mesas', 0):,}, {o.get('counted', 0):,}) |

## Totales nacionales / National totals (counted actas)

La última columna es la línea aparte «actas fuera del registro»: no entra en los totales. /
The last column is the separate line "actas outside the registry": not part of the totals.

| | Candidato / Candidate | Votos / Votes | Fuera del registro / Outside the registry |
|---|---|---:|---:|
{totals}

## Español

**Qué es.** Una base de datos SQLite (`{db_file}`), las fotos de las actas (sin metadatos) en
archivos zip `images/estado-EE-K.zip` (uno o más por estado, EE = código del estado; sin
recomprimir), `datapackage.json` (descripción Frictionless de las tablas y archivos),
`SHA256SUMS` (la suma sha256 de cada archivo) y su firma `SHA256SUMS.minisig`.

**Ver una foto.** Cada foto es un miembro `<sha256>.jpg` (o `.png`) de un zip; la tabla `images`
dice en cuál (`images.shard`). `unzip -l images/estado-01-1.zip` los lista,
`unzip -p images/estado-01-1.zip <sha256>.jpg > foto.jpg` saca una, y
`unzip -d images 'images/*.zip'` las saca todas (como `images/<sha256>.jpg`, la columna `path`).
Los bytes de cada foto empiezan en `images.offset` dentro de su zip (miembros sin comprimir):
`size` bytes desde ahí son el archivo, que se lee con una sola petición HTTP de rango.

**Cómo se reunió.** Voluntarios enviaron fotos de las actas; testigo leyó el código QR de cada
una y solo aceptó textos que siguen la gramática del acta de esta elección (una lectura errónea
es peor que ninguna), comprobando que los votos por candidato sumen los válidos y que no se
superen los electores de la mesa en el registro; el acta de una mesa que no está en el registro
se conserva, marcada `outside_registry`, y se cuenta aparte (ver la regla de conteo). Las hojas
transcritas (por ejemplo el CSV publicado por resultadosconvzla.com) se leen fila por fila con
las mismas reglas. Las fotos cuyo QR no se pudo leer las transcribieron voluntarios: cada una
cuenta solo cuando dos personas distintas, sin ver los números de la otra, escribieron lo mismo
(tabla `transcriptions`: cuántas entradas hicieron falta y los alias públicos de quienes
eligieron uno; nunca nombres; la tabla `transcription_entries` da cada entrada, con la persona
reemplazada por un hash con clave, el mismo en todas las tablas). Cada entrada tiene un
único resultado; las que no se aceptaron están en la tabla `issues` con el motivo. Las fotos
publicadas no llevan EXIF/GPS (se quitaron sin recomprimir: los píxeles son los mismos); solo
conservan la etiqueta EXIF Orientation (`images.orientation`) para que se vean derechas;
`images.original_sha256` es la suma del archivo tal como se recibió.

**Regla de conteo.** {COUNTING_RULE['es']}

**Verificar.** En esta carpeta:

```
sha256sum -c SHA256SUMS
minisign -Vm SHA256SUMS -p minisign.pub
testigo verify . --pubkey CLAVE_PUBLICA_OBTENIDA_POR_OTRO_CANAL.pub
```

{sig_es} Verificar con el `minisign.pub` incluido solo prueba que el paquete está íntegro; para
saber quién lo publicó, compare el id de la clave con el publicado por otro canal.

**Reconstruir y comparar.** Con el mismo directorio de trabajo (workdir), la misma versión de
testigo y de SQLite, `testigo build` produce archivos idénticos byte a byte. Sin la clave
secreta, construya con la clave pública y compare el manifiesto:

```
testigo build --workdir W --out B2 --pubkey minisign.pub{rebuild}
cmp B2/SHA256SUMS SHA256SUMS && echo idéntico
```

## English

**What it is.** A SQLite database (`{db_file}`), the acta photos (metadata removed) in zip
files `images/estado-EE-K.zip` (one or more per estado, EE = the state's code; stored, not
recompressed), `datapackage.json` (a Frictionless description of every table and file),
`SHA256SUMS` (the sha256 of every file) and its signature `SHA256SUMS.minisig`.

**Looking at a photo.** Each photo is a member `<sha256>.jpg` (or `.png`) of one zip; the
`images` table says which (`images.shard`). `unzip -l images/estado-01-1.zip` lists them,
`unzip -p images/estado-01-1.zip <sha256>.jpg > photo.jpg` extracts one, and
`unzip -d images 'images/*.zip'` extracts all (as `images/<sha256>.jpg`, the `path` column).
Each photo's bytes start at `images.offset` in its zip (members are stored, not compressed):
`size` bytes from there are the file, read with a single HTTP range request.

**How it was collected.** Volunteers sent photos of the actas; testigo read each QR code and
accepted only texts that follow this election's acta grammar (a wrong reading is worse than
none), checking that candidates' votes add up to the valid votes and that no mesa has more
votes than its registered electors; the acta of a mesa the registry does not know is kept,
flagged `outside_registry`, and counted apart (see the counting rule). Transcribed sheets (such
as the CSV published by resultadosconvzla.com) are read row by row under the same rules. Photos
whose QR could not be read were transcribed by volunteers: each counts only when two different
people, without seeing each other's numbers, typed the same (table `transcriptions`: how many
entries it took and the public aliases of those who chose one; never names; the table
`transcription_entries` gives every entry, the person replaced by a keyed hash, the same in
every table). Every input has
exactly one outcome; those not accepted are in the `issues` table with the reason. Published
photos carry no EXIF/GPS (removed without re-encoding: the pixels are unchanged); only the EXIF
Orientation tag is kept (`images.orientation`) so that they display upright (with Pillow, use
`ImageOps.exif_transpose`); `images.original_sha256` is the hash of the file as received.

**Counting rule.** {COUNTING_RULE['en']}

**How to verify.** In this folder:

```
sha256sum -c SHA256SUMS
minisign -Vm SHA256SUMS -p minisign.pub
testigo verify . --pubkey PUBLIC_KEY_OBTAINED_ELSEWHERE.pub
```

{sig_en} Verifying against the `minisign.pub` shipped inside the bundle only proves the bundle
is intact; to know who published it, compare the key id with one published through another
channel.

**Rebuild and compare.** From the same workdir, with the same testigo and SQLite versions,
`testigo build` writes byte-identical files. Without the secret key, build with the public key
and compare the manifests:

```
testigo build --workdir W --out B2 --pubkey minisign.pub{rebuild}
cmp B2/SHA256SUMS SHA256SUMS && echo identical
```

## Public key / Clave pública

{key}
{_teams_section(info.get("teams") or [])}{_places_section(info.get("places"))}## Schema / Esquema

| Table | |
|---|---|
{tables}

Ids: `municipios.id` = `EDO.MUN`, `parroquias.id` = `EDO.MUN.PAR`, `mesas.id` = `CENTRO.MM`.
The audit_* tables are the audit (`testigo audit`, the site's /auditoria / la auditoría): what
each check and test means and cannot show is in `audit_notes`.
Column descriptions: `datapackage.json`. Software: {', '.join(f'{k} {v}' for k, v in info['software'].items())}.

License / Licencia: CC0-1.0 (see `LICENSE`).
"""



def _places_section(places) -> str:
    """Where the bundle is published (``archive.places.Places``), or nothing."""
    if not places:
        return ""
    rows = "\n".join(f"- {label}: <{url}>" for _kind, label, url in places.links())
    return f"""## Dónde está publicado / Where it is published

Las mismas fotos y datos, en otros archivos públicos; compruebe cualquier copia con `SHA256SUMS`
y la firma, como arriba. / The same photos and data, in other public archives; check any copy with
`SHA256SUMS` and the signature, as above. (`datapackage.json`: `testigo.places`.)

{rows}

"""


def _teams_section(teams: list[dict]) -> str:
    """The contributing team bundles (relay), or nothing for a bundle made from own inputs only."""
    if not teams:
        return ""
    rows = "\n".join(f"| {t['team']} | `{t['key_id']}` | `{t['public_key']}` | `{t['bundle_hash']}` | {t['actas']:,} |"
                     for t in teams)
    return f"""## Paquetes de otros equipos / Contributing team bundles

Parte de las actas vienen de paquetes firmados por otros equipos, verificados (firma con una
clave de confianza y cada suma sha256) antes de recibirlas. La columna `actas.provenance` dice
de dónde viene cada acta (`own`: entradas propias de quien publica); la tabla `team_bundles`
da el detalle. / Some actas come from bundles signed by other teams, verified (signature by a
trusted key, every sha256) before they were taken in. `actas.provenance` says where each acta
came from (`own`: the publisher's own inputs); the `team_bundles` table has the details.

| Equipo / Team | Key id | Public key | Bundle (sha256 of its SHA256SUMS) | Actas |
|---|---|---|---|---:|
{rows}

"""
