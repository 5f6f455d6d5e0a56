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


def crawl(get, start: list[str], follow=lambda path, depth: True, limit: int = 5000) -> Crawl:
    """Breadth-first from ``start``: ``get(path)`` -> (status, content type, text); the links of
    an HTML page fetched at depth d are fetched when ``follow(link, d + 1)`` says so (the start
    pages are at depth 0). More than ``limit`` pages is an error: the site exposes that many."""
    result = Crawl()
    queue = deque((p, None, 0) for p in start)
    seen = set(start)
    while queue:
        path, parent, depth = queue.popleft()
        if len(result.pages) >= limit:
            raise AssertionError(f"more than {limit} pages reachable; last from {parent}: {path}")
        status, ctype, text = get(path)
        result.pages[path] = Page(path, status, ctype, text, parent)
        if not ctype.startswith("text/html") or status >= 400:
            continue
        for link in same_site_links(text, path):
            if link in seen:
                continue
            seen.add(link)
            if follow(link, depth + 1):
                queue.append((link, path, depth + 1))
            else:
                result.skipped.add(link)
    return result
