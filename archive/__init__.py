"""testigo.archive: everything from a pile of photos and sheets to a signed bundle."""
