"""The volunteers' app (``testigo transcribe``): volunteers type in photos whose QR could not be read.

Owns: the app's state and codes (``app``), who a request is (``session``: the signed cookie of
a volunteer, by code or invitation, and of the coordinator), the volunteers' pages and hooks
(``pages``), the coordinator's desk (``desk``), running it (``server``) and its command
(``cli``). The rules (queue, entries, agreement, invitations, known answers, decisions)
live in ``archive`` (``transcription``, ``volunteers``, ``known_answers``, ``consensus``,
``desk``). May import: ``archive``, ``publish.site`` (templates, static files, the server and
page helpers it shares with the public site).
"""
