"""A small crawler for the site's tests: every same-site link of every page reached.

Used by the escaping test (crafted names must reach every page escaped) and the crawl test
(no page the site links to may fail or drop its facets).
"""
from __future__ import annotations

import html
import re
import urllib.parse
from collections import deque
from dataclasses import dataclass, field

#: Attributes holding a URL in the site's pages (forms are not submitted: their action is a page).
LINK_RE = re.compile(r'\s(?:href|src)="([^"]*)"')


@dataclass
class Page:
    path: str
    status: int
    content_type: str
    text: str
    found_on: str | None = None
    depth: int = 0
    via: "Page | None" = field(default=None, repr=False)     # the page the link was found on


@dataclass
class Crawl:
    pages: dict[str, Page] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)      # links seen but not fetched (not followed)

    def html_pages(self) -> list[Page]:
        return [p for p in self.pages.values() if p.content_type.startswith("text/html")]

    def failures(self) -> list[Page]:
        return [p for p in self.pages.values() if p.status >= 400]


def same_site_links(text: str, base: str) -> list[str]:
    """Paths (with query) of the links in a page that stay on this site, in page order."""
    out = []
    for raw in LINK_RE.findall(text):
        url = html.unescape(raw).strip()
        if not url or url.startswith(("#", "mailto:", "magnet:", "javascript:", "data:")):
            continue
        parts = urllib.parse.urlsplit(urllib.parse.urljoin("http://site" + base, url))
        if parts.netloc not in ("site", "localhost") or parts.scheme not in ("http", "https"):
            continue
        out.append(parts.path + ("?" + parts.query if parts.query else ""))
    return out


def crawl(get, start: list[str], follow=lambda link, parent: True, limit: int = 5000) -> Crawl:
    """Breadth-first from ``start`` (depth 0): ``get(path)`` -> (status, content type, text); a
    link of an HTML page is fetched when ``follow(link, page)`` says so. More than ``limit``
    pages is an error: the site exposes that many."""
    result = Crawl()
    queue = deque((p, None) for p in start)
    seen = set(start)
    while queue:
        path, parent = queue.popleft()
        if len(result.pages) >= limit:
            raise AssertionError(f"more than {limit} pages reachable; last from {parent.path}: {path}")
        status, ctype, text = get(path)
        page = result.pages[path] = Page(path, status, ctype, text, parent.path if parent else None,
                                         parent.depth + 1 if parent else 0, parent)
        if not ctype.startswith("text/html") or status >= 400:
            continue
        for link in same_site_links(text, path):
            if link in seen:
                continue
            seen.add(link)
            if follow(link, page):
                queue.append((link, page))
            else:
                result.skipped.add(link)
    return result
