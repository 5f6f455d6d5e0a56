"""BitTorrent for bundles: make and read .torrent files (``metainfo``), libtorrent sessions
(``swarm``), seed (``seeder``), fetch and verify (``fetch``), and their commands (``cli``).

May import: ``archive`` (manifests, verification), ``publish.internet_archive`` (web seeds,
in ``cli`` only). Nothing here imports the site.
"""
