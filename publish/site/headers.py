"""The security headers every answer of the site carries.

Pages show text that came from volunteers' uploads (file names, zip members, sheet fields).
Jinja escapes it; the Content-Security-Policy is the second wall: scripts run only from the
site's own files (``script-src 'self'``), never from the page's text, and no other site may
frame the pages (clickjacking). Datasette's own templates carry a few inline scripts: they are
allowed by the sha256 of their exact text, computed here from the installed templates, so a
Datasette upgrade that changes them changes the hashes with it.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

import jinja2

from archive.errors import TestigoError

#: An inline script block: <script ...>body</script>; group 1 the attributes, group 2 the body.
INLINE_SCRIPT_RE = re.compile(r"<script(\s[^>]*)?>(.*?)</script>", re.S | re.I)
#: Script types that browsers do not run (data blocks): CSP does not apply to them.
DATA_TYPES = ("application/json", "application/ld+json", "text/template")

#: Everything but scripts from the site itself. 'wasm-unsafe-eval': the browser QR decoder on
#: /comprobar is WebAssembly (it compiles code, it does not eval text). Inline styles are allowed
#: (Datasette's templates and the totals bars use style=""): a style cannot run code.
POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'", "'wasm-unsafe-eval'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:", "blob:"],
    "media-src": ["'self'", "blob:"],
    "worker-src": ["'self'", "blob:"],
    "connect-src": ["'self'"],
    "font-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
#: For files that are not pages (photos, downloads): nothing in them may run, ever.
FILE_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"

OTHER_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),                       # frame-ancestors for old browsers
    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=(), interest-cohort=()"),
]


class TemplateScriptError(TestigoError):
    """A template has an inline script whose text depends on something not known in advance."""


def script_hash(body: str) -> str:
    """The CSP source that allows exactly this inline script text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode() + "'"


def inline_scripts(html: str) -> list[str]:
    """The bodies of the inline scripts a browser would run in ``html`` (no src, not data)."""
    out = []
    for attrs, body in INLINE_SCRIPT_RE.findall(html):
        attrs = attrs or ""
        if re.search(r"\bsrc\s*=", attrs, re.I) or any(t in attrs.lower() for t in DATA_TYPES):
            continue
        out.append(body)
    return out


def template_script_hashes(template_dirs: list[Path], variables: dict[str, str]) -> list[str]:
    """Hashes of every inline script in the templates of ``template_dirs``, rendered with
    ``variables`` where a script's text uses one (as Datasette's table page does).

    A script whose opening tag is itself templated is a plugin's ``extra_body_script`` slot:
    empty unless a plugin fills it, and this site installs none. Anything else that cannot be
    rendered is an error: the site must not start with a policy that breaks its pages.
    """
    env = jinja2.Environment(autoescape=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    hashes = set()
    for d in template_dirs:
        for path in sorted(Path(d).glob("*.html")):
            source = path.read_text(encoding="utf-8")
            for m in INLINE_SCRIPT_RE.finditer(source):
                attrs, body = m.group(1) or "", m.group(2)
                if "{%" in attrs or "{{" in attrs or not inline_scripts(m.group(0)):
                    continue
                try:
                    text = env.from_string(body).render(**variables)
                except jinja2.TemplateError as e:
                    raise TemplateScriptError(f"{path.name}: an inline script depends on something the "
                                              f"site cannot know in advance ({e}); move it to a .js file")
                hashes.add(script_hash(text))
    return sorted(hashes)


@functools.lru_cache(maxsize=4)
def page_policy(allow_facet: bool, extra_template_dirs: tuple[str, ...] = ()) -> str:
    """The Content-Security-Policy of the site's pages (Datasette's included)."""
    import datasette
    dirs = [Path(datasette.__file__).parent / "templates", *map(Path, extra_template_dirs)]
    hashes = template_script_hashes(dirs, {"datasette_allow_facet": "true" if allow_facet else "false"})
    policy = {k: list(v) for k, v in POLICY.items()}
    policy["script-src"] += hashes
    return "; ".join(f"{k} {' '.join(v)}" for k, v in policy.items())


def add_security_headers(headers: list[tuple[bytes, bytes]], policy: str) -> list[tuple[bytes, bytes]]:
    """``headers`` plus every security header it lacks (an answer's own CSP, such as a photo's
    sandbox, is kept)."""
    names = {k.lower() for k, _ in headers}
    extra = [(k, v) for k, v in OTHER_HEADERS if k not in names]
    if b"content-security-policy" not in names:
        extra.append((b"content-security-policy", policy.encode()))
    return headers + extra
