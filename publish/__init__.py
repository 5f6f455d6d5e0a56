"""testigo.publish: everything from a bundle to the world, one room per job.

The rooms follow the data's path out of the archive: ``site`` (the public site and its
defences), ``mirror`` (the site as static files), ``torrent`` (BitTorrent), ``internet_archive``
(uploads), ``check`` (does my photo match the archive), ``transcribe`` (the volunteers' app).
Each room imports ``archive`` and the rooms below it, never one above: ``mirror``, ``check``
and ``transcribe`` build on ``site``; ``site`` reads torrents' magnet links from ``torrent``;
no room imports ``cli``/``demo``, which sit on top and gather every command.
"""
