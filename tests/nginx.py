"""Debian's nginx, started on loopback with the repository's deploy/nginx.conf (for tests).

The shipped file is a site for /etc/nginx/sites-enabled; here it is rendered into a temporary
folder with a free port, the test's upstream and a cache folder of its own, and wrapped in a
minimal main configuration whose every path is in that folder (no root needed, nothing of the
machine's nginx touched). Each substitution must match the shipped file exactly once, so the
test breaks when the file changes shape instead of silently testing something else.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE_CONF = ROOT / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

MAIN = """\
{user}worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/testigo.conf;
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def substitute(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise AssertionError(f"deploy/nginx.conf should contain {old!r} exactly once")
    return text.replace(old, new)


def render(tmp: Path, port: int, upstream: str, replace: dict[str, str] | None = None) -> Path:
    """Write nginx.conf + testigo.conf into ``tmp``; return the main file. ``replace``: more
    substitutions (each must match once), e.g. a smaller limit that a test can reach."""
    site = SITE_CONF.read_text()
    for old, new in (replace or {}).items():
        site = substitute(site, old, new)
    site = substitute(site, "listen 80;", f"listen 127.0.0.1:{port};")
    lines = site.splitlines(keepends=True)
    v6 = [line for line in lines if "listen [::]:80;" in line]
    assert len(v6) == 1, "deploy/nginx.conf should listen on [::]:80 once"
    site = "".join(line for line in lines if line not in v6)
    site = substitute(site, "server 127.0.0.1:8001;", f"server {upstream};")
    site = substitute(site, "proxy_cache_path /var/cache/nginx/testigo ", f"proxy_cache_path {tmp / 'cache'} ")
    (tmp / "testigo.conf").write_text(site)
    # as root, workers would switch to nobody and could not enter a private temp folder
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(MAIN.format(tmp=tmp, user=user))
    return tmp / "nginx.conf"


def check_config(tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run([NGINX, "-t", "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")],
                          capture_output=True, text=True, timeout=30)


class Nginx:
    """nginx in front of ``upstream`` (host:port) on a free loopback port, until stop()."""

    def __init__(self, tmp: Path, upstream: str, replace: dict[str, str] | None = None):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        render(self.tmp, self.port, upstream, replace)
        self._start()

    def _start(self) -> None:
        checked = check_config(self.tmp)
        if checked.returncode != 0:
            raise AssertionError(f"nginx -t refused the configuration:\n{checked.stderr}")
        self.proc = subprocess.Popen([NGINX, "-p", str(self.tmp), "-c", str(self.tmp / "nginx.conf"),
                                      "-e", str(self.tmp / "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited: {self.proc.stderr.read().decode()}{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise AssertionError("nginx did not start listening within 20 s")
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        p = self.tmp / "error.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()          # fast shutdown: the master stops its workers
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


APP_CONF = ROOT / "deploy" / "nginx-app.conf"


class StaticNginx(Nginx):
    """Debian's nginx serving the folder ``root`` with deploy/nginx-app.conf (Range and CORS), on a
    free loopback port; ``replace``: more substitutions, e.g. ``max_ranges 0`` for a host that
    ignores Range. The access log records each answer's bytes (``requests()``)."""

    def __init__(self, tmp: Path, root: Path, replace: dict[str, str] | None = None):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        site = APP_CONF.read_text()
        for old, new in (replace or {}).items():
            site = substitute(site, old, new)
        site = substitute(site, "    listen 80;\n", f"    listen 127.0.0.1:{self.port};\n")
        site = substitute(site, "    listen [::]:80;\n", "")
        site = substitute(site, "root /srv/testigo-app;", f"root {Path(root).resolve()};")
        (self.tmp / "testigo.conf").write_text(site)
        user = "user root;\n" if os.geteuid() == 0 else ""
        (self.tmp / "nginx.conf").write_text(MAIN.format(tmp=self.tmp, user=user).replace(
            f"access_log {self.tmp}/access.log;",
            "log_format bytes '$request_method $uri $status $bytes_sent \"$http_range\"';\n"
            f"    access_log {self.tmp}/access.log bytes;"))
        self._start()

    def requests(self) -> list[tuple[str, str, int, int, str]]:
        """(method, path, status, bytes sent, Range header) of every request answered so far."""
        p = self.tmp / "access.log"
        out = []
        for line in (p.read_text().splitlines() if p.exists() else []):
            method, path, status, sent, rng = line.split(" ", 4)
            out.append((method, path, int(status), int(sent), rng.strip('"')))
        return out
