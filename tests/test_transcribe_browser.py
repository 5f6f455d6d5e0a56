"""`testigo transcribe` end to end: a real server process, Debian's Chromium, real unreadable photos.

Three volunteers take turns at one browser, typing with the keyboard only (focus starts on the
first box, Tab follows the acta, Enter saves): two agreeing entries make an acta, two that
differ go to review and a third decides; the server is killed with SIGKILL while an entry is
half typed and restarted; then the bundle is built and served, and the transcribed acta is on
its mesa page with its photo. Screenshots of each step are left in the test's tmp folder.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3

import pytest

from archive import election as election_mod
from archive.ingest import ingest
import conftest
from conftest import KEY_PASSWORD, add_unreadable_photos, shot
from publish.site import server as site_mod
from test_site import mesa_of
from test_transcription import fields_of

from archive.transcription_form import SUMMARY

ANA, BETO, CARLA = ("Ana Pérez Fuentes", "ana-caracas"), ("Beto Ruiz Secreto", ""), ("Carla Gómez Reyes", "carla")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, small_workdir, csv_rows, csv_slice_rows):
    """The 200-row sheet plus three photos whose QR is gone: P1 of a mesa in the sheet, P2 and P3 not."""
    base = tmp_path_factory.mktemp("transcribe-browser")
    wd = base / "workdir"
    shutil.copytree(small_workdir, wd)
    in_slice = {(r["CENTRO"], r["MESA"]) for r in csv_slice_rows}
    outside = [r for r in csv_rows[11::1500] if (r["CENTRO"], r["MESA"]) not in in_slice and int(r["EG"]) > 1]
    rows = {"p1.jpg": next(r for r in csv_slice_rows[40:] if int(r["EG"]) > 1), "p2.jpg": outside[0], "p3.jpg": outside[1]}
    inbox = base / "fotos"
    photos = add_unreadable_photos(inbox, rows)
    assert ingest([str(inbox)], wd).new == {"unreadable": 3}   # the real decoder finds no QR
    return wd, photos


def entry_of(row: dict, move: int = 0, printed_code: bool = False) -> list[str]:
    """What a volunteer types, box by box in the paper's order: the acta code (centre, mesa; or the
    whole code as printed, ``040202001.01.1.0001``, in one go), the 38 party lines, the summary."""
    f = fields_of(row, move)
    code = ([f"{int(row['CENTRO']):09d}.{int(row['MESA']):02d}.1.0001"] if printed_code
            else [str(int(row["CENTRO"])), f["mesa"]])
    return code + [f[f"l_{i}"] for i in range(1, 39)] + [f[k] for k, _, _ in SUMMARY]


def type_entry(page, values: list[str], key: str = "Tab") -> None:
    """Keyboard only: the first box has the focus, Tab (or Enter) moves on in the paper's order,
    Enter saves once every box is filled. Before saving, each candidate's total the page computed
    is the sum of the lines typed under their name."""
    assert page.evaluate("document.activeElement.id") == "centro"
    for i, v in enumerate(values):
        if i:
            page.keyboard.press(key)
        page.keyboard.type(v)
    lines = [int(v) for v in values[-43:-5]]
    for c in election_mod.load().candidates:
        want = sum(n for n, card in zip(lines, election_mod.load().cards) if card.candidate == c.code)
        assert page.inner_text(f"#t_{c.code}") == str(want), c.code
    with page.expect_navigation():
        page.keyboard.press("Enter")


def sign_in(page, who: tuple[str, str]) -> None:
    assert page.evaluate("document.activeElement.id") == "nombre"
    page.keyboard.type(who[0])
    page.keyboard.press("Tab")
    page.keyboard.type(who[1])
    with page.expect_navigation():
        page.keyboard.press("Enter")


def sign_out(page) -> None:
    with page.expect_navigation():
        page.click("#sign-out")
    assert page.locator("#nombre").is_visible() and page.locator("#clave").count() == 0


def current_photo(page, photos: dict) -> str:
    path = page.evaluate("location.pathname")
    assert path.startswith("/foto/"), (path, page.inner_text("body")[:300])
    sha = path.split("/")[2]
    return next(name for name, (s, _) in photos.items() if s == sha)


def go_to(page, photos: dict, name: str) -> None:
    """Photos come at random: skip (Alt+N) until the one this step of the story needs."""
    for _ in range(2 * len(photos)):
        if current_photo(page, photos) == name:
            return
        with page.expect_navigation():
            page.keyboard.press("Alt+n")
    assert current_photo(page, photos) == name


def hecho(page) -> str:
    return page.inner_text("#hecho")


def entries_in(wd) -> list[tuple]:
    db = sqlite3.connect(wd / "state.db")
    try:
        return db.execute("SELECT v.name, e.image_sha256, e.value FROM transcription_entries e "
                          "JOIN volunteers v ON v.id = e.volunteer_id ORDER BY e.id").fetchall()
    finally:
        db.close()


def start(wd):
    proc, url = site_mod.start_command(["publish.transcribe.cli", "--workdir", str(wd), "--port", "0"])
    return proc, url, url.split("?")[0].rstrip("/")


def test_volunteers_transcribe_agree_review_survive_a_kill_and_publish(workdir, page, tmp_path, signing_key):
    wd, photos = workdir
    proc, url, base = start(wd)
    try:
        # without the access code: the sign-in page asks for it, and a wrong one is refused
        page.goto(base + "/")
        assert page.locator("#clave").is_visible()
        page.fill("#clave", "aaaa-bbbb-cccc")
        page.fill("#nombre", ANA[0])
        with page.expect_navigation():
            page.click("#start")
        assert "no es la clave" in page.inner_text("#error")
        assert page.request.get(base + f"/foto/{photos['p1.jpg'][0]}/imagen").status == 403
        # the URL the server printed carries the code: the volunteer only gives a name
        page.goto(url)
        assert page.locator("#clave").count() == 0
        sign_in(page, ANA)
        go_to(page, photos, "p1.jpg")
        page.wait_for_function("document.getElementById('photo').complete && "
                               "document.getElementById('photo').naturalWidth > 0")
        # zoom and rotate from the keyboard, without leaving the box being typed in
        page.keyboard.press("Alt+r")
        page.keyboard.press("Alt+z")
        page.keyboard.press("Alt+z")
        img = page.locator("#photo")
        assert (img.get_attribute("data-rotation"), img.get_attribute("data-zoom")) == ("90", "2")
        assert "rotate(90deg)" in img.evaluate("i => i.style.transform")
        box = page.locator("#canvas").bounding_box()
        assert box["height"] < box["width"]     # the portrait page lies on its side
        shot(page, "1-rotated-zoomed")
        page.keyboard.press("Alt+0")
        assert (img.get_attribute("data-rotation"), img.get_attribute("data-zoom")) == ("0", "1")
        assert page.evaluate("document.activeElement.id") == "centro"
        # a phone's width: the form fits, one column, nothing to scroll sideways
        size = page.viewport_size
        page.set_viewport_size({"width": 390, "height": 844})
        wide = page.evaluate("Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect()"
                             ".right > 391).map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 8)")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, wide
        assert page.evaluate("(() => { const f = document.getElementById('entry');"
                             " return f.scrollWidth <= f.clientWidth + 1; })()")
        shot(page, "1-phone")
        page.set_viewport_size(size)
        # Ana types all three photos, in the order they come (at random)
        for _ in range(3):
            type_entry(page, entry_of(photos[current_photo(page, photos)][1]))
        assert "No quedan fotos para usted" in page.inner_text("#done")
        sign_out(page)

        # Beto: agrees on P1 (an acta), makes a sum mistake on P2, then a wrong but valid entry
        sign_in(page, BETO)
        go_to(page, photos, "p1.jpg")
        type_entry(page, entry_of(photos["p1.jpg"][1], printed_code=True))   # the code as printed, dots and all
        assert "ya es un acta" in hecho(page)
        go_to(page, photos, "p2.jpg")
        wrong = entry_of(photos["p2.jpg"][1], move=1)
        typo = wrong[:-4] + [str(int(wrong[-4]) + 10)] + wrong[-3:]     # válidos off by ten
        type_entry(page, typo)
        assert "suman" in page.inner_text("#error")
        assert page.evaluate("document.activeElement.id") == "validos"   # straight to the box to fix
        assert page.input_value("#centro") == wrong[0]                   # nothing typed is lost
        shot(page, "2-sum-mistake")
        page.fill("#validos", wrong[-4])
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "revisión" in hecho(page)
        assert current_photo(page, photos) == "p3.jpg"        # the only one left for Beto
        for v in entry_of(photos["p3.jpg"][1])[:4]:             # half typed, not saved...
            page.keyboard.type(v)
            page.keyboard.press("Tab")
        saved_before = entries_in(wd)
        assert len(saved_before) == 5
        os.kill(proc.pid, signal.SIGKILL)                       # ...when the server dies
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert entries_in(wd) == saved_before                       # every saved entry is there

    proc, url, base = start(wd)
    try:
        page.goto(base + "/siguiente")                          # same browser: still signed in as Beto
        assert current_photo(page, photos) == "p3.jpg"
        assert page.input_value("#centro") == ""
        type_entry(page, entry_of(photos["p3.jpg"][1]))
        assert "ya es un acta" in hecho(page) and page.locator("#done").is_visible()
        sign_out(page)

        # Carla gets the photo in review; nobody's numbers are shown to her
        sign_in(page, CARLA)
        assert current_photo(page, photos) == "p2.jpg"
        assert page.locator("#review").is_visible()
        assert all(v == "" for v in page.eval_on_selector_all("#entry input[inputmode]", "els => els.map(e => e.value)"))
        body = page.inner_text("body")
        assert photos["p2.jpg"][1]["VOTOS_VALIDOS"] not in body.split()
        shot(page, "3-review")
        type_entry(page, entry_of(photos["p2.jpg"][1]), key="Enter")     # Enter moves on, then saves
        assert "ya es un acta" in hecho(page)
        status = json.loads(page.request.get(base + "/estado.json").text())
        assert (status["agreed"], status["review"], status["entries"], status["yours"]) == (3, 0, 7, 1)
        page.goto(base + "/siguiente?lang=en")
        assert "No photos left for you" in page.inner_text("#done")
    finally:
        proc.terminate()
        proc.wait(10)

    # the bundle: three transcribed actas with their photos, entries counted, aliases only
    from archive.bundle import build_bundle
    out = tmp_path / "B"
    build_bundle(wd, out, key=signing_key.secret, password=KEY_PASSWORD)
    db = sqlite3.connect(out / "ve-2024.db")
    db.row_factory = sqlite3.Row
    got = {}
    for name, (sha, row) in photos.items():
        a = db.execute("SELECT a.*, i.original_sha256, i.path, i.sha256 AS published, t.entries, t.transcribers FROM actas a "
                       "JOIN images i ON i.sha256 = a.image_sha256 JOIN transcriptions t ON t.acta_id = a.id "
                       "WHERE a.mesa_id = ? AND a.source = 'transcribed-photo'", (mesa_of(row),)).fetchone()
        assert a["original_sha256"] == sha and conftest.sha256(conftest.bundle_image(out, a)) == a["published"]
        assert a["validos"] == int(row["VOTOS_VALIDOS"])
        got[name] = (a["entries"], json.loads(a["transcribers"] or "[]"), a["counted"], a["crosscheck"])
        # the 38 party lines as typed, and each candidate's votes the sum of their lines (never typed)
        typed = [int(v) for v in entry_of(row)[-43:-5]]
        counts = [r[0] for r in db.execute("SELECT votes FROM votes WHERE acta_id = ? ORDER BY position", (a["id"],))]
        assert counts == typed, name
        cards = db.execute("SELECT position, candidate FROM cards ORDER BY position").fetchall()
        sums = {c: sum(n for n, (_, k) in zip(typed, cards) if k == c) for c in {k for _, k in cards}}
        votes = dict(db.execute("SELECT candidate, votes FROM acta_votes WHERE acta_id = ?", (a["id"],)).fetchall())
        assert votes == sums and sum(votes.values()) == a["validos"], name
        assert votes == {c.code: int(row[c.csv_column]) for c in election_mod.load().candidates}   # the acta's totals
    assert got == {"p1.jpg": (2, ["ana-caracas"], 0, "agree"),           # the sheet row is counted
                   "p2.jpg": (3, ["ana-caracas", "carla"], 1, None),
                   "p3.jpg": (2, ["ana-caracas"], 1, None)}
    for f in out.rglob("*"):
        if f.is_file():
            assert b"Secreto" not in f.read_bytes() and "Pérez".encode() not in f.read_bytes()

    # and on the public site: the mesa page shows the source, the entries and the photo
    site, site_url = site_mod.start_in_subprocess(out)
    try:
        page.goto(site_url.rstrip("/") + f"/mesa/{mesa_of(photos['p2.jpg'][1])}")
        assert "Foto transcrita por voluntarios" in page.inner_text("#readings")
        assert page.inner_text("#transcription .t-entries") == "3"
        page.wait_for_function("(() => { const i = document.querySelector('img.t-acta-img');"
                               " return i && i.complete && i.naturalWidth > 0; })()")
        shot(page, "4-mesa-page")
    finally:
        site.terminate()
        site.wait(10)
