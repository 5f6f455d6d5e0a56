"""The volunteers' app (``testigo transcribe``): volunteers type in photos whose QR could not be read.

Owns: the app's state and access code (``app``), its pages and hooks (``pages``), running it
(``server``) and its command (``cli``). The rules (queue, entries, agreement) live in
``archive.transcription``. May import: ``archive``, ``publish.site`` (templates, static files,
the server and page helpers it shares with the public site).
"""
