"""The browser app (`testigo mirror B --out DIR --app`): the whole public site as a handful of
static files that read the bundle where it lies, over HTTP range requests.

Owns: ``writer`` (writes DIR: the app's files, its ``testigo-mirror.json``, and by default the
bundle's files as hard links) and ``static/`` (the app's HTML, JS and CSS; the vendored npm
libraries it loads are publish/static/vendor's, see publish/vendor.py).

May import: ``archive`` (bundle files, election, comparison, boundaries) and ``publish.vendor``;
never the site's pages or Datasette. Nothing imports it but the mirror command.
"""
