"""Shared fixtures: real data slices, workdirs, keys and built bundles.

Session-scoped fixtures are built once and shared: treat them as READ-ONLY. To change one, take
a copy first (``copy_tree`` fixture, or ``bundle_copy`` for the signed bundle).

What you get (all real SQLite files on disk, from the real published CSV):
  real_csv            Path of datasets/ve-2024/RESULTADOS_2024_CSV_V1.csv.gz (24,532 mesas)
  election            the loaded ve-2024 definition
  csv_rows            all CSV rows as dicts (with ``_line``), read once
  csv_slice           a 200-row CSV (UTF-8 with BOM, like the original), rows spread over the country
  csv_slice_rows      those 200 rows as dicts
  small_workdir       workdir with csv_slice ingested (200 transcribed actas, nothing else)
  photo_factory       make_photo(payload, kind="jpeg"|"png", seed=0) -> bytes: an acta-like page
                      WITH EXIF (GPS, make/model) and a comment / text chunk, for stripping tests
  payload_for         payload_for(row, move=0) -> QR text folding exactly to the row's numbers
                      (move=n shifts n votes EG -> NM: same valid votes, different numbers)
  stub_ingest         stub_ingest(sources, workdir, plan) -> IngestSummary: the real ingest with
                      the QR decoder replaced by ``plan`` {sha256: payload | None (unreadable)};
                      everything else (storage, outcomes, duplicates, conflicts) is real
  photo_workdir       PhotoWorkdir(path, facts): small_workdir's CSV + photos covering each outcome
                      (agree, disagree, QR-only, duplicate, same file, conflict, unreadable,
                      rejected file, invalid sheet row), from a folder and a zip
  add_unreadable_photos  add_unreadable_photos(inbox, {name: row}) writes each row's acta page with its QR
                      painted over (real decoding finds no QR; a person reads every number) -> {name: (sha, row)}
  transcribe_workdir  TranscribeWorkdir(path, photos): photo_workdir plus real unreadable photos ingested
                      with the real decoder; photos {file name: (sha256, CSV row or None)}
  signing_key         KeyFiles of an scrypt-encrypted key (password in KEY_PASSWORD; cheap scrypt)
  other_key           KeyFiles of a second, unencrypted key (for wrong-key tests)
  bundle              Path of a bundle built from photo_workdir and signed with signing_key
  bundle_copy         a fresh, writable copy of ``bundle`` for tampering (function scope)
  copy_tree           copy_tree(src) -> a writable copy under tmp_path (function scope)
  shared_data         Path of ../shared/data/ve2024 (real sheets V1 and V2, real scans); skips when absent
  full_workdir        [slow] workdir with the whole real CSV ingested
  full_bundle         [slow] bundle built and signed from full_workdir
  chromium            [browser] Debian's Chromium, headless, driven by Playwright (one per session)
  page                [browser] a fresh Playwright page (own context); screenshots with
                      ``shot(page, name)`` land in the test's tmp folder or $TESTIGO_SCREENSHOTS
Tests that use the full-CSV fixtures are marked ``slow`` (deselect with ``-m "not slow"``).
"""
from __future__ import annotations

import csv
import hashlib
import io
import random
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import os

import pytest
from PIL import Image, PngImagePlugin

from archive import election as election_mod

ROOT = Path(__file__).resolve().parent.parent
CSV_GZ = ROOT / "datasets" / "ve-2024" / "RESULTADOS_2024_CSV_V1.csv.gz"
KEY_PASSWORD = "correct horse battery staple"
SLICE_ROWS = 200
SLICE_STEP = 122  # every 122nd row: 200 rows across all states
CSV_TOTALS = {"EG": 7_156_462, "NM": 3_241_461, "LM": 84_446, "JABE": 19_966, "JOBR": 21_583,
              "AE": 49_603, "CF": 12_321, "DC": 10_308, "EM": 25_570, "BERA": 37_408}


def _shared_data() -> Path | None:
    """The real public files of ``../shared/data/ve2024`` (SOURCES.md there), looked for beside
    the checkout or any folder above it, or named by $TESTIGO_SHARED_DATA; None when absent."""
    named = os.environ.get("TESTIGO_SHARED_DATA")
    candidates = [Path(named)] if named else [p / "shared" / "data" / "ve2024" for p in ROOT.parents]
    return next((p for p in candidates if (p / "SOURCES.md").is_file()), None)


SHARED_DATA = _shared_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real data folder; tests that need it skip cleanly when it is not there."""
    if SHARED_DATA is None:
        pytest.skip("the real data of ../shared/data/ve2024 is not here (see datasets/ve-2024/README.md)")
    return SHARED_DATA


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: uses the full real CSV (24,532 mesas); deselect with -m 'not slow'")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- real data ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def real_csv() -> Path:
    return CSV_GZ


@pytest.fixture(scope="session")
def election():
    return election_mod.load("ve-2024")


@pytest.fixture(scope="session")
def csv_rows(election) -> list[dict]:
    from archive.render import read_rows
    return read_rows(election)


@pytest.fixture(scope="session")
def csv_slice_rows(csv_rows) -> list[dict]:
    return csv_rows[::SLICE_STEP][:SLICE_ROWS]


@pytest.fixture(scope="session")
def csv_slice(tmp_path_factory, csv_slice_rows, real_csv) -> Path:
    with election_mod.open_text(real_csv) as f:
        header = next(csv.reader(f))
    out = io.StringIO(newline="")
    w = csv.DictWriter(out, header, extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    w.writerows(csv_slice_rows)
    path = tmp_path_factory.mktemp("slice") / "resultados_slice.csv"
    path.write_bytes(b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"))
    return path


@pytest.fixture(scope="session")
def small_workdir(tmp_path_factory, csv_slice) -> Path:
    from archive.ingest import ingest
    wd = tmp_path_factory.mktemp("small") / "workdir"
    summary = ingest([str(csv_slice)], wd)
    assert summary.new["transcribed"] == SLICE_ROWS
    return wd


@pytest.fixture
def copy_tree(tmp_path):
    """copy_tree(src) -> a writable copy of a folder (workdir, bundle) under this test's tmp_path."""
    counter = iter(range(1000))

    def copy(src) -> Path:
        dest = tmp_path / f"copy{next(counter)}-{Path(src).name}"
        shutil.copytree(src, dest, symlinks=True)
        return dest
    return copy


# --- photos --------------------------------------------------------------------------------------------

def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "TestPhone Inc."          # Make
    exif[0x0110] = "Model 7"                 # Model
    exif[0x0132] = "2024:07:28 19:45:00"     # DateTime
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (10.0, 29.0, 51.0)   # Caracas
    gps[3], gps[4] = "W", (66.0, 54.0, 12.0)
    return exif


def make_photo(payload: str, kind: str = "jpeg", seed: int = 0, width: int = 480) -> bytes:
    """An acta-like page for ``payload`` carrying EXIF GPS + make/model and a comment/text."""
    from archive.render import render_page
    page = render_page(payload, election_mod.load())
    page = page.resize((width, round(page.height * width / page.width)))
    if seed:  # different bytes, same content: a second photo of the same sheet
        rng = random.Random(seed)
        page.putpixel((rng.randrange(width), rng.randrange(page.height)), (seed % 256, 0, 0))
    buf = io.BytesIO()
    if kind == "jpeg":
        page.save(buf, "JPEG", quality=85, exif=_exif(), comment=b"shot by volunteer 17, Caracas")
    else:
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "shot by volunteer 17, Caracas")
        info.add_text("GPS", "10.4975,-66.9033")
        page.save(buf, "PNG", exif=_exif(), pnginfo=info)
    return buf.getvalue()


@pytest.fixture(scope="session")
def photo_factory():
    return make_photo


def payload_for_row(row: dict, move: int = 0) -> str:
    """A QR payload folding to ``row``'s numbers (each candidate's votes on its first card)."""
    e = election_mod.load()
    votes = {c.code: int(row[c.csv_column]) for c in e.candidates}
    if move:
        assert votes["EG"] >= move
        votes["EG"] -= move
        votes["NM"] += move
    counts = [0] * len(e.cards)
    for cand in e.candidates:
        first = min(k.position for k in e.cards if k.candidate == cand.code)
        counts[first - 1] = votes[cand.code]
    from archive.render import trailers_for_row
    return (f"{int(row['CENTRO'])}.{int(row['MESA']):02d}.1.0001!" + ",".join(map(str, counts))
            + trailers_for_row(row, e))


@pytest.fixture(scope="session")
def payload_for():
    return payload_for_row


def stub_ingest_run(sources, workdir, plan: dict[str, str | None], **kw):
    """The real ingest, with the decoder answering from ``plan`` {sha256: payload or None}."""
    from archive import image, ingest as ingest_mod
    from archive.errors import RejectedFile

    def fake_decode(args):
        data, name, _election = args
        try:
            img = image.open_image(data, name)
        except RejectedFile as e:
            return {"status": "rejected", "code": e.code, "reason": str(e)}
        base = {"media_type": {"JPEG": "image/jpeg", "PNG": "image/png"}[img.format],
                "width": img.width, "height": img.height, "decoder": "fixture", "step": "plan"}
        text = plan.get(sha256(data))
        if text is None:
            return {**base, "status": "unreadable", "qr_text": None, "code": "no_qr",
                    "reason": "no QR code found (fixture)"}
        return {**base, "status": "ok", "qr_text": text, "code": None, "reason": None}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ingest_mod, "_decode_job", fake_decode)
        return ingest_mod.ingest([str(s) for s in sources], workdir, jobs=1, **kw)


@pytest.fixture(scope="session")
def stub_ingest():
    return stub_ingest_run


@dataclass
class PhotoWorkdir:
    path: Path
    inbox: Path
    facts: dict = field(default_factory=dict)


@pytest.fixture(scope="session")
def photo_workdir(tmp_path_factory, small_workdir, csv_rows, csv_slice_rows) -> PhotoWorkdir:
    """The slice workdir plus photos of every kind of outcome; ``facts`` says which is which.

    facts: agree / disagree (slice rows photographed; disagree's QR moves 1 vote EG->NM),
    qr_only (row counted from its photo: not in the slice), dup (row photographed twice),
    conflict (row photographed with two different numbers), unreadable_sha, same_file,
    photos {file name: original sha256}, expected_totals (national totals the bundle must show).
    """
    base = tmp_path_factory.mktemp("photos")
    wd = base / "workdir"
    shutil.copytree(small_workdir, wd)
    in_slice = {(r["CENTRO"], r["MESA"]) for r in csv_slice_rows}
    outside = [r for r in csv_rows if (r["CENTRO"], r["MESA"]) not in in_slice and int(r["EG"]) > 0]
    agree, disagree = csv_slice_rows[3], next(r for r in csv_slice_rows[10:] if int(r["EG"]) > 0)
    qr_only, dup, conflict = outside[5], outside[500], outside[1500]
    inbox = base / "inbox"
    folder = inbox / "telefono de ana" / "fotos"
    folder.mkdir(parents=True)
    photos = {
        "agree.jpg": make_photo(payload_for_row(agree)),
        "disagree.jpg": make_photo(payload_for_row(disagree, move=1)),
        "qr_only.png": make_photo(payload_for_row(qr_only), kind="png"),
        "dup_a.jpg": make_photo(payload_for_row(dup)),
        "dup_b.jpg": make_photo(payload_for_row(dup), seed=7),
        "conflict_a.jpg": make_photo(payload_for_row(conflict)),
        "conflict_b.jpg": make_photo(payload_for_row(conflict, move=1)),
        "blurry.jpg": make_photo("not readable", seed=3),
    }
    plan = {sha256(data): payload_for_row(r, m) for data, r, m in (
        (photos["agree.jpg"], agree, 0), (photos["disagree.jpg"], disagree, 1),
        (photos["qr_only.png"], qr_only, 0), (photos["dup_a.jpg"], dup, 0), (photos["dup_b.jpg"], dup, 0),
        (photos["conflict_a.jpg"], conflict, 0), (photos["conflict_b.jpg"], conflict, 1))}
    for name in ("agree.jpg", "disagree.jpg", "dup_a.jpg", "conflict_a.jpg", "blurry.jpg"):
        (folder / name).write_bytes(photos[name])
    (folder / "same_as_agree.jpg").write_bytes(photos["agree.jpg"])
    (folder / "notas.txt").write_text("mesa 3: llegar temprano\n")
    with zipfile.ZipFile(inbox / "lote 2.zip", "w") as z:
        for name in ("qr_only.png", "dup_b.jpg", "conflict_b.jpg"):
            z.writestr(f"whatsapp/{name}", photos[name])
    bad_sheet = inbox / "hoja_extra.csv"
    header = "CENTRO,MESA,VOTOS_VALIDOS,VOTOS_NULOS," + ",".join(c.csv_column for c in election_mod.load().candidates)
    bad_sheet.write_text(header + "\n999999999,1,1,0,1,0,0,0,0,0,0,0,0,0\n", encoding="utf-8")
    summary = stub_ingest_run([inbox], wd, plan)
    assert summary.new["decoded"] == 4 and summary.new["conflict"] == 2, summary  # both readings flagged

    totals = {code: 0 for code in CSV_TOTALS}
    for r in list(csv_slice_rows) + [qr_only, dup]:
        for code in totals:
            totals[code] += int(r[code])
    facts = {"agree": agree, "disagree": disagree, "qr_only": qr_only, "dup": dup, "conflict": conflict,
             "unreadable_sha": sha256(photos["blurry.jpg"]), "same_file": "same_as_agree.jpg",
             "photos": {n: sha256(d) for n, d in photos.items()}, "expected_totals": totals,
             "local_dir": str(inbox)}
    return PhotoWorkdir(wd, inbox, facts)


def unreadable_photo_of(row: dict, width: int = 600) -> bytes:
    """The rendered acta page of ``row`` with the QR band painted over: unreadable, yet legible."""
    from PIL import ImageDraw
    from archive.render import render_page
    page = render_page(payload_for_row(row), election_mod.load())
    ImageDraw.Draw(page).rectangle((0, int(page.height * 0.86), page.width, page.height), fill=(250, 250, 246))
    page = page.resize((width, round(page.height * width / page.width)))
    buf = io.BytesIO()
    page.save(buf, "JPEG", quality=85, exif=_exif())
    return buf.getvalue()


def add_unreadable_photos(inbox: Path, rows: dict) -> dict:
    """Write unreadable_photo_of(row) as inbox/NAME for each {NAME: row}; {NAME: (sha256, row)}."""
    inbox.mkdir(exist_ok=True)
    photos = {}
    for name, row in rows.items():
        data = unreadable_photo_of(row)
        (inbox / name).write_bytes(data)
        photos[name] = (sha256(data), row)
    return photos


@dataclass
class TranscribeWorkdir:
    path: Path
    photos: dict = field(default_factory=dict)   # file name -> (sha256, row or None)


@pytest.fixture(scope="session")
def transcribe_workdir(tmp_path_factory, photo_workdir, csv_rows, csv_slice_rows) -> TranscribeWorkdir:
    """photo_workdir plus photos for volunteers, decoded by the real decoder (so really unreadable).

    t_slice.jpg: a mesa with a sheet row; t_qr.jpg: the mesa photo_workdir read by QR (qr_only);
    t_new1..6.jpg: mesas nothing else covers; t_invalid.png: a QR that is not an acta (reading
    'invalid'). blurry.jpg (unreadable in photo_workdir) is in the queue too.
    """
    from archive.ingest import ingest
    base = tmp_path_factory.mktemp("transcribe")
    wd = base / "workdir"
    shutil.copytree(photo_workdir.path, wd)
    f = photo_workdir.facts
    used = {(r["CENTRO"], r["MESA"]) for r in list(csv_slice_rows) + [f["qr_only"], f["dup"], f["conflict"]]}
    fresh = [r for r in csv_rows[7::997] if (r["CENTRO"], r["MESA"]) not in used and int(r["EG"]) > 2][:6]
    rows = {"t_slice.jpg": next(r for r in csv_slice_rows[20:] if int(r["EG"]) > 2), "t_qr.jpg": f["qr_only"],
            **{f"t_new{i}.jpg": r for i, r in enumerate(fresh, 1)}}
    inbox = base / "inbox"
    photos = add_unreadable_photos(inbox, rows)
    invalid = make_photo("hola: esto no es un acta", kind="png")
    (inbox / "t_invalid.png").write_bytes(invalid)
    photos["t_invalid.png"] = (sha256(invalid), None)
    summary = ingest([str(inbox)], wd)
    assert summary.new == {"unreadable": len(rows), "invalid": 1}, summary
    photos["blurry.jpg"] = (f["unreadable_sha"], None)
    return TranscribeWorkdir(wd, photos)


# --- keys and bundles ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def signing_key(tmp_path_factory):
    from archive import signing
    return signing.keygen(tmp_path_factory.mktemp("keys") / "testigo", KEY_PASSWORD,
                          limits=signing.INTERACTIVE)


@pytest.fixture(scope="session")
def other_key(tmp_path_factory):
    from archive import signing
    return signing.keygen(tmp_path_factory.mktemp("otherkeys") / "intruder", unencrypted=True)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, photo_workdir, signing_key) -> Path:
    from archive.bundle import build_bundle
    out = tmp_path_factory.mktemp("bundle") / "B"
    build_bundle(photo_workdir.path, out, key=signing_key.secret, password=KEY_PASSWORD)
    return out


def bundle_image(bundle_dir: Path, images_row) -> bytes:
    """A published photo's bytes, read out of the bundle's zip shards through its ``images`` row."""
    from archive import shards
    return shards.open_images(bundle_dir).read(Path(images_row["path"]).name)


@pytest.fixture
def bundle_copy(bundle, copy_tree) -> Path:
    return copy_tree(bundle)


@pytest.fixture(scope="session")
def full_workdir(tmp_path_factory, real_csv) -> Path:
    from archive.ingest import ingest
    wd = tmp_path_factory.mktemp("full") / "workdir"
    summary = ingest([str(real_csv)], wd)
    assert summary.new["transcribed"] == 24_532
    return wd


@pytest.fixture(scope="session")
def full_bundle(tmp_path_factory, full_workdir, signing_key) -> Path:
    from archive.bundle import build_bundle
    out = tmp_path_factory.mktemp("fullbundle") / "B"
    build_bundle(full_workdir, out, key=signing_key.secret, password=KEY_PASSWORD)
    return out


# --- browser ----------------------------------------------------------------------------------------
# Playwright (PyPI) drives Debian's Chromium (apt: chromium); Playwright's own browser download is
# never used. The flags keep Chromium off the network (this machine's network is closed).
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]


@pytest.fixture(scope="session")
def chromium():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); browser tests need it")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, request, tmp_path):
    """A new page in its own browser context (no cookies or cache shared between tests)."""
    context = chromium.new_context(viewport={"width": 1200, "height": 1600})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    pg.shots = Path(os.environ.get("TESTIGO_SCREENSHOTS") or tmp_path)
    yield pg
    context.close()


def shot(pg, name: str) -> Path:
    """Save a screenshot of the page as NAME.png (for people reviewing a failure)."""
    pg.shots.mkdir(parents=True, exist_ok=True)
    path = pg.shots / f"{name}.png"
    pg.screenshot(path=str(path))
    return path
