"""The public site: Datasette over a bundle, read-only, built to stay up under attack.

Owns: loading a bundle as a site (``app``, ``errors``), the site's state (``state``), its pages
(``pages/``, reached only through ``plugin``, the Datasette hooks), its defences (``gate``,
``cache``, ``headers``, ``connections``, ``pool``), the data process for Datasette's own pages
(``browser``, ``dataprocess``), running it (``server``) and ``testigo serve`` (``cli``).
May import: ``archive``, ``publish.torrent.metainfo`` (magnet links), ``publish.vendor``.
Layers, bottom up: errors, gate, headers, indexes, pool, connections -> app -> state ->
pages' helpers (common, queries, provenance, choropleth) -> pages -> cache, plugin -> server
-> browser, dataprocess, cli.
"""
