"""A real MediaWiki on loopback for the tests: Debian's ``mediawiki`` package, SQLite, PHP's
built-in server.

Everything lives in one temporary folder: ``install.php`` writes the database and
``LocalSettings.php`` there (the package's code in /usr/share/mediawiki is only read; the web
server finds the settings through ``MW_CONFIG_FILE``), uploads go to its ``images/``, and the
maintenance scripts make a bot account with a bot password, as an uploader on Commons would
have. ``php -S 127.0.0.1:PORT`` serves it; :meth:`MediaWiki.stop` ends that process.

Debian packages needed (Makefile APT_TEST): ``mediawiki php-cli php-sqlite3``.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

CODE = Path("/usr/share/mediawiki")
PHP = shutil.which("php") or "/usr/bin/php"
GRANTS = "basic,highvolume,uploadfile,uploadeditmovefile,createeditmovepage,editpage"


def available() -> str | None:
    """Why a wiki cannot be run here, or None."""
    if not (CODE / "maintenance" / "install.php").is_file():
        return "Debian's mediawiki package is not installed (make install-test)"
    if not Path(PHP).is_file():
        return "php-cli is not installed (make install-test)"
    out = subprocess.run([PHP, "-m"], capture_output=True, text=True).stdout
    if "pdo_sqlite" not in out:
        return "php-sqlite3 is not installed (make install-test)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MediaWiki:
    def __init__(self, root: Path, *, bot: str = "ActaBot", app: str = "testigo"):
        self.root = Path(root)
        self.settings = self.root / "LocalSettings.php"
        self.bot, self.app = bot, app
        self.bot_password = secrets.token_hex(16)       # 32 characters of [0-9a-f], as MediaWiki makes them
        self.admin_password = "Admin-" + secrets.token_hex(8)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log = self.root / "server.log"

    # --- set-up --------------------------------------------------------------------------
    def _php(self, *args: str) -> str:
        env = {**os.environ, "MW_CONFIG_FILE": str(self.settings)}
        r = subprocess.run([PHP, *args], cwd=CODE, env=env, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"php {' '.join(args[:1])} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        return r.stdout

    def install(self) -> None:
        (self.root / "db").mkdir(parents=True)
        (self.root / "images").mkdir()
        (self.root / "cache").mkdir()
        self.port = _free_port()
        self._php("maintenance/install.php", "--dbtype=sqlite", f"--dbpath={self.root / 'db'}",
                  "--dbname=testwiki", f"--server=http://127.0.0.1:{self.port}", "--scriptpath=",
                  "--lang=en", f"--pass={self.admin_password}", f"--confpath={self.root}",
                  "Testigo Test Wiki", "Admin")
        with open(self.settings, "a", encoding="utf-8") as f:
            f.write(f"""
# --- testigo's test wiki ---
$wgEnableUploads = true;
$wgUseImageMagick = false;
$wgUploadDirectory = "{self.root / 'images'}";
$wgUploadPath = "/uploads";
$wgFileExtensions = [ 'jpg', 'jpeg', 'png' ];
$wgEnableBotPasswords = true;
$wgMainCacheType = CACHE_DB;
$wgSessionCacheType = CACHE_DB;
$wgCacheDirectory = "{self.root / 'cache'}";
$wgJobRunRate = 1;
$wgRateLimits['upload']['user'] = [ 1000, 60 ];
""")
        self._php("maintenance/createAndPromote.php", "--bot", self.bot, "Bot-" + secrets.token_hex(8))
        self._php("maintenance/createBotPassword.php", f"--appid={self.app}", f"--grants={GRANTS}",
                  self.bot, self.bot_password)

    def set_server(self) -> None:
        with open(self.settings, "a", encoding="utf-8") as f:
            f.write(f'$wgServer = "http://127.0.0.1:{self.port}";\n')

    # --- life cycle ----------------------------------------------------------------------
    def start(self) -> "MediaWiki":
        if not self.settings.exists():
            self.install()
        for _ in range(5):
            env = {**os.environ, "MW_CONFIG_FILE": str(self.settings)}
            log = open(self.log, "ab")
            self.proc = subprocess.Popen([PHP, "-S", f"127.0.0.1:{self.port}", "-t", str(CODE)], cwd=CODE,
                                         env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            log.close()
            if self._wait_ready():
                return self
            self.stop()                               # the port was taken meanwhile: another one
            self.port = _free_port()
            self.set_server()
        raise RuntimeError(f"the test wiki did not start; see {self.log}")

    def _wait_ready(self, timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.api}?action=query&meta=siteinfo&format=json", timeout=2) as r:
                    if b"Testigo Test Wiki" in r.read():
                        return True
            except OSError:
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "MediaWiki":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api.php"

    @property
    def user(self) -> str:
        return f"{self.bot}@{self.app}"

    def client(self):
        """An mwclient session logged in as the bot, for the tests' own look-ups and edits."""
        import mwclient
        site = mwclient.Site(f"127.0.0.1:{self.port}", path="/", scheme="http",
                             clients_useragent="testigo-tests")
        site.login(self.user, self.bot_password)
        return site
