"""The transcription app over HTTP (in-process, real workdir): access code, sessions, CSRF,
headers, who gets which photo, and the photo bytes. The full flow in a browser is in
test_transcribe_browser.py.
"""
from __future__ import annotations

import json
import re
import sqlite3

import httpx
import pytest
from click.testing import CliRunner

from publish.site import server as site_mod
from publish.transcribe import app as transcribe
from publish.transcribe.server import make_datasette as make_transcribe_datasette


class Volunteer(site_mod.InProcessClient):
    """One browser: its own cookies and address, following redirects (on the client's loop thread)."""

    def __init__(self, ds, address: str = "127.0.0.1"):
        super().__init__(ds)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=ds.app(), client=(address, 50000)),
                                        base_url="http://127.0.0.1", follow_redirects=True)

    def get(self, path: str, **kw) -> httpx.Response:
        return self.run(self.client.get(path, **kw))

    def post(self, path: str, data: dict, token: bool = True) -> httpx.Response:
        if token:
            data = {"csrftoken": self.token(path), **data}
        return self.run(self.client.post(path, data=data))

    def token(self, path: str) -> str:
        page = self.get("/" if path in ("/entrar", "/salir") else path).text
        return re.search(r'name="csrftoken" value="([^"]+)"', page).group(1)

    def close(self):
        self.run(self.client.aclose())
        super().close()


@pytest.fixture
def app(transcribe_workdir, copy_tree):
    from archive import known_answers
    from archive.workdir import Workdir
    path = copy_tree(transcribe_workdir.path)
    with Workdir(path, create=False) as wd:
        known_answers.configure(wd.db, share_=0)
    state = transcribe.prepare(path)
    ds = make_transcribe_datasette(state)
    people = []

    def person(name: str | None = None, code: str | None = None, address: str = "127.0.0.1") -> Volunteer:
        v = Volunteer(ds, address)
        people.append(v)
        if name:
            assert v.get(f"/?clave={code or state.code}").status_code == 200
            r = v.post("/entrar", {"nombre": name})
            assert r.status_code == 200 and "/foto/" in str(r.url), r.text[:300]
        return v
    yield state, person
    for p in people:
        p.close()


def test_every_page_and_photo_needs_the_access_code(app, transcribe_workdir):
    state, person = app
    stranger = person()
    sha = transcribe_workdir.photos["t_new1.jpg"][0]
    assert 'id="clave"' in stranger.get("/").text
    for path in ("/siguiente", f"/foto/{sha}"):
        r = stranger.get(path)
        assert str(r.url).endswith("/") and 'id="clave"' in r.text     # back to sign in
    assert stranger.get(f"/foto/{sha}/imagen").status_code == 403
    assert stranger.get("/estado.json").status_code == 403
    r = stranger.post("/entrar", {"clave": "zzzz-zzzz-zzzz", "nombre": "Intruso"})
    assert r.status_code == 403 and "no es la clave" in r.text
    # the code can be typed loosely (spaces, capitals, no dashes)
    r = stranger.post("/entrar", {"clave": " " + state.code.replace("-", " ").upper(), "nombre": "Ana"})
    assert r.status_code == 200 and "/foto/" in str(r.url)
    assert stranger.get(f"/foto/{sha}/imagen").status_code == 200


def test_wrong_codes_are_throttled_per_address(app):
    state, person = app
    guesser = person(address="10.0.0.9")
    for _ in range(transcribe.MAX_FAILURES):
        assert guesser.get("/?clave=nope").status_code == 403
    r = guesser.get(f"/?clave={state.code}")                   # even the right one waits a moment now
    assert r.status_code == 429 and f"espere {transcribe.SLOW_SECONDS} segundos" in r.text
    assert person(address="10.0.0.10").get(f"/?clave={state.code}").status_code == 200   # others are not blocked


def test_the_right_code_is_never_locked_out_only_slowed(app, monkeypatch):
    # a whole school behind one router: a volunteer's typos must not lock the others out
    monkeypatch.setattr(transcribe, "SLOW_SECONDS", 0.4)
    state, person = app
    school = person(address="10.0.0.9")
    for _ in range(transcribe.MAX_FAILURES + 5):
        assert school.get("/?clave=nope").status_code in (403, 429)
    assert school.get("/?clave=nope").status_code == 429      # guessing: one try per pause
    import time
    time.sleep(0.5)
    assert school.get("/?clave=nope").status_code == 403      # its turn: checked (and wrong)
    time.sleep(0.5)
    r = school.get(f"/?clave={state.code}")                   # its turn: the right code gets in
    assert r.status_code == 200 and 'id="clave"' not in r.text


def test_a_new_code_signs_everyone_out(app, transcribe_workdir):
    state, person = app
    ana = person("Ana")
    assert ana.get("/estado.json").json()["ok"] is True
    fresh = transcribe.prepare(state.workdir, rotate_code=True)
    assert fresh.code != state.code and fresh.secret == state.secret
    state.code = fresh.code
    assert ana.get("/estado.json").status_code == 403


def test_only_the_app_is_served_with_strict_headers(app):
    state, person = app
    ana = person("Ana")
    for path in ("/-/versions", "/-/metadata.json", "/_memory", "/-/static/app.css", "/foto/abc"):
        assert ana.get(path).status_code == 404, path
    r = ana.get("/siguiente")
    assert "script-src 'self'" in r.headers["content-security-policy"] and "unsafe-inline" not in r.headers[
        "content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text and not re.search(r"\son\w+=", r.text)      # CSP: no inline code
    assert ana.get("/assets/transcribe.js").status_code == 200
    too_big = ana.run(ana.client.post("/entrar", content=b"x" * (transcribe.MAX_BODY + 1)))
    assert too_big.status_code == 413


def test_post_without_csrf_token_is_refused(app, transcribe_workdir):
    state, person = app
    ana = person("Ana")
    sha, row = transcribe_workdir.photos["t_new1.jpg"]
    r = ana.post(f"/foto/{sha}", {"centro": row["CENTRO"]}, token=False)
    assert r.status_code == 403
    assert ana.get("/estado.json").json()["entries"] == 0


def test_photo_page_shows_no_numbers_and_the_photo_has_no_exif(app, transcribe_workdir):
    from archive.transcription_form import form_fields
    from test_transcription import fields_of
    state, person = app
    sha, row = transcribe_workdir.photos["t_new1.jpg"]
    ana, beto = person("Ana"), person("Beto")
    r = ana.post(f"/foto/{sha}", fields_of(row))
    assert "otra persona" in r.text                               # saved; waits for a second entry
    page = beto.get(f"/foto/{sha}").text
    boxes = re.findall(r'<input id="(\w+)" name="\1" inputmode="\w+"[^>]*value="([^"]*)"', page)
    assert [b[0] for b in boxes] == [f[0] for f in form_fields(state.election)]      # the paper's order
    assert len(boxes) == 2 + 38 + 5 and all(v == "" for _, v in boxes)             # and nobody's numbers
    # under each candidate, their party lines with sigla and party code, as printed; no total box
    assert re.search(r'Nicolás Maduro Moros.*?<span class="tr-sigla">PSUV</span> <span class="tr-pcode">269</span>', page, re.S)
    assert page.index("PSUV") < page.index("AD</span>") < page.index("UNTC") < page.index("CONDE")
    assert 'id="t_EG"' in page and 'name="v_' not in page
    img = beto.get(f"/foto/{sha}/imagen")
    assert img.headers["content-type"] == "image/jpeg" and img.headers["cache-control"] == "no-store"
    assert b"Exif" not in img.content[:2000] and img.content[:2] == b"\xff\xd8"
    # a photo the volunteer already entered is not offered again
    assert sha not in str(ana.get(f"/foto/{sha}").url)


def test_photos_are_handed_out_at_random_and_can_be_skipped(app, transcribe_workdir):
    state, person = app
    ana, beto, carla = person("Ana"), person("Beto"), person("Carla")
    first = lambda v: str(v.get("/siguiente").url).rsplit("/", 1)[-1]   # noqa: E731
    a, b, c = first(ana), first(beto), first(carla)
    queue = {sha for sha, _ in transcribe_workdir.photos.values()}
    assert {a, b, c} <= queue   # at random: nobody can arrange to get the photo a friend has
    skipped = str(ana.get(f"/siguiente?saltar={a}").url).rsplit("/", 1)[-1]
    assert skipped not in (a,)


def test_lan_warning_only_off_loopback():
    assert transcribe.lan_warning("127.0.0.1", 8002, "abcd") is None
    assert transcribe.lan_warning("localhost", 8002, "abcd") is None
    assert transcribe.lan_warning("::1", 8002, "abcd") is None
    text = transcribe.lan_warning("0.0.0.0", 8002, "abcd-efgh")
    assert "abcd-efgh" in text and "not encrypted" in text and "no va cifrada" in text
    assert transcribe.lan_warning("192.168.1.20", 8002, "x")


def test_status_command_and_empty_workdir(transcribe_workdir, small_workdir, copy_tree):
    from publish.cli import cli
    r = CliRunner().invoke(cli, ["transcribe", "--workdir", str(transcribe_workdir.path), "--status", "--json"])
    assert r.exit_code == 0, r.output
    assert '"open": %d' % len(transcribe_workdir.photos) in r.output
    r = CliRunner().invoke(cli, ["transcribe", "--workdir", str(copy_tree(small_workdir)), "--port", "0"])
    assert r.exit_code == 1 and "no photos waiting for transcription" in r.output


# --- invitations and the coordinator's desk --------------------------------------------------------

@pytest.fixture
def invited_app(transcribe_workdir, copy_tree):
    """The app of a workdir where the coordinator invited three people (the shared code is off)."""
    from archive import known_answers, volunteers
    from archive.transcription import Transcriptions
    path = copy_tree(transcribe_workdir.path)
    q = Transcriptions(path)
    known_answers.configure(q.db, share_=0)
    links = [i.token for i in volunteers.invite(q.db, "Vol", 3)]
    q.close()
    state = transcribe.prepare(path)
    ds = make_transcribe_datasette(state)
    people = []

    def person(token: str | None = None) -> Volunteer:
        v = Volunteer(ds)
        people.append(v)
        if token:
            r = v.get(f"/invitacion/{token}")
            assert r.status_code == 200 and 'id="invited"' in r.text, r.text[:300]
        return v
    yield state, person, links, path
    for p in people:
        p.close()


def test_one_invitation_typing_two_names_cannot_make_an_acta(invited_app, transcribe_workdir):
    from test_transcription import fields_of
    state, person, links, path = invited_app
    assert not state.room_code
    sha, row = transcribe_workdir.photos["t_new1.jpg"]
    # the shared code no longer lets anyone in
    stranger = person()
    assert 'id="invitation-only"' in stranger.get("/").text
    r = stranger.get(f"/?clave={state.code}")
    assert r.status_code == 403 and "invitaciones personales" in r.text
    assert stranger.get("/estado.json").status_code == 403
    ana = person(links[0])
    for name in ("Ana Pérez", "Beatriz Falsa"):              # two names typed by one invitation
        ana.post("/entrar", {"nombre": name, "alias": ""})
        ana.post(f"/foto/{sha}", fields_of(row))
    db = sqlite3.connect(path / "state.db")
    try:
        assert db.execute("SELECT count(*), count(DISTINCT volunteer_id) FROM transcription_entries").fetchone() == (1, 1)
        assert db.execute("SELECT count(*) FROM actas WHERE image_sha256 = ?", (sha,)).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM volunteers WHERE name IN ('Ana Pérez', 'Beatriz Falsa')").fetchone()[0] == 0
    finally:
        db.close()
    # a second invitation agrees: now it is an acta
    beto = person(links[1])
    r = beto.post(f"/foto/{sha}", fields_of(row))
    assert "ya es un acta" in r.text


def test_a_revoked_invitation_is_refused(invited_app, transcribe_workdir):
    from archive.transcription import Transcriptions
    state, person, links, path = invited_app
    ana = person(links[0])
    assert ana.get("/estado.json").json()["ok"] is True
    q = Transcriptions(path)
    q.revoke(q.invited(links[0]).id)
    q.close()
    assert ana.get("/estado.json").status_code == 403                 # the session is dead at once
    assert "/foto/" not in str(ana.get("/siguiente").url)
    r = person().get(f"/invitacion/{links[0]}")
    assert r.status_code == 403 and "retirada" in r.text
    assert person().get("/invitacion/not-a-real-link").status_code == 404


def test_the_desk_decides_an_unresolved_photo_behind_its_own_code(invited_app, transcribe_workdir):
    from archive import consensus
    from archive.transcription import Transcriptions
    from test_transcription import fields_of
    state, person, links, path = invited_app
    sha, row = transcribe_workdir.photos["t_new2.jpg"]
    q = Transcriptions(path)
    from archive import volunteers
    vids = [i.id for i in volunteers.invite(q.db, "Más", consensus.MAX_ENTRIES)]
    for i, v in enumerate(vids):
        q.save(sha, v, fields_of(row, move=i))
    assert q.photo(sha).state == "unresolved"
    entry = q.db.execute("SELECT id FROM transcription_entries WHERE volunteer_id = ?", (vids[1],)).fetchone()[0]
    q.close()
    ana = person(links[0])                                            # a volunteer is not the coordinator
    assert 'id="desk-sign-in"' in ana.get("/coordinacion").text
    assert ana.get(f"/coordinacion/foto/{sha}/imagen").status_code == 403
    assert ana.get("/coordinacion?clave=" + state.code).status_code == 403   # the volunteers' code is not it
    coord = person()
    r = coord.get(f"/coordinacion?clave={state.desk_code}")
    assert r.status_code == 200 and 'id="queue"' in r.text and sha[:12] in r.text and 'id="volunteers"' in r.text
    page = coord.get(f"/coordinacion/foto/{sha}").text
    assert page.count('class="tr-diff') >= 4                         # the moved votes are highlighted
    coord.post(f"/coordinacion/foto/{sha}", {"accion": "comentar", "comentario": "EG se lee 1 menos"})
    r = coord.post(f"/coordinacion/foto/{sha}", {"accion": "aceptar", "entrada": str(entry)})
    assert 'id="state">agreed' in r.text and "EG se lee 1 menos" in r.text
    q = Transcriptions(path)
    try:
        votes = q.db.execute("SELECT votes FROM actas WHERE image_sha256 = ?", (sha,)).fetchone()[0]
        assert json.loads(votes)["EG"] == int(row["EG"]) - 1
    finally:
        q.close()
    assert coord.get(f"/coordinacion/foto/{sha}/imagen").status_code == 200


def test_invite_and_revoke_commands(transcribe_workdir, copy_tree):
    from publish.cli import cli
    path = copy_tree(transcribe_workdir.path)
    r = CliRunner().invoke(cli, ["transcribe", "--workdir", str(path), "--invite", "Escuela", "--count", "2",
                                 "--host", "192.168.1.20", "--port", "8080"])
    assert r.exit_code == 0, r.output
    links = re.findall(r"http://192\.168\.1\.20:8080/invitacion/[\w-]+", r.output)
    assert len(links) == 2 and "#1  Escuela 1" in r.output and ("█" in r.output or "▀" in r.output)
    r = CliRunner().invoke(cli, ["transcribe", "--workdir", str(path), "--revoke", "1", "--void"])
    assert r.exit_code == 0 and "revoked" in r.output, r.output
    r = CliRunner().invoke(cli, ["transcribe", "--workdir", str(path), "--invitations"])
    assert "revoked" in r.output and "active" in r.output
    r = CliRunner().invoke(cli, ["transcribe", "--workdir", str(path), "--revoke", "99"])
    assert r.exit_code == 1 and "no invitation 99" in r.output
    r = CliRunner().invoke(cli, ["transcribe", "--workdir", str(path), "--consensus", "2of3", "--status", "--json"])
    assert json.loads(r.output)["rule"] == "2of3"


def test_the_session_cookie_is_secure_over_https_only(app):
    state, person = app
    for scheme, secure in (("https", True), ("http", False)):
        v = person()
        v.client.base_url = f"{scheme}://127.0.0.1"
        r = v.get(f"/?clave={state.code}")
        cookies = [h for resp in (*r.history, r) for h in resp.headers.get_list("set-cookie")
                   if h.startswith("ds_actor=")]
        assert cookies, (scheme, r.history)
        assert all(("; secure" in c.lower()) == secure for c in cookies), (scheme, cookies)
        assert all("httponly" in c.lower() and "samesite=strict" in c.lower() for c in cookies)
