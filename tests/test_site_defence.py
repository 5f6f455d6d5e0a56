"""The site under attack: security headers, the data browser's gate and process, cheap sorts
and facets only. Real bundles, Datasette's in-process client and the real server over HTTP."""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from publish.site import server as site_mod
from publish.site.browser import CHUNK_BYTES, NICE
from publish.site.gate import Busy, Gate
from publish.site.headers import inline_scripts, script_hash
from test_site import SiteClient, mesa_of, site, start_server, stop_server  # noqa: F401 (site: fixture)

ROOT = Path(__file__).resolve().parent.parent


def run_async(coro):
    """asyncio.run in a thread of its own (Playwright's sync API may hold this thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


def csp_of(r: httpx.Response) -> dict[str, list[str]]:
    out = {}
    for part in r.headers["content-security-policy"].split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def every_kind_of_answer(site, facts) -> list[str]:
    mesa = site.json(f"/mesa/{mesa_of(facts['agree'])}.json")
    image = next(a["image_url"] for a in mesa["actas"] if a["image_url"])
    return ["/", "/?lang=en", f"/mesa/{mesa_of(facts['agree'])}", f"/mesa/{mesa_of(facts['agree'])}.json",
            "/buscar?q=zulia", "/totales", "/totales/estado/1.json", "/comprobar", "/descargas", "/acerca",
            "/descargas/SHA256SUMS", "/descargas/ve-2024.db", image, "/robots.txt", "/mesa/999999999.01",
            "/ve-2024", "/ve-2024/actas", "/ve-2024/actas.json", "/ve-2024/actas/1", "/ve-2024/mesa?id=1.01",
            "/ve-2024/nope", "/ve-2024.db", "/-/static/app.css", "/-/versions.json",
            f"/assets/site.css?v={site.ds.testigo_site.bundle.static_version}", "/favicon.ico"]


# --- headers ---------------------------------------------------------------------------------------

def test_every_answer_carries_the_security_headers(site, photo_workdir):
    for path in every_kind_of_answer(site, photo_workdir.facts):
        r = site.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "no-referrer", path
        assert r.headers["x-frame-options"] == "DENY", path
        csp = csp_of(r)
        assert csp["frame-ancestors"] == ["'none'"], path
        scripts = csp.get("script-src") or csp["default-src"]
        assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, path
        if path.startswith(("/images/", "/descargas/")):
            assert "sandbox" in csp and csp["default-src"] == ["'none'"], path   # files never run


def test_405_and_busy_answers_carry_them_too(bundle):
    ds = site_mod.make_datasette(bundle)
    c = SiteClient(ds)
    try:
        r = c.run(ds.client.post("/ve-2024/actas", data={"a": "1"}))
        assert r.status_code == 405 and csp_of(r)["frame-ancestors"] == ["'none'"]
        ds.testigo_site.gate.queue, ds.testigo_site.gate.refusal_delay_s = 0, 0.0

        async def while_busy():
            async with ds.testigo_site.gate.turn():        # someone holds the only turn
                return (await ds.client.get("/ve-2024/actas.json?x=1"), await ds.client.get("/ve-2024/actas"),
                        await ds.client.get("/totales.json?x=busy"))
        data_json, data_html, own = c.run(while_busy())
        assert data_json.status_code == 503 and data_json.headers["retry-after"] == "10"
        assert data_json.json()["ok"] is False and "/descargas" in data_json.json()["error"]
        assert data_html.status_code == 503 and "descargue" in data_html.text
        assert data_html.headers["cache-control"] == "no-store" and "content-security-policy" in data_html.headers
        assert own.status_code == 200                       # the site's own pages never wait
    finally:
        c.close()


def test_inline_scripts_of_every_page_are_allowed_by_hash_and_ours_have_none(site, photo_workdir):
    seen = 0
    for path in every_kind_of_answer(site, photo_workdir.facts):
        r = site.get(path)
        if not r.headers.get("content-type", "").startswith("text/html"):
            continue
        allowed = set(csp_of(r)["script-src"])
        for body in inline_scripts(r.text):
            assert script_hash(body) in allowed, (path, body[:80])
            seen += 1
    assert seen >= 3        # Datasette's table page and base template have some: the test saw them
    for tpl in (ROOT / "publish" / "templates").glob("*.html"):
        text = tpl.read_text()
        assert not inline_scripts(text), f"{tpl.name}: inline <script> (move it to publish/static)"
        assert not re.search(r"\son[a-z]+\s*=", text, re.I), f"{tpl.name}: on*= attribute"


def test_policy_blocks_an_injected_script_and_lets_datasette_run(bundle, page):
    proc, url = start_server(bundle)
    try:
        errors = []
        page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(url + "ve-2024/actas")
        # Datasette's own inline script ran (allowed by its hash) and its table.js too
        assert page.evaluate("window.DATASETTE_ALLOW_FACET") is True
        assert errors == []
        # the same headers over a page that someone managed to inject a script into: it never runs

        def inject(route):
            r = route.fetch()
            route.fulfill(response=r, body=r.text().replace("</body>", "<script>window.pwned = 1</script></body>"))
        page.route("**/acerca", inject)
        page.goto(url + "acerca")
        assert page.evaluate("typeof window.pwned") == "undefined"
        assert any("inline script" in e for e in errors)
    finally:
        stop_server(proc)


# --- the gate ----------------------------------------------------------------------------------------

def test_gate_keeps_a_few_waiting_and_refuses_the_rest_after_a_delay():
    async def scenario():
        gate = Gate(concurrency=1, queue=1, wait_s=5, refusal_delay_s=0.3)
        order = []

        async def request(name, hold):
            try:
                async with gate.turn():
                    order.append(f"start {name}")
                    await asyncio.sleep(hold)
                return name
            except Busy:
                return f"busy {name}"
        first = asyncio.create_task(request("a", 0.2))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(request("b", 0))       # waits for a
        await asyncio.sleep(0.01)
        t = time.monotonic()
        third = await request("c", 0)                        # nobody may wait: refused, not at once
        refused_after = time.monotonic() - t
        return await first, await second, third, refused_after, order, gate
    a, b, c, refused_after, order, gate = run_async(scenario())
    assert (a, b, c) == ("a", "b", "busy c") and order == ["start a", "start b"]
    assert refused_after >= 0.29 and gate.turned_away == 1 and gate.running == 0

    async def timeout():
        gate = Gate(concurrency=1, queue=4, wait_s=0.1, refusal_delay_s=0)
        async with gate.turn():
            with pytest.raises(Busy):
                async with gate.turn():
                    pass
        async with gate.turn():                              # and the turn came back
            return gate.running
    assert run_async(timeout()) == 1


# --- sorts and facets -----------------------------------------------------------------------------------

def test_sorts_and_facets_only_where_an_index_answers(site):
    assert site.get("/ve-2024/actas.json?_sort=mesa_id").status_code == 200
    assert site.get("/ve-2024/actas.json?_sort_desc=status").status_code == 200
    assert site.get("/ve-2024/totals_centro.json?candidate=EG&_sort_desc=votes").status_code == 200
    for path in ("/ve-2024/acta_votes.json?_sort=votes", "/ve-2024/actas?_sort=validos",
                 "/ve-2024/mesas?_sort_desc=electores"):
        r = site.get(path)
        assert r.status_code == 400 and "Cannot sort" in r.text, path      # the visitor's error, not a 500
    for path in ("/ve-2024/acta_votes?_facet=votes", "/ve-2024/actas.json?_facet=validos&_facet=status",
                 "/ve-2024/mesas.json?_facet_array=electores"):
        r = site.get(path)
        assert r.status_code == 400 and "indexed columns" in r.text, path
        assert r.headers["content-security-policy"]
    ok = site.json("/ve-2024/acta_votes.json?_facet=candidate&_size=0")          # indexed
    assert {f["value"] for f in ok["facet_results"]["candidate"]["results"]} >= {"EG", "NM"}
    assert site.get("/ve-2024/totals_centro.json?_facet=estado&_size=0").status_code == 200  # the table's own
    data = site.json("/ve-2024/actas.json?_extra=facet_results")
    facets = data.get("facet_results", {})
    facets = facets.get("results", facets)
    assert {"source", "status", "crosscheck"} <= set(facets)
    html = site.get("/ve-2024/actas").text
    assert "_sort=mesa_id" in html and "_sort=validos" not in html        # links only for indexed columns


# --- the data browser process -------------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_serve_runs_datasette_pages_in_a_niced_process_that_comes_back(bundle):
    proc, url = start_server(bundle)
    try:
        kids = children(proc.pid)
        assert len(kids) == 1
        data = kids[0]
        front_nice = os.getpriority(os.PRIO_PROCESS, proc.pid)
        assert os.getpriority(os.PRIO_PROCESS, data) == min(19, front_nice + NICE) > front_nice
        with httpx.Client(base_url=url, timeout=30) as h:
            r = h.get("/ve-2024/actas.json?_shape=array&_size=3")
            assert r.status_code == 200 and len(r.json()) == 3
            assert r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"
            os.kill(data, signal.SIGKILL)
            deadline = time.monotonic() + 60
            statuses = set()
            while time.monotonic() < deadline:
                r = h.get("/ve-2024/actas.json?_shape=array&_size=3&n=" + str(time.monotonic()))
                statuses.add(r.status_code)
                assert h.get("/totales.json").status_code == 200     # the site itself never noticed
                if r.status_code == 200:
                    break
                time.sleep(0.2)
            assert r.status_code == 200 and statuses <= {200, 503}
            assert children(proc.pid) and children(proc.pid)[0] != data
            kids = children(proc.pid)
    finally:
        stop_server(proc)
    time.sleep(0.5)
    assert all(not Path(f"/proc/{k}").exists() or "zombie" in Path(f"/proc/{k}/status").read_text().lower()
               for k in kids)


def test_a_streamed_csv_export_reaches_the_visitor_whole_in_few_large_chunks(bundle):
    """Datasette streams a CSV export one row per message; the data browser process sends it in
    pieces of CHUNK_BYTES, so the front (which answers the public's pages) forwards a few chunks,
    not one per row, and the visitor still gets every row."""
    import sqlite3
    conn = sqlite3.connect(f"file:{bundle / 've-2024.db'}?mode=ro&immutable=1", uri=True)
    rows = conn.execute("SELECT count(*) FROM acta_votes").fetchone()[0]
    conn.close()
    assert rows > 2000
    proc, url = start_server(bundle)
    try:
        with httpx.Client(base_url=url, timeout=60) as h:
            with h.stream("GET", "/ve-2024/acta_votes.csv?_stream=on&_size=max") as r:
                chunks = list(r.iter_raw())
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    finally:
        stop_server(proc)
    body = b"".join(chunks)
    lines = body.decode().splitlines()
    assert lines[0] == "acta_id,candidate,votes"
    assert len(lines) == rows + 1
    assert len(chunks) <= 2 * (len(body) // CHUNK_BYTES + 2), (len(chunks), len(body))
