"""Invitations and the coordinator's desk in a real browser (Debian's Chromium), on a real server.

The coordinator invites two volunteers from the command line; each enters by the link printed
(no name, no access code), the shared code is refused, and their entries for one photo differ.
A third photo of theirs differs too; the coordinator signs in to the desk with its own code,
sees the photo beside both entries with the differing boxes highlighted, comments, and accepts
one entry: the photo becomes an acta. Screenshots are left in the test's tmp folder.
"""
from __future__ import annotations

import re
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from archive.ingest import ingest
from conftest import add_unreadable_photos, shot
from test_transcribe_browser import entry_of, go_to, start, type_entry


@pytest.fixture
def workdir(tmp_path, small_workdir, csv_rows, csv_slice_rows):
    wd = tmp_path / "workdir"
    shutil.copytree(small_workdir, wd)
    in_slice = {(r["CENTRO"], r["MESA"]) for r in csv_slice_rows}
    outside = [r for r in csv_rows[13::1700] if (r["CENTRO"], r["MESA"]) not in in_slice and int(r["EG"]) > 1]
    photos = add_unreadable_photos(tmp_path / "fotos", {"q1.jpg": outside[0], "q2.jpg": outside[1]})
    assert ingest([str(tmp_path / "fotos")], wd).new == {"unreadable": 2}
    return wd, photos


def test_volunteers_by_invitation_and_the_coordinators_desk(workdir, page):
    from publish.cli import cli
    wd, photos = workdir
    r = CliRunner().invoke(cli, ["transcribe", "--workdir", str(wd), "--invite", "Ana", "--count", "2",
                                 "--known-share", "0", "--port", "0"])
    assert r.exit_code == 0, r.output
    links = re.findall(r"http://127\.0\.0\.1:0(/invitacion/[\w-]+)", r.output)
    assert len(links) == 2
    proc, url, base = start(wd)
    try:
        assert "clave=" not in url                      # invitations only: no shared code is offered
        page.goto(base + "/")
        assert page.locator("#invitation-only").is_visible() and page.locator("#clave").count() == 0
        for i, link in enumerate(links):
            page.goto(base + link)
            assert page.locator("#invited").is_visible() and page.locator("#nombre").count() == 0
            assert page.evaluate("document.activeElement.id") == "alias"
            page.keyboard.type(f"vol-{i}")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            go_to(page, photos, "q1.jpg")
            type_entry(page, entry_of(photos["q1.jpg"][1], move=i))      # the two differ by one vote
            shot(page, f"{i}-volunteer")
        assert "revisión" in page.inner_text("#hecho")
        # the coordinator: a wrong desk code is refused, the right one opens the desk
        db = sqlite3.connect(wd / "state.db")
        desk_code = db.execute("SELECT value FROM meta WHERE key = 'transcribe_desk_code'").fetchone()[0]
        db.close()
        page.goto(base + "/coordinacion?clave=zzzz-zzzz-zzzz")
        assert page.locator("#error").is_visible()
        page.fill("#clave", desk_code)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("#desk").is_visible()
        assert page.locator("#volunteers tr").count() == 3          # header + the two invitations
        shot(page, "2-desk")
        sha = photos["q1.jpg"][0]
        with page.expect_navigation():
            page.click(f"#queue a[href='/coordinacion/foto/{sha}']")
        page.wait_for_function("document.getElementById('photo').complete && "
                               "document.getElementById('photo').naturalWidth > 0")
        diff = page.eval_on_selector_all("#entries td.tr-diff", "els => els.map(e => e.dataset.field)")
        # only the moved vote is highlighted: the two lines it moved between, and the two totals computed
        assert set(diff) == {"l_1", "l_34", "v_EG", "v_NM"}
        shot(page, "3-desk-photo")
        page.fill("#comentario", "El acta dice EG uno menos")
        with page.expect_navigation():
            page.click("#comment")
        entry_ids = page.eval_on_selector_all("#entries input[name=entrada]", "els => els.map(e => e.value)")
        page.check(f"#pick-{entry_ids[1]}")
        with page.expect_navigation():
            page.click("#accept")
        assert page.inner_text("#state") == "agreed" and "El acta dice EG uno menos" in page.inner_text("#comments")
        shot(page, "4-decided")
    finally:
        proc.terminate()
        proc.wait(10)
    db = sqlite3.connect(wd / "state.db")
    try:
        eg = db.execute("SELECT json_extract(votes, '$.EG') FROM actas WHERE image_sha256 = ?", (sha,)).fetchone()[0]
        assert eg == int(photos["q1.jpg"][1]["EG"]) - 1
    finally:
        db.close()
