"""testigo.publish: everything from a bundle to the world (site, torrent, Internet Archive)."""
