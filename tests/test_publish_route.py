"""The Datasette ecosystem's scale-out route: `datasette publish` with the site's plugin.

`datasette publish fly --generate-dir` (the datasette-publish-fly plugin) writes the app a
cloud would build (Dockerfile, metadata, the database, the bundle as a static folder) without
reaching any cloud. The test then runs that app's own command line here, as its container
would, with this machine's Datasette and testigo: the public site must answer as `testigo
serve` does (its pages, photos, headers, no visitors' SQL). Cloud Run and Vercel take the same
options (deploy/README.md).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from nginx import free_port
from test_site import mesa_of

BIN = Path(sys.executable).parent


def test_datasette_publish_fly_app_serves_the_site(bundle, tmp_path, photo_workdir):
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({"plugins": {"testigo_site": {"bundle": "bundle"}}}))
    app = tmp_path / "app"
    r = subprocess.run([str(BIN / "datasette"), "publish", "fly", str(bundle / "ve-2024.db"), "--app", "testigo-site",
                        "--generate-dir", str(app), "--metadata", str(metadata), "--static", f"bundle:{bundle}",
                        "--install", "git+https://github.com/example/testigo.git",
                        "--setting", "default_allow_sql", "off", "--setting", "sql_time_limit_ms", "1000"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    dockerfile = (app / "Dockerfile").read_text()
    assert "git+https://github.com/example/testigo.git" in dockerfile and (app / "fly.toml").is_file()
    assert (app / "bundle" / "SHA256SUMS").read_bytes() == (bundle / "SHA256SUMS").read_bytes()
    # the container's steps, here: its RUN datasette ... lines, then its CMD on a loopback port
    runs = [line[4:] for line in dockerfile.splitlines() if line.startswith("RUN datasette ")]
    for cmd in runs:
        subprocess.run([str(BIN / "datasette"), *shlex.split(cmd)[1:]], cwd=app, check=True, timeout=120)
    cmd = shlex.split(re.search(r"^CMD (.*)$", dockerfile, re.M).group(1).replace("$PORT", str(free_port())))
    cmd = [str(BIN / "datasette")] + cmd[1:]
    cmd[cmd.index("--host") + 1] = "127.0.0.1"
    port = cmd[cmd.index("--port") + 1]
    proc = subprocess.Popen(cmd, cwd=app, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as h:
            deadline = time.monotonic() + 60
            while True:
                try:
                    home = h.get("/")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                    time.sleep(0.2)
            assert home.status_code == 200 and "Busque su centro" in home.text, home.text[:500]
            mid = mesa_of(photo_workdir.facts["agree"])
            mesa = h.get(f"/mesa/{mid}.json").json()
            image = next(a["image_url"] for a in mesa["actas"] if a["image_url"])
            assert h.get(image).status_code == 200                               # out of the shards
            page = h.get(f"/mesa/{mid}")
            assert page.status_code == 200 and page.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
            css = re.search(r'href="(/assets/site\.css[^"]*)"', page.text).group(1)
            assert h.get(css).status_code == 200
            assert h.get("/totales.json").json()["votes"] == photo_workdir.facts["expected_totals"]
            assert h.get("/ve-2024.json?sql=select+1").status_code == 403          # no visitors' SQL
            assert h.get("/ve-2024/acta_votes.json?_facet=votes").status_code == 400
            table = h.get("/ve-2024/actas")                                      # the data browser,
            assert table.status_code == 200 and "Cada lectura de un acta" in table.text   # with the site's metadata
    finally:
        proc.terminate()
        proc.wait(10)
    shutil.rmtree(app, ignore_errors=True)
