"""Talking to a MediaWiki (Wikimedia Commons, or a test wiki) through ``mwclient``.

mwclient sends ``maxlag`` with every request and waits when the wiki says it is lagging (its
own retry loop); this module adds a wait on the ``ratelimited`` error, SHA-1 look-ups, uploads
that never ignore warnings (so the wiki itself refuses a duplicate or an existing name), and
the login with a bot password taken from the environment only.
"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import mwclient
import requests
from mwclient import errors as mwerrors

from publish.internet_archive.client import short_reason

from .errors import MissingBotPassword, UploadRefused, WikiUnreachable

USER_VARIABLE = "COMMONS_BOT_USER"
PASSWORD_VARIABLE = "COMMONS_BOT_PASSWORD"
COMMONS_API = "https://commons.wikimedia.org/w/api.php"

SETUP_HELP = (
    "Make a bot password on the wiki (Special:BotPasswords; on Commons:\n"
    "https://commons.wikimedia.org/wiki/Special:BotPasswords) with the grants 'Basic rights',\n"
    "'High-volume editing', 'Upload new files' and 'Edit existing pages' and 'Create, edit, and\n"
    "move pages', then put it in the environment:\n"
    f"  export {USER_VARIABLE}='YourBot@testigo'     # user name @ bot name (or --user)\n"
    f"  export {PASSWORD_VARIABLE}='...'              # the password the wiki showed once\n"
    "The password is never given on the command line.")


@dataclass(frozen=True)
class Uploaded:
    name: str          # the file's title without its namespace
    sha1: str | None


def credentials(user: str | None = None, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    env = os.environ if environ is None else environ
    user = user or env.get(USER_VARIABLE, "").strip()
    password = env.get(PASSWORD_VARIABLE, "").strip()
    if not user or not password:
        missing = [n for n, v in ((f"{USER_VARIABLE} (or --user)", user), (PASSWORD_VARIABLE, password)) if not v]
        raise MissingBotPassword(f"No bot password: {' and '.join(missing)} not set.\n{SETUP_HELP}")
    return user, password


class Wiki:
    """One wiki's API, logged in or not."""

    def __init__(self, api_url: str, *, maxlag: int = 5, user_agent: str = "testigo",
                 pause: float = 0.0, timeout: float = 120, max_retries: int = 12,
                 chunk_size: int | None = None):
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path.endswith("api.php"):
            raise WikiUnreachable(f"{api_url!r} is not a wiki's API address; give its api.php, e.g. "
                                  f"{COMMONS_API}")
        self.api_url = api_url
        self.pause = pause
        path = parts.path[: -len("api.php")]
        try:
            self.site = mwclient.Site(parts.netloc, path=path, scheme=parts.scheme, max_lag=maxlag,
                                      clients_useragent=user_agent, connection_options={"timeout": timeout},
                                      max_retries=max_retries, retry_timeout=10)
        except (requests.RequestException, OSError, mwerrors.MwClientError, ValueError) as exc:
            raise WikiUnreachable(f"Could not reach the wiki at {api_url} ({short_reason(exc)}). "
                                  "Check --api and your connection.") from exc
        if chunk_size:
            self.site.chunk_size = chunk_size     # files larger than this go up in chunks (stash)
        self.user: str | None = None

    def login(self, user: str, password: str) -> None:
        try:
            self.site.login(user, password)
        except mwerrors.LoginError as exc:
            raise MissingBotPassword(f"The wiki refused the login of {user!r} ({exc.args[1] if len(exc.args) > 1 else exc}). "
                                     f"Check the bot password.\n{SETUP_HELP}") from exc
        except (requests.RequestException, OSError) as exc:
            raise WikiUnreachable(f"Could not log in to {self.api_url} ({short_reason(exc)}).") from exc
        self.user = user
        rights = set(getattr(self.site, "rights", []) or [])
        if rights and "upload" not in rights:
            raise UploadRefused(f"{user!r} may not upload files on this wiki (its bot password lacks "
                                "the grant 'Upload new files', or the account is not allowed to upload).")

    # --- with waits on rate limits -------------------------------------------------------
    def _call(self, what: str, fn, *args, **kwargs):
        delay = 5.0
        for attempt in range(6):
            try:
                return fn(*args, **kwargs)
            except mwerrors.APIError as exc:
                if exc.code == "ratelimited" and attempt < 5:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise UploadRefused(f"The wiki refused {what} ({exc.code}: {exc.info}).") from exc
            except mwerrors.MaximumRetriesExceeded as exc:
                raise WikiUnreachable(f"The wiki stayed lagged or unavailable while {what}; try again "
                                      "later (the same command continues where it stopped).") from exc
            except (requests.RequestException, OSError) as exc:
                raise WikiUnreachable(f"The connection to the wiki broke while {what} "
                                      f"({short_reason(exc)}). Run the same command again: it "
                                      "continues where it stopped.") from exc
        raise AssertionError("unreachable")

    def files_with_sha1(self, sha1: str) -> list[str]:
        """Titles (without namespace) of the files whose current version has this SHA-1."""
        def look():
            return [img.page_title for img in self.site.allimages(sha1=sha1)]
        return self._call(f"looking up the SHA-1 {sha1}", look)

    def file_sha1(self, name: str) -> str | None:
        """The SHA-1 of the current version of File:name, or None if there is no such file."""
        def look():
            info = self.site.images[name].imageinfo
            return (info or {}).get("sha1")
        return self._call(f"reading File:{name}", look)

    def upload(self, fh, name: str, text: str, comment: str) -> dict:
        """Upload without ignoring any warning; the wiki's answer (``result`` Success or Warning)."""
        try:
            answer = self._call(f"the upload of {name}", self.site.upload, file=fh, filename=name,
                                description=text, comment=comment, ignore=False)
        except mwerrors.FileExists:
            answer = {"result": "Warning", "warnings": {"exists": name}}
        except mwerrors.InsufficientPermission as exc:
            raise UploadRefused(f"{self.user or 'This account'} may not upload File:{name} on this "
                                "wiki (a protected title, or no upload right).") from exc
        if isinstance(answer.get("upload"), dict):   # a chunked upload answers the whole API result
            answer = answer["upload"]
        if self.pause:
            time.sleep(self.pause)
        return answer

    def page_exists(self, title: str) -> bool:
        return self._call(f"reading {title}", lambda: self.site.pages[title].exists)

    def create_page(self, title: str, text: str, summary: str) -> bool:
        """Create the page if it does not exist; never overwrite. True if created."""
        page = self._call(f"reading {title}", lambda: self.site.pages[title])
        if page.exists:
            return False
        self._call(f"creating {title}", page.edit, text, summary=summary, createonly=True)
        if self.pause:
            time.sleep(self.pause)
        return True

    def category_members(self, category: str) -> list[str]:
        def look():
            return [p.name for p in self.site.categories[category]]
        return self._call(f"listing Category:{category}", look)
